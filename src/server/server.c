/* server.c: the kubelet HTTPS API's life: its state built at start (state.h),
 * the transport started with routes.c as its handler, the sampler thread,
 * and the order of shutting them down.
 *
 * Stopping. The transport stops first: it refuses new requests, makes
 * every request in progress see it is gone (follows end) and waits for
 * their handlers, which may still read the sampler's rates and the auth
 * cache; only then do the sampler and the auth cache go. */
#include "server/server.h"
#include "server/routes.h"
#include "server/state.h"
#include "util/xalloc.h"

#include <stdlib.h>

#define SAMPLE_INTERVAL_MS 5000

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

int server_start(const server_config_t *cfg, server_t **out, err_t *err)
{
    *out = NULL;
    if (!cfg->cert_pem || !cfg->key_pem) return err_set(err, "no serving certificate");
    server_t *s = xcalloc(1, sizeof *s);
    s->node_name = xstrdup(cfg->node_name ? cfg->node_name : "");
    s->anonymous = cfg->anonymous;
    s->client = cfg->client;
    s->pods = cfg->pods;
    s->rt = cfg->rt;
    s->images = cfg->images;
    s->pod_addresses = cfg->pod_addresses;
    s->data_dir = dup_or_null(cfg->data_dir);
    s->logs_dir = dup_or_null(cfg->logs_dir);
    s->auth = server_auth_new(cfg->client, s->node_name, cfg->authn_ttl_ms, cfg->authz_allow_ttl_ms,
                              cfg->authz_deny_ttl_ms);
    s->sampler = server_sampler_start(&s->pods, SAMPLE_INTERVAL_MS);
    if (!s->sampler) {
        err_set(err, "cannot start the stats sampler thread");
        goto fail;
    }
    http_config_t hc = {
        .bind_address = cfg->bind_address,
        .port = cfg->port,
        .cert_pem = cfg->cert_pem,
        .key_pem = cfg->key_pem,
        .client_ca_pem = cfg->client_ca_pem,
        .idle_timeout_s = cfg->idle_timeout_s,
        .max_requests = cfg->max_requests,
        .handler = server_route,
        .ctx = s,
    };
    if (http_start(&hc, &s->http, err) == -1) goto fail;
    *out = s;
    return 0;
fail:
    server_stop(s);
    return -1;
}

int server_port(const server_t *s)
{
    return http_port(s->http);
}

int server_set_cert(server_t *s, const char *cert_pem, const char *key_pem, err_t *err)
{
    return http_set_cert(s->http, cert_pem, key_pem, err);
}

void server_stop(server_t *s)
{
    if (!s) return;
    http_stop(s->http);
    server_sampler_stop(s->sampler);
    server_auth_free(s->auth);
    free(s->node_name);
    free(s->data_dir);
    free(s->logs_dir);
    free(s);
}

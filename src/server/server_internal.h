/* server_internal.h: what the files of server/ share and nothing outside
 * uses: one request as its handler thread sees it, the calls that hand an
 * answer back to the event loop, authentication and authorization, and the
 * handlers of each path. */
#ifndef WASMLET_SERVER_INTERNAL_H
#define WASMLET_SERVER_INTERNAL_H

#include "server/server.h"
#include "util/strbuf.h"
#include "util/strvec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sreq sreq_t;

/* --- a request, on its handler thread ------------------------------------ */

/* What the handler may read; fixed before the handler starts. */
const char *sreq_method(const sreq_t *r); /* "GET", "POST", ... */
const char *sreq_path(const sreq_t *r);   /* decoded path, without the query */
/* A query parameter's decoded value, or NULL when absent. */
const char *sreq_query(const sreq_t *r, const char *key);
/* A request header, or NULL. */
const char *sreq_header(const sreq_t *r, const char *name);
server_t *sreq_server(const sreq_t *r);
/* The verified client certificate's user (CN) and groups (O), or NULL. */
const char *sreq_peer(const sreq_t *r, const strvec_t **groups);
/* Names the path's class for the request metrics ("containerLogs", ...). */
void sreq_set_class(sreq_t *r, const char *path_class);

/* Authenticates, authorizes and answers one request (routes.c); runs on
 * the request's own thread. */
void server_handle(sreq_t *r);

/* A whole answer. Exactly one of sreq_reply / sreq_error / a stream per
 * request. */
void sreq_reply(sreq_t *r, int status, const char *content_type, const char *body, size_t len);
/* A text/plain error: the message and a newline. */
void sreq_error(sreq_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A streamed answer (chunked): headers now, data as it comes. write blocks
 * while more than a megabyte waits for a slow client, and returns -1 once
 * the client is gone or the server stops (the handler should then end). */
void sreq_stream_start(sreq_t *r, int status, const char *content_type);
int sreq_stream_write(sreq_t *r, const void *data, size_t len);
void sreq_stream_end(sreq_t *r);
/* The client went away or the server is stopping. */
bool sreq_gone(sreq_t *r);

/* --- identity ------------------------------------------------------------- */

typedef struct server_user {
    char *name;
    char *uid; /* "" when unknown */
    strvec_t groups;
    json_t *extra; /* object of string -> [string], or NULL */
} server_user_t;

void server_user_free(server_user_t *u);

/* --- authentication and authorization (auth.c) --------------------------- */

typedef struct server_auth server_auth_t;

server_auth_t *server_auth_new(const server_config_t *cfg);
void server_auth_free(server_auth_t *a);

/* Outcome of a check: yes, no, or could not tell (the API server failed). */
typedef enum server_verdict { SERVER_NO = 0, SERVER_YES = 1, SERVER_UNKNOWN = -1 } server_verdict_t;

/* Checks a bearer token with a TokenReview (cached by the token's hash);
 * YES fills user. */
server_verdict_t server_authn_token(server_auth_t *a, const char *token, server_user_t *user,
                                    err_t *err);
/* Checks with a SubjectAccessReview whether user may do verb on
 * nodes/<node>/<subresource> (cached). NO fills reason when the API server
 * gave one. */
server_verdict_t server_authz(server_auth_t *a, const server_user_t *user, const char *verb,
                              const char *subresource, char *reason, size_t reason_len, err_t *err);

/* The subresources a path is authorized against, in order of preference
 * (allowed when any is allowed); returns how many (1 or 2). */
size_t server_path_subresources(const char *path, const char *out[2]);
/* The verb of an HTTP method: get, create, update, patch, delete. */
const char *server_method_verb(const char *method);

/* --- handlers -------------------------------------------------------------- */

void server_handle_logs(sreq_t *r, const char *ns, const char *pod, const char *container);
void server_handle_stats_summary(sreq_t *r);
void server_handle_metrics(sreq_t *r);
void server_handle_metrics_resource(sreq_t *r);

/* Server state the handlers use. */
const server_config_t *server_config(const server_t *s);
bool server_stopping(const server_t *s);
server_auth_t *server_auth_of(server_t *s);

/* Appends a Prometheus label value with the text format's escapes
 * (backslash, double quote, newline); NULL appends nothing. */
void server_prom_label(strbuf_t *sb, const char *v);

/* --- resource samples (stats.c) ------------------------------------------- */

/* CPU rates need two samples; the loop samples every few seconds and the
 * handlers read the rate between the last two. */
typedef struct server_rates server_rates_t;
server_rates_t *server_rates_new(void);
void server_rates_free(server_rates_t *rt);
/* Takes a sample of the node, this process and every container. */
void server_rates_sample(server_t *s, server_rates_t *rt);
/* Cores used (in nanocores) by key between the last two samples; false
 * when fewer than two samples exist. */
bool server_rates_get(server_rates_t *rt, const char *key, uint64_t *nanocores);
server_rates_t *server_rates(server_t *s);

/* Cumulative CPU of the whole machine and of this process, in ns. */
uint64_t server_node_cpu_ns(void);
uint64_t server_process_cpu_ns(void);

#endif

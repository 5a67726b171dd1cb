/* kubeconfig.c: reading and writing kubeconfig files (see kubeconfig.h).
 *
 * The file is loaded with libyaml's document API into a node tree and walked
 * by key, rather than streamed through parser events: kubeconfigs are a few
 * kilobytes, and looking up "current-context", then the named context, then
 * its cluster and user by name reads far more plainly as tree lookups than as
 * a state machine. Only the one resolved context is kept; wasmlet never
 * switches context at run time.
 *
 * Everything a context refers to is read into memory here, at load time,
 * so a missing or unreadable certificate is reported once with the path that
 * is wrong instead of as a TLS failure on the first request. The exception is
 * tokenFile, whose path is kept as well: projected service-account tokens
 * rotate underneath a running process, and the client re-reads them.
 *
 * The writer emits YAML by hand. Every string goes out as a JSON string
 * literal, which is also a valid YAML double-quoted scalar, so no server URL
 * or path can break the document's structure. */
#include "kube/kubeconfig.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* --- tree helpers ------------------------------------------------------ */

static const char *yaml_str(yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE) return NULL;
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = yaml_str(yaml_document_get_node(doc, p->key));
        if (k && strcmp(k, key) == 0) return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static const char *yaml_get_str(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    const char *s = yaml_str(yaml_get(doc, map, key));
    return s && *s ? s : NULL;
}

/* In a list of {name: ..., <field>: {...}} entries (clusters, users,
 * contexts), the <field> mapping of the entry called name. */
static yaml_node_t *yaml_named(yaml_document_t *doc, yaml_node_t *root, const char *list,
                               const char *field, const char *name)
{
    yaml_node_t *seq = yaml_get(doc, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE) return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
         i++) {
        yaml_node_t *entry = yaml_document_get_node(doc, *i);
        const char *n = yaml_str(yaml_get(doc, entry, "name"));
        if (n && strcmp(n, name) == 0) {
            yaml_node_t *m = yaml_get(doc, entry, field);
            return m && m->type == YAML_MAPPING_NODE ? m : NULL;
        }
    }
    return NULL;
}

static bool yaml_truthy(const char *s)
{
    return s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
                 strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0);
}

/* --- credentials ------------------------------------------------------- */

static char *resolve_path(const char *dir, const char *p)
{
    return p[0] == '/' ? xstrdup(p) : fs_join(dir, p);
}

/* One credential that may be given inline as base64 (<key>-data) or as a
 * file (<key>); inline wins, as it does in other Kubernetes clients. */
static int load_material(yaml_document_t *doc, yaml_node_t *map, const char *key, const char *dir,
                         char **out, err_t *err)
{
    char data_key[64];
    snprintf(data_key, sizeof data_key, "%s-data", key);
    const char *b64 = yaml_get_str(doc, map, data_key);
    if (b64) {
        unsigned char *raw;
        if (base64_decode(b64, strlen(b64), &raw, NULL) == -1)
            return err_set(err, "%s: not valid base64", data_key);
        *out = (char *)raw;
        return 0;
    }
    const char *file = yaml_get_str(doc, map, key);
    if (!file) return 0;
    char *full = resolve_path(dir, file);
    int rc = fs_read_all(full, out, NULL, err);
    if (rc == -1) err_prefix(err, "%s", key);
    free(full);
    return rc;
}

static char *read_token_file(const char *path, err_t *err)
{
    char *tok;
    if (fs_read_all(path, &tok, NULL, err) == -1) return NULL;
    size_t n = strlen(tok);
    while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    return tok;
}

/* --- load -------------------------------------------------------------- */

static int resolve(yaml_document_t *doc, const char *dir, const char *want, kube_kubeconfig_t *cfg,
                   err_t *err)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || root->type != YAML_MAPPING_NODE) return err_set(err, "not a kubeconfig mapping");

    const char *ctx_name = want ? want : yaml_get_str(doc, root, "current-context");
    if (!ctx_name) return err_set(err, "no current-context set");
    cfg->context = xstrdup(ctx_name);
    yaml_node_t *ctx = yaml_named(doc, root, "contexts", "context", ctx_name);
    if (!ctx) return err_set(err, "context \"%s\" not found", ctx_name);
    const char *ns = yaml_get_str(doc, ctx, "namespace");
    if (ns) cfg->namespace = xstrdup(ns);

    const char *cluster_name = yaml_get_str(doc, ctx, "cluster");
    if (!cluster_name) return err_set(err, "context \"%s\" names no cluster", ctx_name);
    yaml_node_t *cluster = yaml_named(doc, root, "clusters", "cluster", cluster_name);
    if (!cluster) return err_set(err, "cluster \"%s\" not found", cluster_name);
    const char *server = yaml_get_str(doc, cluster, "server");
    if (!server) return err_set(err, "cluster \"%s\" has no server", cluster_name);
    cfg->server = xstrdup(server);
    size_t sl = strlen(cfg->server);
    while (sl > 0 && cfg->server[sl - 1] == '/')
        cfg->server[--sl] = '\0';
    cfg->insecure_skip_tls_verify =
        yaml_truthy(yaml_get_str(doc, cluster, "insecure-skip-tls-verify"));
    if (load_material(doc, cluster, "certificate-authority", dir, &cfg->ca_pem, err) == -1)
        return err_prefix(err, "cluster \"%s\"", cluster_name);

    /* A context without a user is legal (anonymous access). */
    const char *user_name = yaml_get_str(doc, ctx, "user");
    if (!user_name) return 0;
    yaml_node_t *user = yaml_named(doc, root, "users", "user", user_name);
    if (!user) return err_set(err, "user \"%s\" not found", user_name);
    if (load_material(doc, user, "client-certificate", dir, &cfg->cert_pem, err) == -1 ||
        load_material(doc, user, "client-key", dir, &cfg->key_pem, err) == -1)
        return err_prefix(err, "user \"%s\"", user_name);
    if (!cfg->cert_pem != !cfg->key_pem)
        return err_set(err, "user \"%s\": client-certificate and client-key must be set together",
                       user_name);
    const char *token = yaml_get_str(doc, user, "token");
    const char *token_file = yaml_get_str(doc, user, "tokenFile");
    if (token) {
        cfg->token = xstrdup(token);
    } else if (token_file) {
        cfg->token_file = resolve_path(dir, token_file);
        cfg->token = read_token_file(cfg->token_file, err);
        if (!cfg->token) return err_prefix(err, "user \"%s\": tokenFile", user_name);
    }
    if (!cfg->cert_pem && !cfg->token &&
        (yaml_get(doc, user, "exec") || yaml_get(doc, user, "auth-provider")))
        return err_set(err, "user \"%s\": exec and auth-provider credentials are not supported",
                       user_name);
    return 0;
}

int kube_kubeconfig_load(const char *path, const char *context, kube_kubeconfig_t **out, err_t *err)
{
    kube_kubeconfig_t *cfg = xcalloc(1, sizeof *cfg);
    char *text = NULL, *dir = NULL;
    size_t len;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;

    if (fs_read_all(path, &text, &len, err) == -1) goto fail;
    const char *slash = strrchr(path, '/');
    dir = slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");

    if (!yaml_parser_initialize(&parser)) {
        err_set(err, "kubeconfig %s: yaml parser init failed", path);
        goto fail;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err_set(err, "kubeconfig %s: line %zu: %s", path, parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "invalid YAML");
        goto fail;
    }
    have_doc = true;
    if (resolve(&doc, dir, context, cfg, err) == -1) {
        err_prefix(err, "kubeconfig %s", path);
        goto fail;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    free(dir);
    *out = cfg;
    return 0;
fail:
    if (have_doc) yaml_document_delete(&doc);
    if (have_parser) yaml_parser_delete(&parser);
    free(text);
    free(dir);
    kube_kubeconfig_free(cfg);
    return -1;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

kube_kubeconfig_t *kube_kubeconfig_new(const char *server, const char *ca_pem, const char *cert_pem,
                                       const char *key_pem, const char *token)
{
    kube_kubeconfig_t *cfg = xcalloc(1, sizeof *cfg);
    cfg->server = xstrdup(server);
    size_t sl = strlen(cfg->server);
    while (sl > 0 && cfg->server[sl - 1] == '/')
        cfg->server[--sl] = '\0';
    cfg->ca_pem = dup_or_null(ca_pem);
    cfg->cert_pem = dup_or_null(cert_pem);
    cfg->key_pem = dup_or_null(key_pem);
    cfg->token = dup_or_null(token);
    cfg->context = xstrdup("");
    return cfg;
}

void kube_kubeconfig_free(kube_kubeconfig_t *cfg)
{
    if (!cfg) return;
    free(cfg->server);
    free(cfg->ca_pem);
    free(cfg->cert_pem);
    if (cfg->key_pem) {
        /* Private key material: do not leave it lying in freed heap. */
        memset(cfg->key_pem, 0, strlen(cfg->key_pem));
        free(cfg->key_pem);
    }
    free(cfg->token);
    free(cfg->token_file);
    free(cfg->context);
    free(cfg->namespace);
    free(cfg);
}

/* --- write ------------------------------------------------------------- */

static void put_quoted(strbuf_t *sb, const char *s)
{
    json_t *j = json_string(s);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    strbuf_puts(sb, q ? q : "\"\"");
    free(q);
    json_decref(j);
}

int kube_kubeconfig_write(const char *path, const char *server, const char *ca_pem,
                          const char *cert_path, const char *key_path, err_t *err)
{
    strbuf_t sb = STRBUF_INIT;
    strbuf_puts(&sb, "apiVersion: v1\nkind: Config\nclusters:\n- name: default-cluster\n"
                     "  cluster:\n    server: ");
    put_quoted(&sb, server);
    strbuf_putc(&sb, '\n');
    if (ca_pem) {
        char *b64 = base64_encode(ca_pem, strlen(ca_pem));
        strbuf_printf(&sb, "    certificate-authority-data: %s\n", b64);
        free(b64);
    }
    strbuf_puts(&sb, "users:\n- name: default-auth\n  user:\n    client-certificate: ");
    put_quoted(&sb, cert_path);
    strbuf_puts(&sb, "\n    client-key: ");
    put_quoted(&sb, key_path);
    strbuf_puts(&sb, "\ncontexts:\n- name: default\n  context:\n    cluster: default-cluster\n"
                     "    user: default-auth\ncurrent-context: default\n");
    int rc = fs_write_atomic(path, sb.data, sb.len, 0600, err);
    strbuf_free(&sb);
    if (rc == -1) err_prefix(err, "write kubeconfig");
    return rc;
}

/* auth.c: registry credentials: docker config files and pull secrets.
 *
 * A credential list is what the kubelet calls a keyring: entries keyed by
 * "host[:port][/path]" (a scheme and a /v1/ or /v2/ suffix are dropped, so
 * "https://index.docker.io/v1/" and "docker.io" are the same key). Keys may
 * hold '*' in host labels ("*.example.com"). Lookup returns every entry that
 * matches an image, most specific key first, and the puller tries them in
 * turn, since a pod may carry several secrets for one registry. The list is
 * small (a handful of secrets), so matching is a linear scan. */
#include "image/image.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *opt_strdup(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void cred_free(image_cred_t *c)
{
    free(c->registry);
    free(c->username);
    free(c->password);
    free(c->identity_token);
    free(c->registry_token);
    memset(c, 0, sizeof *c);
}

void image_auth_free(image_auth_t *auth)
{
    if (!auth) return;
    for (size_t i = 0; i < auth->n; i++)
        cred_free(&auth->creds[i]);
    free(auth->creds);
    auth->creds = NULL;
    auth->n = 0;
}

static image_cred_t *cred_push(image_auth_t *auth)
{
    auth->creds = xrealloc(auth->creds, (auth->n + 1) * sizeof *auth->creds);
    image_cred_t *c = &auth->creds[auth->n++];
    memset(c, 0, sizeof *c);
    return c;
}

void image_auth_append(image_auth_t *dst, const image_auth_t *src)
{
    if (!src) return;
    for (size_t i = 0; i < src->n; i++) {
        const image_cred_t *s = &src->creds[i];
        image_cred_t *c = cred_push(dst);
        c->registry = opt_strdup(s->registry);
        c->username = opt_strdup(s->username);
        c->password = opt_strdup(s->password);
        c->identity_token = opt_strdup(s->identity_token);
        c->registry_token = opt_strdup(s->registry_token);
    }
}

/* "https://Index.Docker.io/v1/" -> "docker.io"; "host:5000/v2/team/" ->
 * "host:5000/team". */
static char *normalize_key(const char *key)
{
    const char *p = key;
    const char *scheme = strstr(p, "://");
    if (scheme) p = scheme + 3;
    size_t hn = strcspn(p, "/");
    char *host = xstrndup(p, hn);
    for (char *h = host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    const char *path = p + hn;
    if (strncmp(path, "/v1/", 4) == 0 || strncmp(path, "/v2/", 4) == 0) path += 3;
    while (*path == '/')
        path++;
    size_t pn = strlen(path);
    while (pn && path[pn - 1] == '/')
        pn--;
    if (strcmp(host, "index.docker.io") == 0 || strcmp(host, "registry-1.docker.io") == 0) {
        free(host);
        host = xstrdup("docker.io");
    }
    char *out = pn ? xasprintf("%s/%.*s", host, (int)pn, path) : xstrdup(host);
    free(host);
    return out;
}

/* A docker config leaves unset fields as "": both read as absent. */
static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

int image_auth_from_dockerconfigjson(image_auth_t *auth, const char *json, size_t len, err_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return err_set(err, "docker config: invalid JSON: %s (line %d)", jerr.text, jerr.line);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(err, "docker config: not a JSON object");
    }
    json_t *auths = json_at(root, "auths");
    if (!auths) auths = root; /* the older .dockercfg format */
    if (!json_is_object(auths)) {
        json_decref(root);
        return err_set(err, "docker config: \"auths\" is not an object");
    }
    size_t first = auth->n;
    const char *key;
    json_t *entry;
    json_object_foreach(auths, key, entry)
    {
        if (!json_is_object(entry)) continue; /* e.g. "credsStore" beside "auths" */
        image_cred_t *c = cred_push(auth);
        c->registry = normalize_key(key);
        c->username = opt_strdup(nonempty(json_str_at(entry, "username")));
        c->password = opt_strdup(nonempty(json_str_at(entry, "password")));
        c->identity_token = opt_strdup(nonempty(json_str_at(entry, "identitytoken")));
        c->registry_token = opt_strdup(nonempty(json_str_at(entry, "registrytoken")));
        const char *b64 = nonempty(json_str_at(entry, "auth"));
        if (b64) {
            size_t n = 0;
            unsigned char *bytes = NULL;
            char *plain = base64_decode(b64, strlen(b64), &bytes, &n) == 0 ? (char *)bytes : NULL;
            char *colon = plain ? memchr(plain, ':', n) : NULL;
            if (!colon) {
                free(plain);
                err_set(err, "docker config: entry \"%s\": \"auth\" is not base64 of user:password",
                        key);
                goto fail;
            }
            *colon = '\0';
            free(c->username);
            free(c->password);
            c->username = xstrdup(plain);
            c->password = xstrdup(colon + 1);
            free(plain);
        }
    }
    json_decref(root);
    return 0;
fail:
    while (auth->n > first)
        cred_free(&auth->creds[--auth->n]);
    json_decref(root);
    return -1;
}

int image_auth_load_file(image_auth_t *auth, const char *path, err_t *err)
{
    char *data;
    size_t len;
    if (fs_read_all(path, &data, &len, err) == -1) return -1;
    int rc = image_auth_from_dockerconfigjson(auth, data, len, err);
    free(data);
    if (rc == -1) err_prefix(err, "%s", path);
    return rc;
}

/* Splits "host:port/path" into its parts (pointers into a copy). */
typedef struct url_parts {
    char *buf;
    const char *host, *port, *path;
} url_parts_t;

static void url_split(const char *s, url_parts_t *u)
{
    u->buf = xstrdup(s);
    char *slash = strchr(u->buf, '/');
    u->path = "";
    if (slash) {
        *slash = '\0';
        u->path = slash + 1;
    }
    u->host = u->buf;
    u->port = "";
    char *colon = strrchr(u->buf, ':');
    if (colon && !strchr(colon, ']')) {
        *colon = '\0';
        u->port = colon + 1;
    }
}

/* Host globs match label by label, as the kubelet's keyring does:
 * "*.example.com" matches "a.example.com" but not "example.com" or
 * "a.b.example.com". */
static bool host_match(const char *glob, const char *host)
{
    for (;;) {
        size_t gl = strcspn(glob, "."), hl = strcspn(host, ".");
        char *g = xstrndup(glob, gl), *h = xstrndup(host, hl);
        bool ok = fnmatch(g, h, 0) == 0;
        free(g);
        free(h);
        if (!ok) return false;
        if (!glob[gl] || !host[hl]) return !glob[gl] && !host[hl];
        glob += gl + 1;
        host += hl + 1;
    }
}

static bool key_matches(const char *key, const char *registry, const char *repository)
{
    url_parts_t k, t;
    url_split(key, &k);
    url_split(registry, &t);
    bool ok = strcmp(k.port, t.port) == 0 && host_match(k.host, t.host);
    if (ok && *k.path) {
        size_t n = strlen(k.path);
        ok = strncmp(repository, k.path, n) == 0 && (repository[n] == '\0' || repository[n] == '/');
    }
    free(k.buf);
    free(t.buf);
    return ok;
}

size_t image_auth_match(const image_auth_t *auth, const char *registry, const char *repository,
                        const image_cred_t **out, size_t max)
{
    if (!auth) return 0;
    size_t n = 0;
    for (size_t i = 0; i < auth->n && n < max; i++) {
        const image_cred_t *c = &auth->creds[i];
        if (!c->registry || !key_matches(c->registry, registry, repository)) continue;
        /* Insertion keeps equal-length keys in the order given (pod secrets
         * before node credentials) and puts longer, more specific keys first. */
        size_t j = n++;
        size_t len = strlen(c->registry);
        while (j > 0 && strlen(out[j - 1]->registry) < len) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = c;
    }
    return n;
}

/* ref.c: image references, pull policies and format names.
 *
 * References follow the rules Kubernetes inherits from docker: the first
 * path component is a registry only when it looks like a host (has a '.' or
 * a ':', is "localhost", or has upper case); otherwise the image lives on
 * docker.io, where one-component names sit under "library/". A digest wins
 * over a tag: "app:v1@sha256:..." names the digest, as the kubelet reads it.
 * Only sha256 digests are accepted, since that is all registries serve. */
#include "image/image.h"
#include "image/digest.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DOCKER_DOMAIN "docker.io"
#define DOCKER_ENDPOINT "registry-1.docker.io"

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_valid(const char *s, size_t n)
{
    if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1])) return false;
    for (size_t i = 0; i < n;) {
        if (is_alnum_lower(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        if (s[i] == '.') {
            j = i + 1;
        } else if (s[i] == '_') {
            j = i + 1;
            if (j < n && s[j] == '_') j++;
        } else if (s[i] == '-') {
            while (j < n && s[j] == '-')
                j++;
        } else {
            return false;
        }
        if (j >= n || !is_alnum_lower(s[j])) return false;
        i = j;
    }
    return true;
}

static bool domain_valid(const char *d)
{
    const char *colon = NULL;
    if (d[0] == '[') { /* [ipv6]:port */
        const char *close = strchr(d, ']');
        if (!close || close == d + 1) return false;
        for (const char *p = d + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':') return false;
        if (close[1] == '\0') return true;
        if (close[1] != ':') return false;
        colon = close + 1;
    } else {
        colon = strchr(d, ':');
        size_t n = colon ? (size_t)(colon - d) : strlen(d);
        if (n == 0) return false;
        size_t label = 0;
        for (size_t i = 0; i < n; i++) {
            char c = d[i];
            if (c == '.') {
                if (label == 0 || d[i - 1] == '-') return false;
                label = 0;
            } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
                label++;
            } else {
                return false;
            }
        }
        if (label == 0 || d[n - 1] == '-') return false;
    }
    if (colon) {
        const char *p = colon + 1;
        if (!*p) return false;
        for (; *p; p++)
            if (!isdigit((unsigned char)*p)) return false;
    }
    return true;
}

static bool tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128) return false;
    if (!(isalnum((unsigned char)t[0]) || t[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

void image_ref_free(image_ref_t *ref)
{
    if (!ref) return;
    free(ref->registry);
    free(ref->repository);
    free(ref->tag);
    free(ref->digest);
    memset(ref, 0, sizeof *ref);
}

int image_ref_parse(const char *text, image_ref_t *ref, err_t *err)
{
    memset(ref, 0, sizeof *ref);
    if (!text || !*text) return err_set(err, "invalid image reference \"\": empty");
    char *name = xstrdup(text);
    const char *why = NULL;

    char *at = strchr(name, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        if (strncmp(d, "sha256:", 7) != 0 && strchr(d, ':')) {
            why = "unsupported digest algorithm (only sha256)";
            goto fail;
        }
        if (!image_digest_valid(d)) {
            why = "digest must be sha256: followed by 64 lowercase hex digits";
            goto fail;
        }
        ref->digest = xstrdup(d);
    }

    char *rest = name;
    char *slash = strchr(name, '/');
    if (slash) {
        size_t n = (size_t)(slash - name);
        bool upper = false;
        for (size_t i = 0; i < n; i++)
            if (isupper((unsigned char)name[i])) upper = true;
        if (memchr(name, '.', n) || memchr(name, ':', n) || upper ||
            (n == 9 && memcmp(name, "localhost", 9) == 0)) {
            ref->registry = xstrndup(name, n);
            rest = slash + 1;
        }
    }
    if (!ref->registry) ref->registry = xstrdup(DOCKER_DOMAIN);
    if (!domain_valid(ref->registry)) {
        why = "invalid registry host";
        goto fail;
    }
    /* Registry host names are case-insensitive; keep one spelling. */
    for (char *p = ref->registry; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(ref->registry, "index.docker.io") == 0) {
        free(ref->registry);
        ref->registry = xstrdup(DOCKER_DOMAIN);
    }

    char *colon = strrchr(rest, ':');
    if (colon) {
        *colon = '\0';
        if (!tag_valid(colon + 1)) {
            why = "invalid tag";
            goto fail;
        }
        ref->tag = xstrdup(colon + 1);
    }
    if (!*rest) {
        why = "empty repository name";
        goto fail;
    }
    for (char *p = rest; *p; p++) {
        if (isupper((unsigned char)*p)) {
            why = "repository name must be lowercase";
            goto fail;
        }
    }
    for (char *c = rest;;) {
        char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (!path_component_valid(c, n)) {
            why = "invalid repository name";
            goto fail;
        }
        if (!e) break;
        c = e + 1;
    }
    if (strcmp(ref->registry, DOCKER_DOMAIN) == 0 && !strchr(rest, '/'))
        ref->repository = xasprintf("library/%s", rest);
    else
        ref->repository = xstrdup(rest);
    if (strlen(ref->registry) + 1 + strlen(ref->repository) > 255) {
        why = "repository name longer than 255 characters";
        goto fail;
    }
    if (!ref->tag && !ref->digest) ref->tag = xstrdup("latest");
    free(name);
    return 0;
fail:
    free(name);
    image_ref_free(ref);
    return err_set(err, "invalid image reference \"%s\": %s", text, why);
}

char *image_ref_string(const image_ref_t *ref)
{
    if (ref->digest) return xasprintf("%s/%s@%s", ref->registry, ref->repository, ref->digest);
    return xasprintf("%s/%s:%s", ref->registry, ref->repository, ref->tag ? ref->tag : "latest");
}

const char *image_ref_endpoint(const image_ref_t *ref)
{
    return strcmp(ref->registry, DOCKER_DOMAIN) == 0 ? DOCKER_ENDPOINT : ref->registry;
}

int image_pull_policy_parse(const char *text, image_pull_policy_t *policy)
{
    if (!text) return -1;
    if (strcmp(text, "Always") == 0)
        *policy = IMAGE_PULL_ALWAYS;
    else if (strcmp(text, "IfNotPresent") == 0)
        *policy = IMAGE_PULL_IF_NOT_PRESENT;
    else if (strcmp(text, "Never") == 0)
        *policy = IMAGE_PULL_NEVER;
    else
        return -1;
    return 0;
}

image_pull_policy_t image_default_pull_policy(const image_ref_t *ref)
{
    if (ref->digest) return IMAGE_PULL_IF_NOT_PRESENT;
    if (!ref->tag || strcmp(ref->tag, "latest") == 0) return IMAGE_PULL_ALWAYS;
    return IMAGE_PULL_IF_NOT_PRESENT;
}

int image_format_parse(const char *text, image_format_t *format)
{
    if (!text) return -1;
    if (strcmp(text, "wasm") == 0 || strcmp(text, "wasm-artifact") == 0)
        *format = IMAGE_FORMAT_WASM_ARTIFACT;
    else if (strcmp(text, "wasm-to-oci") == 0)
        *format = IMAGE_FORMAT_WASM_TO_OCI;
    else if (strcmp(text, "oci-image") == 0)
        *format = IMAGE_FORMAT_OCI_IMAGE;
    else
        return -1;
    return 0;
}

const char *image_format_name(image_format_t format)
{
    switch (format) {
    case IMAGE_FORMAT_WASM_ARTIFACT:
        return "wasm-artifact";
    case IMAGE_FORMAT_WASM_TO_OCI:
        return "wasm-to-oci";
    case IMAGE_FORMAT_OCI_IMAGE:
        return "oci-image";
    }
    return "unknown";
}

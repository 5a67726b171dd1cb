/* manifest.c: reading manifests and indexes (see manifest.h).
 *
 * Parsing is strict where a mistake would run the wrong bytes (digests must
 * be sha256, sizes present) and lenient elsewhere (unknown fields, missing
 * optional mediaType), because registries and tools differ in what they
 * write. The document is parsed once into plain structs so that the
 * pulling code never touches JSON. */
#include "image/manifest.h"
#include "image/digest.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void desc_free(image_desc_t *d)
{
    free(d->media_type);
    free(d->os);
    free(d->arch);
    memset(d, 0, sizeof *d);
}

void image_manifest_free(image_manifest_t *m)
{
    if (!m) return;
    free(m->media_type);
    desc_free(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        desc_free(&m->layers[i]);
    for (size_t i = 0; i < m->n_manifests; i++)
        desc_free(&m->manifests[i]);
    free(m->layers);
    free(m->manifests);
    memset(m, 0, sizeof *m);
}

static int desc_parse(json_t *j, const char *what, image_desc_t *d, err_t *err)
{
    memset(d, 0, sizeof *d);
    if (!json_is_object(j)) return err_set(err, "%s is not an object", what);
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *dg = json_string_value(json_object_get(j, "digest"));
    json_t *size = json_object_get(j, "size");
    if (!dg) return err_set(err, "%s has no digest", what);
    if (!image_digest_valid(dg))
        return err_set(err, "%s has digest \"%s\": wasmlet verifies sha256 digests only", what, dg);
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return err_set(err, "%s has no valid size", what);
    d->media_type = xstrdup(mt ? mt : "");
    snprintf(d->digest, sizeof d->digest, "%s", dg);
    d->size = json_integer_value(size);
    json_t *platform = json_object_get(j, "platform");
    const char *os = json_string_value(json_object_get(platform, "os"));
    const char *arch = json_string_value(json_object_get(platform, "architecture"));
    d->os = os ? xstrdup(os) : NULL;
    d->arch = arch ? xstrdup(arch) : NULL;
    return 0;
}

static bool known_type(const char *t)
{
    return strcmp(t, MT_OCI_MANIFEST) == 0 || strcmp(t, MT_OCI_INDEX) == 0 ||
           strcmp(t, MT_DOCKER_MANIFEST) == 0 || strcmp(t, MT_DOCKER_LIST) == 0;
}

static bool generic_type(const char *t)
{
    return !t || !*t || strcmp(t, "application/json") == 0 ||
           strcmp(t, "application/octet-stream") == 0 || strcmp(t, "text/plain") == 0;
}

int image_manifest_parse(const char *data, size_t len, const char *content_type,
                         image_manifest_t *out, err_t *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    const char *doc_type = json_string_value(json_object_get(root, "mediaType"));
    const char *type = content_type;
    if (generic_type(type)) type = doc_type;
    if (generic_type(type) && json_is_object(root)) {
        if (json_is_array(json_object_get(root, "manifests")))
            type = MT_OCI_INDEX;
        else if (json_object_get(root, "config") && json_is_array(json_object_get(root, "layers")))
            type = MT_OCI_MANIFEST;
    }
    if (!type || !known_type(type)) {
        err_set(err,
                "manifest media type %s is not a wasm module: wasmlet reads OCI and Docker v2 "
                "image manifests and indexes",
                type && *type ? type : "(none)");
        goto fail;
    }
    if (!json_is_object(root)) {
        err_set(err, "%s: invalid JSON: %s", type, root ? "not an object" : jerr.text);
        goto fail;
    }
    json_t *sv = json_object_get(root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        err_set(err, "%s: schemaVersion is not 2", type);
        goto fail;
    }
    out->media_type = xstrdup(type);
    out->is_index = strcmp(type, MT_OCI_INDEX) == 0 || strcmp(type, MT_DOCKER_LIST) == 0;
    if (out->is_index) {
        json_t *ms = json_object_get(root, "manifests");
        if (!json_is_array(ms)) {
            err_set(err, "%s: no manifests array", type);
            goto fail;
        }
        out->manifests = xcalloc(json_array_size(ms), sizeof *out->manifests);
        size_t i;
        json_t *e;
        json_array_foreach(ms, i, e)
        {
            char what[64];
            snprintf(what, sizeof what, "index entry %zu", i);
            if (desc_parse(e, what, &out->manifests[i], err) == -1) goto fail;
            out->n_manifests = i + 1;
        }
    } else {
        if (desc_parse(json_object_get(root, "config"), "config", &out->config, err) == -1)
            goto fail;
        json_t *ls = json_object_get(root, "layers");
        if (!json_is_array(ls)) {
            err_set(err, "%s: no layers array", type);
            goto fail;
        }
        out->layers = xcalloc(json_array_size(ls), sizeof *out->layers);
        size_t i;
        json_t *e;
        json_array_foreach(ls, i, e)
        {
            char what[64];
            snprintf(what, sizeof what, "layer %zu", i);
            if (desc_parse(e, what, &out->layers[i], err) == -1) goto fail;
            out->n_layers = i + 1;
        }
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    image_manifest_free(out);
    return -1;
}

static bool wasm_platform(const image_desc_t *d)
{
    if (!d->os || !d->arch) return false;
    /* wasip2: a component; the node runs both kinds. */
    bool os =
        strcmp(d->os, "wasip1") == 0 || strcmp(d->os, "wasip2") == 0 || strcmp(d->os, "wasi") == 0;
    bool arch = strcmp(d->arch, "wasm") == 0 || strcmp(d->arch, "wasm32") == 0;
    return os && arch;
}

int image_manifest_select(const image_manifest_t *index, const image_desc_t **out, err_t *err)
{
    const image_desc_t *only = NULL;
    size_t candidates = 0;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const image_desc_t *d = &index->manifests[i];
        if (wasm_platform(d)) {
            *out = d;
            return 0;
        }
        /* Attestations and signatures ride along as "unknown/unknown". */
        if (d->os && strcmp(d->os, "unknown") == 0) continue;
        only = d;
        candidates++;
    }
    if (candidates == 1) {
        *out = only;
        return 0;
    }
    strbuf_t list = STRBUF_INIT;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const image_desc_t *d = &index->manifests[i];
        strbuf_printf(&list, "%s%s/%s", i ? ", " : "", d->os ? d->os : "?",
                      d->arch ? d->arch : "?");
    }
    err_set(
        err,
        "image index has no wasm entry (platform os wasip1, wasip2 or wasi, architecture wasm or "
        "wasm32); it has %s",
        index->n_manifests ? strbuf_str(&list) : "no entries");
    strbuf_free(&list);
    return -1;
}

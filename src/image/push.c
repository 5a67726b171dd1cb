/* push.c: publishing a module (`wasmlet push`).
 *
 * Three layouts, so that tests and demos can make every kind of image that
 * image_pull() reads without other tools:
 *   wasm-artifact  the CNCF TAG Runtime wasm OCI artifact: config
 *                  application/vnd.wasm.config.v0+json holding {created,
 *                  architecture "wasm", os "wasip1" (a core module) or
 *                  "wasip2" (a component, with component: {exports,
 *                  imports}, read from the binary by wasm_info.c),
 *                  layerDigests}, and the module as one application/wasm
 *                  layer. The default.
 *   wasm-to-oci    config application/vnd.wasm.config.v1+json ("{}"), layer
 *                  application/vnd.wasm.content.layer.v1+wasm.
 *   oci-image      an ordinary OCI image: one tar+gzip layer holding
 *                  /app.wasm, and a config whose Entrypoint is ["/app.wasm"].
 * Each is an OCI image manifest. Blobs are uploaded whole (POST for an
 * upload location, PUT with ?digest=) unless the registry has them already;
 * the manifest goes last, so a reader never sees a manifest whose blobs are
 * missing. */
#include "image/digest.h"
#include "image/manifest.h"
#include "image/registry.h"
#include "image/tar.h"
#include "image/wasm_info.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CREDS_MAX 16

typedef struct blob {
    const char *media_type;
    char *data;
    size_t len;
    char digest[IMAGE_DIGEST_MAX];
} blob_t;

static void blob_set(blob_t *b, const char *media_type, char *data, size_t len)
{
    b->media_type = media_type;
    b->data = data;
    b->len = len;
    image_sha256_buf(data, len, b->digest);
}

static json_t *descriptor(const blob_t *b)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", b->media_type, "digest", b->digest, "size",
                     (json_int_t)b->len);
}

static char *gzip(const char *data, size_t len, size_t *out_len, err_t *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper rather than zlib's own. */
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        err_set(err, "gzip: cannot initialise");
        return NULL;
    }
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    char *out = xmalloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        err_set(err, "gzip: %s", z.msg ? z.msg : "deflate failed");
        return NULL;
    }
    return out;
}

static char *dump(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    *len = strlen(s);
    return s;
}

static json_t *names_json(const strvec_t *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->len; i++)
        json_array_append_new(a, json_string(v->items[i]));
    return a;
}

/* Builds config and layer for the format; layer_annotations may be set.
 * The config's os is wasip2 for a component, wasip1 for a core module. */
static int build(image_format_t format, const char *wasm_path, char *wasm, size_t wasm_len,
                 blob_t *config, blob_t *layer, json_t **layer_annotations, err_t *err)
{
    char created[40];
    time_format_rfc3339(created, sizeof created, time_now_ns());
    size_t len;
    char *text;
    image_wasm_info_t info;
    if (image_wasm_describe((const uint8_t *)wasm, wasm_len, &info, err) == -1) {
        free(wasm);
        return err_prefix(err, "%s", wasm_path);
    }
    const char *os = info.component ? "wasip2" : "wasip1";
    switch (format) {
    case IMAGE_FORMAT_WASM_ARTIFACT: {
        blob_set(layer, MT_WASM_LAYER, wasm, wasm_len);
        json_t *cfg = json_pack("{s:s, s:s, s:s, s:[s]}", "created", created, "architecture",
                                "wasm", "os", os, "layerDigests", layer->digest);
        /* The spec's component field (required with wasip2): what the
         * component imports and exports, and the world it targets when its
         * exports name a standard one. */
        if (info.component) {
            json_t *component = json_pack("{s:o, s:o}", "exports", names_json(&info.exports),
                                          "imports", names_json(&info.imports));
            char *target = image_wasm_target(&info);
            if (target) json_object_set_new(component, "target", json_string(target));
            free(target);
            json_object_set_new(cfg, "component", component);
        }
        image_wasm_info_free(&info);
        text = dump(cfg, &len);
        blob_set(config, MT_WASM_CONFIG_V0, text, len);
        return 0;
    }
    case IMAGE_FORMAT_WASM_TO_OCI: {
        blob_set(layer, MT_WASM_TO_OCI_LAYER, wasm, wasm_len);
        const char *base = strrchr(wasm_path, '/');
        *layer_annotations =
            json_pack("{s:s}", "org.opencontainers.image.title", base ? base + 1 : wasm_path);
        blob_set(config, MT_WASM_TO_OCI_CONFIG, xstrdup("{}"), 2);
        image_wasm_info_free(&info);
        return 0;
    }
    case IMAGE_FORMAT_OCI_IMAGE: {
        image_wasm_info_free(&info);
        strbuf_t tar = STRBUF_INIT;
        image_tar_write_file(&tar, "app.wasm", wasm, wasm_len, 0755, time_now_ns() / NS_PER_SEC);
        image_tar_write_end(&tar);
        char diff_id[IMAGE_DIGEST_MAX];
        image_sha256_buf(tar.data, tar.len, diff_id);
        size_t gz_len;
        char *gz = gzip(tar.data, tar.len, &gz_len, err);
        strbuf_free(&tar);
        free(wasm);
        if (!gz) return -1;
        blob_set(layer, MT_OCI_LAYER_GZIP, gz, gz_len);
        text = dump(json_pack("{s:s, s:s, s:s, s:{s:[s]}, s:{s:s, s:[s]}, s:[{s:s, s:s}]}",
                              "created", created, "architecture", "wasm", "os", os, "config",
                              "Entrypoint", "/app.wasm", "rootfs", "type", "layers", "diff_ids",
                              diff_id, "history", "created", created, "created_by", "wasmlet push"),
                    &len);
        blob_set(config, MT_OCI_CONFIG, text, len);
        return 0;
    }
    }
    image_wasm_info_free(&info);
    free(wasm);
    return err_set(err, "unknown image format %d", (int)format);
}

static int upload(image_registry_t *r, const blob_t *b, err_t *err)
{
    bool exists = false;
    if (image_registry_blob_exists(r, b->digest, &exists, err) == -1) return -1;
    if (exists) return 0;
    return image_registry_upload_blob(r, b->digest, b->data, b->len, err);
}

int image_push(const char *wasm_path, const char *text, const image_push_options_t *opts,
               const image_auth_t *auth, char manifest_digest[IMAGE_DIGEST_MAX], err_t *err)
{
    image_format_t format = opts ? opts->format : IMAGE_FORMAT_WASM_ARTIFACT;
    image_ref_t ref;
    if (image_ref_parse(text, &ref, err) == -1) return -1;
    blob_t config = {0}, layer = {0};
    json_t *annotations = NULL;
    char *manifest = NULL;
    int rc = -1;
    char *wasm;
    size_t wasm_len;
    if (fs_read_all(wasm_path, &wasm, &wasm_len, err) == -1) goto out;
    if (build(format, wasm_path, wasm, wasm_len, &config, &layer, &annotations, err) == -1)
        goto out;

    json_t *ldesc = descriptor(&layer);
    if (annotations) json_object_set_new(ldesc, "annotations", annotations);
    size_t mlen;
    manifest = dump(json_pack("{s:i, s:s, s:o, s:[o]}", "schemaVersion", 2, "mediaType",
                              MT_OCI_MANIFEST, "config", descriptor(&config), "layers", ldesc),
                    &mlen);
    char digest[IMAGE_DIGEST_MAX];
    image_sha256_buf(manifest, mlen, digest);
    if (ref.digest && strcmp(ref.digest, digest) != 0) {
        err_set(err, "push %s: the manifest's digest is %s", text, digest);
        goto out;
    }

    const image_cred_t *creds[CREDS_MAX];
    size_t n = image_auth_match(auth, ref.registry, ref.repository, creds, CREDS_MAX);
    size_t attempts = n ? n : 1;
    for (size_t i = 0; i < attempts; i++) {
        image_registry_options_t o = {.endpoint = image_ref_endpoint(&ref),
                                      .repository = ref.repository,
                                      .cred = n ? creds[i] : NULL,
                                      .insecure = opts ? opts->insecure_registries : NULL,
                                      .ca_file = opts ? opts->ca_file : NULL,
                                      .push = true};
        image_registry_t *r = image_registry_open(&o);
        if (!r) {
            err_set(err, "cannot create an HTTP client");
            break;
        }
        rc = upload(r, &config, err);
        if (rc == 0) rc = upload(r, &layer, err);
        if (rc == 0)
            rc = image_registry_put_manifest(r, ref.digest ? ref.digest : ref.tag, MT_OCI_MANIFEST,
                                             manifest, mlen, err);
        long status = image_registry_last_status(r);
        image_registry_close(r);
        if (rc == 0 || (status != 401 && status != 403)) break;
    }
    if (rc == -1) {
        char *key = image_ref_string(&ref);
        err_prefix(err, "push %s", key);
        free(key);
        goto out;
    }
    if (manifest_digest) snprintf(manifest_digest, IMAGE_DIGEST_MAX, "%s", digest);
out:
    free(config.data);
    free(layer.data);
    free(manifest);
    image_ref_free(&ref);
    return rc;
}

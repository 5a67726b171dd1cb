/* fuzz_oci_manifest.c: OCI and Docker v2 image manifests and indexes
 * (image/manifest.h) as a registry sends them, and the choice of an index's
 * wasm entry. The first byte picks the Content-Type the registry claims
 * (the generic ones make the parser guess from the document); the rest is
 * the document. */
#include "harness.h"
#include "image/manifest.h"

#include <stdlib.h>
#include <string.h>

static const char *const content_types[] = {
    NULL,
    "",
    "application/json",
    "text/plain",
    "application/octet-stream",
    MT_OCI_MANIFEST,
    MT_OCI_INDEX,
    MT_DOCKER_MANIFEST,
    MT_DOCKER_LIST,
    MT_OCI_CONFIG,
    MT_WASM_CONFIG_V0,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    const char *ct = content_types[fuzz_byte(&in) % (sizeof content_types / sizeof *content_types)];
    image_manifest_t m;
    err_t err;
    if (image_manifest_parse((const char *)in.p, in.n, ct, &m, &err) != 0) {
        /* A failed parse leaves nothing to free. */
        if (m.media_type || m.layers || m.manifests || m.n_layers || m.n_manifests) abort();
        return 0;
    }
    if (!m.media_type) abort();
    if (m.is_index) {
        const image_desc_t *d = NULL;
        if (image_manifest_select(&m, &d, &err) == 0 &&
            (d < m.manifests || d >= m.manifests + m.n_manifests))
            abort();
    } else {
        for (size_t i = 0; i < m.n_layers; i++)
            if (m.layers[i].size < 0 || !m.layers[i].media_type) abort();
    }
    image_manifest_free(&m);
    return 0;
}

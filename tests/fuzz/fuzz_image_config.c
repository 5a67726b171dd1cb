/* fuzz_image_config.c: an ordinary image's config blob (OCI or Docker image
 * config JSON) as a registry serves it, read for the .wasm its Entrypoint
 * or Cmd names (image/manifest.h: image_config_entrypoint). The first byte
 * picks the config media type the manifest claims; the rest is the config.
 * What it accepts is an absolute path ending in .wasm. */
#include "harness.h"
#include "image/manifest.h"

#include <stdlib.h>
#include <string.h>

static const char *const config_types[] = {MT_OCI_CONFIG, MT_DOCKER_CONFIG, MT_WASM_CONFIG_V0,
                                           MT_WASM_TO_OCI_CONFIG};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    image_desc_t layer = {.media_type = (char *)MT_OCI_LAYER_GZIP, .size = 1};
    image_manifest_t m = {
        .media_type = (char *)MT_OCI_MANIFEST,
        .config = {.media_type = (char *)
                       config_types[fuzz_byte(&in) % (sizeof config_types / sizeof *config_types)]},
        .layers = &layer,
        .n_layers = 1,
    };
    err_t err;
    char *path = image_config_entrypoint(&m, (const char *)in.p, in.n, &err);
    if (!path) {
        if (!err.msg[0]) abort();
        return 0;
    }
    size_t n = strlen(path);
    if (path[0] != '/' || n < 5 || strcmp(path + n - 5, ".wasm") != 0) abort();
    free(path);
    return 0;
}

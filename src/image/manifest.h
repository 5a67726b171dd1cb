/* manifest.h: OCI and Docker v2 manifests and indexes, and the media types
 * that say where a wasm module is (internal to image/). */
#ifndef WASMLET_IMAGE_MANIFEST_H
#define WASMLET_IMAGE_MANIFEST_H

#include "image/image.h"

#include <stddef.h>
#include <stdint.h>

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* CNCF TAG Runtime wasm OCI artifact */
#define MT_WASM_CONFIG_V0 "application/vnd.wasm.config.v0+json"
#define MT_WASM_LAYER "application/wasm"
/* wasm-to-oci */
#define MT_WASM_TO_OCI_CONFIG "application/vnd.wasm.config.v1+json"
#define MT_WASM_TO_OCI_LAYER "application/vnd.wasm.content.layer.v1+wasm"

typedef struct image_desc {
    char *media_type;
    char digest[IMAGE_DIGEST_MAX];
    int64_t size;
    char *os;   /* index entries: platform.os, or NULL */
    char *arch; /* index entries: platform.architecture, or NULL */
} image_desc_t;

typedef struct image_manifest {
    bool is_index;
    char *media_type;     /* resolved media type of the document */
    image_desc_t config;  /* image manifests */
    image_desc_t *layers; /* image manifests */
    size_t n_layers;
    image_desc_t *manifests; /* indexes */
    size_t n_manifests;
} image_manifest_t;

/* Parses a manifest or index. The media type is the Content-Type the
 * registry sent, or the document's mediaType, or (for registries that say
 * application/json) what the document's shape implies. Any other type is
 * refused: "manifest media type X is not a wasm module: ...". */
int image_manifest_parse(const char *data, size_t len, const char *content_type,
                         image_manifest_t *out, err_t *err);
void image_manifest_free(image_manifest_t *m);

/* The index entry to run: platform os wasip1, wasip2 or wasi with architecture wasm
 * or wasm32, else the only entry that is not an attestation. */
int image_manifest_select(const image_manifest_t *index, const image_desc_t **out, err_t *err);

/* The .wasm an ordinary image's config (OCI or Docker image config JSON)
 * names by its Entrypoint, else its Cmd, as an absolute path (WorkingDir
 * when relative); NULL with err set ("... is not a wasm module: ...", m
 * names the manifest) when it names no .wasm file. The caller frees. */
char *image_config_entrypoint(const image_manifest_t *m, const char *config, size_t len,
                              err_t *err);

#endif

/* wasm_info.h: what a wasm binary is, for the CNCF wasm artifact config of
 * `wasmlet push` (its "os" and "component" fields): a core module or a
 * component, and a component's top-level import and export names, read
 * from the binary without compiling it. */
#ifndef WASMLET_IMAGE_WASM_INFO_H
#define WASMLET_IMAGE_WASM_INFO_H

#include "util/err.h"
#include "util/strvec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct image_wasm_info {
    bool component;   /* false: a core module (imports and exports left empty) */
    strvec_t imports; /* "wasi:cli/environment@0.2.3", ... in binary order */
    strvec_t exports; /* "wasi:cli/run@0.2.3", ... */
} image_wasm_info_t;

/* Fills info from the binary; an error (naming the byte offset) when it is
 * not WebAssembly or a component section does not parse. */
int image_wasm_describe(const uint8_t *wasm, size_t len, image_wasm_info_t *info, err_t *err);
void image_wasm_info_free(image_wasm_info_t *info);

/* The standard world a component's exports say it targets, for the config's
 * component.target: "wasi:http/proxy@V" when it exports
 * wasi:http/incoming-handler@V, else "wasi:cli/command@V" when it exports
 * wasi:cli/run@V; NULL (no target written) for anything else. The binary
 * does not name its world, so a component exporting more is still called
 * by the world its entry point belongs to. Returns a new string. */
char *image_wasm_target(const image_wasm_info_t *info);

#endif

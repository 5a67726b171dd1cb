/* fuzz_wasm_info.c: the component reader of `wasmlet push`
 * (image/wasm_info.h), which reads the import and export names of a
 * binary the user hands it. The input is the binary. A reader that
 * succeeds gives names that are non-empty C strings, and none for a core
 * module; one that fails keeps nothing. */
#include "harness.h"
#include "image/wasm_info.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image_wasm_info_t info;
    err_t err;
    if (image_wasm_describe(data, size, &info, &err) == -1) {
        if (info.imports.len || info.exports.len || !err.msg[0]) abort();
        return 0;
    }
    if (!info.component && (info.imports.len || info.exports.len)) abort();
    const strvec_t *vs[] = {&info.imports, &info.exports};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < vs[k]->len; i++)
            if (!vs[k]->items[i][0] || strlen(vs[k]->items[i]) >= size) abort();
    image_wasm_info_free(&info);
    return 0;
}

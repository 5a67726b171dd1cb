/* fuzz_www_authenticate.c: the WWW-Authenticate challenges of a registry's
 * 401 (image/registry.h), one header value per input (a NUL ends it, as
 * curl hands headers over as C strings). The challenge kept must be one
 * wasmlet can answer: Bearer with a realm, or Basic. */
#include "harness.h"
#include "image/registry.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    char *header = fuzz_rest(&in, NULL);
    image_registry_challenge_t c;
    err_t err;
    if (image_registry_challenge_parse(header, &c, &err) == 0) {
        if (!c.scheme) abort();
        bool bearer = strcmp(c.scheme, "bearer") == 0;
        if (!bearer && strcmp(c.scheme, "basic") != 0) abort();
        if (bearer && !c.realm) abort();
        image_registry_challenge_free(&c);
    } else if (c.scheme || c.realm || c.service || c.scope || !err.msg[0]) {
        abort();
    }
    free(header);
    return 0;
}

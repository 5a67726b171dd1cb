/* fuzz_registry_token.c: a token endpoint's answer (image/registry.h) as a
 * registry's auth server sends it after a Bearer challenge: JSON with
 * "token" or "access_token". The input is the body. What it accepts
 * becomes an Authorization header line, so it must never hold a line
 * break. */
#include "harness.h"
#include "image/registry.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = NULL;
    err_t err;
    if (image_registry_token_parse((const char *)data, size, &token, &err) != 0) {
        if (token || !err.msg[0]) abort();
        return 0;
    }
    if (!token || !token[0] || strpbrk(token, "\r\n")) abort();
    free(token);
    return 0;
}

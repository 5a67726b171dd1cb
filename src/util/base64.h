/* base64.h: standard base64 (RFC 4648 section 4, with padding), the
 * encoding Kubernetes uses for every []byte field: kubeconfig *-data keys,
 * Secret data, CSR requests and issued certificates. */
#ifndef WASMLET_UTIL_BASE64_H
#define WASMLET_UTIL_BASE64_H

#include <stddef.h>

/* Encodes len bytes into a new NUL-terminated string; the caller frees. */
char *base64_encode(const void *data, size_t len);
/* Decodes text (whitespace and line breaks are skipped, padding optional)
 * into a new buffer that is also NUL-terminated for convenience; *out_len
 * gets the decoded size. Returns 0, or -1 when the text is not base64. */
int base64_decode(const char *text, size_t text_len, unsigned char **out, size_t *out_len);

#endif

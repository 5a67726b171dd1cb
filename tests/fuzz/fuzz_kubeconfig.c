/* fuzz_kubeconfig.c: kubeconfig files (kube/kubeconfig.h), resolved to one
 * context as `wasmlet node --kubeconfig` does.
 *
 * Byte 0: bit 0 set, the input goes on with a context name up to '\n'
 * (else the current-context is used). The rest is the kubeconfig, written
 * to the scratch directory next to the files a kubeconfig may name by
 * relative path: ca.crt, client.crt, client.key and token. (A fuzzed
 * absolute path is read too, as wasmlet would read it; a kubeconfig is the
 * operator's file.) */
#include "harness.h"
#include "kube/kubeconfig.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    static const char key[] = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    free(fuzz_write("ca.crt", pem, strlen(pem)));
    free(fuzz_write("client.crt", pem, strlen(pem)));
    free(fuzz_write("client.key", key, strlen(key)));
    free(fuzz_write("token", "abc.def.ghi\n", 12));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    char *context = NULL;
    if (fuzz_byte(&in) & 1) context = fuzz_take_until(&in, "\n", NULL);
    size_t len;
    char *text = fuzz_rest(&in, &len);
    char *path = fuzz_write("kubeconfig", text, len);
    kube_kubeconfig_t *cfg = NULL;
    err_t err;
    if (kube_kubeconfig_load(path, context, &cfg, &err) == 0) {
        if (!cfg || !cfg->server || !cfg->context) abort();
        size_t n = strlen(cfg->server);
        if (n && cfg->server[n - 1] == '/') abort(); /* documented: never a trailing '/' */
        kube_kubeconfig_free(cfg);
    } else if (cfg || !err.msg[0]) {
        abort();
    }
    free(path);
    free(text);
    free(context);
    return 0;
}

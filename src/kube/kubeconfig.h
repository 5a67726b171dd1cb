/* kubeconfig.h: where the API server is and how wasmlet proves who it is.
 *
 * A kube_kubeconfig_t is the resolved form of one kubeconfig context: the
 * server URL and every credential already read into memory as PEM or text,
 * so the HTTP client never touches the file system for TLS material. It comes
 * from a kubeconfig file (kube_kubeconfig_load), or is built directly from
 * the PEM that TLS bootstrap produced (kube_kubeconfig_new). */
#ifndef WASMLET_KUBE_KUBECONFIG_H
#define WASMLET_KUBE_KUBECONFIG_H

#include "util/err.h"

#include <stdbool.h>

typedef struct kube_kubeconfig {
    char *server;     /* "https://10.0.0.1:6443", never with a trailing '/' */
    char *ca_pem;     /* cluster CA bundle; NULL: the system trust store */
    char *cert_pem;   /* client certificate chain, or NULL */
    char *key_pem;    /* its private key, or NULL */
    char *token;      /* bearer token, or NULL */
    char *token_file; /* absolute path of a token the client re-reads, or NULL */
    bool insecure_skip_tls_verify;
    char *context;   /* the context name used ("" when built in memory) */
    char *namespace; /* the context's namespace, or NULL */
} kube_kubeconfig_t;

/* Reads the kubeconfig at path and resolves the named context, or the
 * current-context when context is NULL. Files named by the chosen cluster
 * and user (certificate-authority, client-certificate, client-key) are read
 * now; relative paths resolve against the kubeconfig's own directory;
 * *-data fields are base64-decoded. tokenFile is read now and its path kept
 * so the client can pick up a rotated token. Exec and auth-provider plugins
 * are not supported and are reported when they are the only credential. */
int kube_kubeconfig_load(const char *path, const char *context, kube_kubeconfig_t **out,
                         err_t *err);

/* An in-memory config (after TLS bootstrap, or in tests). Every argument
 * but server may be NULL; strings are copied. */
kube_kubeconfig_t *kube_kubeconfig_new(const char *server, const char *ca_pem, const char *cert_pem,
                                       const char *key_pem, const char *token);

void kube_kubeconfig_free(kube_kubeconfig_t *cfg);

/* Writes the node's own kubeconfig (mode 0600, atomically): one cluster
 * with the CA embedded as certificate-authority-data (omitted when ca_pem is
 * NULL), one user whose client-certificate and client-key are file paths
 * (so certificate rotation only has to replace those files), and a context
 * "default" selecting both. key_path may equal cert_path (one PEM holding
 * both, as the rotated "current" file does). */
int kube_kubeconfig_write(const char *path, const char *server, const char *ca_pem,
                          const char *cert_path, const char *key_path, err_t *err);

#endif

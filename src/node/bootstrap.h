/* bootstrap.h: the node's identity: its client certificate towards the API
 * server and its serving certificate for the HTTPS API.
 *
 * Client. With --kubeconfig alone, the node uses those credentials as they
 * are. With --bootstrap-kubeconfig, it proves itself with the bootstrap
 * token once: it makes a key, files a CertificateSigningRequest for
 * kubernetes.io/kube-apiserver-client-kubelet (CN system:node:<name>, O
 * system:nodes), waits for it to be approved and signed, and keeps the
 * certificate and key in <data>/pki/kubelet-client-current.pem and a
 * kubeconfig pointing at that file (at --kubeconfig, or <data>/kubeconfig),
 * which later starts reuse while it is valid. It then renews the
 * certificate before it expires, at a random point between 70 % and 90 %
 * of its lifetime, with a CSR filed under its own node identity; the
 * running client switches credentials without dropping a request or a
 * watch, and the file is replaced atomically for the next start. A
 * certificate that expired while the node was down is replaced through the
 * bootstrap token again.
 *
 * Serving. Unless --tls-cert-file is given, the node serves HTTPS with
 * <data>/pki/kubelet-server-current.pem when a valid one exists, otherwise
 * with a self-signed certificate made at start, and files a
 * kubernetes.io/kubelet-serving CSR naming its IP and host name. Kubernetes
 * never approves those automatically; once an operator does, the signed
 * certificate replaces the self-signed one in the running server. It is
 * renewed like the client certificate.
 *
 * Renewals run on a thread of their own ("identity"), so a slow or absent
 * API server never delays the node's main loop. For tests,
 * WASMLET_CERT_ROTATE_AFTER_SECONDS renews each certificate that many
 * seconds after it was obtained, and WASMLET_CERT_EXPIRATION_SECONDS asks
 * the signer for that lifetime (spec.expirationSeconds, at least 600). */
#ifndef WASMLET_NODE_BOOTSTRAP_H
#define WASMLET_NODE_BOOTSTRAP_H

#include "kube/client.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bootstrap bootstrap_t;

/* Builds the node's API client, doing TLS bootstrap when needed. On success
 * *boot is the node's identity manager (free it with bootstrap_free, after
 * the server and before the client). */
int bootstrap_client(const char *kubeconfig, const char *bootstrap_kubeconfig, const char *data_dir,
                     const char *node_name, kube_client_t **client, bootstrap_t **boot, err_t *err);

/* The API server's CA (PEM), or NULL when the system trust store is used.
 * The node's default client CA for its HTTPS API: the API server's own
 * client certificate towards kubelets is issued under the cluster CA. */
const char *bootstrap_ca_pem(const bootstrap_t *boot);

/* Called with a new serving certificate and key (on the identity thread). */
typedef void (*bootstrap_cert_fn)(void *ctx, const char *cert_pem, const char *key_pem);

/* The serving certificate to start the HTTPS server with (a valid one from
 * an earlier run, or a new self-signed one for ips and dns names);
 * the caller frees both. */
int bootstrap_serving_cert(bootstrap_t *boot, const char *const *ips, size_t nips,
                           const char *const *dns, size_t ndns, char **cert_pem, char **key_pem,
                           err_t *err);
/* From now on, obtains a signed serving certificate (if the current one is
 * self-signed) and renews it, handing each new one to apply. */
void bootstrap_serving_manage(bootstrap_t *boot, bootstrap_cert_fn apply, void *ctx);

/* Stops renewals (the identity thread); no apply callback runs after it
 * returns. Idempotent; bootstrap_free calls it too. */
void bootstrap_stop(bootstrap_t *boot);

/* Nothing to do: renewals have their own thread. Kept so the node's main
 * loop may call it. */
void bootstrap_tick(bootstrap_t *boot);
void bootstrap_free(bootstrap_t *boot);

/* When to renew a certificate valid from not_before to not_after: at
 * 70 % + jitter * 20 % of its lifetime (jitter in [0, 1)). */
int64_t bootstrap_rotation_deadline(int64_t not_before_ns, int64_t not_after_ns, double jitter);

#endif

/* bootstrap.h: the node's identity towards the API server.
 *
 * With --kubeconfig, the node uses those credentials as they are. With
 * --bootstrap-kubeconfig, it proves itself with the bootstrap token once:
 * it makes a key, files a CertificateSigningRequest for
 * kubernetes.io/kube-apiserver-client-kubelet (system:node:<name>,
 * system:nodes), waits for it to be approved and signed, and keeps the
 * certificate and a kubeconfig in <data>/pki, which later starts reuse.
 * bootstrap_tick, called about every 100 ms by the node's main loop,
 * rotates the client certificate when 70-90% of its lifetime has passed
 * (the running client switches credentials, no watch is dropped). */
#ifndef WASMLET_NODE_BOOTSTRAP_H
#define WASMLET_NODE_BOOTSTRAP_H

#include "kube/client.h"
#include "util/err.h"

typedef struct bootstrap bootstrap_t;

/* Builds the node's API client. *boot is NULL when no rotation applies
 * (plain --kubeconfig). */
int bootstrap_client(const char *kubeconfig, const char *bootstrap_kubeconfig, const char *data_dir,
                     const char *node_name, kube_client_t **client, bootstrap_t **boot, err_t *err);
void bootstrap_tick(bootstrap_t *boot);
void bootstrap_free(bootstrap_t *boot);

#endif

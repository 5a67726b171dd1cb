/* bootstrap.c: the node's API credentials (see bootstrap.h). */
#include "node/bootstrap.h"
#include "kube/kubeconfig.h"
#include "util/xalloc.h"

#include <stdlib.h>

struct bootstrap {
    int unused;
};

int bootstrap_client(const char *kubeconfig, const char *bootstrap_kubeconfig, const char *data_dir,
                     const char *node_name, kube_client_t **client, bootstrap_t **boot, err_t *err)
{
    (void)data_dir;
    (void)node_name;
    *boot = NULL;
    if (!kubeconfig)
        return err_set(err, "--bootstrap-kubeconfig %s: TLS bootstrap needs --kubeconfig for now",
                       bootstrap_kubeconfig);
    kube_kubeconfig_t *cfg = NULL;
    if (kube_kubeconfig_load(kubeconfig, NULL, &cfg, err) == -1) return -1;
    int rc = kube_client_new(cfg, client, err);
    kube_kubeconfig_free(cfg);
    return rc;
}

void bootstrap_tick(bootstrap_t *boot)
{
    (void)boot;
}

void bootstrap_free(bootstrap_t *boot)
{
    free(boot);
}

/* env.h: a container's environment and argv, as Kubernetes defines them. */
#ifndef WASMLET_POD_ENV_H
#define WASMLET_POD_ENV_H

#include "kube/pod_spec.h"
#include "pod/host.h"
#include "util/strvec.h"

/* Expands $(NAME) references in text with lookup; $$ is a literal $, and a
 * reference to an undefined name is kept as written. The caller frees. */
typedef const char *(*env_lookup_fn)(void *ctx, const char *name, size_t len);
char *pod_env_expand(const char *text, env_lookup_fn lookup, void *ctx);

/* Builds env ("NAME=value", in definition order, later definitions
 * replacing earlier ones in place) and argv for container c. A source that
 * cannot be resolved fails with a message fit for
 * CreateContainerConfigError, naming the object and key. */
int pod_env_build(const pod_host_t *host, const podspec_t *pod, const podspec_container_t *c,
                  strvec_t *env, strvec_t *argv, err_t *err);
/* Warms (host->warm) every ConfigMap and Secret container c's env and
 * envFrom read, ahead of pod_env_build. */
void pod_env_warm(const pod_host_t *host, const podspec_t *pod, const podspec_container_t *c);

#endif

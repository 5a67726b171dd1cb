/* cni.h: the runtime side of the CNI protocol (spec 1.0): finding the
 * node's network config, and running a config list's plugins for ADD,
 * CHECK and DEL as libcni does. Used by sandbox.c; declared apart so the
 * tests can drive it with plugins of their own. */
#ifndef WASMLET_NET_CNI_H
#define WASMLET_NET_CNI_H

#include "net/net.h"
#include "util/err.h"

#include <jansson.h>

/* The CNI version wasmlet speaks and writes (Debian 12's plugins stop at
 * 1.0.0). */
#define CNI_VERSION "1.0.0"
#define CNI_DEFAULT_TIMEOUT_MS 30000

/* Loads the first valid network config of conf_dir in name order (*.conf,
 * *.conflist, *.json, as libcni), a single .conf turned into a list of one.
 * Invalid files are skipped and named in the error when none is valid.
 * *list gets {cniVersion, name, plugins[, disableCheck]}; *path (may be
 * NULL) the file's path. */
int cni_conf_load(const char *conf_dir, json_t **list, char **path, err_t *err);
/* Checks a config list (name, cniVersion, a non-empty plugins array whose
 * entries have a type without '/'). */
int cni_conf_validate(const json_t *list, err_t *err);

/* What one call of a list is about. */
typedef struct cni_attachment {
    const char *container_id;
    const char *netns; /* may be "" for DEL when the namespace is gone */
    const char *ifname;
    const char *cni_args;  /* CNI_ARGS */
    json_t *port_mappings; /* runtimeConfig.portMappings (array) or NULL */
} cni_attachment_t;

/* Finds plugin `type` in bin_dirs; *path gets its path (caller frees). */
int cni_find_plugin(const char *const *bin_dirs, const char *type, char **path, err_t *err);

/* Runs one plugin: the `command` (ADD, CHECK, DEL) with conf on stdin and
 * the CNI environment, killed after timeout_ms. *result (may be NULL) gets
 * the JSON it printed (NULL when it printed nothing). A failure names the
 * plugin, the command and the plugin's CNI error (msg, details, code) or,
 * when it printed none, its exit status and the end of its stderr. */
int cni_exec(const char *const *bin_dirs, const char *type, const char *command,
             const cni_attachment_t *att, const json_t *conf, int timeout_ms, json_t **result,
             err_t *err);

/* The stdin config of plugin i of the list for one call: the plugin's
 * object with the list's name and cniVersion, runtimeConfig for the
 * capabilities it declares, and prevResult when not NULL. */
json_t *cni_plugin_conf(const json_t *list, size_t i, const cni_attachment_t *att,
                        const json_t *prev_result);

/* ADD of every plugin in order, each given the previous one's result; the
 * last result goes to *result. On failure nothing is undone (the caller
 * DELs). */
int cni_list_add(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                 int timeout_ms, json_t **result, err_t *err);
/* CHECK of every plugin in order with prev_result (the ADD result). */
int cni_list_check(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                   const json_t *prev_result, int timeout_ms, err_t *err);
/* DEL of every plugin in reverse order, with prev_result when not NULL;
 * stops at the first failure, as libcni. */
int cni_list_del(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                 const json_t *prev_result, int timeout_ms, err_t *err);

#endif

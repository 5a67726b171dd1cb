/* static_pods.c: static pods, read from --pod-manifest-path.
 *
 * Every *.yaml, *.yml and *.json file of the directory holds Pods; each
 * runs on this node as the kubelet runs static pods: its name gets
 * "-<node name>" appended, its namespace defaults to "default", its uid is
 * a hash of its content, source and node (so an edited manifest is a new
 * pod, and an unchanged one is the same pod after a restart), and the
 * kubernetes.io/config.{source,hash,seen} annotations are set. The pod
 * manager runs them and keeps a mirror pod in the API server for each.
 * The directory is read again every 5 s; a file that fails to parse is
 * reported once and skipped, and its pods keep running as they were. */
#include "pod/static_pods.h"
#include "kube/manifest.h"
#include "util/diag.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct static_pods {
    pod_manager_t *m;
    char *dir;
    char *node;
    pthread_t thread;
    atomic_bool quit;
};

static bool manifest_name(const char *n)
{
    size_t len = strlen(n);
    if (n[0] == '.') return false;
    return (len > 5 && strcmp(n + len - 5, ".yaml") == 0) ||
           (len > 4 && strcmp(n + len - 4, ".yml") == 0) ||
           (len > 5 && strcmp(n + len - 5, ".json") == 0);
}

/* A UUID-shaped hash of the pod, its source and the node. */
static void pod_uid(json_t *pod, const char *source, const char *node, char out[37])
{
    char *text = json_dumps(pod, JSON_SORT_KEYS | JSON_COMPACT);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    EVP_DigestUpdate(ctx, text, strlen(text));
    EVP_DigestUpdate(ctx, source, strlen(source));
    EVP_DigestUpdate(ctx, node, strlen(node));
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    free(text);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
             md[13], md[14], md[15]);
}

json_t *static_pods_read(const char *dir, const char *node_name)
{
    json_t *pods = json_array();
    DIR *d = opendir(dir);
    if (!d) return pods;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!manifest_name(de->d_name)) continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        json_t *docs = NULL;
        err_t err;
        if (manifest_load_file(path, &docs, &err) == -1) {
            diag_warn("static pods: %s", err.msg);
            free(path);
            continue;
        }
        size_t i;
        json_t *doc;
        json_array_foreach(docs, i, doc)
        {
            const char *kind = json_string_value(json_object_get(doc, "kind"));
            json_t *meta = json_object_get(doc, "metadata");
            const char *name = json_string_value(json_object_get(meta, "name"));
            if (!kind || strcmp(kind, "Pod") != 0 || !name) {
                diag_warn("static pods: %s: document %zu is not a named Pod", path, i);
                continue;
            }
            json_t *pod = json_deep_copy(doc);
            meta = json_object_get(pod, "metadata");
            char uid[37];
            pod_uid(doc, path, node_name, uid);
            char *full = xasprintf("%s-%s", name, node_name);
            json_object_set_new(meta, "name", json_string(full));
            free(full);
            if (!json_is_string(json_object_get(meta, "namespace")))
                json_object_set_new(meta, "namespace", json_string("default"));
            json_object_set_new(meta, "uid", json_string(uid));
            json_t *ann = json_object_get(meta, "annotations");
            if (!json_is_object(ann)) {
                ann = json_object();
                json_object_set_new(meta, "annotations", ann);
            }
            char seen[40];
            json_object_set_new(ann, "kubernetes.io/config.source", json_string("file"));
            json_object_set_new(ann, "kubernetes.io/config.hash", json_string(uid));
            json_object_set_new(ann, "kubernetes.io/config.seen",
                                json_string(time_format_rfc3339(seen, sizeof seen, time_now_ns())));
            json_t *spec = json_object_get(pod, "spec");
            if (json_is_object(spec)) {
                json_object_set_new(spec, "nodeName", json_string(node_name));
                json_t *tol = json_object_get(spec, "tolerations");
                if (!json_is_array(tol)) {
                    tol = json_array();
                    json_object_set_new(spec, "tolerations", tol);
                }
                json_array_append_new(tol, json_pack("{s:s, s:s}", "key", "kubernetes.io/arch",
                                                     "operator", "Exists"));
            }
            json_array_append_new(pods, pod);
        }
        json_decref(docs);
        free(path);
    }
    closedir(d);
    return pods;
}

static void *static_main(void *arg)
{
    thread_set_name("static-pods");
    static_pods_t *sp = arg;
    while (!atomic_load(&sp->quit)) {
        json_t *pods = static_pods_read(sp->dir, sp->node);
        pod_manager_static_sync(sp->m, pods);
        json_decref(pods);
        for (int i = 0; i < 50 && !atomic_load(&sp->quit); i++)
            time_sleep_ms(100);
    }
    return NULL;
}

static_pods_t *static_pods_start(pod_manager_t *m, const char *dir, const char *node_name)
{
    static_pods_t *sp = xcalloc(1, sizeof *sp);
    sp->m = m;
    sp->dir = xstrdup(dir);
    sp->node = xstrdup(node_name);
    if (pthread_create(&sp->thread, NULL, static_main, sp) != 0) {
        free(sp->dir);
        free(sp->node);
        free(sp);
        return NULL;
    }
    return sp;
}

void static_pods_stop(static_pods_t *sp)
{
    if (!sp) return;
    atomic_store(&sp->quit, true);
    pthread_join(sp->thread, NULL);
    free(sp->dir);
    free(sp->node);
    free(sp);
}

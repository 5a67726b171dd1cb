/* sandbox.c: a pod's network sandbox, as the worker sees it (see net/net.h
 * for the sandbox itself and worker_priv.h for the fields).
 *
 * Owns: whether a pod gets a sandbox (not with hostNetwork, not in a mode
 * without networking, and not, when the node skips them, for a pod none of
 * whose containers declares a port and none of whose images is a component:
 * a component has sockets, so it always gets one); attaching it on the pod thread before
 * the volumes (a sandbox left on disk by an earlier wasmlet is CHECKed and
 * kept, one that fails its CHECK or was half made is destroyed and made
 * anew); its teardown (CNI DEL) after the last container ended, on every
 * path a pod ends by; the pod network's garbage collection of sandboxes on
 * disk whose pod no longer runs.
 *
 * A sandbox's id is the pod's UID: a restarted wasmlet finds the sandbox
 * of each pod it resumes without any index, and the collector tells the
 * live from the orphaned by the pod table alone.
 *
 * Threads: sandbox_attach and sandbox_teardown run on the pod thread (in
 * the host's namespace: CNI plugins inherit it), holding the pod network's
 * gc_lock shared; pod_net_gc runs on the manager's sync thread holding it
 * exclusively, and only when it can take it at once. Neither publishes a
 * status with gc_lock held (a status change takes the manager's lock,
 * which the collector takes inside gc_lock). */
#include "pod/worker.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- which pods get one ------------------------------------------------------------- */

static bool declares_ports(const podspec_container_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (json_array_size(json_object_get(c[i].raw, "ports")) > 0) return true;
    return false;
}

sandbox_need_t sandbox_wanted(const pod_host_t *host, const podspec_t *spec)
{
    if (!host->net || !spec->uid || !spec->uid[0]) return SANDBOX_NO;
    if (json_is_true(json_at(spec->raw, "spec", "hostNetwork"))) return SANDBOX_NO;
    if (!host->net->skip_portless) return SANDBOX_YES;
    if (declares_ports(spec->containers, spec->ncontainers) ||
        declares_ports(spec->init_containers, spec->ninit))
        return SANDBOX_YES;
    return SANDBOX_IF_COMPONENT;
}

/* Whether the image of container cr is a component, from the header of
 * its module file. The image is pulled now when it is not in the store
 * (with Always, as IfNotPresent: the container's own pull follows its
 * policy right after). A pull that fails here is the container's first
 * attempt: its Failed event goes out now, the container starts from that
 * failure (waiting, back-off), and the pod gets no sandbox for it. An image that
 * was pulled but cannot be read counts as a component: a sandbox too many
 * beats a component in the node's network. */
static bool image_is_component(pod_worker_t *w, const podspec_t *spec, crun_t *cr)
{
    const podspec_container_t *c = cr->spec;
    if (!w->host.pull) return true;
    podspec_container_t peek = *c;
    if (!peek.pull_policy || strcmp(peek.pull_policy, "Always") == 0)
        peek.pull_policy = "IfNotPresent";
    pod_pulled_t pulled = {0};
    err_t err;
    wasmrt_kind_t kind = WASMRT_COMPONENT;
    /* This is the pod's first pull of the image when it is not on the node:
     * it says "Pulling", as the container's own pull would have. */
    if (!w->host.image_present || !w->host.image_present(w->host.ctx, &peek)) {
        worker_event(w, cr, "Normal", "Pulling", "Pulling image \"%s\"", c->image);
        pthread_mutex_lock(&w->lock);
        cr->peek_pulling_at = time_mono_ns();
        pthread_mutex_unlock(&w->lock);
    }
    if (w->host.pull(w->host.ctx, spec, &peek, &pulled, &err) == -1) {
        worker_event(w, cr, "Warning", "Failed", "Failed to pull image \"%s\": %s", c->image,
                     err.msg);
        pthread_mutex_lock(&w->lock);
        snprintf(cr->first_pull_reason, sizeof cr->first_pull_reason, "%s",
                 pulled.failure_reason ? pulled.failure_reason : "ErrImagePull");
        cr->first_pull_err = err;
        cr->peek_pulling_at = 0; /* that attempt ended; the next says "Pulling" anew */
        pthread_mutex_unlock(&w->lock);
        kind = WASMRT_CORE_MODULE;
    } else if (wasmrt_file_kind(pulled.module_path, &kind, &err) == -1) {
        diag_info("pod %s/%s: cannot tell what kind %s is (%s): giving it a sandbox",
                  spec->namespace, spec->name, c->image, err.msg);
        kind = WASMRT_COMPONENT;
    }
    free(pulled.module_path);
    free(pulled.image_id);
    return kind == WASMRT_COMPONENT;
}

void sandbox_decide(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool undecided = w->sandbox_undecided;
    pthread_mutex_unlock(&w->lock);
    if (!undecided) return;
    const podspec_t *spec = worker_spec_now(w);
    bool component = false;
    for (size_t k = 0; k < w->ninit + w->napps && !component; k++)
        component =
            image_is_component(w, spec, k < w->ninit ? &w->inits[k] : &w->apps[k - w->ninit]);
    pthread_mutex_lock(&w->lock);
    w->sandbox_wanted = component;
    w->sandbox_undecided = false;
    pthread_mutex_unlock(&w->lock);
}

/* The hostPort mappings of every container (portmap's portMappings). The
 * strings are borrowed from spec; protocol points into proto_buf. */
static net_port_mapping_t *host_ports(const podspec_t *spec, size_t *n, char (*proto_buf)[8],
                                      size_t cap)
{
    net_port_mapping_t *maps = xcalloc(cap ? cap : 1, sizeof *maps);
    *n = 0;
    for (size_t k = 0; k < spec->ninit + spec->ncontainers; k++) {
        const podspec_container_t *c =
            k < spec->ninit ? &spec->init_containers[k] : &spec->containers[k - spec->ninit];
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(c->raw, "ports"), i, p)
        {
            json_int_t hp = json_integer_value(json_object_get(p, "hostPort"));
            json_int_t cp = json_integer_value(json_object_get(p, "containerPort"));
            if (hp <= 0 || hp > 65535 || cp <= 0 || cp > 65535 || *n == cap) continue;
            const char *proto = json_str_at(p, "protocol");
            snprintf(proto_buf[*n], sizeof proto_buf[*n], "%s", proto ? proto : "TCP");
            for (char *s = proto_buf[*n]; *s; s++)
                *s = (char)tolower((unsigned char)*s);
            maps[*n] = (net_port_mapping_t){.host_port = (int)hp,
                                            .container_port = (int)cp,
                                            .protocol = proto_buf[*n],
                                            .host_ip = json_str_at(p, "hostIP")};
            (*n)++;
        }
    }
    return maps;
}

static size_t count_ports(const podspec_t *spec)
{
    size_t n = 0;
    for (size_t k = 0; k < spec->ninit + spec->ncontainers; k++) {
        const podspec_container_t *c =
            k < spec->ninit ? &spec->init_containers[k] : &spec->containers[k - spec->ninit];
        n += json_array_size(json_object_get(c->raw, "ports"));
    }
    return n;
}

/* --- attach and teardown ------------------------------------------------------------- */

/* A sandbox for the pod: the one an earlier wasmlet left, if it passes its
 * CHECK, else a new one. gc_lock held shared. */
static int attach_locked(pod_net_t *net, const podspec_t *spec, net_sandbox_t **sb, bool *resumed,
                         err_t *err)
{
    const char *id = spec->uid;
    err_t why;
    *resumed = false;
    if (net_sandbox_load(&net->cfg, id, sb, &why) == 0) {
        if (net_sandbox_check(&net->cfg, id, &why) == 0) {
            *resumed = true;
            return 0;
        }
        diag_warn("pod %s/%s: its sandbox failed CHECK (%s); making a new one", spec->namespace,
                  spec->name, why.msg);
        net_sandbox_free(*sb);
        *sb = NULL;
    }
    /* Whatever is left of an earlier one (half made, or damaged) goes
     * first: its DEL releases its address and host-side interface. */
    if (net_sandbox_destroy(&net->cfg, id, err) == -1) return -1;
    size_t cap = count_ports(spec), n = 0;
    char(*protos)[8] = xcalloc(cap ? cap : 1, sizeof *protos);
    net_port_mapping_t *maps = host_ports(spec, &n, protos, cap);
    net_pod_t pod = {spec->namespace, spec->name, spec->uid, maps, n};
    int rc = net_sandbox_create(&net->cfg, id, &pod, sb, err);
    free(maps);
    free(protos);
    return rc;
}

int sandbox_attach(pod_worker_t *w, err_t *err)
{
    if (!w->sandbox_wanted || w->sandbox_exists) return 0;
    const podspec_t *spec = worker_spec_now(w);
    pod_net_t *net = w->host.net;
    net_sandbox_t *sb = NULL;
    bool resumed = false;
    int64_t t0 = time_mono_ns();
    pthread_rwlock_rdlock(&net->gc_lock);
    int rc = attach_locked(net, spec, &sb, &resumed, err);
    pthread_rwlock_unlock(&net->gc_lock);
    if (rc == -1) {
        pthread_mutex_lock(&w->lock);
        snprintf(w->sandbox_error, sizeof w->sandbox_error, "%s", err->msg);
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    const char *a, *b;
    net_sandbox_pod_ips(sb, &a, &b);
    char *ips = a ? (b ? xasprintf("%s,%s", a, b) : xstrdup(a)) : NULL;
    pthread_mutex_lock(&w->lock);
    w->netns = xstrdup(sb->netns);
    if (!w->pod_ips) {
        w->pod_ips = ips;
        ips = NULL;
        w->host.pod_ips = w->pod_ips; /* before any container thread reads it */
    }
    w->sandbox_error[0] = '\0';
    pthread_mutex_unlock(&w->lock);
    w->sandbox_exists = true;
    diag_info("pod %s/%s: sandbox %s: %s %s in %.1f ms", spec->namespace, spec->name,
              resumed ? "resumed" : "ready", a ? a : "(no address)", sb->netns,
              (double)(time_mono_ns() - t0) / 1e6);
    free(ips);
    net_sandbox_free(sb);
    return 0;
}

void sandbox_teardown(pod_worker_t *w)
{
    if (!w->sandbox_exists) return;
    const podspec_t *spec = worker_spec_now(w);
    pod_net_t *net = w->host.net;
    pthread_mutex_lock(&w->lock);
    char *netns = w->netns;
    w->netns = NULL;
    pthread_mutex_unlock(&w->lock);
    w->sandbox_exists = false;
    err_t err;
    int64_t t0 = time_mono_ns();
    pthread_rwlock_rdlock(&net->gc_lock);
    int rc = net_sandbox_destroy(&net->cfg, spec->uid, &err);
    pthread_rwlock_unlock(&net->gc_lock);
    if (rc == -1)
        /* The state stays on disk: the collector retries once the pod has
         * finished. */
        worker_event(w, NULL, "Warning", "FailedKillPod",
                     "error killing pod: failed to \"KillPodSandbox\": %s", err.msg);
    else
        diag_info("pod %s/%s: sandbox %s destroyed in %.1f ms", spec->namespace, spec->name, netns,
                  (double)(time_mono_ns() - t0) / 1e6);
    free(netns);
}

int pod_worker_netns(pod_worker_t *w, char **path, err_t *err)
{
    *path = NULL;
    pthread_mutex_lock(&w->lock);
    bool wanted = w->sandbox_wanted;
    if (w->netns) *path = xstrdup(w->netns);
    pthread_mutex_unlock(&w->lock);
    if (*path || !wanted) return 0;
    const podspec_t *spec = worker_spec_now(w);
    return err_set(err, "pod %s/%s has no network sandbox now", spec->namespace, spec->name);
}

/* --- the node's pod network --------------------------------------------------------- */

void pod_net_init(pod_net_t *net, const net_config_t *cfg, bool skip_portless)
{
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    net->skip_portless = skip_portless;
    pthread_rwlock_init(&net->gc_lock, NULL);
}

/* Whether dir has no entry but "." and "..". */
static bool dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

void pod_net_destroy(pod_net_t *net)
{
    if (!net) return;
    /* The run dir's own mount goes with the last namespace; one that
     * still holds namespaces (pods to resume) keeps it. */
    if (net->cfg.run_dir && dir_empty(net->cfg.run_dir)) {
        err_t err;
        if (net_ns_run_dir_release(net->cfg.run_dir, &err) == -1)
            diag_warn("pod network: %s", err.msg);
    }
    pthread_rwlock_destroy(&net->gc_lock);
}

int pod_net_gc(pod_net_t *net, pod_net_live_fn live, void *ctx, err_t *err)
{
    /* Never waits: sandbox operations queue for their turns (net/'s bound
     * of eight at once) holding gc_lock shared, so in a burst a waiting
     * collector would hold up its caller, the manager's sync thread, until
     * the burst was over. */
    if (pthread_rwlock_trywrlock(&net->gc_lock) != 0) return POD_NET_GC_BUSY;
    size_t n = 0;
    char **ids = live(ctx, &n);
    int rc = net_sandbox_gc(&net->cfg, (const char *const *)ids, n, err);
    pthread_rwlock_unlock(&net->gc_lock);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

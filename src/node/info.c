/* info.c: this machine, measured, and the Node object that describes it.
 *
 * Capacity is read from the host (util/proc.h): cpu from the online
 * processors, memory from /proc/meminfo, ephemeral-storage from the file
 * system of the data dir, pods from --max-pods. Allocatable is capacity less the
 * reservations and the hard-eviction thresholds of memory.available and
 * nodefs.available (--eviction-hard; the kubelet's 100Mi and 10% by
 * default), as a kubelet computes it.
 *
 * Conditions are computed from the host at every status update, not set to
 * constants: MemoryPressure and DiskPressure as the eviction manager
 * (pod/eviction.h) last decided them from --eviction-hard/--eviction-soft
 * (memory.available = MemAvailable, nodefs = the data dir's file system);
 * PIDPressure when the processes in use pass 90% of pid_max. The node
 * lifecycle controller turns the two into the node.kubernetes.io/
 * memory-pressure and disk-pressure NoSchedule taints (NodeRestriction
 * does not let a node change its own taints). Ready is False from
 * registration until the node serves (node_info_serving: its pod network,
 * pod manager and HTTPS API are up), then True while wasmlet runs and posts status (the node
 * lifecycle controller turns it Unknown when the Lease stops being renewed). Each condition keeps
 * its lastTransitionTime until its status changes. */
#include "node/node.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/proc.h"
#include "util/time.h"

#include <stdatomic.h>
#include "util/xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static eviction_config_t default_eviction;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_eviction_init(void)
{
    eviction_config_default(&default_eviction);
}

/* The thresholds: --eviction-hard and friends, or the kubelet's defaults. */
static const eviction_config_t *eviction_cfg(const node_config_t *cfg)
{
    if (cfg->eviction) return pod_eviction_config(cfg->eviction);
    pthread_once(&default_once, default_eviction_init);
    return &default_eviction;
}

void node_info_capacity(const node_config_t *cfg, node_capacity_t *cap, node_capacity_t *alloc)
{
    proc_meminfo_t m;
    proc_meminfo(&m);
    proc_fs_t fs;
    proc_fs_stat(cfg->data_dir, &fs);
    cap->cpu_milli = sysconf(_SC_NPROCESSORS_ONLN) * 1000;
    cap->memory_bytes = (int64_t)m.total;
    cap->ephemeral_bytes = (int64_t)fs.capacity;
    cap->pods = cfg->max_pods;
    alloc->cpu_milli = cap->cpu_milli - cfg->reserved_cpu;
    const eviction_config_t *ev = eviction_cfg(cfg);
    alloc->memory_bytes =
        cap->memory_bytes - cfg->reserved_memory -
        eviction_threshold_amount(&ev->hard[EVICT_MEMORY_AVAILABLE], cap->memory_bytes);
    alloc->ephemeral_bytes =
        cap->ephemeral_bytes -
        eviction_threshold_amount(&ev->hard[EVICT_NODEFS_AVAILABLE], cap->ephemeral_bytes);
    if (alloc->ephemeral_bytes < 0) alloc->ephemeral_bytes = 0;
    alloc->pods = cap->pods;
    if (alloc->cpu_milli < 0) alloc->cpu_milli = 0;
    if (alloc->memory_bytes < 0) alloc->memory_bytes = 0;
}

static char *read_line(const char *path)
{
    char *data;
    if (fs_read_all(path, &data, NULL, NULL) == -1) return xstrdup("");
    data[strcspn(data, "\n")] = '\0';
    return data;
}

static char *os_image(void)
{
    char *data;
    if (fs_read_all("/etc/os-release", &data, NULL, NULL) == -1) return xstrdup("Linux");
    char *p = strstr(data, "PRETTY_NAME=");
    char *out;
    if (p) {
        p += strlen("PRETTY_NAME=");
        if (*p == '"') p++;
        out = xstrndup(p, strcspn(p, "\"\n"));
    } else {
        out = xstrdup("Linux");
    }
    free(data);
    return out;
}

static json_t *quantities(const node_capacity_t *c)
{
    char cpu[32], mem[32], eph[32];
    if (c->cpu_milli % 1000 == 0)
        snprintf(cpu, sizeof cpu, "%lld", (long long)(c->cpu_milli / 1000));
    else
        snprintf(cpu, sizeof cpu, "%lldm", (long long)c->cpu_milli);
    snprintf(mem, sizeof mem, "%lldKi", (long long)(c->memory_bytes / 1024));
    snprintf(eph, sizeof eph, "%lldKi", (long long)(c->ephemeral_bytes / 1024));
    return json_pack("{s:s, s:s, s:s, s:I}", "cpu", cpu, "memory", mem, "ephemeral-storage", eph,
                     "pods", (json_int_t)c->pods);
}

/* lastTransitionTime of each condition, kept across updates. */
enum { COND_READY, COND_MEMORY, COND_DISK, COND_PID, COND_COUNT };
static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int status; /* -1 unknown yet, 0 False, 1 True */
    int64_t since;
} conds[COND_COUNT] = {{-1, 0}, {-1, 0}, {-1, 0}, {-1, 0}};

static json_t *condition(int which, const char *type, bool status, const char *reason,
                         const char *message)
{
    char now[40], since[40];
    int64_t t = time_now_ns();
    pthread_mutex_lock(&cond_lock);
    if (conds[which].status != (int)status) {
        conds[which].status = status;
        conds[which].since = t;
    }
    int64_t at = conds[which].since;
    pthread_mutex_unlock(&cond_lock);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status",
                     status ? "True" : "False", "reason", reason, "message", message,
                     "lastHeartbeatTime", time_format_rfc3339(now, sizeof now, t),
                     "lastTransitionTime", time_format_rfc3339(since, sizeof since, at));
}

void node_info_ready_lost(void)
{
    pthread_mutex_lock(&cond_lock);
    conds[COND_READY].status = -1; /* the next Ready=True is a transition */
    pthread_mutex_unlock(&cond_lock);
}

/* False until node_info_serving(): the status posted at registration says
 * NotReady, so no pod is placed here (and nobody calls its API) before the
 * node can serve them. */
static atomic_bool node_serving;

void node_info_serving(void)
{
    atomic_store(&node_serving, true);
}

static json_t *conditions(const node_config_t *cfg)
{
    bool mem_pressure, disk_pressure;
    if (cfg->eviction) {
        /* What the eviction manager decided (soft thresholds, transition
         * period included). */
        pod_eviction_pressure(cfg->eviction, &mem_pressure, &disk_pressure);
    } else {
        eviction_observation_t o;
        eviction_observe(cfg->data_dir, &o);
        const eviction_config_t *ev = eviction_cfg(cfg);
        mem_pressure = false;
        disk_pressure = false;
        for (int s = 0; s < EVICT_SIGNALS; s++) {
            bool met = ev->hard[s].set && o.known[s] &&
                       o.available[s] < eviction_threshold_amount(&ev->hard[s], o.capacity[s]);
            if (s == EVICT_MEMORY_AVAILABLE)
                mem_pressure |= met;
            else
                disk_pressure |= met;
        }
    }
    int64_t procs = proc_task_count(), pid_max = proc_pid_max();
    bool pid_pressure = pid_max > 0 && procs > pid_max * 9 / 10;
    json_t *arr = json_array();
    json_array_append_new(
        arr, condition(COND_MEMORY, "MemoryPressure", mem_pressure,
                       mem_pressure ? "KubeletHasInsufficientMemory" : "KubeletHasSufficientMemory",
                       mem_pressure ? "kubelet has insufficient memory available"
                                    : "kubelet has sufficient memory available"));
    json_array_append_new(
        arr,
        condition(COND_DISK, "DiskPressure", disk_pressure,
                  disk_pressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                  disk_pressure ? "kubelet has disk pressure" : "kubelet has no disk pressure"));
    json_array_append_new(
        arr, condition(COND_PID, "PIDPressure", pid_pressure,
                       pid_pressure ? "KubeletHasInsufficientPID" : "KubeletHasSufficientPID",
                       pid_pressure ? "kubelet has insufficient PID available"
                                    : "kubelet has sufficient PID available"));
    bool ready = atomic_load(&node_serving);
    json_array_append_new(arr, ready ? condition(COND_READY, "Ready", true, "KubeletReady",
                                                 "kubelet is posting ready status")
                                     : condition(COND_READY, "Ready", false, "KubeletNotReady",
                                                 "wasmlet is starting: its pod network, pod "
                                                 "manager or HTTPS API is not up yet"));
    return arr;
}

json_t *node_status(const node_config_t *cfg)
{
    node_capacity_t cap, alloc;
    node_info_capacity(cfg, &cap, &alloc);
    struct utsname un;
    uname(&un);
    char *machine_id = read_line("/etc/machine-id");
    if (!machine_id[0]) {
        free(machine_id);
        machine_id = read_line("/var/lib/dbus/machine-id");
    }
    char *boot_id = read_line("/proc/sys/kernel/random/boot_id");
    char *uuid = read_line("/sys/class/dmi/id/product_uuid");
    char *image = os_image();
    char runtime[64], kubelet[64];
    snprintf(runtime, sizeof runtime, "wasmtime://%s", WASMTIME_VERSION);
    snprintf(kubelet, sizeof kubelet, "v1.37.2+wasmlet.%s", WASMLET_VERSION);
    json_t *info =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "machineID", machine_id,
                  "systemUUID", uuid[0] ? uuid : machine_id, "bootID", boot_id, "kernelVersion",
                  un.release, "osImage", image, "containerRuntimeVersion", runtime,
                  "kubeletVersion", kubelet, "operatingSystem", "wasi", "architecture", "wasm32");
    free(machine_id);
    free(boot_id);
    free(uuid);
    free(image);
    json_t *addresses = json_pack("[{s:s, s:s}, {s:s, s:s}]", "type", "InternalIP", "address",
                                  cfg->host_ip, "type", "Hostname", "address", cfg->hostname);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:{s:i}}}", "capacity", quantities(&cap),
                     "allocatable", quantities(&alloc), "conditions", conditions(cfg), "addresses",
                     addresses, "nodeInfo", info, "daemonEndpoints", "kubeletEndpoint", "Port",
                     cfg->port);
}

static json_t *labels(const node_config_t *cfg)
{
    json_t *l =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "kubernetes.io/arch", "wasm32-wasi",
                  "kubernetes.io/os", "wasi", "kubernetes.io/hostname", cfg->name,
                  "beta.kubernetes.io/arch", "wasm32-wasi", "beta.kubernetes.io/os", "wasi");
    if (cfg->extra_labels) json_object_update(l, cfg->extra_labels);
    return l;
}

static json_t *taints(const node_config_t *cfg)
{
    json_t *t = json_array();
    if (cfg->taint_no_schedule)
        json_array_append_new(t, json_pack("{s:s, s:s, s:s}", "key", "kubernetes.io/arch", "value",
                                           "wasm32-wasi", "effect", "NoSchedule"));
    if (cfg->taint_no_execute)
        json_array_append_new(t, json_pack("{s:s, s:s, s:s}", "key", "kubernetes.io/arch", "value",
                                           "wasm32-wasi", "effect", "NoExecute"));
    return t;
}

json_t *node_object(const node_config_t *cfg)
{
    return json_pack("{s:s, s:s, s:{s:s, s:o, s:{s:s}}, s:{s:o}, s:o}", "apiVersion", "v1", "kind",
                     "Node", "metadata", "name", cfg->name, "labels", labels(cfg), "annotations",
                     "node.alpha.kubernetes.io/ttl", "0", "spec", "taints", taints(cfg), "status",
                     node_status(cfg));
}

int node_register(kube_client_t *c, const node_config_t *cfg, err_t *err)
{
    json_t *node = node_object(cfg);
    kube_result_t res;
    json_t *out = NULL;
    int rc = kube_create(c, "/api/v1/nodes", node, &out, &res, err);
    json_decref(out);
    out = NULL;
    if (rc == -1 && res.status != 409) {
        json_decref(node);
        return err_prefix(err, "register node %s", cfg->name);
    }
    char *path = xasprintf("/api/v1/nodes/%s", cfg->name);
    if (rc == -1) {
        /* Adopt the existing Node: our labels (NodeRestriction lets a node
         * set the kubernetes.io ones it owns) and taints. */
        json_t *patch =
            json_pack("{s:{s:O}}", "metadata", "labels", json_at(node, "metadata", "labels"));
        if (kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &res, err) == -1) {
            json_decref(patch);
            json_decref(node);
            free(path);
            return err_prefix(err, "adopt node %s", cfg->name);
        }
        json_decref(patch);
        patch = json_pack("{s:{s:O}}", "spec", "taints", json_at(node, "spec", "taints"));
        err_t terr;
        if (kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &res, &terr) == -1 &&
            res.status != 403)
            rc = err_set(err, "adopt node %s: taints: %s", cfg->name, terr.msg);
        json_decref(patch);
    }
    json_decref(node);
    char *status_path = xasprintf("%s/status", path);
    json_t *patch = json_pack("{s:o}", "status", node_status(cfg));
    rc = kube_patch(c, status_path, KUBE_PATCH_MERGE, patch, NULL, &res, err);
    if (rc == -1) err_prefix(err, "node %s status", cfg->name);
    json_decref(patch);
    free(status_path);
    free(path);
    return rc;
}

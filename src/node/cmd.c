/* cmd.c: `wasmlet node`, which makes this machine a Kubernetes Node.
 *
 * It wires the subsystems together and owns none of their logic: the API
 * client (kube/), the image store (image/), the runtime (wasm/), Node
 * registration and heartbeat (node/), the pod manager (pod/) and the
 * kubelet HTTPS API (server/), which reaches the pods only through the
 * provider built here (server/pods.h over the pod manager's functions).
 * Every numeric option is parsed strictly (util/cli.h): a mistyped value
 * stops the command with exit status 2 and a message naming the option.
 * Signals: SIGTERM or SIGINT shut the node
 * down gracefully (no new pods, running ones stopped, final statuses
 * written, the Node kept); SIGUSR1 pauses the heartbeat and SIGUSR2
 * resumes it, so tests can watch the control plane mark the node NotReady
 * and Ready again. */
#include "image/image.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/quantity.h"
#include "node/bootstrap.h"
#include "node/cmd.h"
#include "node/node.h"
#include "pod/manager.h"
#include "pod/static_pods.h"
#include "probe/probe.h"
#include "server/server.h"
#include "util/cli.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/heap.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Descriptors an idle pod keeps open: its container's log file and its
 * volume's preopened directory (the service-account token every pod gets
 * by default). */
#define NODE_FDS_PER_POD 2

static volatile sig_atomic_t got_term, got_pause, got_resume;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        got_pause = 1;
    else if (sig == SIGUSR2)
        got_resume = 1;
    else
        got_term = sig;
}

static void usage(FILE *f)
{
    fputs("usage: wasmlet node [options]\n"
          "  --kubeconfig FILE            credentials of this node (or an admin)\n"
          "  --bootstrap-kubeconfig FILE  a bootstrap token: wasmlet requests its own\n"
          "                               client certificate (TLS bootstrap)\n"
          "  --node-name NAME             default: the host name\n"
          "  --node-ip IP                 address the API server reaches us at (127.0.0.1)\n"
          "  --data-dir DIR               default /var/lib/wasmlet\n"
          "  --port N                     kubelet HTTPS port (10250)\n"
          "  --max-pods N                 pods capacity (110)\n"
          "  --node-labels k=v,...        extra labels\n"
          "  --no-taints                  do not taint the node (kubernetes.io/arch=wasm32-wasi)\n"
          "  --no-execute-taint           do not add the NoExecute taint\n"
          "  --reserved-cpu MILLI         cpu held back from allocatable\n"
          "  --reserved-memory BYTES      memory held back from allocatable\n"
          "  --container-log-max-size B   rotate container logs at this size (10Mi)\n"
          "  --container-log-max-files N  rotated files kept (5)\n"
          "  --insecure-registry HOST     reach HOST over plain HTTP (repeatable)\n"
          "  --registry-config FILE       node-level registry credentials (docker config.json)\n"
          "  --client-ca-file FILE        CA of clients of the HTTPS API (the API server's)\n"
          "  --tls-cert-file/--tls-private-key-file FILE  serving certificate\n"
          "  --anonymous-auth             allow unauthenticated requests to the HTTPS API\n"
          "  --backoff-initial MS         first CrashLoopBackOff delay (10000)\n"
          "  --pod-manifest-path DIR      run the Pods of DIR's manifests as static pods\n"
          "  --eviction-hard LIST         hard eviction thresholds (memory.available<100Mi,\n"
          "                               nodefs.available<10%,nodefs.inodesFree<5%)\n"
          "  --eviction-soft LIST         soft thresholds, each with a grace period\n"
          "  --eviction-soft-grace-period LIST  e.g. memory.available=1m30s\n"
          "  --eviction-pressure-transition-period D  how long a pressure condition\n"
          "                               outlasts its signal (5m0s)\n"
          "  --max-wasm-stack BYTES       WebAssembly call stack of a container (8Mi)\n"
          "  --max-open-files N           host descriptors a container may hold (1024; 0: no\n"
          "                               cap); a pod's wasmlet.dev/max-open-files overrides\n"
          "  --pod-network cni|host       cni (default): a network namespace and an IP per pod\n"
          "                               (not hostNetwork) through CNI; host: every pod on the\n"
          "                               node's network, reporting the node's IP\n"
          "  --cni-conf-dir DIR           CNI network configs (/etc/cni/net.d); with none there,\n"
          "                               a default one over the Node's podCIDR is written into\n"
          "                               DATA-DIR/net/cni\n"
          "  --cni-bin-dir DIR,...        CNI plugin dirs (/opt/cni/bin,/usr/lib/cni)\n"
          "  --skip-sandbox-without-ports true|false\n"
          "                               pods none of whose containers declares a port (a WASI\n"
          "                               module has no sockets) run without a sandbox and report\n"
          "                               the node's IP (default true)\n"
          "  -v                           more logging\n",
          f);
}

/* A new serving certificate from the identity thread (bootstrap.h). */
static void on_serving_cert(void *ctx, const char *cert_pem, const char *key_pem)
{
    err_t err;
    if (server_set_cert(ctx, cert_pem, key_pem, &err) == -1)
        diag_warn("serving certificate not replaced: %s", err.msg);
}

/* --- the pod manager as the kubelet API's pod provider (server/pods.h) --- */

static json_t *pods_list(void *ctx)
{
    return pod_manager_pod_list(ctx);
}

static int pods_container_logs(void *ctx, const char *ns, const char *pod, const char *container,
                               char **dir, bool *running, err_t *err)
{
    return pod_manager_container_logs(ctx, ns, pod, container, dir, running, err);
}

static int pods_samples(void *ctx, server_pod_samples_t *out)
{
    json_t *list = pod_manager_pod_list(ctx);
    if (!list) return -1;
    server_pod_samples_from_list(list, out);
    json_decref(list);
    return 0;
}

static void pods_counters(void *ctx, server_pod_counters_t *out)
{
    pod_manager_stats_t ps = {0};
    pod_manager_stats(ctx, &ps);
    *out = (server_pod_counters_t){
        .pods_started = ps.pods_started,
        .pods_running = ps.pods_running,
        .containers_running = ps.containers_running,
        .admission_rejected = ps.admission_rejected,
        .status_patches = ps.status_patches,
        .status_errors = ps.status_errors,
    };
}

static int pods_dial_tcp(void *ctx, const char *ns, const char *name, const char *uid, int port,
                         int timeout_ms, err_t *err)
{
    return pod_manager_dial_tcp(ctx, ns, name, uid, port, timeout_ms, err);
}

static server_pods_t pods_provider(pod_manager_t *m)
{
    return (server_pods_t){
        .ctx = m,
        .pod_list = pods_list,
        .container_logs = pods_container_logs,
        .pod_samples = pods_samples,
        .counters = pods_counters,
        .dial_tcp = pods_dial_tcp,
    };
}

/* --- options ------------------------------------------------------------- */

/* A byte count: a whole number of bytes or a Kubernetes quantity ("10Mi"),
 * from 0 to max. */
static int parse_bytes(const char *opt, const char *text, int64_t max, int64_t *out)
{
    int64_t v;
    if (cli_int(text, 0, max, &v) == 0 || (quantity_parse(text, &v) == 0 && v >= 0 && v <= max)) {
        *out = v;
        return 0;
    }
    fprintf(stderr, "wasmlet node: --%s: \"%s\" is not a size in bytes (such as 1048576 or 1Mi)\n",
            opt, text);
    return -1;
}

static json_t *parse_labels(const char *text)
{
    json_t *labels = json_object();
    char *copy = xstrdup(text), *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        *eq = '\0';
        json_object_set_new(labels, kv, json_string(eq + 1));
    }
    free(copy);
    return labels;
}

int node_main(int argc, char **argv)
{
    enum {
        O_KUBECONFIG = 256,
        O_BOOTSTRAP,
        O_NAME,
        O_IP,
        O_DATA,
        O_PORT,
        O_MAXPODS,
        O_LABELS,
        O_NOTAINT,
        O_NOEXEC,
        O_RCPU,
        O_RMEM,
        O_LOGSIZE,
        O_LOGFILES,
        O_INSECURE,
        O_REGCFG,
        O_CLIENTCA,
        O_TLSCERT,
        O_TLSKEY,
        O_ANON,
        O_BACKOFF,
        O_STATIC,
        O_EVHARD,
        O_EVSOFT,
        O_EVGRACE,
        O_EVTRANS,
        O_WASMSTACK,
        O_PODNET,
        O_CNICONF,
        O_CNIBIN,
        O_SKIPPORTLESS,
        O_MAXFILES,
    };
    static const struct option opts[] = {
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"bootstrap-kubeconfig", required_argument, NULL, O_BOOTSTRAP},
        {"node-name", required_argument, NULL, O_NAME},
        {"hostname-override", required_argument, NULL, O_NAME},
        {"node-ip", required_argument, NULL, O_IP},
        {"data-dir", required_argument, NULL, O_DATA},
        {"port", required_argument, NULL, O_PORT},
        {"max-pods", required_argument, NULL, O_MAXPODS},
        {"node-labels", required_argument, NULL, O_LABELS},
        {"no-taints", no_argument, NULL, O_NOTAINT},
        {"no-execute-taint", no_argument, NULL, O_NOEXEC},
        {"reserved-cpu", required_argument, NULL, O_RCPU},
        {"reserved-memory", required_argument, NULL, O_RMEM},
        {"container-log-max-size", required_argument, NULL, O_LOGSIZE},
        {"container-log-max-files", required_argument, NULL, O_LOGFILES},
        {"insecure-registry", required_argument, NULL, O_INSECURE},
        {"registry-config", required_argument, NULL, O_REGCFG},
        {"client-ca-file", required_argument, NULL, O_CLIENTCA},
        {"tls-cert-file", required_argument, NULL, O_TLSCERT},
        {"tls-private-key-file", required_argument, NULL, O_TLSKEY},
        {"anonymous-auth", no_argument, NULL, O_ANON},
        {"backoff-initial", required_argument, NULL, O_BACKOFF},
        {"pod-manifest-path", required_argument, NULL, O_STATIC},
        {"eviction-hard", required_argument, NULL, O_EVHARD},
        {"eviction-soft", required_argument, NULL, O_EVSOFT},
        {"eviction-soft-grace-period", required_argument, NULL, O_EVGRACE},
        {"eviction-pressure-transition-period", required_argument, NULL, O_EVTRANS},
        {"max-wasm-stack", required_argument, NULL, O_WASMSTACK},
        {"max-open-files", required_argument, NULL, O_MAXFILES},
        {"pod-network", required_argument, NULL, O_PODNET},
        {"cni-conf-dir", required_argument, NULL, O_CNICONF},
        {"cni-bin-dir", required_argument, NULL, O_CNIBIN},
        {"skip-sandbox-without-ports", required_argument, NULL, O_SKIPPORTLESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *kubeconfig = NULL, *bootstrap = NULL, *data_dir = "/var/lib/wasmlet";
    const char *node_ip = "127.0.0.1", *registry_config = NULL, *static_dir = NULL;
    const char *client_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
    bool anonymous = false;
    bool pod_network = true, skip_portless = NODE_DEFAULT_SKIP_PORTLESS;
    const char *cni_conf_dir = "/etc/cni/net.d", *cni_bin_dir = "/opt/cni/bin,/usr/lib/cni";
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    const char *node_name = NULL;
    node_config_t ncfg = {
        .port = 10250, .max_pods = 110, .taint_no_schedule = true, .taint_no_execute = true};
    int64_t log_max_bytes = 10 * 1024 * 1024, backoff_initial = 0;
    int64_t max_wasm_stack = (int64_t)WASMRT_DEFAULT_MAX_WASM_STACK;
    int64_t max_open_files = WASMRT_DEFAULT_MAX_OPEN_FILES;
    int log_max_files = 5;
    eviction_config_t evcfg;
    eviction_config_default(&evcfg);
    err_t everr;
    const char *insecure[17] = {NULL};
    size_t ninsecure = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (opt) {
        case O_KUBECONFIG:
            kubeconfig = optarg;
            break;
        case O_BOOTSTRAP:
            bootstrap = optarg;
            break;
        case O_NAME:
            node_name = optarg;
            break;
        case O_IP:
            node_ip = optarg;
            break;
        case O_DATA:
            data_dir = optarg;
            break;
        case O_PORT:
            if (cli_parse_int32("node", "port", optarg, 0, 65535, &ncfg.port) == -1) goto bad;
            break;
        case O_MAXPODS:
            if (cli_parse_int32("node", "max-pods", optarg, 1, 100000, &ncfg.max_pods) == -1)
                goto bad;
            break;
        case O_LABELS:
            json_decref(ncfg.extra_labels);
            ncfg.extra_labels = parse_labels(optarg);
            break;
        case O_NOTAINT:
            ncfg.taint_no_schedule = ncfg.taint_no_execute = false;
            break;
        case O_NOEXEC:
            ncfg.taint_no_execute = false;
            break;
        case O_RCPU:
            if (cli_parse_int("node", "reserved-cpu", optarg, 0, INT64_C(1) << 40,
                              &ncfg.reserved_cpu) == -1)
                goto bad;
            break;
        case O_RMEM:
            if (parse_bytes("reserved-memory", optarg, INT64_MAX / 2, &ncfg.reserved_memory) == -1)
                goto bad;
            break;
        case O_LOGSIZE:
            if (parse_bytes("container-log-max-size", optarg, INT64_MAX / 2, &log_max_bytes) == -1)
                goto bad;
            break;
        case O_WASMSTACK:
            if (parse_bytes("max-wasm-stack", optarg, INT64_C(1) << 30, &max_wasm_stack) == -1)
                goto bad;
            if (max_wasm_stack < 65536) {
                fprintf(stderr, "wasmlet node: --max-wasm-stack: at least 64Ki\n");
                goto bad;
            }
            break;
        case O_MAXFILES:
            if (cli_parse_int("node", "max-open-files", optarg, 0, 1048576, &max_open_files) == -1)
                goto bad;
            break;
        case O_LOGFILES:
            if (cli_parse_int32("node", "container-log-max-files", optarg, 1, 1000,
                                &log_max_files) == -1)
                goto bad;
            break;
        case O_INSECURE:
            if (ninsecure < 16) insecure[ninsecure++] = optarg;
            break;
        case O_REGCFG:
            registry_config = optarg;
            break;
        case O_CLIENTCA:
            client_ca = optarg;
            break;
        case O_TLSCERT:
            tls_cert = optarg;
            break;
        case O_TLSKEY:
            tls_key = optarg;
            break;
        case O_ANON:
            anonymous = true;
            break;
        case O_STATIC:
            static_dir = optarg;
            break;
        case O_EVHARD:
        case O_EVSOFT:
            if (eviction_parse_thresholds(optarg, opt == O_EVHARD ? evcfg.hard : evcfg.soft,
                                          &everr) == -1) {
                fprintf(stderr, "wasmlet node: --%s: %s\n",
                        opt == O_EVHARD ? "eviction-hard" : "eviction-soft", everr.msg);
                goto bad;
            }
            break;
        case O_EVGRACE:
            if (eviction_parse_grace(optarg, evcfg.soft, &everr) == -1) {
                fprintf(stderr, "wasmlet node: --eviction-soft-grace-period: %s\n", everr.msg);
                goto bad;
            }
            break;
        case O_EVTRANS:
            if (time_parse_duration(optarg, &evcfg.transition_ns) == -1) {
                fprintf(stderr,
                        "wasmlet node: --eviction-pressure-transition-period: \"%s\" is not a "
                        "duration (5m0s)\n",
                        optarg);
                goto bad;
            }
            break;
        case O_PODNET:
            if (strcmp(optarg, "cni") && strcmp(optarg, "host")) {
                fprintf(stderr, "wasmlet node: --pod-network: \"%s\" is not cni or host\n", optarg);
                goto bad;
            }
            pod_network = strcmp(optarg, "cni") == 0;
            break;
        case O_CNICONF:
            cni_conf_dir = optarg;
            break;
        case O_CNIBIN:
            cni_bin_dir = optarg;
            break;
        case O_SKIPPORTLESS:
            if (strcmp(optarg, "true") && strcmp(optarg, "false")) {
                fprintf(stderr,
                        "wasmlet node: --skip-sandbox-without-ports: \"%s\" is not true or "
                        "false\n",
                        optarg);
                goto bad;
            }
            skip_portless = strcmp(optarg, "true") == 0;
            break;
        case O_BACKOFF:
            if (cli_parse_int("node", "backoff-initial", optarg, 0, INT64_C(86400000),
                              &backoff_initial) == -1)
                goto bad;
            break;
        case 'v':
            diag_set_level(DIAG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            goto bad;
        }
    }
    if ((!kubeconfig && !bootstrap) || optind != argc) {
        usage(stderr);
        goto bad;
    }
    if (eviction_config_check(&evcfg, &everr) == -1) {
        fprintf(stderr, "wasmlet node: %s\n", everr.msg);
        goto bad;
    }
    ncfg.name = node_name ? node_name : hostname;
    ncfg.hostname = hostname;
    ncfg.host_ip = node_ip;
    ncfg.data_dir = data_dir;

    /* Before any thread: the heap of pods that went goes back (util/heap.h). */
    heap_fix_trim_threshold();
    err_t err;
    int status = 1;
    kube_client_t *client = NULL;
    image_store_t *images = NULL;
    wasmrt_t *rt = NULL;
    node_heartbeat_t *hb = NULL;
    pod_manager_t *pods = NULL;
    static_pods_t *statics = NULL;
    bootstrap_t *boot = NULL;
    server_t *server = NULL;
    char *serve_cert = NULL, *serve_key = NULL, *client_ca_pem = NULL;
    image_auth_t node_auth = IMAGE_AUTH_INIT;
    node_podnet_t podnet = {0};
    char *modules = xasprintf("%s/modules", data_dir);
    char *compiled = xasprintf("%s/modules/compiled", data_dir);
    char *logs = xasprintf("%s/logs", data_dir);
    pod_eviction_t *eviction = pod_eviction_new(&evcfg);
    ncfg.eviction = eviction;
    /* Descriptors: the hard limit for the process, a headroom of it kept
     * for the node's own work (util/proc.h). */
    uint64_t nofile = proc_raise_nofile();
    uint64_t headroom = proc_nofile_headroom(nofile);
    diag_info("file descriptors: limit %llu, %llu kept for wasmlet itself",
              (unsigned long long)nofile, (unsigned long long)headroom);
    /* Every container's descriptors are the node's own: an idle pod keeps
     * NODE_FDS_PER_POD (its log file, its volume's directory). A node that
     * advertised more pods than its limit holds would take them and fail
     * their starts with EMFILE; advertising fewer makes the scheduler
     * place them elsewhere. */
    uint64_t fd_pods = nofile > headroom ? (nofile - headroom) / NODE_FDS_PER_POD : 0;
    if (nofile && fd_pods >= 1 && fd_pods < (uint64_t)ncfg.max_pods) {
        diag_warn("--max-pods %d: the descriptor limit (%llu, %llu kept for wasmlet) holds "
                  "about %llu pods of %d descriptors each, so the node takes that many (raise "
                  "the limit to take more)",
                  ncfg.max_pods, (unsigned long long)nofile, (unsigned long long)headroom,
                  (unsigned long long)fd_pods, NODE_FDS_PER_POD);
        ncfg.max_pods = (int)fd_pods;
    }

    if (fs_mkdir_p(data_dir, 0750, &err) == -1) goto out;
    /* Each pod's directories and files spread over the file system's
     * allocation groups (util/fs.h). */
    char *pods_dir = xasprintf("%s/pods", data_dir);
    if (fs_mkdir_p(pods_dir, 0750, &err) == -1 || fs_mkdir_p(logs, 0755, &err) == -1) {
        free(pods_dir);
        goto out;
    }
    diag_debug("pod directories spread over the file system: %s",
               fs_spread_subdirs(pods_dir) && fs_spread_subdirs(logs) ? "yes" : "no");
    free(pods_dir);
    if (bootstrap_client(kubeconfig, bootstrap, data_dir, ncfg.name, &client, &boot, &err) == -1)
        goto out;
    if (registry_config && image_auth_load_file(&node_auth, registry_config, &err) == -1) goto out;
    image_store_options_t io = {
        .dir = modules, .insecure_registries = insecure, .node_auth = &node_auth};
    if (image_store_open(&images, &io, &err) == -1) goto out;
    wasmrt_options_t ro = {.cache_dir = compiled, .max_wasm_stack = (size_t)max_wasm_stack};
    if (wasmrt_open(&ro, &rt, &err) == -1) goto out;
    /* Here, in the host's network namespace, not in the first pod's. */
    if (wasmrt_start_io_threads(rt, &err) == -1) goto out;
    /* The probe queue's threads too: made on first use, they would
     * otherwise belong to whichever thread probes first, which may be a
     * container thread inside a pod's namespace (a served component starts
     * its probes once it listens, from there). */
    (void)probe_sched_shared();
    if (node_register(client, &ncfg, &err) == -1) goto out;
    diag_info("node %s registered (wasmtime %s)", ncfg.name, wasmrt_engine_version());

    if (pod_network) {
        node_podnet_options_t po = {.node_name = ncfg.name,
                                    .data_dir = data_dir,
                                    .conf_dir = cni_conf_dir,
                                    .bin_dirs = cni_bin_dir,
                                    .pod_cidr_wait_ms = 120000};
        if (node_podnet_setup(client, &po, &podnet, &err) == -1) goto out;
        diag_info("pod network: sandboxes for pods without hostNetwork%s",
                  skip_portless ? " that declare a port" : "");
    } else {
        diag_info("pod network: host (--pod-network=host): every pod reports %s", node_ip);
    }

    node_capacity_t cap, alloc;
    node_info_capacity(&ncfg, &cap, &alloc);
    pod_manager_config_t pcfg = {
        .client = client,
        .rt = rt,
        .images = images,
        .node_name = ncfg.name,
        .host_ip = node_ip,
        .data_dir = data_dir,
        .logs_dir = logs,
        .allocatable_cpu = alloc.cpu_milli,
        .allocatable_memory = alloc.memory_bytes,
        .max_pods = alloc.pods,
        .log_max_bytes = log_max_bytes,
        .log_max_files = log_max_files,
        .max_open_files = max_open_files,
        .backoff_initial_ms = backoff_initial,
        .eviction = eviction,
        .net = pod_network ? &podnet.cfg : NULL,
        .net_skip_portless = skip_portless,
    };
    if (pod_manager_start(&pcfg, &pods, &err) == -1) goto out;
    if (static_dir) statics = static_pods_start(pods, static_dir, ncfg.name);

    /* The kubelet HTTPS API (server/) comes with its own options. Its
     * certificate: --tls-cert-file/--tls-private-key-file, or one the node
     * gets signed (self-signed until then; bootstrap.h). Its client CA:
     * --client-ca-file, or the cluster CA the node trusts the API server
     * by, which issues the API server's own client certificate. */
    if (tls_cert || tls_key) {
        if (!tls_cert || !tls_key) {
            err_set(&err, "--tls-cert-file and --tls-private-key-file go together");
            goto out;
        }
        if (fs_read_all(tls_cert, &serve_cert, NULL, &err) == -1 ||
            fs_read_all(tls_key, &serve_key, NULL, &err) == -1)
            goto out;
    } else {
        const char *ips[] = {node_ip}, *names[] = {hostname};
        if (bootstrap_serving_cert(boot, ips, 1, names, 1, &serve_cert, &serve_key, &err) == -1)
            goto out;
    }
    if (client_ca) {
        if (fs_read_all(client_ca, &client_ca_pem, NULL, &err) == -1) goto out;
    } else if (bootstrap_ca_pem(boot)) {
        client_ca_pem = xstrdup(bootstrap_ca_pem(boot));
    }
    server_config_t scfg = {
        .port = ncfg.port,
        .node_name = ncfg.name,
        .cert_pem = serve_cert,
        .key_pem = serve_key,
        .client_ca_pem = client_ca_pem,
        .anonymous = anonymous,
        .client = client,
        .pods = pods_provider(pods),
        .rt = rt,
        .images = images,
        .pod_addresses = pod_network ? podnet.ipam : NULL,
        .data_dir = data_dir,
        .logs_dir = logs,
    };
    if (server_start(&scfg, &server, &err) == -1) {
        err_prefix(&err, "kubelet HTTPS API");
        goto out;
    }
    if (!tls_cert) bootstrap_serving_manage(boot, on_serving_cert, server);
    diag_info("kubelet HTTPS API on port %d (client certificates: %s; anonymous: %s)",
              server_port(server),
              client_ca ? client_ca : (client_ca_pem ? "the cluster CA" : "not accepted"),
              anonymous ? "allowed" : "refused");
    /* Ready only once the node can do a node's work: its pod network is
     * set up (a kubelet reports NotReady until its network plugin is), its
     * pod manager runs and its HTTPS API answers. */
    node_info_serving();
    hb = node_heartbeat_start(client, &ncfg);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    diag_info("node %s ready: %s:%d", ncfg.name, node_ip, ncfg.port);
    while (!got_term) {
        time_sleep_ms(100);
        heap_release_if_asked(); /* a trim waits for each thread's malloc cache */
        if (got_pause) {
            got_pause = 0;
            diag_warn("heartbeat paused (SIGUSR1)");
            node_heartbeat_pause(hb, true);
        }
        if (got_resume) {
            got_resume = 0;
            diag_warn("heartbeat resumed (SIGUSR2)");
            node_heartbeat_pause(hb, false);
        }
        bootstrap_tick(boot);
    }
    diag_info("signal %d: shutting down, stopping pods", (int)got_term);
    pod_manager_shutdown(pods, 30000);
    status = 0;
out:
    if (status != 0 && err.msg[0]) fprintf(stderr, "wasmlet node: %s\n", err.msg);
    bootstrap_stop(boot); /* no new certificate reaches the server after it stops */
    server_stop(server);
    free(serve_cert);
    free(serve_key);
    free(client_ca_pem);
    static_pods_stop(statics);
    pod_manager_free(pods);
    node_podnet_free(&podnet);
    node_heartbeat_stop(hb);
    pod_eviction_free(eviction);
    wasmrt_close(rt);
    image_store_close(images);
    image_auth_free(&node_auth);
    bootstrap_free(boot);
    kube_client_free(client);
    json_decref(ncfg.extra_labels);
    free(modules);
    free(compiled);
    free(logs);
    return status;
bad:
    json_decref(ncfg.extra_labels);
    return CLI_USAGE_ERROR;
}

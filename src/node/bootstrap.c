/* bootstrap.c: the node's client and serving certificates (see bootstrap.h).
 *
 * Files, under <data>/pki (mode 0700):
 *   kubelet-client-<time>.pem    a signed client certificate chain and its key
 *   kubelet-client-current.pem   symlink to the newest; the kubeconfig names it
 *   kubelet-server-<time>.pem    the same for the serving certificate
 *   kubelet-server-current.pem
 * A new file is written whole (temporary file, fsync, rename) and the
 * symlink is replaced by rename, so a crash at any point leaves the old
 * pair or the new one, never half of either. The newest two of each kind
 * are kept, the rest removed.
 *
 * A certificate in use is an mcert_t. The identity thread wakes every
 * second and moves each one along: nothing to do until its renewal time;
 * then a new key and a CSR (a failed filing is retried with back-off);
 * then polling the CSR (every second for the first two minutes, then every
 * ten) until it is issued, denied, failed or gone. An issued certificate
 * is installed (files, then the running client or server) and the next
 * renewal time drawn. Polling rather than a watch: a CSR is pending for
 * seconds (client certificates are approved automatically) or until an
 * operator acts, and one GET a second for one object is less machinery
 * than a watch with its resume logic.
 *
 * The CSR API is called with the node's own credentials, except for the
 * initial bootstrap and the renewal of an expired client certificate,
 * which use the bootstrap token (the only credential left then).
 *
 * Size. Over 700 lines because both certificates share one life cycle
 * (files, CSR, renewal, install) written once for an mcert_t; splitting the
 * client's start-up (TLS bootstrap) from the renewals would split that one
 * state machine across files.
 *
 * Why one file of this length: the client and serving certificates go
 * through one renewal state machine, kept in one place so that its states
 * and transitions read top to bottom.
 */
#include "node/bootstrap.h"
#include "kube/kubeconfig.h"
#include "metrics/registry.h"
#include "util/base64.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/heap.h"
#include "util/json.h"
#include "util/pki.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CSR_PATH "/apis/certificates.k8s.io/v1/certificatesigningrequests"
#define SIGNER_CLIENT "kubernetes.io/kube-apiserver-client-kubelet"
#define SIGNER_SERVING "kubernetes.io/kubelet-serving"
#define BOOTSTRAP_WAIT_NS (3600 * NS_PER_SEC) /* the kubelet waits an hour too */
#define SELF_SIGNED_SECONDS (365 * 24 * 3600)
#define BACKOFF_MIN_NS (5 * NS_PER_SEC)
#define BACKOFF_MAX_NS (300 * NS_PER_SEC)

typedef struct mcert {
    const char *kind; /* "client" or "serving", for messages */
    const char *signer;
    const char *prefix; /* file name prefix under pki/ */
    metrics_cert_t metric;
    char *cert_pem, *key_pem; /* in use */
    int64_t not_before, not_after;
    int64_t rotate_at; /* realtime ns */
    bool self_signed;  /* serving only: renew as soon as possible */
    /* a CSR in flight */
    char *csr_name, *csr_key;
    int64_t filed_at, next_poll, last_note; /* mono ns */
    int64_t retry_at, backoff;              /* mono ns, after a failed filing */
} mcert_t;

struct bootstrap {
    char *data_dir, *pki_dir, *node_name;
    char *kubeconfig_path;      /* written by us (renewals keep it valid), or NULL */
    char *bootstrap_kubeconfig; /* for an expired client certificate */
    char *server, *ca_pem;
    kube_client_t *client; /* shared, not owned */
    bool manage_client, manage_serving;
    mcert_t ccert, scert;
    strvec_t ips, dns;
    bootstrap_cert_fn apply;
    void *apply_ctx;
    int64_t rotate_after_ns; /* WASMLET_CERT_ROTATE_AFTER_SECONDS */
    int64_t expiration_s;    /* WASMLET_CERT_EXPIRATION_SECONDS */
    unsigned seed;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool quit;
};

int64_t bootstrap_rotation_deadline(int64_t not_before_ns, int64_t not_after_ns, double jitter)
{
    if (jitter < 0) jitter = 0;
    if (jitter >= 1) jitter = 0.999;
    double life = (double)(not_after_ns - not_before_ns);
    return not_before_ns + (int64_t)(life * (0.7 + 0.2 * jitter));
}

/* --- CSRs ------------------------------------------------------------------ */

static json_t *csr_object(bootstrap_t *b, const char *csr_pem, const mcert_t *m)
{
    char *req = base64_encode(csr_pem, strlen(csr_pem));
    bool client = strcmp(m->signer, SIGNER_CLIENT) == 0;
    json_t *obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:[s, s]}}", "apiVersion",
                            "certificates.k8s.io/v1", "kind", "CertificateSigningRequest",
                            "metadata", "generateName", client ? "node-csr-" : "csr-", "spec",
                            "request", req, "signerName", m->signer, "usages", "digital signature",
                            client ? "client auth" : "server auth");
    if (b->expiration_s >= 600)
        json_object_set_new(json_at(obj, "spec"), "expirationSeconds",
                            json_integer(b->expiration_s));
    free(req);
    return obj;
}

/* Makes a key and files a CSR for m's identity; fills *name and *key. */
static int csr_file(bootstrap_t *b, kube_client_t *client, const mcert_t *m, char **name,
                    char **key, err_t *err)
{
    *name = *key = NULL;
    char *cn = xasprintf("system:node:%s", b->node_name);
    const char *orgs[] = {"system:nodes"};
    pki_name_t pn = {.cn = cn, .orgs = orgs, .norgs = 1};
    if (strcmp(m->signer, SIGNER_SERVING) == 0) {
        pn.ips = (const char *const *)b->ips.items;
        pn.nips = b->ips.len;
        pn.dns = (const char *const *)b->dns.items;
        pn.ndns = b->dns.len;
    }
    char *csr = NULL;
    json_t *obj = NULL, *created = NULL;
    int rc = -1;
    if (pki_key_new(key, err) == -1 || pki_csr_new(*key, &pn, &csr, err) == -1) goto out;
    obj = csr_object(b, csr, m);
    if (kube_create(client, CSR_PATH, obj, &created, NULL, err) == -1) {
        err_prefix(err, "file a %s CSR", m->signer);
        goto out;
    }
    const char *n = json_str_at(created, "metadata", "name");
    if (!n) {
        err_set(err, "file a %s CSR: the answer has no name", m->signer);
        goto out;
    }
    *name = xstrdup(n);
    rc = 0;
out:
    if (rc == -1) {
        free(*key);
        *key = NULL;
    }
    json_decref(created);
    json_decref(obj);
    free(csr);
    free(cn);
    return rc;
}

typedef enum csr_state {
    CSR_PENDING,
    CSR_ISSUED,
    CSR_DENIED, /* or Failed */
    CSR_GONE,
    CSR_ERROR, /* could not ask */
} csr_state_t;

/* The state of CSR name; an issued one's certificate goes to *cert (PEM). */
static csr_state_t csr_check(kube_client_t *client, const char *name, char **cert, char *why,
                             size_t why_len, err_t *err)
{
    *cert = NULL;
    why[0] = '\0';
    char *path = xasprintf(CSR_PATH "/%s", name);
    json_t *obj = NULL;
    kube_result_t res;
    int rc = kube_get(client, path, &obj, &res, err);
    free(path);
    if (rc == -1) return res.status == 404 ? CSR_GONE : CSR_ERROR;
    csr_state_t state = CSR_PENDING;
    size_t i;
    json_t *c;
    json_array_foreach(json_at(obj, "status", "conditions"), i, c)
    {
        const char *type = json_str_at(c, "type");
        if (type && (strcmp(type, "Denied") == 0 || strcmp(type, "Failed") == 0)) {
            const char *msg = json_str_at(c, "message");
            const char *reason = json_str_at(c, "reason");
            snprintf(why, why_len, "%s%s%s%s%s", type, reason ? " (" : "", reason ? reason : "",
                     reason ? ")" : "", msg ? ": " : "");
            if (msg) snprintf(why + strlen(why), why_len - strlen(why), "%s", msg);
            state = CSR_DENIED;
        }
    }
    const char *b64 = json_str_at(obj, "status", "certificate");
    if (state == CSR_PENDING && b64 && *b64) {
        unsigned char *pem;
        size_t len;
        if (base64_decode(b64, strlen(b64), &pem, &len) == 0) {
            *cert = (char *)pem;
            state = CSR_ISSUED;
        }
    }
    json_decref(obj);
    return state;
}

/* --- files ---------------------------------------------------------------- */

static char *current_path(const bootstrap_t *b, const mcert_t *m)
{
    return xasprintf("%s/%s-current.pem", b->pki_dir, m->prefix);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes all but the newest two <prefix>-<time>.pem files. */
static void prune_files(const bootstrap_t *b, const mcert_t *m)
{
    DIR *d = opendir(b->pki_dir);
    if (!d) return;
    strvec_t names = STRVEC_INIT;
    size_t plen = strlen(m->prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, m->prefix, plen) == 0 && n[plen] == '-' &&
            isdigit((unsigned char)n[plen + 1]))
            strvec_push(&names, n);
    }
    closedir(d);
    /* Names sort by time (fixed-width timestamps). */
    qsort(names.items, names.len, sizeof *names.items, compare_names);
    for (size_t i = 0; i + 2 < names.len; i++) {
        char *p = fs_join(b->pki_dir, names.items[i]);
        unlink(p);
        free(p);
    }
    strvec_free(&names);
}

static void stamp(char *buf, size_t len)
{
    int64_t now = time_now_ns();
    time_t secs = (time_t)(now / NS_PER_SEC);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char t[32];
    strftime(t, sizeof t, "%Y-%m-%d-%H-%M-%S", &tm);
    snprintf(buf, len, "%s-%09lld", t, (long long)(now % NS_PER_SEC));
}

static void plan_renewal(bootstrap_t *b, mcert_t *m)
{
    if (b->rotate_after_ns > 0) {
        m->rotate_at = time_now_ns() + b->rotate_after_ns;
    } else {
        double jitter = (double)rand_r(&b->seed) / ((double)RAND_MAX + 1.0);
        m->rotate_at = bootstrap_rotation_deadline(m->not_before, m->not_after, jitter);
    }
}

/* Takes cert_pem/key_pem (owned) as m's certificate in use. */
static int adopt(bootstrap_t *b, mcert_t *m, char *cert_pem, char *key_pem, err_t *err)
{
    pki_cert_info_t info;
    if (pki_cert_info(cert_pem, &info, err) == -1) {
        free(cert_pem);
        free(key_pem);
        return -1;
    }
    free(m->cert_pem);
    free(m->key_pem);
    m->cert_pem = cert_pem;
    m->key_pem = key_pem;
    m->not_before = info.not_before_ns;
    m->not_after = info.not_after_ns;
    m->self_signed = info.self_signed;
    plan_renewal(b, m);
    metrics_cert_expiry(m->metric, info.not_after_ns);
    return 0;
}

/* Writes a signed pair to a new file and points <prefix>-current.pem at it. */
static int store(bootstrap_t *b, const mcert_t *m, const char *cert_pem, const char *key_pem,
                 err_t *err)
{
    char ts[64];
    stamp(ts, sizeof ts);
    char *base = xasprintf("%s-%s.pem", m->prefix, ts);
    char *path = fs_join(b->pki_dir, base);
    char *tmp = xasprintf("%s/.%s-current.tmp", b->pki_dir, m->prefix);
    char *cur = current_path(b, m);
    strbuf_t text = STRBUF_INIT;
    strbuf_puts(&text, cert_pem);
    if (text.len && text.data[text.len - 1] != '\n') strbuf_putc(&text, '\n');
    strbuf_puts(&text, key_pem);
    int rc = fs_write_atomic(path, text.data, text.len, 0600, err);
    if (rc == 0) {
        unlink(tmp);
        if (symlink(base, tmp) == -1 || rename(tmp, cur) == -1) {
            rc = err_errno(err, "%s", cur);
            unlink(tmp);
        }
    }
    if (rc == 0) prune_files(b, m);
    strbuf_free(&text);
    free(cur);
    free(tmp);
    free(path);
    free(base);
    return rc;
}

/* Reads <prefix>-current.pem when it holds a pair for this node valid for
 * at least another minute. */
static bool load_current(bootstrap_t *b, mcert_t *m, char **cert_pem, char **key_pem)
{
    *cert_pem = *key_pem = NULL;
    char *cur = current_path(b, m), *text = NULL;
    bool ok = false;
    if (fs_read_all(cur, &text, NULL, NULL) == 0) {
        char *c = pki_pem_select(text, false), *k = pki_pem_select(text, true);
        pki_cert_info_t info;
        char *want = xasprintf("system:node:%s", b->node_name);
        ok = *c && *k && pki_cert_info(c, &info, NULL) == 0 && strcmp(info.cn, want) == 0 &&
             info.not_after_ns > time_now_ns() + 60 * NS_PER_SEC && pki_key_matches(c, k);
        free(want);
        if (ok) {
            *cert_pem = c;
            *key_pem = k;
        } else {
            free(c);
            free(k);
        }
    }
    free(text);
    free(cur);
    return ok;
}

/* --- the identity thread --------------------------------------------------- */

static kube_client_t *bootstrap_api_client(bootstrap_t *b, err_t *err)
{
    kube_kubeconfig_t *cfg = NULL;
    if (!b->bootstrap_kubeconfig) {
        err_set(err, "no bootstrap kubeconfig");
        return NULL;
    }
    if (kube_kubeconfig_load(b->bootstrap_kubeconfig, NULL, &cfg, err) == -1) return NULL;
    kube_client_t *c = NULL;
    kube_client_new(cfg, &c, err);
    kube_kubeconfig_free(cfg);
    return c;
}

/* Installs an issued certificate: files, then the running client or server. */
static int install(bootstrap_t *b, mcert_t *m, char *cert_pem, char *key_pem, err_t *err)
{
    if (!pki_key_matches(cert_pem, key_pem)) {
        free(cert_pem);
        free(key_pem);
        return err_set(err, "the issued certificate does not match the key");
    }
    if (store(b, m, cert_pem, key_pem, err) == -1) {
        free(cert_pem);
        free(key_pem);
        return -1;
    }
    if (m == &b->ccert) {
        if (b->client && kube_client_set_cert(b->client, cert_pem, key_pem, err) == -1) {
            free(cert_pem);
            free(key_pem);
            return -1;
        }
        if (b->kubeconfig_path) {
            char *cur = current_path(b, m);
            int rc = kube_kubeconfig_write(b->kubeconfig_path, b->server, b->ca_pem, cur, cur, err);
            free(cur);
            if (rc == -1) diag_warn("client certificate: %s", err->msg);
        }
    }
    if (adopt(b, m, cert_pem, key_pem, err) == -1) return -1;
    if (m == &b->scert) {
        pthread_mutex_lock(&b->mu);
        bootstrap_cert_fn apply = b->quit ? NULL : b->apply;
        pthread_mutex_unlock(&b->mu);
        if (apply) apply(b->apply_ctx, m->cert_pem, m->key_pem);
    }
    return 0;
}

static void csr_done(mcert_t *m)
{
    free(m->csr_name);
    free(m->csr_key);
    m->csr_name = m->csr_key = NULL;
}

static void failed_filing(mcert_t *m, int64_t now)
{
    m->backoff = m->backoff ? m->backoff * 2 : BACKOFF_MIN_NS;
    if (m->backoff > BACKOFF_MAX_NS) m->backoff = BACKOFF_MAX_NS;
    m->retry_at = now + m->backoff;
    metrics_cert_renewal(m->metric, false);
}

static void step(bootstrap_t *b, mcert_t *m)
{
    int64_t now = time_mono_ns();
    err_t err = {""};
    /* An expired client certificate cannot file its own renewal. */
    bool expired = m == &b->ccert && time_now_ns() >= m->not_after;
    kube_client_t *via = b->client, *own = NULL;
    if (expired && b->bootstrap_kubeconfig) {
        own = bootstrap_api_client(b, &err);
        if (!own) {
            diag_warn("%s certificate expired; bootstrap credentials: %s", m->kind, err.msg);
            failed_filing(m, now);
            return;
        }
        via = own;
    }
    if (m->csr_name) {
        if (now < m->next_poll) goto out;
        char *cert = NULL, why[512];
        csr_state_t st = csr_check(via, m->csr_name, &cert, why, sizeof why, &err);
        switch (st) {
        case CSR_PENDING:
            m->next_poll = now + (now - m->filed_at < 120 * NS_PER_SEC ? 1 : 10) * NS_PER_SEC;
            if (now - m->last_note >= 300 * NS_PER_SEC) {
                m->last_note = now;
                diag_info("%s certificate: CSR %s waits for approval%s", m->kind, m->csr_name,
                          m == &b->scert ? " (kubectl certificate approve ...)" : "");
            }
            break;
        case CSR_ISSUED: {
            char *key = m->csr_key;
            m->csr_key = NULL;
            if (install(b, m, cert, key, &err) == -1) {
                diag_warn("%s certificate from CSR %s: %s", m->kind, m->csr_name, err.msg);
                failed_filing(m, now);
            } else {
                char until[40];
                time_format_rfc3339(until, sizeof until, m->not_after);
                diag_info("%s certificate from CSR %s in use, valid until %s", m->kind, m->csr_name,
                          until);
                metrics_cert_renewal(m->metric, true);
                m->backoff = 0;
            }
            csr_done(m);
            break;
        }
        case CSR_DENIED:
            diag_warn("%s certificate: CSR %s %s", m->kind, m->csr_name, why);
            csr_done(m);
            failed_filing(m, now);
            break;
        case CSR_GONE:
            diag_warn("%s certificate: CSR %s was deleted; filing a new one", m->kind, m->csr_name);
            csr_done(m);
            break;
        case CSR_ERROR:
            diag_debug("%s certificate: CSR %s: %s", m->kind, m->csr_name, err.msg);
            m->next_poll = now + 5 * NS_PER_SEC;
            break;
        }
        goto out;
    }
    if (!m->self_signed && time_now_ns() < m->rotate_at) goto out;
    if (now < m->retry_at) goto out;
    if (csr_file(b, via, m, &m->csr_name, &m->csr_key, &err) == -1) {
        diag_warn("%s certificate: %s", m->kind, err.msg);
        failed_filing(m, now);
        goto out;
    }
    m->filed_at = m->last_note = now;
    m->next_poll = now + 300 * NS_PER_MS;
    if (m->self_signed)
        diag_warn("serving HTTPS with a self-signed certificate until CSR %s (%s) is approved: "
                  "kubectl certificate approve %s",
                  m->csr_name, m->signer, m->csr_name);
    else
        diag_info("%s certificate: renewing, CSR %s filed", m->kind, m->csr_name);
out:
    if (own) kube_client_free(own);
}

static void *identity_main(void *arg)
{
    thread_set_name("cert-rotation");
    bootstrap_t *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->quit) {
        bool client = b->manage_client, serving = b->manage_serving;
        pthread_mutex_unlock(&b->mu);
        if (client) step(b, &b->ccert);
        if (serving) step(b, &b->scert);
        heap_release_if_asked(); /* a trim waits for each thread's malloc cache */
        pthread_mutex_lock(&b->mu);
        if (b->quit) break;
        cond_wait_until(&b->cond, &b->mu, deadline_after_ms(1000));
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void start_thread(bootstrap_t *b)
{
    pthread_mutex_lock(&b->mu);
    bool start = !b->thread_started && !b->quit;
    if (start) b->thread_started = pthread_create(&b->thread, NULL, identity_main, b) == 0;
    pthread_mutex_unlock(&b->mu);
    if (start && !b->thread_started) diag_error("cannot start the certificate renewal thread");
}

/* --- start-up ---------------------------------------------------------------- */

/* TLS bootstrap: a client certificate obtained with the bootstrap token. */
static int do_bootstrap(bootstrap_t *b, err_t *err)
{
    kube_client_t *bc = bootstrap_api_client(b, err);
    if (!bc) return err_prefix(err, "--bootstrap-kubeconfig %s", b->bootstrap_kubeconfig);
    char *name = NULL, *key = NULL;
    int rc = -1;
    if (csr_file(b, bc, &b->ccert, &name, &key, err) == -1) goto out;
    diag_info("TLS bootstrap: CSR %s filed for system:node:%s; waiting for it to be approved and "
              "signed",
              name, b->node_name);
    int64_t start = time_mono_ns(), noted = start;
    for (;;) {
        char *cert = NULL, why[512];
        err_t cerr = {""};
        csr_state_t st = csr_check(bc, name, &cert, why, sizeof why, &cerr);
        if (st == CSR_ISSUED) {
            char *k = key;
            key = NULL;
            rc = install(b, &b->ccert, cert, k, err);
            break;
        }
        if (st == CSR_DENIED) {
            err_set(err, "TLS bootstrap: CSR %s %s", name, why);
            break;
        }
        if (st == CSR_GONE) {
            err_set(err, "TLS bootstrap: CSR %s was deleted before it was signed", name);
            break;
        }
        int64_t now = time_mono_ns();
        if (now - start > BOOTSTRAP_WAIT_NS) {
            err_set(err, "TLS bootstrap: CSR %s not signed within an hour", name);
            break;
        }
        if (now - noted > 30 * NS_PER_SEC) {
            noted = now;
            diag_info("TLS bootstrap: still waiting for CSR %s%s%s", name,
                      st == CSR_ERROR ? ": " : "", st == CSR_ERROR ? cerr.msg : "");
        }
        time_sleep_ms(250);
    }
    if (rc == 0) {
        char until[40];
        time_format_rfc3339(until, sizeof until, b->ccert.not_after);
        diag_info("TLS bootstrap: client certificate from CSR %s, valid until %s", name, until);
    }
out:
    free(name);
    free(key);
    kube_client_free(bc);
    return rc;
}

static char *absolute(const char *path)
{
    char buf[PATH_MAX];
    if (path[0] == '/') return xstrdup(path);
    if (!getcwd(buf, sizeof buf)) return xstrdup(path);
    return fs_join(buf, path);
}

static int64_t env_seconds(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    double d = strtod(v, NULL);
    return d > 0 ? (int64_t)(d * (double)NS_PER_SEC) : 0;
}

static bootstrap_t *new_boot(const char *data_dir, const char *node_name)
{
    bootstrap_t *b = xcalloc(1, sizeof *b);
    b->data_dir = absolute(data_dir);
    b->pki_dir = fs_join(b->data_dir, "pki");
    b->node_name = xstrdup(node_name);
    b->ccert = (mcert_t){.kind = "client",
                         .signer = SIGNER_CLIENT,
                         .prefix = "kubelet-client",
                         .metric = METRICS_CERT_CLIENT};
    b->scert = (mcert_t){.kind = "serving",
                         .signer = SIGNER_SERVING,
                         .prefix = "kubelet-server",
                         .metric = METRICS_CERT_SERVING};
    b->rotate_after_ns = env_seconds("WASMLET_CERT_ROTATE_AFTER_SECONDS");
    b->expiration_s = env_seconds("WASMLET_CERT_EXPIRATION_SECONDS") / NS_PER_SEC;
    b->seed = (unsigned)time_now_ns() ^ (unsigned)getpid();
    pthread_mutex_init(&b->mu, NULL);
    cond_init_monotonic(&b->cond);
    return b;
}

/* Whether cfg holds a client certificate for this node valid for at least
 * another minute. */
static bool cert_usable(const bootstrap_t *b, const kube_kubeconfig_t *cfg)
{
    if (!cfg->cert_pem || !cfg->key_pem) return false;
    pki_cert_info_t info;
    char *want = xasprintf("system:node:%s", b->node_name);
    bool ok = pki_cert_info(cfg->cert_pem, &info, NULL) == 0 && strcmp(info.cn, want) == 0 &&
              info.not_after_ns > time_now_ns() + 60 * NS_PER_SEC;
    free(want);
    return ok;
}

static void take_api(bootstrap_t *b, const kube_kubeconfig_t *cfg)
{
    free(b->server);
    free(b->ca_pem);
    b->server = xstrdup(cfg->server);
    b->ca_pem = cfg->ca_pem ? xstrdup(cfg->ca_pem) : NULL;
}

int bootstrap_client(const char *kubeconfig, const char *bootstrap_kubeconfig, const char *data_dir,
                     const char *node_name, kube_client_t **client, bootstrap_t **boot, err_t *err)
{
    *client = NULL;
    *boot = NULL;
    bootstrap_t *b = new_boot(data_dir, node_name);
    kube_kubeconfig_t *cfg = NULL;
    if (fs_mkdir_p(b->pki_dir, 0700, err) == -1) goto fail;

    if (!bootstrap_kubeconfig) {
        if (kube_kubeconfig_load(kubeconfig, NULL, &cfg, err) == -1) goto fail;
        take_api(b, cfg);
        /* A kubeconfig an earlier bootstrap wrote names our current file:
         * keep renewing it. Anything else is used as it is. */
        char *cert = NULL, *key = NULL;
        if (cfg->cert_pem && load_current(b, &b->ccert, &cert, &key)) {
            char *mine = pki_pem_select(cfg->cert_pem, false);
            bool same = strcmp(mine, cert) == 0;
            free(mine);
            if (same) {
                /* adopt takes both, also when it fails */
                if (adopt(b, &b->ccert, cert, key, NULL) == 0) {
                    b->manage_client = true;
                    b->kubeconfig_path = absolute(kubeconfig);
                }
                cert = key = NULL;
            }
        }
        free(cert);
        free(key);
    } else {
        b->bootstrap_kubeconfig = absolute(bootstrap_kubeconfig);
        b->kubeconfig_path = kubeconfig ? absolute(kubeconfig) : fs_join(b->data_dir, "kubeconfig");
        struct stat st;
        if (stat(b->kubeconfig_path, &st) == 0) {
            err_t lerr;
            if (kube_kubeconfig_load(b->kubeconfig_path, NULL, &cfg, &lerr) == -1) {
                diag_warn("%s: %s; bootstrapping again", b->kubeconfig_path, lerr.msg);
            } else if (!cfg->cert_pem && (cfg->token || cfg->token_file)) {
                /* Token credentials: nothing to renew. */
                take_api(b, cfg);
                free(b->kubeconfig_path);
                b->kubeconfig_path = NULL;
            } else if (!cert_usable(b, cfg)) {
                diag_info("%s: no valid client certificate for node %s; bootstrapping again",
                          b->kubeconfig_path, node_name);
                kube_kubeconfig_free(cfg);
                cfg = NULL;
            } else {
                take_api(b, cfg);
                if (adopt(b, &b->ccert, pki_pem_select(cfg->cert_pem, false),
                          pki_pem_select(cfg->key_pem, true), err) == -1)
                    goto fail;
                b->manage_client = true;
                diag_info("client certificate from %s (rotated by this node)", b->kubeconfig_path);
            }
        }
        if (!cfg) {
            kube_kubeconfig_t *bcfg = NULL;
            if (kube_kubeconfig_load(b->bootstrap_kubeconfig, NULL, &bcfg, err) == -1) {
                err_prefix(err, "--bootstrap-kubeconfig");
                goto fail;
            }
            take_api(b, bcfg);
            kube_kubeconfig_free(bcfg);
            char *cert, *key;
            if (load_current(b, &b->ccert, &cert, &key)) {
                diag_info("client certificate from %s/kubelet-client-current.pem", b->pki_dir);
                if (adopt(b, &b->ccert, cert, key, err) == -1) goto fail;
            } else if (do_bootstrap(b, err) == -1) {
                goto fail;
            }
            char *cur = current_path(b, &b->ccert);
            int rc = kube_kubeconfig_write(b->kubeconfig_path, b->server, b->ca_pem, cur, cur, err);
            free(cur);
            if (rc == -1) goto fail;
            cfg = kube_kubeconfig_new(b->server, b->ca_pem, b->ccert.cert_pem, b->ccert.key_pem,
                                      NULL);
            b->manage_client = true;
        }
    }
    if (kube_client_new(cfg, client, err) == -1) goto fail;
    kube_kubeconfig_free(cfg);
    b->client = *client;
    if (b->manage_client) start_thread(b);
    *boot = b;
    return 0;
fail:
    kube_kubeconfig_free(cfg);
    bootstrap_free(b);
    return -1;
}

const char *bootstrap_ca_pem(const bootstrap_t *b)
{
    return b ? b->ca_pem : NULL;
}

int bootstrap_serving_cert(bootstrap_t *b, const char *const *ips, size_t nips,
                           const char *const *dns, size_t ndns, char **cert_pem, char **key_pem,
                           err_t *err)
{
    *cert_pem = *key_pem = NULL;
    for (size_t i = 0; i < nips; i++)
        strvec_push(&b->ips, ips[i]);
    for (size_t i = 0; i < ndns; i++)
        strvec_push(&b->dns, dns[i]);
    char *cert = NULL, *key = NULL;
    if (load_current(b, &b->scert, &cert, &key)) {
        diag_info("serving certificate from %s/kubelet-server-current.pem", b->pki_dir);
    } else {
        char *cn = xasprintf("%s@%lld", ndns ? dns[0] : b->node_name,
                             (long long)(time_now_ns() / NS_PER_SEC));
        pki_name_t pn = {.cn = cn, .dns = dns, .ndns = ndns, .ips = ips, .nips = nips};
        int rc = pki_key_new(&key, err);
        if (rc == 0) rc = pki_self_signed(key, &pn, SELF_SIGNED_SECONDS, &cert, err);
        free(cn);
        if (rc == -1) {
            free(key);
            return err_prefix(err, "self-signed serving certificate");
        }
    }
    if (adopt(b, &b->scert, cert, key, err) == -1) return -1;
    *cert_pem = xstrdup(b->scert.cert_pem);
    *key_pem = xstrdup(b->scert.key_pem);
    return 0;
}

void bootstrap_serving_manage(bootstrap_t *b, bootstrap_cert_fn apply, void *ctx)
{
    pthread_mutex_lock(&b->mu);
    b->apply = apply;
    b->apply_ctx = ctx;
    b->manage_serving = b->scert.cert_pem != NULL;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    start_thread(b);
}

void bootstrap_stop(bootstrap_t *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->quit = true;
    b->apply = NULL;
    pthread_cond_signal(&b->cond);
    bool join = b->thread_started;
    b->thread_started = false;
    pthread_mutex_unlock(&b->mu);
    if (join) pthread_join(b->thread, NULL);
}

void bootstrap_tick(bootstrap_t *b)
{
    (void)b;
}

static void mcert_free(mcert_t *m)
{
    free(m->cert_pem);
    free(m->key_pem);
    csr_done(m);
}

void bootstrap_free(bootstrap_t *b)
{
    if (!b) return;
    bootstrap_stop(b);
    mcert_free(&b->ccert);
    mcert_free(&b->scert);
    strvec_free(&b->ips);
    strvec_free(&b->dns);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    free(b->data_dir);
    free(b->pki_dir);
    free(b->node_name);
    free(b->kubeconfig_path);
    free(b->bootstrap_kubeconfig);
    free(b->server);
    free(b->ca_pem);
    free(b);
}

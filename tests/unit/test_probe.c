/* test_probe.c: unit tests for probe/ and the probe and lifecycle fields of
 * kube/pod_spec.h.
 *
 * Attempts run against in-process listeners on loopback: an HTTP server
 * (200, 500, same-host and other-host redirects, a redirect loop, a reply
 * slower than the timeout, a flag that flips a path from 500 to 200), the
 * same server over TLS with a self-signed certificate, and a port known to
 * be closed. When the test may create network namespaces (root), a
 * listener inside one is reached only through the namespace path. The
 * timer queue is tested with probes whose "second" is a few milliseconds
 * (probe_set_spec_t.unit_ms): thresholds, startup gating, initial delay,
 * on-hold after a liveness failure, stopping, hooks, and hundreds of sets
 * on two threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "net/net.h"
#include "probe/probe.h"
#include "util/pki.h"
#include "util/strbuf.h"
#include "util/time.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- an in-process HTTP(S) server ------------------------------------------------------ */

typedef struct server {
    int fd;
    int port;
    SSL_CTX *tls; /* NULL: plain HTTP */
    pthread_t thread;
    atomic_bool quit;
    atomic_int active;   /* connection handlers running */
    atomic_int requests; /* requests answered (counted just before the answer) */
    atomic_bool flip;    /* /flip answers 200 once set, 500 before */
    pthread_mutex_t mu;
    char last_request[4096]; /* mu */
} server_t;

typedef struct conn {
    server_t *s;
    int fd;
} conn_t;

static void conn_write(SSL *ssl, int fd, const char *data)
{
    size_t len = strlen(data);
    if (ssl)
        SSL_write(ssl, data, (int)len);
    else if (write(fd, data, len) < 0) {
        /* the client went: nothing to do */
    }
}

static void *conn_main(void *arg)
{
    conn_t *cn = arg;
    server_t *s = cn->s;
    SSL *ssl = NULL;
    char req[4096] = "";
    size_t len = 0;
    if (s->tls) {
        ssl = SSL_new(s->tls);
        SSL_set_fd(ssl, cn->fd);
        if (SSL_accept(ssl) <= 0) goto done;
    }
    while (len < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        struct pollfd p = {.fd = cn->fd, .events = POLLIN};
        if (!(ssl && SSL_pending(ssl)) && poll(&p, 1, 2000) <= 0) goto done;
        int n = ssl ? SSL_read(ssl, req + len, (int)(sizeof req - 1 - len))
                    : (int)read(cn->fd, req + len, sizeof req - 1 - len);
        if (n <= 0) goto done;
        len += (size_t)n;
        req[len] = '\0';
    }
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_request, sizeof s->last_request, "%s", req);
    pthread_mutex_unlock(&s->mu);
    char path[256] = "";
    sscanf(req, "GET %255s", path);
    char reply[1024];
    if (strcmp(path, "/ok") == 0) {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfine");
    } else if (strcmp(path, "/fail") == 0) {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 500 Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbad!");
    } else if (strcmp(path, "/flip") == 0) {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 atomic_load(&s->flip) ? "200 OK" : "503 Not Yet");
    } else if (strcmp(path, "/redir-same") == 0) {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n");
    } else if (strcmp(path, "/redir-other") == 0) {
        /* Another host (a name that resolves nowhere): not followed. */
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 301 Moved\r\nLocation: http://elsewhere.invalid/ok\r\nContent-Length: "
                 "5\r\nConnection: close\r\n\r\nmoved");
    } else if (strcmp(path, "/loop") == 0) {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n");
    } else if (strcmp(path, "/slow") == 0) {
        /* Answers after 1.5 s, or when the client gives up first. */
        struct pollfd p = {.fd = cn->fd, .events = POLLIN | POLLRDHUP};
        poll(&p, 1, 1500);
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlate");
    } else {
        snprintf(reply, sizeof reply,
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    /* Counted before the answer goes out, so that a client that has its
     * answer sees its request counted. */
    atomic_fetch_add(&s->requests, 1);
    conn_write(ssl, cn->fd, reply);
done:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    /* Close only once the client has: closing with its bytes unread would
     * reset the connection before it read the reply. */
    shutdown(cn->fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {.fd = cn->fd, .events = POLLIN};
        char sink[512];
        if (poll(&p, 1, 1000) <= 0 || read(cn->fd, sink, sizeof sink) <= 0) break;
    }
    close(cn->fd);
    free(cn);
    atomic_fetch_sub(&s->active, 1);
    return NULL;
}

static void *server_main(void *arg)
{
    server_t *s = arg;
    while (!atomic_load(&s->quit)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) continue;
        conn_t *cn = malloc(sizeof *cn);
        cn->s = s;
        cn->fd = fd;
        atomic_fetch_add(&s->active, 1);
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, cn) == 0) {
            pthread_detach(t);
        } else {
            close(fd);
            free(cn);
            atomic_fetch_sub(&s->active, 1);
        }
    }
    return NULL;
}

static int listen_loopback_backlog(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    *port = ntohs(a.sin_port);
    return fd;
}

static int listen_loopback(int *port)
{
    return listen_loopback_backlog(port, 128);
}

/* Starts a server on fd (a listener; -1: a new one on loopback). */
static server_t *server_start(int fd, int port, bool tls)
{
    server_t *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = fd >= 0 ? fd : listen_loopback(&s->port);
    if (fd >= 0) s->port = port;
    if (tls) {
        char *key = NULL, *cert = NULL;
        pki_name_t n = {.cn = "probe-test", .ips = (const char *[]){"127.0.0.1"}, .nips = 1};
        assert_int_equal(pki_key_new(&key, NULL), 0);
        assert_int_equal(pki_self_signed(key, &n, 3600, &cert, NULL), 0);
        s->tls = SSL_CTX_new(TLS_server_method());
        BIO *kb = BIO_new_mem_buf(key, -1), *cb = BIO_new_mem_buf(cert, -1);
        EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
        X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
        assert_int_equal(SSL_CTX_use_certificate(s->tls, x), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(s->tls, pk), 1);
        X509_free(x);
        EVP_PKEY_free(pk);
        BIO_free(kb);
        BIO_free(cb);
        free(key);
        free(cert);
    }
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return s;
}

static void server_stop(server_t *s)
{
    atomic_store(&s->quit, true);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < 400 && atomic_load(&s->active) > 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&s->active), 0);
    close(s->fd);
    if (s->tls) SSL_CTX_free(s->tls);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int port;
    int fd = listen_loopback(&port);
    close(fd);
    return port;
}

static podspec_action_t http_action(int port, const char *path)
{
    return (podspec_action_t){.kind = ACTION_HTTP_GET, .port = port, .path = path};
}

static const probe_target_t loopback = {.pod_ip = "127.0.0.1"};

/* --- parsing ----------------------------------------------------------------------------- */

static podspec_t *parse_yaml(const char *yaml, err_t *err)
{
    json_t *docs = NULL;
    if (manifest_parse(yaml, strlen(yaml), &docs, err) == -1) return NULL;
    podspec_t *spec = NULL;
    int rc = podspec_parse(json_array_get(docs, 0), &spec, err);
    json_decref(docs);
    return rc == 0 ? spec : NULL;
}

static void parses_probes_with_defaults(void **state)
{
    (void)state;
    err_t err;
    podspec_t *s = parse_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                              "  containers:\n"
                              "  - name: app\n"
                              "    image: app.wasm\n"
                              "    ports: [{name: web, containerPort: 8080}]\n"
                              "    livenessProbe:\n"
                              "      httpGet: {path: /healthz, port: web, scheme: HTTPS,\n"
                              "                httpHeaders: [{name: X-A, value: b}]}\n"
                              "      terminationGracePeriodSeconds: 7\n"
                              "    readinessProbe:\n"
                              "      tcpSocket: {port: 9000, host: 127.0.0.1}\n"
                              "      periodSeconds: 2\n"
                              "      successThreshold: 2\n"
                              "      failureThreshold: 5\n"
                              "      initialDelaySeconds: 4\n"
                              "      timeoutSeconds: 3\n"
                              "    startupProbe: {grpc: {port: 9090}}\n"
                              "    lifecycle:\n"
                              "      postStart: {httpGet: {port: 8080}}\n"
                              "      preStop: {sleep: {seconds: 3}}\n",
                              &err);
    assert_non_null(s);
    const podspec_container_t *c = &s->containers[0];
    const podspec_probe_t *l = c->liveness_probe;
    assert_non_null(l);
    assert_int_equal(l->action.kind, ACTION_HTTP_GET);
    assert_int_equal(l->action.port, 8080); /* by name */
    assert_string_equal(l->action.port_name, "web");
    assert_string_equal(l->action.path, "/healthz");
    assert_true(l->action.https);
    assert_null(l->action.host);
    assert_int_equal(l->action.nheaders, 1);
    assert_string_equal(l->action.headers[0].name, "X-A");
    assert_string_equal(l->action.headers[0].value, "b");
    /* The API server's defaults. */
    assert_int_equal(l->initial_delay_seconds, 0);
    assert_int_equal(l->timeout_seconds, 1);
    assert_int_equal(l->period_seconds, 10);
    assert_int_equal(l->success_threshold, 1);
    assert_int_equal(l->failure_threshold, 3);
    assert_int_equal(l->termination_grace, 7);

    const podspec_probe_t *r = c->readiness_probe;
    assert_int_equal(r->action.kind, ACTION_TCP_SOCKET);
    assert_int_equal(r->action.port, 9000);
    assert_string_equal(r->action.host, "127.0.0.1");
    assert_int_equal(r->period_seconds, 2);
    assert_int_equal(r->success_threshold, 2);
    assert_int_equal(r->failure_threshold, 5);
    assert_int_equal(r->initial_delay_seconds, 4);
    assert_int_equal(r->timeout_seconds, 3);
    assert_int_equal(r->termination_grace, -1);

    assert_int_equal(c->startup_probe->action.kind, ACTION_GRPC);
    assert_int_equal(c->startup_probe->action.port, 9090);
    assert_int_equal(c->post_start->kind, ACTION_HTTP_GET);
    assert_string_equal(c->post_start->path, "/"); /* defaulted */
    assert_false(c->post_start->https);
    assert_int_equal(c->pre_stop->kind, ACTION_SLEEP);
    assert_int_equal(c->pre_stop->sleep_seconds, 3);
    podspec_free(s);

    /* No probes, no hooks: all NULL. */
    s = parse_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                   "  containers: [{name: a, image: a.wasm}]\n",
                   &err);
    assert_non_null(s);
    assert_null(s->containers[0].liveness_probe);
    assert_null(s->containers[0].readiness_probe);
    assert_null(s->containers[0].startup_probe);
    assert_null(s->containers[0].post_start);
    assert_null(s->containers[0].pre_stop);
    podspec_free(s);

    /* An unknown port name parses (the attempt fails saying so). */
    s = parse_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                   "  containers:\n  - name: a\n    image: a.wasm\n"
                   "    readinessProbe: {tcpSocket: {port: nope}}\n",
                   &err);
    assert_non_null(s);
    assert_int_equal(s->containers[0].readiness_probe->action.port, -1);
    char out[PROBE_OUTPUT_MAX];
    assert_int_equal(
        probe_attempt(&s->containers[0].readiness_probe->action, &loopback, 100, out, sizeof out),
        PROBE_FAILURE);
    assert_non_null(strstr(out, "nope"));
    podspec_free(s);
}

static void rejects_bad_probes(void **state)
{
    (void)state;
    static const struct {
        const char *container;
        const char *field;
    } cases[] = {
        {"livenessProbe: {periodSeconds: 3}", "livenessProbe: must specify a handler type"},
        {"livenessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}", "more than 1 handler type"},
        {"livenessProbe: {tcpSocket: {port: 70000}}", "livenessProbe.tcpSocket.port"},
        {"livenessProbe: {tcpSocket: {port: 1}, successThreshold: 2}",
         "livenessProbe.successThreshold: must be 1"},
        {"readinessProbe: {tcpSocket: {port: 1}, terminationGracePeriodSeconds: 3}",
         "not allowed on a readiness probe"},
        {"readinessProbe: {tcpSocket: {port: 1}, periodSeconds: -1}",
         "readinessProbe.periodSeconds"},
        {"readinessProbe: {sleep: {seconds: 1}}", "readinessProbe.sleep: not allowed in a probe"},
        {"readinessProbe: {httpGet: {port: 1, scheme: FTP}}", "scheme: \"FTP\""},
        {"lifecycle: {preStop: {grpc: {port: 1}}}", "lifecycle.preStop.grpc: not allowed"},
        {"lifecycle: {preStop: {sleep: {seconds: -2}}}", "preStop.sleep.seconds"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                 "  containers:\n  - name: a\n    image: a.wasm\n    %s\n",
                 cases[i].container);
        err_t err = {0};
        podspec_t *s = parse_yaml(yaml, &err);
        if (s) fail_msg("accepted: %s", cases[i].container);
        if (!strstr(err.msg, cases[i].field))
            fail_msg("%s: message \"%s\" does not name %s", cases[i].container, err.msg,
                     cases[i].field);
        if (!strstr(err.msg, "spec.containers[0]"))
            fail_msg("%s: message \"%s\" does not name the container", cases[i].container, err.msg);
    }
}

/* --- one attempt ---------------------------------------------------------------------------- */

static void http_attempts(void **state)
{
    (void)state;
    server_t *s = server_start(-1, 0, false);
    char out[PROBE_OUTPUT_MAX];
    podspec_action_t a = http_action(s->port, "/ok");
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_SUCCESS);
    assert_string_equal(out, "fine");
    /* The kubelet's User-Agent and Accept. */
    pthread_mutex_lock(&s->mu);
    assert_non_null(strstr(s->last_request, "User-Agent: kube-probe/1.37\r\n"));
    assert_non_null(strstr(s->last_request, "Accept: */*\r\n"));
    pthread_mutex_unlock(&s->mu);

    /* The probe's headers are sent; a Host header sets the host, a
     * User-Agent replaces the kubelet's. */
    podspec_http_header_t hs[] = {
        {"X-Probe", "yes"}, {"Host", "app.example"}, {"User-Agent", "mine"}};
    a.headers = hs;
    a.nheaders = 3;
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_SUCCESS);
    pthread_mutex_lock(&s->mu);
    assert_non_null(strstr(s->last_request, "X-Probe: yes\r\n"));
    assert_non_null(strstr(s->last_request, "Host: app.example\r\n"));
    assert_non_null(strstr(s->last_request, "User-Agent: mine\r\n"));
    assert_null(strstr(s->last_request, "kube-probe"));
    pthread_mutex_unlock(&s->mu);
    a.headers = NULL;
    a.nheaders = 0;

    /* A path without its slash gets one. */
    a.path = "ok";
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_SUCCESS);

    a.path = "/fail";
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_FAILURE);
    assert_string_equal(out, "HTTP probe failed with statuscode: 500");

    a.path = "/missing";
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_FAILURE);
    assert_string_equal(out, "HTTP probe failed with statuscode: 404");

    /* A same-host redirect is followed to its 200. */
    a.path = "/redir-same";
    int before = atomic_load(&s->requests);
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_SUCCESS);
    assert_string_equal(out, "fine");
    assert_int_equal(atomic_load(&s->requests) - before, 2);

    /* Another host: not followed, a success with a warning. */
    a.path = "/redir-other";
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_WARNING);
    assert_string_equal(out, "Probe terminated redirects, Response body: moved");

    /* A loop stops after 10 redirects and fails. */
    a.path = "/loop";
    before = atomic_load(&s->requests);
    assert_int_equal(probe_attempt(&a, &loopback, 5000, out, sizeof out), PROBE_FAILURE);
    assert_non_null(strstr(out, "stopped after 10 redirects"));
    assert_int_equal(atomic_load(&s->requests) - before, 10);

    /* Slower than the timeout: a failure within about the timeout. */
    a.path = "/slow";
    int64_t t0 = time_mono_ns();
    assert_int_equal(probe_attempt(&a, &loopback, 300, out, sizeof out), PROBE_FAILURE);
    int64_t took = (time_mono_ns() - t0) / NS_PER_MS;
    assert_true(took >= 250 && took < 1200);
    assert_non_null(strstr(out, "context deadline exceeded"));
    server_stop(s);

    /* A closed port: refused, in the kubelet's words. */
    int port = closed_port();
    a = http_action(port, "/");
    assert_int_equal(probe_attempt(&a, &loopback, 2000, out, sizeof out), PROBE_FAILURE);
    char want[256];
    snprintf(want, sizeof want,
             "Get \"http://127.0.0.1:%d/\": dial tcp 127.0.0.1:%d: connect: connection refused",
             port, port);
    assert_string_equal(out, want);

    /* No host and no pod IP. */
    probe_target_t none = {0};
    assert_int_equal(probe_attempt(&a, &none, 100, out, sizeof out), PROBE_FAILURE);
    assert_non_null(strstr(out, "no IP"));
}

static void https_without_verification(void **state)
{
    (void)state;
    server_t *s = server_start(-1, 0, true);
    char out[PROBE_OUTPUT_MAX];
    podspec_action_t a = http_action(s->port, "/ok");
    a.https = true;
    assert_int_equal(probe_attempt(&a, &loopback, 3000, out, sizeof out), PROBE_SUCCESS);
    assert_string_equal(out, "fine");
    a.path = "/fail";
    assert_int_equal(probe_attempt(&a, &loopback, 3000, out, sizeof out), PROBE_FAILURE);
    assert_string_equal(out, "HTTP probe failed with statuscode: 500");
    /* Plain HTTP to the TLS port does not pass. */
    a.https = false;
    a.path = "/ok";
    assert_int_equal(probe_attempt(&a, &loopback, 1000, out, sizeof out), PROBE_FAILURE);
    server_stop(s);
}

static void tcp_and_impossible_actions(void **state)
{
    (void)state;
    int port;
    int fd = listen_loopback(&port);
    char out[PROBE_OUTPUT_MAX];
    podspec_action_t a = {.kind = ACTION_TCP_SOCKET, .port = port};
    assert_int_equal(probe_attempt(&a, &loopback, 1000, out, sizeof out), PROBE_SUCCESS);
    close(fd);
    a.port = closed_port();
    assert_int_equal(probe_attempt(&a, &loopback, 1000, out, sizeof out), PROBE_FAILURE);
    char want[128];
    snprintf(want, sizeof want, "dial tcp 127.0.0.1:%d: connect: connection refused", a.port);
    assert_string_equal(out, want);

    podspec_action_t ex = {.kind = ACTION_EXEC};
    assert_int_equal(probe_attempt(&ex, &loopback, 1000, out, sizeof out), PROBE_FAILURE);
    assert_non_null(strstr(out, "no process to exec in"));
    podspec_action_t grpc = {.kind = ACTION_GRPC, .port = 9090};
    assert_int_equal(probe_attempt(&grpc, &loopback, 1000, out, sizeof out), PROBE_FAILURE);
    assert_non_null(strstr(out, "HTTP/2"));
}

/* A listener inside a network namespace is reached through the namespace's
 * path, and is not there from the host's namespace. */
static void attempts_inside_a_network_namespace(void **state)
{
    (void)state;
    char dir[] = "/tmp/wasmlet-test-probe-ns-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *ns = NULL;
    err_t err;
    if (net_ns_create(dir, "probe", &ns, &err) == -1) {
        rmdir(dir);
        print_message("no network namespaces here (%s)\n", err.msg);
        skip();
    }
    int port = 0;
    int lfd = net_ns_listen_tcp(ns, "127.0.0.1", 0, 16, &port, &err);
    assert_true(lfd >= 0);
    server_t *s = server_start(lfd, port, false);
    probe_target_t inside = {.pod_ip = "127.0.0.1", .netns = ns};
    char out[PROBE_OUTPUT_MAX];
    podspec_action_t tcp = {.kind = ACTION_TCP_SOCKET, .port = port};
    assert_int_equal(probe_attempt(&tcp, &inside, 1000, out, sizeof out), PROBE_SUCCESS);
    podspec_action_t http = http_action(port, "/ok");
    assert_int_equal(probe_attempt(&http, &inside, 2000, out, sizeof out), PROBE_SUCCESS);
    assert_string_equal(out, "fine");
    /* The host's loopback has no such listener. */
    assert_int_equal(probe_attempt(&http, &loopback, 2000, out, sizeof out), PROBE_FAILURE);
    assert_non_null(strstr(out, "connection refused"));
    server_stop(s);
    assert_int_equal(net_ns_delete(ns, &err), 0);
    net_ns_run_dir_release(dir, &err);
    rmdir(dir);
    free(ns);
}

/* --- thresholds ------------------------------------------------------------------------------ */

static void thresholds_as_the_kubelet(void **state)
{
    (void)state;
    podspec_probe_t p = {.success_threshold = 1, .failure_threshold = 3};
    probe_state_t st;
    probe_state_init(&st, PROBE_LIVENESS);
    assert_int_equal(st.current, PROBE_SUCCESS);
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_FAILURE));
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_FAILURE));
    /* A success in between starts the count again. */
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_SUCCESS));
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_FAILURE));
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_FAILURE));
    assert_true(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_FAILURE));
    assert_int_equal(st.current, PROBE_FAILURE);
    assert_true(st.on_hold);
    /* On hold: nothing changes until the container restarts. */
    assert_false(probe_state_feed(&st, PROBE_LIVENESS, &p, PROBE_SUCCESS));
    assert_int_equal(st.current, PROBE_FAILURE);

    podspec_probe_t r = {.success_threshold = 2, .failure_threshold = 2};
    probe_state_init(&st, PROBE_READINESS);
    assert_int_equal(st.current, PROBE_FAILURE);
    assert_false(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_SUCCESS));
    assert_true(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_WARNING)); /* counts as success */
    assert_int_equal(st.current, PROBE_SUCCESS);
    assert_false(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_FAILURE));
    assert_true(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_FAILURE));
    assert_false(st.on_hold); /* readiness goes on */
    assert_false(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_SUCCESS));
    assert_true(probe_state_feed(&st, PROBE_READINESS, &r, PROBE_SUCCESS));

    podspec_probe_t su = {.success_threshold = 1, .failure_threshold = 1};
    probe_state_init(&st, PROBE_STARTUP);
    assert_int_equal(st.current, PROBE_UNKNOWN);
    assert_true(probe_state_feed(&st, PROBE_STARTUP, &su, PROBE_FAILURE));
    assert_true(st.on_hold);
}

/* --- sets on the timer queue ------------------------------------------------------------------ */

#define MAX_RECORDS 256

typedef struct record {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct {
        bool changed; /* else an attempt */
        probe_kind_t kind;
        probe_result_t r;
        int64_t at;
        char output[160];
    } rec[MAX_RECORDS];
    int n;
} record_t;

static void rec_add(record_t *rc, bool changed, probe_kind_t kind, probe_result_t r,
                    const char *out)
{
    pthread_mutex_lock(&rc->mu);
    if (rc->n < MAX_RECORDS) {
        rc->rec[rc->n].changed = changed;
        rc->rec[rc->n].kind = kind;
        rc->rec[rc->n].r = r;
        rc->rec[rc->n].at = time_mono_ns();
        snprintf(rc->rec[rc->n].output, sizeof rc->rec[rc->n].output, "%s", out ? out : "");
        rc->n++;
    }
    pthread_cond_broadcast(&rc->cond);
    pthread_mutex_unlock(&rc->mu);
}

static void on_attempt(void *ctx, probe_kind_t kind, probe_result_t r, const char *out)
{
    rec_add(ctx, false, kind, r, out);
}

static void on_changed(void *ctx, probe_kind_t kind, probe_result_t r)
{
    rec_add(ctx, true, kind, r, NULL);
}

static record_t *rec_new(void)
{
    record_t *rc = calloc(1, sizeof *rc);
    pthread_mutex_init(&rc->mu, NULL);
    pthread_cond_init(&rc->cond, NULL);
    return rc;
}

static void rec_free(record_t *rc)
{
    pthread_mutex_destroy(&rc->mu);
    pthread_cond_destroy(&rc->cond);
    free(rc);
}

/* Index of the first change of kind to r, waiting up to ms; -1: none. */
static int wait_change(record_t *rc, probe_kind_t kind, probe_result_t r, int ms)
{
    int64_t until = time_mono_ns() + ms * NS_PER_MS;
    pthread_mutex_lock(&rc->mu);
    for (;;) {
        for (int i = 0; i < rc->n; i++)
            if (rc->rec[i].changed && rc->rec[i].kind == kind && rc->rec[i].r == r) {
                pthread_mutex_unlock(&rc->mu);
                return i;
            }
        if (time_mono_ns() >= until) break;
        pthread_mutex_unlock(&rc->mu);
        usleep(2000);
        pthread_mutex_lock(&rc->mu);
    }
    pthread_mutex_unlock(&rc->mu);
    return -1;
}

static int count(record_t *rc, bool changed, probe_kind_t kind)
{
    pthread_mutex_lock(&rc->mu);
    int n = 0;
    for (int i = 0; i < rc->n; i++)
        n += rc->rec[i].changed == changed && rc->rec[i].kind == kind;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

static podspec_probe_t probe_of(podspec_action_t a, int period, int failures)
{
    return (podspec_probe_t){.action = a,
                             .timeout_seconds = 20,
                             .period_seconds = period,
                             .success_threshold = 1,
                             .failure_threshold = failures,
                             .termination_grace = -1};
}

/* A liveness probe against a closed port: Unhealthy attempts, then after
 * failureThreshold of them the Failure, then nothing more (on hold);
 * readiness against a listener passes meanwhile. */
static void liveness_fails_after_threshold_and_holds(void **state)
{
    (void)state;
    probe_sched_t *sched = probe_sched_new(2);
    server_t *s = server_start(-1, 0, false);
    record_t *rc = rec_new();
    podspec_probe_t live = probe_of(http_action(closed_port(), "/"), 1, 3);
    podspec_probe_t ready = probe_of(http_action(s->port, "/ok"), 1, 3);
    probe_set_spec_t spec = {.probes = {[PROBE_LIVENESS] = &live, [PROBE_READINESS] = &ready},
                             .target = loopback,
                             .started_mono = time_mono_ns(),
                             .unit_ms = 20,
                             .ns = "ns",
                             .pod = "p",
                             .uid = "uid-live",
                             .container = "c"};
    probe_set_ops_t ops = {.ctx = rc, .attempt = on_attempt, .changed = on_changed};
    probe_set_t *set = probe_set_start(sched, &spec, &ops);
    assert_true(wait_change(rc, PROBE_READINESS, PROBE_SUCCESS, 2000) >= 0);
    int fail = wait_change(rc, PROBE_LIVENESS, PROBE_FAILURE, 2000);
    assert_true(fail >= 0);
    /* Exactly three failed attempts came before it, each with its output. */
    int before = 0;
    pthread_mutex_lock(&rc->mu);
    for (int i = 0; i < fail; i++)
        if (!rc->rec[i].changed && rc->rec[i].kind == PROBE_LIVENESS) {
            before++;
            assert_non_null(strstr(rc->rec[i].output, "connection refused"));
        }
    /* At least two periods (2 x 20 ms) between the first and the third. */
    int64_t first = 0;
    for (int i = 0; i < fail; i++)
        if (!rc->rec[i].changed && rc->rec[i].kind == PROBE_LIVENESS && !first)
            first = rc->rec[i].at;
    assert_true(rc->rec[fail].at - first >= 2 * 20 * NS_PER_MS - 2 * NS_PER_MS);
    pthread_mutex_unlock(&rc->mu);
    assert_int_equal(before, 3);
    usleep(150 * 1000);
    assert_int_equal(count(rc, false, PROBE_LIVENESS), 3); /* held */
    assert_true(count(rc, true, PROBE_READINESS) == 1);    /* still passing, no change */
    probe_set_stop(set);

    /* prober_probe_total counted both. */
    strbuf_t sb = STRBUF_INIT;
    probe_metrics_render(&sb);
    assert_non_null(strstr(strbuf_str(&sb), "# TYPE prober_probe_total counter"));
    assert_non_null(strstr(strbuf_str(&sb),
                           "prober_probe_total{container=\"c\",namespace=\"ns\",pod=\"p\",pod_uid="
                           "\"uid-live\",probe_type=\"Liveness\",result=\"failed\"} 3\n"));
    assert_non_null(strstr(strbuf_str(&sb), "probe_type=\"Readiness\",result=\"successful\"}"));
    strbuf_free(&sb);
    probe_metrics_forget("uid-live");
    probe_metrics_render(&sb);
    assert_null(strstr(strbuf_str(&sb), "uid-live"));
    strbuf_free(&sb);

    rec_free(rc);
    server_stop(s);
    probe_sched_free(sched);
}

/* A startup probe holds readiness back until it passes. */
static void startup_gates_readiness(void **state)
{
    (void)state;
    probe_sched_t *sched = probe_sched_new(2);
    server_t *s = server_start(-1, 0, false);
    record_t *rc = rec_new();
    podspec_probe_t startup = probe_of(http_action(s->port, "/flip"), 1, 1000);
    podspec_probe_t ready = probe_of(http_action(s->port, "/ok"), 1, 3);
    probe_set_spec_t spec = {.probes = {[PROBE_STARTUP] = &startup, [PROBE_READINESS] = &ready},
                             .target = loopback,
                             .started_mono = time_mono_ns(),
                             .unit_ms = 10};
    probe_set_ops_t ops = {.ctx = rc, .attempt = on_attempt, .changed = on_changed};
    probe_set_t *set = probe_set_start(sched, &spec, &ops);
    usleep(200 * 1000);
    assert_true(count(rc, false, PROBE_STARTUP) >= 3); /* 503s, each an attempt */
    assert_int_equal(count(rc, true, PROBE_READINESS), 0);
    assert_int_equal(count(rc, true, PROBE_STARTUP), 0);
    atomic_store(&s->flip, true);
    int started = wait_change(rc, PROBE_STARTUP, PROBE_SUCCESS, 2000);
    int readied = wait_change(rc, PROBE_READINESS, PROBE_SUCCESS, 2000);
    assert_true(started >= 0 && readied > started);
    int attempts = count(rc, false, PROBE_STARTUP);
    usleep(100 * 1000);
    assert_int_equal(count(rc, false, PROBE_STARTUP), attempts); /* startup is over */
    probe_set_stop(set);
    rec_free(rc);
    server_stop(s);
    probe_sched_free(sched);
}

/* initialDelaySeconds: no attempt before it; stop: no callback after. */
static void initial_delay_and_stop(void **state)
{
    (void)state;
    probe_sched_t *sched = probe_sched_new(1);
    record_t *rc = rec_new();
    podspec_probe_t live = probe_of(http_action(closed_port(), "/"), 1, 1000);
    live.initial_delay_seconds = 10; /* 10 x 20 ms */
    int64_t t0 = time_mono_ns();
    probe_set_spec_t spec = {.probes = {[PROBE_LIVENESS] = &live},
                             .target = loopback,
                             .started_mono = t0,
                             .unit_ms = 20};
    probe_set_ops_t ops = {.ctx = rc, .attempt = on_attempt, .changed = on_changed};
    probe_set_t *set = probe_set_start(sched, &spec, &ops);
    for (int i = 0; i < 300 && count(rc, false, PROBE_LIVENESS) == 0; i++)
        usleep(2000);
    pthread_mutex_lock(&rc->mu);
    assert_true(rc->n > 0);
    assert_true(rc->rec[0].at - t0 >= 200 * NS_PER_MS);
    pthread_mutex_unlock(&rc->mu);
    probe_set_stop(set);
    int n = count(rc, false, PROBE_LIVENESS);
    usleep(100 * 1000);
    assert_int_equal(count(rc, false, PROBE_LIVENESS), n);
    rec_free(rc);
    probe_sched_free(sched);
}

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Hundreds of containers' probes on two threads: every one gets its
 * result, and no thread is added per set. */
static void count_ready(void *ctx, probe_kind_t kind, probe_result_t r)
{
    if (kind == PROBE_READINESS && r == PROBE_SUCCESS) atomic_fetch_add((atomic_int *)ctx, 1);
}

static void many_sets_on_few_threads(void **state)
{
    (void)state;
    enum { N = 300 };
    probe_sched_t *sched = probe_sched_new(2);
    int port;
    int lfd = listen_loopback_backlog(&port, 1024);
    atomic_int ready_count = 0;
    podspec_probe_t ready =
        probe_of((podspec_action_t){.kind = ACTION_TCP_SOCKET, .port = port}, 1, 3);
    ready.timeout_seconds = 1;
    probe_set_t **sets = calloc(N, sizeof *sets);
    int threads = thread_count();
    int64_t t0 = time_mono_ns();
    for (int i = 0; i < N; i++) {
        probe_set_spec_t spec = {.probes = {[PROBE_READINESS] = &ready},
                                 .target = loopback,
                                 .started_mono = time_mono_ns(),
                                 .unit_ms = 1000};
        probe_set_ops_t ops = {.ctx = &ready_count, .changed = count_ready};
        sets[i] = probe_set_start(sched, &spec, &ops);
    }
    assert_int_equal(thread_count(), threads);
    for (int i = 0; i < 500 && atomic_load(&ready_count) < N; i++) {
        usleep(10000);
        /* Drain the accept queue so connects keep succeeding. */
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        while (poll(&p, 1, 0) > 0) {
            int c = accept(lfd, NULL, NULL);
            if (c < 0) break;
            close(c);
        }
    }
    assert_int_equal(atomic_load(&ready_count), N);
    print_message("%d containers' first readiness results in %.1f ms on 2 threads\n", N,
                  (double)(time_mono_ns() - t0) / 1e6);
    assert_int_equal(thread_count(), threads);
    for (int i = 0; i < N; i++)
        probe_set_stop(sets[i]);
    free(sets);
    close(lfd);
    probe_sched_free(sched);
}

/* --- hooks ------------------------------------------------------------------------------------ */

typedef struct hook_rec {
    atomic_int calls;
    atomic_bool ok;
    int64_t at;
    char message[PROBE_OUTPUT_MAX];
} hook_rec_t;

static void hook_done(void *ctx, bool ok, const char *message)
{
    hook_rec_t *h = ctx;
    h->at = time_mono_ns();
    snprintf(h->message, sizeof h->message, "%s", message ? message : "");
    atomic_store(&h->ok, ok);
    atomic_fetch_add(&h->calls, 1);
}

static void hook_wait(hook_rec_t *h, int ms)
{
    for (int i = 0; i < ms / 2 && atomic_load(&h->calls) == 0; i++)
        usleep(2000);
}

static void hooks(void **state)
{
    (void)state;
    probe_sched_t *sched = probe_sched_new(1);
    server_t *s = server_start(-1, 0, false);

    /* httpGet: any answer passes (the kubelet's hooks read no status). */
    podspec_action_t get = http_action(s->port, "/fail");
    hook_rec_t h1 = {0};
    probe_hook_t *h = probe_hook_start(sched, &get, &loopback, 2000, hook_done, &h1);
    hook_wait(&h1, 3000);
    probe_hook_cancel(h);
    assert_int_equal(atomic_load(&h1.calls), 1);
    assert_true(atomic_load(&h1.ok));
    pthread_mutex_lock(&s->mu);
    assert_non_null(strstr(s->last_request, "User-Agent: kube-lifecycle/1.37\r\n"));
    pthread_mutex_unlock(&s->mu);

    /* No answer fails. */
    podspec_action_t closed = http_action(closed_port(), "/");
    hook_rec_t h2 = {0};
    h = probe_hook_start(sched, &closed, &loopback, 2000, hook_done, &h2);
    hook_wait(&h2, 3000);
    probe_hook_cancel(h);
    assert_int_equal(atomic_load(&h2.calls), 1);
    assert_false(atomic_load(&h2.ok));
    assert_non_null(strstr(h2.message, "connection refused"));

    /* sleep: done at its end, or at the timeout when that comes first. */
    podspec_action_t sl = {.kind = ACTION_SLEEP, .sleep_seconds = 5};
    hook_rec_t h3 = {0};
    int64_t t0 = time_mono_ns();
    h = probe_hook_start(sched, &sl, &loopback, 150, hook_done, &h3);
    hook_wait(&h3, 3000);
    probe_hook_cancel(h);
    assert_true(atomic_load(&h3.ok));
    assert_true(h3.at - t0 >= 140 * NS_PER_MS && h3.at - t0 < 2000 * NS_PER_MS);

    /* exec, tcpSocket: fail at once, saying why. */
    podspec_action_t ex = {.kind = ACTION_EXEC};
    hook_rec_t h4 = {0};
    h = probe_hook_start(sched, &ex, &loopback, 1000, hook_done, &h4);
    hook_wait(&h4, 3000);
    probe_hook_cancel(h);
    assert_false(atomic_load(&h4.ok));
    assert_non_null(strstr(h4.message, "no process to exec in"));
    podspec_action_t tcp = {.kind = ACTION_TCP_SOCKET, .port = s->port};
    hook_rec_t h5 = {0};
    h = probe_hook_start(sched, &tcp, &loopback, 1000, hook_done, &h5);
    hook_wait(&h5, 3000);
    probe_hook_cancel(h);
    assert_false(atomic_load(&h5.ok));
    assert_non_null(strstr(h5.message, "not supported as a lifecycle hook"));

    /* Cancelled before it is due: never called. */
    podspec_action_t late = {.kind = ACTION_SLEEP, .sleep_seconds = 1};
    hook_rec_t h6 = {0};
    h = probe_hook_start(sched, &late, &loopback, 5000, hook_done, &h6);
    probe_hook_cancel(h);
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&h6.calls), 0);

    server_stop(s);
    probe_sched_free(sched);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_probes_with_defaults),
        cmocka_unit_test(rejects_bad_probes),
        cmocka_unit_test(http_attempts),
        cmocka_unit_test(https_without_verification),
        cmocka_unit_test(tcp_and_impossible_actions),
        cmocka_unit_test(attempts_inside_a_network_namespace),
        cmocka_unit_test(thresholds_as_the_kubelet),
        cmocka_unit_test(liveness_fails_after_threshold_and_holds),
        cmocka_unit_test(startup_gates_readiness),
        cmocka_unit_test(initial_delay_and_stop),
        cmocka_unit_test(many_sets_on_few_threads),
        cmocka_unit_test(hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* loopback_servers.h: small servers on 127.0.0.1 for the component network
 * tests: a TCP echo, a UDP echo and an HTTP server answering every request
 * with "hello from the test server\n". Each serves up to `count` clients
 * on a thread of its own, and gives up after 20 s without one, so a test
 * that fails never hangs. Only loopback is used. */
#ifndef WASMLET_TESTS_LOOPBACK_SERVERS_H
#define WASMLET_TESTS_LOOPBACK_SERVERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOOPBACK_BODY "hello from the test server\n"

typedef struct loopback_server {
    int fd;
    int type; /* SOCK_STREAM or SOCK_DGRAM */
    bool http;
    int count;
    int port;
    atomic_int served;
    atomic_bool quit;
    char last_request[512]; /* the HTTP request line */
    pthread_t thread;
} loopback_server_t;

static inline bool loopback_wait(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 20000) == 1;
}

static inline void loopback_serve_tcp(loopback_server_t *s, int c)
{
    char buf[4096];
    if (!s->http) {
        for (;;) {
            if (!loopback_wait(c)) break;
            ssize_t n = read(c, buf, sizeof buf);
            if (n <= 0) break;
            if (write(c, buf, (size_t)n) != n) break;
        }
        return;
    }
    size_t got = 0;
    while (got < sizeof buf - 1 && loopback_wait(c)) {
        ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) break;
    }
    buf[got] = '\0';
    snprintf(s->last_request, sizeof s->last_request, "%.*s", (int)strcspn(buf, "\r\n"), buf);
    char reply[256];
    int len = snprintf(reply, sizeof reply,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       strlen(LOOPBACK_BODY), LOOPBACK_BODY);
    if (write(c, reply, (size_t)len) != len) return;
}

static inline void *loopback_main(void *arg)
{
    loopback_server_t *s = arg;
    for (int i = 0; i < s->count; i++) {
        if (!loopback_wait(s->fd) || atomic_load(&s->quit)) break;
        if (s->type == SOCK_DGRAM) {
            char buf[2048];
            struct sockaddr_storage from;
            socklen_t flen = sizeof from;
            ssize_t n = recvfrom(s->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
            if (n < 0) break;
            sendto(s->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
        } else {
            int c = accept(s->fd, NULL, NULL);
            if (c < 0) break;
            loopback_serve_tcp(s, c);
            close(c);
        }
        atomic_fetch_add(&s->served, 1);
    }
    return NULL;
}

/* Starts a server on 127.0.0.1 (port chosen by the kernel); 0 or -1. */
static inline int loopback_start(loopback_server_t *s, int type, bool http, int count)
{
    memset(s, 0, sizeof *s);
    s->type = type;
    s->http = http;
    s->count = count;
    s->fd = socket(AF_INET, type, 0);
    if (s->fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        (type == SOCK_STREAM && listen(s->fd, 8) != 0) ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) != 0) {
        close(s->fd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, loopback_main, s) != 0) {
        close(s->fd);
        return -1;
    }
    return 0;
}

/* Stops the server (waking it with a connection or datagram of its own)
 * and joins its thread. */
static inline void loopback_stop(loopback_server_t *s)
{
    atomic_store(&s->quit, true);
    int c = socket(AF_INET, s->type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (c >= 0) {
        if (s->type == SOCK_DGRAM)
            (void)sendto(c, "q", 1, 0, (struct sockaddr *)&a, sizeof a);
        else
            (void)connect(c, (struct sockaddr *)&a, sizeof a);
    }
    pthread_join(s->thread, NULL);
    if (c >= 0) close(c);
    close(s->fd);
}

#endif

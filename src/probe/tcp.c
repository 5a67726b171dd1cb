/* tcp.c: the tcpSocket action: a TCP connect to host:port within the
 * timeout, in the pod's network namespace when one is given. Success is
 * the connection being accepted; nothing is sent. Messages read as the
 * kubelet's (Go's net.Dial): "dial tcp 10.0.0.1:80: connect: connection
 * refused", "dial tcp 10.0.0.1:80: i/o timeout". */
#include "net/net.h"
#include "probe/probe.h"
#include "util/time.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static probe_result_t fail(char *out, size_t cap, const char *hostport, const char *what,
                           const char *detail)
{
    snprintf(out, cap, "dial tcp %s: %s%s%s", hostport, what, detail ? ": " : "",
             detail ? detail : "");
    return PROBE_FAILURE;
}

/* Go's wording of the common connect errors. */
static const char *errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return "connection refused";
    case ENETUNREACH:
        return "network is unreachable";
    case EHOSTUNREACH:
        return "no route to host";
    case ECONNRESET:
        return "connection reset by peer";
    default:
        return strerror(e);
    }
}

probe_result_t probe_tcp_connect(const char *host, int port, const char *netns, int64_t timeout_ms,
                                 char *out, size_t cap)
{
    char hostport[300], service[16];
    snprintf(hostport, sizeof hostport, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    snprintf(service, sizeof service, "%d", port);
    out[0] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0) return fail(out, cap, hostport, "lookup", gai_strerror(gai));
    int64_t until = time_mono_ns() + timeout_ms * NS_PER_MS;
    probe_result_t r = PROBE_FAILURE;
    int fd = -1;
    if (netns) {
        err_t err;
        fd = net_ns_socket(netns, ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol,
                           &err);
        if (fd == -1) {
            fail(out, cap, hostport, "socket", err.msg);
            goto done;
        }
    } else {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1) {
            fail(out, cap, hostport, "socket", strerror(errno));
            goto done;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        r = PROBE_SUCCESS;
        goto done;
    }
    if (errno != EINPROGRESS) {
        fail(out, cap, hostport, "connect", errno_text(errno));
        goto done;
    }
    for (;;) {
        int64_t left = (until - time_mono_ns()) / NS_PER_MS;
        if (left <= 0) {
            fail(out, cap, hostport, "i/o timeout", NULL);
            goto done;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0)
                fail(out, cap, hostport, "i/o timeout", NULL);
            else
                fail(out, cap, hostport, "poll", strerror(errno));
            goto done;
        }
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr) {
            fail(out, cap, hostport, "connect", errno_text(soerr));
            goto done;
        }
        r = PROBE_SUCCESS;
        goto done;
    }
done:
    if (fd != -1) close(fd);
    freeaddrinfo(ai);
    return r;
}

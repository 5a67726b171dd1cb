/* dial.c: a TCP connection to a port of a pod of this node (manager.h),
 * for whatever wasmlet does on a pod's behalf (port-forward).
 *
 * The socket is created inside the pod's network namespace (net_ns_socket:
 * the calling thread enters it, creates the socket and comes back), so the
 * connect reaches the pod's own loopback, 127.0.0.1 there, as a kubelet's
 * port-forward enters the sandbox's namespace. A pod on the host's network
 * (hostNetwork, or one that has no sandbox) is reached on the node's
 * loopback. The pod table lock is held only to copy the namespace's path;
 * the connect runs without it, bounded by the timeout.
 *
 * Threads: any (the HTTPS server's request threads); the caller must be in
 * the host's namespace. */
#include "pod/manager_priv.h"
#include "util/time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DIAL_DEFAULT_TIMEOUT_MS 10000

/* The namespace path of the pod (NULL: the host's), copied under m->lock. */
static int pod_netns(pod_manager_t *m, const char *ns, const char *name, const char *uid,
                     char **netns, err_t *err)
{
    *netns = NULL;
    int rc = -1;
    pthread_mutex_lock(&m->lock);
    entry_t *found = NULL;
    for (entry_t *e = m->entries; e && !found; e = e->next)
        if (e->state != ENTRY_GONE && !strcmp(e->ns, ns) && !strcmp(e->name, name) &&
            (!uid || !uid[0] || !strcmp(e->uid, uid)))
            found = e;
    if (!found)
        err_set(err, "pod %s/%s%s%s is not on this node", ns, name, uid && uid[0] ? " uid " : "",
                uid && uid[0] ? uid : "");
    else if (!found->worker || pod_worker_finished(found->worker))
        err_set(err, "pod %s/%s is not running", ns, name);
    else
        rc = pod_worker_netns(found->worker, netns, err);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* connect() to 127.0.0.1:port within timeout_ms; fd is left blocking. */
static int connect_loopback(int fd, int port, int timeout_ms, err_t *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        return err_errno(err, "dial: fcntl");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        if (errno != EINPROGRESS) return err_errno(err, "dial tcp 127.0.0.1:%d", port);
        int64_t until = time_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
        for (;;) {
            int64_t left = (until - time_mono_ns()) / NS_PER_MS;
            if (left <= 0)
                return err_set(err, "dial tcp 127.0.0.1:%d: i/o timeout after %d ms", port,
                               timeout_ms);
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int r = poll(&p, 1, (int)left);
            if (r == -1 && errno == EINTR) continue;
            if (r == -1) return err_errno(err, "dial: poll");
            if (r == 1) break;
        }
        int so = 0;
        socklen_t sl = sizeof so;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == -1)
            return err_errno(err, "dial: getsockopt");
        if (so != 0) {
            errno = so;
            return err_errno(err, "dial tcp 127.0.0.1:%d", port);
        }
    }
    if (fcntl(fd, F_SETFL, flags) == -1) return err_errno(err, "dial: fcntl");
    return 0;
}

int pod_manager_dial_tcp(pod_manager_t *m, const char *ns, const char *name, const char *uid,
                         int port, int timeout_ms, err_t *err)
{
    if (port <= 0 || port > 65535) return err_set(err, "dial: port %d out of range", port);
    if (timeout_ms <= 0) timeout_ms = DIAL_DEFAULT_TIMEOUT_MS;
    char *netns = NULL;
    if (pod_netns(m, ns, name, uid, &netns, err) == -1) return -1;
    int fd = netns ? net_ns_socket(netns, AF_INET, SOCK_STREAM, 0, err)
                   : socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 && !netns) err_errno(err, "dial: socket");
    if (fd != -1 && connect_loopback(fd, port, timeout_ms, err) == -1) {
        close(fd);
        fd = -1;
    }
    /* No prefix: callers name the pod and port (port-forward words it as
     * the kubelet does: "error forwarding port P to pod ...: dial tcp ..."). */
    free(netns);
    return fd;
}

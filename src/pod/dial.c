/* dial.c: connections to a pod's ports, for port-forward
 * (pod_manager_dial_tcp, manager.h).
 *
 * Placeholder until pods have network namespaces: it checks that the pod
 * is on this node (in the manager's table, not gone) and connects to
 * 127.0.0.1:port in the host's namespace, which is where a pod's listener
 * is today. With pod sandboxes it connects inside the pod's namespace. */
#include "pod/manager.h"
#include "pod/manager_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Whether ns/name (uid, if given) is a pod this node runs. */
static bool pod_here(pod_manager_t *m, const char *ns, const char *name, const char *uid)
{
    pthread_mutex_lock(&m->lock);
    bool found = false;
    for (entry_t *e = m->entries; e && !found; e = e->next)
        found = e->state != ENTRY_GONE && e->state != ENTRY_DELETED && strcmp(e->ns, ns) == 0 &&
                strcmp(e->name, name) == 0 && (!uid || !*uid || strcmp(e->uid, uid) == 0);
    pthread_mutex_unlock(&m->lock);
    return found;
}

int pod_manager_dial_tcp(pod_manager_t *m, const char *ns, const char *name, const char *uid,
                         int port, int timeout_ms, err_t *err)
{
    if (!pod_here(m, ns, name, uid)) return err_set(err, "pod %s/%s is not on this node", ns, name);
    if (port < 1 || port > 65535) return err_set(err, "port %d out of range", port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) return err_errno(err, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc == -1 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int p;
        do
            p = poll(&pfd, 1, timeout_ms);
        while (p == -1 && errno == EINTR);
        if (p == 0) {
            close(fd);
            return err_set(err, "dial tcp 127.0.0.1:%d: i/o timeout", port);
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (p < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1) soerr = errno;
        if (soerr) {
            errno = soerr;
            rc = -1;
        } else {
            rc = 0;
        }
    }
    if (rc == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return err_errno(err, "dial tcp 127.0.0.1:%d", port);
    }
    return fd;
}

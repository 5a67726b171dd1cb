/* netns.c: named network namespaces and per-thread entry into them.
 *
 * A pod's namespace must outlive every thread that touches it and survive
 * a restart of wasmlet, so it is pinned the way `ip netns add` pins one: a
 * short-lived thread unshares a new network namespace, and its
 * /proc/self/task/<tid>/ns/net is bind-mounted onto an empty file under
 * the node's run dir. The run dir is made a shared mount point first (a
 * bind mount of itself when it is not one yet), so that unmounting a
 * namespace file here unmounts it in every mount namespace that copied it
 * and the namespace is freed as soon as its last user goes.
 *
 * Only the creating thread ever unshares, and it exits right after; every
 * other thread enters a namespace with setns(CLONE_NEWNET), which switches
 * the calling thread alone. A socket keeps the namespace it was created
 * in, which is how one process serves many pods: net_ns_socket() creates
 * it inside and comes back. */
#include "net/net.h"
#include "util/fs.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* Serialises turning a run dir into a shared mount point, so two creates
 * at once never stack two self-binds. */
static pthread_mutex_t run_dir_lock = PTHREAD_MUTEX_INITIALIZER;

static int make_run_dir_shared(const char *run_dir, err_t *err)
{
    if (fs_mkdir_p(run_dir, 0755, err) == -1) return -1;
    int rc = 0;
    bool made = false;
    pthread_mutex_lock(&run_dir_lock);
    /* EINVAL: run_dir is not a mount point yet; make it one, once. */
    while (mount("", run_dir, "none", MS_SHARED | MS_REC, NULL) == -1) {
        if (errno != EINVAL || made) {
            rc = err_errno(err, "make %s a shared mount", run_dir);
            break;
        }
        if (mount(run_dir, run_dir, "none", MS_BIND | MS_REC, NULL) == -1) {
            rc = err_errno(err, "bind-mount %s onto itself", run_dir);
            break;
        }
        made = true;
    }
    pthread_mutex_unlock(&run_dir_lock);
    return rc;
}

/* lo comes up DOWN in a new namespace; a pod's own loopback must work even
 * when the network config has no loopback plugin. */
static int lo_up(err_t *err)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) return err_errno(err, "socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == -1) {
        rc = err_errno(err, "get flags of lo");
    } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) == -1) rc = err_errno(err, "bring lo up");
    }
    close(fd);
    return rc;
}

struct pin_job {
    const char *path;
    err_t err;
    int rc;
};

/* The short-lived thread: unshare, bring lo up, pin the namespace. */
static void *pin_thread(void *arg)
{
    thread_set_name("netns-pin");
    struct pin_job *job = arg;
    job->rc = -1;
    if (unshare(CLONE_NEWNET) == -1) {
        err_errno(&job->err, "unshare(CLONE_NEWNET)");
        return NULL;
    }
    if (lo_up(&job->err) == -1) return NULL;
    char self[64];
    snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)gettid());
    if (mount(self, job->path, "none", MS_BIND, NULL) == -1) {
        err_errno(&job->err, "bind-mount %s onto %s", self, job->path);
        return NULL;
    }
    job->rc = 0;
    return NULL;
}

int net_ns_create(const char *run_dir, const char *name, char **path, err_t *err)
{
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return err_set(err, "network namespace name \"%s\" is not a file name", name);
    if (make_run_dir_shared(run_dir, err) == -1) return -1;
    char *p = fs_join(run_dir, name);
    int fd = open(p, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd == -1) {
        err_errno(err, "create network namespace file %s", p);
        free(p);
        return -1;
    }
    close(fd);

    struct pin_job job = {.path = p, .rc = -1};
    err_clear(&job.err);
    pthread_t t;
    int e = pthread_create(&t, NULL, pin_thread, &job);
    if (e != 0) {
        errno = e;
        err_errno(err, "network namespace %s: start thread", p);
        goto fail;
    }
    pthread_join(t, NULL);
    if (job.rc == -1) {
        err_set(err, "network namespace %s: %s", p, job.err.msg);
        goto fail;
    }
    *path = p;
    return 0;
fail:
    unlink(p);
    free(p);
    return -1;
}

int net_ns_delete(const char *path, err_t *err)
{
    if (umount2(path, MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT)
        return err_errno(err, "unmount network namespace %s", path);
    if (unlink(path) == -1 && errno != ENOENT)
        return err_errno(err, "remove network namespace file %s", path);
    return 0;
}

bool net_ns_exists(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && st.f_type == NSFS_MAGIC;
}

int net_ns_run_dir_release(const char *run_dir, err_t *err)
{
    if (umount2(run_dir, MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT)
        return err_errno(err, "unmount %s", run_dir);
    return 0;
}

int net_enter(const char *path, int *saved, err_t *err)
{
    *saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (*saved == -1) return err_errno(err, "open this thread's network namespace");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        err_errno(err, "open network namespace %s", path);
        goto fail;
    }
    if (setns(fd, CLONE_NEWNET) == -1) {
        err_errno(err, "enter network namespace %s", path);
        close(fd);
        goto fail;
    }
    close(fd);
    return 0;
fail:
    close(*saved);
    *saved = -1;
    return -1;
}

int net_leave(int *saved, err_t *err)
{
    if (*saved < 0) return err_set(err, "leave network namespace: not entered");
    int rc = 0;
    if (setns(*saved, CLONE_NEWNET) == -1) rc = err_errno(err, "return to network namespace");
    close(*saved);
    *saved = -1;
    return rc;
}

int net_ns_run(const char *path, int (*fn)(void *arg, err_t *err), void *arg, err_t *err)
{
    int saved;
    if (net_enter(path, &saved, err) == -1) return -1;
    int rc = fn(arg, err);
    err_t back;
    if (net_leave(&saved, &back) == -1) {
        fprintf(stderr, "wasmlet: fatal: %s (thread left in %s)\n", back.msg, path);
        abort();
    }
    return rc;
}

struct socket_args {
    int domain, type, protocol, fd;
};

static int socket_inside(void *arg, err_t *err)
{
    struct socket_args *a = arg;
    a->fd = socket(a->domain, a->type | SOCK_CLOEXEC, a->protocol);
    return a->fd == -1 ? err_errno(err, "socket") : 0;
}

int net_ns_socket(const char *path, int domain, int type, int protocol, err_t *err)
{
    struct socket_args a = {domain, type, protocol, -1};
    if (net_ns_run(path, socket_inside, &a, err) == -1) return -1;
    return a.fd;
}

int net_ns_listen_tcp(const char *path, const char *addr, int port, int backlog, int *bound_port,
                      err_t *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535) return err_set(err, "listen: port %d out of range", port);
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        sl = sizeof *in4;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
    } else {
        return err_set(err, "listen: \"%s\" is not an IP address", addr);
    }
    int fd = net_ns_socket(path, ss.ss_family, SOCK_STREAM, 0, err);
    if (fd == -1) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) == -1) {
        err_errno(err, "listen on %s port %d in %s: bind", addr, port, path);
        goto fail;
    }
    if (listen(fd, backlog > 0 ? backlog : 128) == -1) {
        err_errno(err, "listen on %s port %d in %s", addr, port, path);
        goto fail;
    }
    if (bound_port) {
        sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
            err_errno(err, "getsockname");
            goto fail;
        }
        *bound_port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* cni.c: the runtime side of CNI (see cni.h): config discovery, the plugin
 * call, and running a config list as libcni does.
 *
 * A plugin is an executable found by its `type` in the bin dirs, run with
 * the CNI_* environment and its config on stdin; it answers JSON on stdout
 * (a result, or an error object {code, msg, details}) and an exit status.
 * wasmlet is one multithreaded process, so the call is careful in the ways
 * a small runtime can get wrong:
 *   - posix_spawn (vfork-like, no fork of a big heap), every descriptor of
 *     ours close-on-exec, the signal mask and dispositions reset, and the
 *     plugin in a process group of its own so a timeout kills it and the
 *     helpers it started (host-local, iptables);
 *   - stdin is one end of a socket pair, written with MSG_NOSIGNAL, so a
 *     plugin that exits without reading never raises SIGPIPE;
 *   - the wait is a poll on the pipes and a pidfd (the process's exit, not
 *     the pipes' end: a helper left running may hold them open), bounded
 *     by the timeout;
 *   - the environment is ours minus any CNI_* (portmap runs iptables
 *     through PATH), plus the call's CNI_* variables.
 * The plugin inherits the calling thread's network namespace: callers run
 * on a thread in the host's namespace. */
#include "net/cni.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A plugin printing more than this is broken; the rest is read and
 * dropped so it never blocks on a full pipe. */
#define CNI_OUTPUT_MAX (4u << 20)
#define CNI_STDERR_TAIL 400

/* --- config discovery ------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && !strcmp(s + ls - lx, suffix);
}

static int conf_file_filter(const struct dirent *d)
{
    if (d->d_name[0] == '.') return 0;
    return has_suffix(d->d_name, ".conf") || has_suffix(d->d_name, ".conflist") ||
           has_suffix(d->d_name, ".json");
}

int cni_conf_validate(const json_t *list, err_t *err)
{
    if (!json_is_object(list)) return err_set(err, "not a JSON object");
    json_t *l = (json_t *)list;
    const char *name = json_str_at(l, "name");
    if (!name || !name[0]) return err_set(err, "no network name");
    if (!json_str_at(l, "cniVersion")) return err_set(err, "network %s: no cniVersion", name);
    json_t *plugins = json_at(l, "plugins");
    if (!json_is_array(plugins) || json_array_size(plugins) == 0)
        return err_set(err, "network %s: no plugins", name);
    size_t i;
    json_t *p;
    json_array_foreach(plugins, i, p)
    {
        const char *type = json_str_at(p, "type");
        if (!type || !type[0]) return err_set(err, "network %s: plugin %zu has no type", name, i);
        if (strchr(type, '/') || !strcmp(type, ".") || !strcmp(type, ".."))
            return err_set(err, "network %s: plugin type \"%s\" is not a file name", name, type);
    }
    return 0;
}

/* One file into a config list: a .conflist as it is, any other a single
 * plugin config wrapped in a list of one (as libcni's ConfListFromConf). */
static json_t *conf_file_load(const char *path, bool is_list, err_t *err)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc) {
        err_set(err, "line %d: %s", je.line, je.text);
        return NULL;
    }
    json_t *list = doc;
    if (!is_list) {
        if (!json_is_object(doc)) {
            json_decref(doc);
            err_set(err, "not a JSON object");
            return NULL;
        }
        list = json_object();
        json_t *v;
        if ((v = json_object_get(doc, "cniVersion"))) json_object_set(list, "cniVersion", v);
        if ((v = json_object_get(doc, "name"))) json_object_set(list, "name", v);
        json_object_set_new(list, "plugins", json_pack("[o]", doc));
    }
    if (cni_conf_validate(list, err) == -1) {
        json_decref(list);
        return NULL;
    }
    return list;
}

int cni_conf_load(const char *conf_dir, json_t **list, char **path, err_t *err)
{
    struct dirent **names = NULL;
    int n = scandir(conf_dir, &names, conf_file_filter, alphasort);
    if (n < 0) return err_errno(err, "CNI config dir %s", conf_dir);
    strbuf_t skipped = STRBUF_INIT;
    int rc = -1;
    for (int i = 0; i < n && rc == -1; i++) {
        char *p = fs_join(conf_dir, names[i]->d_name);
        err_t why;
        json_t *l = conf_file_load(p, has_suffix(p, ".conflist"), &why);
        if (l) {
            *list = l;
            if (path)
                *path = p;
            else
                free(p);
            rc = 0;
        } else {
            strbuf_printf(&skipped, "; %s: %s", names[i]->d_name, why.msg);
            free(p);
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == -1)
        err_set(err, "no valid CNI network config in %s%s", conf_dir, strbuf_str(&skipped));
    strbuf_free(&skipped);
    return rc;
}

/* --- one plugin call -------------------------------------------------------------------- */

int cni_find_plugin(const char *const *bin_dirs, const char *type, char **path, err_t *err)
{
    if (!type[0] || strchr(type, '/'))
        return err_set(err, "CNI plugin type \"%s\" is not a file name", type);
    strbuf_t tried = STRBUF_INIT;
    for (size_t i = 0; bin_dirs && bin_dirs[i]; i++) {
        char *p = fs_join(bin_dirs[i], type);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
            *path = p;
            strbuf_free(&tried);
            return 0;
        }
        strbuf_printf(&tried, "%s%s", i ? ", " : "", bin_dirs[i]);
        free(p);
    }
    err_set(err, "CNI plugin %s not found in %s", type,
            tried.len ? strbuf_str(&tried) : "(no bin dir)");
    strbuf_free(&tried);
    return -1;
}

static void build_env(strvec_t *env, const char *const *bin_dirs, const char *command,
                      const cni_attachment_t *att)
{
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "CNI_", 4) != 0) strvec_push(env, *e);
    strbuf_t path = STRBUF_INIT;
    for (size_t i = 0; bin_dirs && bin_dirs[i]; i++)
        strbuf_printf(&path, "%s%s", i ? ":" : "", bin_dirs[i]);
    strvec_push_owned(env, xasprintf("CNI_COMMAND=%s", command));
    strvec_push_owned(env, xasprintf("CNI_CONTAINERID=%s", att->container_id));
    strvec_push_owned(env, xasprintf("CNI_NETNS=%s", att->netns ? att->netns : ""));
    strvec_push_owned(env, xasprintf("CNI_IFNAME=%s", att->ifname ? att->ifname : "eth0"));
    strvec_push_owned(env, xasprintf("CNI_ARGS=%s", att->cni_args ? att->cni_args : ""));
    strvec_push_owned(env, xasprintf("CNI_PATH=%s", strbuf_str(&path)));
    strbuf_free(&path);
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Reads what is there; returns false once the pipe reached its end. */
static bool drain(int fd, strbuf_t *sb)
{
    char buf[8192];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            if (sb->len < CNI_OUTPUT_MAX) strbuf_append(sb, buf, (size_t)r);
            continue;
        }
        if (r == 0) return false;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
}

/* The outcome of a spawned plugin. */
struct run_out {
    strbuf_t out, errout;
    int status;
    bool timed_out;
};

static int spawn_and_wait(const char *exe, char *const argv[], char *const envp[],
                          const char *input, int timeout_ms, struct run_out *ro, err_t *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, eo[2] = {-1, -1}, pidfd = -1;
    pid_t pid = -1;
    int rc = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) == -1 ||
        pipe2(out, O_CLOEXEC) == -1 || pipe2(eo, O_CLOEXEC) == -1) {
        err_errno(err, "pipe");
        goto out;
    }
    posix_spawn_file_actions_adddup2(&fa, in[1], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, eo[1], 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    int e = posix_spawn(&pid, exe, &fa, &attr, argv, envp);
    if (e != 0) {
        pid = -1;
        errno = e;
        err_errno(err, "run %s", exe);
        goto out;
    }
    close(in[1]);
    close(out[1]);
    close(eo[1]);
    in[1] = out[1] = eo[1] = -1;
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    set_nonblock(in[0]);
    set_nonblock(out[0]);
    set_nonblock(eo[0]);

    size_t in_len = strlen(input), in_off = 0;
    if (in_len == 0) {
        close(in[0]);
        in[0] = -1;
    }
    int64_t deadline = time_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
    bool exited = false, failed = false;
    while (!exited) {
        int64_t left = deadline - time_mono_ns();
        if (left <= 0) {
            ro->timed_out = true;
            break;
        }
        struct pollfd pf[4];
        int np = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
        if (in[0] != -1) pf[i_in = np++] = (struct pollfd){in[0], POLLOUT, 0};
        if (out[0] != -1) pf[i_out = np++] = (struct pollfd){out[0], POLLIN, 0};
        if (eo[0] != -1) pf[i_err = np++] = (struct pollfd){eo[0], POLLIN, 0};
        if (pidfd != -1) pf[i_pid = np++] = (struct pollfd){pidfd, POLLIN, 0};
        /* Without a pidfd (kernel < 5.3) the exit is polled every 10 ms. */
        int wait_ms = (int)((left + NS_PER_MS - 1) / NS_PER_MS);
        if (pidfd == -1 && wait_ms > 10) wait_ms = 10;
        int pr = poll(pf, (nfds_t)np, wait_ms);
        if (pr < 0 && errno != EINTR) {
            err_errno(err, "poll");
            failed = true;
            break;
        }
        if (pr > 0 && i_in != -1 && pf[i_in].revents) {
            ssize_t w = send(in[0], input + in_off, in_len - in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(in[0]); /* the plugin sees the end of its config */
                in[0] = -1;
            }
        }
        if (pr > 0 && i_out != -1 && pf[i_out].revents && !drain(out[0], &ro->out)) {
            close(out[0]);
            out[0] = -1;
        }
        if (pr > 0 && i_err != -1 && pf[i_err].revents && !drain(eo[0], &ro->errout)) {
            close(eo[0]);
            eo[0] = -1;
        }
        if (pidfd != -1) {
            exited = i_pid != -1 && pr > 0 && pf[i_pid].revents;
        } else {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                ro->status = st;
                pid = -1;
                exited = true;
            }
        }
    }
    /* Never kill(-1): pid is only ever a child of ours here. */
    if ((ro->timed_out || failed) && pid > 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    if (out[0] != -1) drain(out[0], &ro->out);
    if (eo[0] != -1) drain(eo[0], &ro->errout);
    if (pid > 0) {
        while (waitpid(pid, &ro->status, 0) == -1 && errno == EINTR)
            ;
        pid = -1;
    }
    rc = failed ? -1 : 0;
out:
    if (pid > 0) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
    }
    int fds[] = {in[0], in[1], out[0], out[1], eo[0], eo[1], pidfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] != -1) close(fds[i]);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* The last line(s) of a plugin's stderr, trimmed, for an error message. */
static const char *stderr_tail(strbuf_t *sb)
{
    char *s = sb->data ? sb->data : (char *)"";
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return n > CNI_STDERR_TAIL ? s + n - CNI_STDERR_TAIL : s;
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r') return false;
    return true;
}

int cni_exec(const char *const *bin_dirs, const char *type, const char *command,
             const cni_attachment_t *att, const json_t *conf, int timeout_ms, json_t **result,
             err_t *err)
{
    if (result) *result = NULL;
    if (timeout_ms <= 0) timeout_ms = CNI_DEFAULT_TIMEOUT_MS;
    char *exe = NULL, *input = NULL;
    strvec_t env = STRVEC_INIT;
    struct run_out ro = {STRBUF_INIT, STRBUF_INIT, 0, false};
    int rc = -1;
    if (cni_find_plugin(bin_dirs, type, &exe, err) == -1) goto out;
    input = json_dumps(conf, JSON_COMPACT);
    build_env(&env, bin_dirs, command, att);
    char *argv[] = {(char *)type, NULL};
    err_t serr;
    err_clear(&serr);
    if (spawn_and_wait(exe, argv, env.items, input, timeout_ms, &ro, &serr) == -1) {
        err_set(err, "CNI plugin %s (%s): %s", type, command, serr.msg);
        goto out;
    }
    if (ro.timed_out) {
        err_set(err, "CNI plugin %s (%s): no answer within %d ms; killed", type, command,
                timeout_ms);
        goto out;
    }
    json_t *doc = blank(ro.out.data) ? NULL : json_loads(strbuf_str(&ro.out), 0, NULL);
    if (WIFEXITED(ro.status) && WEXITSTATUS(ro.status) == 0) {
        if (!doc && !blank(ro.out.data)) {
            err_set(err, "CNI plugin %s (%s): printed a result that is not JSON", type, command);
            goto out;
        }
        if (result)
            *result = doc;
        else
            json_decref(doc);
        rc = 0;
        goto out;
    }
    const char *msg = json_str_at(doc, "msg");
    if (msg) {
        const char *details = json_str_at(doc, "details");
        err_set(err, "CNI plugin %s (%s): %s%s%s (code %lld)", type, command, msg,
                details && details[0] ? ": " : "", details ? details : "",
                (long long)json_int_at(doc, 0, "code"));
    } else if (WIFSIGNALED(ro.status)) {
        err_set(err, "CNI plugin %s (%s): killed by signal %d%s%s", type, command,
                WTERMSIG(ro.status), ro.errout.len ? ": " : "", stderr_tail(&ro.errout));
    } else {
        const char *said = ro.errout.len ? stderr_tail(&ro.errout) : stderr_tail(&ro.out);
        err_set(err, "CNI plugin %s (%s): exit status %d%s%s", type, command,
                WEXITSTATUS(ro.status), said[0] ? ": " : "", said);
    }
    json_decref(doc);
out:
    free(exe);
    free(input);
    strvec_free(&env);
    strbuf_free(&ro.out);
    strbuf_free(&ro.errout);
    return rc;
}

/* --- a config list --------------------------------------------------------------------------- */

/* "a.b.c" >= "x.y.z", numerically; a malformed version counts as old. */
static bool version_at_least(const char *v, int maj, int min)
{
    int a = 0, b = 0;
    if (!v || sscanf(v, "%d.%d", &a, &b) < 1) return false;
    return a > maj || (a == maj && b >= min);
}

json_t *cni_plugin_conf(const json_t *list, size_t i, const cni_attachment_t *att,
                        const json_t *prev_result)
{
    json_t *l = (json_t *)list;
    json_t *conf = json_deep_copy(json_array_get(json_object_get(l, "plugins"), i));
    json_object_set(conf, "name", json_object_get(l, "name"));
    json_object_set(conf, "cniVersion", json_object_get(l, "cniVersion"));
    /* runtimeConfig holds only what the plugin declared it can take. */
    json_object_del(conf, "runtimeConfig");
    if (att->port_mappings && json_bool_at(conf, 0, "capabilities", "portMappings"))
        json_object_set_new(conf, "runtimeConfig",
                            json_pack("{s:O}", "portMappings", att->port_mappings));
    if (prev_result) json_object_set_new(conf, "prevResult", json_deep_copy(prev_result));
    return conf;
}

static int list_call(const char *const *bin_dirs, const json_t *list, size_t i, const char *command,
                     const cni_attachment_t *att, const json_t *prev, int timeout_ms,
                     json_t **result, err_t *err)
{
    json_t *conf = cni_plugin_conf(list, i, att, prev);
    const char *type = json_str_at(conf, "type");
    int rc = cni_exec(bin_dirs, type, command, att, conf, timeout_ms, result, err);
    json_decref(conf);
    if (rc == -1) err_prefix(err, "network %s", json_str_at((json_t *)list, "name"));
    return rc;
}

int cni_list_add(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                 int timeout_ms, json_t **result, err_t *err)
{
    size_t n = json_array_size(json_object_get((json_t *)list, "plugins"));
    json_t *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *r = NULL;
        if (list_call(bin_dirs, list, i, "ADD", att, prev, timeout_ms, &r, err) == -1) {
            json_decref(prev);
            return -1;
        }
        json_decref(prev);
        if (!json_is_object(r)) {
            json_decref(r);
            return err_set(
                err, "network %s: CNI plugin %s (ADD): printed no result",
                json_str_at((json_t *)list, "name"),
                json_str_at(json_array_get(json_object_get((json_t *)list, "plugins"), i), "type"));
        }
        prev = r;
    }
    *result = prev;
    return 0;
}

int cni_list_check(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                   const json_t *prev_result, int timeout_ms, err_t *err)
{
    json_t *l = (json_t *)list;
    /* CHECK came with 0.4.0; an older list has nothing to check against. */
    if (json_bool_at(l, 0, "disableCheck") || !version_at_least(json_str_at(l, "cniVersion"), 0, 4))
        return 0;
    if (!prev_result)
        return err_set(err, "network %s: CHECK needs the ADD result", json_str_at(l, "name"));
    size_t n = json_array_size(json_object_get(l, "plugins"));
    for (size_t i = 0; i < n; i++)
        if (list_call(bin_dirs, list, i, "CHECK", att, prev_result, timeout_ms, NULL, err) == -1)
            return -1;
    return 0;
}

int cni_list_del(const char *const *bin_dirs, const json_t *list, const cni_attachment_t *att,
                 const json_t *prev_result, int timeout_ms, err_t *err)
{
    json_t *l = (json_t *)list;
    /* DEL has carried prevResult since 0.4.0. */
    if (!version_at_least(json_str_at(l, "cniVersion"), 0, 4)) prev_result = NULL;
    size_t n = json_array_size(json_object_get(l, "plugins"));
    for (size_t i = n; i-- > 0;)
        if (list_call(bin_dirs, list, i, "DEL", att, prev_result, timeout_ms, NULL, err) == -1)
            return -1;
    return 0;
}

/* termination.h: a container's termination message, as the kubelet makes
 * it, for a module that has no /dev.
 *
 * Kubernetes' terminationMessagePath (default /dev/termination-log) names
 * a file the container may write before it ends; the kubelet reads it (its
 * last 4096 bytes) into state.terminated.message. A WASI module sees only
 * its preopened mounts, so here the path means something only when it
 * falls inside one of the container's volumeMounts: the worker reads the
 * file at that place in the volume on the host, if this run wrote it (it
 * did not exist before the run, or it changed). A path outside every mount
 * (the default, usually) gives no message.
 *
 * terminationMessagePolicy FallbackToLogsOnError: when the file gave
 * nothing and the container ended with a non-zero exit code, the message is
 * the tail of its output, as the kubelet reads it from the log: from the
 * start of the last 80 lines, at most 2048 bytes. The worker keeps that
 * tail in memory while the module runs (so `wasmlet run` without log files
 * has it too).
 *
 * The message is appended to the runtime's own message (a trap's text),
 * after ": ", as the kubelet appends it to the runtime's reason text.
 *
 * Threads: a pod_term_tail_t belongs to the thread that runs the
 * container; the functions here keep no shared state. */
#ifndef WASMLET_POD_TERMINATION_H
#define WASMLET_POD_TERMINATION_H

#include "util/strbuf.h"
#include "wasm/wasmrt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POD_TERM_FILE_MAX 4096 /* the kubelet's MaxContainerTerminationMessageLength */
#define POD_TERM_LOG_LINES 80  /* ... MaxContainerTerminationMessageLogLines */
#define POD_TERM_LOG_MAX 2048  /* ... MaxContainerTerminationMessageLogLength */

/* What the message file looked like before a run (so that a file left by
 * an earlier run is not reported again). */
typedef struct pod_term_stamp {
    bool exists;
    uint64_t ino;
    int64_t size;
    int64_t mtime_ns, ctime_ns;
} pod_term_stamp_t;

/* The host file that guest path `path` names inside mounts, or NULL when
 * it is outside every mount (or climbs out with ".."). Longest mount wins;
 * *root (optional) gets that mount's host directory. Free the result. */
char *pod_term_host_path(const wasmrt_mount_t *mounts, size_t n, const char *path,
                         const char **root);

/* Records the file's state before a run (exists = false when absent). */
void pod_term_stamp(const char *host_path, pod_term_stamp_t *out);

/* Reads the message this run wrote into out (NUL-terminated, at most
 * POD_TERM_FILE_MAX bytes: the file's last ones). mount_root is the host
 * directory of the mount the file is in: a file reached through a symlink
 * out of it is not read. Writes "" when there is nothing new. */
void pod_term_read(const char *host_path, const char *mount_root, const pod_term_stamp_t *before,
                   char *out, size_t cap);

/* The tail of a container's output, both streams in arrival order. */
typedef struct pod_term_tail {
    strbuf_t lines[POD_TERM_LOG_LINES]; /* a ring of the last complete lines */
    size_t next, count;
    strbuf_t partial[3]; /* per stream (1 stdout, 2 stderr): the line being written */
} pod_term_tail_t;

void pod_term_tail_init(pod_term_tail_t *t);
void pod_term_tail_feed(pod_term_tail_t *t, int stream, const char *data, size_t len);
/* Ends the partial lines and writes the tail into out (NUL-terminated). */
void pod_term_tail_finish(pod_term_tail_t *t, char *out, size_t cap);
void pod_term_tail_free(pod_term_tail_t *t);

#endif

/* crilog.h: container logs in the CRI log format, written by the container's
 * stdout/stderr and read back for `kubectl logs`.
 *
 * On disk, one container run is one file (see crilog_run_path):
 *
 *     <dir>/<restartCount>.log        the current file, always the newest
 *     <dir>/<restartCount>.log.<seq>  rotated files; seq counts up from 1,
 *                                     a larger seq is newer
 *
 * Each line of a file is one record:
 *
 *     2026-11-26T14:21:11.123456789Z stdout F hello world
 *
 * the write time (RFC 3339, 9 fractional digits, UTC), the stream, a tag (F:
 * the record ends a line; P: the line goes on in the next record of the same
 * stream) and the content. A line longer than CRILOG_MAX_LINE bytes is cut into
 * P records of CRILOG_MAX_LINE bytes and a last F record (crilog_flush may
 * also end a P record early).
 *
 * Writing and reading share nothing but the files, so a reader in another
 * thread or process sees exactly what a reader in the writer's thread sees,
 * and a follower is woken by inotify on the directory, not by the writer. */
#ifndef WASMLET_LOG_CRILOG_H
#define WASMLET_LOG_CRILOG_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRILOG_MAX_LINE 16384                       /* content bytes per record */
#define CRILOG_DEFAULT_MAX_BYTES (10 * 1024 * 1024) /* containerLogMaxSize */
#define CRILOG_DEFAULT_MAX_FILES 5                  /* containerLogMaxFiles */

/* Streams as WASI numbers its file descriptors. */
#define CRILOG_STDOUT 1
#define CRILOG_STDERR 2

/* --- writer ------------------------------------------------------------- */

typedef struct crilog_writer crilog_writer_t;

/* Opens (appending to) the current file of one container run. max_bytes is
 * the size a file may reach before it is rotated, max_files the number of
 * files kept counting the current one; 0 selects the kubelet defaults, and
 * max_files must otherwise be at least 2 (as the kubelet requires). Together
 * the files never exceed max_files * max_bytes, except that a single record
 * larger than max_bytes is written whole into a file of its own. */
crilog_writer_t *crilog_open(const char *path, int64_t max_bytes, int max_files, err_t *err);

/* Adds len bytes written by the container to stream 1 (stdout) or 2
 * (stderr). Each stream keeps its own unfinished line: a '\n' completes it
 * into an F record, and a line that grows past CRILOG_MAX_LINE bytes is
 * written as P records of CRILOG_MAX_LINE bytes as it grows (a line of
 * exactly CRILOG_MAX_LINE bytes stays a single F record). Every record
 * reaches the file (write(2), no user-space buffering) before this returns.
 * Thread-safe: both streams may write from different threads. */
int crilog_write(crilog_writer_t *w, int stream, const void *buf, size_t len, err_t *err);

/* Writes each stream's unfinished line as a P record now, so readers see
 * output that has no newline yet; the line goes on with later writes. */
int crilog_flush(crilog_writer_t *w, err_t *err);

/* Ends the run: an unfinished line (no '\n' before the container exited) is
 * written as an F record, because for a reader the line is complete. Closes
 * and frees w (also when it fails); NULL is a no-op. Not concurrent with
 * writes to the same writer. */
int crilog_close(crilog_writer_t *w, err_t *err);

/* --- reader ------------------------------------------------------------- */

/* Receives output; returns non-zero to stop reading (the client went away). */
typedef int (*crilog_sink_fn)(void *ctx, const char *data, size_t len);

/* What a follow's should_stop callback answers. */
enum crilog_follow {
    CRILOG_FOLLOW_ON = 0, /* keep following */
    CRILOG_FOLLOW_STOP,   /* stop now (client gone, server shutting down) */
    CRILOG_FOLLOW_DRAIN,  /* the container ended: send what is in the files, then stop */
};

typedef struct crilog_read_opts {
    int64_t tail_lines;  /* last N lines over all files; -1 = all */
    int64_t limit_bytes; /* stop after exactly this many output bytes; -1 = no limit */
    int64_t since_ns;    /* only lines whose first record is at or after this; 0 = all */
    bool timestamps;     /* prefix each line with its RFC 3339 timestamp and a space */
    bool follow;         /* after the end, keep sending new lines (across rotations) */
    unsigned streams;    /* bit 1 << CRILOG_STDOUT, 1 << CRILOG_STDERR; 0 = both */
    /* Follow only: asked with the sink's ctx at least every 100 ms while
     * waiting for data. NULL = follow until the sink stops or the limit. */
    enum crilog_follow (*should_stop)(void *ctx);
} crilog_read_opts_t;

#define CRILOG_READ_OPTS_INIT                                                                      \
    {                                                                                              \
        -1, -1, 0, false, false, 0, NULL                                                           \
    }

/* Sends the logs of the run whose current file is path: its rotated files
 * oldest first, then the current file. Records are joined back into lines (a
 * stream's P records with the F that ends them; one sink call per line, with
 * '\n' after it), malformed lines are skipped. A line whose F record is
 * missing at the end (a line still being written) is sent without '\n'.
 * Returns 0 when done, when the sink stopped or the limit was reached, and -1
 * (err) when there is no such log or a read fails. */
int crilog_read(const char *path, const crilog_read_opts_t *opts, crilog_sink_fn sink, void *ctx,
                err_t *err);

/* --- runs and usage ----------------------------------------------------- */

/* "<dir>/<restart_count>.log"; the caller frees. */
char *crilog_run_path(const char *dir, int restart_count);

/* Restart counts that have a current file in dir, ascending; *counts is
 * xmalloc'd (free it; NULL when *n is 0). A missing dir has no runs. */
int crilog_list_runs(const char *dir, int **counts, size_t *n, err_t *err);

/* Path of the latest run in dir, or of the one before it when previous is
 * set (`kubectl logs --previous`). -1 with err when there is no such run. */
int crilog_find_run(const char *dir, bool previous, char **path, err_t *err);

typedef struct crilog_usage {
    uint64_t used_bytes; /* disk space of all files (allocated blocks) */
    uint64_t inodes;     /* files and directories under dir, dir included */
} crilog_usage_t;

/* Disk used under dir (a container's or a pod's log directory; symlinks are
 * counted, not followed). A missing dir uses nothing. */
int crilog_usage(const char *dir, crilog_usage_t *usage, err_t *err);

#endif

/* crilog_files.h: the names of a run's rotated files, shared by the writer
 * and the reader (internal to log/). */
#ifndef WASMLET_LOG_CRILOG_FILES_H
#define WASMLET_LOG_CRILOG_FILES_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

/* "<path>.<seq>"; the caller frees. */
char *crilog_rotated_path(const char *path, uint64_t seq);

/* The seqs of path's rotated files, ascending (oldest first); *seqs is
 * xmalloc'd, NULL when *n is 0. A missing directory has none. */
int crilog_rotated_list(const char *path, uint64_t **seqs, size_t *n, err_t *err);

/* The directory part of path ("." when there is none); the caller frees. */
char *crilog_dir_of(const char *path);

#endif

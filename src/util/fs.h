/* fs.h: the few file-system operations several subsystems share. */
#ifndef WASMLET_UTIL_FS_H
#define WASMLET_UTIL_FS_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with the given mode for each directory it creates. A
 * non-directory in the way is an error. */
int fs_mkdir_p(const char *path, mode_t mode, err_t *err);
/* rm -rf that never follows symlinks and never leaves the given tree. */
int fs_rm_rf(const char *path, err_t *err);
/* Reads a whole file into a new NUL-terminated buffer; *len gets its size. */
int fs_read_all(const char *path, char **data, size_t *len, err_t *err);
/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename. A reader sees the old content or the new, never a mix. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, err_t *err);
/* Like fs_write_atomic without the fsync: a reader, or wasmlet after a
 * crash of its own process, sees the old content or the new; only a crash
 * of the machine may lose the update. For state rewritten often. */
int fs_write_replace(const char *path, const void *data, size_t len, mode_t mode, err_t *err);
/* Asks the file system to place each directory made under path, and so
 * the files in it, in an allocation group of its own choosing, as it does
 * for top-level directories (ext4's FS_TOPDIR_FL, `chattr +T`), instead
 * of beside path. For the node's pods/ and logs/: without it, every pod's
 * files are made in the group of those two directories, where the pods
 * deleted in the last minute lie, and on ext4 without a journal each new
 * inode costs a read of every one of those that the allocator skips.
 * Returns whether the file system took the hint (others have no such
 * flag; nothing else changes). */
bool fs_spread_subdirs(const char *path);
/* Joins a and b with exactly one '/'; the caller frees. */
char *fs_join(const char *a, const char *b);

#endif

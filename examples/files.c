/*
 * files: a small file tool for looking at a container's filesystem from the
 * inside: what its volume mounts contain, what it may write, what it can
 * reach at all (WASI preview 1 only shows the preopened mount directories, so
 * anything else must fail to open).
 *
 *   files cat PATH                print the file's bytes to stdout, unchanged
 *   files write PATH TEXT         write TEXT (no newline added), creating or
 *                                 truncating the file
 *   files append PATH TEXT        append TEXT (no newline added), creating the
 *                                 file if needed
 *   files ls DIR                  the entries of DIR except . and .., sorted
 *                                 bytewise, one per line
 *   files stat PATH               "size=<n> type=<file|dir|symlink|other>"; a
 *                                 symlink is reported as itself (lstat)
 *   files mkdir PATH              create one directory (mode 0755)
 *   files symlink TARGET PATH     create PATH as a symlink to TARGET
 *   files probe PATH...           try to open each PATH for reading; print
 *                                 "open <path>: ok" or "open <path>: <strerror>"
 *                                 per path and go on; exits 0 whatever the
 *                                 outcomes, since the lines are the result
 *   files hold PATH N SECONDS     open PATH (read-only) up to N times without
 *                                 closing; print "held <k>" and, if an open
 *                                 failed, "open: <strerror>"; then keep them
 *                                 for SECONDS; exits 0 (the lines are the
 *                                 result)
 *   files watch PATH MS COUNT     print the content now, then poll every MS
 *                                 milliseconds and print it again each time it
 *                                 differs, until COUNT changes were seen
 *                                 (COUNT 0: forever)
 *
 * Exit 0 on success, 1 on any failure (including bad usage) with one line
 * "files: <op> <path>: <strerror>" on stderr.
 *
 * watch compares contents, not modification times: a ConfigMap or Secret
 * update swaps a symlink to a new directory whose files may carry any mtime,
 * and comparing bytes catches every visible change at the cost of reading the
 * file each poll (they are small). Each printed version gets a newline
 * appended when it lacks one, so versions land on lines of their own; stdout
 * is flushed after each. A read that fails while watching (a file briefly
 * missing during an update) is reported once on stderr with "(retrying)" and
 * polling continues; only the first read must succeed.
 *
 * Used by examples/pods/files.yaml (an init container writes to an emptyDir
 * that the app container then reads) and by the tests of volumes (emptyDir,
 * hostPath read-only, configMap/secret/projected/downwardAPI contents and live
 * updates) and of the sandbox (paths outside the mounts must not open).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *op, const char *path)
{
    fprintf(stderr, "files: %s %s: %s\n", op, path, strerror(errno));
    return 1;
}

static int usage(void)
{
    fputs("usage: files cat PATH | write PATH TEXT | append PATH TEXT | ls DIR | stat PATH |\n"
          "             mkdir PATH | symlink TARGET PATH | probe PATH... | hold PATH N SECONDS |\n"
          "             watch PATH INTERVAL_MS COUNT\n",
          stderr);
    return 1;
}

/* Parses a whole decimal number in [min, max]; -1 when it is not one. */
static long long parse_number(const char *s, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
    return v;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads the whole file into a malloc'ed buffer; -1 with errno set on failure. */
static int read_file(const char *path, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) goto fail;
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) goto fail;
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;
fail:;
    int saved = errno == 0 ? ENOMEM : errno;
    free(buf);
    close(fd);
    errno = saved;
    return -1;
}

static int cmd_cat(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail("cat", path);
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return fail("cat", path);
        }
        if (n == 0) break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            close(fd);
            return fail("cat", "<stdout>");
        }
    }
    close(fd);
    return 0;
}

static int cmd_write(const char *op, const char *path, const char *text, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
    if (fd < 0) return fail(op, path);
    if (write_all(fd, text, strlen(text)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return fail(op, path);
    }
    if (close(fd) != 0) return fail(op, path);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmd_ls(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL) return fail("ls", path);
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 1;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            if (errno != 0) {
                fail("ls", path);
                goto done;
            }
            break;
        }
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        if (count == cap) {
            size_t bigger_cap = cap == 0 ? 16 : cap * 2;
            char **bigger = realloc(names, bigger_cap * sizeof(*names));
            if (bigger == NULL) {
                fail("ls", path);
                goto done;
            }
            names = bigger;
            cap = bigger_cap;
        }
        names[count] = strdup(entry->d_name);
        if (names[count] == NULL) {
            fail("ls", path);
            goto done;
        }
        count++;
    }
    if (count > 0) qsort(names, count, sizeof(*names), compare_names);
    for (size_t i = 0; i < count; i++)
        puts(names[i]);
    rc = 0;
done:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    closedir(dir);
    return rc;
}

static int cmd_stat(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return fail("stat", path);
    const char *type = S_ISREG(st.st_mode)   ? "file"
                       : S_ISDIR(st.st_mode) ? "dir"
                       : S_ISLNK(st.st_mode) ? "symlink"
                                             : "other";
    printf("size=%lld type=%s\n", (long long)st.st_size, type);
    return 0;
}

static int cmd_probe(int count, char **paths)
{
    for (int i = 0; i < count; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) {
            printf("open %s: %s\n", paths[i], strerror(errno));
        } else {
            printf("open %s: ok\n", paths[i]);
            close(fd);
        }
    }
    return 0;
}

static void sleep_ms(long long ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

/* Prints one version of the watched file on lines of its own, flushed. */
static int print_version(const char *content, size_t len)
{
    if (fwrite(content, 1, len, stdout) != len) return -1;
    if (len == 0 || content[len - 1] != '\n') putchar('\n');
    return fflush(stdout);
}

static int cmd_hold(const char *path, const char *n_arg, const char *seconds_arg)
{
    long n = strtol(n_arg, NULL, 10), held = 0;
    int err = 0;
    while (held < n) {
        if (open(path, O_RDONLY) < 0) {
            err = errno;
            break;
        }
        held++;
    }
    printf("held %ld\n", held);
    if (err) printf("open: %s\n", strerror(err));
    fflush(stdout);
    sleep_ms(strtoll(seconds_arg, NULL, 10) * 1000);
    return 0;
}

static int cmd_watch(const char *path, const char *interval_arg, const char *count_arg)
{
    long long interval = parse_number(interval_arg, 1, 86400000);
    long long wanted = parse_number(count_arg, 0, 1000000000);
    if (interval < 0 || wanted < 0) return usage();

    char *seen = NULL;
    size_t seen_len = 0;
    if (read_file(path, &seen, &seen_len) != 0) return fail("watch", path);
    if (print_version(seen, seen_len) != 0) goto out_fail;

    long long changes = 0;
    int reported = 0;
    while (wanted == 0 || changes < wanted) {
        sleep_ms(interval);
        char *now = NULL;
        size_t now_len = 0;
        if (read_file(path, &now, &now_len) != 0) {
            if (!reported)
                fprintf(stderr, "files: watch %s: %s (retrying)\n", path, strerror(errno));
            reported = 1;
            continue;
        }
        reported = 0;
        if (now_len == seen_len && memcmp(now, seen, now_len) == 0) {
            free(now);
            continue;
        }
        free(seen);
        seen = now;
        seen_len = now_len;
        changes++;
        if (print_version(seen, seen_len) != 0) goto out_fail;
    }
    free(seen);
    return 0;
out_fail:
    free(seen);
    return fail("watch", "<stdout>");
}

static int run(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *op = argv[1];
    if (strcmp(op, "cat") == 0 && argc == 3) return cmd_cat(argv[2]);
    if (strcmp(op, "write") == 0 && argc == 4) return cmd_write(op, argv[2], argv[3], O_TRUNC);
    if (strcmp(op, "append") == 0 && argc == 4) return cmd_write(op, argv[2], argv[3], O_APPEND);
    if (strcmp(op, "ls") == 0 && argc == 3) return cmd_ls(argv[2]);
    if (strcmp(op, "stat") == 0 && argc == 3) return cmd_stat(argv[2]);
    if (strcmp(op, "mkdir") == 0 && argc == 3)
        return mkdir(argv[2], 0755) == 0 ? 0 : fail(op, argv[2]);
    if (strcmp(op, "symlink") == 0 && argc == 4)
        return symlink(argv[2], argv[3]) == 0 ? 0 : fail(op, argv[3]);
    if (strcmp(op, "probe") == 0) return cmd_probe(argc - 2, argv + 2);
    if (strcmp(op, "hold") == 0 && argc == 5) return cmd_hold(argv[2], argv[3], argv[4]);
    if (strcmp(op, "watch") == 0 && argc == 5) return cmd_watch(argv[2], argv[3], argv[4]);
    return usage();
}

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "files: write <stdout>: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

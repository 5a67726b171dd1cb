/* tar.c: reading image layers and writing a one-file layer.
 *
 * A pod runs one file of an ordinary OCI image: the .wasm its Entrypoint
 * names. Unpacking whole root file systems would be wasted work and a
 * security surface (paths, links, devices), so this reader never writes
 * anything but that one file's bytes to a descriptor the caller gives. It
 * reads the formats real layers use: ustar (with the 155-byte prefix), GNU
 * long names and links, pax extended headers (path, linkpath, size), and
 * base-256 sizes, verifying each header's checksum. Layers compressed with
 * gzip are read through zlib's gzread, which passes plain tar through
 * unchanged, so one code path serves both.
 *
 * Layer semantics follow the OCI image spec: later layers override earlier
 * ones, ".wh.<name>" deletes <name> from the layers below, and
 * ".wh..wh..opq" hides everything below in its directory. Finding the file
 * scans layers from the top and stops at the first that has it; symbolic
 * and hard links (also for a parent directory) restart the search with the
 * link's target, at most 16 times. */
#include "image/tar.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define BLOCK 512
#define META_MAX (1u << 20) /* long names and pax headers larger than this are refused */

struct image_tar {
    image_tar_read_fn read;
    void *arg;
    uint64_t remaining; /* data bytes left in the current entry */
    uint64_t padding;   /* then this many bytes to the next block */
    image_tar_entry_t entry;
    bool done;
};

image_tar_t *image_tar_open(image_tar_read_fn read, void *arg)
{
    image_tar_t *t = xcalloc(1, sizeof *t);
    t->read = read;
    t->arg = arg;
    return t;
}

static void entry_clear(image_tar_entry_t *e)
{
    free(e->path);
    free(e->link);
    memset(e, 0, sizeof *e);
}

void image_tar_close(image_tar_t *t)
{
    if (!t) return;
    entry_clear(&t->entry);
    free(t);
}

/* Reads exactly n bytes: 0, 1 on a clean end before the first byte, -1. */
static int read_full(image_tar_t *t, void *buf, size_t n, err_t *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = t->read(t->arg, (char *)buf + got, n - got, err);
        if (r < 0) return -1;
        if (r == 0) {
            if (got == 0) return 1;
            return err_set(err, "tar: unexpected end of archive");
        }
        got += (size_t)r;
    }
    return 0;
}

static int skip(image_tar_t *t, uint64_t n, err_t *err)
{
    char buf[8192];
    while (n > 0) {
        size_t chunk = n < sizeof buf ? (size_t)n : sizeof buf;
        int rc = read_full(t, buf, chunk, err);
        if (rc == 1) return err_set(err, "tar: unexpected end of archive");
        if (rc == -1) return -1;
        n -= chunk;
    }
    return 0;
}

static bool parse_num(const unsigned char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {                  /* base-256, GNU and star extension */
        if (f[0] == 0xff) return false; /* negative */
        v = f[0] & 0x3f;
        for (size_t i = 1; i < n; i++) {
            if (v >> 56) return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return true;
    }
    size_t i = 0;
    while (i < n && (f[i] == ' ' || f[i] == '\0'))
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 61) return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0') return false;
    *out = v;
    return true;
}

static bool checksum_ok(const unsigned char *h)
{
    uint64_t want;
    if (!parse_num(h + 148, 8, &want)) return false;
    uint64_t u = 0;
    int64_t s = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
        u += c;
        s += (signed char)c;
    }
    return want == u || (int64_t)want == s;
}

static char *field(const unsigned char *f, size_t n)
{
    size_t len = strnlen((const char *)f, n);
    return xstrndup((const char *)f, len);
}

char *image_tar_clean_path(const char *path)
{
    size_t n = strlen(path);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0 || (len == 1 && s[0] == '.')) continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0) o--;
            continue;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
    }
    out[o] = '\0';
    return out;
}

/* pax records: "<len> <key>=<value>\n" */
static void pax_parse(const char *buf, size_t len, char **path, char **link, uint64_t *size,
                      bool *has_size)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i, rec = 0;
        while (j < len && buf[j] >= '0' && buf[j] <= '9' && rec <= len)
            rec = rec * 10 + (size_t)(buf[j++] - '0');
        /* a record holds at least its length, the space and the '\n' */
        if (j >= len || buf[j] != ' ' || rec > len - i || rec < j - i + 2 ||
            buf[i + rec - 1] != '\n')
            return;
        const char *kv = buf + j + 1;
        const char *end = buf + i + rec - 1; /* the '\n' */
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (eq) {
            size_t klen = (size_t)(eq - kv);
            char *val = xstrndup(eq + 1, (size_t)(end - eq - 1));
            if (klen == 4 && memcmp(kv, "path", 4) == 0) {
                free(*path);
                *path = val;
            } else if (klen == 8 && memcmp(kv, "linkpath", 8) == 0) {
                free(*link);
                *link = val;
            } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
                *size = strtoull(val, NULL, 10);
                *has_size = true;
                free(val);
            } else {
                free(val);
            }
        }
        i += rec;
    }
}

int image_tar_next(image_tar_t *t, const image_tar_entry_t **entry, err_t *err)
{
    if (t->done) return 0;
    if (skip(t, t->remaining + t->padding, err) == -1) return -1;
    t->remaining = t->padding = 0;
    entry_clear(&t->entry);
    char *long_name = NULL, *long_link = NULL, *pax_path = NULL, *pax_link = NULL;
    uint64_t pax_size = 0;
    bool has_pax_size = false;
    unsigned char h[BLOCK];
    int ret = -1;
    for (;;) {
        int rc = read_full(t, h, BLOCK, err);
        if (rc == -1) goto out;
        bool zero = true;
        for (size_t i = 0; rc == 0 && i < BLOCK && zero; i++)
            zero = h[i] == 0;
        if (rc == 1 || zero) {
            t->done = true;
            ret = 0;
            goto out;
        }
        if (!checksum_ok(h)) {
            err_set(err, "tar: invalid header (bad checksum): not a tar archive, or corrupt");
            goto out;
        }
        uint64_t size;
        if (!parse_num(h + 124, 12, &size)) {
            err_set(err, "tar: invalid size field");
            goto out;
        }
        char type = (char)h[156];
        if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
            if (size > META_MAX) {
                err_set(err, "tar: %c header of %llu bytes is too large", type,
                        (unsigned long long)size);
                goto out;
            }
            char *buf = xmalloc((size_t)size + 1);
            int r = read_full(t, buf, (size_t)size, err);
            if (r == 1) err_set(err, "tar: unexpected end of archive");
            if (r != 0 || skip(t, (BLOCK - size % BLOCK) % BLOCK, err) == -1) {
                free(buf);
                goto out;
            }
            buf[size] = '\0';
            if (type == 'L') {
                free(long_name);
                long_name = buf;
            } else if (type == 'K') {
                free(long_link);
                long_link = buf;
            } else {
                if (type == 'x')
                    pax_parse(buf, (size_t)size, &pax_path, &pax_link, &pax_size, &has_pax_size);
                free(buf);
            }
            continue;
        }
        char *name;
        if (long_name) {
            name = xstrdup(long_name);
        } else if (pax_path) {
            name = xstrdup(pax_path);
        } else {
            char *base = field(h, 100);
            bool ustar = memcmp(h + 257, "ustar\0", 6) == 0;
            char *prefix = ustar ? field(h + 345, 155) : xstrdup("");
            name = *prefix ? xasprintf("%s/%s", prefix, base) : xstrdup(base);
            free(base);
            free(prefix);
        }
        t->entry.path = image_tar_clean_path(name);
        free(name);
        t->entry.link = long_link  ? xstrdup(long_link)
                        : pax_link ? xstrdup(pax_link)
                                   : field(h + 157, 100);
        if (has_pax_size) size = pax_size;
        if (type == '\0' || type == '7') type = '0';
        t->entry.type = type;
        bool has_data = !(type == '1' || type == '2' || type == '3' || type == '4' || type == '5' ||
                          type == '6');
        t->entry.size = has_data ? size : 0;
        t->remaining = t->entry.size;
        t->padding = (BLOCK - t->entry.size % BLOCK) % BLOCK;
        *entry = &t->entry;
        ret = 1;
        goto out;
    }
out:
    free(long_name);
    free(long_link);
    free(pax_path);
    free(pax_link);
    return ret;
}

ssize_t image_tar_read(image_tar_t *t, void *buf, size_t len, err_t *err)
{
    if (t->remaining == 0) return 0;
    if (len > t->remaining) len = (size_t)t->remaining;
    ssize_t r = t->read(t->arg, buf, len, err);
    if (r < 0) return -1;
    if (r == 0) return err_set(err, "tar: unexpected end of archive in %s", t->entry.path);
    t->remaining -= (uint64_t)r;
    return r;
}

/* --- finding a file in layers -------------------------------------------- */

typedef struct gz_src {
    gzFile gz;
} gz_src_t;

static ssize_t gz_read(void *arg, void *buf, size_t len, err_t *err)
{
    gz_src_t *s = arg;
    if (len > (1u << 30)) len = 1u << 30;
    int n = gzread(s->gz, buf, (unsigned)len);
    if (n < 0) {
        int code;
        const char *msg = gzerror(s->gz, &code);
        return err_set(err, "gzip: %s", msg ? msg : "read error");
    }
    return n;
}

static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("");
}

/* The target of a link at link_path, as a cleaned archive path. */
static char *link_target(const char *link_path, const char *link, char type)
{
    if (type == '1' || link[0] == '/') return image_tar_clean_path(link);
    char *dir = parent_dir(link_path);
    char *joined = xasprintf("%s/%s", dir, link);
    char *out = image_tar_clean_path(joined);
    free(dir);
    free(joined);
    return out;
}

/* Whether the "a/b" is "a/b" itself or below it. */
static bool at_or_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 0) return true;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

enum { FOUND_NONE, FOUND_FILE, FOUND_LINK };

static int copy_entry(image_tar_t *t, int fd, err_t *err)
{
    if (ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1)
        return err_errno(err, "truncate output");
    char buf[65536];
    for (;;) {
        ssize_t r = image_tar_read(t, buf, sizeof buf, err);
        if (r < 0) return -1;
        if (r == 0) return 0;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return err_errno(err, "write extracted file");
            off += w;
        }
    }
}

/* Scans one layer for target. */
static int scan_layer(const char *file, const char *target, int out_fd, int *found, char **next,
                      bool *hidden, err_t *err)
{
    *found = FOUND_NONE;
    *hidden = false;
    *next = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) return err_errno(err, "open layer %s", file);
    gz_src_t src = {gzdopen(fd, "rb")};
    if (!src.gz) {
        close(fd);
        return err_set(err, "open layer %s: cannot read", file);
    }
    gzbuffer(src.gz, 65536);
    image_tar_t *t = image_tar_open(gz_read, &src);
    int rc;
    const image_tar_entry_t *e;
    while ((rc = image_tar_next(t, &e, err)) == 1) {
        const char *p = e->path;
        const char *base = strrchr(p, '/');
        base = base ? base + 1 : p;
        if (strncmp(base, ".wh.", 4) == 0) {
            char *dir = parent_dir(p);
            if (strcmp(base, ".wh..wh..opq") == 0) {
                if (at_or_below(target, dir) && strcmp(target, dir) != 0) *hidden = true;
            } else {
                char *gone = *dir ? xasprintf("%s/%s", dir, base + 4) : xstrdup(base + 4);
                if (at_or_below(target, gone)) *hidden = true;
                free(gone);
            }
            free(dir);
            continue;
        }
        if (strcmp(p, target) == 0) {
            free(*next);
            *next = NULL;
            if (e->type == '0') {
                if (copy_entry(t, out_fd, err) == -1) {
                    rc = -1;
                    break;
                }
                *found = FOUND_FILE;
            } else if ((e->type == '1' || e->type == '2') && e->link[0]) {
                *next = link_target(p, e->link, e->type);
                *found = FOUND_LINK;
            } else {
                err_set(err, "%s is not a regular file (tar type '%c')", target, e->type);
                rc = -1;
                break;
            }
        } else if (e->type == '2' && at_or_below(target, p)) {
            /* A parent directory is a symbolic link. */
            free(*next);
            char *dir = link_target(p, e->link, e->type);
            *next = xasprintf("%s%s", dir, target + strlen(p));
            free(dir);
            *found = FOUND_LINK;
        }
    }
    image_tar_close(t);
    gzclose(src.gz);
    if (rc == -1) {
        free(*next);
        *next = NULL;
        return -1;
    }
    return 0;
}

int image_tar_extract(const char *const *layers, size_t n_layers, const char *path, int out_fd,
                      err_t *err)
{
    char *target = image_tar_clean_path(path);
    int hops = 0;
    int ret = -1;
    for (;;) {
        bool restarted = false;
        for (size_t i = n_layers; i-- > 0;) {
            int found;
            bool hidden;
            char *next;
            if (scan_layer(layers[i], target, out_fd, &found, &next, &hidden, err) == -1) {
                err_prefix(err, "layer %zu", i + 1);
                goto out;
            }
            if (found == FOUND_FILE) {
                ret = 0;
                goto out;
            }
            if (found == FOUND_LINK) {
                if (++hops > 16) {
                    free(next);
                    err_set(err, "/%s: too many levels of links", target);
                    goto out;
                }
                free(target);
                target = next;
                restarted = true;
                break;
            }
            if (hidden) {
                err_set(err, "/%s was deleted by a whiteout in layer %zu", target, i + 1);
                goto out;
            }
        }
        if (!restarted) {
            err_set(err, "/%s is not in the image (%zu layer%s)", target, n_layers,
                    n_layers == 1 ? "" : "s");
            goto out;
        }
    }
out:
    free(target);
    return ret;
}

/* --- writing ------------------------------------------------------------- */

void image_tar_write_file(strbuf_t *out, const char *name, const void *data, size_t len,
                          unsigned mode, int64_t mtime)
{
    unsigned char h[BLOCK];
    memset(h, 0, sizeof h);
    size_t n = strlen(name);
    const char *base = name;
    size_t prefix_len = 0;
    if (n > 100) { /* split at a '/' so that prefix <= 155 and name <= 100 */
        for (const char *s = name + n - 1; s > name; s--) {
            if (*s == '/' && (size_t)(s - name) <= 155 && n - (size_t)(s - name) - 1 <= 100) {
                prefix_len = (size_t)(s - name);
                base = s + 1;
                break;
            }
        }
    }
    memcpy(h, base, strnlen(base, 100));
    snprintf((char *)h + 100, 8, "%07o", mode & 07777);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)len);
    snprintf((char *)h + 136, 12, "%011llo",
             (unsigned long long)(mtime > 0 ? mtime : 0) & 077777777777ULL);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
    memcpy(h + 265, "root", 4);
    memcpy(h + 297, "root", 4);
    if (prefix_len) memcpy(h + 345, name, prefix_len);
    unsigned sum = 0;
    for (size_t i = 0; i < BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    strbuf_append(out, (const char *)h, BLOCK);
    strbuf_append(out, data, len);
    static const char zeros[BLOCK];
    strbuf_append(out, zeros, (BLOCK - len % BLOCK) % BLOCK);
}

void image_tar_write_end(strbuf_t *out)
{
    static const char zeros[2 * BLOCK];
    strbuf_append(out, zeros, sizeof zeros);
}

/* wasm_info.c: what `wasmlet push` says about a binary in the CNCF wasm
 * artifact config: whether it is a core module or a component, and for a
 * component the names of its top-level imports and exports
 * ("wasi:cli/environment@0.2.3", "wasi:cli/run@0.2.3").
 *
 * Read straight from the component binary format (Binary.md of the
 * component model): the preamble, then sections of id + size + contents;
 * only the import (10) and export (11) sections of the outer component are
 * read, every other section (nested modules and components among them) is
 * skipped by its size. Nothing is compiled, so pushing needs no engine.
 *
 *   import      ::= name:<externname'> desc:<externdesc>
 *   export      ::= name:<externname'> sortidx:<sortidx> desc?:(0x00 | 0x01 <externdesc>)
 *   externname' ::= 0x00 len name | 0x01 len name versionsuffix(len bytes)
 *   externdesc  ::= 0x00 0x11 idx | 0x01..0x05 idx-or-bound
 *   sortidx     ::= 0x00 coresort idx | 0x01..0x05 idx
 *
 * Every read is bounded by the section it is in; a binary that does not
 * parse gets an error naming the byte offset. */
#include "image/wasm_info.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct rd {
    const uint8_t *p, *end, *base;
} rd_t;

static int bad(const rd_t *r, err_t *err, const char *what)
{
    return err_set(err, "not a component binary this reader understands: %s at byte %zu", what,
                   (size_t)(r->p - r->base));
}

static int u8(rd_t *r, uint8_t *v, err_t *err)
{
    *v = 0;
    if (r->p >= r->end) return bad(r, err, "unexpected end");
    *v = *r->p++;
    return 0;
}

/* An unsigned LEB128 of at most 32 bits (also used to skip an s33: same
 * length rules). */
static int leb(rd_t *r, uint32_t *v, err_t *err)
{
    uint64_t out = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        uint8_t b;
        if (u8(r, &b, err) == -1) return -1;
        out |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (uint32_t)out;
            return 0;
        }
    }
    return bad(r, err, "LEB128 too long");
}

static int skip(rd_t *r, uint32_t n, err_t *err)
{
    if ((size_t)(r->end - r->p) < n) return bad(r, err, "length past the end");
    r->p += n;
    return 0;
}

/* externname': the name, copied. */
static int extern_name(rd_t *r, char **name, err_t *err)
{
    uint8_t kind;
    uint32_t len;
    if (u8(r, &kind, err) == -1 || leb(r, &len, err) == -1) return -1;
    if (kind > 1) return bad(r, err, "unknown name kind");
    if ((size_t)(r->end - r->p) < len) return bad(r, err, "name past the end");
    if (len == 0 || memchr(r->p, '\0', len)) return bad(r, err, "empty or NUL in a name");
    *name = xstrndup((const char *)r->p, len);
    r->p += len;
    if (kind == 1) { /* a version suffix */
        uint32_t vlen;
        if (leb(r, &vlen, err) == -1 || skip(r, vlen, err) == -1) {
            free(*name);
            *name = NULL;
            return -1;
        }
    }
    return 0;
}

static int extern_desc(rd_t *r, err_t *err)
{
    uint8_t kind, b;
    uint32_t idx;
    if (u8(r, &kind, err) == -1) return -1;
    switch (kind) {
    case 0x00: /* core module: 0x11 typeidx */
        if (u8(r, &b, err) == -1) return -1;
        if (b != 0x11) return bad(r, err, "core module import without 0x11");
        return leb(r, &idx, err);
    case 0x01: /* func */
    case 0x04: /* component */
    case 0x05: /* instance */
        return leb(r, &idx, err);
    case 0x02: /* value: 0x00 valueidx | 0x01 valtype (an s33 or a byte: one LEB) */
    case 0x03: /* type: 0x00 eq typeidx | 0x01 sub resource */
        if (u8(r, &b, err) == -1) return -1;
        if (b > 1) return bad(r, err, "unknown bound");
        if (kind == 0x03 && b == 0x01) return 0;
        return leb(r, &idx, err);
    default:
        return bad(r, err, "unknown extern kind");
    }
}

static int sort_idx(rd_t *r, err_t *err)
{
    uint8_t sort, core;
    uint32_t idx;
    if (u8(r, &sort, err) == -1) return -1;
    if (sort == 0x00 && u8(r, &core, err) == -1) return -1;
    if (sort > 0x05) return bad(r, err, "unknown sort");
    return leb(r, &idx, err);
}

static int names_section(rd_t *r, bool exports, strvec_t *out, err_t *err)
{
    uint32_t n;
    if (leb(r, &n, err) == -1) return -1;
    for (uint32_t i = 0; i < n; i++) {
        char *name = NULL;
        if (extern_name(r, &name, err) == -1) return -1;
        int rc = 0;
        if (exports) {
            uint8_t has;
            rc = sort_idx(r, err);
            if (rc == 0) rc = u8(r, &has, err);
            if (rc == 0 && has > 1) rc = bad(r, err, "unknown export type flag");
            if (rc == 0 && has == 1) rc = extern_desc(r, err);
        } else {
            rc = extern_desc(r, err);
        }
        if (rc == -1) {
            free(name);
            return -1;
        }
        strvec_push_owned(out, name);
    }
    return 0;
}

int image_wasm_describe(const uint8_t *wasm, size_t len, image_wasm_info_t *info, err_t *err)
{
    memset(info, 0, sizeof *info);
    if (len < 8 || memcmp(wasm, "\0asm", 4) != 0)
        return err_set(err, "not WebAssembly: it does not start with the \\0asm magic");
    if (wasm[6] == 0 && wasm[7] == 0) return 0; /* a core module (layer 0) */
    if (wasm[6] != 1 || wasm[7] != 0)
        return err_set(err, "unknown WebAssembly layer %u", (unsigned)wasm[6]);
    info->component = true;
    rd_t r = {wasm + 8, wasm + len, wasm};
    while (r.p < r.end) {
        uint8_t id;
        uint32_t size;
        if (u8(&r, &id, err) == -1 || leb(&r, &size, err) == -1) goto fail;
        if ((size_t)(r.end - r.p) < size) {
            bad(&r, err, "section past the end");
            goto fail;
        }
        rd_t sec = {r.p, r.p + size, wasm};
        if (id == 10 || id == 11) {
            strvec_t *v = id == 10 ? &info->imports : &info->exports;
            if (names_section(&sec, id == 11, v, err) == -1) goto fail;
            if (sec.p != sec.end) {
                bad(&sec, err, "bytes left at the end of a section");
                goto fail;
            }
        }
        r.p += size;
    }
    return 0;
fail:
    image_wasm_info_free(info);
    return -1;
}

void image_wasm_info_free(image_wasm_info_t *info)
{
    strvec_free(&info->imports);
    strvec_free(&info->exports);
    memset(info, 0, sizeof *info);
}

/* "wasi:x/y@V" of exports matching prefix "wasi:x/y@": its version V. */
static const char *export_version(const image_wasm_info_t *info, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < info->exports.len; i++)
        if (strncmp(info->exports.items[i], prefix, n) == 0 && info->exports.items[i][n])
            return info->exports.items[i] + n;
    return NULL;
}

char *image_wasm_target(const image_wasm_info_t *info)
{
    if (!info->component) return NULL;
    const char *v = export_version(info, "wasi:http/incoming-handler@");
    if (v) return xasprintf("wasi:http/proxy@%s", v);
    v = export_version(info, "wasi:cli/run@");
    if (v) return xasprintf("wasi:cli/command@%s", v);
    return NULL;
}

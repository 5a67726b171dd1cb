/* spdy.c: SPDY/3 frames and header blocks (see spdy.h).
 *
 * Wire layout (all numbers big-endian):
 *   control frame  1 bit C=1, 15 bits version, 16 bits type,
 *                  8 bits flags, 24 bits payload length, payload
 *   data frame     1 bit C=0, 31 bits stream id,
 *                  8 bits flags, 24 bits payload length, payload
 * and a header block, once inflated: a 32-bit pair count, then per pair a
 * 32-bit name length, the name, a 32-bit value length, the value.
 *
 * A frame is parsed only once all of it is in the buffer, so a frame's
 * bytes are looked at once and the decompressor sees each header block
 * exactly once, in order, as SPDY requires. */
#include "server/spdy.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

struct spdy_codec {
    z_stream in;  /* header blocks we receive */
    z_stream out; /* header blocks we send */
    bool in_ok, out_ok;
    uint8_t *scratch; /* SPDY_MAX_HEADER_BLOCK + 1 bytes: an inflated block */
};

/* --- the dictionary -------------------------------------------------------- */

/* The draft gives the dictionary as bytes; they are these words, each with
 * a 32-bit length in front, followed by one run of text without lengths. */
static const char *const dict_words[] = {
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
};

static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
    "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
    "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

#define DICT_CAP 1536
static uint8_t dict[DICT_CAP];
static size_t dict_len;
static pthread_once_t dict_once = PTHREAD_ONCE_INIT;

static void dict_build(void)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof dict_words / sizeof *dict_words; i++) {
        size_t w = strlen(dict_words[i]);
        dict[n++] = 0;
        dict[n++] = 0;
        dict[n++] = 0;
        dict[n++] = (uint8_t)w;
        memcpy(dict + n, dict_words[i], w);
        n += w;
    }
    memcpy(dict + n, dict_tail, sizeof dict_tail - 1);
    dict_len = n + sizeof dict_tail - 1;
}

const uint8_t *spdy_dictionary(size_t *len)
{
    pthread_once(&dict_once, dict_build);
    *len = dict_len;
    return dict;
}

/* --- codec ----------------------------------------------------------------- */

spdy_codec_t *spdy_codec_new(void)
{
    size_t dlen;
    const uint8_t *d = spdy_dictionary(&dlen);
    spdy_codec_t *c = xcalloc(1, sizeof *c);
    c->scratch = xmalloc(SPDY_MAX_HEADER_BLOCK + 1);
    c->in_ok = inflateInit(&c->in) == Z_OK;
    c->out_ok = deflateInit(&c->out, Z_DEFAULT_COMPRESSION) == Z_OK &&
                deflateSetDictionary(&c->out, d, (uInt)dlen) == Z_OK;
    if (!c->in_ok || !c->out_ok) {
        spdy_codec_free(c);
        return NULL;
    }
    return c;
}

void spdy_codec_free(spdy_codec_t *c)
{
    if (!c) return;
    if (c->in_ok) inflateEnd(&c->in);
    if (c->out_ok) deflateEnd(&c->out);
    free(c->scratch);
    free(c);
}

/* --- reading ----------------------------------------------------------------- */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Inflates one header block into c->scratch; its length, or -1. */
static long inflate_block(spdy_codec_t *c, const uint8_t *src, size_t n, err_t *err)
{
    size_t dlen;
    const uint8_t *d = spdy_dictionary(&dlen);
    z_stream *z = &c->in;
    z->next_in = (Bytef *)src;
    z->avail_in = (uInt)n;
    size_t got = 0;
    for (;;) {
        z->next_out = c->scratch + got;
        z->avail_out = (uInt)(SPDY_MAX_HEADER_BLOCK + 1 - got);
        int rc = inflate(z, Z_SYNC_FLUSH);
        got = (size_t)(z->next_out - c->scratch);
        if (rc == Z_NEED_DICT) {
            if (inflateSetDictionary(z, d, (uInt)dlen) != Z_OK)
                return err_set(err, "header block: not compressed with SPDY/3's dictionary");
            continue;
        }
        if (got > SPDY_MAX_HEADER_BLOCK)
            return err_set(err, "header block: over %d bytes once inflated", SPDY_MAX_HEADER_BLOCK);
        if (rc == Z_STREAM_END) return err_set(err, "header block: the compressed stream ended");
        if (rc == Z_BUF_ERROR && z->avail_in == 0) break; /* all taken, nothing more to give */
        if (rc != Z_OK) return err_set(err, "header block: %s", z->msg ? z->msg : "bad zlib data");
        if (z->avail_in == 0 && z->avail_out > 0) break;
    }
    return (long)got;
}

static void headers_free(spdy_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static int parse_header_block(spdy_codec_t *c, const uint8_t *src, size_t n, spdy_frame_t *f,
                              err_t *err)
{
    if (n == 0) return err_set(err, "header block missing");
    long got = inflate_block(c, src, n, err);
    if (got < 0) return -1;
    const uint8_t *p = c->scratch, *end = c->scratch + got;
    if (end - p < 4) return err_set(err, "header block: truncated pair count");
    uint32_t count = get32(p);
    p += 4;
    if (count > SPDY_MAX_HEADERS)
        return err_set(err, "header block: %u pairs (at most %d)", count, SPDY_MAX_HEADERS);
    spdy_header_t *h = count ? xcalloc(count, sizeof *h) : NULL;
    size_t i = 0;
    for (; i < count; i++) {
        if (end - p < 4) goto truncated;
        uint32_t nl = get32(p);
        p += 4;
        if (nl == 0) {
            err_set(err, "header block: an empty header name");
            goto fail;
        }
        if ((size_t)(end - p) < nl) goto truncated;
        for (uint32_t k = 0; k < nl; k++) {
            if ((p[k] >= 'A' && p[k] <= 'Z') || p[k] == 0) {
                err_set(err, "header block: a header name not in lower case");
                goto fail;
            }
        }
        h[i].name = xstrndup((const char *)p, nl);
        p += nl;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(h[k].name, h[i].name) == 0) {
                err_set(err, "header block: header %s twice", h[i].name);
                i++;
                goto fail;
            }
        }
        if (end - p < 4) {
            i++;
            goto truncated;
        }
        uint32_t vl = get32(p);
        p += 4;
        if ((size_t)(end - p) < vl) {
            i++;
            goto truncated;
        }
        h[i].value = xmalloc((size_t)vl + 1);
        memcpy(h[i].value, p, vl);
        h[i].value[vl] = '\0';
        h[i].value_len = vl;
        p += vl;
    }
    if (p != end) {
        err_set(err, "header block: %ld bytes after the last pair", (long)(end - p));
        goto fail;
    }
    f->headers = h;
    f->nheaders = count;
    return 0;
truncated:
    err_set(err, "header block: truncated");
fail:
    headers_free(h, i);
    return -1;
}

static int parse_control(spdy_codec_t *c, const uint8_t *p, uint32_t len, spdy_frame_t *f,
                         err_t *err)
{
    switch (f->type) {
    case SPDY_SYN_STREAM:
        if (len < 10) return err_set(err, "SYN_STREAM: %u bytes", len);
        f->stream_id = get32(p) & 0x7fffffff;
        f->assoc_id = get32(p + 4) & 0x7fffffff;
        f->priority = p[8] >> 5;
        if (f->stream_id == 0) return err_set(err, "SYN_STREAM: stream id 0");
        return parse_header_block(c, p + 10, len - 10, f, err);
    case SPDY_SYN_REPLY:
    case SPDY_HEADERS:
        if (len < 4)
            return err_set(err, "%s: %u bytes", f->type == SPDY_HEADERS ? "HEADERS" : "SYN_REPLY",
                           len);
        f->stream_id = get32(p) & 0x7fffffff;
        if (f->stream_id == 0) return err_set(err, "SYN_REPLY/HEADERS: stream id 0");
        return parse_header_block(c, p + 4, len - 4, f, err);
    case SPDY_RST_STREAM:
        if (len != 8) return err_set(err, "RST_STREAM: %u bytes", len);
        f->stream_id = get32(p) & 0x7fffffff;
        f->status = get32(p + 4);
        if (f->stream_id == 0) return err_set(err, "RST_STREAM: stream id 0");
        return 0;
    case SPDY_SETTINGS: {
        if (len < 4) return err_set(err, "SETTINGS: %u bytes", len);
        uint32_t n = get32(p);
        if (n > SPDY_MAX_SETTINGS) return err_set(err, "SETTINGS: %u entries", n);
        if (len != 4 + 8 * n) return err_set(err, "SETTINGS: %u bytes for %u entries", len, n);
        f->nsettings = n;
        f->settings = n ? xcalloc(n, sizeof *f->settings) : NULL;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *e = p + 4 + 8 * i;
            f->settings[i].flags = e[0];
            f->settings[i].id = get24(e + 1);
            f->settings[i].value = get32(e + 4);
        }
        return 0;
    }
    case SPDY_PING:
        if (len != 4) return err_set(err, "PING: %u bytes", len);
        f->value = get32(p);
        return 0;
    case SPDY_GOAWAY:
        if (len != 8) return err_set(err, "GOAWAY: %u bytes", len);
        f->stream_id = get32(p) & 0x7fffffff;
        f->status = get32(p + 4);
        return 0;
    case SPDY_WINDOW_UPDATE:
        if (len != 8) return err_set(err, "WINDOW_UPDATE: %u bytes", len);
        f->stream_id = get32(p) & 0x7fffffff;
        f->value = get32(p + 4) & 0x7fffffff;
        if (f->value == 0) return err_set(err, "WINDOW_UPDATE: a delta of 0");
        return 0;
    default:
        return 0; /* unknown control frame: skipped by the caller */
    }
}

long spdy_parse(spdy_codec_t *c, const uint8_t *buf, size_t len, spdy_frame_t *f, size_t *need,
                err_t *err)
{
    memset(f, 0, sizeof *f);
    if (need) *need = 0;
    if (len < SPDY_HEADER_LEN) return 0;
    uint32_t w0 = get32(buf);
    f->flags = buf[4];
    uint32_t plen = get24(buf + 5);
    bool control = (w0 & 0x80000000u) != 0;
    if (control) {
        uint32_t version = (w0 >> 16) & 0x7fff;
        if (version != SPDY_VERSION) return err_set(err, "SPDY version %u, not 3", version);
        if (plen > SPDY_MAX_CONTROL)
            return err_set(err, "control frame of %u bytes (at most %d)", plen, SPDY_MAX_CONTROL);
        f->type = (spdy_type_t)(w0 & 0xffff);
        if (f->type == SPDY_DATA) return err_set(err, "control frame of type 0");
    } else {
        if (plen > SPDY_MAX_FRAME)
            return err_set(err, "data frame of %u bytes (at most %d)", plen, SPDY_MAX_FRAME);
        f->type = SPDY_DATA;
        f->stream_id = w0 & 0x7fffffff;
        if (f->stream_id == 0) return err_set(err, "data frame on stream 0");
    }
    size_t total = SPDY_HEADER_LEN + (size_t)plen;
    if (need) *need = total;
    if (len < total) {
        memset(f, 0, sizeof *f);
        return 0;
    }
    const uint8_t *p = buf + SPDY_HEADER_LEN;
    if (!control) {
        f->data = p;
        f->len = plen;
        return (long)total;
    }
    if (parse_control(c, p, plen, f, err) == -1) {
        spdy_frame_clear(f);
        return -1;
    }
    return (long)total;
}

void spdy_frame_clear(spdy_frame_t *f)
{
    headers_free(f->headers, f->nheaders);
    free(f->settings);
    memset(f, 0, sizeof *f);
}

const char *spdy_header_get(const spdy_frame_t *f, const char *name)
{
    for (size_t i = 0; i < f->nheaders; i++)
        if (strcasecmp(f->headers[i].name, name) == 0) return f->headers[i].value;
    return NULL;
}

/* --- writing ------------------------------------------------------------------ */

static void put32(strbuf_t *out, uint32_t v)
{
    char b[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    strbuf_append(out, b, 4);
}

static void put_head(strbuf_t *out, bool control, uint32_t w0, uint8_t flags, size_t len)
{
    put32(out, control ? 0x80000000u | (uint32_t)SPDY_VERSION << 16 | w0 : w0);
    put32(out, (uint32_t)flags << 24 | (uint32_t)len);
}

/* The header block of f, compressed, appended to out. */
static int deflate_block(spdy_codec_t *c, const spdy_frame_t *f, strbuf_t *out, err_t *err)
{
    if (f->nheaders > SPDY_MAX_HEADERS) return err_set(err, "%zu headers", f->nheaders);
    strbuf_t raw = STRBUF_INIT;
    put32(&raw, (uint32_t)f->nheaders);
    for (size_t i = 0; i < f->nheaders; i++) {
        const char *name = f->headers[i].name;
        size_t nl = strlen(name);
        for (size_t k = 0; k < nl; k++)
            if (name[k] >= 'A' && name[k] <= 'Z') {
                strbuf_free(&raw);
                return err_set(err, "header name %s not in lower case", name);
            }
        size_t vl = f->headers[i].value_len
                        ? f->headers[i].value_len
                        : strlen(f->headers[i].value ? f->headers[i].value : "");
        if (nl == 0 || raw.len + 8 + nl + vl > SPDY_MAX_HEADER_BLOCK) {
            strbuf_free(&raw);
            return err_set(err, "header block too large or an empty name");
        }
        put32(&raw, (uint32_t)nl);
        strbuf_append(&raw, name, nl);
        put32(&raw, (uint32_t)vl);
        strbuf_append(&raw, f->headers[i].value ? f->headers[i].value : "", vl);
    }
    z_stream *z = &c->out;
    z->next_in = (Bytef *)raw.data;
    z->avail_in = (uInt)raw.len;
    uint8_t chunk[4096];
    int rc;
    do {
        z->next_out = chunk;
        z->avail_out = sizeof chunk;
        rc = deflate(z, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            strbuf_free(&raw);
            return err_set(err, "deflate: %s", z->msg ? z->msg : "error");
        }
        strbuf_append(out, (const char *)chunk, sizeof chunk - z->avail_out);
    } while (z->avail_out == 0);
    strbuf_free(&raw);
    return 0;
}

int spdy_encode(spdy_codec_t *c, const spdy_frame_t *f, strbuf_t *out, err_t *err)
{
    if (f->stream_id > 0x7fffffff || f->assoc_id > 0x7fffffff)
        return err_set(err, "stream id over 31 bits");
    if (f->type == SPDY_DATA) {
        if (f->stream_id == 0) return err_set(err, "data frame on stream 0");
        if (f->len > SPDY_MAX_FRAME) return err_set(err, "data frame of %zu bytes", f->len);
        put_head(out, false, f->stream_id, f->flags, f->len);
        if (f->len) strbuf_append(out, (const char *)f->data, f->len);
        return 0;
    }
    strbuf_t body = STRBUF_INIT;
    int rc = 0;
    switch (f->type) {
    case SPDY_SYN_STREAM:
        put32(&body, f->stream_id);
        put32(&body, f->assoc_id);
        strbuf_putc(&body, (char)((f->priority & 7) << 5));
        strbuf_putc(&body, 0);
        rc = deflate_block(c, f, &body, err);
        break;
    case SPDY_SYN_REPLY:
    case SPDY_HEADERS:
        put32(&body, f->stream_id);
        rc = deflate_block(c, f, &body, err);
        break;
    case SPDY_RST_STREAM:
    case SPDY_GOAWAY:
        put32(&body, f->stream_id);
        put32(&body, f->status);
        break;
    case SPDY_SETTINGS:
        if (f->nsettings > SPDY_MAX_SETTINGS) {
            rc = err_set(err, "%zu settings", f->nsettings);
            break;
        }
        put32(&body, (uint32_t)f->nsettings);
        for (size_t i = 0; i < f->nsettings; i++) {
            put32(&body, (uint32_t)f->settings[i].flags << 24 | (f->settings[i].id & 0xffffff));
            put32(&body, f->settings[i].value);
        }
        break;
    case SPDY_PING:
        put32(&body, f->value);
        break;
    case SPDY_WINDOW_UPDATE:
        put32(&body, f->stream_id);
        put32(&body, f->value & 0x7fffffff);
        break;
    default:
        rc = err_set(err, "cannot encode frame type %d", (int)f->type);
    }
    if (rc == 0 && body.len > SPDY_MAX_CONTROL) rc = err_set(err, "control frame too large");
    if (rc == 0) {
        put_head(out, true, (uint32_t)f->type, f->flags, body.len);
        if (body.len) strbuf_append(out, body.data, body.len);
    }
    strbuf_free(&body);
    return rc;
}

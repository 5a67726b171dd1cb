/* fuzz_spdy.c: SPDY/3 frames (server/spdy.h) as a port-forward client
 * sends them: the input is the byte stream of one connection, parsed frame
 * after frame through one codec (so header blocks share a decompression
 * context, as on the wire). The first input byte splits the stream into
 * reads of varying sizes, as the network would, so incomplete frames are
 * seen too. Every frame parsed is encoded again with a second codec and
 * parsed by a third, and must come back the same. */
#include "harness.h"
#include "server/spdy.h"

#include <stdlib.h>
#include <string.h>

static void same(const spdy_frame_t *a, const spdy_frame_t *b)
{
    if (a->type != b->type || a->flags != b->flags || a->stream_id != b->stream_id) abort();
    if (a->nheaders != b->nheaders || a->nsettings != b->nsettings || a->len != b->len) abort();
    for (size_t i = 0; i < a->nheaders; i++) {
        if (strcmp(a->headers[i].name, b->headers[i].name) != 0) abort();
        if (a->headers[i].value_len != b->headers[i].value_len) abort();
        if (memcmp(a->headers[i].value, b->headers[i].value, a->headers[i].value_len) != 0) abort();
    }
    if (a->len && memcmp(a->data, b->data, a->len) != 0) abort();
    for (size_t i = 0; i < a->nsettings; i++)
        if (a->settings[i].flags != b->settings[i].flags ||
            a->settings[i].id != b->settings[i].id || a->settings[i].value != b->settings[i].value)
            abort();
    switch (a->type) {
    case SPDY_SYN_STREAM:
        if (a->assoc_id != b->assoc_id || a->priority != b->priority) abort();
        break;
    case SPDY_RST_STREAM:
    case SPDY_GOAWAY:
        if (a->status != b->status) abort();
        break;
    case SPDY_PING:
    case SPDY_WINDOW_UPDATE:
        if (a->value != b->value) abort();
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    size_t step = (size_t)fuzz_byte(&in) * 16 + 1;
    spdy_codec_t *rx = spdy_codec_new(), *tx = spdy_codec_new(), *back = spdy_codec_new();
    if (!rx || !tx || !back) abort();
    strbuf_t buf = STRBUF_INIT;
    bool round_trip = true;
    size_t off = 0, have = 0;
    while (off < in.n) {
        have = have + step < in.n - off ? have + step : in.n - off;
        spdy_frame_t f;
        err_t err = {""};
        size_t need = 0;
        long n = spdy_parse(rx, in.p + off, have, &f, &need, &err);
        if (n < 0) {
            if (!err.msg[0] || f.headers || f.settings) abort();
            break;
        }
        if (n == 0) {
            if (have == in.n - off) break; /* the rest is an incomplete frame */
            if (need && need <= have) abort();
            continue;
        }
        if ((size_t)n > have) abort();
        bool known = f.type == SPDY_DATA || f.type == SPDY_SYN_STREAM || f.type == SPDY_SYN_REPLY ||
                     f.type == SPDY_RST_STREAM || f.type == SPDY_SETTINGS || f.type == SPDY_PING ||
                     f.type == SPDY_GOAWAY || f.type == SPDY_HEADERS ||
                     f.type == SPDY_WINDOW_UPDATE;
        if (round_trip && known) {
            strbuf_reset(&buf);
            if (spdy_encode(tx, &f, &buf, &err) == 0) {
                spdy_frame_t g;
                long m = spdy_parse(back, (const uint8_t *)buf.data, buf.len, &g, NULL, &err);
                if (m != (long)buf.len) abort();
                same(&f, &g);
                spdy_frame_clear(&g);
            } else {
                /* A block that fit inflated may not fit compressed again;
                 * the compressors are out of step from here on. */
                round_trip = false;
            }
        }
        spdy_frame_clear(&f);
        off += (size_t)n;
        have = 0;
    }
    strbuf_free(&buf);
    spdy_codec_free(rx);
    spdy_codec_free(tx);
    spdy_codec_free(back);
    return 0;
}

/* test_spdy.c: unit tests for server/spdy.h: SPDY/3 frames and header
 * blocks. Round trips of every frame type through two codecs (a sender's
 * and a receiver's, as the two ends of a connection), frames made by
 * another implementation (zlib with the dictionary as moby/spdystream
 * ships it), incremental input, and the malformed frames the parser must
 * refuse without crashing or allocating without bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/spdy.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Two SYN_STREAMs as kubectl's port-forward opens them (error, then data;
 * port 8080, requestID 0), compressed by Python's zlib with the dictionary
 * bytes of moby/spdystream's spdy/dictionary.go: another implementation's
 * output, sharing one compression context across both frames. */
static const uint8_t kubectl_pair[] = {
    0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x48, 0xf9, 0x5b,
    0x04, 0x4e, 0xea, 0x16, 0x06, 0x16, 0x06, 0x40, 0x9a, 0xb3, 0x08, 0x12, 0x5f, 0x99, 0xa0,
    0x74, 0xcc, 0x68, 0x00, 0x4e, 0x89, 0x25, 0x45, 0xa9, 0x89, 0xb9, 0xd0, 0xc2, 0x86, 0x35,
    0x15, 0x14, 0x15, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x80, 0x03, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x16, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x53, 0x33,
    0xa8, 0xa4, 0x4a, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff};

static void dictionary(void **state)
{
    (void)state;
    size_t n;
    const uint8_t *d = spdy_dictionary(&n);
    assert_int_equal(n, 1423);
    /* The dictionary id in the zlib header of every SPDY/3 header stream. */
    assert_int_equal(adler32(1, d, (uInt)n), 0xe3c6a7c2);
    assert_memory_equal(d, "\0\0\0\7options\0\0\0\4head", 19);
    assert_memory_equal(d + n - 6, "enq=0.", 6);
}

static void another_implementations_frames(void **state)
{
    (void)state;
    spdy_codec_t *c = spdy_codec_new();
    spdy_frame_t f;
    err_t err = {""};
    long n = spdy_parse(c, kubectl_pair, sizeof kubectl_pair, &f, NULL, &err);
    assert_int_equal(n, 8 + 0x3d);
    assert_int_equal(f.type, SPDY_SYN_STREAM);
    assert_int_equal(f.stream_id, 1);
    assert_int_equal(f.nheaders, 3);
    assert_string_equal(spdy_header_get(&f, "streamType"), "error");
    assert_string_equal(spdy_header_get(&f, "port"), "8080");
    assert_string_equal(spdy_header_get(&f, "requestid"), "0");
    spdy_frame_clear(&f);
    long m = spdy_parse(c, kubectl_pair + n, sizeof kubectl_pair - (size_t)n, &f, NULL, &err);
    assert_int_equal(n + m, sizeof kubectl_pair);
    assert_int_equal(f.stream_id, 3);
    assert_string_equal(spdy_header_get(&f, "streamtype"), "data");
    spdy_frame_clear(&f);
    spdy_codec_free(c);
}

static spdy_header_t H(const char *name, const char *value)
{
    return (spdy_header_t){.name = (char *)name, .value = (char *)value};
}

/* Encodes f with tx, parses it with rx; returns the parsed frame. */
static void round_trip(spdy_codec_t *tx, spdy_codec_t *rx, const spdy_frame_t *f, strbuf_t *buf,
                       spdy_frame_t *out)
{
    err_t err = {""};
    strbuf_reset(buf);
    if (spdy_encode(tx, f, buf, &err) != 0) fail_msg("encode: %s", err.msg);
    long n = spdy_parse(rx, (const uint8_t *)buf->data, buf->len, out, NULL, &err);
    if (n != (long)buf->len) fail_msg("parse: %ld of %zu: %s", n, buf->len, err.msg);
    assert_int_equal(out->type, f->type);
}

static void round_trips(void **state)
{
    (void)state;
    spdy_codec_t *tx = spdy_codec_new(), *rx = spdy_codec_new();
    strbuf_t buf = STRBUF_INIT;
    spdy_frame_t g;

    /* Header frames, several in a row: the compression context carries on. */
    for (int i = 0; i < 5; i++) {
        spdy_header_t hs[] = {H("port", "8080"), H("streamtype", i % 2 ? "data" : "error"),
                              H("requestid", i < 3 ? "7" : "1234567890")};
        spdy_frame_t f = {.type = SPDY_SYN_STREAM,
                          .stream_id = (uint32_t)(2 * i + 1),
                          .assoc_id = 0,
                          .priority = 3,
                          .flags = i == 4 ? SPDY_FLAG_FIN : 0,
                          .headers = hs,
                          .nheaders = 3};
        round_trip(tx, rx, &f, &buf, &g);
        assert_int_equal(g.stream_id, 2 * i + 1);
        assert_int_equal(g.priority, 3);
        assert_int_equal(g.flags, f.flags);
        assert_int_equal(g.nheaders, 3);
        assert_string_equal(spdy_header_get(&g, "streamtype"), i % 2 ? "data" : "error");
        assert_string_equal(spdy_header_get(&g, "requestid"), i < 3 ? "7" : "1234567890");
        spdy_frame_clear(&g);
    }
    spdy_frame_t reply = {.type = SPDY_SYN_REPLY, .stream_id = 9};
    round_trip(tx, rx, &reply, &buf, &g);
    assert_int_equal(g.stream_id, 9);
    assert_int_equal(g.nheaders, 0);
    spdy_frame_clear(&g);

    spdy_header_t hh[] = {H("x", "")};
    spdy_frame_t headers = {.type = SPDY_HEADERS, .stream_id = 11, .headers = hh, .nheaders = 1};
    round_trip(tx, rx, &headers, &buf, &g);
    assert_string_equal(spdy_header_get(&g, "x"), "");
    spdy_frame_clear(&g);

    uint8_t payload[3000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    spdy_frame_t data = {.type = SPDY_DATA,
                         .stream_id = 0x7fffffff,
                         .flags = SPDY_FLAG_FIN,
                         .data = payload,
                         .len = sizeof payload};
    round_trip(tx, rx, &data, &buf, &g);
    assert_int_equal(g.stream_id, 0x7fffffff);
    assert_int_equal(g.flags, SPDY_FLAG_FIN);
    assert_int_equal(g.len, sizeof payload);
    assert_memory_equal(g.data, payload, sizeof payload);
    spdy_frame_clear(&g);

    spdy_frame_t rst = {.type = SPDY_RST_STREAM, .stream_id = 5, .status = SPDY_RST_CANCEL};
    round_trip(tx, rx, &rst, &buf, &g);
    assert_int_equal(g.stream_id, 5);
    assert_int_equal(g.status, SPDY_RST_CANCEL);
    spdy_frame_clear(&g);

    spdy_setting_t set[] = {{.flags = 1, .id = 7, .value = 65536}, {.id = 4, .value = 100}};
    spdy_frame_t settings = {.type = SPDY_SETTINGS, .settings = set, .nsettings = 2};
    round_trip(tx, rx, &settings, &buf, &g);
    assert_int_equal(g.nsettings, 2);
    assert_int_equal(g.settings[0].flags, 1);
    assert_int_equal(g.settings[0].id, 7);
    assert_int_equal(g.settings[0].value, 65536);
    assert_int_equal(g.settings[1].id, 4);
    spdy_frame_clear(&g);

    spdy_frame_t ping = {.type = SPDY_PING, .value = 0xdeadbeef};
    round_trip(tx, rx, &ping, &buf, &g);
    assert_int_equal(g.value, 0xdeadbeef);
    spdy_frame_clear(&g);

    spdy_frame_t goaway = {.type = SPDY_GOAWAY, .stream_id = 41, .status = 1};
    round_trip(tx, rx, &goaway, &buf, &g);
    assert_int_equal(g.stream_id, 41);
    assert_int_equal(g.status, 1);
    spdy_frame_clear(&g);

    spdy_frame_t wu = {.type = SPDY_WINDOW_UPDATE, .stream_id = 3, .value = 65536};
    round_trip(tx, rx, &wu, &buf, &g);
    assert_int_equal(g.stream_id, 3);
    assert_int_equal(g.value, 65536);
    spdy_frame_clear(&g);

    /* Out of range for the encoder. */
    err_t err = {""};
    spdy_frame_t bad = {.type = SPDY_DATA, .stream_id = 0x80000000u};
    strbuf_reset(&buf);
    assert_int_equal(spdy_encode(tx, &bad, &buf, &err), -1);
    assert_int_equal(buf.len, 0);
    spdy_header_t upper[] = {H("Port", "1")};
    spdy_frame_t bad2 = {.type = SPDY_SYN_REPLY, .stream_id = 1, .headers = upper, .nheaders = 1};
    assert_int_equal(spdy_encode(tx, &bad2, &buf, &err), -1);

    strbuf_free(&buf);
    spdy_codec_free(tx);
    spdy_codec_free(rx);
}

/* A frame that arrives a byte at a time is only parsed once whole. */
static void incremental(void **state)
{
    (void)state;
    spdy_codec_t *c = spdy_codec_new();
    spdy_frame_t f;
    err_t err = {""};
    size_t need = 0;
    for (size_t i = 0; i < 8 + 0x3d; i++) {
        assert_int_equal(spdy_parse(c, kubectl_pair, i, &f, &need, &err), 0);
        if (i >= 8) assert_int_equal(need, 8 + 0x3d);
    }
    assert_int_equal(spdy_parse(c, kubectl_pair, 8 + 0x3d, &f, NULL, &err), 8 + 0x3d);
    spdy_frame_clear(&f);
    spdy_codec_free(c);
}

/* --- malformed input -------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void control_head(uint8_t *p, int version, int type, int flags, uint32_t len)
{
    put32(p, 0x80000000u | (uint32_t)version << 16 | (uint32_t)type);
    put32(p + 4, (uint32_t)flags << 24 | len);
}

static void expect_refused(const uint8_t *buf, size_t len, const char *word)
{
    spdy_codec_t *c = spdy_codec_new();
    spdy_frame_t f;
    err_t err = {""};
    long n = spdy_parse(c, buf, len, &f, NULL, &err);
    if (n != -1 || !strstr(err.msg, word))
        fail_msg("expected refusal with '%s': %ld %s", word, n, err.msg);
    assert_null(f.headers);
    spdy_codec_free(c);
}

/* A header block compressed here with the dictionary: raw is the inflated
 * block as given (so it can be wrong on purpose). */
static size_t compress_block(const uint8_t *raw, size_t rawlen, uint8_t *out, size_t cap,
                             bool with_dict)
{
    z_stream z = {0};
    assert_int_equal(deflateInit(&z, 9), Z_OK);
    if (with_dict) {
        size_t dl;
        const uint8_t *d = spdy_dictionary(&dl);
        assert_int_equal(deflateSetDictionary(&z, d, (uInt)dl), Z_OK);
    }
    z.next_in = (Bytef *)raw;
    z.avail_in = (uInt)rawlen;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(z.avail_in, 0);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* A SYN_REPLY for stream 1 around a compressed block. */
static size_t syn_reply(const uint8_t *block, size_t n, uint8_t *out)
{
    control_head(out, 3, SPDY_SYN_REPLY, 0, (uint32_t)(4 + n));
    put32(out + 8, 1);
    memcpy(out + 12, block, n);
    return 12 + n;
}

static void malformed(void **state)
{
    (void)state;
    uint8_t b[256] = {0};

    control_head(b, 2, SPDY_PING, 0, 4);
    expect_refused(b, 12, "version");
    control_head(b, 3, SPDY_PING, 0, 5);
    expect_refused(b, 13, "PING");
    control_head(b, 3, SPDY_RST_STREAM, 0, 7);
    expect_refused(b, 15, "RST_STREAM");
    control_head(b, 3, SPDY_RST_STREAM, 0, 8);
    put32(b + 8, 0);
    expect_refused(b, 16, "stream id 0");
    control_head(b, 3, SPDY_GOAWAY, 0, 4);
    expect_refused(b, 12, "GOAWAY");
    control_head(b, 3, SPDY_WINDOW_UPDATE, 0, 8);
    put32(b + 8, 1);
    put32(b + 12, 0);
    expect_refused(b, 16, "delta");
    control_head(b, 3, SPDY_SETTINGS, 0, 12);
    put32(b + 8, 2); /* two entries claimed, one present */
    expect_refused(b, 20, "SETTINGS");
    control_head(b, 3, SPDY_SETTINGS, 0, 4);
    put32(b + 8, 0xffffffffu);
    expect_refused(b, 12, "SETTINGS");
    control_head(b, 3, SPDY_SYN_STREAM, 0, 9);
    expect_refused(b, 17, "SYN_STREAM");
    control_head(b, 3, SPDY_SYN_STREAM, 0, 10); /* no header block at all */
    put32(b + 8, 1);
    expect_refused(b, 18, "header block");
    control_head(b, 3, 0, 0, 0);
    expect_refused(b, 8, "type 0");

    /* Sizes: refused from the 8-byte head alone, before any payload. */
    control_head(b, 3, SPDY_HEADERS, 0, SPDY_MAX_CONTROL + 1);
    expect_refused(b, 8, "control frame of");
    put32(b, 5);
    put32(b + 4, 0xffffff);
    expect_refused(b, 8, "data frame of");
    put32(b, 0);
    put32(b + 4, 0);
    expect_refused(b, 8, "stream 0");

    /* Header blocks. */
    uint8_t raw[128], z[512], frame[1024];
    size_t n;
    memcpy(b + 12, "\x01\x02\x03\x04garbage", 11); /* not zlib */
    n = syn_reply(b + 12, 11, frame);
    expect_refused(frame, n, "header block");
    /* Compressed without the dictionary: zlib's header does not ask for it,
     * so this is legal zlib but the block inside is checked as usual; with
     * a foreign dictionary id it is refused. */
    put32(raw, 1);
    put32(raw + 4, 4);
    memcpy(raw + 8, "Port", 4);
    put32(raw + 12, 1);
    raw[16] = '1';
    n = syn_reply(z, compress_block(raw, 17, z, sizeof z, true), frame);
    expect_refused(frame, n, "lower case");
    memcpy(raw + 8, "port", 4);
    put32(raw + 12, 100); /* value longer than the block */
    n = syn_reply(z, compress_block(raw, 17, z, sizeof z, true), frame);
    expect_refused(frame, n, "truncated");
    put32(raw, 2); /* two pairs, both "port" */
    put32(raw + 12, 1);
    memcpy(raw + 17, raw + 4, 13);
    n = syn_reply(z, compress_block(raw, 30, z, sizeof z, true), frame);
    expect_refused(frame, n, "twice");
    put32(raw, 1);
    put32(raw + 4, 0); /* empty name */
    put32(raw + 8, 0);
    n = syn_reply(z, compress_block(raw, 12, z, sizeof z, true), frame);
    expect_refused(frame, n, "empty");
    put32(raw, SPDY_MAX_HEADERS + 1);
    n = syn_reply(z, compress_block(raw, 4, z, sizeof z, true), frame);
    expect_refused(frame, n, "pairs");
    put32(raw, 0);
    raw[4] = 'x'; /* a byte after the last pair */
    n = syn_reply(z, compress_block(raw, 5, z, sizeof z, true), frame);
    expect_refused(frame, n, "after the last pair");

    /* A zlib bomb: 1 MiB of zeros in a few hundred bytes. */
    uint8_t *zeros = xcalloc(1, 1024 * 1024);
    uint8_t *bomb = xmalloc(8192), *bf = xmalloc(8192 + 12);
    size_t bn = compress_block(zeros, 1024 * 1024, bomb, 8192, true);
    n = syn_reply(bomb, bn, bf);
    expect_refused(bf, n, "inflated");
    free(zeros);
    free(bomb);
    free(bf);
}

/* Another dictionary (a zlib stream that names a dictionary other than
 * SPDY's) is refused, and an unknown control frame type is skipped. */
static void foreign_dictionary_and_unknown_type(void **state)
{
    (void)state;
    uint8_t raw[4] = {0, 0, 0, 0}, z[64], frame[128];
    z_stream zs = {0};
    assert_int_equal(deflateInit(&zs, 9), Z_OK);
    assert_int_equal(deflateSetDictionary(&zs, (const Bytef *)"other dictionary", 16), Z_OK);
    zs.next_in = raw;
    zs.avail_in = 4;
    zs.next_out = z;
    zs.avail_out = sizeof z;
    assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t n = syn_reply(z, sizeof z - zs.avail_out, frame);
    deflateEnd(&zs);
    expect_refused(frame, n, "dictionary");

    spdy_codec_t *c = spdy_codec_new();
    spdy_frame_t f;
    err_t err = {""};
    control_head(frame, 3, 0x42, 0, 3);
    memcpy(frame + 8, "abc", 3);
    assert_int_equal(spdy_parse(c, frame, 11, &f, NULL, &err), 11);
    assert_int_equal((int)f.type, 0x42);
    spdy_frame_clear(&f);
    spdy_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dictionary),  cmocka_unit_test(another_implementations_frames),
        cmocka_unit_test(round_trips), cmocka_unit_test(incremental),
        cmocka_unit_test(malformed),   cmocka_unit_test(foreign_dictionary_and_unknown_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

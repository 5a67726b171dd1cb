/* spdy.h: SPDY/3.1 framing, as the Kubernetes API server speaks it to a
 * kubelet for port-forward (draft-mbelshe-httpbis-spdy-00 and the SPDY/3.1
 * draft; the peer is moby/spdystream's framer).
 *
 * Only the frames and the header block codec: no I/O, no streams. The
 * caller (portforward.c) owns a codec per connection, feeds it the bytes
 * it received and gets whole frames back, and asks it to encode the frames
 * it sends. Header blocks are zlib streams with SPDY/3's dictionary, one
 * compression context per direction for the whole connection, each block
 * ended with a sync flush.
 *
 * Strict and bounded, because the bytes come from the network: a frame
 * longer than SPDY_MAX_FRAME, a control frame longer than
 * SPDY_MAX_CONTROL, a header block that inflates past SPDY_MAX_HEADER_BLOCK
 * or holds more than SPDY_MAX_HEADERS pairs, a version other than 3, a
 * length that does not match the frame type, a zero stream id where one is
 * needed, an empty or upper-case header name: each is an error of the
 * connection (answer GOAWAY PROTOCOL_ERROR and close). Unknown control
 * frame types are skipped, as the draft asks. Flow control (WINDOW_UPDATE,
 * SETTINGS' initial window) is parsed and left to the caller: spdystream
 * sends none and honours none, so the kubelet side relies on TCP's. */
#ifndef WASMLET_SERVER_SPDY_H
#define WASMLET_SERVER_SPDY_H

#include "util/err.h"
#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPDY_VERSION 3
#define SPDY_HEADER_LEN 8
#define SPDY_MAX_FRAME (1024 * 1024)      /* payload bytes of any frame */
#define SPDY_MAX_CONTROL (64 * 1024)      /* payload bytes of a control frame */
#define SPDY_MAX_HEADER_BLOCK (64 * 1024) /* a header block once inflated */
#define SPDY_MAX_HEADERS 128              /* name/value pairs in a block */
#define SPDY_MAX_SETTINGS 64              /* entries of a SETTINGS frame */

typedef enum spdy_type {
    SPDY_DATA = 0,
    SPDY_SYN_STREAM = 1,
    SPDY_SYN_REPLY = 2,
    SPDY_RST_STREAM = 3,
    SPDY_SETTINGS = 4,
    SPDY_PING = 6,
    SPDY_GOAWAY = 7,
    SPDY_HEADERS = 8,
    SPDY_WINDOW_UPDATE = 9,
} spdy_type_t;

#define SPDY_FLAG_FIN 0x01
#define SPDY_FLAG_UNIDIRECTIONAL 0x02 /* SYN_STREAM */

/* RST_STREAM status codes. */
enum {
    SPDY_RST_PROTOCOL_ERROR = 1,
    SPDY_RST_INVALID_STREAM = 2,
    SPDY_RST_REFUSED_STREAM = 3,
    SPDY_RST_CANCEL = 5,
    SPDY_RST_INTERNAL_ERROR = 6,
    SPDY_RST_STREAM_IN_USE = 8,
    SPDY_RST_STREAM_ALREADY_CLOSED = 9,
};

/* GOAWAY status codes. */
enum { SPDY_GOAWAY_OK = 0, SPDY_GOAWAY_PROTOCOL_ERROR = 1, SPDY_GOAWAY_INTERNAL_ERROR = 2 };

typedef struct spdy_header {
    char *name; /* lower case */
    char *value;
    size_t value_len; /* values may hold NULs (several values, NUL-separated) */
} spdy_header_t;

typedef struct spdy_setting {
    uint8_t flags;
    uint32_t id;
    uint32_t value;
} spdy_setting_t;

/* One frame, parsed or to encode. Which fields mean something depends on
 * the type:
 *   DATA           stream_id, flags, data/len
 *   SYN_STREAM     stream_id, assoc_id, priority, flags, headers
 *   SYN_REPLY      stream_id, flags, headers
 *   HEADERS        stream_id, flags, headers
 *   RST_STREAM     stream_id, status
 *   SETTINGS       flags, settings/nsettings
 *   PING           value (the ping id)
 *   GOAWAY         stream_id (last good stream id), status
 *   WINDOW_UPDATE  stream_id (0: the session), value (the delta) */
typedef struct spdy_frame {
    spdy_type_t type;
    uint8_t flags;
    uint32_t stream_id;
    uint32_t assoc_id;
    uint8_t priority;
    uint32_t status;
    uint32_t value;
    spdy_header_t *headers;
    size_t nheaders;
    spdy_setting_t *settings;
    size_t nsettings;
    const uint8_t *data; /* DATA: points into the parsed buffer; encode: the caller's */
    size_t len;
} spdy_frame_t;

typedef struct spdy_codec spdy_codec_t;

spdy_codec_t *spdy_codec_new(void);
void spdy_codec_free(spdy_codec_t *c);

/* Parses one frame from the front of buf. Returns the bytes it took (> 0)
 * with *f filled, 0 when buf holds no whole frame yet (*need gets the
 * bytes the frame needs in all, when known, else 0), or -1 with err filled
 * when the bytes are not SPDY/3 or break a bound: the connection is then
 * unusable (its header decompressor may be out of step). An unknown control
 * frame is consumed and returned with its type number as is. *f is cleared
 * first; free it with spdy_frame_clear (its data points into buf). */
long spdy_parse(spdy_codec_t *c, const uint8_t *buf, size_t len, spdy_frame_t *f, size_t *need,
                err_t *err);

/* Appends the frame's bytes to out; header blocks are compressed with the
 * codec's compressor. -1 (err filled, out unchanged) when a field is out of
 * range (a stream id over 31 bits, data over SPDY_MAX_FRAME, a header
 * block over the bounds). */
int spdy_encode(spdy_codec_t *c, const spdy_frame_t *f, strbuf_t *out, err_t *err);

/* Frees what spdy_parse allocated (headers, settings) and zeroes *f. */
void spdy_frame_clear(spdy_frame_t *f);

/* A header's value (the first, when NUL-separated), matched on the name
 * without regard to case; NULL when absent. */
const char *spdy_header_get(const spdy_frame_t *f, const char *name);

/* SPDY/3's header compression dictionary (the draft's section 2.6.10.1). */
const uint8_t *spdy_dictionary(size_t *len);

#endif

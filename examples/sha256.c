/*
 * sha256: a CPU-bound benchmark kernel, SHA-256 written from FIPS 180-4
 * (section 4.1.2 functions, 4.2.2 constants, 5.1.1 padding, 5.3.3 initial
 * value, 6.2.2 computation). Plain C17 with no WASI-only calls, so the same
 * file builds natively (`cc -O2 -o sha256 examples/sha256.c`) and for
 * wasm32-wasi, and the benchmarks compare the two on identical work.
 *
 *   sha256 MIB [ROUNDS]   generate MIB MiB (0..1024) of pseudo-random bytes,
 *                         hash them ROUNDS times (default 1) and print the
 *                         digest as 64 lowercase hex digits and a newline
 *   sha256 --gen MIB      write those same bytes to stdout, so that
 *                         `sha256 --gen 3 | sha256sum` checks `sha256 3`
 *   sha256 --stdin        hash stdin and print its digest the same way
 *
 * The data comes from splitmix64 with a fixed seed, stored little-endian
 * byte by byte, so it is the same on every host. It is generated once, before
 * hashing; generation costs a few percent of one round. Every round hashes
 * the whole buffer from scratch and its digest is compared with the first
 * round's (a mismatch exits 1): that keeps every round observable, so no
 * compiler may drop the repeats, and doubles as a self-check.
 *
 * Bad arguments print a usage line to stderr and exit 2; I/O or allocation
 * failures exit 1.
 *
 * Used by the wasm-versus-native CPU benchmarks, by tests that need a
 * container busy for a predictable amount of CPU (CPU limits, metrics and
 * stats), and its digest makes a deterministic output to assert on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t h[8];
    uint64_t length;   /* bytes hashed so far */
    uint8_t block[64]; /* a partial block waiting for more input */
    size_t block_used;
} sha256_ctx_t;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

/* One application of the compression function to a 64-byte block (6.2.2). */
static void sha256_compress(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + big_s1 + ch + K[t] + w[t];
        uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha256_init(sha256_ctx_t *ctx)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, initial, sizeof(initial));
    ctx->length = 0;
    ctx->block_used = 0;
}

static void sha256_update(sha256_ctx_t *ctx, const uint8_t *data, size_t len)
{
    ctx->length += len;
    if (ctx->block_used > 0) {
        size_t take = 64 - ctx->block_used;
        if (take > len) take = len;
        memcpy(ctx->block + ctx->block_used, data, take);
        ctx->block_used += take;
        data += take;
        len -= take;
        if (ctx->block_used < 64) return;
        sha256_compress(ctx->h, ctx->block);
        ctx->block_used = 0;
    }
    for (; len >= 64; data += 64, len -= 64)
        sha256_compress(ctx->h, data);
    memcpy(ctx->block, data, len);
    ctx->block_used = len;
}

/* Padding (5.1.1): a 1 bit, zeros, then the message length in bits, big-endian. */
static void sha256_final(sha256_ctx_t *ctx, uint8_t digest[32])
{
    uint64_t bits = ctx->length * 8;
    ctx->block[ctx->block_used++] = 0x80;
    if (ctx->block_used > 56) {
        memset(ctx->block + ctx->block_used, 0, 64 - ctx->block_used);
        sha256_compress(ctx->h, ctx->block);
        ctx->block_used = 0;
    }
    memset(ctx->block + ctx->block_used, 0, 56 - ctx->block_used);
    for (int i = 0; i < 8; i++)
        ctx->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_compress(ctx->h, ctx->block);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->h[i];
    }
}

static int print_digest(const uint8_t digest[32])
{
    for (int i = 0; i < 32; i++)
        printf("%02x", digest[i]);
    putchar('\n');
    return fflush(stdout) == 0 ? 0 : 1;
}

/* The benchmark data: splitmix64 output, little-endian, from a fixed seed. */
static void generate(uint8_t *data, size_t len)
{
    uint64_t state = 0x7761736d6c6574u; /* "wasmlet" */
    for (size_t i = 0; i < len; i += 8) {
        uint64_t z = (state += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        for (size_t j = 0; j < 8 && i + j < len; j++)
            data[i + j] = (uint8_t)(z >> (8 * j));
    }
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

static int usage(void)
{
    fputs("usage: sha256 MIB [ROUNDS]   (MIB 0..1024, ROUNDS >= 1)\n"
          "       sha256 --gen MIB\n"
          "       sha256 --stdin\n",
          stderr);
    return 2;
}

static int hash_stdin(void)
{
    static uint8_t buf[65536];
    sha256_ctx_t ctx;
    sha256_init(&ctx);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        sha256_update(&ctx, buf, n);
    if (ferror(stdin)) {
        perror("sha256: read stdin");
        return 1;
    }
    uint8_t digest[32];
    sha256_final(&ctx, digest);
    return print_digest(digest);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--stdin") == 0) return hash_stdin();
    int gen = argc == 3 && strcmp(argv[1], "--gen") == 0;
    if (!gen && (argc < 2 || argc > 3)) return usage();
    long long mib = parse_number(argv[gen ? 2 : 1], 0, 1024);
    long long rounds = !gen && argc == 3 ? parse_number(argv[2], 1, 1000000) : 1;
    if (mib < 0 || rounds < 0) return usage();

    size_t len = (size_t)mib * 1024 * 1024;
    uint8_t *data = malloc(len > 0 ? len : 1);
    if (data == NULL) {
        fprintf(stderr, "sha256: cannot allocate %lld MiB\n", mib);
        return 1;
    }
    generate(data, len);
    if (gen) {
        int rc = fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
        free(data);
        return rc;
    }

    uint8_t first[32], digest[32];
    for (long long r = 0; r < rounds; r++) {
        sha256_ctx_t ctx;
        sha256_init(&ctx);
        sha256_update(&ctx, data, len);
        sha256_final(&ctx, r == 0 ? first : digest);
        if (r > 0 && memcmp(first, digest, sizeof(digest)) != 0) {
            fprintf(stderr, "sha256: round %lld disagrees with round 0\n", r);
            free(data);
            return 1;
        }
    }
    free(data);
    return print_digest(first);
}

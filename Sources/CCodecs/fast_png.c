// A PNG encoder for files written on a hot path (heat maps), several times faster than
// libpng + zlib at their fastest settings.
//
// Every row gets the Sub filter. The filtered bytes go into deflate blocks of at most 65535
// bytes, each coded with its own Huffman code (RFC 1951 "dynamic" block) over literals and
// runs: a byte repeated at least four times becomes one match of distance 1. There is no
// search for longer-range matches, which is where zlib spends its time; on camera images
// (noise on every pixel) such matches are rare anyway. A block whose code would not beat
// the raw bytes is stored. zlib provides the CRC-32 and Adler-32 checksums.
#include "ccodecs.h"

#include <zlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Huffman blocks span BLOCK_BYTES; one that does not pay is stored in pieces of
// STORED_BYTES (deflate's limit). Codes are at most CODE_LIMIT bits (deflate allows 15) so
// that four literals fit in one 64-bit write.
enum {
    LITLEN_SYMBOLS = 286, END_OF_BLOCK = 256, MAX_BITS = 15, CODE_LIMIT = 12, STORED_BYTES = 65535,
    BLOCK_BYTES = 4 * STORED_BYTES, MIN_RUN = 4, MAX_RUN = 258
};

// Deflate's length codes: base length and extra bits of symbols 257...285.
static const uint16_t length_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                         35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                         3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};

// The length symbol (0-28, add 257) of every match length 0...258 (entries below 3 unused).
static uint8_t length_symbol[MAX_RUN + 1];

static pthread_once_t length_symbols_once = PTHREAD_ONCE_INIT;

static void fill_length_symbols(void) {
    for (int s = 0; s < 29; s++) {
        int last = s == 28 ? 258 : length_base[s + 1] - 1;
        for (int length = length_base[s]; length <= last; length++) length_symbol[length] = (uint8_t)s;
    }
}

typedef struct {
    uint8_t *out;       // next byte to write
    uint64_t bits;      // pending bits, least significant first
    int count;          // number of pending bits (< 8 between calls)
} bit_writer;

// Adds `count` bits (count + 7 <= 64, so at most 57). Branch-free: the whole 64-bit buffer is stored every time
// (the output has 8 bytes of slack) and the pointer advances by the bytes completed.
static inline void put_bits(bit_writer *w, uint64_t value, int count) {
    w->bits |= value << w->count;
    w->count += count;
    memcpy(w->out, &w->bits, 8);  // little-endian: x86-64 and arm64
    int bytes = w->count >> 3;  // at most 7: count stays below 64
    w->out += bytes;
    w->bits >>= bytes * 8;
    w->count &= 7;
}

// Writes out the pending bits up to the next byte boundary.
static void align_to_byte(bit_writer *w) {
    if (w->count > 0) *w->out++ = (uint8_t)w->bits;
    w->bits = 0;
    w->count = 0;
}

static uint32_t reverse_bits(uint32_t code, int length) {
    uint32_t reversed = 0;
    for (int i = 0; i < length; i++) {
        reversed = (reversed << 1) | (code & 1);
        code >>= 1;
    }
    return reversed;
}

static int ascending(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// Huffman code lengths for `n` (<= LITLEN_SYMBOLS) symbols from their frequencies, none
// longer than `limit` bits: the optimal code (built with a min-heap), and when it is too
// deep, the usual repair: the deep codes are cut to `limit` bits, codes are lengthened
// one at a time until the Kraft sum is 1 again, and the lengths are handed out again with
// the shortest to the most frequent symbols.
static void code_lengths(const uint32_t *frequencies, int n, int limit, uint8_t *lengths) {
    uint32_t weight[2 * LITLEN_SYMBOLS];
    int parent[2 * LITLEN_SYMBOLS];
    int heap[LITLEN_SYMBOLS];
    int size = 0;
    for (int s = 0; s < n; s++) {
        lengths[s] = 0;
        if (frequencies[s] == 0) continue;
        weight[s] = frequencies[s];
        // Sift up into the min-heap by weight.
        int i = size++;
        while (i > 0 && weight[heap[(i - 1) / 2]] > weight[s]) {
            heap[i] = heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        heap[i] = s;
    }
    if (size == 0) return;
    if (size == 1) {
        lengths[heap[0]] = 1;
        return;
    }
    int used = size, next = n;
    while (size > 1) {
        int pair[2];
        for (int k = 0; k < 2; k++) {
            pair[k] = heap[0];
            int last = heap[--size], i = 0;
            for (;;) {
                int child = 2 * i + 1;
                if (child >= size) break;
                if (child + 1 < size && weight[heap[child + 1]] < weight[heap[child]]) child++;
                if (weight[heap[child]] >= weight[last]) break;
                heap[i] = heap[child];
                i = child;
            }
            if (size > 0) heap[i] = last;
        }
        weight[next] = weight[pair[0]] + weight[pair[1]];
        parent[pair[0]] = next;
        parent[pair[1]] = next;
        int i = size++;
        while (i > 0 && weight[heap[(i - 1) / 2]] > weight[next]) {
            heap[i] = heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        heap[i] = next;
        next++;
    }
    // Depths: the root is the last node made; parents come after their children.
    int root = next - 1, deepest = 0;
    uint8_t depth[2 * LITLEN_SYMBOLS];
    depth[root] = 0;
    for (int node = root - 1; node >= 0; node--) {
        if (node < n && frequencies[node] == 0) continue;
        depth[node] = (uint8_t)(depth[parent[node]] + 1);
        if (node < n) {
            lengths[node] = depth[node];
            if (depth[node] > deepest) deepest = depth[node];
        }
    }
    if (deepest <= limit) return;
    // Repair: how many codes of each length, the deep ones cut to `limit`.
    int count[2 * LITLEN_SYMBOLS] = {0};
    for (int s = 0; s < n; s++)
        if (lengths[s]) count[lengths[s] > limit ? limit : lengths[s]]++;
    // Kraft sum in units of 2^-limit; cutting made it exceed 1. Each step drops one
    // `limit`-bit code (one unit) and splits a shorter code of length l into two of l + 1
    // (no change), so the number of codes stays and the sum falls by one unit.
    uint64_t kraft = 0;
    for (int l = 1; l <= limit; l++) kraft += (uint64_t)count[l] << (limit - l);
    while (kraft > ((uint64_t)1 << limit)) {
        count[limit]--;
        for (int l = limit - 1; l > 0; l--) {
            if (count[l]) {
                count[l]--;
                count[l + 1] += 2;
                break;
            }
        }
        kraft--;
    }
    // Hand the lengths out again: the most frequent symbols get the shortest codes.
    uint64_t order[LITLEN_SYMBOLS];  // frequency << 16 | symbol, sorted ascending
    int k = 0;
    for (int s = 0; s < n; s++)
        if (frequencies[s]) order[k++] = (uint64_t)frequencies[s] << 16 | (uint64_t)s;
    qsort(order, (size_t)used, sizeof(uint64_t), ascending);
    int position = used - 1;
    for (int l = 1; l <= limit; l++)
        for (int c = 0; c < count[l]; c++) lengths[order[position--] & 0xffff] = (uint8_t)l;
}

// Canonical codes (RFC 1951 3.2.2), bit-reversed for the least-significant-first writer.
static void canonical_codes(const uint8_t *lengths, int n, uint32_t *codes) {
    int count[MAX_BITS + 1] = {0};
    uint32_t next[MAX_BITS + 2];
    for (int s = 0; s < n; s++) count[lengths[s]]++;
    count[0] = 0;
    uint32_t code = 0;
    for (int bits = 1; bits <= MAX_BITS; bits++) {
        code = (code + (uint32_t)count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (int s = 0; s < n; s++)
        codes[s] = lengths[s] ? reverse_bits(next[lengths[s]]++, lengths[s]) : 0;
}

// The length of the run of bytes equal to data[i - 1] starting at i (at most MAX_RUN).
static inline int run_at(const uint8_t *data, size_t i, size_t end) {
    uint8_t value = data[i - 1];
    size_t limit = end - i < MAX_RUN ? end - i : MAX_RUN;
    size_t k = 0;
    while (k < limit && data[i + k] == value) k++;
    return (int)k;
}

// runs[k] = 1 where a run of at least MIN_RUN bytes equal to the one before starts at
// start + k, 0 elsewhere (a run never reaches back before the block: its first byte is a
// literal); 8 zero bytes of padding after the block. Two passes the compiler vectorises,
// so that the coding loops below can skip eight literals at a time with one test.
static void mark_runs(const uint8_t *data, size_t start, size_t end, uint8_t *runs) {
    size_t n = end - start;
    const uint8_t *d = data + start;
    if (n == 0) return;
    runs[0] = 0;
    for (size_t k = 1; k < n; k++) runs[k] = d[k] == d[k - 1];
    // runs[k] &= runs[k + 1] & runs[k + 2] & runs[k + 3], in place (reads ahead only).
    size_t last = n >= MIN_RUN ? n - MIN_RUN + 1 : 0;
    for (size_t k = 0; k < last; k++) runs[k] = runs[k] & runs[k + 1] & runs[k + 2] & runs[k + 3];
    memset(runs + last, 0, n - last + 8);
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

// Counts the symbols of block [start, end) as the encoder will emit them, near enough
// for a Huffman code: runs and the literals around them exactly, of the stretches of eight
// literals one in four (counted four times), and every literal at least once, so that
// each has a code.
static void count_symbols(const uint8_t *data, size_t start, size_t end, const uint8_t *runs,
                          uint32_t *frequencies) {
    uint32_t partial[4][LITLEN_SYMBOLS];  // four tallies, so that equal bytes in a row do not wait on each other
    uint32_t sampled[4][256];
    memset(partial, 0, sizeof partial);
    memset(sampled, 0, sizeof sampled);
    size_t i = start;
    unsigned group = 0;
    while (i < end) {
        if (i + 8 <= end && load64(runs + (i - start)) == 0) {
            if ((group++ & 3) == 0) {
                const uint8_t *d = data + i;
                sampled[0][d[0]]++; sampled[1][d[1]]++; sampled[2][d[2]]++; sampled[3][d[3]]++;
                sampled[0][d[4]]++; sampled[1][d[5]]++; sampled[2][d[6]]++; sampled[3][d[7]]++;
            }
            i += 8;
        } else if (runs[i - start]) {
            int run = run_at(data, i, end);
            partial[0][257 + length_symbol[run]]++;
            i += (size_t)run;
        } else {
            partial[i & 3][data[i]]++;
            i++;
        }
    }
    for (int s = 0; s < LITLEN_SYMBOLS; s++) frequencies[s] = partial[0][s] + partial[1][s] + partial[2][s] + partial[3][s];
    for (int s = 0; s < 256; s++) frequencies[s] += 4 * (sampled[0][s] + sampled[1][s] + sampled[2][s] + sampled[3][s]) + 1;
    frequencies[END_OF_BLOCK] = 1;
}

// Bytes [start, end) as stored blocks of at most 65535 bytes: header bits, then
// byte-aligned LEN, NLEN and the bytes.
static void store_block(bit_writer *w, const uint8_t *data, size_t start, size_t end, int last) {
    for (size_t from = start; from < end; from += STORED_BYTES) {
        size_t piece = end - from < STORED_BYTES ? end - from : STORED_BYTES;
        put_bits(w, (uint32_t)(last && from + piece == end), 3);
        align_to_byte(w);
        uint8_t header[4] = {(uint8_t)piece, (uint8_t)(piece >> 8), (uint8_t)~piece, (uint8_t)(~piece >> 8)};
        memcpy(w->out, header, 4);
        memcpy(w->out + 4, data + from, piece);
        w->out += 4 + piece;
    }
}

// One block of the filtered bytes [start, end); `runs` is scratch of at least
// end - start + 8 bytes.
static void encode_block(bit_writer *w, const uint8_t *data, size_t start, size_t end, int last, uint8_t *runs) {
    uint32_t frequencies[LITLEN_SYMBOLS];
    uint8_t lengths[LITLEN_SYMBOLS];
    uint32_t codes[LITLEN_SYMBOLS];
    mark_runs(data, start, end, runs);
    count_symbols(data, start, end, runs, frequencies);
    code_lengths(frequencies, LITLEN_SYMBOLS, CODE_LIMIT, lengths);
    // The estimated size of the coded block (header: 3 + 5 + 5 + 4 bits, 19 x 3 bits of
    // code-length code, 288 x 4 bits of lengths) against the stored one.
    uint64_t cost = 17 + 19 * 3 + (LITLEN_SYMBOLS + 2) * 4;
    for (int s = 0; s < LITLEN_SYMBOLS; s++) {
        cost += (uint64_t)frequencies[s] * lengths[s];
        if (s >= 257) cost += (uint64_t)frequencies[s] * (length_extra[s - 257] + 1);
    }
    size_t size = end - start;
    uint64_t stored = (uint64_t)size * 8 + 40 * ((size + STORED_BYTES - 1) / STORED_BYTES);
    if (cost >= stored) {
        store_block(w, data, start, end, last);
        return;
    }
    bit_writer before = *w;
    canonical_codes(lengths, LITLEN_SYMBOLS, codes);
    put_bits(w, (uint32_t)last | (2u << 1), 3);
    put_bits(w, LITLEN_SYMBOLS - 257, 5);  // HLIT
    put_bits(w, 2 - 1, 5);                 // HDIST: distance codes 0 and 1, one bit each
    put_bits(w, 19 - 4, 4);                // HCLEN: all 19 code-length-code lengths
    // Code-length code: lengths 0-15 each a 4-bit code (a complete code, so that every
    // inflater accepts it), the repeat codes 16-18 unused.
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    for (int k = 0; k < 19; k++) put_bits(w, order[k] <= 15 ? 4 : 0, 3);
    // With 16 equal lengths the canonical code of length value v is v itself.
    for (int s = 0; s < LITLEN_SYMBOLS; s++) put_bits(w, reverse_bits(lengths[s], 4), 4);
    put_bits(w, reverse_bits(1, 4), 4);  // distance code 0: one bit
    put_bits(w, reverse_bits(1, 4), 4);  // distance code 1: one bit (unused)
    // Literal codes and lengths in one word: code | length << 16.
    uint32_t literal[256];
    for (int s = 0; s < 256; s++) literal[s] = codes[s] | (uint32_t)lengths[s] << 16;
    size_t i = start;
    while (i < end) {
        if (i + 8 <= end && load64(runs + (i - start)) == 0) {
            // Eight literals, four at a time (at most 48 bits a write).
            const uint8_t *d = data + i;
            for (int k = 0; k < 8; k += 4) {
                uint32_t a = literal[d[k]], b = literal[d[k + 1]], c = literal[d[k + 2]], e = literal[d[k + 3]];
                int la = (int)(a >> 16), lb = (int)(b >> 16), lc = (int)(c >> 16), le = (int)(e >> 16);
                uint64_t bits = (uint64_t)(a & 0xffff) | (uint64_t)(b & 0xffff) << la |
                                (uint64_t)(c & 0xffff) << (la + lb) | (uint64_t)(e & 0xffff) << (la + lb + lc);
                put_bits(w, bits, la + lb + lc + le);
            }
            i += 8;
        } else if (runs[i - start]) {
            int run = run_at(data, i, end);
            int symbol = length_symbol[run];
            int extra = length_extra[symbol];
            uint32_t value = codes[257 + symbol] | ((uint32_t)(run - length_base[symbol]) << lengths[257 + symbol]);
            // The extra bits, then distance code 0 (a single 0 bit).
            put_bits(w, value, lengths[257 + symbol] + extra + 1);
            i += (size_t)run;
        } else {
            uint32_t a = literal[data[i]];
            put_bits(w, a & 0xffff, (int)(a >> 16));
            i++;
        }
    }
    put_bits(w, codes[END_OF_BLOCK], lengths[END_OF_BLOCK]);
    // The estimate came from a sample: when the coded block came out larger after all,
    // store it instead.
    if ((uint64_t)(w->out - before.out) * 8 + (uint64_t)w->count - (uint64_t)before.count > stored) {
        *w = before;
        store_block(w, data, start, end, last);
    }
}

// Adler-32 (RFC 1950) of n bytes continuing from `adler`, with 16 lanes of vector sums
// (zlib's is byte-serial). Over a stretch of N 16-byte blocks, byte k of block j adds to b
// 16 (N - 1 - j) + (16 - k) times itself: `sums` holds each lane's total, `earlier` each
// lane's sum over blocks of its totals before them. Reduced modulo 65521 every 5552
// bytes like zlib's, before anything can overflow.
typedef uint8_t bytes16 __attribute__((vector_size(16)));
typedef uint32_t lanes16 __attribute__((vector_size(64)));

static uint32_t adler32_fast(uint32_t adler, const uint8_t *p, size_t n) {
    uint64_t a = adler & 0xffff, b = adler >> 16;
    while (n > 0) {
        size_t chunk = n < 5552 ? n : 5552, blocks = chunk / 16;
        n -= chunk;
        lanes16 sums = {0}, earlier = {0};
        for (size_t j = 0; j < blocks; j++, p += 16) {
            bytes16 x;
            memcpy(&x, p, 16);
            earlier += sums;
            sums += __builtin_convertvector(x, lanes16);
        }
        uint64_t total = 0, spread = 0;
        for (int k = 0; k < 16; k++) {
            total += sums[k];
            spread += 16 * (uint64_t)earlier[k] + (uint64_t)(16 - k) * sums[k];
        }
        b += 16 * blocks * a + spread;
        a += total;
        for (size_t rest = chunk - 16 * blocks; rest > 0; rest--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return (uint32_t)(b << 16 | a);
}

uint32_t vi_adler32(uint32_t adler, const uint8_t *bytes, size_t count) { return adler32_fast(adler, bytes, count); }

static void put_u32_be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// Writes a chunk's length and type at `p`, its data being already in place after them,
// and its CRC after the data; returns the end.
static uint8_t *finish_chunk(uint8_t *p, const char *type, size_t length) {
    put_u32_be(p, (uint32_t)length);
    memcpy(p + 4, type, 4);
    uLong crc = crc32(0L, p + 4, (uInt)(length + 4));
    put_u32_be(p + 8 + length, (uint32_t)crc);
    return p + 12 + length;
}

vi_status vi_png_encode_fast(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                             vi_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
        (int64_t)width * channels > (1 << 24) || (int64_t)width * height * channels > (int64_t)1 << 31) {
        snprintf(out->message, sizeof out->message,
                 "cannot encode a %dx%d image with %d channels as PNG", width, height, channels);
        return VI_ERR_INVALID_ARGUMENT;
    }
    pthread_once(&length_symbols_once, fill_length_symbols);
    size_t row = (size_t)width * (size_t)channels, stride = row + 1;
    size_t raw = stride * (size_t)height;
    // The filtered stream is made and coded a block of whole rows at a time (about
    // BLOCK_BYTES, at least one row), so that it stays in the cache between the passes.
    size_t block_rows = stride >= BLOCK_BYTES ? 1 : BLOCK_BYTES / stride;
    size_t block_bytes = block_rows * stride;
    uint8_t *filtered = (uint8_t *)malloc(block_bytes);
    uint8_t *runs = (uint8_t *)malloc(block_bytes + 16);
    // Room for the largest attempt: a block coded at up to CODE_LIMIT bits a byte before it
    // is found larger than stored (the file itself is at most the stored size plus 5 bytes
    // of framing per 65535 and the PNG framing).
    size_t pieces = raw / STORED_BYTES + 1 + (size_t)height;
    size_t capacity = 8 + 25 + 12 + 2 + raw + pieces * 5 + 4 + 12 + 1024 + block_bytes * CODE_LIMIT / 8;
    uint8_t *file = (uint8_t *)malloc(capacity);
    if (!filtered || !file || !runs) {
        free(filtered);
        free(runs);
        free(file);
        snprintf(out->message, sizeof out->message, "out of memory encoding a %dx%d PNG", width, height);
        return VI_ERR_NO_MEMORY;
    }
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t color_types[5] = {0, 0, 4, 2, 6};
    uint8_t *p = file;
    memcpy(p, signature, 8);
    p += 8;
    put_u32_be(p + 8, (uint32_t)width);
    put_u32_be(p + 12, (uint32_t)height);
    p[16] = 8;
    p[17] = color_types[channels];
    p[18] = p[19] = p[20] = 0;  // deflate, adaptive filtering, no interlace
    p = finish_chunk(p, "IHDR", 13);
    uint8_t *idat = p;
    bit_writer w = {idat + 8, 0, 0};
    *w.out++ = 0x78;  // zlib header: deflate, 32 KB window, no dictionary
    *w.out++ = 0x01;
    uint32_t adler = 1;
    for (size_t first = 0; first < (size_t)height; first += block_rows) {
        size_t rows = (size_t)height - first < block_rows ? (size_t)height - first : block_rows;
        for (size_t y = 0; y < rows; y++) {
            const uint8_t *source = pixels + (first + y) * row;
            uint8_t *target = filtered + y * stride;
            target[0] = 1;  // Sub
            memcpy(target + 1, source, (size_t)channels);
            for (size_t x = (size_t)channels; x < row; x++) target[1 + x] = (uint8_t)(source[x] - source[x - (size_t)channels]);
        }
        // Runs start within a block: its first byte is always a literal.
        encode_block(&w, filtered, 0, rows * stride, first + rows == (size_t)height, runs);
        adler = adler32_fast(adler, filtered, rows * stride);
    }
    align_to_byte(&w);
    put_u32_be(w.out, (uint32_t)adler);
    w.out += 4;
    p = finish_chunk(idat, "IDAT", (size_t)(w.out - (idat + 8)));
    p = finish_chunk(p, "IEND", 0);
    free(filtered);
    free(runs);
    out->bytes = file;
    out->size = (size_t)(p - file);
    return VI_OK;
}

// C boundary around libpng and libjpeg.
//
// Both libraries report fatal errors by longjmp (libjpeg's default handler even calls
// exit()). A longjmp must never cross Swift frames, so every call into the libraries that
// can fail is made from the functions below, each of which sets its own jump point, and
// every failure comes back to Swift as a status code plus a message. Nothing here prints,
// aborts or exits.
#ifndef VINSPECT_CCODECS_H
#define VINSPECT_CCODECS_H

#include <stddef.h>
#include <stdint.h>

/// Outcome of a codec call.
typedef enum {
    VI_OK = 0,
    VI_ERR_CORRUPT = 1,       ///< the data is not a valid file of that format
    VI_ERR_TRUNCATED = 2,     ///< the data ends before the image does
    VI_ERR_TOO_LARGE = 3,     ///< the declared dimensions exceed the caller's pixel limit
    VI_ERR_NO_MEMORY = 4,     ///< an allocation failed
    VI_ERR_UNSUPPORTED = 5,   ///< valid, but a variant this decoder does not handle
    VI_ERR_INVALID_ARGUMENT = 6
} vi_status;

/// A decoded image: interleaved samples, row-major, no row padding.
/// `bit_depth` is 8 (one byte a sample) or 16 (one native-endian uint16 a sample).
/// `pixels` is allocated with malloc; release it with `vi_free`.
typedef struct {
    int32_t width;
    int32_t height;
    int32_t channels;   ///< 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
    int32_t bit_depth;  ///< 8 or 16
    uint8_t *pixels;
    /// Format facts kept for callers: PNG colour type / interlace, JPEG progressive and
    /// the colour space found in the file (1 grey, 3 YCbCr/RGB, 4 CMYK, 5 YCCK).
    int32_t source_color;
    int32_t interlaced_or_progressive;
    char message[256];  ///< set when the status is not VI_OK
} vi_decoded;

/// Decodes a PNG held in memory. All bit depths (1-16) and colour types, palette and tRNS
/// (expanded to an alpha channel), and Adam7 interlacing. Depths below 8 are scaled to
/// 8 bits; 16-bit files stay 16-bit. `max_pixels` bounds width*height before any pixel
/// buffer is allocated (0 means no limit).
vi_status vi_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, vi_decoded *out);

/// Decodes a JPEG held in memory: baseline and progressive, grey (1 channel) and colour
/// (3 channels, RGB). CMYK and YCCK files are converted to RGB (Adobe-inverted data
/// handled). Premature end of data and corrupt entropy-coded data are errors, not a
/// silently grey-filled image.
vi_status vi_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, vi_decoded *out);

/// An encoded file: `bytes` allocated with malloc, release with `vi_free`.
typedef struct {
    uint8_t *bytes;
    size_t size;
    char message[256];
} vi_encoded;

/// Encodes 8-bit grey (1), grey+alpha (2), RGB (3) or RGBA (4), or the same at 16 bits
/// (native-endian samples), as PNG. `compression` is zlib's level 0-9; `fast` non-zero
/// uses one filter (Sub) for every row and run-length matching instead of libpng's
/// adaptive filtering: several times faster, somewhat larger files.
vi_status vi_png_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                        int32_t bit_depth, int32_t compression, int32_t fast, vi_encoded *out);

/// Encodes 8-bit grey (1), grey+alpha (2), RGB (3) or RGBA (4) as PNG with an encoder of
/// its own for files written on a hot path (heat maps): the Sub filter on every row and
/// deflate blocks with their own Huffman code over literals and runs (no long-range match
/// search), several times faster than `vi_png_encode` at zlib level 1 for files of about
/// the same size on camera images. Any PNG decoder reads them.
vi_status vi_png_encode_fast(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                             vi_encoded *out);

/// Adler-32 (RFC 1950) of `count` bytes continuing from `adler` (1 to start), as the fast
/// PNG encoder computes it (exposed so that tests can compare it with zlib's).
uint32_t vi_adler32(uint32_t adler, const uint8_t *bytes, size_t count);

/// Encodes 8-bit grey (1) or RGB (3) as baseline JPEG with the given quality (1-100).
vi_status vi_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                         int32_t quality, vi_encoded *out);

/// Releases memory returned by the functions above.
void vi_free(void *pointer);

/// Writes the libpng and libjpeg versions in use, e.g. "libpng 1.6.39, libjpeg API 62".
void vi_codec_versions(char *buffer, size_t capacity);

#endif

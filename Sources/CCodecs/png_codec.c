// PNG decode and encode through libpng, with libpng's longjmp error path contained here.
#include "ccodecs.h"

#include <png.h>
#include <zlib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------
// Shared error plumbing: libpng calls `on_error` for fatal errors; it records the message
// and jumps back to the setjmp in the calling function. Warnings are ignored: what libpng
// only warns about (an ancillary chunk with a bad CRC, say) leaves the pixels intact.

typedef struct {
    char *message;          // where to write the error text (the result's message field)
    size_t capacity;
    int truncated;          // set by the reader when the data ended early
} png_error_context;

static void on_error(png_structp png, png_const_charp text) {
    png_error_context *context = (png_error_context *)png_get_error_ptr(png);
    // The caller may pass its own, already written message (text == message).
    if (context && context->message && context->capacity && text != context->message) {
        snprintf(context->message, context->capacity, "%s", text ? text : "libpng error");
    }
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

// ---------------------------------------------------------------------------------------
// Decoding from memory.

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    png_error_context *errors;
} memory_reader;

static void read_from_memory(png_structp png, png_bytep destination, png_size_t length) {
    memory_reader *reader = (memory_reader *)png_get_io_ptr(png);
    if (reader->size - reader->offset < length) {
        reader->errors->truncated = 1;
        png_error(png, "the file ends before the image data does");
    }
    memcpy(destination, reader->data + reader->offset, length);
    reader->offset += length;
}

vi_status vi_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, vi_decoded *out) {
    memset(out, 0, sizeof *out);
    if (!data || size < 8) {
        snprintf(out->message, sizeof out->message, "the file is too short to be a PNG (%zu bytes)", size);
        return VI_ERR_TRUNCATED;
    }
    if (png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        snprintf(out->message, sizeof out->message, "the PNG signature is missing");
        return VI_ERR_CORRUPT;
    }

    png_error_context errors = {out->message, sizeof out->message, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors, on_error, on_warning);
    if (!png) {
        snprintf(out->message, sizeof out->message, "libpng could not allocate its state");
        return VI_ERR_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(out->message, sizeof out->message, "libpng could not allocate its state");
        return VI_ERR_NO_MEMORY;
    }

    memory_reader reader = {data, size, 0, &errors};
    // Written between setjmp and a possible longjmp, read after it: must be volatile.
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile vi_status status = VI_ERR_CORRUPT;

    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (errors.truncated) status = VI_ERR_TRUNCATED;
        memset(&out->width, 0, sizeof(int32_t) * 4);
        out->pixels = NULL;
        return status;
    }

    png_set_read_fn(png, &reader, read_from_memory);
    // Our own pixel limit decides what is too large; libpng's default 1e6 x 1e6 user
    // limit would only turn the same case into a less helpful message.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    out->source_color = color;
    out->interlaced_or_progressive = interlace != PNG_INTERLACE_NONE;

    int64_t pixel_count = (int64_t)width * (int64_t)height;
    if ((max_pixels > 0 && pixel_count > max_pixels) || pixel_count > ((int64_t)1 << 40)) {
        snprintf(out->message, sizeof out->message,
                 "the image declares %ux%u pixels, more than the limit of %lld pixels",
                 (unsigned)width, (unsigned)height, (long long)max_pixels);
        status = VI_ERR_TOO_LARGE;
        png_error(png, out->message);
    }

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) {
        // PNG stores 16-bit samples big-endian; hand Swift native-endian uint16.
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) png_set_swap(png);
    }
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int out_depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
        row_bytes != (size_t)width * (size_t)channels * (size_t)(out_depth / 8)) {
        snprintf(out->message, sizeof out->message,
                 "unexpected layout after conversion (%d channels, %d bits)", channels, out_depth);
        status = VI_ERR_UNSUPPORTED;
        png_error(png, out->message);
    }

    pixels = (uint8_t *)malloc(row_bytes * (size_t)height ? row_bytes * (size_t)height : 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!pixels || !rows) {
        snprintf(out->message, sizeof out->message, "out of memory for a %ux%u image",
                 (unsigned)width, (unsigned)height);
        status = VI_ERR_NO_MEMORY;
        png_error(png, out->message);
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->bit_depth = out_depth;
    out->pixels = pixels;
    out->message[0] = 0;
    return VI_OK;
}

// ---------------------------------------------------------------------------------------
// Encoding into a growing memory buffer.

typedef struct {
    uint8_t *bytes;
    size_t size;
    size_t capacity;
} memory_writer;

static void write_to_memory(png_structp png, png_bytep source, png_size_t length) {
    memory_writer *writer = (memory_writer *)png_get_io_ptr(png);
    if (writer->capacity - writer->size < length) {
        size_t capacity = writer->capacity ? writer->capacity : 4096;
        while (capacity - writer->size < length) capacity *= 2;
        uint8_t *grown = (uint8_t *)realloc(writer->bytes, capacity);
        if (!grown) png_error(png, "out of memory while encoding");
        writer->bytes = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->bytes + writer->size, source, length);
    writer->size += length;
}

static void flush_memory(png_structp png) { (void)png; }

vi_status vi_png_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                        int32_t bit_depth, int32_t compression, int32_t fast, vi_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
        (bit_depth != 8 && bit_depth != 16)) {
        snprintf(out->message, sizeof out->message,
                 "cannot encode a %dx%d image with %d channels at %d bits as PNG",
                 width, height, channels, bit_depth);
        return VI_ERR_INVALID_ARGUMENT;
    }
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_error_context errors = {out->message, sizeof out->message, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, on_error, on_warning);
    if (!png) return VI_ERR_NO_MEMORY;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return VI_ERR_NO_MEMORY;
    }
    memory_writer writer = {NULL, 0, 0};
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(writer.bytes);
        png_destroy_write_struct(&png, &info);
        return VI_ERR_NO_MEMORY;
    }
    png_set_write_fn(png, &writer, write_to_memory, flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth,
                 color_types[channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, compression < 0 ? 6 : (compression > 9 ? 9 : compression));
    if (fast) {
        /* One cheap filter for every row instead of trying all five, and run-length
           matching: several times faster to encode, files somewhat larger. */
        png_set_filter(png, 0, PNG_FILTER_SUB);
        png_set_compression_strategy(png, Z_RLE);
    }
    png_write_info(png, info);
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) png_set_swap(png);
    }
    size_t row_bytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory while encoding");
    for (int32_t y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    out->bytes = writer.bytes;
    out->size = writer.size;
    return VI_OK;
}

void vi_free(void *pointer) { free(pointer); }

// JPEG decode and encode through libjpeg(-turbo), with its error path contained here.
//
// libjpeg's default error_exit prints and calls exit(); ours formats the message and
// longjmps back to the function that called into the library. Warnings matter too: on a
// truncated file libjpeg only warns and fills the rest of the image with grey, which an
// inspection engine would report as a huge defect. So warnings are fatal here, except the
// harmless "extraneous bytes before marker" that some cameras produce.
#include "ccodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/// Progressive files with more scans than this are refused: each scan re-decodes the
/// whole coefficient buffer, so a small hostile file could otherwise take minutes.
enum { MAX_SCANS = 1000 };

typedef struct {
    struct jpeg_error_mgr manager;  // must be first: libjpeg sees only this part
    jmp_buf jump;
    vi_status status;
    char *message;
    size_t capacity;
} error_context;

static void record(j_common_ptr cinfo, vi_status status) {
    error_context *context = (error_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    text[0] = 0;
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(context->message, context->capacity, "%s", text);
    context->status = status;
}

static void on_error_exit(j_common_ptr cinfo) {
    record(cinfo, cinfo->err->msg_code == JERR_OUT_OF_MEMORY ? VI_ERR_NO_MEMORY : VI_ERR_CORRUPT);
    longjmp(((error_context *)cinfo->err)->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA) return;
    record(cinfo, code == JWRN_JPEG_EOF ? VI_ERR_TRUNCATED : VI_ERR_CORRUPT);
    longjmp(((error_context *)cinfo->err)->jump, 1);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr decoder = (j_decompress_ptr)cinfo;
    if (decoder->progressive_mode && decoder->input_scan_number > MAX_SCANS) {
        error_context *context = (error_context *)cinfo->err;
        snprintf(context->message, context->capacity,
                 "the progressive JPEG has more than %d scans", MAX_SCANS);
        context->status = VI_ERR_CORRUPT;
        longjmp(context->jump, 1);
    }
}

static void install_errors(error_context *context, char *message, size_t capacity) {
    jpeg_std_error(&context->manager);
    context->manager.error_exit = on_error_exit;
    context->manager.emit_message = on_message;
    context->manager.output_message = on_output_message;
    context->status = VI_ERR_CORRUPT;
    context->message = message;
    context->capacity = capacity;
}

static inline uint8_t scale255(unsigned a, unsigned b) { return (uint8_t)((a * b + 127) / 255); }

vi_status vi_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, vi_decoded *out) {
    memset(out, 0, sizeof *out);
    if (!data || size < 4) {
        snprintf(out->message, sizeof out->message, "the file is too short to be a JPEG (%zu bytes)", size);
        return VI_ERR_TRUNCATED;
    }
    struct jpeg_decompress_struct cinfo;
    error_context errors;
    struct jpeg_progress_mgr progress;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile cmyk_row = NULL;

    install_errors(&errors, out->message, sizeof out->message);
    cinfo.err = &errors.manager;
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(cmyk_row);
        memset(&out->width, 0, sizeof(int32_t) * 4);
        out->pixels = NULL;
        return errors.status;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = on_progress;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    out->source_color = cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1
                      : cinfo.jpeg_color_space == JCS_CMYK     ? 4
                      : cinfo.jpeg_color_space == JCS_YCCK     ? 5
                                                               : 3;
    out->interlaced_or_progressive = cinfo.progressive_mode ? 1 : 0;

    int64_t pixel_count = (int64_t)cinfo.image_width * (int64_t)cinfo.image_height;
    if (max_pixels > 0 && pixel_count > max_pixels) {
        snprintf(out->message, sizeof out->message,
                 "the image declares %ux%u pixels, more than the limit of %lld pixels",
                 cinfo.image_width, cinfo.image_height, (long long)max_pixels);
        errors.status = VI_ERR_TOO_LARGE;
        longjmp(errors.jump, 1);
    }

    int channels;
    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        channels = 3;
        cmyk = 1;
        break;
    default:
        if (cinfo.num_components == 1) {
            cinfo.out_color_space = JCS_GRAYSCALE;
            channels = 1;
        } else if (cinfo.num_components == 3) {
            cinfo.out_color_space = JCS_RGB;
            channels = 3;
        } else {
            snprintf(out->message, sizeof out->message,
                     "a JPEG with %d colour components is not supported", cinfo.num_components);
            errors.status = VI_ERR_UNSUPPORTED;
            longjmp(errors.jump, 1);
        }
    }

    jpeg_start_decompress(&cinfo);
    size_t width = cinfo.output_width, height = cinfo.output_height;
    if ((int)cinfo.output_components != (cmyk ? 4 : channels)) {
        snprintf(out->message, sizeof out->message, "unexpected JPEG output layout (%d components)",
                 cinfo.output_components);
        errors.status = VI_ERR_UNSUPPORTED;
        longjmp(errors.jump, 1);
    }
    size_t row_bytes = width * (size_t)channels;
    pixels = (uint8_t *)malloc(row_bytes * height ? row_bytes * height : 1);
    if (cmyk) cmyk_row = (uint8_t *)malloc(width * 4 ? width * 4 : 1);
    if (!pixels || (cmyk && !cmyk_row)) {
        snprintf(out->message, sizeof out->message, "out of memory for a %zux%zu image", width, height);
        errors.status = VI_ERR_NO_MEMORY;
        longjmp(errors.jump, 1);
    }
    // Adobe applications write CMYK inverted (0 = full ink); libjpeg reports whether the
    // Adobe marker was present, which is how every mainstream reader tells the two apart.
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        if (!cmyk) {
            JSAMPROW row = pixels + y * row_bytes;
            jpeg_read_scanlines(&cinfo, &row, 1);
        } else {
            JSAMPROW row = cmyk_row;
            jpeg_read_scanlines(&cinfo, &row, 1);
            uint8_t *target = pixels + y * row_bytes;
            for (size_t x = 0; x < width; x++) {
                unsigned c = cmyk_row[4 * x], m = cmyk_row[4 * x + 1], yy = cmyk_row[4 * x + 2],
                         k = cmyk_row[4 * x + 3];
                if (!inverted) { c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k; }
                // Here c, m, y, k are "amount of paper left": 255 = no ink.
                target[3 * x] = scale255(c, k);
                target[3 * x + 1] = scale255(m, k);
                target[3 * x + 2] = scale255(yy, k);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->bit_depth = 8;
    out->pixels = pixels;
    out->message[0] = 0;
    return VI_OK;
}

vi_status vi_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                         int32_t quality, vi_encoded *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || width <= 0 || height <= 0 || width > 65500 || height > 65500 ||
        (channels != 1 && channels != 3)) {
        snprintf(out->message, sizeof out->message,
                 "cannot encode a %dx%d image with %d channels as JPEG (grey or RGB, at most 65500 a side)",
                 width, height, channels);
        return VI_ERR_INVALID_ARGUMENT;
    }
    struct jpeg_compress_struct cinfo;
    error_context errors;
    // jpeg_mem_dest allocates the output and keeps `destination` pointed at it as it grows.
    unsigned char *destination = NULL;
    unsigned long buffer_size = 0;
    install_errors(&errors, out->message, sizeof out->message);
    cinfo.err = &errors.manager;
    if (setjmp(errors.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(destination);
        return errors.status;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &destination, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t row_bytes = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * row_bytes);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    out->bytes = destination;
    out->size = buffer_size;
    return VI_OK;
}


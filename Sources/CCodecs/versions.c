#include "ccodecs.h"

#include <png.h>
#include <stdio.h>
#include <jpeglib.h>

void vi_codec_versions(char *buffer, size_t capacity) {
    snprintf(buffer, capacity, "libpng %s, libjpeg API %d", png_get_libpng_ver(NULL), JPEG_LIB_VERSION);
}

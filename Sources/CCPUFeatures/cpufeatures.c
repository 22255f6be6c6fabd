// Start-up check that the CPU has every extension the build was compiled for.
//
// The list of required features comes from the compiler's own predefined macros, so it
// always matches the -march the package was built with (see Package.swift). The
// function body is plain integer code and runs on any x86-64 CPU; the feature test
// itself is the compiler's `__builtin_cpu_supports`, backed by CPUID.
#include "cpufeatures.h"
#include <string.h>

typedef struct { const char *name; int required; } feature;

#if defined(__x86_64__) || defined(__i386__)
static int cpu_has(const char *name) {
    // The feature table is filled by a constructor that not every link includes: fill it.
    __builtin_cpu_init();
    // __builtin_cpu_supports needs a literal argument, hence the chain.
    if (!strcmp(name, "sse4.2")) return __builtin_cpu_supports("sse4.2");
    if (!strcmp(name, "avx")) return __builtin_cpu_supports("avx");
    if (!strcmp(name, "avx2")) return __builtin_cpu_supports("avx2");
    if (!strcmp(name, "fma")) return __builtin_cpu_supports("fma");
    if (!strcmp(name, "f16c")) return __builtin_cpu_supports("f16c");
    if (!strcmp(name, "avx512f")) return __builtin_cpu_supports("avx512f");
    if (!strcmp(name, "avx512bw")) return __builtin_cpu_supports("avx512bw");
    if (!strcmp(name, "avx512dq")) return __builtin_cpu_supports("avx512dq");
    if (!strcmp(name, "avx512vl")) return __builtin_cpu_supports("avx512vl");
    if (!strcmp(name, "avx512cd")) return __builtin_cpu_supports("avx512cd");
    return 1;
}
#else
static int cpu_has(const char *name) { (void)name; return 1; }
#endif

static const feature features[] = {
#ifdef __SSE4_2__
    {"sse4.2", 1},
#endif
#ifdef __AVX__
    {"avx", 1},
#endif
#ifdef __AVX2__
    {"avx2", 1},
#endif
#ifdef __FMA__
    {"fma", 1},
#endif
#ifdef __F16C__
    {"f16c", 1},
#endif
#ifdef __AVX512F__
    {"avx512f", 1},
#endif
#ifdef __AVX512BW__
    {"avx512bw", 1},
#endif
#ifdef __AVX512DQ__
    {"avx512dq", 1},
#endif
#ifdef __AVX512VL__
    {"avx512vl", 1},
#endif
#ifdef __AVX512CD__
    {"avx512cd", 1},
#endif
    {0, 0}
};

static void append(char *buffer, int capacity, const char *word) {
    size_t used = strlen(buffer);
    size_t need = strlen(word) + (used ? 1 : 0);
    if (used + need + 1 > (size_t)capacity) return;
    if (used) buffer[used++] = ' ';
    strcpy(buffer + used, word);
}

int vinspect_cpu_missing_features(char *buffer, int capacity) {
    int missing = 0;
    if (capacity > 0) buffer[0] = 0;
    for (const feature *f = features; f->name; f++) {
        if (!cpu_has(f->name)) {
            missing++;
            if (capacity > 0) append(buffer, capacity, f->name);
        }
    }
    return missing;
}

void vinspect_cpu_build_features(char *buffer, int capacity) {
    if (capacity <= 0) return;
    buffer[0] = 0;
    for (const feature *f = features; f->name; f++) append(buffer, capacity, f->name);
}

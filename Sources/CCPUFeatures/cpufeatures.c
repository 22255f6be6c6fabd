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
    if (!strcmp(name, "ssse3")) return __builtin_cpu_supports("ssse3");
    if (!strcmp(name, "sse4.1")) return __builtin_cpu_supports("sse4.1");
    if (!strcmp(name, "sse4.2")) return __builtin_cpu_supports("sse4.2");
    if (!strcmp(name, "popcnt")) return __builtin_cpu_supports("popcnt");
    if (!strcmp(name, "pclmul")) return __builtin_cpu_supports("pclmul");
    if (!strcmp(name, "avx")) return __builtin_cpu_supports("avx");
    if (!strcmp(name, "avx2")) return __builtin_cpu_supports("avx2");
    if (!strcmp(name, "fma")) return __builtin_cpu_supports("fma");
    if (!strcmp(name, "f16c")) return __builtin_cpu_supports("f16c");
    if (!strcmp(name, "bmi")) return __builtin_cpu_supports("bmi");
    if (!strcmp(name, "bmi2")) return __builtin_cpu_supports("bmi2");
    if (!strcmp(name, "lzcnt")) return __builtin_cpu_supports("lzcnt");
    if (!strcmp(name, "movbe")) return __builtin_cpu_supports("movbe");
    if (!strcmp(name, "adx")) return __builtin_cpu_supports("adx");
    if (!strcmp(name, "sha")) return __builtin_cpu_supports("sha");
    if (!strcmp(name, "rdrnd")) return __builtin_cpu_supports("rdrnd");
    if (!strcmp(name, "rdseed")) return __builtin_cpu_supports("rdseed");
    if (!strcmp(name, "xsave")) return __builtin_cpu_supports("xsave");
    if (!strcmp(name, "clflushopt")) return __builtin_cpu_supports("clflushopt");
    if (!strcmp(name, "clwb")) return __builtin_cpu_supports("clwb");
    if (!strcmp(name, "avx512f")) return __builtin_cpu_supports("avx512f");
    if (!strcmp(name, "avx512bw")) return __builtin_cpu_supports("avx512bw");
    if (!strcmp(name, "avx512dq")) return __builtin_cpu_supports("avx512dq");
    if (!strcmp(name, "avx512vl")) return __builtin_cpu_supports("avx512vl");
    if (!strcmp(name, "avx512cd")) return __builtin_cpu_supports("avx512cd");
    if (!strcmp(name, "avx512vbmi")) return __builtin_cpu_supports("avx512vbmi");
    if (!strcmp(name, "avx512vbmi2")) return __builtin_cpu_supports("avx512vbmi2");
    if (!strcmp(name, "avx512vnni")) return __builtin_cpu_supports("avx512vnni");
    if (!strcmp(name, "avx512vpopcntdq")) return __builtin_cpu_supports("avx512vpopcntdq");
    if (!strcmp(name, "avx512ifma")) return __builtin_cpu_supports("avx512ifma");
    if (!strcmp(name, "avx512bitalg")) return __builtin_cpu_supports("avx512bitalg");
    if (!strcmp(name, "avx512bf16")) return __builtin_cpu_supports("avx512bf16");
    if (!strcmp(name, "avx512fp16")) return __builtin_cpu_supports("avx512fp16");
    if (!strcmp(name, "avxvnni")) return __builtin_cpu_supports("avxvnni");
    if (!strcmp(name, "gfni")) return __builtin_cpu_supports("gfni");
    if (!strcmp(name, "vaes")) return __builtin_cpu_supports("vaes");
    if (!strcmp(name, "vpclmulqdq")) return __builtin_cpu_supports("vpclmulqdq");
    return 1;
}
#else
static int cpu_has(const char *name) { (void)name; return 1; }
#endif

static const feature features[] = {
    // Every extension clang can be told to target with -march that changes code generation
    // and that CPUID reports; -march=native on a newer CPU enables the later ones.
#ifdef __SSSE3__
    {"ssse3", 1},
#endif
#ifdef __SSE4_1__
    {"sse4.1", 1},
#endif
#ifdef __SSE4_2__
    {"sse4.2", 1},
#endif
#ifdef __POPCNT__
    {"popcnt", 1},
#endif
#ifdef __PCLMUL__
    {"pclmul", 1},
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
#ifdef __BMI__
    {"bmi", 1},
#endif
#ifdef __BMI2__
    {"bmi2", 1},
#endif
#ifdef __LZCNT__
    {"lzcnt", 1},
#endif
#ifdef __MOVBE__
    {"movbe", 1},
#endif
#ifdef __ADX__
    {"adx", 1},
#endif
#ifdef __SHA__
    {"sha", 1},
#endif
#ifdef __RDRND__
    {"rdrnd", 1},
#endif
#ifdef __RDSEED__
    {"rdseed", 1},
#endif
#ifdef __XSAVE__
    {"xsave", 1},
#endif
#ifdef __CLFLUSHOPT__
    {"clflushopt", 1},
#endif
#ifdef __CLWB__
    {"clwb", 1},
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
#ifdef __AVX512VBMI__
    {"avx512vbmi", 1},
#endif
#ifdef __AVX512VBMI2__
    {"avx512vbmi2", 1},
#endif
#ifdef __AVX512VNNI__
    {"avx512vnni", 1},
#endif
#ifdef __AVX512VPOPCNTDQ__
    {"avx512vpopcntdq", 1},
#endif
#ifdef __AVX512IFMA__
    {"avx512ifma", 1},
#endif
#ifdef __AVX512BITALG__
    {"avx512bitalg", 1},
#endif
#ifdef __AVX512BF16__
    {"avx512bf16", 1},
#endif
#ifdef __AVX512FP16__
    {"avx512fp16", 1},
#endif
#ifdef __AVXVNNI__
    {"avxvnni", 1},
#endif
#ifdef __GFNI__
    {"gfni", 1},
#endif
#ifdef __VAES__
    {"vaes", 1},
#endif
#ifdef __VPCLMULQDQ__
    {"vpclmulqdq", 1},
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

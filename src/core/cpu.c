#include "core/cpu.h"

#include <string.h>
#include <unistd.h>

cpu_level_t cpu_detect_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return CPU_LEVEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return CPU_LEVEL_AVX2;
    return CPU_LEVEL_SCALAR;
}

int cpu_level_from_name(const char *name) {
    int want;
    if (!strcmp(name, "scalar")) want = CPU_LEVEL_SCALAR;
    else if (!strcmp(name, "avx2")) want = CPU_LEVEL_AVX2;
    else if (!strcmp(name, "avx512")) want = CPU_LEVEL_AVX512;
    else return -1;
    int have = (int)cpu_detect_level();
    return want < have ? want : have;
}

const char *cpu_level_name(cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return "avx512";
    case CPU_LEVEL_AVX2: return "avx2";
    default: return "scalar";
    }
}

int cpu_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

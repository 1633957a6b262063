/* CPU feature detection for run-time kernel dispatch. The binary is built
 * without -march=native; kernels that need AVX2 or AVX-512 are compiled with
 * target attributes and chosen by the level reported here. */
#ifndef TL_CORE_CPU_H
#define TL_CORE_CPU_H

typedef enum {
    CPU_LEVEL_SCALAR = 0,  /* plain C reference kernels */
    CPU_LEVEL_AVX2 = 1,    /* AVX2 + FMA + F16C */
    CPU_LEVEL_AVX512 = 2,  /* AVX-512 F/BW/VL + VNNI */
} cpu_level_t;

/* Best level this CPU supports. */
cpu_level_t cpu_detect_level(void);
/* Level named by "scalar", "avx2", "avx512" (capped at what the CPU supports);
 * -1 for an unknown name. */
int cpu_level_from_name(const char *name);
const char *cpu_level_name(cpu_level_t level);
/* Number of online CPU cores (at least 1). */
int cpu_n_cores(void);

#endif

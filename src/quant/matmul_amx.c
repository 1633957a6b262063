/* Q8_0 on the AMX-INT8 tiles (see matmul_amx.h). Per 16 weight rows x 16
 * tokens x one 32-element block, one TDPBSSD gives the exact int32 block
 * sums (weights as the A tile, read in place from the GGUF rows; the packed
 * activations as the B tile); AVX-512 then scales them into fp32
 * accumulators, one register per row holding its 16 tokens. */
#include "quant/matmul_amx.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/cpu.h"
#include "quant/matmul_kernels.h"
#include "quant/types.h"

#define AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,f16c")))

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* One (group, block) of the panel: the B tile (8 rows of 16 tokens x 4 bytes) and the tokens' scales. */
typedef struct {
    int8_t b[8][64];
    float da[MM_AMX_TOKENS];
} amx_blk_t;

typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg_t;

static int amx_state; /* 1 usable, -1 not */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_init(void) {
    amx_state = -1;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
    if (!tile || !int8 || cpu_detect_level() != CPU_LEVEL_AVX512) return;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    amx_state = 1;
#endif
}

bool mm_amx_available(void) {
    pthread_once(&amx_once, amx_init);
    return amx_state == 1;
}

bool mm_amx_supports(const mm_weight_t *w) {
    return w->type == GGML_TYPE_Q8_0 && w->n_in % 64 == 0 && w->n_in >= 64 && w->n_in <= 8192 &&
           w->n_out % MM_AMX_ROWS == 0 &&
           mm_amx_available();
}

size_t mm_amx_panel_bytes(int64_t n_in, int n_tokens) {
    if (n_tokens < 1 || n_in < MM_QK) return 0;
    size_t groups = (size_t)(n_tokens + MM_AMX_TOKENS - 1) / MM_AMX_TOKENS;
    return groups * (size_t)(n_in / MM_QK) * sizeof(amx_blk_t);
}

void mm_amx_pack(int64_t n_in, const void *act, size_t act_row, int n_tokens, long g0, long g1, void *panel) {
    int64_t nb = n_in / MM_QK;
    for (long g = g0; g < g1; g++)
        for (int64_t b = 0; b < nb; b++) {
            amx_blk_t *p = (amx_blk_t *)panel + (size_t)g * (size_t)nb + (size_t)b;
            memset(p, 0, sizeof *p);
            for (int n = 0; n < MM_AMX_TOKENS; n++) {
                long t = g * MM_AMX_TOKENS + n;
                if (t >= n_tokens) break;
                const mm_block_q8_0_t *x = (const mm_block_q8_0_t *)((const char *)act + (size_t)t * act_row) + b;
                p->da[n] = mm_fp16_to_fp32(x->d);
                for (int k4 = 0; k4 < 8; k4++) memcpy(&p->b[k4][n * 4], x->qs + 4 * k4, 4);
            }
        }
}

#define AMX_MAX_BLOCKS 256 /* n_in up to 8192 */

/* c[k] = exact int32 sums of block b + k, for k < 4: four independent tile
 * products in flight (C tiles 0-3; A/B pairs in tiles 4/5 and 6/7). */
#define AMX_BLOCK(K, TA, TB, BLK)                                                                \
    do {                                                                                         \
        _tile_loadd(TA, w0 + (size_t)(BLK) * sizeof(mm_block_q8_0_t) + 2, (long)w->row_bytes);   \
        _tile_loadd(TB, pg[BLK].b, 64);                                                          \
        _tile_dpbssd(K, TA, TB);                                                                 \
    } while (0)

AMX_TARGET static inline void scale_block(__m512 *acc, const int32_t (*c)[MM_AMX_TOKENS], const float *dw,
                                          const float *da_p) {
    __m512 da = _mm512_loadu_ps(da_p);
    for (int i = 0; i < MM_AMX_ROWS; i++) {
        __m512 d = _mm512_mul_ps(_mm512_set1_ps(dw[i]), da);
        acc[i] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_load_si512((const void *)c[i])), acc[i]);
    }
}

AMX_TARGET static void rows_group(const mm_weight_t *w, const amx_blk_t *panel, int n_tokens, long r, float *out) {
    int64_t nb = w->n_in / MM_QK;
    long n_groups = (n_tokens + MM_AMX_TOKENS - 1) / MM_AMX_TOKENS;
    const uint8_t *w0 = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
    float dw[AMX_MAX_BLOCKS][MM_AMX_ROWS]; /* the rows' scales, [block][row] */
    int32_t c[4][MM_AMX_ROWS][MM_AMX_TOKENS] __attribute__((aligned(64)));
    float res[MM_AMX_ROWS][MM_AMX_TOKENS] __attribute__((aligned(64)));
    /* the 16 rows' block scales, gathered 32 bits at a time (the fp16 scale and
     * the block's first two bytes) and converted with F16C: fp16 -> fp32 is
     * exact, the same values as mm_fp16_to_fp32 */
    const __m512i offs = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)w->row_bytes));
    for (int64_t b = 0; b < nb; b++) {
        __m512i v = _mm512_i32gather_epi32(offs, (const void *)(w0 + (size_t)b * sizeof(mm_block_q8_0_t)), 1);
        _mm512_storeu_ps(dw[b], _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
    }
    /* the next group's rows (2 ahead), asked for a few lines per 4 blocks
     * across this group's work: a burst of ~150 prefetches would find the
     * line-fill buffers full and be dropped */
    const char *pf = (const char *)w0 + (size_t)(2 * MM_AMX_ROWS) * w->row_bytes;
    const char *pf_end = r + 3 * MM_AMX_ROWS <= w->n_out ? pf + (size_t)MM_AMX_ROWS * w->row_bytes : pf;
    long steps = n_groups * ((nb + 3) / 4);
    size_t pf_step = (((size_t)(pf_end - pf) / 64 + (size_t)steps - 1) / (size_t)steps) * 64;
    for (long g = 0; g < n_groups; g++) {
        __m512 acc[MM_AMX_ROWS];
        for (int i = 0; i < MM_AMX_ROWS; i++) acc[i] = _mm512_setzero_ps();
        const amx_blk_t *pg = panel + (size_t)g * (size_t)nb;
        int64_t b = 0;
        for (; b + 4 <= nb; b += 4) {
            for (const char *q = pf; q < pf + pf_step && q < pf_end; q += 64) __builtin_prefetch(q, 0, 2);
            pf += pf_step;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            AMX_BLOCK(0, 4, 5, b);
            AMX_BLOCK(1, 6, 7, b + 1);
            AMX_BLOCK(2, 4, 5, b + 2);
            AMX_BLOCK(3, 6, 7, b + 3);
            _tile_stored(0, c[0], 64);
            _tile_stored(1, c[1], 64);
            _tile_stored(2, c[2], 64);
            _tile_stored(3, c[3], 64);
            for (int k = 0; k < 4; k++) scale_block(acc, (const int32_t(*)[MM_AMX_TOKENS])c[k], dw[b + k], pg[b + k].da);
        }
        for (; b < nb; b++) {
            _tile_zero(0);
            AMX_BLOCK(0, 4, 5, b);
            _tile_stored(0, c[0], 64);
            scale_block(acc, (const int32_t(*)[MM_AMX_TOKENS])c[0], dw[b], pg[b].da);
        }
        for (int i = 0; i < MM_AMX_ROWS; i++) _mm512_store_ps(res[i], acc[i]);
        for (int n = 0; n < MM_AMX_TOKENS; n++) {
            long t = g * MM_AMX_TOKENS + n;
            if (t >= n_tokens) break;
            float *o = out + (size_t)t * (size_t)w->n_out + (size_t)r;
            for (int i = 0; i < MM_AMX_ROWS; i++) o[i] = res[i][n];
        }
    }
}

/* The first two groups of a call (rows_group asks for the later ones as it
 * goes): with a serving pass's ~20 tokens a group's weights are used for a
 * few microseconds, and the scale gathers and tile loads (16 rows at a
 * stride) would otherwise wait on each cache line in turn. */
static void prefetch_group(const mm_weight_t *w, long r) {
    if (r >= w->n_out) return;
    const char *p = (const char *)w->data + (size_t)r * w->row_bytes;
    size_t n = (size_t)MM_AMX_ROWS * w->row_bytes;
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 2);
}

AMX_TARGET void mm_amx_rows(const mm_weight_t *w, const void *panel, int n_tokens, long r0, long r1, float *out) {
    amx_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int k = 0; k < 4; k++) { /* C: 16 rows x 16 int32 */
        cfg.colsb[k] = MM_AMX_TOKENS * 4;
        cfg.rows[k] = MM_AMX_ROWS;
    }
    for (int k = 4; k < 8; k += 2) {
        cfg.colsb[k] = MM_QK; /* A: 16 weight rows x one block's 32 bytes */
        cfg.rows[k] = MM_AMX_ROWS;
        cfg.colsb[k + 1] = 64; /* B: 8 rows of 16 tokens x 4 bytes */
        cfg.rows[k + 1] = MM_QK / 4;
    }
    _tile_loadconfig(&cfg);
    prefetch_group(w, r0);
    prefetch_group(w, r0 + MM_AMX_ROWS);
    for (long r = r0; r < r1; r += MM_AMX_ROWS) rows_group(w, panel, n_tokens, r, out);
    _tile_release();
}


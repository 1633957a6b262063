/* quantize_model_file: per-tensor type choice, parallel row re-encoding, GGUF write. */
#include "quant/quantize_model.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/threadpool.h"
#include "io/gguf.h"
#include "quant/quantize.h"

int quantize_parse_overrides(const char *spec, quantize_override_t **ov, int *n, tl_err_t *err) {
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || eq == p + len - 1)
            return tl_fail(err, "type override '%.*s': expected PATTERN=TYPE", (int)len, p);
        size_t plen = (size_t)(eq - p), tlen = len - plen - 1;
        char tname[32];
        if (plen >= sizeof((*ov)->pattern))
            return tl_fail(err, "type override '%.*s': pattern longer than 127 bytes", (int)len, p);
        if (tlen >= sizeof tname) return tl_fail(err, "type override '%.*s': unknown type", (int)len, p);
        memcpy(tname, eq + 1, tlen);
        tname[tlen] = '\0';
        int t = quantize_type_from_name(tname);
        if (t < 0) return tl_fail(err, "type override '%.*s': unknown or unwritable type '%s'", (int)len, p, tname);
        quantize_override_t *nv = realloc(*ov, (size_t)(*n + 1) * sizeof **ov);
        if (!nv) return tl_fail(err, "type override: out of memory");
        *ov = nv;
        memcpy(nv[*n].pattern, p, plen);
        nv[*n].pattern[plen] = '\0';
        nv[*n].type = (uint32_t)t;
        (*n)++;
        p += len + (end ? 1 : 0);
        if (end && !*p) return tl_fail(err, "type override '%s': trailing comma", spec);
    }
    return 0;
}

uint32_t quantize_file_type(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: return 0;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    case GGML_TYPE_Q4_1: return 3;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_Q5_0: return 8;
    case GGML_TYPE_Q5_1: return 9;
    case GGML_TYPE_Q4_K: return 14; /* Q4_K_S */
    case GGML_TYPE_Q5_K: return 16; /* Q5_K_S */
    case GGML_TYPE_Q6_K: return 18;
    case GGML_TYPE_IQ4_NL: return 25;
    case GGML_TYPE_BF16: return 32;
    default: return 0;
    }
}

static bool pattern_matches(const char *pat, const char *name) {
    if (fnmatch(pat, name, 0) == 0) return true;
    char ext[160];
    snprintf(ext, sizeof ext, "%s.*", pat);
    return fnmatch(ext, name, 0) == 0;
}

static bool below_6_bits(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K: case GGML_TYPE_IQ4_NL:
        return true;
    default:
        return false;
    }
}

/* llama.cpp's fallbacks for rows that do not fill whole blocks. */
static uint32_t fallback_type(uint32_t type, int64_t n_in) {
    uint32_t t = type;
    for (int i = 0; i < 3 && n_in % ggml_type_block_size(t) != 0; i++) {
        switch (t) {
        case GGML_TYPE_Q4_K: t = GGML_TYPE_Q5_0; break;
        case GGML_TYPE_Q5_K: t = GGML_TYPE_Q5_1; break;
        case GGML_TYPE_Q6_K: t = GGML_TYPE_Q8_0; break;
        default: t = GGML_TYPE_F16; break;
        }
    }
    return t;
}

static uint32_t choose_type(const quantize_opts_t *o, const gguf_tensor_t *t, bool *fallback, uint32_t *wanted) {
    *fallback = false;
    *wanted = GGML_TYPE_F32;
    if (t->n_dims < 2 || t->ne[1] == 1) return GGML_TYPE_F32;
    uint32_t type = o->type;
    bool overridden = false;
    for (int i = 0; i < o->n_overrides; i++) {
        if (pattern_matches(o->overrides[i].pattern, t->name)) {
            type = o->overrides[i].type;
            overridden = true;
            break;
        }
    }
    if (!overridden && !o->pure && below_6_bits(o->type) &&
        (strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0))
        type = GGML_TYPE_Q8_0;
    *wanted = type;
    uint32_t fb = fallback_type(type, t->ne[0]);
    *fallback = fb != type;
    return fb;
}

/* ---- the per-tensor job ---- */

#define MAX_THREADS 256

typedef struct {
    const gguf_tensor_t *t;
    uint32_t out_type;
    uint8_t *out;
    size_t in_row, out_row;
    int64_t n_in, n_rows;
    const float *imp;
    double sq_err[MAX_THREADS], sq_ref[MAX_THREADS];
    int failed[MAX_THREADS];
    tl_err_t err[MAX_THREADS];
} tensor_job_t;

static void tensor_job(void *ctx, int ith, int nth) {
    tensor_job_t *j = ctx;
    long r0, r1;
    threadpool_split(j->n_rows, ith, nth, &r0, &r1);
    j->sq_err[ith] = j->sq_ref[ith] = 0.0;
    j->failed[ith] = 0;
    if (r0 >= r1) return;
    float *x = malloc((size_t)j->n_in * sizeof(float)), *y = malloc((size_t)j->n_in * sizeof(float));
    if (!x || !y) {
        j->failed[ith] = 1;
        tl_fail(&j->err[ith], "out of memory");
    }
    for (long r = r0; r < r1 && !j->failed[ith]; r++) {
        const uint8_t *src = (const uint8_t *)j->t->data + (size_t)r * j->in_row;
        uint8_t *dst = j->out + (size_t)r * j->out_row;
        if (dequantize_row(j->t->type, src, x, j->n_in, &j->err[ith]) ||
            quantize_row(j->out_type, x, dst, j->n_in, j->imp, &j->err[ith]) ||
            dequantize_row(j->out_type, dst, y, j->n_in, &j->err[ith])) {
            j->failed[ith] = 1;
            tl_fail_prefix(&j->err[ith], "row %ld", r);
            break;
        }
        double se = 0.0, sr = 0.0;
        for (int64_t i = 0; i < j->n_in; i++) {
            double d = (double)y[i] - x[i];
            se += d * d;
            sr += (double)x[i] * x[i];
        }
        j->sq_err[ith] += se;
        j->sq_ref[ith] += sr;
    }
    free(x);
    free(y);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int quantize_tensor(threadpool_t *pool, tensor_job_t *j, const gguf_tensor_t *t, uint32_t out_type,
                           const quantize_opts_t *o, quantize_tensor_rec_t *rec, void **out_buf, uint64_t *out_bytes,
                           tl_err_t *err) {
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
    memset(j, 0, sizeof *j);
    j->t = t;
    j->out_type = out_type;
    j->n_in = t->ne[0];
    j->n_rows = n / t->ne[0];
    if (ggml_row_bytes(t->type, j->n_in, &j->in_row, err) || ggml_row_bytes(out_type, j->n_in, &j->out_row, err))
        return tl_fail_prefix(err, "tensor %s", t->name);
    j->imp = o->importance && quantize_type_uses_importance(out_type)
                 ? o->importance(o->importance_ctx, t->name, j->n_in) : NULL;
    rec->importance = j->imp != NULL;
    *out_bytes = (uint64_t)j->out_row * (uint64_t)j->n_rows;
    j->out = malloc(*out_bytes ? *out_bytes : 1);
    if (!j->out) return tl_fail(err, "tensor %s: out of memory for %llu bytes", t->name, (unsigned long long)*out_bytes);
    *out_buf = j->out;
    threadpool_run(pool, tensor_job, j);
    for (int i = 0; i < MAX_THREADS; i++) {
        if (j->failed[i]) return tl_fail(err, "tensor %s: %s", t->name, j->err[i].msg);
        rec->sq_err += j->sq_err[i];
        rec->sq_ref += j->sq_ref[i];
    }
    return 0;
}

int quantize_model_file(const char *in_path, const char *out_path, const quantize_opts_t *o,
                        quantize_report_t *r, tl_err_t *err) {
    memset(r, 0, sizeof *r);
    if (!quantize_type_supported(o->type))
        return tl_fail(err, "quantize: cannot write type %s", ggml_type_name(o->type) ? ggml_type_name(o->type) : "?");
    double t0 = now_s();
    gguf_file_t *f = NULL;
    gguf_writer_t *w = NULL;
    threadpool_t *pool = NULL;
    tensor_job_t *job = NULL;
    void **bufs = NULL;
    int rc = -1;
    if (gguf_open(&f, in_path, err)) return -1;
    uint64_t nt = gguf_n_tensors(f);
    r->n_tensors = (int)nt;
    r->tensors = calloc(nt ? nt : 1, sizeof *r->tensors);
    bufs = calloc(nt ? nt : 1, sizeof *bufs);
    job = malloc(sizeof *job);
    w = gguf_writer_new();
    if (!r->tensors || !bufs || !job || !w) {
        tl_fail(err, "quantize: out of memory");
        goto done;
    }
    if (threadpool_new(&pool, o->n_threads > MAX_THREADS ? MAX_THREADS : o->n_threads, err)) goto done;
    if (threadpool_n_threads(pool) > MAX_THREADS) {
        tl_fail(err, "quantize: at most %d threads", MAX_THREADS);
        goto done;
    }
    if (gguf_writer_copy_kv(w, f, err)) goto done;
    r->file_type = quantize_file_type(o->type);
    if (gguf_writer_set_u32(w, "general.file_type", r->file_type, err) ||
        gguf_writer_set_u32(w, "general.quantization_version", 2, err))
        goto done;
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        quantize_tensor_rec_t *rec = &r->tensors[i];
        snprintf(rec->name, sizeof rec->name, "%s", t->name);
        rec->type_in = t->type;
        rec->type_wanted = t->type;
        rec->n_in = t->ne[0];
        rec->n_elements = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) rec->n_elements *= t->ne[d];
        const void *data = t->data;
        uint64_t nbytes = t->nbytes;
        uint32_t out_type = t->type;
        bool can_read = t->type == GGML_TYPE_F32 || ggml_type_can_dequantize(t->type);
        if (can_read) {
            out_type = choose_type(o, t, &rec->fallback, &rec->type_wanted);
            if (!(t->type == GGML_TYPE_F32 && out_type == GGML_TYPE_F32)) {
                if (quantize_tensor(pool, job, t, out_type, o, rec, &bufs[i], &nbytes, err)) goto done;
                data = bufs[i];
            } else {
                for (int64_t k = 0; k < rec->n_elements; k++) rec->sq_ref += (double)((const float *)data)[k] * ((const float *)data)[k];
            }
        }
        rec->type_out = out_type;
        r->count_by_type[out_type < GGML_TYPE_COUNT ? out_type : 0]++;
        r->n_fallback += rec->fallback;
        if (gguf_writer_add_tensor(w, t->name, out_type, t->n_dims, t->ne, data, nbytes, err)) goto done;
    }
    if (gguf_writer_write(w, out_path, err)) goto done;
    struct stat st;
    r->in_bytes = gguf_file_size(f);
    r->out_bytes = stat(out_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    r->seconds = now_s() - t0;
    rc = 0;
done:
    if (bufs)
        for (uint64_t i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    free(job);
    gguf_writer_free(w);
    threadpool_free(pool);
    gguf_close(f);
    return rc;
}

void quantize_report_free(quantize_report_t *r) {
    free(r->tensors);
    r->tensors = NULL;
}

/* GGUF reader and writer: synthetic files built byte by byte here (every
 * value type, nested arrays), hostile inputs (every truncation, bit flips,
 * oversized counts and sizes), error messages, and writer round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "quant/types.h"
#include "tl_test.h"

/* ---- a byte builder independent of the library's writer ---- */
typedef struct {
    uint8_t b[8192];
    size_t n;
} bb_t;

static void bb_raw(bb_t *b, const void *p, size_t n) {
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb_t *b, uint8_t v) { bb_raw(b, &v, 1); }
static void bb_u16(bb_t *b, uint16_t v) { bb_raw(b, &v, 2); }
static void bb_u32(bb_t *b, uint32_t v) { bb_raw(b, &v, 4); }
static void bb_u64(bb_t *b, uint64_t v) { bb_raw(b, &v, 8); }
static void bb_str(bb_t *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_pad(bb_t *b, size_t a) {
    while (b->n % a) bb_u8(b, 0);
}
static void bb_header(bb_t *b, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    bb_raw(b, "GGUF", 4);
    bb_u32(b, 3);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_key(bb_t *b, const char *k, uint32_t type) {
    bb_str(b, k);
    bb_u32(b, type);
}
static void bb_tensor(bb_t *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}

#define N_SAMPLE_KV 17

/* Every value type, string and numeric arrays, an array of arrays, two tensors;
 * laid out exactly as llama.cpp writes (header padded, each tensor padded). */
static void build_sample(bb_t *b) {
    bb_header(b, 2, N_SAMPLE_KV);
    bb_key(b, "t.u8", GGUF_TYPE_UINT8); bb_u8(b, 200);
    bb_key(b, "t.i8", GGUF_TYPE_INT8); bb_u8(b, (uint8_t)-5);
    bb_key(b, "t.u16", GGUF_TYPE_UINT16); bb_u16(b, 60000);
    bb_key(b, "t.i16", GGUF_TYPE_INT16); bb_u16(b, (uint16_t)-300);
    bb_key(b, "t.u32", GGUF_TYPE_UINT32); bb_u32(b, 4000000000u);
    bb_key(b, "t.i32", GGUF_TYPE_INT32); bb_u32(b, (uint32_t)-70000);
    bb_key(b, "t.f32", GGUF_TYPE_FLOAT32); { float f = 1.5e-5f; bb_raw(b, &f, 4); }
    bb_key(b, "t.bool", GGUF_TYPE_BOOL); bb_u8(b, 1);
    bb_key(b, "t.str", GGUF_TYPE_STRING); bb_str(b, "héllo");
    bb_key(b, "t.u64", GGUF_TYPE_UINT64); bb_u64(b, 0xfedcba9876543210ull);
    bb_key(b, "t.i64", GGUF_TYPE_INT64); bb_u64(b, (uint64_t)-1234567890123ll);
    bb_key(b, "t.f64", GGUF_TYPE_FLOAT64); { double d = -2.5e100; bb_raw(b, &d, 8); }
    bb_key(b, "t.arr_i32", GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_INT32); bb_u64(b, 3);
    bb_u32(b, 7); bb_u32(b, (uint32_t)-8); bb_u32(b, 9);
    bb_key(b, "t.arr_str", GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_STRING); bb_u64(b, 3);
    bb_str(b, "a"); bb_str(b, ""); bb_str(b, "ccc");
    bb_key(b, "t.nested", GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_ARRAY); bb_u64(b, 2);
    bb_u32(b, GGUF_TYPE_UINT16); bb_u64(b, 2); bb_u16(b, 11); bb_u16(b, 12);
    bb_u32(b, GGUF_TYPE_STRING); bb_u64(b, 1); bb_str(b, "deep");
    bb_key(b, "t.arr_empty", GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_FLOAT32); bb_u64(b, 0);
    bb_key(b, "t.arr_bool", GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_BOOL); bb_u64(b, 2); bb_u8(b, 0); bb_u8(b, 1);
    uint64_t ne_a[2] = {4, 2}, ne_b[1] = {32};
    bb_tensor(b, "a", 2, ne_a, GGML_TYPE_F32, 0);
    bb_tensor(b, "b.weight", 1, ne_b, GGML_TYPE_Q8_0, 32);
    bb_pad(b, 32);
    for (int i = 0; i < 8; i++) { float f = (float)i - 3.5f; bb_raw(b, &f, 4); }
    bb_pad(b, 32);
    bb_u16(b, 0x3c00); /* q8_0 block: d = 1 */
    for (int i = 0; i < 32; i++) bb_u8(b, (uint8_t)(i - 10));
    bb_pad(b, 32);
}

/* Parses a private heap copy so that ASan sees any read past the end. */
static int parse_copy(const uint8_t *p, size_t n, gguf_file_t **f, tl_err_t *err) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    *f = NULL;
    int rc = gguf_open_buffer(f, copy, n, "mem.gguf", err);
    if (rc == 0) { /* touch everything the reader exposes */
        volatile unsigned sink = 0;
        for (uint64_t i = 0; i < gguf_n_kv(*f); i++) {
            const gguf_kv_t *kv = gguf_kv(*f, i);
            for (uint64_t k = 0; k < kv->key.len; k++) sink += (uint8_t)kv->key.ptr[k];
            if (kv->value.type == GGUF_TYPE_ARRAY)
                for (uint64_t e = 0; e < kv->value.v.arr.n && e < 64; e++) {
                    gguf_value_t v;
                    if (gguf_value_elem(&kv->value, e, &v) == 0 && v.type == GGUF_TYPE_STRING && v.v.str.len)
                        sink += (uint8_t)v.v.str.ptr[v.v.str.len - 1];
                }
        }
        for (uint64_t i = 0; i < gguf_n_tensors(*f); i++) {
            const gguf_tensor_t *t = gguf_tensor(*f, i);
            if (t->nbytes) sink += ((const uint8_t *)t->data)[t->nbytes - 1];
        }
        (void)sink;
        gguf_close(*f);
        *f = NULL;
    }
    free(copy);
    return rc;
}

TEST(test_sample_values) {
    static bb_t b;
    build_sample(&b);
    gguf_file_t *f;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(gguf_open_buffer(&f, b.b, b.n, "sample.gguf", &err), 0);
    if (!f) { printf("  %s\n", err.msg); tl_test_cur_failed = 1; return; }
    CHECK_EQ_INT(gguf_version(f), 3);
    CHECK_EQ_INT(gguf_n_kv(f), N_SAMPLE_KV);
    CHECK_EQ_INT(gguf_alignment(f), 32);
    CHECK_STR(gguf_path(f), "sample.gguf");
    CHECK_EQ_INT(gguf_find_kv(f, "t.u8")->value.v.u64, 200);
    CHECK_EQ_INT(gguf_find_kv(f, "t.i8")->value.v.i64, -5);
    CHECK_EQ_INT(gguf_find_kv(f, "t.u16")->value.v.u64, 60000);
    CHECK_EQ_INT(gguf_find_kv(f, "t.i16")->value.v.i64, -300);
    CHECK_EQ_INT(gguf_find_kv(f, "t.u32")->value.v.u64, 4000000000u);
    CHECK_EQ_INT(gguf_find_kv(f, "t.i32")->value.v.i64, -70000);
    CHECK(gguf_find_kv(f, "t.f32")->value.v.f64 == (double)1.5e-5f);
    CHECK_EQ_INT(gguf_find_kv(f, "t.u64")->value.v.u64 == 0xfedcba9876543210ull, 1);
    CHECK_EQ_INT(gguf_find_kv(f, "t.i64")->value.v.i64, -1234567890123ll);
    CHECK(gguf_find_kv(f, "t.f64")->value.v.f64 == -2.5e100);
    CHECK(gguf_find_kv(f, "missing") == NULL);
    CHECK(gguf_find_kv(f, "t.u") == NULL);
    /* typed getters */
    uint32_t u; int64_t i; float x; bool bo; gguf_str_t s; const gguf_value_t *arr;
    CHECK_EQ_INT(gguf_get_u32(f, "t.u8", &u, &err), 0); CHECK_EQ_INT(u, 200);
    CHECK_EQ_INT(gguf_get_u32(f, "t.i8", &u, &err), -1); CHECK_CONTAINS(err.msg, "t.i8");
    CHECK_EQ_INT(gguf_get_u32(f, "t.u64", &u, &err), -1); CHECK_CONTAINS(err.msg, "t.u64");
    CHECK_EQ_INT(gguf_get_i64(f, "t.i32", &i, &err), 0); CHECK_EQ_INT(i, -70000);
    CHECK_EQ_INT(gguf_get_i64(f, "t.u64", &i, &err), -1);
    CHECK_EQ_INT(gguf_get_f32(f, "t.f32", &x, &err), 0); CHECK(x == 1.5e-5f);
    CHECK_EQ_INT(gguf_get_bool(f, "t.bool", &bo, &err), 0); CHECK(bo);
    CHECK_EQ_INT(gguf_get_bool(f, "t.u8", &bo, &err), -1); CHECK_CONTAINS(err.msg, "t.u8");
    CHECK_EQ_INT(gguf_get_str(f, "t.str", &s, &err), 0);
    CHECK(s.len == 6 && memcmp(s.ptr, "héllo", 6) == 0);
    CHECK_EQ_INT(gguf_get_str(f, "nope", &s, &err), -1); CHECK_CONTAINS(err.msg, "nope");
    CHECK_CONTAINS(err.msg, "sample.gguf");
    CHECK_EQ_INT(gguf_get_u32_or(f, "nope", 17), 17);
    CHECK_EQ_INT(gguf_get_u32_or(f, "t.u16", 17), 60000);
    CHECK(gguf_get_f32_or(f, "nope", 2.5f) == 2.5f);
    CHECK(gguf_get_bool_or(f, "nope", true));
    /* arrays */
    gguf_value_t e;
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_i32", &arr, &err), 0);
    CHECK_EQ_INT(arr->v.arr.n, 3);
    CHECK_EQ_INT(gguf_value_elem(arr, 1, &e), 0); CHECK_EQ_INT(e.v.i64, -8);
    CHECK_EQ_INT(e.type, GGUF_TYPE_INT32);
    CHECK_EQ_INT(gguf_value_elem(arr, 3, &e), -1);
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_str", &arr, &err), 0);
    CHECK_EQ_INT(gguf_value_elem(arr, 2, &e), 0);
    CHECK(e.type == GGUF_TYPE_STRING && e.v.str.len == 3 && !memcmp(e.v.str.ptr, "ccc", 3));
    CHECK_EQ_INT(gguf_value_elem(arr, 1, &e), 0); CHECK_EQ_INT(e.v.str.len, 0);
    CHECK_EQ_INT(gguf_get_arr(f, "t.nested", &arr, &err), 0);
    CHECK_EQ_INT(arr->v.arr.elem_type, GGUF_TYPE_ARRAY);
    gguf_value_t inner, leaf;
    CHECK_EQ_INT(gguf_value_elem(arr, 0, &inner), 0);
    CHECK_EQ_INT(inner.v.arr.elem_type, GGUF_TYPE_UINT16);
    CHECK_EQ_INT(gguf_value_elem(&inner, 1, &leaf), 0); CHECK_EQ_INT(leaf.v.u64, 12);
    CHECK_EQ_INT(gguf_value_elem(arr, 1, &inner), 0);
    CHECK_EQ_INT(gguf_value_elem(&inner, 0, &leaf), 0);
    CHECK(leaf.v.str.len == 4 && !memcmp(leaf.v.str.ptr, "deep", 4));
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_empty", &arr, &err), 0); CHECK_EQ_INT(arr->v.arr.n, 0);
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_bool", &arr, &err), 0);
    CHECK_EQ_INT(gguf_value_elem(arr, 1, &e), 0); CHECK_EQ_INT(e.v.u64, 1);
    CHECK_EQ_INT(gguf_get_arr(f, "t.u8", &arr, &err), -1); CHECK_CONTAINS(err.msg, "t.u8");
    /* tensors */
    CHECK_EQ_INT(gguf_n_tensors(f), 2);
    const gguf_tensor_t *ta = gguf_find_tensor(f, "a"), *tb = gguf_find_tensor(f, "b.weight");
    CHECK(ta && tb && gguf_find_tensor(f, "b") == NULL);
    if (!ta || !tb) { gguf_close(f); return; }
    CHECK_EQ_INT(ta->n_dims, 2); CHECK_EQ_INT(ta->ne[0], 4); CHECK_EQ_INT(ta->ne[1], 2); CHECK_EQ_INT(ta->ne[2], 1);
    CHECK_EQ_INT(ta->nbytes, 32); CHECK_EQ_INT(tb->nbytes, 34); CHECK_EQ_INT(tb->offset, 32);
    CHECK_EQ_INT(gguf_data_offset(f) % 32, 0);
    CHECK_EQ_INT((const uint8_t *)ta->data - b.b, gguf_data_offset(f));
    CHECK(((const float *)ta->data)[7] == 3.5f);
    float y[32];
    CHECK_EQ_INT(dequantize_row(tb->type, tb->data, y, 32, &err), 0);
    CHECK(y[0] == -10.0f && y[31] == 21.0f);
    gguf_close(f);
}

TEST(test_every_truncation_fails) {
    static bb_t b;
    build_sample(&b);
    size_t full = b.n;
    /* the last tensor's padding is not needed; anything shorter than its data end must fail */
    size_t data_end = full - (32 - 34 % 32);
    gguf_file_t *f;
    tl_err_t err;
    int accepted = 0, no_msg = 0;
    for (size_t n = 0; n < data_end; n++) {
        err.msg[0] = '\0';
        if (parse_copy(b.b, n, &f, &err) == 0) accepted++;
        else if (!strstr(err.msg, "mem.gguf")) no_msg++;
    }
    CHECK_EQ_INT(accepted, 0);
    CHECK_EQ_INT(no_msg, 0);
    CHECK_EQ_INT(parse_copy(b.b, data_end, &f, &err), 0);
    CHECK_EQ_INT(parse_copy(b.b, full, &f, &err), 0);
}

TEST(test_bit_flips_never_crash) {
    static bb_t b;
    build_sample(&b);
    static uint8_t m[8192];
    gguf_file_t *f;
    tl_err_t err;
    int parsed = 0, failed = 0;
    for (size_t pos = 0; pos < b.n; pos++) {
        for (int k = 0; k < 3; k++) {
            memcpy(m, b.b, b.n);
            m[pos] ^= (uint8_t)(k == 0 ? 1u << (pos % 8) : k == 1 ? 0x80 : 0xff);
            err.msg[0] = '\0';
            if (parse_copy(m, b.n, &f, &err) == 0) parsed++;
            else if (err.msg[0] && !strchr(err.msg, '\n')) failed++;
        }
    }
    CHECK_EQ_INT(parsed + failed, 3 * (int)b.n); /* every failure has a one-line message */
    CHECK(failed > 0 && parsed > 0);
}

static int expect_fail(const bb_t *b, const char *needle) {
    gguf_file_t *f;
    tl_err_t err = {{0}};
    int rc = parse_copy(b->b, b->n, &f, &err);
    if (rc == 0) {
        printf("  %s: expected failure mentioning \"%s\", parsed fine\n", tl_test_cur, needle);
        tl_test_cur_failed = 1;
        return 0;
    }
    CHECK_CONTAINS(err.msg, needle);
    CHECK_CONTAINS(err.msg, "mem.gguf");
    return 1;
}

/* One kv "k" (u32) and tensor "w" of type/shape given, data following. */
static void build_one(bb_t *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    bb_header(b, 1, 1);
    bb_key(b, "k", GGUF_TYPE_UINT32); bb_u32(b, 1);
    bb_tensor(b, "w", n_dims, ne, type, off);
    bb_pad(b, 32);
    for (size_t i = 0; i < data; i++) bb_u8(b, 0);
}

TEST(test_hostile_headers) {
    static bb_t b;
    bb_header(&b, 0, 1ull << 60);
    expect_fail(&b, "metadata count");
    bb_header(&b, 1ull << 60, 0);
    expect_fail(&b, "tensor count");
    build_sample(&b); memcpy(b.b, "GGUX", 4);
    expect_fail(&b, "magic");
    build_sample(&b); b.b[4] = 1;
    expect_fail(&b, "version 1");
    build_sample(&b); b.b[4] = 4;
    expect_fail(&b, "version 4");
    build_sample(&b); b.b[4] = 2; /* v2 has the same little-endian layout */
    gguf_file_t *f2;
    tl_err_t err2 = {{0}};
    CHECK_EQ_INT(gguf_open_buffer(&f2, b.b, b.n, "v2", &err2), 0);
    if (f2) { CHECK_EQ_INT(gguf_version(f2), 2); CHECK_EQ_INT(gguf_n_tensors(f2), 2); gguf_close(f2); }
    bb_header(&b, 0, 1);
    bb_key(&b, "big.string", GGUF_TYPE_STRING); bb_u64(&b, 1ull << 63); bb_raw(&b, "xxxxxxxx", 8);
    expect_fail(&b, "big.string");
    bb_header(&b, 0, 1);
    bb_key(&b, "big.array", GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_UINT64); bb_u64(&b, 1ull << 62);
    expect_fail(&b, "big.array");
    bb_header(&b, 0, 1);
    bb_key(&b, "big.strs", GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_STRING); bb_u64(&b, UINT64_MAX);
    expect_fail(&b, "big.strs");
    bb_header(&b, 0, 1);
    bb_key(&b, "odd.type", 13); bb_u32(&b, 0);
    expect_fail(&b, "odd.type");
    bb_header(&b, 0, 1);
    bb_key(&b, "odd.elem", GGUF_TYPE_ARRAY); bb_u32(&b, 99); bb_u64(&b, 1); bb_u32(&b, 0);
    expect_fail(&b, "odd.elem");
    bb_header(&b, 0, 1);
    bb_key(&b, "bad.bool", GGUF_TYPE_BOOL); bb_u8(&b, 2);
    expect_fail(&b, "bad.bool");
    bb_header(&b, 0, 2);
    bb_key(&b, "dup", GGUF_TYPE_UINT8); bb_u8(&b, 1);
    bb_key(&b, "dup", GGUF_TYPE_UINT8); bb_u8(&b, 2);
    expect_fail(&b, "duplicate key 'dup'");
    bb_header(&b, 0, 1); /* arrays nested 20 deep */
    bb_key(&b, "deep.nest", GGUF_TYPE_ARRAY);
    for (int d = 0; d < 20; d++) { bb_u32(&b, GGUF_TYPE_ARRAY); bb_u64(&b, 1); }
    bb_u32(&b, GGUF_TYPE_UINT8); bb_u64(&b, 0);
    expect_fail(&b, "deep.nest");
    uint32_t aligns[3] = {0, 3, 48};
    for (int i = 0; i < 3; i++) {
        bb_header(&b, 0, 1);
        bb_key(&b, "general.alignment", GGUF_TYPE_UINT32); bb_u32(&b, aligns[i]);
        expect_fail(&b, "general.alignment");
    }
    bb_header(&b, 0, 1);
    bb_key(&b, "general.alignment", GGUF_TYPE_STRING); bb_str(&b, "32");
    expect_fail(&b, "general.alignment");
}

TEST(test_hostile_tensors) {
    static bb_t b;
    uint64_t ne5[5] = {32, 1, 1, 1, 1};
    build_one(&b, 5, ne5, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "'w': n_dims 5");
    build_one(&b, 0, ne5, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "'w'");
    uint64_t zero[2] = {32, 0};
    build_one(&b, 2, zero, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "'w': dimension 1");
    uint64_t neg[2] = {32, (uint64_t)-4};
    build_one(&b, 2, neg, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "'w'");
    uint64_t huge[4] = {1ull << 32, 1ull << 32, 4, 1};
    build_one(&b, 4, huge, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "overflow");
    uint64_t bytes_huge[2] = {1ull << 32, 1ull << 30}; /* 2^62 elements, 2^64 bytes of f32 */
    build_one(&b, 2, bytes_huge, GGML_TYPE_F32, 0, 128);
    expect_fail(&b, "'w'");
    uint64_t ne32[1] = {32};
    build_one(&b, 1, ne32, 5, 0, 128);
    expect_fail(&b, "'w': unknown tensor type 5");
    build_one(&b, 1, ne32, 200, 0, 128);
    expect_fail(&b, "'w'");
    uint64_t ne33[1] = {33};
    build_one(&b, 1, ne33, GGML_TYPE_Q8_0, 0, 128);
    expect_fail(&b, "'w'");
    build_one(&b, 1, ne32, GGML_TYPE_F32, 1ull << 40, 128);
    expect_fail(&b, "'w': data");
    build_one(&b, 1, ne32, GGML_TYPE_F32, UINT64_MAX - 31, 128);
    expect_fail(&b, "'w'");
    build_one(&b, 1, ne32, GGML_TYPE_F32, 0, 127);
    expect_fail(&b, "past end");
    build_one(&b, 1, ne32, GGML_TYPE_F32, 16, 256);
    expect_fail(&b, "'w': data offset 16 is not a multiple");
    /* two tensors: overlap, duplicate name */
    bb_header(&b, 2, 0);
    bb_tensor(&b, "x", 1, ne32, GGML_TYPE_F32, 0);
    bb_tensor(&b, "y", 1, ne32, GGML_TYPE_F32, 96);
    bb_pad(&b, 32);
    for (int i = 0; i < 256; i++) bb_u8(&b, 0);
    expect_fail(&b, "overlaps");
    bb_header(&b, 2, 0);
    bb_tensor(&b, "x", 1, ne32, GGML_TYPE_F32, 0);
    bb_tensor(&b, "x", 1, ne32, GGML_TYPE_F32, 128);
    bb_pad(&b, 32);
    for (int i = 0; i < 256; i++) bb_u8(&b, 0);
    expect_fail(&b, "duplicate tensor name 'x'");
    bb_header(&b, 1, 0); /* name of 200 bytes */
    char longname[201];
    memset(longname, 'n', 200); longname[200] = '\0';
    bb_tensor(&b, longname, 1, ne32, GGML_TYPE_F32, 0);
    bb_pad(&b, 32);
    for (int i = 0; i < 128; i++) bb_u8(&b, 0);
    expect_fail(&b, "longer than");
}

TEST(test_open_errors) {
    gguf_file_t *f;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(gguf_open(&f, "/nonexistent/dir/model.gguf", &err), -1);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, "/nonexistent/dir/model.gguf");
    CHECK_EQ_INT(gguf_open(&f, "/tmp", &err), -1);
    CHECK_CONTAINS(err.msg, "/tmp");
}

static char tmpdir[64];

static void make_tmpdir(void) {
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) tmpdir[0] = '\0';
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* Compares every key (type and encoded bytes) and every tensor of two files. */
static void check_same_file(const gguf_file_t *a, const gguf_file_t *c) {
    CHECK_EQ_INT(gguf_n_kv(a), gguf_n_kv(c));
    CHECK_EQ_INT(gguf_n_tensors(a), gguf_n_tensors(c));
    for (uint64_t i = 0; i < gguf_n_kv(a) && i < gguf_n_kv(c); i++) {
        const gguf_kv_t *x = gguf_kv(a, i), *y = gguf_kv(c, i);
        CHECK(x->key.len == y->key.len && !memcmp(x->key.ptr, y->key.ptr, x->key.len));
        CHECK_EQ_INT(x->value.type, y->value.type);
        if (x->value.type == GGUF_TYPE_ARRAY) {
            CHECK_EQ_INT(x->value.v.arr.elem_type, y->value.v.arr.elem_type);
            CHECK_EQ_INT(x->value.v.arr.n, y->value.v.arr.n);
            CHECK(x->value.v.arr.nbytes == y->value.v.arr.nbytes &&
                  !memcmp(x->value.v.arr.data, y->value.v.arr.data, x->value.v.arr.nbytes));
        } else if (x->value.type == GGUF_TYPE_STRING) {
            CHECK(x->value.v.str.len == y->value.v.str.len &&
                  !memcmp(x->value.v.str.ptr, y->value.v.str.ptr, x->value.v.str.len));
        } else {
            CHECK(x->value.v.u64 == y->value.v.u64);
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(a) && i < gguf_n_tensors(c); i++) {
        const gguf_tensor_t *x = gguf_tensor(a, i), *y = gguf_tensor(c, i);
        CHECK_STR(x->name, y->name);
        CHECK(x->type == y->type && x->n_dims == y->n_dims && !memcmp(x->ne, y->ne, sizeof x->ne));
        CHECK(x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes));
    }
}

static int copy_file(const gguf_file_t *src, const char *path, uint64_t alignment, tl_err_t *err) {
    gguf_writer_t *w = gguf_writer_new();
    int rc = gguf_writer_copy_kv(w, src, err);
    if (!rc && alignment) rc = gguf_writer_set_alignment(w, alignment, err);
    for (uint64_t i = 0; i < gguf_n_tensors(src) && !rc; i++) {
        const gguf_tensor_t *t = gguf_tensor(src, i);
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes, err);
    }
    if (!rc) rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    return rc;
}

TEST(test_round_trip_sample) {
    make_tmpdir();
    static bb_t b;
    build_sample(&b);
    gguf_file_t *a, *c;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(gguf_open_buffer(&a, b.b, b.n, "sample", &err), 0);
    if (!a) return;
    char path[128];
    snprintf(path, sizeof path, "%s/copy.gguf", tmpdir);
    CHECK_EQ_INT(copy_file(a, path, 0, &err), 0);
    CHECK_EQ_INT(count_dir_entries(tmpdir), 1); /* no temporary left behind */
    CHECK_EQ_INT(gguf_open(&c, path, &err), 0);
    if (c) {
        check_same_file(a, c);
        CHECK_EQ_INT(gguf_file_size(c), b.n); /* same layout, byte for byte */
        FILE *fp = fopen(path, "rb");
        static uint8_t back[8192];
        size_t got = fp ? fread(back, 1, sizeof back, fp) : 0;
        if (fp) fclose(fp);
        CHECK(got == b.n && memcmp(back, b.b, b.n) == 0);
        gguf_close(c);
    }
    /* wider alignment: key added, data offset and tensor offsets follow it */
    CHECK_EQ_INT(copy_file(a, path, 64, &err), 0);
    CHECK_EQ_INT(gguf_open(&c, path, &err), 0);
    if (c) {
        CHECK_EQ_INT(gguf_alignment(c), 64);
        CHECK_EQ_INT(gguf_data_offset(c) % 64, 0);
        CHECK_EQ_INT(gguf_find_tensor(c, "b.weight")->offset, 64);
        CHECK_EQ_INT(gguf_n_kv(c), N_SAMPLE_KV + 1);
        gguf_close(c);
    }
    gguf_close(a);
    unlink(path);
}

TEST(test_writer_values) {
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/built.gguf", tmpdir);
    tl_err_t err = {{0}};
    gguf_writer_t *w = gguf_writer_new();
    char s0[] = "alpha", s1[] = "be";
    gguf_value_t strs[2] = {{.type = GGUF_TYPE_STRING, .v.str = {s0, 5}},
                            {.type = GGUF_TYPE_STRING, .v.str = {s1, 2}}};
    gguf_value_t sarr = {.type = GGUF_TYPE_ARRAY, .v.arr = {.elem_type = GGUF_TYPE_STRING, .n = 2, .elems = strs}};
    int32_t ints[3] = {1, -2, 3};
    gguf_value_t iarr = {.type = GGUF_TYPE_ARRAY,
                         .v.arr = {.elem_type = GGUF_TYPE_INT32, .n = 3, .data = (const uint8_t *)ints, .nbytes = 12}};
    gguf_value_t outer_elems[2] = {iarr, sarr};
    gguf_value_t nested = {.type = GGUF_TYPE_ARRAY,
                           .v.arr = {.elem_type = GGUF_TYPE_ARRAY, .n = 2, .elems = outer_elems}};
    CHECK_EQ_INT(gguf_writer_set(w, "s.arr", &sarr, &err), 0);
    CHECK_EQ_INT(gguf_writer_set(w, "n.arr", &nested, &err), 0);
    s0[0] = 'X'; ints[0] = 99; /* deep copy: later changes do not leak in */
    CHECK_EQ_INT(gguf_writer_set_u32(w, "u", 5, &err), 0);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "u", 6, &err), 0); /* replaces */
    CHECK_EQ_INT(gguf_writer_set_str(w, "gone", "x", &err), 0);
    CHECK_EQ_INT(gguf_writer_remove(w, "gone"), 0);
    CHECK_EQ_INT(gguf_writer_remove(w, "gone"), -1);
    CHECK_EQ_INT(gguf_writer_set_f32(w, "f", 0.125f, &err), 0);
    CHECK_EQ_INT(gguf_writer_set_bool(w, "b", true, &err), 0);
    gguf_value_t bad = {.type = GGUF_TYPE_ARRAY, .v.arr = {.elem_type = GGUF_TYPE_STRING, .n = 2, .elems = outer_elems}};
    CHECK_EQ_INT(gguf_writer_set(w, "bad.arr", &bad, &err), -1);
    CHECK_CONTAINS(err.msg, "bad.arr");
    CHECK_EQ_INT(gguf_writer_set_alignment(w, 24, &err), -1);
    float data[64];
    for (int i = 0; i < 64; i++) data[i] = (float)i;
    int64_t ne[2] = {16, 4};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne, data, 256, &err), 0);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne, data, 256, &err), -1);
    CHECK_CONTAINS(err.msg, "duplicate tensor name 't'");
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t2", GGML_TYPE_F32, 2, ne, data, 255, &err), -1);
    CHECK_CONTAINS(err.msg, "t2");
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t3", GGML_TYPE_Q8_0, 2, ne, data, 256, &err), -1);
    CHECK_CONTAINS(err.msg, "t3");
    CHECK_EQ_INT(gguf_writer_write(w, path, &err), 0);
    gguf_writer_free(w);
    gguf_file_t *f;
    CHECK_EQ_INT(gguf_open(&f, path, &err), 0);
    if (!f) { printf("  %s\n", err.msg); tl_test_cur_failed = 1; return; }
    CHECK_EQ_INT(gguf_n_kv(f), 5);
    CHECK_STR(gguf_kv(f, 0)->key.ptr[0] == 's' ? "s" : "?", "s"); /* insertion order kept */
    CHECK_EQ_INT(gguf_get_u32_or(f, "u", 0), 6);
    CHECK(gguf_get_f32_or(f, "f", 0) == 0.125f);
    CHECK(gguf_get_bool_or(f, "b", false));
    CHECK(gguf_find_kv(f, "gone") == NULL);
    const gguf_value_t *arr;
    gguf_value_t e, inner;
    CHECK_EQ_INT(gguf_get_arr(f, "s.arr", &arr, &err), 0);
    CHECK_EQ_INT(gguf_value_elem(arr, 0, &e), 0);
    CHECK(e.v.str.len == 5 && !memcmp(e.v.str.ptr, "alpha", 5));
    CHECK_EQ_INT(gguf_get_arr(f, "n.arr", &arr, &err), 0);
    CHECK_EQ_INT(gguf_value_elem(arr, 0, &inner), 0);
    CHECK_EQ_INT(gguf_value_elem(&inner, 0, &e), 0); CHECK_EQ_INT(e.v.i64, 1);
    CHECK_EQ_INT(gguf_value_elem(arr, 1, &inner), 0);
    CHECK_EQ_INT(gguf_value_elem(&inner, 1, &e), 0);
    CHECK(e.v.str.len == 2 && !memcmp(e.v.str.ptr, "be", 2));
    const gguf_tensor_t *t = gguf_find_tensor(f, "t");
    CHECK(t && t->nbytes == 256 && !memcmp(t->data, data, 256));
    gguf_close(f);
    unlink(path);
    /* unwritable target: error names it, nothing left behind */
    w = gguf_writer_new();
    CHECK_EQ_INT(gguf_writer_write(w, "/nonexistent/dir/out.gguf", &err), -1);
    CHECK_CONTAINS(err.msg, "/nonexistent/dir/out.gguf");
    gguf_writer_free(w);
}

TEST(test_atomic_file) {
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/a.txt", tmpdir);
    tl_err_t err = {{0}};
    CHECK_EQ_INT(atomic_file_write_all(path, "old", 3, &err), 0);
    atomic_file_t af;
    CHECK_EQ_INT(atomic_file_open(&af, path, &err), 0);
    CHECK_EQ_INT(atomic_file_write(&af, "new!", 4, &err), 0);
    FILE *fp = fopen(path, "rb"); /* before commit the old content is still there */
    char buf[8] = {0};
    CHECK(fp && fread(buf, 1, 8, fp) == 3 && !memcmp(buf, "old", 3));
    if (fp) fclose(fp);
    CHECK_EQ_INT(count_dir_entries(tmpdir), 2);
    CHECK_EQ_INT(atomic_file_commit(&af, &err), 0);
    fp = fopen(path, "rb");
    memset(buf, 0, sizeof buf);
    CHECK(fp && fread(buf, 1, 8, fp) == 4 && !memcmp(buf, "new!", 4));
    if (fp) fclose(fp);
    CHECK_EQ_INT(count_dir_entries(tmpdir), 1);
    CHECK_EQ_INT(atomic_file_open(&af, path, &err), 0);
    atomic_file_abort(&af);
    CHECK_EQ_INT(count_dir_entries(tmpdir), 1);
    unlink(path);
}

int main(void) {
    RUN(test_sample_values);
    RUN(test_every_truncation_fails);
    RUN(test_bit_flips_never_crash);
    RUN(test_hostile_headers);
    RUN(test_hostile_tensors);
    RUN(test_open_errors);
    RUN(test_round_trip_sample);
    RUN(test_writer_values);
    RUN(test_atomic_file);
    if (tmpdir[0]) rmdir(tmpdir);
    return tl_test_summary("test_gguf");
}

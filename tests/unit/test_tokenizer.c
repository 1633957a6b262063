/* Tokenizer unit tests on tiny synthetic vocabularies written as GGUF files:
 * merge priority, byte fallback, special-token splitting, empty input,
 * decoding and invalid ids, and load errors naming the offending key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf.h"
#include "tl_test.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *text;
    int type;    /* GGUF token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
    float score;
} tok_def_t;

typedef struct {
    const char *model;          /* tokenizer.ggml.model, or NULL to leave it out */
    const char *pre;            /* tokenizer.ggml.pre, or NULL */
    const tok_def_t *toks;
    size_t n_toks;
    const char *const *merges; /* NULL-terminated, or NULL for no merges key */
    int n_types;                /* how many token types to write (-1: all) */
    int bos;                    /* -1: key left out */
} vocab_spec_t;

static char tmp_path[64];

static int set_str_array(gguf_writer_t *w, const char *key, const char *const *s, size_t n, tl_err_t *err) {
    gguf_value_t *el = calloc(n ? n : 1, sizeof *el);
    for (size_t i = 0; i < n; i++) {
        el[i].type = GGUF_TYPE_STRING;
        el[i].v.str.ptr = s[i];
        el[i].v.str.len = strlen(s[i]);
    }
    gguf_value_t v = {.type = GGUF_TYPE_ARRAY};
    v.v.arr.elem_type = GGUF_TYPE_STRING;
    v.v.arr.n = n;
    v.v.arr.elems = el;
    int rc = gguf_writer_set(w, key, &v, err);
    free(el);
    return rc;
}

static int set_raw_array(gguf_writer_t *w, const char *key, uint32_t et, const void *data, size_t n, tl_err_t *err) {
    gguf_value_t v = {.type = GGUF_TYPE_ARRAY};
    v.v.arr.elem_type = et;
    v.v.arr.n = n;
    v.v.arr.data = data;
    v.v.arr.nbytes = n * 4;
    return gguf_writer_set(w, key, &v, err);
}

/* Writes the vocabulary to a temporary GGUF file and opens it. */
static gguf_file_t *make_vocab(const vocab_spec_t *spec) {
    tl_err_t err;
    gguf_writer_t *w = gguf_writer_new();
    const char **texts = calloc(spec->n_toks, sizeof *texts);
    int32_t *types = calloc(spec->n_toks, sizeof *types);
    float *scores = calloc(spec->n_toks, sizeof *scores);
    for (size_t i = 0; i < spec->n_toks; i++) {
        texts[i] = spec->toks[i].text;
        types[i] = spec->toks[i].type;
        scores[i] = spec->toks[i].score;
    }
    int rc = gguf_writer_set_str(w, "general.architecture", "llama", &err);
    if (spec->model) rc |= gguf_writer_set_str(w, "tokenizer.ggml.model", spec->model, &err);
    if (spec->pre) rc |= gguf_writer_set_str(w, "tokenizer.ggml.pre", spec->pre, &err);
    rc |= set_str_array(w, "tokenizer.ggml.tokens", texts, spec->n_toks, &err);
    rc |= set_raw_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types,
                        spec->n_types < 0 ? spec->n_toks : (size_t)spec->n_types, &err);
    rc |= set_raw_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, spec->n_toks, &err);
    if (spec->merges) {
        size_t n = 0;
        while (spec->merges[n]) n++;
        rc |= set_str_array(w, "tokenizer.ggml.merges", spec->merges, n, &err);
    }
    if (spec->bos >= 0) rc |= gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)spec->bos, &err);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/tl_test_tok_%d.gguf", (int)getpid());
    rc |= gguf_writer_write(w, tmp_path, &err);
    gguf_writer_free(w);
    free(texts);
    free(types);
    free(scores);
    if (rc) {
        printf("  cannot write test vocabulary: %s\n", err.msg);
        return NULL;
    }
    gguf_file_t *f = NULL;
    if (gguf_open(&f, tmp_path, &err) != 0) printf("  cannot open test vocabulary: %s\n", err.msg);
    unlink(tmp_path); /* the mapping stays valid */
    return f;
}

/* Byte-level vocabulary. "Ġ" is the byte-level form of a space. */
static const tok_def_t bpe_toks[] = {
    {"<|endoftext|>", 3, 0}, /* 0 */
    {"<|im_start|>", 3, 0},  /* 1 */
    {"<user>", 4, 0},        /* 2 */
    {"<us", 4, 0},           /* 3: shorter user-defined token overlapping <user> */
    {"a", 1, 0},             /* 4 */
    {"b", 1, 0},             /* 5 */
    {"c", 1, 0},             /* 6 */
    {"\xc4\xa0", 1, 0},      /* 7: "Ġ" */
    {"ab", 1, 0},            /* 8 */
    {"bc", 1, 0},            /* 9 */
    {"abc", 1, 0},           /* 10 */
    {"\xc4\xa0" "a", 1, 0},  /* 11: "Ġa" */
    {"<", 1, 0},             /* 12 */
    {"|", 1, 0},             /* 13 */
    {"1", 1, 0},             /* 14 */
    {"2", 1, 0},             /* 15 */
};
#define N_BPE (sizeof bpe_toks / sizeof bpe_toks[0])

static tokenizer_t *load_bpe(const char *const *merges, gguf_file_t **fout) {
    vocab_spec_t spec = {"gpt2", "gpt-2", bpe_toks, N_BPE, merges, -1, 1};
    gguf_file_t *f = make_vocab(&spec);
    tokenizer_t *t = NULL;
    tl_err_t err;
    if (f && tokenizer_load(&t, f, &err) != 0) printf("  load failed: %s\n", err.msg);
    *fout = f;
    return t;
}

/* Encodes and compares with the expected ids. */
static int encode_is(const tokenizer_t *t, const char *text, int flags, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    tl_err_t err;
    if (tokenizer_encode(t, text, strlen(text), flags, &ids, &n, &err) != 0) {
        printf("  encode '%s' failed: %s\n", text, err.msg);
        return 0;
    }
    int ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        printf("  encode '%s': got [", text);
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("], want [");
        for (size_t i = 0; i < n_want; i++) printf(i ? " %d" : "%d", want[i]);
        printf("]\n");
    }
    free(ids);
    return ok;
}
#define ENC(t, text, flags, ...)                                                            \
    do {                                                                                    \
        const int32_t want_[] = {__VA_ARGS__};                                              \
        CHECK(encode_is(t, text, flags, want_, sizeof want_ / sizeof want_[0]));           \
    } while (0)
#define ENC_NONE(t, text, flags) CHECK(encode_is(t, text, flags, NULL, 0))

TEST(merge_priority_lowest_rank_first) {
    gguf_file_t *f;
    /* "a b" ranks first: ab + c (no "ab c" merge). */
    static const char *const m1[] = {"a b", "b c", NULL};
    tokenizer_t *t = load_bpe(m1, &f);
    CHECK(t != NULL);
    if (t) ENC(t, "abc", 0, 8, 6);
    tokenizer_free(t);
    gguf_close(f);
    /* "b c" ranks first: a + bc, then "a bc" makes abc. */
    static const char *const m2[] = {"b c", "a b", "a bc", NULL};
    t = load_bpe(m2, &f);
    CHECK(t != NULL);
    if (t) ENC(t, "abc", 0, 10);
    tokenizer_free(t);
    gguf_close(f);
    /* Same merges without "a bc": stays a + bc. */
    static const char *const m3[] = {"b c", "a b", NULL};
    t = load_bpe(m3, &f);
    if (t) ENC(t, "abc", 0, 4, 9);
    tokenizer_free(t);
    gguf_close(f);
}

TEST(pretokenizer_words_and_space_marker) {
    gguf_file_t *f;
    static const char *const m[] = {"a b", "\xc4\xa0 a", NULL};
    tokenizer_t *t = load_bpe(m, &f);
    CHECK(t != NULL);
    if (t) {
        /* Words are merged separately; in " ab" the pair "a b" (rank 0) wins
         * over "Ġ a" (rank 1), leaving Ġ + ab. */
        ENC(t, "ab ab", 0, 8, 7, 8);
        ENC(t, " a", 0, 11);
        /* Digits are words of their own under the gpt-2 regex, spaces before them too. */
        ENC(t, "a 12", 0, 4, 7, 14, 15);
        ENC(t, "  a", 0, 7, 11); /* "\s+(?!\S)" keeps one space for the word */
        CHECK_STR(tokenizer_model_name(t), "gpt2");
        CHECK_EQ_INT(tokenizer_n_vocab(t), (int)N_BPE);
    }
    tokenizer_free(t);
    gguf_close(f);
}

TEST(special_tokens_split_first) {
    gguf_file_t *f;
    static const char *const m[] = {"a b", NULL};
    tokenizer_t *t = load_bpe(m, &f);
    CHECK(t != NULL);
    if (t) {
        /* Control tokens only with TOK_PARSE_SPECIAL; otherwise their text is
         * ordinary text ('<', '|' and the 'a' of "start" are tokens; the other
         * characters are not and vanish, as in llama.cpp). */
        ENC(t, "a<|im_start|>b", TOK_PARSE_SPECIAL, 4, 1, 5);
        ENC(t, "a<|im_start|>b", 0, 4, 12, 13, 4, 13, 5);
        /* User-defined tokens are split out even without TOK_PARSE_SPECIAL, longest first. */
        ENC(t, "a<user>b", 0, 4, 2, 5);
        ENC(t, "<us<user>", 0, 3, 2);
        ENC(t, "<|endoftext|><|endoftext|>", TOK_PARSE_SPECIAL, 0, 0);
        /* BOS from metadata. */
        CHECK_EQ_INT(tokenizer_bos(t), 1);
        ENC(t, "ab", TOK_ADD_BOS, 1, 8);
    }
    tokenizer_free(t);
    gguf_close(f);
}

TEST(empty_input) {
    gguf_file_t *f;
    static const char *const m[] = {"a b", NULL};
    tokenizer_t *t = load_bpe(m, &f);
    if (t) {
        ENC_NONE(t, "", 0);
        ENC_NONE(t, "", TOK_PARSE_SPECIAL);
        ENC(t, "", TOK_ADD_BOS, 1);
        char *s = NULL;
        size_t len = 99;
        tl_err_t err;
        CHECK(tokenizer_decode(t, NULL, 0, &s, &len, &err) == 0);
        CHECK_STR(s, "");
        CHECK_EQ_INT(len, 0);
        free(s);
    }
    tokenizer_free(t);
    gguf_close(f);
}

TEST(decode_and_invalid_ids) {
    gguf_file_t *f;
    static const char *const m[] = {"a b", NULL};
    tokenizer_t *t = load_bpe(m, &f);
    if (t) {
        const int32_t ids[] = {1, 8, 11, 2};
        char *s = NULL;
        size_t len = 0;
        tl_err_t err;
        CHECK(tokenizer_decode(t, ids, 4, &s, &len, &err) == 0);
        CHECK_STR(s, "<|im_start|>ab a<user>");
        CHECK_EQ_INT(len, strlen("<|im_start|>ab a<user>"));
        free(s);
        char buf[8];
        CHECK_EQ_INT(tokenizer_token_to_bytes(t, 7, buf, sizeof buf), 1);
        CHECK(buf[0] == ' ');
        CHECK_EQ_INT(tokenizer_token_to_bytes(t, 0, buf, 4), 13); /* needed size when too small */
        CHECK_EQ_INT(tokenizer_token_to_bytes(t, -1, buf, sizeof buf), -1);
        CHECK_EQ_INT(tokenizer_token_to_bytes(t, (int32_t)N_BPE, buf, sizeof buf), -1);
        const int32_t bad[] = {4, 999};
        s = (char *)1;
        CHECK(tokenizer_decode(t, bad, 2, &s, &len, &err) == -1);
        CHECK(s == NULL);
        CHECK_CONTAINS(err.msg, "token id 999 at position 1");
        CHECK(tokenizer_piece(t, -5, NULL) == NULL);
        size_t pl = 0;
        CHECK_STR(tokenizer_piece(t, 11, &pl), "\xc4\xa0" "a");
        CHECK_EQ_INT(pl, 3);
        CHECK(tokenizer_is_eog(t, 0));  /* <|endoftext|> ends generation */
        CHECK(!tokenizer_is_eog(t, 4));
    }
    tokenizer_free(t);
    gguf_close(f);
}

/* SentencePiece vocabulary: scores decide merges; unknown pieces fall back to bytes. */
#define SPM_BASE 3
static tok_def_t spm_toks[SPM_BASE + 256 + 6];
static char spm_hex[256][8];

static tokenizer_t *load_spm(gguf_file_t **fout) {
    spm_toks[0] = (tok_def_t){"<unk>", 2, 0};
    spm_toks[1] = (tok_def_t){"<s>", 3, 0};
    spm_toks[2] = (tok_def_t){"</s>", 3, 0};
    for (int b = 0; b < 256; b++) {
        snprintf(spm_hex[b], sizeof spm_hex[b], "<0x%02X>", b);
        spm_toks[SPM_BASE + b] = (tok_def_t){spm_hex[b], 6, 0};
    }
    int k = SPM_BASE + 256;
    spm_toks[k++] = (tok_def_t){"\xe2\x96\x81", 1, -1.0f};         /* 259 ▁ */
    spm_toks[k++] = (tok_def_t){"a", 1, -2.0f};                    /* 260 */
    spm_toks[k++] = (tok_def_t){"b", 1, -2.0f};                    /* 261 */
    spm_toks[k++] = (tok_def_t){"\xe2\x96\x81" "a", 1, -5.0f};     /* 262 ▁a */
    spm_toks[k++] = (tok_def_t){"ab", 1, -3.0f};                   /* 263 */
    spm_toks[k++] = (tok_def_t){"\xe2\x96\x81" "ab", 1, -4.0f};    /* 264 ▁ab */
    vocab_spec_t spec = {"llama", NULL, spm_toks, (size_t)k, NULL, -1, -1};
    gguf_file_t *f = make_vocab(&spec);
    tokenizer_t *t = NULL;
    tl_err_t err;
    if (f && tokenizer_load(&t, f, &err) != 0) printf("  load failed: %s\n", err.msg);
    *fout = f;
    return t;
}

TEST(spm_scores_and_byte_fallback) {
    gguf_file_t *f;
    tokenizer_t *t = load_spm(&f);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_STR(tokenizer_model_name(t), "llama");
    CHECK_EQ_INT(tokenizer_bos(t), 1); /* the SentencePiece default */
    CHECK(tokenizer_wants_bos(t));
    /* "▁ab": "ab" (-3) beats "▁a" (-5), then "▁"+"ab" -> "▁ab". */
    ENC(t, "ab", 0, 264);
    /* "▁ba": no pair merges except none -> ▁, b, a. */
    ENC(t, "ba", 0, 259, 261, 260);
    /* Characters outside the vocabulary become their UTF-8 bytes. */
    ENC(t, "z\xc3\xa9", 0, 259, SPM_BASE + 'z', SPM_BASE + 0xC3, SPM_BASE + 0xA9);
    /* The space prefix is added again after a special token. */
    ENC(t, "<s>ab", TOK_PARSE_SPECIAL | TOK_ADD_BOS, 1, 1, 264);
    ENC(t, "a b", 0, 262, 259, 261);
    const int32_t ids[] = {264, 259, SPM_BASE + 0xC3, SPM_BASE + 0xA9};
    char *s = NULL;
    tl_err_t err;
    CHECK(tokenizer_decode(t, ids, 4, &s, NULL, &err) == 0);
    CHECK_STR(s, "ab \xc3\xa9"); /* the leading space added at encoding is dropped */
    free(s);
    tokenizer_free(t);
    gguf_close(f);
}

static void expect_load_error(const vocab_spec_t *spec, const char *needle) {
    gguf_file_t *f = make_vocab(spec);
    CHECK(f != NULL);
    if (!f) return;
    tokenizer_t *t = (tokenizer_t *)1;
    tl_err_t err = {{0}};
    CHECK(tokenizer_load(&t, f, &err) == -1);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, needle);
    gguf_close(f);
}

TEST(load_errors_name_the_key) {
    static const char *const m[] = {"a b", NULL};
    vocab_spec_t s1 = {NULL, "gpt-2", bpe_toks, N_BPE, m, -1, -1};
    expect_load_error(&s1, "tokenizer.ggml.model");
    vocab_spec_t s2 = {"bert", NULL, bpe_toks, N_BPE, m, -1, -1};
    expect_load_error(&s2, "unsupported tokenizer model 'bert'");
    vocab_spec_t s3 = {"gpt2", "no-such-pre", bpe_toks, N_BPE, m, -1, -1};
    expect_load_error(&s3, "no-such-pre");
    vocab_spec_t s4 = {"gpt2", "gpt-2", bpe_toks, N_BPE, NULL, -1, -1};
    expect_load_error(&s4, "tokenizer.ggml.merges");
    vocab_spec_t s5 = {"gpt2", "gpt-2", bpe_toks, N_BPE, m, 3, -1};
    expect_load_error(&s5, "tokenizer.ggml.token_type");
}

TEST(utf8_check) {
    CHECK_EQ_INT(tokenizer_utf8_check("abc", 3), 3);
    CHECK_EQ_INT(tokenizer_utf8_check("a\xc3\xa9z", 4), 4);
    CHECK_EQ_INT(tokenizer_utf8_check("ab\xff", 3), 2);
    CHECK_EQ_INT(tokenizer_utf8_check("a\xc0\x80", 3), 1);          /* overlong */
    CHECK_EQ_INT(tokenizer_utf8_check("\xed\xa0\x80", 3), 0);       /* surrogate */
    CHECK_EQ_INT(tokenizer_utf8_check("x\xf0\x9f\x98", 4), 1);      /* truncated */
    CHECK_EQ_INT(tokenizer_utf8_check("\xf0\x9f\x98\x80", 4), 4);   /* emoji */
}

TEST(long_input_is_not_quadratic) {
    gguf_file_t *f;
    static const char *const m[] = {"a b", NULL};
    tokenizer_t *t = load_bpe(m, &f);
    if (t) {
        /* One 200,000-byte word: the merge queue keeps this fast. */
        size_t n = 200000;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++) s[i] = i % 2 ? 'b' : 'a';
        s[n] = 0;
        int32_t *ids = NULL;
        size_t nid = 0;
        tl_err_t err;
        CHECK(tokenizer_encode(t, s, n, 0, &ids, &nid, &err) == 0);
        CHECK_EQ_INT(nid, n / 2);
        CHECK(nid > 0 && ids[0] == 8);
        free(ids);
        free(s);
    }
    tokenizer_free(t);
    gguf_close(f);
}

int main(void) {
    RUN(merge_priority_lowest_rank_first);
    RUN(pretokenizer_words_and_space_marker);
    RUN(special_tokens_split_first);
    RUN(empty_input);
    RUN(decode_and_invalid_ids);
    RUN(spm_scores_and_byte_fallback);
    RUN(load_errors_name_the_key);
    RUN(utf8_check);
    RUN(long_input_is_not_quadratic);
    return tl_test_summary("test_tokenizer");
}

/* Tokenizer: vocabulary loading from GGUF metadata, special-token splitting,
 * dispatch to byte-level or SentencePiece-style BPE, and decoding. The
 * behaviour follows llama.cpp's (token types, default special ids, which
 * tokens are split out of the text first, BOS rules). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* token_type values in GGUF */
enum { TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static uint8_t attr_from_type(int64_t tt) {
    switch (tt) {
    case TT_NORMAL: return TOK_ATTR_NORMAL;
    case TT_UNKNOWN: return TOK_ATTR_UNKNOWN;
    case TT_CONTROL: return TOK_ATTR_CONTROL;
    case TT_USER_DEFINED: return TOK_ATTR_USER_DEFINED;
    case TT_UNUSED: return TOK_ATTR_UNUSED;
    case TT_BYTE: return TOK_ATTR_BYTE;
    default: return TOK_ATTR_UNDEFINED;
    }
}

static bool str_eq(const char *s, size_t n, const char *lit) { return strlen(lit) == n && memcmp(s, lit, n) == 0; }

/* Texts that llama.cpp treats as end-of-turn / end-of-generation markers. */
static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
                                        "<end_of_utterance>", NULL};
static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                        "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                        NULL};

static bool text_in(const char *s, size_t n, const char *const *list) {
    for (size_t i = 0; list[i]; i++)
        if (str_eq(s, n, list[i])) return true;
    return false;
}

static int eog_add(tokenizer_t *t, int32_t id) {
    if (id < 0) return 0;
    for (int32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 0;
    int32_t *e = realloc(t->eog, (size_t)(t->n_eog + 1) * sizeof *e);
    if (!e) return -1;
    t->eog = e;
    t->eog[t->n_eog++] = id;
    return 0;
}

/* Reads an optional special-token id; an id outside the vocabulary keeps the default. */
static void read_special_id(const gguf_file_t *f, const char *key, int32_t n_vocab, int32_t *id) {
    if (*id >= n_vocab) *id = -1;
    if (!gguf_find_kv(f, key)) return;
    uint32_t v;
    if (gguf_get_u32(f, key, &v, NULL) == 0 && v < (uint32_t)n_vocab) *id = (int32_t)v;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tokenizer_t *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int load_arrays(tokenizer_t *t, const gguf_file_t *f, tl_err_t *err) {
    const char *path = gguf_path(f);
    const gguf_value_t *toks;
    if (gguf_get_arr(f, KEY_TOKENS, &toks, err) != 0) return -1;
    if (toks->v.arr.elem_type != GGUF_TYPE_STRING)
        return tl_fail(err, "%s: %s: expected an array of strings", path, KEY_TOKENS);
    if (toks->v.arr.n == 0 || toks->v.arr.n > INT32_MAX / 2)
        return tl_fail(err, "%s: %s: bad vocabulary size %llu", path, KEY_TOKENS, (unsigned long long)toks->v.arr.n);
    int32_t n = (int32_t)toks->v.arr.n;
    t->n_vocab = n;

    const gguf_value_t *scores = NULL, *types = NULL, *merges = NULL;
    if (gguf_find_kv(f, KEY_SCORES)) {
        if (gguf_get_arr(f, KEY_SCORES, &scores, err) != 0) return -1;
        uint32_t et = scores->v.arr.elem_type;
        if (et != GGUF_TYPE_FLOAT32 && et != GGUF_TYPE_INT32)
            return tl_fail(err, "%s: %s: expected float32 or int32 elements", path, KEY_SCORES);
        if (scores->v.arr.n < (uint64_t)n)
            return tl_fail(err, "%s: %s: %llu scores for %d tokens", path, KEY_SCORES,
                           (unsigned long long)scores->v.arr.n, n);
    }
    if (gguf_find_kv(f, KEY_TYPES)) {
        if (gguf_get_arr(f, KEY_TYPES, &types, err) != 0) return -1;
        if (types->v.arr.elem_type != GGUF_TYPE_INT32)
            return tl_fail(err, "%s: %s: expected int32 elements", path, KEY_TYPES);
        if (types->v.arr.n < (uint64_t)n)
            return tl_fail(err, "%s: %s: %llu types for %d tokens", path, KEY_TYPES,
                           (unsigned long long)types->v.arr.n, n);
    }
    if (t->kind == TOK_KIND_BPE) {
        if (gguf_get_arr(f, KEY_MERGES, &merges, err) != 0) return -1;
        if (merges->v.arr.elem_type != GGUF_TYPE_STRING)
            return tl_fail(err, "%s: %s: expected an array of strings", path, KEY_MERGES);
        if (merges->v.arr.n > INT32_MAX)
            return tl_fail(err, "%s: %s: too many merges", path, KEY_MERGES);
    }

    /* One arena for token texts (NUL-terminated) and merge keys. */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += toks->v.arr.elems[i].v.str.len + 24;
    if (merges)
        for (uint64_t i = 0; i < merges->v.arr.n; i++) total += merges->v.arr.elems[i].v.str.len;
    t->arena = malloc(total + 1);
    t->text = malloc((size_t)n * sizeof *t->text);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->score = calloc((size_t)n, sizeof *t->score);
    t->attr = malloc((size_t)n);
    if (!t->arena || !t->text || !t->text_len || !t->score || !t->attr ||
        hashmap_init(&t->tok_to_id, (size_t)n) != 0)
        return tl_fail(err, "%s: out of memory loading the vocabulary", path);

    char *p = t->arena;
    for (int32_t i = 0; i < n; i++) {
        gguf_str_t s = toks->v.arr.elems[i].v.str;
        t->text[i] = p;
        if (s.len == 0) {
            p += sprintf(p, "[EMPTY_%d]", (int)i) + 1;
        } else {
            memcpy(p, s.ptr, s.len);
            p[s.len] = 0;
            p += s.len + 1;
        }
        t->text_len[i] = s.len ? (uint32_t)s.len : (uint32_t)strlen(t->text[i]);
        if (hashmap_put(&t->tok_to_id, t->text[i], t->text_len[i], i, true) != 0)
            return tl_fail(err, "%s: out of memory loading the vocabulary", path);
        gguf_value_t v;
        if (scores && gguf_value_elem(scores, (uint64_t)i, &v) == 0)
            t->score[i] = v.type == GGUF_TYPE_FLOAT32 ? (float)v.v.f64 : (float)v.v.i64;
        t->attr[i] = TOK_ATTR_NORMAL;
        if (types && gguf_value_elem(types, (uint64_t)i, &v) == 0) t->attr[i] = attr_from_type(v.v.i64);
    }
    if (merges) {
        if (hashmap_init(&t->merge_rank, (size_t)merges->v.arr.n) != 0)
            return tl_fail(err, "%s: out of memory loading the merges", path);
        for (uint64_t i = 0; i < merges->v.arr.n; i++) {
            gguf_str_t s = merges->v.arr.elems[i].v.str;
            /* "left right", split at the first space after the first byte. */
            if (s.len < 2 || !memchr(s.ptr + 1, ' ', s.len - 1)) continue;
            memcpy(p, s.ptr, s.len);
            if (hashmap_put(&t->merge_rank, p, s.len, (int32_t)i, false) != 0)
                return tl_fail(err, "%s: out of memory loading the merges", path);
            p += s.len;
        }
    }
    return 0;
}

static int finish_specials(tokenizer_t *t, const gguf_file_t *f, tl_err_t *err) {
    int32_t n = t->n_vocab;
    read_special_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos);
    read_special_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos);
    read_special_id(f, "tokenizer.ggml.eot_token_id", n, &t->eot);
    read_special_id(f, "tokenizer.ggml.eom_token_id", n, &t->eom);
    read_special_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk);
    if (gguf_find_kv(f, "tokenizer.ggml.add_bos_token")) t->add_bos = gguf_get_bool_or(f, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (gguf_find_kv(f, "tokenizer.ggml.add_eos_token")) t->add_eos = gguf_get_bool_or(f, "tokenizer.ggml.add_eos_token", t->add_eos);

    /* Texts that mark the end of a turn are control tokens whatever their type says. */
    for (int32_t i = 0; i < n; i++) {
        const char *s = t->text[i];
        size_t len = t->text_len[i];
        if (t->eot < 0 && text_in(s, len, eot_texts)) {
            t->eot = i;
            t->attr[i] |= TOK_ATTR_CONTROL;
        }
        if (t->eom < 0 && str_eq(s, len, "<|eom_id|>")) {
            t->eom = i;
            t->attr[i] |= TOK_ATTR_CONTROL;
        }
        if (text_in(s, len, eog_texts)) {
            if (eog_add(t, i) != 0) return tl_fail(err, "out of memory");
            t->attr[i] |= TOK_ATTR_CONTROL;
        }
    }
    if (eog_add(t, t->eos) != 0 || eog_add(t, t->eot) != 0 || eog_add(t, t->eom) != 0)
        return tl_fail(err, "out of memory");

    /* Models named phi-3 strip the whitespace to the right of special tokens. */
    const gguf_kv_t *name = gguf_find_kv(f, "general.name");
    if (name && name->value.type == GGUF_TYPE_STRING) {
        char lower[256];
        size_t ln = name->value.v.str.len < sizeof lower - 1 ? name->value.v.str.len : sizeof lower - 1;
        for (size_t i = 0; i < ln; i++) lower[i] = (char)tolower((unsigned char)name->value.v.str.ptr[i]);
        lower[ln] = 0;
        if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
            for (int32_t i = 0; i < n; i++) {
                const char *s = t->text[i];
                size_t len = t->text_len[i];
                if ((t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) || str_eq(s, len, "</s>"))
                    t->attr[i] |= TOK_ATTR_RSTRIP;
                if (str_eq(s, len, "<unk>") || str_eq(s, len, "<s>") || str_eq(s, len, "<|endoftext|>"))
                    t->attr[i] &= (uint8_t)~TOK_ATTR_RSTRIP;
            }
        }
    }

    int32_t count = 0;
    for (int32_t i = 0; i < n; i++)
        if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) count++;
    t->special = malloc((size_t)(count ? count : 1) * sizeof *t->special);
    if (!t->special) return tl_fail(err, "out of memory");
    for (int32_t i = 0; i < n; i++)
        if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) t->special[t->n_special++] = i;
    qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);

    for (int b = 0; b < 256; b++) {
        t->byte_token[b] = -1;
        if (t->kind != TOK_KIND_SPM) continue;
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = hashmap_get(&t->tok_to_id, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = hashmap_get(&t->tok_to_id, &c, 1);
        }
        t->byte_token[b] = id;
    }
    return 0;
}

int tokenizer_load(tokenizer_t **out, const gguf_file_t *f, tl_err_t *err) {
    *out = NULL;
    const char *path = gguf_path(f);
    gguf_str_t model;
    if (gguf_get_str(f, KEY_MODEL, &model, err) != 0) return -1;
    tokenizer_t *t = calloc(1, sizeof *t);
    if (!t) return tl_fail(err, "out of memory");
    t->eot = t->eom = -1;
    if (str_eq(model.ptr, model.len, "gpt2")) {
        t->kind = TOK_KIND_BPE;
        t->bos = t->eos = 11;
        t->unk = -1;
    } else if (str_eq(model.ptr, model.len, "llama")) {
        t->kind = TOK_KIND_SPM;
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        tl_fail(err, "%s: %s: unsupported tokenizer model '%.*s' (supported: gpt2, llama)", path, KEY_MODEL,
                (int)(model.len > 64 ? 64 : model.len), model.ptr);
        free(t);
        return -1;
    }
    snprintf(t->model_name, sizeof t->model_name, "%.*s", (int)model.len, model.ptr);

    if (t->kind == TOK_KIND_BPE) {
        gguf_str_t pre = {"default", 7};
        if (gguf_find_kv(f, KEY_PRE) && gguf_get_str(f, KEY_PRE, &pre, err) != 0) goto fail;
        snprintf(t->pre_name, sizeof t->pre_name, "%.*s", (int)(pre.len < 63 ? pre.len : 63), pre.ptr);
        if (pre.len >= sizeof t->pre_name) {
            tl_fail(err, "%s: %s: unsupported pre-tokenizer '%s...'", path, KEY_PRE, t->pre_name);
            goto fail;
        }
        if (tok_pre_setup(t, t->pre_name, err) != 0) {
            tl_fail_prefix(err, "%s", path);
            goto fail;
        }
    } else {
        snprintf(t->pre_name, sizeof t->pre_name, "default");
    }
    if (gguf_find_kv(f, "tokenizer.ggml.add_space_prefix"))
        t->add_space_prefix = gguf_get_bool_or(f, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);

    if (load_arrays(t, f, err) != 0 || finish_specials(t, f, err) != 0) goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return -1;
}

void tokenizer_free(tokenizer_t *t) {
    if (!t) return;
    for (int i = 0; i < t->n_regex; i++) pcre2_code_free(t->regex[i]);
    hashmap_free(&t->tok_to_id);
    hashmap_free(&t->merge_rank);
    free(t->arena);
    free(t->text);
    free(t->text_len);
    free(t->score);
    free(t->attr);
    free(t->special);
    free(t->eog);
    free(t);
}

int32_t tokenizer_n_vocab(const tokenizer_t *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer_t *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer_t *t) { return t->eos; }
bool tokenizer_wants_bos(const tokenizer_t *t) { return t->add_bos && t->bos >= 0; }
const char *tokenizer_model_name(const tokenizer_t *t) { return t->model_name; }

bool tokenizer_is_eog(const tokenizer_t *t, int32_t id) {
    for (int32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

/* ---- encoding ---- */

typedef struct {
    int32_t id; /* -1: raw text [off, off+len) */
    size_t off, len;
} frag_t;

typedef struct {
    frag_t *v;
    size_t n, cap;
} frags_t;

static int frags_push(frags_t *fs, int32_t id, size_t off, size_t len) {
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 16;
        frag_t *v = realloc(fs->v, cap * sizeof *v);
        if (!v) return -1;
        fs->v = v;
        fs->cap = cap;
    }
    fs->v[fs->n++] = (frag_t){id, off, len};
    return 0;
}

static bool c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Splits each raw fragment around every occurrence of one special token. */
static int split_special(const tokenizer_t *t, int32_t sid, const char *text, frags_t *in, frags_t *out) {
    const char *tok = t->text[sid];
    size_t tl = t->text_len[sid];
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        frag_t fr = in->v[k];
        if (fr.id >= 0 || fr.len < tl) {
            if (frags_push(out, fr.id, fr.off, fr.len) != 0) return -1;
            continue;
        }
        size_t off = fr.off, len = fr.len;
        for (;;) {
            const char *m = len >= tl ? memmem(text + off, len, tok, tl) : NULL;
            if (!m) {
                if (len > 0 && frags_push(out, -1, off, len) != 0) return -1;
                break;
            }
            size_t mpos = (size_t)(m - text);
            size_t left = mpos - off;
            if (t->attr[sid] & TOK_ATTR_LSTRIP)
                while (left > 0 && c_isspace(text[off + left - 1])) left--;
            if (left > 0 && frags_push(out, -1, off, left) != 0) return -1;
            if (frags_push(out, sid, mpos, tl) != 0) return -1;
            size_t roff = mpos + tl, rlen = off + len - roff;
            if (t->attr[sid] & TOK_ATTR_RSTRIP)
                while (rlen > 0 && c_isspace(text[roff])) roff++, rlen--;
            off = roff;
            len = rlen;
            if (len == 0) break;
        }
    }
    return 0;
}

static int encode_raw(const tokenizer_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out,
                      tl_err_t *err) {
    if (t->kind == TOK_KIND_BPE) return tok_bpe_encode_fragment(t, text, len, out, err);
    /* SentencePiece: optional leading space, then spaces become U+2581. */
    size_t n_sp = prefix_space ? 1 : 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    size_t cap = len + 1 + n_sp * 2 + 1;
    char *buf = malloc(cap);
    if (!buf) return tl_fail(err, "out of memory");
    size_t o = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            buf[o++] = text[i];
        }
    }
    int rc = tok_spm_encode_fragment(t, buf, o, out, err);
    free(buf);
    return rc;
}

int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, int flags, int32_t **ids, size_t *n,
                     tl_err_t *err) {
    *ids = NULL;
    *n = 0;
    tok_ids_t out = {0};
    frags_t a = {0}, b = {0};
    int rc = -1;
    if ((flags & TOK_ADD_BOS) && t->bos >= 0 && tok_ids_push(&out, t->bos) != 0) goto oom;
    if (len > 0) {
        if (frags_push(&a, -1, 0, len) != 0) goto oom;
        for (int32_t s = 0; s < t->n_special; s++) {
            int32_t sid = t->special[s];
            if (!(flags & TOK_PARSE_SPECIAL) && (t->attr[sid] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
            if (split_special(t, sid, text, &a, &b) != 0) goto oom;
            frags_t tmp = a;
            a = b;
            b = tmp;
        }
    }
    bool prev_special = true;
    for (size_t k = 0; k < a.n; k++) {
        const frag_t *fr = &a.v[k];
        if (fr->id >= 0) {
            if (tok_ids_push(&out, fr->id) != 0) goto oom;
            prev_special = true;
            continue;
        }
        if (encode_raw(t, text + fr->off, fr->len, t->add_space_prefix && prev_special, &out, err) != 0) goto done;
        prev_special = false;
    }
    if (!out.ids && !(out.ids = malloc(sizeof *out.ids))) goto oom;
    *ids = out.ids;
    *n = out.n;
    out.ids = NULL;
    rc = 0;
    goto done;
oom:
    tl_fail(err, "tokenizer: out of memory");
done:
    free(out.ids);
    free(a.v);
    free(b.v);
    return rc;
}

/* ---- decoding ---- */

const char *tokenizer_piece(const tokenizer_t *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->text_len[id];
    return t->text[id];
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Writes the token's bytes to buf when they fit; always returns the full size. */
static size_t token_bytes(const tokenizer_t *t, int32_t id, char *buf, size_t cap) {
    const char *s = t->text[id];
    size_t len = t->text_len[id], o = 0;
    uint8_t attr = t->attr[id];
#define EMIT(ch)                                  \
    do {                                          \
        if (o < cap) buf[o] = (char)(ch);         \
        o++;                                      \
    } while (0)
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        for (size_t i = 0; i < len; i++) EMIT(s[i]);
    } else if (attr & TOK_ATTR_NORMAL) {
        if (t->kind == TOK_KIND_SPM) {
            for (size_t i = 0; i < len; i++) {
                if (i + 2 < len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    EMIT(' ');
                    i += 2;
                } else {
                    EMIT(s[i]);
                }
            }
        } else {
            for (size_t i = 0; i < len;) {
                size_t cl = tok_utf8_len((uint8_t)s[i]);
                if (cl > len - i) cl = len - i;
                uint32_t cpt = 0;
                if (cl == 1) cpt = (uint8_t)s[i];
                else {
                    cpt = (uint8_t)s[i] & (0x7F >> cl);
                    for (size_t k = 1; k < cl; k++) cpt = (cpt << 6) | ((uint8_t)s[i + k] & 0x3F);
                }
                int b = tok_cpt_to_byte(cpt);
                if (b >= 0) EMIT(b);
                else
                    for (size_t k = 0; k < cl; k++) EMIT(s[i + k]);
                i += cl;
            }
        }
    } else if (attr & TOK_ATTR_BYTE) {
        if (len == 6 && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) EMIT(hexval(s[3]) * 16 + hexval(s[4]));
        else if (len == 1) EMIT(s[0]);
    }
#undef EMIT
    return o;
}

int tokenizer_token_to_bytes(const tokenizer_t *t, int32_t id, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab) return -1;
    return (int)token_bytes(t, id, buf, cap);
}

int tokenizer_decode(const tokenizer_t *t, const int32_t *ids, size_t n, char **out, size_t *len, tl_err_t *err) {
    *out = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return tl_fail(err, "tokenizer: token id %d at position %zu is outside the vocabulary [0, %d)", (int)ids[i],
                           i, (int)t->n_vocab);
        total += token_bytes(t, ids[i], NULL, 0);
    }
    char *buf = malloc(total + 1);
    if (!buf) return tl_fail(err, "tokenizer: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += token_bytes(t, ids[i], buf + o, total - o);
    /* SentencePiece text starts with the space added at encoding time: drop it. */
    size_t skip = 0;
    if (t->add_space_prefix && n > 0 && o > 0 && buf[0] == ' ' && !(t->attr[ids[0]] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))) skip = 1;
    memmove(buf, buf + skip, o - skip);
    o -= skip;
    buf[o] = 0;
    *out = buf;
    if (len) *len = o;
    return 0;
}

/* Pre-tokenizers for byte-level BPE: the split regexes chosen by
 * tokenizer.ggml.pre, applied in sequence the way llama.cpp applies them
 * (each regex splits the pieces left by the previous one; text between
 * matches becomes a piece of its own). PCRE2 runs in UTF + UCP mode; `\s` is
 * spelled out as the Unicode White_Space set so that it does not depend on
 * the PCRE2 version. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define S_ "[" WS "]"
#define NS_ "[^" WS "]"

/* English contractions, case-insensitive where the original uses (?i:...). */
#define CONTR_I "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define CONTR "'s|'t|'re|'ve|'m|'ll|'d"

#define RE_GPT2 CONTR "| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS_ ")"
#define RE_LLAMA3                                                                                 \
    CONTR_I "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ \
    "+(?!" NS_ ")|" S_ "+"
#define RE_QWEN2                                                                                  \
    CONTR_I "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ \
    "+(?!" NS_ ")|" S_ "+"
#define RE_QWEN35                                                                                      \
    CONTR_I "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^" WS "\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|" S_ \
    "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_DS3_MAIN                                                                            \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| " \
    "?[\\p{P}\\p{S}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_BLOOM " ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"
#define RE_GPT4O_CASE                                                                            \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:" CONTR_I ")?|"     \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:" CONTR_I ")?"

typedef struct {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    const char *regex[TOK_MAX_REGEX];
    bool ignore_merges, add_bos, no_bos;
} pre_def_t;

static const pre_def_t pre_defs[] = {
    {"default|",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano", {RE_LLAMA3}, true, true, false},
    {"dbrx|smaug-bpe", {RE_LLAMA3}, false, false, false},
    {"deepseek-llm",
     {"[\\r\\n]",
      "[" WS "]?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}"
      "\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}"
      "\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}"
      "\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}"
      "\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"
      "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}"
      "\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}"
      "\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}"
      "\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}"
      "\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}"
      "\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"
      "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}"
      "\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}"
      "\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}"
      "\\x{1e900}-\\x{1e943}]+",
      "[" WS "]?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
      "[" WS "]+$", "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+", "\\p{N}+"},
     false, false, false},
    {"deepseek-coder",
     {"[\\r\\n]", "[" WS "]?\\p{L}+", "[" WS "]?\\p{P}+", "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+",
      "\\p{N}"},
     false, false, false},
    {"deepseek-v3|hunyuan-dense|joyai-llm",
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+", RE_DS3_MAIN}, false, false, false},
    {"falcon",
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2", {"\\p{N}", RE_GPT2}, false, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|jina-v1-en|"
     "jina-v2-code|roberta-bpe|mpt|olmo|jais|trillion|granite-docling|exaone4",
     {RE_GPT2}, false, false, false},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|hunyuan|solar-open|grok-2", {RE_QWEN2}, false, false, false},
    {"qwen35", {RE_QWEN35}, false, false, false},
    {"poro-chat|bloom|gpt3-finnish", {RE_BLOOM}, false, false, false},
    {"viking", {RE_BLOOM, "\\p{N}"}, false, false, false},
    {"chatglm-bpe", {RE_LLAMA3}, false, false, true},
    {"glm4|glm5", {RE_LLAMA3}, true, false, true},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2",
     {RE_GPT4O_CASE "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"},
     false, false, false},
};

static bool name_in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    const char *p = list;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

int tok_pre_setup(tokenizer_t *t, const char *pre, tl_err_t *err) {
    const pre_def_t *def = NULL;
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0] && !def; i++)
        if (name_in_list(pre_defs[i].names, pre)) def = &pre_defs[i];
    if (!def) return tl_fail(err, "tokenizer.ggml.pre: unsupported pre-tokenizer '%s'", pre);
    t->ignore_merges = def->ignore_merges;
    if (def->add_bos) t->add_bos = true;
    if (def->no_bos) t->bos = -1;
    for (int i = 0; i < TOK_MAX_REGEX && def->regex[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)def->regex[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return tl_fail(err, "tokenizer.ggml.pre '%s': regex %d does not compile at offset %zu: %s", pre, i,
                           (size_t)eo, (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
        t->regex[t->n_regex++] = re;
    }
    return 0;
}

/* ---- splitting ---- */

typedef struct {
    size_t *end; /* piece i is [end[i-1], end[i]) with end[-1] = 0 */
    size_t n, cap;
} pieces_t;

static int pieces_push(pieces_t *p, size_t end) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        size_t *e = realloc(p->end, cap * sizeof *e);
        if (!e) return -1;
        p->end = e;
        p->cap = cap;
    }
    p->end[p->n++] = end;
    return 0;
}

static int split_one(pcre2_code *re, const char *text, const pieces_t *in, pieces_t *out, pcre2_match_data *md,
                     pcre2_match_context *mc, tl_err_t *err) {
    out->n = 0;
    size_t start = 0;
    for (size_t k = 0; k < in->n; k++) {
        size_t end = in->end[k], pos = start, last = start;
        while (pos < end) {
            int rc = pcre2_match(re, (PCRE2_SPTR)text, end, pos, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return tl_fail(err, "pre-tokenizer regex failed at byte %zu: %s", pos, (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: step over one code point */
                pos = ms + tok_utf8_len((uint8_t)text[ms]);
                continue;
            }
            if (ms > last && pieces_push(out, ms) != 0) return tl_fail(err, "out of memory");
            if (pieces_push(out, me) != 0) return tl_fail(err, "out of memory");
            last = pos = me;
        }
        if (last < end && pieces_push(out, end) != 0) return tl_fail(err, "out of memory");
        start = end;
    }
    return 0;
}

/* ---- BPE merges within one word ---- */

typedef struct {
    size_t off, len;
    int prev, next;
} sym_t;

typedef struct {
    int32_t rank;
    int left, right;
    size_t left_len, right_len;
} bigram_t;

typedef struct {
    sym_t *sym;
    size_t n_sym, cap_sym;
    bigram_t *heap;
    size_t n_heap, cap_heap;
    char *key;
    size_t cap_key;
    char *word; /* byte-encoded word */
    size_t cap_word;
} bpe_ws_t;

static bool bigram_less(const bigram_t *a, const bigram_t *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(bpe_ws_t *w, bigram_t b) {
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? w->cap_heap * 2 : 64;
        bigram_t *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return -1;
        w->heap = h;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_less(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return 0;
}

static bigram_t heap_pop(bpe_ws_t *w) {
    bigram_t top = w->heap[0];
    bigram_t last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int ensure(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static int add_bigram(const tokenizer_t *t, bpe_ws_t *w, int left, int right) {
    if (left < 0 || right < 0) return 0;
    const sym_t *l = &w->sym[left], *r = &w->sym[right];
    size_t klen = l->len + 1 + r->len;
    if (ensure(&w->key, &w->cap_key, klen) != 0) return -1;
    memcpy(w->key, w->word + l->off, l->len);
    w->key[l->len] = ' ';
    memcpy(w->key + l->len + 1, w->word + r->off, r->len);
    int32_t rank = hashmap_get(&t->merge_rank, w->key, klen);
    if (rank < 0) return 0;
    bigram_t b = {rank, left, right, l->len, r->len};
    return heap_push(w, b);
}

static int bpe_word(const tokenizer_t *t, bpe_ws_t *w, size_t wlen, tok_ids_t *out) {
    const char *word = w->word;
    if (t->ignore_merges) {
        int32_t id = hashmap_get(&t->tok_to_id, word, wlen);
        if (id >= 0) return tok_ids_push(out, id);
    }
    w->n_sym = 0;
    w->n_heap = 0;
    for (size_t off = 0; off < wlen;) {
        size_t n = tok_utf8_len((uint8_t)word[off]);
        if (n > wlen - off) n = wlen - off;
        if (w->n_sym == w->cap_sym) {
            size_t cap = w->cap_sym ? w->cap_sym * 2 : 64;
            sym_t *s = realloc(w->sym, cap * sizeof *s);
            if (!s) return -1;
            w->sym = s;
            w->cap_sym = cap;
        }
        int idx = (int)w->n_sym;
        w->sym[w->n_sym++] = (sym_t){off, n, idx - 1, off + n == wlen ? -1 : idx + 1};
        off += n;
    }
    for (size_t i = 1; i < w->n_sym; i++)
        if (add_bigram(t, w, (int)i - 1, (int)i) != 0) return -1;
    while (w->n_heap) {
        bigram_t b = heap_pop(w);
        sym_t *l = &w->sym[b.left], *r = &w->sym[b.right];
        /* Stale entry: one side has been merged since it was queued. */
        if (l->len == 0 || r->len == 0 || l->len != b.left_len || r->len != b.right_len) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        if (add_bigram(t, w, l->prev, b.left) != 0 || add_bigram(t, w, b.left, l->next) != 0) return -1;
    }
    for (int i = w->n_sym ? 0 : -1; i >= 0; i = w->sym[i].next) {
        const sym_t *s = &w->sym[i];
        if (s->len == 0) continue;
        int32_t id = hashmap_get(&t->tok_to_id, word + s->off, s->len);
        if (id >= 0) {
            if (tok_ids_push(out, id) != 0) return -1;
            continue;
        }
        /* Not in the vocabulary: each byte of the encoded text on its own,
         * dropped when that is not a token either (as llama.cpp does). */
        for (size_t j = 0; j < s->len; j++) {
            int32_t bid = hashmap_get(&t->tok_to_id, word + s->off + j, 1);
            if (bid >= 0 && tok_ids_push(out, bid) != 0) return -1;
        }
    }
    return 0;
}

static int encode_word(const tokenizer_t *t, bpe_ws_t *w, const char *text, size_t len, tok_ids_t *out) {
    /* Byte-level encoding: every byte becomes one printable code point. */
    if (ensure(&w->word, &w->cap_word, len * 2 + 1) != 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) o += (size_t)tok_utf8_encode(tok_byte_to_cpt((uint8_t)text[i]), w->word + o);
    return bpe_word(t, w, o, out);
}

int tok_bpe_encode_fragment(const tokenizer_t *t, const char *raw, size_t raw_len, tok_ids_t *out, tl_err_t *err) {
    char *text = NULL;
    size_t len = 0;
    if (tok_utf8_sanitize(raw, raw_len, &text, &len) != 0) return tl_fail(err, "out of memory");
    int rc = -1;
    pieces_t a = {0}, b = {0};
    bpe_ws_t w = {0};
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!mc || !js) {
        tl_fail(err, "out of memory");
        goto done;
    }
    pcre2_jit_stack_assign(mc, NULL, js);
    if (pieces_push(&a, len) != 0) {
        tl_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < t->n_regex; i++) {
        pcre2_match_data_free(md);
        md = pcre2_match_data_create_from_pattern(t->regex[i], NULL);
        if (!md) {
            tl_fail(err, "out of memory");
            goto done;
        }
        if (split_one(t->regex[i], text, &a, &b, md, mc, err) != 0) goto done;
        pieces_t tmp = a;
        a = b;
        b = tmp;
    }
    size_t start = 0;
    for (size_t k = 0; k < a.n; k++) {
        if (a.end[k] > start && encode_word(t, &w, text + start, a.end[k] - start, out) != 0) {
            tl_fail(err, "out of memory");
            goto done;
        }
        start = a.end[k];
    }
    rc = 0;
done:
    pcre2_match_data_free(md);
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    free(a.end);
    free(b.end);
    free(w.sym);
    free(w.heap);
    free(w.key);
    free(w.word);
    free(text);
    return rc;
}

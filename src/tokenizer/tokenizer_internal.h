/* Internals shared by the tokenizer's source files: the loaded vocabulary,
 * the pre-tokenizer table and the per-call workspace. */
#ifndef TL_TOKENIZER_INTERNAL_H
#define TL_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/hashmap.h"
#include "tokenizer/tokenizer.h"

/* Token attributes (bit set), as llama.cpp derives them from token_type. */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 6,
    TOK_ATTR_RSTRIP = 1 << 7,
};

typedef enum { TOK_KIND_BPE, TOK_KIND_SPM } tok_kind_t;

#define TOK_MAX_REGEX 8

struct tokenizer {
    tok_kind_t kind;
    char model_name[16];
    char pre_name[64];
    int32_t n_vocab;
    char *arena;            /* all token texts (NUL-terminated) and merge keys */
    const char **text;      /* per token, into arena */
    uint32_t *text_len;
    float *score;
    uint8_t *attr;
    hashmap_t tok_to_id;    /* token text -> id (a repeated text maps to its last id) */
    hashmap_t merge_rank;   /* "left right" -> rank (a repeated merge keeps its first rank) */
    int32_t *special;       /* control/user-defined/unknown ids, longest text first */
    int32_t n_special;
    int32_t bos, eos, eot, eom, unk;
    int32_t *eog;
    int32_t n_eog;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t byte_token[256]; /* SPM: id of the token for each byte (<0xXX> or the byte itself); -1 if none */
    pcre2_code *regex[TOK_MAX_REGEX];
    int n_regex;
};

/* A growable buffer of token ids. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} tok_ids_t;

int tok_ids_push(tok_ids_t *v, int32_t id);

/* GPT-2 byte <-> printable code point mapping. */
uint32_t tok_byte_to_cpt(uint8_t b);
int tok_cpt_to_byte(uint32_t cpt); /* -1 if the code point is not in the mapping */
/* Writes the UTF-8 encoding of cpt (<= 0x10FFFF) into out[4]; returns its length. */
int tok_utf8_encode(uint32_t cpt, char *out);
/* Length of a UTF-8 sequence from its first byte, as llama.cpp computes it (1 for stray bytes). */
size_t tok_utf8_len(uint8_t first);
/* Rewrites text as llama.cpp sees it before pre-tokenizing: each code point
 * decoded and re-encoded; a byte that does not start a valid sequence becomes
 * U+FFFD. The result is valid UTF-8 (malloc'd, *out_len bytes). */
int tok_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len);

/* Pre-tokenizer: sets the regexes and flags for tokenizer.ggml.pre. */
int tok_pre_setup(tokenizer_t *t, const char *pre, tl_err_t *err);
/* Byte-level BPE on one raw text fragment (no special tokens inside). */
int tok_bpe_encode_fragment(const tokenizer_t *t, const char *text, size_t len, tok_ids_t *out, tl_err_t *err);
/* SentencePiece-style BPE on one fragment (spaces already replaced by U+2581). */
int tok_spm_encode_fragment(const tokenizer_t *t, const char *text, size_t len, tok_ids_t *out, tl_err_t *err);

#endif

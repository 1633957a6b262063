/* Tokenizer built from GGUF metadata: byte-level BPE (GPT-2 style, with the
 * pre-tokenizer named by tokenizer.ggml.pre) and SentencePiece-style BPE
 * (tokenizer.ggml.model = "llama"). Matches llama.cpp token for token. */
#ifndef TL_TOKENIZER_H
#define TL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "io/gguf.h"

typedef struct tokenizer tokenizer_t;

enum {
    TOK_ADD_BOS = 1 << 0,       /* prepend BOS (only if the vocabulary has one) */
    TOK_PARSE_SPECIAL = 1 << 1, /* recognise control/user-defined tokens in the text */
};

int tokenizer_load(tokenizer_t **out, const gguf_file_t *f, tl_err_t *err);
void tokenizer_free(tokenizer_t *t);

int32_t tokenizer_n_vocab(const tokenizer_t *t);
int32_t tokenizer_bos(const tokenizer_t *t); /* -1 if none */
int32_t tokenizer_eos(const tokenizer_t *t); /* -1 if none */
bool tokenizer_wants_bos(const tokenizer_t *t); /* tokenizer.ggml.add_bos_token (or the model type's default) */
bool tokenizer_is_eog(const tokenizer_t *t, int32_t id); /* end of generation (EOS, EOT, ...) */
const char *tokenizer_model_name(const tokenizer_t *t); /* "gpt2" or "llama" */

/* Encodes len bytes of UTF-8 text. *ids is malloc'd by the callee (free it).
 * Special tokens are split out of the text first, longest text first:
 * user-defined tokens always, control/unknown tokens only with
 * TOK_PARSE_SPECIAL (llama_tokenize's parse_special). As in llama.cpp, a byte
 * that is not valid UTF-8 is read as U+FFFD by byte-level BPE, and pieces
 * whose bytes are not in the vocabulary are dropped there; SentencePiece
 * vocabularies fall back to <0xXX> byte tokens. Safe to call from several
 * threads on one tokenizer. */
int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, int flags,
                     int32_t **ids, size_t *n, tl_err_t *err);
/* The vocabulary string of a token as stored in the file (NULL for a bad id). */
const char *tokenizer_piece(const tokenizer_t *t, int32_t id, size_t *len);
/* Text bytes of one token (byte-level mapping undone). Returns bytes written,
 * or the needed size if cap is too small; -1 for a bad id. */
int tokenizer_token_to_bytes(const tokenizer_t *t, int32_t id, char *buf, size_t cap);
/* Decodes a sequence into a malloc'd NUL-terminated string: the pieces'
 * bytes concatenated, control and user-defined tokens rendered as their text,
 * and for SentencePiece vocabularies with add_space_prefix the one leading
 * space that encoding added dropped. No other clean-up, so
 * decode(encode(s)) == s whenever every byte of s has a token. */
int tokenizer_decode(const tokenizer_t *t, const int32_t *ids, size_t n, char **out, size_t *len, tl_err_t *err);

/* Offset of the first byte that is not part of well-formed UTF-8 (overlong
 * forms, surrogates and code points past U+10FFFF are ill-formed), or len. */
size_t tokenizer_utf8_check(const char *text, size_t len);
/* A copy of text with every ill-formed byte sequence replaced by U+FFFD
 * (malloc'd, NUL-terminated, *out_len bytes): for output that must be valid
 * UTF-8, such as JSON, when generated tokens end inside a character. */
int tokenizer_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len);

#endif

/* UTF-8 helpers and the GPT-2 byte-to-code-point mapping used by byte-level BPE. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) return b;
    /* Non-printable bytes take 256, 257, ... in byte order. */
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!byte_is_printable(c)) n++;
    return 256 + n;
}

int tok_cpt_to_byte(uint32_t cpt) {
    if (cpt < 256) return byte_is_printable(cpt) ? (int)cpt : -1;
    uint32_t n = cpt - 256;
    for (unsigned c = 0; c < 256; c++) {
        if (byte_is_printable(c)) continue;
        if (n == 0) return (int)c;
        n--;
    }
    return -1;
}

int tok_utf8_encode(uint32_t cpt, char *out) {
    if (cpt <= 0x7F) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt <= 0x7FF) {
        out[0] = (char)(0xC0 | (cpt >> 6));
        out[1] = (char)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt <= 0xFFFF) {
        out[0] = (char)(0xE0 | (cpt >> 12));
        out[1] = (char)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cpt >> 18));
    out[1] = (char)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cpt & 0x3F));
    return 4;
}

size_t tok_utf8_len(uint8_t first) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[first >> 4];
}

/* Decodes one code point at text[*i] the way llama.cpp does (continuation
 * bytes checked, overlong forms accepted); returns -1 for an invalid start. */
static int64_t decode_one(const uint8_t *s, size_t len, size_t *i) {
    size_t p = *i;
    uint8_t c = s[p];
    if (!(c & 0x80)) {
        *i = p + 1;
        return c;
    }
    if (!(c & 0x40)) return -1;
    size_t n = !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (n == 0 || p + n - 1 >= len) return -1;
    uint32_t cpt = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[p + k] & 0xC0) != 0x80) return -1;
        cpt = (cpt << 6) | (s[p + k] & 0x3F);
    }
    *i = p + n;
    return cpt;
}

int tok_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len) {
    /* Each input byte yields at most 3 output bytes (U+FFFD); a valid
     * sequence never grows. */
    char *buf = malloc(len * 3 + 1);
    if (!buf) return -1;
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        int64_t cpt = decode_one(s, len, &i);
        if (cpt < 0) {
            i++;
            cpt = 0xFFFD;
        }
        /* Surrogates and values past U+10FFFF cannot be re-encoded as valid
         * UTF-8; they become U+FFFD as well. */
        if ((cpt >= 0xD800 && cpt <= 0xDFFF) || cpt > 0x10FFFF) cpt = 0xFFFD;
        o += (size_t)tok_utf8_encode((uint32_t)cpt, buf + o);
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return 0;
}

int tok_ids_push(tok_ids_t *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *ids = realloc(v->ids, cap * sizeof *ids);
        if (!ids) return -1;
        v->ids = ids;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

int tokenizer_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len) {
    return tok_utf8_sanitize(text, len, out, out_len);
}

size_t tokenizer_utf8_check(const char *text, size_t len) {
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t min, cpt;
        if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80, cpt = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800, cpt = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000, cpt = c & 0x07;
        else return i;
        if (len - i < n) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cpt = (cpt << 6) | (s[i + k] & 0x3F);
        }
        if (cpt < min || cpt > 0x10FFFF || (cpt >= 0xD800 && cpt <= 0xDFFF)) return i;
        i += n;
    }
    return len;
}

/* String similarity for names, over Unicode code points, with the
 * definitions rapidfuzz uses (so results can be checked against it):
 * ratio = normalised Indel similarity * 100, token_sort_ratio,
 * token_set_ratio (tokens split on Unicode whitespace as Python's str.split),
 * Jaro and Jaro-Winkler (prefix weight 0.1, up to 4 chars, boost above 0.7).
 * Invalid UTF-8 bytes are treated as U+FFFD. */
#ifndef TL_TASK_STRSIM_H
#define TL_TASK_STRSIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Decodes UTF-8 into *out (malloc'd); returns the code point count or -1 (OOM). */
long strsim_decode(const char *s, uint32_t **out);

double strsim_ratio(const char *a, const char *b);            /* 0..100 */
double strsim_token_sort_ratio(const char *a, const char *b); /* 0..100 */
double strsim_token_set_ratio(const char *a, const char *b);  /* 0..100; 0 if either has no token */
double strsim_jaro(const char *a, const char *b);             /* 0..1; 1 for two empty strings */
double strsim_jaro_winkler(const char *a, const char *b);     /* 0..1 */

/* Code-point versions. */
double strsim_ratio_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);
double strsim_jaro_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);
double strsim_jaro_winkler_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);
size_t strsim_lcs_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);

/* Folded form for matching names: NFKC, case folding, accents stripped,
 * characters other than letters and digits turned into spaces (apostrophes
 * dropped), runs of spaces collapsed, trimmed. *out is malloc'd. */
int strsim_fold(const char *s, char **out, tl_err_t *err);

#endif

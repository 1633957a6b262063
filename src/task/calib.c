/* Label-prior calibration (see calib.h). */
#include "task/calib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task/metrics.h"

int label_bias_parse(const task_t *t, const char *s, double *bias, tl_err_t *err) {
    for (size_t k = 0; k < t->n_labels; k++) bias[k] = 0.0;
    if (!s || !*s || !strcmp(s, "none")) return 0;
    int seen[TASK_MAX_LABELS] = {0};
    const char *p = s;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) return tl_fail(err, "label bias '%s': expected label=value, got '%.*s'", s, (int)(end - p), p);
        char name[TASK_NAME_MAX];
        size_t nl = (size_t)(eq - p);
        if (nl == 0 || nl >= sizeof name) return tl_fail(err, "label bias '%s': bad label name", s);
        memcpy(name, p, nl);
        name[nl] = '\0';
        int k = task_label_index(t, name);
        if (k < 0) return tl_fail(err, "label bias '%s': '%s' is not a label of task %s", s, name, t->name);
        if (seen[k]++) return tl_fail(err, "label bias '%s': label '%s' given twice", s, name);
        char num[64];
        size_t nv = (size_t)(end - eq - 1);
        if (nv == 0 || nv >= sizeof num) return tl_fail(err, "label bias '%s': bad value for '%s'", s, name);
        memcpy(num, eq + 1, nv);
        num[nv] = '\0';
        char *q;
        errno = 0;
        double v = strtod(num, &q);
        if (*q || errno || !isfinite(v)) return tl_fail(err, "label bias '%s': bad value '%s' for '%s'", s, num, name);
        bias[k] = v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

int label_bias_check(const char *s, tl_err_t *err) {
    task_t t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "(any)");
    /* every name becomes a label of a throw-away task, so only the syntax is checked */
    for (const char *p = s; *p && t.n_labels < TASK_MAX_LABELS;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (eq && eq < end && eq > p && (size_t)(eq - p) < TASK_NAME_MAX) {
            memcpy(t.labels[t.n_labels], p, (size_t)(eq - p));
            t.labels[t.n_labels][eq - p] = '\0';
            if (task_label_index(&t, t.labels[t.n_labels]) < 0) t.n_labels++;
        }
        p = *end ? end + 1 : end;
    }
    double b[TASK_MAX_LABELS];
    return label_bias_parse(&t, s, b, err);
}

void label_bias_format(const task_t *t, const double *bias, char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = '\0';
    for (size_t k = 0; k < t->n_labels && o < n; k++) {
        int w = snprintf(buf + o, n - o, "%s%s=%.6g", k ? "," : "", t->labels[k], bias[k]);
        if (w < 0) break;
        o += (size_t)w;
    }
}

int label_bias_from_gguf(const gguf_file_t *f, const task_t *t, double *bias, tl_err_t *err) {
    for (size_t k = 0; k < t->n_labels; k++) bias[k] = 0.0;
    if (!gguf_find_kv(f, LABEL_BIAS_KEY)) return 0;
    gguf_str_t s;
    if (gguf_get_str(f, LABEL_BIAS_KEY, &s, err)) return tl_fail_prefix(err, "%s", gguf_path(f)), -1;
    char buf[1024];
    if (s.len >= sizeof buf) return tl_fail(err, "%s: %s is too long", gguf_path(f), LABEL_BIAS_KEY);
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    if (label_bias_parse(t, buf, bias, err)) return tl_fail_prefix(err, "%s: %s", gguf_path(f), LABEL_BIAS_KEY), -1;
    return 1;
}

int label_bias_resolve(const task_t *t, const char *spec, const char *adapter_path, const gguf_file_t *model,
                       double *bias, tl_err_t *err) {
    if (spec) return label_bias_parse(t, spec, bias, err);
    int got = 0;
    if (adapter_path) {
        gguf_file_t *af;
        if (gguf_open(&af, adapter_path, err)) return -1;
        got = label_bias_from_gguf(af, t, bias, err);
        gguf_close(af);
        if (got < 0) return -1;
    }
    return !got && label_bias_from_gguf(model, t, bias, err) < 0 ? -1 : 0;
}

int label_bias_argmax(const double *lp, const double *bias, size_t n_labels) {
    int best = 0;
    double bv = lp[0] + (bias ? bias[0] : 0.0);
    for (size_t k = 1; k < n_labels; k++) {
        double v = lp[k] + (bias ? bias[k] : 0.0);
        if (v > bv) bv = v, best = (int)k;
    }
    return best;
}

void label_bias_probs(const double *lp, const double *bias, size_t n_labels, double *probs) {
    double mx = -INFINITY, sum = 0.0;
    for (size_t k = 0; k < n_labels; k++) {
        probs[k] = lp[k] + (bias ? bias[k] : 0.0);
        if (probs[k] > mx) mx = probs[k];
    }
    for (size_t k = 0; k < n_labels; k++) sum += (probs[k] = exp(probs[k] - mx));
    for (size_t k = 0; k < n_labels; k++) probs[k] /= sum;
}

int label_calib_fit(const double *lp, const int *gold, size_t n, size_t n_labels, const size_t *train_counts,
                    const size_t *eval_counts, label_calib_t *out, tl_err_t *err) {
    memset(out, 0, sizeof *out);
    if (n_labels > TASK_MAX_LABELS) return tl_fail(err, "calibration: %zu labels", n_labels);
    int *pred = malloc(sizeof(int) * (n ? n : 1));
    if (!pred) return tl_fail(err, "calibration: out of memory");
    size_t nt = 0, ne = 0;
    for (size_t k = 0; k < n_labels; k++) nt += train_counts[k], ne += eval_counts[k];
    double dir[TASK_MAX_LABELS];
    for (size_t k = 0; k < n_labels; k++)
        dir[k] = train_counts[k] && eval_counts[k] && nt && ne
                     ? log(((double)eval_counts[k] / (double)ne) / ((double)train_counts[k] / (double)nt))
                     : 0.0;
    double best_f1 = -1.0, best_lambda = 0.0;
    for (int i = 0; i <= 8; i++) {
        double lambda = i / 8.0, bias[TASK_MAX_LABELS];
        for (size_t k = 0; k < n_labels; k++) bias[k] = lambda * dir[k];
        for (size_t r = 0; r < n; r++) pred[r] = label_bias_argmax(lp + r * n_labels, bias, n_labels);
        metrics_t m;
        if (metrics_compute(gold, pred, n, n_labels, &m, err)) {
            free(pred);
            return -1;
        }
        if (i == 0) out->macro_f1_raw = m.macro_f1;
        if (m.macro_f1 > best_f1 + 1e-12 ||
            (fabs(m.macro_f1 - best_f1) <= 1e-12 && fabs(lambda - 0.5) < fabs(best_lambda - 0.5))) {
            best_f1 = m.macro_f1;
            best_lambda = lambda;
        }
    }
    free(pred);
    out->lambda = best_lambda;
    out->macro_f1 = best_f1;
    for (size_t k = 0; k < n_labels; k++) out->bias[k] = best_lambda * dir[k] + 0.0; /* no "-0" */
    return 0;
}

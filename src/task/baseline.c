#include "task/baseline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "task/metrics.h"
#include "task/strsim.h"

const char *const baseline_feature_names[BASELINE_N_FEATURES] = {
    "jaro_winkler", "ratio", "token_set_ratio", "token_sort_ratio", "first_token_equal", "last_token_equal",
    "last_token_jw", "first_token_jw", "initials_compatible", "token_jaccard", "token_count_diff", "last_token_in_other",
};

typedef struct {
    char *tok[64];
    size_t n;
} toks_t;

static void split(char *s, toks_t *t) {
    t->n = 0;
    char *save = NULL;
    for (char *p = strtok_r(s, " ", &save); p && t->n < 64; p = strtok_r(NULL, " ", &save)) t->tok[t->n++] = p;
}

static bool has_tok(const toks_t *t, const char *w) {
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->tok[i], w)) return true;
    return false;
}

/* Token x is compatible with y: equal, or one is a single letter that starts the other. */
static bool tok_compat(const char *x, const char *y) {
    if (!strcmp(x, y)) return true;
    size_t lx = strlen(x), ly = strlen(y);
    if (lx == 1 && ly >= 1 && x[0] == y[0]) return true;
    if (ly == 1 && lx >= 1 && x[0] == y[0]) return true;
    return false;
}

/* Every token of the shorter name matches a distinct token of the longer one
 * (exactly or as an initial), in order. */
static bool initials_compatible(const toks_t *a, const toks_t *b) {
    const toks_t *s = a->n <= b->n ? a : b, *l = a->n <= b->n ? b : a;
    if (!s->n) return false;
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        while (j < l->n && !tok_compat(s->tok[i], l->tok[j])) j++;
        if (j == l->n) return false;
        j++;
    }
    return true;
}

int baseline_features(const char *a, const char *b, double *f, tl_err_t *err) {
    char *fa, *fb;
    if (strsim_fold(a, &fa, err)) return -1;
    if (strsim_fold(b, &fb, err)) {
        free(fa);
        return -1;
    }
    f[0] = strsim_jaro_winkler(fa, fb);
    f[1] = strsim_ratio(fa, fb) / 100.0;
    f[2] = strsim_token_set_ratio(fa, fb) / 100.0;
    f[3] = strsim_token_sort_ratio(fa, fb) / 100.0;
    char *ca = strdup(fa), *cb = strdup(fb);
    if (!ca || !cb) {
        free(fa);
        free(fb);
        free(ca);
        free(cb);
        return tl_fail(err, "out of memory");
    }
    toks_t ta, tb;
    split(ca, &ta);
    split(cb, &tb);
    bool both = ta.n && tb.n;
    f[4] = both && !strcmp(ta.tok[0], tb.tok[0]);
    f[5] = both && !strcmp(ta.tok[ta.n - 1], tb.tok[tb.n - 1]);
    f[6] = both ? strsim_jaro_winkler(ta.tok[ta.n - 1], tb.tok[tb.n - 1]) : 0.0;
    f[7] = both ? strsim_jaro_winkler(ta.tok[0], tb.tok[0]) : 0.0;
    f[8] = both && initials_compatible(&ta, &tb);
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < ta.n; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++) dup |= !strcmp(ta.tok[k], ta.tok[i]);
        if (dup) continue;
        uni++;
        inter += has_tok(&tb, ta.tok[i]);
    }
    for (size_t i = 0; i < tb.n; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++) dup |= !strcmp(tb.tok[k], tb.tok[i]);
        if (!dup && !has_tok(&ta, tb.tok[i])) uni++;
    }
    f[9] = uni ? (double)inter / (double)uni : 0.0;
    size_t mx = ta.n > tb.n ? ta.n : tb.n;
    f[10] = mx ? fabs((double)ta.n - (double)tb.n) / (double)mx : 0.0;
    f[11] = both && (has_tok(&tb, ta.tok[ta.n - 1]) || has_tok(&ta, tb.tok[tb.n - 1]));
    free(ca);
    free(cb);
    free(fa);
    free(fb);
    return 0;
}

/* ---- logistic regression ---- */

static void softmax_scores(const baseline_t *b, const double *feat, double *p) {
    double z[TASK_MAX_LABELS], mx = -INFINITY;
    for (size_t k = 0; k < b->n_labels; k++) {
        double s = b->w[k][BASELINE_N_FEATURES];
        for (int j = 0; j < BASELINE_N_FEATURES; j++) s += b->w[k][j] * (feat[j] - b->mean[j]) / b->scale[j];
        z[k] = s;
        if (s > mx) mx = s;
    }
    double sum = 0;
    for (size_t k = 0; k < b->n_labels; k++) sum += (p[k] = exp(z[k] - mx));
    for (size_t k = 0; k < b->n_labels; k++) p[k] /= sum;
}

static int fit_logreg(baseline_t *b, const double *X, const int *y, size_t n, tl_err_t *err) {
    const int F = BASELINE_N_FEATURES;
    for (int j = 0; j < F; j++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) s += X[i * F + j];
        double m = s / (double)n;
        for (size_t i = 0; i < n; i++) s2 += (X[i * F + j] - m) * (X[i * F + j] - m);
        double sd = sqrt(s2 / (double)n);
        b->mean[j] = m;
        b->scale[j] = sd > 1e-9 ? sd : 1.0;
    }
    memset(b->w, 0, sizeof b->w);
    /* full-batch gradient descent with momentum on the mean cross-entropy + L2 */
    const double lr = 0.5, l2 = 1e-4, mom = 0.9;
    double v[TASK_MAX_LABELS][BASELINE_N_FEATURES + 1] = {{0}};
    double g[TASK_MAX_LABELS][BASELINE_N_FEATURES + 1];
    for (int it = 0; it < 600; it++) {
        memset(g, 0, sizeof g);
        for (size_t i = 0; i < n; i++) {
            double p[TASK_MAX_LABELS], xs[BASELINE_N_FEATURES];
            softmax_scores(b, X + i * F, p);
            for (int j = 0; j < F; j++) xs[j] = (X[i * F + j] - b->mean[j]) / b->scale[j];
            for (size_t k = 0; k < b->n_labels; k++) {
                double d = p[k] - (y[i] == (int)k);
                for (int j = 0; j < F; j++) g[k][j] += d * xs[j];
                g[k][F] += d;
            }
        }
        for (size_t k = 0; k < b->n_labels; k++)
            for (int j = 0; j <= F; j++) {
                double gr = g[k][j] / (double)n + (j < F ? l2 * b->w[k][j] : 0.0);
                v[k][j] = mom * v[k][j] - lr * gr;
                b->w[k][j] += v[k][j];
            }
    }
    for (size_t k = 0; k < b->n_labels; k++)
        for (int j = 0; j <= F; j++)
            if (!isfinite(b->w[k][j])) return tl_fail(err, "baseline: logistic regression diverged");
    return 0;
}

static int predict_thresholds(const baseline_t *b, const double *feat) {
    double s = feat[b->thr_feature];
    return s >= b->thr_hi ? b->label_hi : s >= b->thr_lo ? b->label_mid : b->label_lo;
}

int baseline_predict(const baseline_t *b, const double *feat, double *probs) {
    double p[TASK_MAX_LABELS];
    if (b->method == BASELINE_THRESHOLDS) {
        int k = predict_thresholds(b, feat);
        if (probs)
            for (size_t i = 0; i < b->n_labels; i++) probs[i] = (int)i == k;
        return k;
    }
    softmax_scores(b, feat, p);
    int best = 0;
    for (size_t k = 1; k < b->n_labels; k++)
        if (p[k] > p[best]) best = (int)k;
    if (probs) memcpy(probs, p, b->n_labels * sizeof *p);
    return best;
}

static double macro_f1_of(const baseline_t *b, const double *X, const int *y, size_t n, int *pred) {
    for (size_t i = 0; i < n; i++) pred[i] = baseline_predict(b, X + i * BASELINE_N_FEATURES, NULL);
    metrics_t m;
    tl_err_t e;
    if (metrics_compute(y, pred, n, b->n_labels, &m, &e)) return 0;
    return m.macro_f1;
}

static void fit_thresholds(baseline_t *b, const double *X, const int *y, size_t n, int yes, int no, int partial, int *pred) {
    double best = -1;
    baseline_t t = *b;
    t.method = BASELINE_THRESHOLDS;
    t.label_hi = yes;
    t.label_mid = partial;
    t.label_lo = no;
    for (int f = 0; f < 4; f++) {      /* the four similarity scores */
        t.thr_feature = f;
        for (int lo = 0; lo <= 100; lo += 2)
            for (int hi = lo; hi <= 100; hi += 2) {
                t.thr_lo = lo / 100.0;
                t.thr_hi = hi / 100.0;
                double s = macro_f1_of(&t, X, y, n, pred);
                if (s > best) {
                    best = s;
                    b->thr_feature = f;
                    b->thr_lo = t.thr_lo;
                    b->thr_hi = t.thr_hi;
                }
            }
    }
    b->label_hi = yes;
    b->label_mid = partial;
    b->label_lo = no;
    b->train_macro_f1_thresholds = best;
}

int baseline_fit(baseline_t *b, const task_t *task, const double *X, const int *y, size_t n, tl_err_t *err) {
    memset(b, 0, sizeof *b);
    if (!n) return tl_fail(err, "baseline: no training rows");
    b->n_labels = task->n_labels;
    for (size_t k = 0; k < task->n_labels; k++) snprintf(b->labels[k], sizeof b->labels[k], "%s", task->labels[k]);
    b->n_train = n;
    int *pred = malloc(n * sizeof *pred);
    if (!pred) return tl_fail(err, "out of memory");
    b->method = BASELINE_LOGREG;
    if (fit_logreg(b, X, y, n, err)) {
        free(pred);
        return -1;
    }
    b->train_macro_f1_logreg = macro_f1_of(b, X, y, n, pred);
    int yes = task_label_index(task, "yes"), no = task_label_index(task, "no"), partial = task_label_index(task, "partial");
    b->train_macro_f1_thresholds = -1;
    if (yes >= 0 && no >= 0 && partial >= 0) {
        fit_thresholds(b, X, y, n, yes, no, partial, pred);
        if (b->train_macro_f1_thresholds > b->train_macro_f1_logreg) b->method = BASELINE_THRESHOLDS;
    }
    free(pred);
    return 0;
}

/* ---- settings file ---- */

int baseline_save(const baseline_t *b, const char *path, tl_err_t *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", b->method == BASELINE_LOGREG ? "logreg" : "thresholds");
    cJSON *labs = cJSON_AddArrayToObject(o, "labels");
    for (size_t k = 0; k < b->n_labels; k++) cJSON_AddItemToArray(labs, cJSON_CreateString(b->labels[k]));
    cJSON *fn = cJSON_AddArrayToObject(o, "features");
    for (int j = 0; j < BASELINE_N_FEATURES; j++) cJSON_AddItemToArray(fn, cJSON_CreateString(baseline_feature_names[j]));
    cJSON *lr = cJSON_AddObjectToObject(o, "logreg");
    cJSON_AddItemToObject(lr, "mean", cJSON_CreateDoubleArray(b->mean, BASELINE_N_FEATURES));
    cJSON_AddItemToObject(lr, "scale", cJSON_CreateDoubleArray(b->scale, BASELINE_N_FEATURES));
    cJSON *w = cJSON_AddArrayToObject(lr, "weights");
    for (size_t k = 0; k < b->n_labels; k++) cJSON_AddItemToArray(w, cJSON_CreateDoubleArray(b->w[k], BASELINE_N_FEATURES + 1));
    cJSON *th = cJSON_AddObjectToObject(o, "thresholds");
    cJSON_AddStringToObject(th, "feature", baseline_feature_names[b->thr_feature]);
    cJSON_AddNumberToObject(th, "lo", b->thr_lo);
    cJSON_AddNumberToObject(th, "hi", b->thr_hi);
    cJSON_AddStringToObject(th, "label_hi", b->labels[b->label_hi]);
    cJSON_AddStringToObject(th, "label_mid", b->labels[b->label_mid]);
    cJSON_AddStringToObject(th, "label_lo", b->labels[b->label_lo]);
    cJSON_AddNumberToObject(o, "train_macro_f1_logreg", b->train_macro_f1_logreg);
    cJSON_AddNumberToObject(o, "train_macro_f1_thresholds", b->train_macro_f1_thresholds);
    cJSON_AddNumberToObject(o, "n_train", (double)b->n_train);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return tl_fail(err, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return tl_fail(err, "out of memory");
    }
    t[n] = '\n';
    int rc = csv_write_file_atomic(path, t, n + 1, err);
    free(t);
    return rc;
}

static int get_array(const cJSON *arr, double *out, int n, const char *path, const char *what, tl_err_t *err) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return tl_fail(err, "%s: '%s' must be an array of %d numbers", path, what, n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(v)) return tl_fail(err, "%s: '%s'[%d] is not a number", path, what, i);
        out[i] = v->valuedouble;
    }
    return 0;
}

static int label_of(const baseline_t *b, const cJSON *v, const char *path, const char *what, int *out, tl_err_t *err) {
    if (!cJSON_IsString(v)) return tl_fail(err, "%s: '%s' must be a label string", path, what);
    for (size_t k = 0; k < b->n_labels; k++)
        if (!strcmp(b->labels[k], v->valuestring)) {
            *out = (int)k;
            return 0;
        }
    return tl_fail(err, "%s: '%s' = '%s' is not a task label", path, what, v->valuestring);
}

int baseline_load(baseline_t *b, const task_t *task, const char *path, tl_err_t *err) {
    memset(b, 0, sizeof *b);
    FILE *f = fopen(path, "rb");
    if (!f) return tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return tl_fail(err, "out of memory");
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (!got) break;
    }
    fclose(f);
    cJSON *o = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!o) return tl_fail(err, "%s: not valid JSON", path);
    int rc = -1;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(o, "method");
    const cJSON *labs = cJSON_GetObjectItemCaseSensitive(o, "labels");
    const cJSON *feats = cJSON_GetObjectItemCaseSensitive(o, "features");
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "logreg");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "thresholds");
    if (!cJSON_IsString(method) || (strcmp(method->valuestring, "logreg") && strcmp(method->valuestring, "thresholds"))) {
        tl_fail(err, "%s: 'method' must be \"logreg\" or \"thresholds\"", path);
        goto done;
    }
    b->method = strcmp(method->valuestring, "logreg") ? BASELINE_THRESHOLDS : BASELINE_LOGREG;
    if (!cJSON_IsArray(labs) || (size_t)cJSON_GetArraySize(labs) != task->n_labels) {
        tl_fail(err, "%s: 'labels' must list the task's %zu labels", path, task->n_labels);
        goto done;
    }
    b->n_labels = task->n_labels;
    for (size_t k = 0; k < task->n_labels; k++) {
        const cJSON *v = cJSON_GetArrayItem(labs, (int)k);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, task->labels[k])) {
            tl_fail(err, "%s: labels[%zu] must be '%s' (task %s)", path, k, task->labels[k], task->name);
            goto done;
        }
        snprintf(b->labels[k], sizeof b->labels[k], "%s", task->labels[k]);
    }
    if (!cJSON_IsArray(feats) || cJSON_GetArraySize(feats) != BASELINE_N_FEATURES) {
        tl_fail(err, "%s: 'features' must list %d features", path, BASELINE_N_FEATURES);
        goto done;
    }
    for (int j = 0; j < BASELINE_N_FEATURES; j++) {
        const cJSON *v = cJSON_GetArrayItem(feats, j);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, baseline_feature_names[j])) {
            tl_fail(err, "%s: features[%d] must be '%s' (settings from another version?)", path, j, baseline_feature_names[j]);
            goto done;
        }
    }
    if (!cJSON_IsObject(lr) || !cJSON_IsObject(th)) {
        tl_fail(err, "%s: needs 'logreg' and 'thresholds' objects", path);
        goto done;
    }
    if (get_array(cJSON_GetObjectItemCaseSensitive(lr, "mean"), b->mean, BASELINE_N_FEATURES, path, "logreg.mean", err)) goto done;
    if (get_array(cJSON_GetObjectItemCaseSensitive(lr, "scale"), b->scale, BASELINE_N_FEATURES, path, "logreg.scale", err)) goto done;
    for (int j = 0; j < BASELINE_N_FEATURES; j++)
        if (!(b->scale[j] > 0)) {
            tl_fail(err, "%s: logreg.scale[%d] must be > 0", path, j);
            goto done;
        }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(lr, "weights");
    if (!cJSON_IsArray(w) || (size_t)cJSON_GetArraySize(w) != b->n_labels) {
        tl_fail(err, "%s: 'logreg.weights' must hold one row per label", path);
        goto done;
    }
    for (size_t k = 0; k < b->n_labels; k++)
        if (get_array(cJSON_GetArrayItem(w, (int)k), b->w[k], BASELINE_N_FEATURES + 1, path, "logreg.weights[k]", err)) goto done;
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(th, "feature");
    b->thr_feature = -1;
    for (int j = 0; j < 4 && cJSON_IsString(tf); j++)
        if (!strcmp(tf->valuestring, baseline_feature_names[j])) b->thr_feature = j;
    if (b->thr_feature < 0) {
        tl_fail(err, "%s: 'thresholds.feature' must name one of the four similarity scores", path);
        goto done;
    }
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(th, "lo"), *hi = cJSON_GetObjectItemCaseSensitive(th, "hi");
    if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || lo->valuedouble > hi->valuedouble) {
        tl_fail(err, "%s: 'thresholds.lo' and 'thresholds.hi' must be numbers with lo <= hi", path);
        goto done;
    }
    b->thr_lo = lo->valuedouble;
    b->thr_hi = hi->valuedouble;
    if (label_of(b, cJSON_GetObjectItemCaseSensitive(th, "label_hi"), path, "thresholds.label_hi", &b->label_hi, err) ||
        label_of(b, cJSON_GetObjectItemCaseSensitive(th, "label_mid"), path, "thresholds.label_mid", &b->label_mid, err) ||
        label_of(b, cJSON_GetObjectItemCaseSensitive(th, "label_lo"), path, "thresholds.label_lo", &b->label_lo, err))
        goto done;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "train_macro_f1_logreg");
    if (cJSON_IsNumber(v)) b->train_macro_f1_logreg = v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(o, "train_macro_f1_thresholds");
    if (cJSON_IsNumber(v)) b->train_macro_f1_thresholds = v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(o, "n_train");
    if (cJSON_IsNumber(v)) b->n_train = (size_t)v->valuedouble;
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

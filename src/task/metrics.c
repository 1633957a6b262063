#include "task/metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int metrics_compute(const int *gold, const int *pred, size_t n, size_t n_labels, metrics_t *m, tl_err_t *err) {
    memset(m, 0, sizeof *m);
    if (n_labels < 1 || n_labels > METRICS_MAX_LABELS) return tl_fail(err, "metrics: %zu labels (1..%d supported)", n_labels, METRICS_MAX_LABELS);
    m->n_labels = n_labels;
    m->n = n;
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        if (gold[i] < 0 || (size_t)gold[i] >= n_labels) return tl_fail(err, "metrics: item %zu: gold label %d out of range", i, gold[i]);
        if (pred[i] < 0 || (size_t)pred[i] >= n_labels) return tl_fail(err, "metrics: item %zu: predicted label %d out of range", i, pred[i]);
        m->confusion[gold[i]][pred[i]]++;
        correct += gold[i] == pred[i];
    }
    m->accuracy = n ? (double)correct / (double)n : 0.0;
    double sum = 0;
    for (size_t c = 0; c < n_labels; c++) {
        size_t tp = m->confusion[c][c], gold_c = 0, pred_c = 0;
        for (size_t k = 0; k < n_labels; k++) {
            gold_c += m->confusion[c][k];
            pred_c += m->confusion[k][c];
        }
        m->support[c] = gold_c;
        m->precision[c] = pred_c ? (double)tp / (double)pred_c : 0.0;
        m->recall[c] = gold_c ? (double)tp / (double)gold_c : 0.0;
        double pr = m->precision[c] + m->recall[c];
        m->f1[c] = pr > 0 ? 2.0 * m->precision[c] * m->recall[c] / pr : 0.0;
        sum += m->f1[c];
    }
    m->macro_f1 = sum / (double)n_labels;
    return 0;
}

double metrics_mean_loss(const double *gold_logprob, size_t n) {
    if (!n) return 0.0;
    double s = 0;
    for (size_t i = 0; i < n; i++) s -= gold_logprob[i];
    return s / (double)n;
}


typedef struct {
    const char *name;
    size_t n, correct;
} cat_acc_t;

/* Per-category counts in first-seen order; returns count (malloc'd array). */
static size_t category_accuracy(const metrics_report_t *r, size_t n, cat_acc_t **out) {
    cat_acc_t *a = malloc((n ? n : 1) * sizeof *a);
    size_t k = 0;
    if (!a) {
        *out = NULL;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = r->categories[i] ? r->categories[i] : "";
        size_t j = 0;
        while (j < k && strcmp(a[j].name, c)) j++;
        if (j == k) a[k++] = (cat_acc_t){c, 0, 0};
        a[j].n++;
        a[j].correct += r->gold[i] == r->pred[i];
    }
    *out = a;
    return k;
}

char *metrics_report_json(const metrics_t *m, const metrics_report_t *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "macro_f1", m->macro_f1);
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    cJSON *pc = cJSON_AddObjectToObject(o, "per_class");
    for (size_t c = 0; c < m->n_labels; c++) {
        cJSON *e = cJSON_AddObjectToObject(pc, r->labels[c]);
        cJSON_AddNumberToObject(e, "precision", m->precision[c]);
        cJSON_AddNumberToObject(e, "recall", m->recall[c]);
        cJSON_AddNumberToObject(e, "f1", m->f1[c]);
        cJSON_AddNumberToObject(e, "support", (double)m->support[c]);
    }
    cJSON *conf = cJSON_AddArrayToObject(o, "confusion");
    for (size_t g = 0; g < m->n_labels; g++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t p = 0; p < m->n_labels; p++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->confusion[g][p]));
        cJSON_AddItemToArray(conf, row);
    }
    cJSON *labs = cJSON_AddArrayToObject(o, "labels");
    for (size_t c = 0; c < m->n_labels; c++) cJSON_AddItemToArray(labs, cJSON_CreateString(r->labels[c]));
    cJSON_AddNumberToObject(o, "n", (double)m->n);
    if (isnan(r->mean_loss)) cJSON_AddNullToObject(o, "mean_loss");
    else cJSON_AddNumberToObject(o, "mean_loss", r->mean_loss);
    if (r->categories) {
        cat_acc_t *a;
        size_t k = category_accuracy(r, m->n, &a);
        cJSON *pcat = cJSON_AddObjectToObject(o, "per_category");
        for (size_t j = 0; j < k; j++) {
            cJSON *e = cJSON_AddObjectToObject(pcat, a[j].name);
            cJSON_AddNumberToObject(e, "n", (double)a[j].n);
            cJSON_AddNumberToObject(e, "accuracy", (double)a[j].correct / (double)a[j].n);
        }
        free(a);
    }
    if (r->source) cJSON_AddStringToObject(o, "source", r->source);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void metrics_report_text(FILE *f, const metrics_t *m, const metrics_report_t *r) {
    fprintf(f, "n = %zu\n\n%-10s %-10s", m->n, "Accuracy", "Macro F1");
    for (size_t c = 0; c < m->n_labels; c++) {
        char h[80];
        snprintf(h, sizeof h, "F1-%s", r->labels[c]);
        fprintf(f, " %-10s", h);
    }
    fprintf(f, "\n%-10.4f %-10.4f", m->accuracy, m->macro_f1);
    for (size_t c = 0; c < m->n_labels; c++) fprintf(f, " %-10.4f", m->f1[c]);
    fprintf(f, "\n");
    if (!isnan(r->mean_loss)) fprintf(f, "mean answer loss: %.4f\n", r->mean_loss);
    fprintf(f, "\n%-10s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (size_t c = 0; c < m->n_labels; c++)
        fprintf(f, "%-10s %9.4f %9.4f %9.4f %9zu\n", r->labels[c], m->precision[c], m->recall[c], m->f1[c], m->support[c]);
    fprintf(f, "\nconfusion (rows gold, columns predicted)\n%-10s", "");
    for (size_t c = 0; c < m->n_labels; c++) fprintf(f, " %9s", r->labels[c]);
    fprintf(f, "\n");
    for (size_t g = 0; g < m->n_labels; g++) {
        fprintf(f, "%-10s", r->labels[g]);
        for (size_t p = 0; p < m->n_labels; p++) fprintf(f, " %9zu", m->confusion[g][p]);
        fprintf(f, "\n");
    }
    if (r->categories) {
        cat_acc_t *a;
        size_t k = category_accuracy(r, m->n, &a);
        fprintf(f, "\n%-36s %6s %9s\n", "category", "n", "accuracy");
        for (size_t j = 0; j < k; j++) fprintf(f, "%-36s %6zu %9.4f\n", a[j].name, a[j].n, (double)a[j].correct / (double)a[j].n);
        free(a);
    }
}

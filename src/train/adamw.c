/* AdamW, gradient clipping, learning-rate schedule (see adamw.h). */
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>

int adamw_new(adamw_t **out, size_t n, tl_err_t *err) {
    *out = NULL;
    adamw_t *a = calloc(1, sizeof *a);
    if (!a) return tl_fail(err, "optimizer: out of memory");
    a->n = n;
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    if (!a->m || !a->v) {
        adamw_free(a);
        return tl_fail(err, "optimizer state for %zu parameters: out of memory", n);
    }
    *out = a;
    return 0;
}

void adamw_free(adamw_t *a) {
    if (!a) return;
    free(a->m);
    free(a->v);
    free(a);
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_cfg_t *cfg, float lr, long t) {
    double bc1 = 1.0 - pow(cfg->beta1, (double)t), bc2 = 1.0 - pow(cfg->beta2, (double)t);
    for (size_t i = 0; i < n; i++) {
        m[i] = cfg->beta1 * m[i] + (1.0f - cfg->beta1) * g[i];
        v[i] = cfg->beta2 * v[i] + (1.0f - cfg->beta2) * g[i] * g[i];
        double mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] -= (float)(lr * (mh / (sqrt(vh) + cfg->eps) + cfg->weight_decay * p[i]));
    }
}

typedef struct {
    adamw_t *a;
    const adamw_cfg_t *cfg;
    float lr;
    size_t off;
} step_ctx_t;

static void step_one(void *arg, float *p, float *g, size_t n) {
    step_ctx_t *c = arg;
    if (g) adamw_update(p, g, c->a->m + c->off, c->a->v + c->off, n, c->cfg, c->lr, c->a->step);
    c->off += n;
}

void adamw_step(adamw_t *a, const adamw_cfg_t *cfg, lora_t *l, float lr) {
    a->step++;
    step_ctx_t c = {a, cfg, lr, 0};
    lora_visit(l, step_one, &c);
}

static void sumsq(void *arg, float *p, float *g, size_t n) {
    (void)p;
    double *s = arg;
    if (g)
        for (size_t i = 0; i < n; i++) *s += (double)g[i] * g[i];
}

static void scale_grads(void *arg, float *p, float *g, size_t n) {
    (void)p;
    float f = *(float *)arg;
    if (g)
        for (size_t i = 0; i < n; i++) g[i] *= f;
}

double lora_clip_grads(lora_t *l, double max_norm) {
    double s = 0.0;
    lora_visit(l, sumsq, &s);
    double norm = sqrt(s);
    if (max_norm > 0.0 && norm > max_norm) {
        float f = (float)(max_norm / norm);
        lora_visit(l, scale_grads, &f);
    }
    return norm;
}

float sched_lr(sched_kind_t kind, float lr, long step, long total, long warmup) {
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (kind == SCHED_CONSTANT || total <= warmup) return lr;
    double frac = (double)(step - warmup) / (double)(total - warmup);
    if (frac > 1.0) frac = 1.0;
    if (kind == SCHED_COSINE) return (float)(lr * 0.5 * (1.0 + cos(M_PI * frac)));
    return (float)(lr * (1.0 - frac));
}

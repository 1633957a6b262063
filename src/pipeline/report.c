/* Run report (see report.h). One pass gathers the run's JSON files into
 * variants; each table is then written to Markdown and HTML from the same
 * values; figures are drawn by gnuplot into SVG files in report/. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "pipeline/report.h"

enum { MAX_VARIANTS = 32, MAX_STAGES = 64, MAX_POINTS = 4096 };

typedef struct {
    char name[64];
    cJSON *eval;  /* eval.json or baseline.json */
    cJSON *bench; /* bench.json */
} variant_t;

typedef struct {
    char dir[64], kind[32], status[32];
    double seconds;
} stage_row_t;

typedef struct {
    const char *run_dir;
    const report_opts_t *o;
    cJSON *run, *summary, *cv, *importance;
    cJSON *owned[4 * MAX_STAGES + 8];
    int n_owned;
    variant_t v[MAX_VARIANTS];
    int n_v;
    stage_row_t st[MAX_STAGES];
    int n_st;
    double step[MAX_POINTS], tloss[MAX_POINTS], eloss[MAX_POINTS], f1[MAX_POINTS];
    int n_pts;
    FILE *md, *html;
    char rdir[1200];
} report_t;

/* Seed figures (dissertation Tables 2.3, 2.4, 4.1, 5.1) for the matching variant. */
static const struct {
    const char *variant;
    double macro_f1;
    const char *source;
} SEED[] = {
    {"zero-shot", 0.55, "Table 5.1 base"}, {"lora-f32", 0.87, "Table 5.1 LoRA"},
    {"q8_0", 0.811, "Table 2.3"},          {"q8_0+recovery", 0.82, "Table 4.1 GGUF 8-bit"},
    {"q4_k", 0.77, "Table 4.1 bnb 4-bit"}, {"q4_k+recovery", 0.8558, "Table 2.4"},
};
static const char *EXPECTED[] = {"zero-shot", "lora-f32", "q8_0", "q8_0+recovery", "q4_k", "q4_k+recovery"};

static int load_json(report_t *R, const char *path, cJSON **out, tl_err_t *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return tl_fail(err, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) return tl_fail(err, "%s: malformed JSON", path);
    if (R->n_owned < (int)(sizeof R->owned / sizeof R->owned[0])) R->owned[R->n_owned++] = j;
    *out = j;
    return 0;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static const char *base_name(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "";
}

static variant_t *variant_get(report_t *R, const char *name) {
    for (int i = 0; i < R->n_v; i++)
        if (!strcmp(R->v[i].name, name)) return &R->v[i];
    if (R->n_v == MAX_VARIANTS) return NULL;
    variant_t *v = &R->v[R->n_v++];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    return v;
}

static int load_metrics(report_t *R, const char *path, tl_err_t *err) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[65536];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        cJSON *j = cJSON_Parse(line);
        if (!j) {
            fclose(f);
            return tl_fail(err, "%s:%d: malformed JSON", path, ln);
        }
        double s = num(j, "step");
        if (!isnan(s) && R->n_pts < MAX_POINTS && !cJSON_GetObjectItemCaseSensitive(j, "row")) {
            int i = R->n_pts++;
            R->step[i] = s;
            R->tloss[i] = num(j, "train_loss");
            R->eloss[i] = num(j, "eval_loss");
            R->f1[i] = num(j, "macro_f1");
        }
        cJSON_Delete(j);
    }
    fclose(f);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_run(report_t *R, tl_err_t *err) {
    char path[2048];
    snprintf(path, sizeof path, "%s/run.json", R->run_dir);
    if (load_json(R, path, &R->run, err)) return -1;
    DIR *d = opendir(R->run_dir);
    if (!d) return tl_fail(err, "%s: cannot open run folder: %s", R->run_dir, strerror(errno));
    char *names[MAX_STAGES];
    int n = 0;
    /* The stages of the run are those run.json lists, in recipe order: folders left
     * by an earlier version of the recipe (other stage numbers) are not part of it.
     * Without run.json, every NN-name folder counts. */
    const cJSON *stages = R->run ? cJSON_GetObjectItemCaseSensitive(R->run, "stages") : NULL;
    if (cJSON_IsArray(stages)) {
        const cJSON *st;
        cJSON_ArrayForEach(st, stages) {
            const char *dn = str(st, "dir");
            if (n < MAX_STAGES && dn && dn[0] >= '0' && dn[0] <= '9' && strchr(dn, '-') && !strchr(dn, '/'))
                names[n++] = strdup(dn);
        }
        closedir(d);
    } else {
        struct dirent *e;
        while ((e = readdir(d)) && n < MAX_STAGES)
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && strchr(e->d_name, '-')) names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char sd[1600];
        snprintf(sd, sizeof sd, "%s/%s", R->run_dir, names[i]);
        const char *kind_from_dir = strchr(names[i], '-') + 1;
        cJSON *man = NULL, *ev = NULL, *bl = NULL, *bn = NULL, *imp = NULL, *cv = NULL, *sum = NULL;
#define LOAD(file, var) (snprintf(path, sizeof path, "%s/" file, sd), load_json(R, path, &var, err))
        rc = LOAD("manifest.json", man) || LOAD("eval.json", ev) || LOAD("baseline.json", bl) ||
             LOAD("bench.json", bn) || LOAD("importance.json", imp) || LOAD("cv.json", cv) ||
             LOAD("summary.json", sum);
#undef LOAD
        if (!rc) {
            snprintf(path, sizeof path, "%s/metrics.jsonl", sd);
            rc = load_metrics(R, path, err);
        }
        if (rc) break;
        stage_row_t *s = &R->st[R->n_st++];
        snprintf(s->dir, sizeof s->dir, "%s", names[i]);
        const char *mk = str(man, "kind"), *ms = str(man, "status");
        snprintf(s->kind, sizeof s->kind, "%s", mk ? mk : kind_from_dir);
        snprintf(s->status, sizeof s->status, "%s", ms ? ms : "unknown");
        s->seconds = num(man, "seconds");
        const cJSON *settings = man ? cJSON_GetObjectItemCaseSensitive(man, "settings") : NULL;
        if (ev) {
            const char *vn = str(ev, "variant") ? str(ev, "variant") : str(settings, "variant") ? str(settings, "variant") : kind_from_dir;
            variant_t *v = variant_get(R, vn);
            if (v) v->eval = ev;
        }
        if (bl) {
            variant_t *v = variant_get(R, "baseline (classical)");
            if (v) v->eval = bl;
        }
        if (bn) {
            const char *vn = str(bn, "variant") ? str(bn, "variant") : str(settings, "variant");
            if (!vn) /* match the benchmarked model to an evaluated one */
                for (int k = 0; k < R->n_v && !vn; k++)
                    if (R->v[k].eval && str(R->v[k].eval, "model_path") && str(bn, "model") &&
                        !strcmp(base_name(str(R->v[k].eval, "model_path")), base_name(str(bn, "model"))))
                        vn = R->v[k].name;
            variant_t *v = variant_get(R, vn ? vn : kind_from_dir);
            if (v) v->bench = bn;
        }
        if (imp) R->importance = imp;
        if (cv) R->cv = cv;
        if (sum) R->summary = sum;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    return rc;
}

/* ---- output helpers: every table goes to both files ---- */
static void html_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void heading(report_t *R, const char *t) {
    fprintf(R->md, "\n## %s\n\n", t);
    fputs("<h2>", R->html);
    html_esc(R->html, t);
    fputs("</h2>\n", R->html);
}

static void para(report_t *R, const char *t) {
    fprintf(R->md, "%s\n\n", t);
    fputs("<p>", R->html);
    html_esc(R->html, t);
    fputs("</p>\n", R->html);
}

static void table_begin(report_t *R, const char *id, int n, const char *const *cols) {
    fputs("|", R->md);
    for (int i = 0; i < n; i++) fprintf(R->md, " %s |", cols[i]);
    fputs("\n|", R->md);
    for (int i = 0; i < n; i++) fputs("---|", R->md);
    fputs("\n", R->md);
    fprintf(R->html, "<table id=\"%s\"><tr>", id);
    for (int i = 0; i < n; i++) {
        fputs("<th>", R->html);
        html_esc(R->html, cols[i]);
        fputs("</th>", R->html);
    }
    fputs("</tr>\n", R->html);
}

static void row(report_t *R, int n, char cells[][96]) {
    fputs("|", R->md);
    for (int i = 0; i < n; i++) fprintf(R->md, " %s |", cells[i]);
    fputs("\n", R->md);
    fputs("<tr>", R->html);
    for (int i = 0; i < n; i++) {
        fputs("<td>", R->html);
        html_esc(R->html, cells[i]);
        fputs("</td>", R->html);
    }
    fputs("</tr>\n", R->html);
}

static void table_end(report_t *R) {
    fputs("\n", R->md);
    fputs("</table>\n", R->html);
}

static void fmt(char *cell, const char *f, double x) {
    if (isnan(x)) snprintf(cell, 96, "–");
    else snprintf(cell, 96, f, x);
}

static void figure(report_t *R, const char *file, const char *caption) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", R->rdir, file);
    if (access(p, F_OK)) {
        char t[300];
        snprintf(t, sizeof t, "%s: not drawn (gnuplot unavailable or no data).", caption);
        para(R, t);
        return;
    }
    fprintf(R->md, "![%s](%s)\n\n", caption, file);
    fprintf(R->html, "<figure><img src=\"%s\" alt=\"", file);
    html_esc(R->html, caption);
    fputs("\"><figcaption>", R->html);
    html_esc(R->html, caption);
    fputs("</figcaption></figure>\n", R->html);
}

/* Writes data + script and runs gnuplot; the SVG is renamed into place. */
static void plot(report_t *R, const char *name, const char *data, const char *script) {
    char dpath[2048], gp[2048], out[2048], tmp[2100];
    snprintf(dpath, sizeof dpath, "%s/%s.dat", R->rdir, name);
    snprintf(out, sizeof out, "%s/%s.svg", R->rdir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(dpath, "w");
    if (!f) return;
    fputs(data, f);
    fclose(f);
    snprintf(gp, sizeof gp, "%s 2>/dev/null", R->o->gnuplot);
    FILE *g = popen(gp, "w");
    if (!g) return;
    fprintf(g, "set terminal svg size 720,380 font 'sans,11' background rgb 'white'\nset output '%s'\n", tmp);
    fprintf(g, "set datafile separator '\\t'\nset key outside right\nset grid ytics\n");
    fprintf(g, "DATA='%s'\n%s\nunset output\n", dpath, script);
    int rc = pclose(g);
    if (rc == 0) rename(tmp, out);
    else unlink(tmp);
    unlink(dpath);
}

/* File size of a variant's model: from its eval.json, else its bench.json (both written by the pipeline). */
static double model_bytes(const variant_t *v) {
    double b = num(v->eval, "model_bytes");
    return isnan(b) ? num(v->bench, "model_bytes") : b;
}

/* Best QPS of a bench.json among levels whose p99 meets the SLA, with its latencies. */
static int bench_best(const report_t *R, const cJSON *b, double *qps, double *p50, double *p99, double *rss) {
    *qps = *p50 = *p99 = *rss = NAN;
    const cJSON *lv = b ? cJSON_GetObjectItemCaseSensitive(b, "levels") : NULL, *l;
    int found = 0;
    cJSON_ArrayForEach(l, lv) {
        double q = num(l, "qps"), p = num(l, "latency_ms_p99");
        if (isnan(q) || isnan(p) || p > R->o->sla_ms) continue;
        if (!found || q > *qps) {
            *qps = q;
            *p50 = num(l, "latency_ms_p50");
            *p99 = p;
            *rss = num(l, "rss_mib_end");
            found = 1;
        }
    }
    if (!found) { /* report the lowest level's latencies even if it misses the SLA */
        l = lv ? cJSON_GetArrayItem(lv, 0) : NULL;
        if (l) {
            *p50 = num(l, "latency_ms_p50");
            *p99 = num(l, "latency_ms_p99");
            *rss = num(l, "rss_mib_end");
        }
    }
    return found;
}

static void hardware(report_t *R) {
    heading(R, "Hardware");
    char model[256] = "unknown", flags[512] = "";
    int cores = 0;
    double mem_kib = NAN;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "processor", 9)) cores++;
        else if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown")) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = '\0';
        } else if (!strncmp(line, "flags", 5) && !flags[0]) {
            static const char *want[] = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                         "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16"};
            for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                char pat[64];
                snprintf(pat, sizeof pat, " %s ", want[i]);
                line[strcspn(line, "\n")] = ' ';
                if (strstr(line, pat)) {
                    strcat(flags, flags[0] ? " " : "");
                    strcat(flags, want[i]);
                }
            }
        }
    }
    if (f) fclose(f);
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "MemTotal:", 9)) mem_kib = atof(line + 9);
    if (f) fclose(f);
    const char *cols[] = {"CPU", "logical cores", "ISA flags", "memory (GiB)"};
    table_begin(R, "hardware", 4, cols);
    char c[4][96];
    snprintf(c[0], 96, "%.95s", model);
    snprintf(c[1], 96, "%d", cores);
    snprintf(c[2], 96, "%.95s", flags);
    fmt(c[3], "%.1f", mem_kib / 1048576.0);
    row(R, 4, c);
    table_end(R);
}

static void stages(report_t *R) {
    heading(R, "Stages");
    char t[512];
    snprintf(t, sizeof t, "Run folder %s, recipe %s.", R->run_dir, str(R->run, "recipe") ? str(R->run, "recipe") : "(no run.json)");
    para(R, t);
    const char *cols[] = {"stage", "kind", "status", "seconds"};
    table_begin(R, "stages", 4, cols);
    for (int i = 0; i < R->n_st; i++) {
        char c[4][96];
        snprintf(c[0], 96, "%s", R->st[i].dir);
        snprintf(c[1], 96, "%s", R->st[i].kind);
        snprintf(c[2], 96, "%s", R->st[i].status);
        fmt(c[3], "%.1f", R->st[i].seconds);
        row(R, 4, c);
    }
    table_end(R);
}

static void data_summary(report_t *R) {
    heading(R, "Data");
    if (!R->summary) {
        para(R, "Data preparation: not run.");
        return;
    }
    const char *cols[] = {"item", "value"};
    table_begin(R, "data", 2, cols);
    const cJSON *x;
    cJSON_ArrayForEach(x, R->summary) {
        char c[2][96];
        snprintf(c[0], 96, "%s", x->string);
        if (cJSON_IsNumber(x)) snprintf(c[1], 96, "%g", x->valuedouble);
        else if (cJSON_IsString(x)) snprintf(c[1], 96, "%s", x->valuestring);
        else {
            char *p = cJSON_PrintUnformatted(x);
            snprintf(c[1], 96, "%s", p ? p : "");
            free(p);
        }
        row(R, 2, c);
    }
    table_end(R);
}

static const cJSON *labels_of(const report_t *R) {
    for (int i = 0; i < R->n_v; i++) {
        const cJSON *l = R->v[i].eval ? cJSON_GetObjectItemCaseSensitive(R->v[i].eval, "labels") : NULL;
        if (cJSON_IsArray(l)) return l;
    }
    return R->cv ? cJSON_GetObjectItemCaseSensitive(R->cv, "labels") : NULL;
}

static void cv_table(report_t *R) {
    heading(R, "Table 2.2 - cross-validation per fold");
    if (!R->cv) {
        para(R, "Cross-validation: not run.");
        return;
    }
    const cJSON *labs = cJSON_GetObjectItemCaseSensitive(R->cv, "labels"), *l;
    const char *cols[16] = {"fold", "accuracy", "macro-F1"};
    int n = 3;
    cJSON_ArrayForEach(l, labs) if (n < 14 && cJSON_IsString(l)) cols[n++] = l->valuestring;
    cols[n++] = "eval loss";
    table_begin(R, "cv", n, cols);
    const cJSON *folds = cJSON_GetObjectItemCaseSensitive(R->cv, "folds"), *f;
    const cJSON *extra[2] = {cJSON_GetObjectItemCaseSensitive(R->cv, "mean"), cJSON_GetObjectItemCaseSensitive(R->cv, "sd")};
    int k = 0;
    cJSON_ArrayForEach(f, folds) {
        char c[16][96];
        fmt(c[0], "%.0f", num(f, "fold"));
        fmt(c[1], "%.4f", num(f, "accuracy"));
        fmt(c[2], "%.4f", num(f, "macro_f1"));
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(f, "per_class_f1");
        for (int i = 3; i < n - 1; i++) fmt(c[i], "%.4f", num(pc, cols[i]));
        fmt(c[n - 1], "%.4f", num(f, "eval_loss"));
        row(R, n, c);
        k++;
    }
    for (int e = 0; e < 2; e++) {
        if (!extra[e]) continue;
        char c[16][96];
        snprintf(c[0], 96, "%s", e ? "sd" : "mean");
        fmt(c[1], "%.4f", num(extra[e], "accuracy"));
        fmt(c[2], "%.4f", num(extra[e], "macro_f1"));
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(extra[e], "per_class_f1");
        for (int i = 3; i < n - 1; i++) fmt(c[i], "%.4f", num(pc, cols[i]));
        fmt(c[n - 1], "%.4f", num(extra[e], "eval_loss"));
        row(R, n, c);
    }
    table_end(R);
}

static double seed_f1(const char *variant, const char **src) {
    for (size_t i = 0; i < sizeof SEED / sizeof SEED[0]; i++)
        if (!strcmp(SEED[i].variant, variant)) {
            *src = SEED[i].source;
            return SEED[i].macro_f1;
        }
    *src = "";
    return NAN;
}

static void accuracy_table(report_t *R) {
    heading(R, "Tables 2.3, 2.4, 4.1 - accuracy per compression stage");
    para(R, "Seed figures (dissertation, SmolLM-class 1B model on its own test split) are shown beside ours for reference.");
    const cJSON *labs = labels_of(R), *l;
    const char *cols[20] = {"variant", "macro-F1", "accuracy"};
    int n = 3;
    cJSON_ArrayForEach(l, labs) if (n < 15 && cJSON_IsString(l)) cols[n++] = l->valuestring;
    int nl = n - 3;
    static char f1names[16][40];
    for (int i = 0; i < nl; i++) {
        snprintf(f1names[i], sizeof f1names[i], "F1-%s", cols[3 + i]);
    }
    const char *hdr[20];
    memcpy(hdr, cols, sizeof hdr);
    for (int i = 0; i < nl; i++) hdr[3 + i] = f1names[i];
    hdr[n] = "n";
    hdr[n + 1] = "seed macro-F1";
    table_begin(R, "accuracy", n + 2, hdr);
    /* evaluated variants, then expected ones that did not run */
    for (int i = 0; i < R->n_v; i++) {
        const cJSON *e = R->v[i].eval;
        if (!e) continue;
        char c[20][96];
        snprintf(c[0], 96, "%s", R->v[i].name);
        fmt(c[1], "%.4f", num(e, "macro_f1"));
        fmt(c[2], "%.4f", num(e, "accuracy"));
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(e, "per_class");
        for (int k = 0; k < nl; k++) fmt(c[3 + k], "%.4f", num(cJSON_GetObjectItemCaseSensitive(pc, cols[3 + k]), "f1"));
        fmt(c[n], "%.0f", num(e, "n"));
        const char *src;
        double s = seed_f1(R->v[i].name, &src);
        if (isnan(s)) snprintf(c[n + 1], 96, "–");
        else snprintf(c[n + 1], 96, "%.3f (%s)", s, src);
        row(R, n + 2, c);
    }
    for (size_t k = 0; k < sizeof EXPECTED / sizeof EXPECTED[0]; k++) {
        int have = 0;
        for (int i = 0; i < R->n_v; i++) have |= R->v[i].eval && !strcmp(R->v[i].name, EXPECTED[k]);
        if (have) continue;
        char c[20][96];
        snprintf(c[0], 96, "%s", EXPECTED[k]);
        for (int i = 1; i < n + 1; i++) snprintf(c[i], 96, "not run");
        const char *src;
        double s = seed_f1(EXPECTED[k], &src);
        snprintf(c[n + 1], 96, "%.3f (%s)", s, src);
        row(R, n + 2, c);
    }
    table_end(R);
}

static void confusion(report_t *R) {
    heading(R, "Confusion matrices (rows gold, columns predicted)");
    for (int i = 0; i < R->n_v; i++) {
        const cJSON *e = R->v[i].eval;
        const cJSON *conf = e ? cJSON_GetObjectItemCaseSensitive(e, "confusion") : NULL;
        const cJSON *labs = e ? cJSON_GetObjectItemCaseSensitive(e, "labels") : NULL;
        if (!cJSON_IsArray(conf) || !cJSON_IsArray(labs)) continue;
        char t[128];
        snprintf(t, sizeof t, "%s:", R->v[i].name);
        para(R, t);
        const char *cols[17] = {"gold \\ predicted"};
        int n = 1;
        const cJSON *l, *r;
        cJSON_ArrayForEach(l, labs) if (n < 17 && cJSON_IsString(l)) cols[n++] = l->valuestring;
        char id[96];
        snprintf(id, sizeof id, "confusion-%d", i);
        table_begin(R, id, n, cols);
        int g = 0;
        cJSON_ArrayForEach(r, conf) {
            char c[17][96];
            snprintf(c[0], 96, "%s", g + 1 < n ? cols[g + 1] : "?");
            for (int k = 1; k < n; k++) fmt(c[k], "%.0f", cJSON_IsNumber(cJSON_GetArrayItem(r, k - 1)) ? cJSON_GetArrayItem(r, k - 1)->valuedouble : NAN);
            row(R, n, c);
            g++;
        }
        table_end(R);
    }
}

static void serving_tables(report_t *R) {
    heading(R, "Table 5.1 - latency, throughput and size per variant");
    char t[512];
    snprintf(t, sizeof t, "QPS is the best measured level whose p99 latency meets the %.0f ms SLA; p50/p99 and RSS at that level. "
             "blocks: transformer blocks in the model (fewer after a prune stage; seed Appendix A).", R->o->sla_ms);
    para(R, t);
    const char *cols[] = {"variant", "size (MiB)", "p50 (ms)", "p99 (ms)", "QPS", "RSS (MiB)", "macro-F1", "blocks"};
    table_begin(R, "serving", 8, cols);
    char data[8192] = "";
    size_t dl = 0;
    for (int i = 0; i < R->n_v; i++) {
        variant_t *v = &R->v[i];
        if (!strncmp(v->name, "baseline", 8)) continue;
        char c[8][96];
        double q, p50, p99, rss;
        bench_best(R, v->bench, &q, &p50, &p99, &rss);
        snprintf(c[0], 96, "%s", v->name);
        fmt(c[1], "%.1f", model_bytes(v) / 1048576.0);
        if (!v->bench) {
            for (int k = 2; k < 6; k++) snprintf(c[k], 96, "not run");
        } else {
            fmt(c[2], "%.1f", p50);
            fmt(c[3], "%.1f", p99);
            fmt(c[4], "%.2f", q);
            fmt(c[5], "%.0f", rss);
            if (!isnan(q)) dl += (size_t)snprintf(data + dl, sizeof data - dl, "%s\t%.4f\n", v->name, q);
        }
        fmt(c[6], "%.4f", num(v->eval, "macro_f1"));
        double nb = num(v->eval, "n_layer");
        fmt(c[7], "%.0f", isnan(nb) ? num(v->bench, "n_layer") : nb);
        row(R, 8, c);
    }
    table_end(R);
    if (dl) plot(R, "throughput", data, "set style fill solid 0.6\nset boxwidth 0.6\nset ylabel 'requests/s (p99 within SLA)'\nset xtics rotate by -30\nunset key\nplot DATA using 0:2:xtic(1) with boxes lc rgb '#3070b0'");
    figure(R, "throughput.svg", "Figure 5.1 - throughput per variant");

    heading(R, "Table 5.4 - instances and monthly cost");
    snprintf(t, sizeof t, "%.0f QPS under a %.0f ms p99 SLA at $%.3f per instance-hour, 730 hours a month; one instance = the benchmarked machine.",
             R->o->target_qps, R->o->sla_ms, R->o->price_per_hour);
    para(R, t);
    const char *cc[] = {"variant", "macro-F1", "size (MiB)", "QPS per instance", "instances", "$/hour", "monthly $"};
    table_begin(R, "cost", 7, cc);
    dl = 0;
    data[0] = '\0';
    for (int i = 0; i < R->n_v; i++) {
        variant_t *v = &R->v[i];
        if (!strncmp(v->name, "baseline", 8)) continue;
        char c[7][96];
        double q, p50, p99, rss;
        int ok = bench_best(R, v->bench, &q, &p50, &p99, &rss);
        snprintf(c[0], 96, "%s", v->name);
        fmt(c[1], "%.4f", num(v->eval, "macro_f1"));
        fmt(c[2], "%.1f", model_bytes(v) / 1048576.0);
        fmt(c[5], "%.3f", R->o->price_per_hour);
        if (!v->bench) {
            snprintf(c[3], 96, "not run");
            snprintf(c[4], 96, "not run");
            snprintf(c[6], 96, "not run");
        } else if (!ok || q <= 0) {
            snprintf(c[3], 96, "0");
            snprintf(c[4], 96, "infeasible (SLA)");
            snprintf(c[6], 96, "infeasible (SLA)");
        } else {
            double inst = ceil(R->o->target_qps / q), monthly = inst * R->o->price_per_hour * 730.0;
            fmt(c[3], "%.2f", q);
            fmt(c[4], "%.0f", inst);
            fmt(c[6], "%.2f", monthly);
            dl += (size_t)snprintf(data + dl, sizeof data - dl, "%s\t%.4f\n", v->name, monthly);
        }
        row(R, 7, c);
    }
    table_end(R);
    if (dl) plot(R, "cost", data, "set style fill solid 0.6\nset boxwidth 0.6\nset ylabel 'monthly $ at target QPS'\nset xtics rotate by -30\nunset key\nplot DATA using 0:2:xtic(1) with boxes lc rgb '#b05030'");
    figure(R, "cost.svg", "Figure 5.3 - monthly cost per variant");
}

static void training(report_t *R) {
    heading(R, "Training curves");
    if (!R->n_pts) {
        para(R, "Training: not run.");
        return;
    }
    char *data = malloc((size_t)R->n_pts * 96 + 1);
    if (!data) return;
    size_t dl = 0;
    data[0] = '\0';
    for (int i = 0; i < R->n_pts; i++) {
        char a[32], b[32], c[32];
        fmt(a, "%.6f", R->tloss[i]);
        fmt(b, "%.6f", R->eloss[i]);
        fmt(c, "%.6f", R->f1[i]);
        dl += (size_t)snprintf(data + dl, (size_t)R->n_pts * 96 + 1 - dl, "%g\t%s\t%s\t%s\n", R->step[i],
                               isnan(R->tloss[i]) ? "NaN" : a, isnan(R->eloss[i]) ? "NaN" : b, isnan(R->f1[i]) ? "NaN" : c);
    }
    plot(R, "training", data,
         "set xlabel 'step'\nset ylabel 'loss'\nset y2label 'eval macro-F1'\nset y2range [0:1]\nset y2tics\n"
         "plot DATA using 1:2 with lines title 'train loss', DATA using 1:3 with linespoints title 'eval loss', "
         "DATA using 1:4 axes x1y2 with linespoints title 'eval macro-F1'");
    free(data);
    figure(R, "training.svg", "Train/eval loss and eval macro-F1 over steps");
}

static void importance(report_t *R) {
    heading(R, "Per-layer importance (Fig 3.1)");
    const cJSON *layers = R->importance ? cJSON_GetObjectItemCaseSensitive(R->importance, "layers") : NULL, *l;
    if (!cJSON_IsArray(layers)) {
        para(R, "Pruning: not run.");
        return;
    }
    const cJSON *rem = cJSON_GetObjectItemCaseSensitive(R->importance, "removed"), *x;
    char t[512];
    size_t tl = (size_t)snprintf(t, sizeof t, "Ranking by %s; removed blocks:", str(R->importance, "method") ? str(R->importance, "method") : "?");
    int nr = 0;
    cJSON_ArrayForEach(x, rem) if (cJSON_IsNumber(x) && tl < sizeof t - 16) tl += (size_t)snprintf(t + tl, sizeof t - tl, " %d", x->valueint), nr++;
    if (!nr) tl += (size_t)snprintf(t + tl, sizeof t - tl, " none");
    double nc = num(R->importance, "n_calib");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(R->importance, "loss_scored");
    if (!isnan(nc) && tl < sizeof t - 100)
        snprintf(t + tl, sizeof t - tl, "; %.0f calibration rows%s.", nc,
                 cJSON_IsFalse(ls) ? "; loss increase not computed (cosine only)" : "");
    para(R, t);
    const char *cols[] = {"layer", "1 - cos(h_in, h_out)", "loss increase", "rank (cosine)", "rank (loss)"};
    table_begin(R, "importance", 5, cols);
    char data[16384] = "";
    size_t dl = 0;
    int have_loss = 0;
    cJSON_ArrayForEach(l, layers) {
        char c[5][96];
        fmt(c[0], "%.0f", num(l, "layer"));
        fmt(c[1], "%.6f", num(l, "cosine"));
        fmt(c[2], "%.4f", num(l, "loss_increase"));
        fmt(c[3], "%.0f", num(l, "rank_cosine"));
        fmt(c[4], "%.0f", num(l, "rank_loss"));
        row(R, 5, c);
        double li = num(l, "loss_increase");
        have_loss |= !isnan(li);
        if (dl < sizeof data - 100) {
            char lis[32] = "NaN";
            if (!isnan(li)) snprintf(lis, sizeof lis, "%g", li);
            dl += (size_t)snprintf(data + dl, sizeof data - dl, "%g\t%g\t%s\n", num(l, "layer"), num(l, "cosine"), lis);
        }
    }
    table_end(R);
    if (have_loss)
        plot(R, "importance", data,
             "set style fill solid 0.6\nset xlabel 'block'\nset ylabel '1 - cos'\nset y2label 'loss increase'\nset y2tics\n"
             "plot DATA using ($1-0.2):2:(0.4) with boxes title '1 - cos(h_in, h_out)', "
             "DATA using 1:3 axes x1y2 with linespoints title 'loss increase when skipped'");
    else /* cosine-only scores */
        plot(R, "importance", data,
             "set style fill solid 0.6\nset xlabel 'block'\nset ylabel '1 - cos'\n"
             "plot DATA using 1:2:(0.6) with boxes title '1 - cos(h_in, h_out)'");
    figure(R, "importance.svg", "Figure 3.1 - per-layer importance");
}

int report_write(const char *run_dir, const report_opts_t *o, tl_err_t *err) {
    report_t *R = calloc(1, sizeof *R);
    if (!R) return tl_fail(err, "report: out of memory");
    R->run_dir = run_dir;
    R->o = o;
    int rc = load_run(R, err);
    char *mdb = NULL, *htb = NULL;
    size_t mdn = 0, htn = 0;
    if (!rc) {
        snprintf(R->rdir, sizeof R->rdir, "%s/report", run_dir);
        if (mkdir(R->rdir, 0755) && errno != EEXIST) rc = tl_fail(err, "%s: cannot create: %s", R->rdir, strerror(errno));
    }
    if (!rc) {
        R->md = open_memstream(&mdb, &mdn);
        R->html = open_memstream(&htb, &htn);
        if (!R->md || !R->html) rc = tl_fail(err, "report: out of memory");
    }
    if (!rc) {
        const char *name = str(R->run, "name") ? str(R->run, "name") : base_name(run_dir);
        fprintf(R->md, "# tasklm run report: %s\n", name);
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tasklm run report</title>\n"
              "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
              "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}"
              "th{background:#eee}td:first-child{text-align:left}img{max-width:100%}</style></head><body>\n",
              R->html);
        fputs("<h1>tasklm run report: ", R->html);
        html_esc(R->html, name);
        fputs("</h1>\n", R->html);
        hardware(R);
        stages(R);
        data_summary(R);
        cv_table(R);
        accuracy_table(R);
        confusion(R);
        training(R);
        importance(R);
        serving_tables(R);
        /* marks the body with the number of images that failed to render (a
         * headless-browser check reads it back) */
        fputs("<p>Markdown version: <a href=\"report.md\">report.md</a></p>\n"
              "<script>window.addEventListener('load',function(){var b=0,im=document.images;"
              "for(var i=0;i<im.length;i++)if(!im[i].complete||im[i].naturalWidth===0)b++;"
              "document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-broken-images',b);});"
              "</script>\n</body></html>\n",
              R->html);
        fclose(R->md);
        fclose(R->html);
        char p[2048];
        snprintf(p, sizeof p, "%s/report.md", R->rdir);
        rc = atomic_file_write_all(p, mdb, mdn, err);
        snprintf(p, sizeof p, "%s/index.html", R->rdir);
        if (!rc) rc = atomic_file_write_all(p, htb, htn, err);
    }
    free(mdb);
    free(htb);
    for (int i = 0; i < R->n_owned; i++) cJSON_Delete(R->owned[i]);
    free(R);
    return rc;
}

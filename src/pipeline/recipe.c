/* Recipe parsing: libinih does the INI syntax; a line-counting reader gives
 * the handler the line number of every key and records section headers (so
 * a stage without keys, like [export], still counts). */
#include "pipeline/recipe.h"
#include "core/str.h"
#include "task/task.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *kind;
    const char *keys; /* name:type, type i=int f=float s=string */
} kind_spec_t;

static const kind_spec_t kinds[] = {
    {"recipe", "name:s,model:s,task:s,task_dir:s,data:s,threads:i,seed:i,runs_dir:s"},
    {"prepare", "split:f,val_split:f,rows:i,seed:i,swap:i"},
    {"baseline", ""},
    {"eval", "variant:s,limit:i,data:s,input:s"},
    {"train", "rank:i,alpha:f,targets:s,dropout:f,epochs:i,max_steps:i,lr:f,schedule:s,warmup:i,weight_decay:f,"
              "clip:f,batch:i,micro_batch:i,eval_every:i,eval_delay:i,eval_limit:i,train_limit:i,patience:i,seed:i,adapter:s,input:s"},
    {"merge", "type:s"},
    {"quantize", "type:s,input:s"},
    {"prune", "remove:i,drop:s,calib_rows:i,method:s,cosine_only:i,ffn_keep:i,ffn_down_type:s,input:s"},
    {"export", "input:s"},
    {"bench", "duration:f,concurrency:s,target_qps:f,sla_ms:f,variant:s,input:s"},
    {"report", ""},
};

static const kind_spec_t *kind_find(const char *kind) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].kind, kind)) return &kinds[i];
    return NULL;
}

const char *recipe_kind_keys(const char *kind) {
    const kind_spec_t *k = kind_find(kind);
    return k ? k->keys : NULL;
}

/* Type letter of key in spec, or 0 when the key is not there. */
static char key_type(const char *spec, const char *key) {
    size_t n = strlen(key);
    for (const char *p = spec; *p;) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        if ((size_t)(colon - p) == n && !strncmp(p, key, n)) return colon[1];
        p = strchr(colon, ',');
        if (!p) break;
        p++;
    }
    return 0;
}

typedef struct {
    FILE *fp;
    int line;
    recipe_t *r;
    int bad_line; /* first error found by us */
    tl_err_t *err;
} parse_t;

static int parse_fail(parse_t *p, const char *fmt, const char *a, const char *b) {
    if (!p->bad_line) {
        char msg[400];
        snprintf(msg, sizeof msg, fmt, a, b);
        tl_fail(p->err, "%s:%d: %s", p->r->path, p->line, msg);
        p->bad_line = p->line;
    }
    return 0;
}

static int valid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' || *s == '_' || *s == '+')) return 0;
    return 1;
}

/* A section header line: registers the stage (or checks [recipe]). */
static void on_section(parse_t *p, const char *text) {
    recipe_t *r = p->r;
    char sec[128];
    snprintf(sec, sizeof sec, "%s", text);
    char *end = strchr(sec, ']');
    if (!end) return; /* inih reports the syntax error */
    *end = '\0';
    if (!strcmp(sec, "recipe")) return;
    char kind[64] = "", name[128] = "";
    if (sscanf(sec, "%63s %127s", kind, name) < 1) {
        parse_fail(p, "empty section name%s%s", "", "");
        return;
    }
    const char *sp = strchr(sec, ' ');
    if (sp && strchr(sp + 1 + strspn(sp + 1, " "), ' ')) {
        parse_fail(p, "section [%s]: expected [KIND] or [KIND NAME]%s", sec, "");
        return;
    }
    if (!kind_find(kind)) {
        parse_fail(p, "unknown stage kind '%s' in [%s] (expected prepare, baseline, eval, train, merge, quantize, prune, export, bench or report)", kind, sec);
        return;
    }
    if (!name[0]) snprintf(name, sizeof name, "%s", kind);
    if (!valid_name(name) || strlen(name) >= sizeof r->stages[0].name) {
        parse_fail(p, "stage name '%s' must be 1-63 characters of a-z, 0-9, '-', '_' or '+'%s", name, "");
        return;
    }
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].name, name)) {
            if (!p->bad_line) {
                tl_fail(p->err, "%s:%d: duplicate stage name '%s' (first at line %d)", r->path, p->line, name, r->stages[i].line);
                p->bad_line = p->line;
            }
            return;
        }
    if (r->n_stages == RECIPE_MAX_STAGES) {
        parse_fail(p, "more than 32 stages%s%s", "", "");
        return;
    }
    recipe_stage_t *s = &r->stages[r->n_stages++];
    memset(s, 0, sizeof *s);
    tl_strlcpy(s->kind, sizeof s->kind, kind); /* a known kind: fits */
    tl_strlcpy(s->name, sizeof s->name, name); /* length checked above */
    s->line = p->line;
}

static char *reader(char *buf, int num, void *stream) {
    parse_t *p = stream;
    char *s = fgets(buf, num, p->fp);
    if (!s) return NULL;
    p->line++;
    size_t n = strlen(s);
    if (n == (size_t)num - 1 && s[n - 1] != '\n' && !feof(p->fp)) {
        parse_fail(p, "line longer than %s characters%s", "198", "");
        int c;
        while ((c = fgetc(p->fp)) != EOF && c != '\n') {}
    }
    const char *t = s + strspn(s, " \t");
    if (*t == '[') on_section(p, t + 1);
    return s;
}

static int check_value(parse_t *p, char type, const char *key, const char *val) {
    char *end;
    errno = 0;
    if (type == 'i') {
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < 0) return parse_fail(p, "%s = '%s' must be a non-negative integer", key, val);
    } else if (type == 'f') {
        double v = strtod(val, &end);
        if (errno || end == val || *end || !(v >= 0)) return parse_fail(p, "%s = '%s' must be a non-negative number", key, val);
    } else if (!*val) {
        return parse_fail(p, "%s has an empty value%s", key, "");
    }
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_t *p = user;
    recipe_t *r = p->r;
    if (!section[0]) return parse_fail(p, "key '%s' outside a section (start with [recipe])%s", name, "");
    char kind[64] = "";
    sscanf(section, "%63s", kind);
    const kind_spec_t *spec = kind_find(kind);
    if (!spec) return 0; /* reported at the header */
    char type = key_type(spec->keys, name);
    if (!type)
        return parse_fail(p, "unknown key '%s' in a [%s] section", name, kind);
    if (!check_value(p, type, name, value)) return 0;
    if (!strcmp(kind, "recipe")) {
        static const struct { const char *k; size_t off, size; } str_keys[] = {
            {"name", offsetof(recipe_t, name), sizeof r->name},       {"model", offsetof(recipe_t, model), sizeof r->model},
            {"task", offsetof(recipe_t, task), sizeof r->task},       {"task_dir", offsetof(recipe_t, task_dir), sizeof r->task_dir},
            {"data", offsetof(recipe_t, data), sizeof r->data},       {"runs_dir", offsetof(recipe_t, runs_dir), sizeof r->runs_dir},
        };
        if (!strcmp(name, "threads")) r->threads = atoi(value);
        else if (!strcmp(name, "seed")) r->seed = atol(value);
        else
            for (size_t i = 0; i < sizeof str_keys / sizeof str_keys[0]; i++)
                if (!strcmp(name, str_keys[i].k)) {
                    if (strlen(value) >= str_keys[i].size) return parse_fail(p, "value of %s is too long%s", name, "");
                    snprintf((char *)r + str_keys[i].off, str_keys[i].size, "%s", value);
                }
        if (!strcmp(name, "task") || !strcmp(name, "task_dir")) r->task_line = p->line;
        if (!strcmp(name, "task") && (!value[0] || strchr(value, '/')))
            return parse_fail(p, "task '%s' must be a folder name under tasks/ (use task_dir = PATH for a path)%s", value, "");
        if (!strcmp(name, "name") && !valid_name(value)) return parse_fail(p, "name '%s' must be a-z, 0-9, '-', '_' or '+'%s", value, "");
        return 1;
    }
    if (r->n_stages == 0) return 0;
    recipe_stage_t *s = &r->stages[r->n_stages - 1];
    for (int i = 0; i < s->n_kv; i++)
        if (!strcmp(s->kv[i].key, name)) return parse_fail(p, "duplicate key '%s' in [%s]", name, section);
    if (s->n_kv == RECIPE_MAX_KEYS || strlen(value) >= sizeof s->kv[0].val) return parse_fail(p, "value of '%s' too long%s", name, "");
    recipe_kv_t *kv = &s->kv[s->n_kv++];
    snprintf(kv->key, sizeof kv->key, "%s", name);
    snprintf(kv->val, sizeof kv->val, "%s", value);
    kv->line = p->line;
    return 1;
}

const char *recipe_get(const recipe_stage_t *s, const char *key) {
    for (int i = 0; i < s->n_kv; i++)
        if (!strcmp(s->kv[i].key, key)) return s->kv[i].val;
    return NULL;
}

/* Line of key in s (the section's line when absent). */
static int key_line(const recipe_stage_t *s, const char *key) {
    for (int i = 0; i < s->n_kv; i++)
        if (!strcmp(s->kv[i].key, key)) return s->kv[i].line;
    return s->line;
}

/* A list of block numbers: digits separated by single commas. */
static int valid_block_list(const char *v) {
    if (!isdigit((unsigned char)*v)) return 0;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p == ',' && isdigit((unsigned char)p[1]))) return 0;
    return 1;
}

static int check_prune(const recipe_t *r, const recipe_stage_t *s, tl_err_t *err) {
    const char *rm = recipe_get(s, "remove"), *drop = recipe_get(s, "drop"), *fk = recipe_get(s, "ffn_keep"), *v;
    if (!rm && !drop && !fk)
        return tl_fail(err, "%s:%d: [prune %s] needs remove = K (blocks to remove by importance), drop = LIST or ffn_keep = N (FFN channels per block)",
                       r->path, s->line, s->name);
    if (fk && drop)
        return tl_fail(err, "%s:%d: ffn_keep scores channels on calibration rows; it does not combine with drop = LIST (use remove = K)",
                       r->path, key_line(s, "ffn_keep"));
    if (fk && atol(fk) < 1) return tl_fail(err, "%s:%d: ffn_keep = %s must be at least 1", r->path, key_line(s, "ffn_keep"), fk);
    if (recipe_get(s, "ffn_down_type") && !fk)
        return tl_fail(err, "%s:%d: ffn_down_type needs ffn_keep = N", r->path, key_line(s, "ffn_down_type"));
    static const char *const ranking[] = {"method", "cosine_only"};
    for (size_t i = 0; fk && !rm && !drop && i < sizeof ranking / sizeof ranking[0]; i++)
        if (recipe_get(s, ranking[i]))
            return tl_fail(err, "%s:%d: %s ranks blocks; it needs remove = K", r->path, key_line(s, ranking[i]), ranking[i]);
    if (rm && drop) return tl_fail(err, "%s:%d: [prune %s]: give remove or drop, not both", r->path, key_line(s, "drop"), s->name);
    if (rm && atol(rm) < 1) return tl_fail(err, "%s:%d: remove = %s must be at least 1", r->path, key_line(s, "remove"), rm);
    if (drop && !valid_block_list(drop))
        return tl_fail(err, "%s:%d: drop = '%s' must be block numbers separated by commas (e.g. 13,14)", r->path, key_line(s, "drop"), drop);
    static const char *const scoring[] = {"calib_rows", "method", "cosine_only"};
    for (size_t i = 0; drop && i < sizeof scoring / sizeof scoring[0]; i++)
        if (recipe_get(s, scoring[i]))
            return tl_fail(err, "%s:%d: %s scores blocks; drop = LIST removes them without scoring", r->path, key_line(s, scoring[i]), scoring[i]);
    if ((v = recipe_get(s, "method")) && strcmp(v, "cosine") && strcmp(v, "loss"))
        return tl_fail(err, "%s:%d: method = '%s' must be cosine or loss", r->path, key_line(s, "method"), v);
    if ((v = recipe_get(s, "cosine_only")) && strcmp(v, "0") && strcmp(v, "1"))
        return tl_fail(err, "%s:%d: cosine_only = '%s' must be 0 or 1", r->path, key_line(s, "cosine_only"), v);
    if (v && !strcmp(v, "1") && (v = recipe_get(s, "method")) && !strcmp(v, "loss"))
        return tl_fail(err, "%s:%d: method = loss needs the loss scores that cosine_only = 1 skips", r->path, key_line(s, "method"));
    if ((v = recipe_get(s, "calib_rows")) && atol(v) < 1)
        return tl_fail(err, "%s:%d: calib_rows must be at least 1", r->path, key_line(s, "calib_rows"));
    return 0;
}

/* input = STAGE names an earlier stage that writes a model. */
static int check_input(const recipe_t *r, const recipe_stage_t *s, tl_err_t *err) {
    const char *v = recipe_get(s, "input");
    if (!v) return 0;
    for (const recipe_stage_t *e = r->stages; e < s; e++)
        if (!strcmp(e->name, v)) {
            if (!strcmp(e->kind, "merge") || !strcmp(e->kind, "quantize") || !strcmp(e->kind, "prune")) return 0;
            return tl_fail(err, "%s:%d: input = '%s' names a%s %s stage; it must name a merge, quantize or prune stage", r->path,
                           key_line(s, "input"), v, strchr("aeiou", e->kind[0]) ? "n" : "", e->kind);
        }
    return tl_fail(err, "%s:%d: input = '%s' is not an earlier stage (name a merge, quantize or prune stage above this one)",
                   r->path, key_line(s, "input"), v);
}

static int check_stage(const recipe_t *r, const recipe_stage_t *s, tl_err_t *err) {
    const char *v;
    if (check_input(r, s, err)) return -1;
    if (!strcmp(s->kind, "prune") && check_prune(r, s, err)) return -1;
    if (!strcmp(s->kind, "merge") || !strcmp(s->kind, "quantize")) {
        v = recipe_get(s, "type");
        if (!v && !strcmp(s->kind, "quantize")) return tl_fail(err, "%s:%d: [%s %s] needs a type (q8_0, q4_k, ...)", r->path, s->line, s->kind, s->name);
    }
    if (!strcmp(s->kind, "train") && (v = recipe_get(s, "adapter")) && strcmp(v, "best") && strcmp(v, "last"))
        return tl_fail(err, "%s:%d: adapter = '%s' must be best or last", r->path, s->line, v);
    if (!strcmp(s->kind, "eval") && (v = recipe_get(s, "data")) && strcmp(v, "test") && strcmp(v, "val"))
        return tl_fail(err, "%s:%d: data = '%s' must be test or val", r->path, s->line, v);
    if (!strcmp(s->kind, "prepare")) {
        const char *sp = recipe_get(s, "split");
        if (sp && !(atof(sp) > 0 && atof(sp) < 1)) return tl_fail(err, "%s:%d: split must be between 0 and 1", r->path, s->line);
        sp = recipe_get(s, "val_split");
        if (sp && !(atof(sp) >= 0 && atof(sp) < 1)) return tl_fail(err, "%s:%d: val_split must be in [0, 1)", r->path, s->line);
    }
    return 0;
}

int recipe_load(recipe_t *r, const char *path, tl_err_t *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    snprintf(r->task, sizeof r->task, "namematch");
    snprintf(r->runs_dir, sizeof r->runs_dir, "runs");
    r->seed = 42;
    parse_t p = {.r = r, .err = err};
    p.fp = fopen(path, "r");
    if (!p.fp) return tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = ini_parse_stream(reader, &p, handler, &p);
    fclose(p.fp);
    if (p.bad_line && (rc == 0 || rc >= p.bad_line)) return -1;
    if (rc > 0) return tl_fail(err, "%s:%d: expected '[section]' or 'key = value'", path, rc);
    if (rc < 0) return tl_fail(err, "%s: cannot read", path);
    if (!r->name[0]) {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        snprintf(r->name, sizeof r->name, "%.*s", (int)strcspn(b, "."), b);
        if (!valid_name(r->name)) return tl_fail(err, "%s: give the run a name (name = ...) in [recipe]", path);
    }
    if (!r->model[0]) return tl_fail(err, "%s: [recipe] needs model = PATH", path);
    if (!r->data[0]) return tl_fail(err, "%s: [recipe] needs data = RAW.csv", path);
    if (r->n_stages == 0) return tl_fail(err, "%s: no stages (add sections such as [prepare], [train lora])", path);
    if (strcmp(r->stages[0].kind, "prepare")) return tl_fail(err, "%s:%d: the first stage must be [prepare]", path, r->stages[0].line);
    for (int i = 0; i < r->n_stages; i++)
        if (check_stage(r, &r->stages[i], err)) return -1;
    /* the task folder is read now, not an hour later by the first stage that needs it */
    if (!r->task_dir[0]) snprintf(r->task_dir, sizeof r->task_dir, "tasks/%s", r->task); /* task is < 64 bytes */
    task_t *t = NULL;
    if (task_load(&t, r->task_dir, err)) {
        tl_err_t e = *err;
        return tl_fail(err, "%s:%d: task: %s", path, r->task_line, e.msg);
    }
    task_free(t);
    return 0;
}

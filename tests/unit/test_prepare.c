#include <stdlib.h>
#include <unistd.h>

#include "task/prepare.h"
#include "task/task.h"
#include "tl_test.h"

TEST(rng_deterministic_and_uniformish) {
    prep_rng_t a, b;
    prep_rng_seed(&a, 42);
    prep_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(prep_rng_next(&a) == prep_rng_next(&b));
    prep_rng_seed(&b, 43);
    CHECK(prep_rng_next(&a) != prep_rng_next(&b));
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[prep_rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) CHECK(hist[i] > 9400 && hist[i] < 10600);
    size_t idx[50], seen[50] = {0};
    for (size_t i = 0; i < 50; i++) idx[i] = i;
    prep_rng_shuffle(&a, idx, 50);
    for (size_t i = 0; i < 50; i++) seen[idx[i]]++;
    for (size_t i = 0; i < 50; i++) CHECK_EQ_INT(seen[i], 1);
}

/* 60 yes, 27 no, 13 partial, as in the seed's corpus */
static void make_labels(int *l) {
    for (int i = 0; i < 100; i++) l[i] = i < 60 ? 0 : i < 87 ? 1 : 2;
}

TEST(split_is_stratified_and_disjoint) {
    int l[100];
    make_labels(l);
    prep_rng_t r;
    prep_rng_seed(&r, 7);
    size_t *tr, *te, ntr, nte;
    tl_err_t err;
    CHECK_EQ_INT(prep_split_stratified(l, 100, 3, 0.9, &r, &tr, &ntr, &te, &nte, &err), 0);
    CHECK_EQ_INT(ntr + nte, 100);
    int cte[3] = {0}, used[100] = {0};
    for (size_t i = 0; i < nte; i++) cte[l[te[i]]]++, used[te[i]]++;
    for (size_t i = 0; i < ntr; i++) used[tr[i]]++;
    CHECK_EQ_INT(cte[0], 6); /* round(60*0.1) */
    CHECK_EQ_INT(cte[1], 3); /* round(2.7) */
    CHECK_EQ_INT(cte[2], 1); /* round(1.3) */
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(used[i], 1);
    free(tr);
    free(te);
    CHECK_EQ_INT(prep_split_stratified(l, 100, 3, 1.0, &r, &tr, &ntr, &te, &nte, &err), -1);
    CHECK_CONTAINS(err.msg, "not in (0, 1)");
}

TEST(oversample_train_only_keeps_originals) {
    int l[100];
    make_labels(l);
    size_t idx[20];
    for (int i = 0; i < 20; i++) idx[i] = (size_t)(i < 10 ? i : i < 16 ? 60 + i : 87 + i - 16); /* 10 yes, 6 no, 4 partial */
    prep_rng_t r;
    prep_rng_seed(&r, 1);
    size_t *o, n;
    tl_err_t err;
    CHECK_EQ_INT(prep_oversample(l, idx, 20, 3, &r, &o, &n, &err), 0);
    CHECK_EQ_INT(n, 30);
    int c[3] = {0}, orig_seen[20] = {0};
    for (size_t i = 0; i < n; i++) {
        c[l[o[i]]]++;
        int found = 0;
        for (int k = 0; k < 20; k++)
            if (idx[k] == o[i]) orig_seen[k] = found = 1;
        CHECK(found); /* nothing from outside the given part */
    }
    CHECK_EQ_INT(c[0], 10);
    CHECK_EQ_INT(c[1], 10);
    CHECK_EQ_INT(c[2], 10);
    for (int k = 0; k < 20; k++) CHECK(orig_seen[k]);
    free(o);
}

TEST(kfold_balanced) {
    int l[100], f[100];
    make_labels(l);
    prep_rng_t r;
    prep_rng_seed(&r, 3);
    tl_err_t err;
    CHECK_EQ_INT(prep_kfold(l, 100, 3, 5, &r, f, &err), 0);
    int per[5][3] = {{0}};
    for (int i = 0; i < 100; i++) per[f[i]][l[i]]++;
    for (int k = 0; k < 5; k++) {
        CHECK_EQ_INT(per[k][0], 12);
        CHECK(per[k][1] == 5 || per[k][1] == 6);
        CHECK(per[k][2] == 2 || per[k][2] == 3);
        CHECK_EQ_INT(per[k][0] + per[k][1] + per[k][2], 20);
    }
    CHECK_EQ_INT(prep_kfold(l, 100, 3, 1, &r, f, &err), -1);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

TEST(load_cleans_and_reports) {
    tl_err_t err = {{0}};
    task_t *t;
    CHECK_EQ_INT(task_load(&t, "tasks/namematch", &err), 0);
    if (!t) return;
    char path[] = "/tmp/tl_test_prep_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_file(path,
               "partner_name,labeled_result,elected_name\n"
               "Jon Smith,  YES ,John Smith\n"
               "x, no ,\n"
               "B,maybe,A\n"
               "Jon Smith,yes,John Smith\n"
               "D,no,C\n"
               "D,partial,C\n"
               "F,Partial, E \n");
    prep_data_t d;
    CHECK_EQ_INT(prep_load(t, path, &d, &err), 0);
    CHECK_EQ_INT(d.n_read, 7);
    CHECK_EQ_INT(d.n_rows, 2);
    CHECK(!d.has_category);
    CHECK_STR(d.rows[0].fields[0], "John Smith"); /* task field order, not file order */
    CHECK_STR(d.rows[0].fields[1], "Jon Smith");
    CHECK_EQ_INT(d.rows[0].label, 0);
    CHECK_STR(d.rows[1].fields[0], "E");
    CHECK_EQ_INT(d.rows[1].label, 2);
    CHECK_EQ_INT(d.n_drops, 5);
    CHECK_EQ_INT(d.drops[0].line, 3);
    CHECK_CONTAINS(d.drops[0].reason, "empty elected_name");
    CHECK_EQ_INT(d.drops[1].line, 4);
    CHECK_CONTAINS(d.drops[1].reason, "'maybe' is not one of");
    CHECK_EQ_INT(d.drops[2].line, 5);
    CHECK_CONTAINS(d.drops[2].reason, "duplicate of the pair at line 2");
    CHECK_EQ_INT(d.drops[3].line, 6);
    CHECK_CONTAINS(d.drops[3].reason, "different label");
    CHECK_EQ_INT(d.drops[4].line, 7);
    prep_data_free(&d);
    write_file(path, "elected_name,labeled_result\nA,yes\n");
    CHECK_EQ_INT(prep_load(t, path, &d, &err), -1);
    CHECK_CONTAINS(err.msg, "missing column 'partner_name'");
    unlink(path);
    task_free(t);
}

TEST(task_render_matches_seed_template) {
    tl_err_t err = {{0}};
    task_t *t;
    CHECK_EQ_INT(task_load(&t, "tasks/namematch", &err), 0);
    if (!t) return;
    const char *f[] = {"Monish Yadav", "Mahesh <partner_name> Yadav"};
    char *p;
    CHECK_EQ_INT(task_render_prompt(t, f, &p, &err), 0);
    /* the seed's build_prompt(), with a placeholder-looking value left alone */
    CHECK_STR(p, "Decide if the two names belong to the same person.\nReturn one word: yes, no, or partial.\n\n"
                 "Name 1: Monish Yadav\nName 2: Mahesh <partner_name> Yadav\nAnswer:");
    free(p);
    CHECK_EQ_INT(task_prompt_prefix_len(t), strlen("Decide if the two names belong to the same person.\n"
                                                   "Return one word: yes, no, or partial.\n\nName 1: "));
    char lab[32];
    CHECK_EQ_INT(task_render_label(t, 2, lab, sizeof lab), 8);
    CHECK_STR(lab, " partial");
    CHECK_EQ_INT(task_label_index(t, "no"), 1);
    CHECK_EQ_INT(task_label_index(t, "No"), -1);
    task_free(t);
}

TEST(task_rejects_bad_definitions) {
    char dir[] = "/tmp/tl_test_task_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char jp[256], tp[256];
    snprintf(jp, sizeof jp, "%s/task.json", dir);
    snprintf(tp, sizeof tp, "%s/t.txt", dir);
    write_file(tp, "Q: <a>\nA:");
    tl_err_t err = {{0}};
    task_t *t = NULL;
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"],\"colour\":1}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "unknown key 'colour'");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<b>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "placeholder '<b>'");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "missing key 'label_column'");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"p\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "label 'p' listed twice");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"],\"symmetric\":true}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "'symmetric' needs exactly 2 fields, the task has 1");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"],\"symmetric\":1}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "'symmetric' must be true or false");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), 0);
    if (t) {
        const char *f[] = {"v"};
        char *p;
        CHECK_EQ_INT(task_render_prompt(t, f, &p, &err), 0);
        CHECK_STR(p, "Q: v\nA:");
        free(p);
        task_free(t);
    }
    unlink(jp);
    unlink(tp);
    rmdir(dir);
}

/* The letters form: words joined by " / ", characters by " ", ASCII
 * lower-cased, combining marks kept with their character, malformed UTF-8
 * passed through byte by byte; the measure equals what is written, and a
 * short buffer is cut and terminated. */
TEST(spell_letters) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Ravi  Kumar", "r a v i / k u m a r"},
        {"  Dr. R. Gupta ", "d r . / r . / g u p t a"},
        {"Kumar, Ravi", "k u m a r , / r a v i"},
        {"Jo\xc3\xabl", "j o \xc3\xab l"},                                 /* e with diaeresis, one character */
        {"\xe0\xa4\xb0\xe0\xa4\xb5\xe0\xa4\xbf", "\xe0\xa4\xb0 \xe0\xa4\xb5\xe0\xa4\xbf"}, /* ra, va + vowel sign i */
        {"e\xcc\x81x", "e\xcc\x81 x"},                                      /* e + combining acute, x */
        {"A\xff" "B", "a \xff b"},                                              /* a stray byte is a character */
        {"", ""},
        {" \t ", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        size_t n = task_spell_letters(cases[i].in, buf, sizeof buf);
        CHECK_STR(buf, cases[i].want);
        CHECK_EQ_INT((int)n, (int)strlen(cases[i].want));
        CHECK_EQ_INT((int)task_spell_letters(cases[i].in, NULL, 0), (int)n);
    }
    char small[6];
    CHECK_EQ_INT((int)task_spell_letters("Ravi Kumar", small, sizeof small), 19);
    CHECK_STR(small, "r a v");
}

/* A field can be rendered as is, spelled out, or both; each declared
 * placeholder must occur in the template and none may repeat. */
TEST(task_letters_placeholder) {
    char dir[] = "/tmp/tl_test_letters_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char jp[256], tp[256];
    snprintf(jp, sizeof jp, "%s/task.json", dir);
    snprintf(tp, sizeof tp, "%s/t.txt", dir);
    tl_err_t err = {{0}};
    task_t *t = NULL;
    write_file(tp, "A: <a> (<a_letters>)\nB: <b_letters>\n");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\","
                   "\"letters\":\"<a_letters>\"},{\"column\":\"b\",\"letters\":\"<b_letters>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), 0);
    if (t) {
        const char *f[] = {"Ravi Kumar", "R. KUMAR"};
        char *p;
        CHECK_EQ_INT(task_render_prompt(t, f, &p, &err), 0);
        CHECK_STR(p, "A: Ravi Kumar (r a v i / k u m a r)\nB: r . / k u m a r\n");
        free(p);
        CHECK_EQ_INT((int)task_prompt_prefix_len(t), 3);
        task_free(t);
    }
    write_file(tp, "A: <a>\n");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "placeholder '<a_letters>' (field 'a') does not occur in the template");
    write_file(tp, "A: <a> <b>\n");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\","
                   "\"letters\":\"<b>\"},{\"column\":\"b\",\"placeholder\":\"<b>\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "fields[1] placeholder '<b>' repeats fields[0]");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"placeholder\":\"<a>\","
                   "\"letters\":\"<a>\"}],\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "fields[0] uses '<a>' as both placeholder and letters");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\"}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "fields[0] lacks 'placeholder' (or 'letters')");
    write_file(jp, "{\"name\":\"x\",\"template\":\"t.txt\",\"fields\":[{\"column\":\"a\",\"letters\":7}],"
                   "\"label_column\":\"l\",\"labels\":[\"p\",\"q\"]}");
    CHECK_EQ_INT(task_load(&t, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "key 'fields[0].letters' must be a string");
    unlink(jp);
    unlink(tp);
    rmdir(dir);
}

/* A symmetric task: (a, b) and (b, a) are one pair; --swap adds the reversed
 * copy of every training pair and leaves the test rows as read. */
TEST(symmetric_dedupe_and_swap) {
    tl_err_t err = {{0}};
    task_t *t;
    CHECK_EQ_INT(task_load(&t, "tasks/namematch", &err), 0);
    if (!t) return;
    CHECK(t->symmetric);
    char dir[] = "/tmp/tl_test_swap_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char in[300], path[400];
    snprintf(in, sizeof in, "%s/raw.csv", dir);
    FILE *f = fopen(in, "wb");
    fputs("elected_name,partner_name,labeled_result\n"
          "Ravi Kumar,Ravi Kumaar,yes\n"
          "Ravi Kumaar,Ravi Kumar,yes\n"   /* reversed duplicate: dropped */
          "Chen Li,Li Chen,yes\n"
          "Li Chen,Chen Li,no\n",           /* reversed, other label: both dropped */
          f);
    for (int i = 0; i < 40; i++) fprintf(f, "Given%d Sur%d,Other%d Name%d,%s\n", i, i, i, i, i % 2 ? "no" : "partial");
    fclose(f);
    prep_data_t d;
    CHECK_EQ_INT(prep_load(t, in, &d, &err), 0);
    CHECK_EQ_INT(d.n_rows, 41);
    CHECK_EQ_INT(d.n_duplicates, 3);
    CHECK_CONTAINS(d.drops[0].reason, "reversed duplicate of the pair at line 2");
    CHECK_CONTAINS(d.drops[1].reason, "different label");
    prep_data_free(&d);
    char out[300];
    snprintf(out, sizeof out, "%s/out", dir);
    prepare_opts_t o = {.in_path = in, .out_dir = out, .split = 0.75, .seed = 3, .swap = true};
    char *sum = NULL;
    CHECK_EQ_INT(prepare_run(t, &o, &sum, &err), 0);
    CHECK(sum && strstr(sum, "\"swapped\":\ttrue") != NULL);
    free(sum);
    /* every training pair is there in both orders; no test pair in train in either order */
    prep_data_t tr, te;
    snprintf(path, sizeof path, "%s/train.csv", out);
    CHECK_EQ_INT(prep_load_ex(t, path, false, &tr, &err), 0);
    snprintf(path, sizeof path, "%s/test.csv", out);
    CHECK_EQ_INT(prep_load_ex(t, path, false, &te, &err), 0);
    CHECK_EQ_INT(te.n_rows, 10); /* round(20 * .25) + round(20 * .25) + round(1 * .25) */
    for (size_t i = 0; i < tr.n_rows; i++) {
        int rev = 0;
        for (size_t j = 0; j < tr.n_rows; j++)
            rev |= !strcmp(tr.rows[i].fields[0], tr.rows[j].fields[1]) && !strcmp(tr.rows[i].fields[1], tr.rows[j].fields[0]) &&
                   tr.rows[i].label == tr.rows[j].label;
        CHECK(rev);
        for (size_t j = 0; j < te.n_rows; j++)
            for (int w = 0; w < 2; w++)
                CHECK(strcmp(tr.rows[i].fields[w], te.rows[j].fields[0]) || strcmp(tr.rows[i].fields[!w], te.rows[j].fields[1]));
    }
    /* written test rows keep their order: "Given.. Sur.." first */
    for (size_t j = 0; j < te.n_rows; j++) CHECK(!strncmp(te.rows[j].fields[0], "Given", 5) || !strcmp(te.rows[j].fields[0], "Ravi Kumar"));
    /* 30 training originals + 30 reversed: partial and no 30 each after swapping, oversampled to 30 each */
    CHECK_EQ_INT(tr.n_rows, 90);
    prep_data_free(&tr);
    prep_data_free(&te);
    /* reading the swapped file back drops the reversed copies again */
    snprintf(path, sizeof path, "%s/train.csv", out);
    CHECK_EQ_INT(prep_load(t, path, &d, &err), 0);
    CHECK_EQ_INT(d.n_rows, 31);
    prep_data_free(&d);
    task_free(t);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void) {
    RUN(symmetric_dedupe_and_swap);
    RUN(task_render_matches_seed_template);
    RUN(task_rejects_bad_definitions);
    RUN(spell_letters);
    RUN(task_letters_placeholder);
    RUN(rng_deterministic_and_uniformish);
    RUN(split_is_stratified_and_disjoint);
    RUN(oversample_train_only_keeps_originals);
    RUN(kfold_balanced);
    RUN(load_cleans_and_reports);
    return tl_test_summary("test_prepare");
}

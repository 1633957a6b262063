/* Pipeline library: SHA-256 against FIPS 180-4 / NIST vectors (incl. block
 * boundaries and a file), recipe parsing: defaults, stage order and names,
 * comments, and every kind of error with its line number; the prune stage
 * kind and input = STAGE (a branch from an earlier stage's model). */
#include <stdlib.h>
#include <unistd.h>

#include "pipeline/recipe.h"
#include "pipeline/sha256.h"
#include "tl_test.h"

static void hex_of(const void *p, size_t n, char out[65]) {
    sha256_t s;
    sha256_init(&s);
    sha256_update(&s, p, n);
    sha256_final(&s, out);
}

TEST(sha256_known_vectors) {
    char h[65];
    hex_of("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    hex_of("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* one million 'a', fed in uneven pieces */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    sha256_t s;
    sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t k = step < 1000000 - off ? step : 1000000 - off;
        sha256_update(&s, a + off, k);
        off += k;
        step = step * 7 % 997 + 1;
    }
    sha256_final(&s, h);
    CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    free(a);
}

TEST(sha256_file_matches_buffer) {
    char path[] = "/tmp/tl-test-sha-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *m = "The quick brown fox jumps over the lazy dog";
    CHECK(write(fd, m, strlen(m)) == (ssize_t)strlen(m));
    close(fd);
    char h[65];
    tl_err_t err;
    CHECK(sha256_file(path, h, &err) == 0);
    CHECK(!strcmp(h, "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"));
    unlink(path);
    CHECK(sha256_file(path, h, &err) == -1 && strstr(err.msg, path));
}

static int load_text(recipe_t *r, const char *text, tl_err_t *err) {
    char path[] = "/tmp/tl-test-recipe-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -2;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) return -2;
    close(fd);
    int rc = recipe_load(r, path, err);
    unlink(path);
    return rc;
}

static recipe_t rec;

TEST(recipe_good) {
    tl_err_t err = {{0}};
    const char *t = "; comment\n# another\n[recipe]\nname = demo\nmodel = m.gguf\ndata = d.csv ; inline comment\n"
                    "threads = 2\n\n[prepare]\nsplit = 0.8\n[baseline]\n[train lora]\nrank = 8\nlr = 1e-3\n"
                    "[eval lora-f32]\n[export]\n";
    CHECK_EQ_INT(load_text(&rec, t, &err), 0);
    CHECK(!strcmp(rec.name, "demo") && !strcmp(rec.model, "m.gguf") && !strcmp(rec.data, "d.csv"));
    CHECK(!strcmp(rec.task, "namematch") && rec.seed == 42 && rec.threads == 2 && !strcmp(rec.runs_dir, "runs"));
    CHECK_EQ_INT(rec.n_stages, 5);
    CHECK(!strcmp(rec.stages[1].kind, "baseline") && !strcmp(rec.stages[1].name, "baseline") && rec.stages[1].n_kv == 0);
    CHECK(!strcmp(rec.stages[2].kind, "train") && !strcmp(rec.stages[2].name, "lora"));
    CHECK(!strcmp(recipe_get(&rec.stages[2], "lr"), "1e-3") && recipe_get(&rec.stages[2], "batch") == NULL);
    CHECK_EQ_INT(rec.stages[2].kv[0].line, 13);
    CHECK(!strcmp(rec.stages[3].name, "lora-f32") && !strcmp(rec.stages[4].kind, "export"));
}

static void expect_error(const char *text, const char *line, const char *word) {
    tl_err_t err = {{0}};
    int rc = load_text(&rec, text, &err);
    CHECK_EQ_INT(rc, -1);
    if (!strstr(err.msg, line) || !strstr(err.msg, word)) {
        printf("  message '%s' lacks '%s' or '%s'\n", err.msg, line, word);
        tl_test_cur_failed = 1;
    }
}

TEST(recipe_errors_name_the_line) {
    const char *head = "[recipe]\nname = t\nmodel = m\ndata = d\n[prepare]\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%sbogus = 1\n", head);
    expect_error(buf, ":6:", "unknown key 'bogus'");
    snprintf(buf, sizeof buf, "%s[train]\nepochs = two\n", head);
    expect_error(buf, ":7:", "epochs");
    snprintf(buf, sizeof buf, "%s[train]\nlr = -1\n", head);
    expect_error(buf, ":7:", "lr");
    snprintf(buf, sizeof buf, "%s[frobnicate]\n", head);
    expect_error(buf, ":6:", "frobnicate");
    snprintf(buf, sizeof buf, "%s[eval a]\n[eval a]\n", head);
    expect_error(buf, ":7:", "duplicate stage name 'a'");
    snprintf(buf, sizeof buf, "%ssplit = 0.5\nsplit = 0.6\n", head);
    expect_error(buf, ":7:", "duplicate key 'split'");
    snprintf(buf, sizeof buf, "%sjust words\n", head);
    expect_error(buf, ":6:", "expected");
    expect_error("x = 1\n[recipe]\n", ":1:", "outside a section");
    expect_error("[recipe]\nname = t\nmodel = m\ndata = d\n[train]\n", ":5:", "first stage must be [prepare]");
    expect_error("[recipe]\nname = t\ndata = d\n[prepare]\n", "", "needs model");
    snprintf(buf, sizeof buf, "%s[quantize q]\n", head);
    expect_error(buf, ":6:", "needs a type");
    snprintf(buf, sizeof buf, "%s[eval Bad]\n", head);
    expect_error(buf, ":6:", "stage name 'Bad'");
    snprintf(buf, sizeof buf, "%ssplit = 1.5\n", head);
    expect_error(buf, ":5:", "split");
    tl_err_t err;
    CHECK(recipe_load(&rec, "/nonexistent/r.ini", &err) == -1 && strstr(err.msg, "/nonexistent/r.ini"));
}

TEST(recipe_prune_branch) {
    tl_err_t err = {{0}};
    const char *t = "[recipe]\nname = b\nmodel = m.gguf\ndata = d.csv\n[prepare]\n[train lora]\n[merge merge-q8_0]\ntype = q8_0\n"
                    "[eval q8_0]\n[prune prune-2]\nremove = 2\ncalib_rows = 8\nmethod = loss\n[train recovery]\n"
                    "[merge merge-pruned]\ntype = same\n[eval pruned]\nvariant = q8_0-pruned2\n"
                    "[prune drop]\ninput = merge-q8_0\ndrop = 13,14\n[prune cos]\nremove = 1\ncosine_only = 1\n"
                    "[export]\ninput = merge-q8_0\n[bench]\nvariant = q8_0\n[bench bench-pruned]\ninput = merge-pruned\n";
    CHECK_EQ_INT(load_text(&rec, t, &err), 0);
    if (err.msg[0]) printf("  %s\n", err.msg);
    CHECK_EQ_INT(rec.n_stages, 13);
    CHECK(!strcmp(rec.stages[4].kind, "prune") && !strcmp(rec.stages[4].name, "prune-2"));
    CHECK(!strcmp(recipe_get(&rec.stages[4], "remove"), "2") && !strcmp(recipe_get(&rec.stages[4], "method"), "loss"));
    CHECK(!strcmp(rec.stages[8].kind, "prune") && !strcmp(recipe_get(&rec.stages[8], "drop"), "13,14"));
    CHECK(!strcmp(recipe_get(&rec.stages[10], "input"), "merge-q8_0"));
    CHECK(!strcmp(recipe_get(&rec.stages[12], "input"), "merge-pruned"));
    CHECK(strstr(recipe_kind_keys("prune"), "calib_rows") && strstr(recipe_kind_keys("bench"), "variant"));
    /* FFN channels alone, and with blocks */
    const char *f = "[recipe]\nname = f\nmodel = m.gguf\ndata = d.csv\n[prepare]\n[prune ffn]\nffn_keep = 1024\ncalib_rows = 4\n"
                    "[prune both]\nremove = 1\nffn_keep = 1280\nffn_down_type = q8_0\n";
    CHECK_EQ_INT(load_text(&rec, f, &err), 0);
    if (err.msg[0]) printf("  %s\n", err.msg);
    CHECK(rec.n_stages == 3 && !strcmp(recipe_get(&rec.stages[1], "ffn_keep"), "1024"));
    CHECK(!strcmp(recipe_get(&rec.stages[2], "ffn_down_type"), "q8_0"));
}

TEST(recipe_prune_errors_name_the_line) {
    const char *head = "[recipe]\nname = t\nmodel = m\ndata = d\n[prepare]\n[merge m8]\n"; /* [merge m8] is line 6 */
    char buf[512];
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\nremvoe = 2\n", head);
    expect_error(buf, ":9:", "unknown key 'remvoe' in a [prune] section");
    snprintf(buf, sizeof buf, "%s[prune p]\ncalib_rows = 4\n", head);
    expect_error(buf, ":7:", "needs remove = K");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\ndrop = 3\n", head);
    expect_error(buf, ":9:", "not both");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 0\n", head);
    expect_error(buf, ":8:", "at least 1");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = two\n", head);
    expect_error(buf, ":8:", "remove");
    snprintf(buf, sizeof buf, "%s[prune p]\ndrop = 3,,4\n", head);
    expect_error(buf, ":8:", "drop = '3,,4'");
    snprintf(buf, sizeof buf, "%s[prune p]\ndrop = 3\nmethod = loss\n", head);
    expect_error(buf, ":9:", "method scores blocks");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\nmethod = magnitude\n", head);
    expect_error(buf, ":9:", "method = 'magnitude'");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\ncosine_only = 2\n", head);
    expect_error(buf, ":9:", "cosine_only");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\ncosine_only = 1\nmethod = loss\n", head);
    expect_error(buf, ":10:", "method = loss");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\ncalib_rows = 0\n", head);
    expect_error(buf, ":9:", "calib_rows");
    snprintf(buf, sizeof buf, "%s[prune p]\nffn_keep = 0\n", head);
    expect_error(buf, ":8:", "ffn_keep = 0");
    snprintf(buf, sizeof buf, "%s[prune p]\ndrop = 3\nffn_keep = 1024\n", head);
    expect_error(buf, ":9:", "ffn_keep scores channels");
    snprintf(buf, sizeof buf, "%s[prune p]\nremove = 1\nffn_down_type = q8_0\n", head);
    expect_error(buf, ":9:", "ffn_down_type needs ffn_keep");
    snprintf(buf, sizeof buf, "%s[prune p]\nffn_keep = 1024\ncosine_only = 1\n", head);
    expect_error(buf, ":9:", "cosine_only ranks blocks");
    snprintf(buf, sizeof buf, "%s[export]\ninput = later\n[prune later]\nremove = 1\n", head);
    expect_error(buf, ":8:", "input = 'later' is not an earlier stage");
    snprintf(buf, sizeof buf, "%s[eval e]\n[export]\ninput = e\n", head);
    expect_error(buf, ":9:", "names an eval stage");
    snprintf(buf, sizeof buf, "%s[merge x]\ninput = m8\n", head);
    expect_error(buf, ":8:", "unknown key 'input' in a [merge] section");
    snprintf(buf, sizeof buf, "%s[baseline]\nvariant = b\n", head);
    expect_error(buf, ":8:", "unknown key 'variant'");
}

int main(void) {
    RUN(sha256_known_vectors);
    RUN(sha256_file_matches_buffer);
    RUN(recipe_good);
    RUN(recipe_errors_name_the_line);
    RUN(recipe_prune_branch);
    RUN(recipe_prune_errors_name_the_line);
    return tl_test_summary("test_pipeline");
}

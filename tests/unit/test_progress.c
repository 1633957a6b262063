/* The progress display (src/cli/progress.c, compiled in here since the CLI is
 * not part of the library): exact plain lines with the ETA from a fake clock,
 * the bar drawn in place on a terminal, log lines above the bar, ETA text. */
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/progress.c"
#include "tl_test.h"

static double fake_now;
static double fake_clock(void) { return fake_now; }

static char *slurp(FILE *f) {
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    return s;
}

TEST(eta_text) {
    char b[32];
    progress_format_eta(-1, b, sizeof b);
    CHECK(!strcmp(b, "?"));
    progress_format_eta(42.4, b, sizeof b);
    CHECK(!strcmp(b, "42s"));
    progress_format_eta(187, b, sizeof b);
    CHECK(!strcmp(b, "3m07s"));
    progress_format_eta(7500, b, sizeof b);
    CHECK(!strcmp(b, "2h05m"));
}

TEST(plain_lines_with_eta) {
    FILE *f = tmpfile();
    progress_t p;
    progress_init(&p, f, "train", "step", 10, PROGRESS_PLAIN);
    p.clock = fake_clock;
    fake_now = 100.0;
    progress_start(&p, 0);
    fake_now = 102.0;
    progress_update(&p, 1, "loss %.2f", 1.5);
    fake_now = 104.0;
    progress_update(&p, 2, NULL);
    progress_log(&p, "eval: done");
    progress_finish(&p);
    char *s = slurp(f);
    CHECK(s && !strcmp(s, "train: step 1/10 loss 1.50 eta 18s\ntrain: step 2/10 eta 16s\neval: done\n"));
    if (s && strcmp(s, "train: step 1/10 loss 1.50 eta 18s\ntrain: step 2/10 eta 16s\neval: done\n"))
        printf("  got: %s", s);
    free(s);
    fclose(f);
}

TEST(tty_bar_in_place) {
    FILE *f = tmpfile();
    progress_t p;
    setenv("COLUMNS", "60", 1);
    progress_init(&p, f, "train", "step", 4, PROGRESS_TTY);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_start(&p, 0);
    fake_now = 1.0;
    progress_update(&p, 2, "loss 0.5");
    fake_now = 1.05; /* within 0.1 s: not redrawn */
    progress_update(&p, 3, "loss 0.4");
    progress_log(&p, "eval: x");
    fake_now = 2.0;
    progress_update(&p, 4, "loss 0.3");
    progress_finish(&p);
    char *s = slurp(f);
    CHECK(s != NULL);
    if (s) {
        CHECK(!strncmp(s, "\r\033[Ktrain [", 11));
        CHECK(strstr(s, " 2/4  loss 0.5  ETA 1s") != NULL);
        CHECK(strstr(s, "\r\033[Keval: x\n\r\033[Ktrain [") != NULL); /* log line above, bar redrawn */
        CHECK(strstr(s, "####] 4/4  loss 0.3  ETA 0s\n") != NULL);  /* full bar at the end, newline */
        /* no line is wider than the terminal */
        for (char *line = strtok(s, "\r\n"); line; line = strtok(NULL, "\r\n"))
            CHECK(strlen(line) < 60 + 3);
    }
    free(s);
    fclose(f);
}

/* A tail longer than the terminal: the bar keeps at least 10 cells and the
 * tail is cut at a word so the line fits (80 columns, the default of a pty
 * without a window size). */
TEST(tty_long_tail_fits_width) {
    FILE *f = tmpfile();
    progress_t p;
    setenv("COLUMNS", "80", 1);
    progress_init(&p, f, "train", "step", 2, PROGRESS_TTY);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_start(&p, 0);
    fake_now = 1.0;
    progress_update(&p, 2, "epoch 0.50 loss 1.7485 lr 0.0025 278 tok/s 0.40 s/step eval_loss 3.0595 best 2.9");
    progress_finish(&p);
    char *s = slurp(f);
    CHECK(s != NULL);
    if (s) {
        CHECK(!strncmp(s, "\r\033[Ktrain [##########] 2/2  epoch 0.50 loss", 43));
        CHECK(strstr(s, "  ETA 0s\n") != NULL);
        const char *line = s + 4; /* after \r\033[K */
        CHECK(strlen(line) - 1 <= 79);
        CHECK(line[strlen(line) - 2] == 's');
        if (strlen(line) - 1 > 79) printf("  got (%zu): %s", strlen(line) - 1, line);
    }
    /* too narrow even for the tail: the bar and the counter only */
    rewind(f);
    setenv("COLUMNS", "40", 1);
    progress_init(&p, f, "train", "step", 2, PROGRESS_TTY);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_start(&p, 0);
    fake_now = 3.0;
    progress_update(&p, 1, "epoch 0.50 loss 1.7485 lr 0.0025");
    progress_finish(&p);
    free(s);
    s = slurp(f);
    CHECK(s && !strcmp(s, "\r\033[Ktrain [#####.....] 1/2  ETA 3s\n"));
    free(s);
    fclose(f);
}

int main(void) {
    RUN(eta_text);
    RUN(plain_lines_with_eta);
    RUN(tty_bar_in_place);
    RUN(tty_long_tail_fits_width);
    return tl_test_summary("test_progress");
}

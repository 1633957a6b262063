/* Progress display for long CLI runs (train, cv, classify, pipeline).
 *
 * On a terminal (isatty of the stream) one line is redrawn in place:
 *   train [########............]  12/40  loss 0.4123  312 tok/s  ETA 1m12s
 * (at most every 0.1 s, and always for the last step); log lines printed
 * through progress_log appear above the bar. Otherwise every progress_update
 * prints one plain line, e.g.
 *   train: step 12/40 loss 0.4123 312 tok/s eta 1m12s
 * so logs and pipes stay readable. The ETA comes from the mean time per unit
 * since progress_init / progress_start. Not thread-safe: call from one thread. */
#ifndef TL_CLI_PROGRESS_H
#define TL_CLI_PROGRESS_H

#include <stdio.h>

typedef enum { PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_TTY } progress_mode_t;

typedef struct {
    FILE *out;
    int tty;            /* drawing a bar */
    int width;          /* terminal columns */
    char label[32];     /* "train", "cv fold 2/5", ... */
    char unit[16];      /* "step", "row" (plain lines) */
    long total, done, first_done;
    double t_first, last_draw;
    int drawn;          /* a bar is on the current line */
    char tail[160];     /* the last update's text after the counter */
    double (*clock)(void); /* seconds; tests may replace it */
} progress_t;

/* mode AUTO: bar when out is a terminal. Width from $COLUMNS or the terminal (default 80). */
void progress_init(progress_t *p, FILE *out, const char *label, const char *unit, long total, progress_mode_t mode);
/* Restarts the ETA clock with `done` units already complete (a resumed run);
 * progress_init calls it with 0. */
void progress_start(progress_t *p, long done);
/* done units of total are complete; text (printf format, may be NULL) follows the counter. */
void progress_update(progress_t *p, long done, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole line (no trailing newline needed), printed above the bar. */
void progress_log(progress_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the bar's line (TTY mode); nothing in plain mode. */
void progress_finish(progress_t *p);
/* "ETA" text for secs: "42s", "3m07s", "2h05m"; "?" when unknown (negative). */
void progress_format_eta(double secs, char *buf, size_t n);

#endif

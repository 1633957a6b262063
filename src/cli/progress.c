/* Progress bar or plain progress lines (see progress.h). */
#include "cli/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int term_width(FILE *out) {
    const char *c = getenv("COLUMNS");
    if (c && atoi(c) >= 20) return atoi(c);
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

void progress_init(progress_t *p, FILE *out, const char *label, const char *unit, long total, progress_mode_t mode) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = mode == PROGRESS_TTY || (mode == PROGRESS_AUTO && out && isatty(fileno(out)));
    p->width = p->tty ? term_width(out) : 80;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "step");
    p->total = total;
    p->last_draw = -1.0;
    p->clock = mono_s;
    progress_start(p, 0);
}

void progress_start(progress_t *p, long done) {
    p->first_done = done;
    p->done = done;
    p->t_first = p->clock();
}

void progress_format_eta(double secs, char *buf, size_t n) {
    if (secs < 0) {
        snprintf(buf, n, "?");
        return;
    }
    long s = (long)(secs + 0.5);
    if (s < 60) snprintf(buf, n, "%lds", s);
    else if (s < 3600) snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
}

static double eta_secs(const progress_t *p, double now) {
    if (p->done <= p->first_done) return -1.0;
    double per = (now - p->t_first) / (double)(p->done - p->first_done);
    return per * (double)(p->total - p->done);
}

static void draw_bar(progress_t *p, double now) {
    char eta[32], head[64];
    progress_format_eta(eta_secs(p, now), eta, sizeof eta);
    snprintf(head, sizeof head, " %ld/%ld", p->done, p->total);
    /* label [bar] done/total tail ETA x */
    /* The line must fit the terminal (a wrapped line cannot be redrawn in
     * place): the bar gets 10..40 cells, and the tail is cut at a space when
     * the rest does not fit, dropped entirely when even that is too wide. */
    char tail[sizeof p->tail];
    snprintf(tail, sizeof tail, "%s", p->tail);
    int base = (int)strlen(p->label) + 3 + (int)strlen(head) + 6 + (int)strlen(eta);
    int avail = p->width - 1 - base;           /* for bar + "  " + tail */
    int bar = avail - (tail[0] ? 2 + (int)strlen(tail) : 0);
    if (bar > 40) bar = 40;
    if (bar < 10) {
        bar = avail >= 10 ? 10 : (avail >= 5 ? avail : 0);
        int room = avail - bar - 2;             /* what is left for the tail */
        if (room < 12) tail[0] = '\0';
        else if ((int)strlen(tail) > room) {
            tail[room] = '\0';
            char *sp = strrchr(tail, ' ');
            if (sp && sp - tail >= room / 2) *sp = '\0';
        }
    }
    fputs("\r\033[K", p->out);
    fputs(p->label, p->out);
    if (bar >= 5) {
        int fill = p->total > 0 ? (int)((double)bar * (double)p->done / (double)p->total) : 0;
        if (fill > bar) fill = bar;
        fputs(" [", p->out);
        for (int i = 0; i < bar; i++) fputc(i < fill ? '#' : '.', p->out);
        fputc(']', p->out);
    }
    fprintf(p->out, "%s%s%s  ETA %s", head, tail[0] ? "  " : "", tail, eta);
    fflush(p->out);
    p->drawn = 1;
    p->last_draw = now;
}

void progress_update(progress_t *p, long done, const char *fmt, ...) {
    if (!p->out) return;
    double now = p->clock();
    p->done = done;
    p->tail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->tail, sizeof p->tail, fmt, ap);
        va_end(ap);
    }
    if (p->tty) {
        if (done >= p->total || p->last_draw < 0 || now - p->last_draw >= 0.1) draw_bar(p, now);
        return;
    }
    char eta[32];
    progress_format_eta(eta_secs(p, now), eta, sizeof eta);
    fprintf(p->out, "%s: %s %ld/%ld%s%s eta %s\n", p->label, p->unit, done, p->total, p->tail[0] ? " " : "", p->tail,
            eta);
    fflush(p->out);
}

void progress_log(progress_t *p, const char *fmt, ...) {
    if (!p->out) return;
    if (p->tty && p->drawn) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    size_t n = strlen(fmt);
    if (!n || fmt[n - 1] != '\n') fputc('\n', p->out);
    if (p->tty && p->drawn) draw_bar(p, p->clock());
    fflush(p->out);
}

void progress_finish(progress_t *p) {
    if (!p->out) return;
    if (p->tty && p->drawn) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->drawn = 0;
}

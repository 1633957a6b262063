/* Calibration statistics (see awq_calib.h). */
#include "quant/awq_calib.h"

#include <stdlib.h>

struct calib {
    int n_prompts;
    long n_tokens;
};

int calib_collect(calib_t **out, const calib_opts_t *o, tl_err_t *err) {
    *out = NULL;
    return tl_fail(err, "%s: calibration is not available yet", o->csv_path);
}

const float *calib_importance(void *calib, const char *tensor_name, int64_t n_in) { return NULL; }
int calib_n_prompts(const calib_t *c) { return c ? c->n_prompts : 0; }
long calib_n_tokens(const calib_t *c) { return c ? c->n_tokens : 0; }
void calib_free(calib_t *c) { free(c); }

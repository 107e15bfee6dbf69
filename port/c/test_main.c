/*
 * Golden-vector harness of the C reference port: runs inference on every sample of tzv_infer.h and
 * compares every intermediate tensor (int8, int16 or int32; a stateful model's samples run as one sequence
 * and its state is compared after each), then (if tzv_train.h has steps) runs the training steps and
 * compares seeds, perturbations (step 0), logits, losses, projected differences, gradient
 * estimates (float32 bit patterns) and the parameters after each step. Prints mismatch counts;
 * exit status 0 iff there is none. Build (from the repository root):
 *
 *   cc -std=c99 -O2 -ffp-contract=off -Wall -Wextra -Werror -I<vectors dir> -Iport/c -Itinyzo/training/c \
 *      port/c/test_main.c port/c/tz_kernels.c port/c/tz_kernels16.c port/c/tz_softmax.c port/c/tz_graph.c \
 *      port/c/tz_train.c -lm
 *
 * With -DTZ_LEAN_WEIGHT (add port/c/tz_train_lean.c) the steps are tz_zo_step_weight_lean's: everything
 * but the gradient estimates (it keeps none) is compared, and the clamped perturbations are counted.
 */
#include <stdio.h>
#include <string.h>

#include "tinyzo_port.h"
#include "tinyzo_prng.h"
#include "tzv_model.h"
#include "tzv_infer.h"
#include "tzv_train.h"

static const tz_op_t OPS[TZV_N_OPS] = TZV_OPS_INIT;
/* the arena and the state buffer, aligned for the int16 / int32 tensors */
static union { int8_t bytes[TZV_ARENA_BYTES]; int64_t align; } arena_u;
static union { int8_t bytes[TZV_STATE_BYTES + 1]; int64_t align; } state_u;
#define arena (arena_u.bytes)
static long total_mismatches = 0;

static long report(const char *what, long checked, long bad) {
    printf("%-28s %8ld checked %8ld mismatches\n", what, checked, bad);
    total_mismatches += bad;
    return bad;
}

/* ---------------------------------------------------------------- inference */

typedef struct {
    int32_t sample;
    long checked, bad;
    long op_bad[TZV_N_OPS];
} infer_ctx_t;

static const void *const EXPECTED[TZV_N_TENSORS] = TZV_INFER_EXPECTED_INIT;
static const void *const EXPECTED_STATE[TZV_N_TENSORS] = TZV_INFER_STATE_INIT;

/* element i of a tensor of type TZ_INT8 / TZ_INT16 / TZ_INT32 */
static int32_t element(const void *p, int32_t type, size_t i) {
    if (type == TZ_INT16) return ((const int16_t *)p)[i];
    if (type == TZ_INT32) return ((const int32_t *)p)[i];
    return ((const int8_t *)p)[i];
}

/* mismatches of size values of tensor t against sample s of its expected values */
static long compare_tensor(const void *got, const void *want_all, int32_t t, int32_t s, int32_t size) {
    const int32_t type = TZV_TENSOR_TYPE[t];
    const int8_t *want = (const int8_t *)want_all + (size_t)s * (size_t)size * (size_t)type;
    long bad = 0;
    for (int32_t i = 0; i < size; ++i) bad += element(got, type, (size_t)i) != element(want, type, (size_t)i);
    return bad;
}

static void infer_hook(void *ctx, int32_t op, const int8_t *out, int32_t size) {
    infer_ctx_t *c = (infer_ctx_t *)ctx;
    const void *want = EXPECTED[OPS[op].out];
    if (want == NULL) return;
    const long bad = compare_tensor(out, want, OPS[op].out, c->sample, size);
    c->checked += size;
    c->bad += bad;
    c->op_bad[op] += bad;
}

/* The samples: independent inputs, or for a stateful model one sequence from the initial state (state
 * carried from sample to sample), every variable tensor compared after each sample. */
static void run_inference(tz_model_t *m) {
    infer_ctx_t ctx;
    long state_checked = 0, state_bad = 0;
    memset(&ctx, 0, sizeof ctx);
    tz_reset_state(m);
    for (int32_t s = 0; s < TZV_INFER_SAMPLES; ++s) {
        ctx.sample = s;
        memcpy(tz_tensor(m, arena, m->input), (const int8_t *)TZV_X + (size_t)s * TZV_INPUT_BYTES, TZV_INPUT_BYTES);
        if (tz_invoke(m, arena, infer_hook, &ctx) != 0) { printf("inference failed on sample %d\n", (int)s); ctx.bad++; }
        for (int32_t t = 0; t < TZV_N_TENSORS; ++t) {
            if (EXPECTED_STATE[t] == NULL) continue;
            state_checked += TZV_TENSOR_SIZE[t];
            state_bad += compare_tensor(tz_tensor(m, arena, t), EXPECTED_STATE[t], t, s, TZV_TENSOR_SIZE[t]);
        }
    }
    for (int32_t k = 0; k < TZV_N_OPS; ++k)
        if (ctx.op_bad[k]) printf("  op %d (type %d): %ld mismatching values\n", (int)k, (int)OPS[k].type, ctx.op_bad[k]);
    report("inference intermediates", ctx.checked, ctx.bad);
#if TZV_INFER_STATEFUL
    report("inference state", state_checked, state_bad);
#endif
}

/* ---------------------------------------------------------------- training */
#if TZV_HAS_TRAIN
static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static int32_t check_buf[TZV_TRAIN_MAX_PARAM * TZV_TRAIN_BATCH + TZV_TRAIN_NODE_OUT_TOTAL * TZV_TRAIN_BATCH + 1];
static tz_zo_record_t rec;

#include "tzv_train_setup.h"
#define LAYERS TZV_LAYERS
static const int8_t *const EXP_W[TZV_TRAIN_N_LAYERS][TZV_TRAIN_STEPS] = TZV_TRAIN_WEIGHTS_INIT;
static const int32_t *const EXP_B[TZV_TRAIN_N_LAYERS][TZV_TRAIN_STEPS] = TZV_TRAIN_BIAS_INIT;
static const float *const EXP_GW[TZV_TRAIN_N_LAYERS][TZV_TRAIN_STEPS] = TZV_TRAIN_GW_INIT;
static const float *const EXP_GB[TZV_TRAIN_N_LAYERS][TZV_TRAIN_STEPS] = TZV_TRAIN_GB_INIT;
static const int32_t *const EXP_SEEDS[TZV_TRAIN_STEPS] = TZV_TRAIN_SEEDS_INIT;
static const float *const EXP_PLUS[TZV_TRAIN_STEPS] = TZV_TRAIN_PLUS_INIT;
static const float *const EXP_COEF[TZV_TRAIN_STEPS] = TZV_TRAIN_COEF_INIT;
static const float *const EXP_COEF_MEAN[TZV_TRAIN_STEPS] = TZV_TRAIN_COEF_MEAN_INIT;
static const float *const EXP_BASE[TZV_TRAIN_STEPS] = TZV_TRAIN_BASE_INIT;
static const int8_t *const EXP_LOGITS[TZV_TRAIN_STEPS] = TZV_TRAIN_LOGITS_INIT;
#if TZV_TRAIN_HAS_MINUS
static const float *const EXP_MINUS[TZV_TRAIN_STEPS] = TZV_TRAIN_MINUS_INIT;
#endif
static const int32_t *const DW0[TZV_TRAIN_QUERIES * TZV_TRAIN_N_LAYERS] = TZV_TRAIN_DW0_INIT;
static const int32_t *const DB0[TZV_TRAIN_QUERIES * TZV_TRAIN_N_LAYERS] = TZV_TRAIN_DB0_INIT;
static const int8_t *const DNODE0[TZV_TRAIN_QUERIES * TZV_TRAIN_N_LAYERS] = TZV_TRAIN_DNODE0_INIT;

static long cmp_f32(const float *got, const float *want, long n, long *checked) {
    long bad = 0;
    for (long i = 0; i < n; ++i) bad += f32_bits(got[i]) != f32_bits(want[i]);
    *checked += n;
    return bad;
}

static void run_training(tz_model_t *m) {
    tz_zo_config_t cfg;
#ifdef TZ_LEAN_WEIGHT
    tz_zo_lean_ws_t ws;
    long clamped = 0;
    if (tzv_train_setup_lean(m, OPS, &cfg, &ws) != 0) { printf("lean setup failed\n"); total_mismatches++; return; }
#else
    tz_zo_ws_t ws;
    tzv_train_setup(m, OPS, &cfg, &ws);
#endif
    long c_seed = 0, b_seed = 0, c_dir = 0, b_dir = 0, c_log = 0, b_log = 0, c_loss = 0, b_loss = 0;
    long c_coef = 0, b_coef = 0, c_grad = 0, b_grad = 0, c_par = 0, b_par = 0;
    for (int32_t step = 0; step < TZV_TRAIN_STEPS; ++step) {
        memset(&rec, 0, sizeof rec);
#ifdef TZ_LEAN_WEIGHT
        const int rc = tz_zo_step_weight_lean(m, arena, &cfg, &ws, (uint32_t)step, TZV_LR[step], TZV_X_TRAIN, TZV_Y,
                                              TZV_OUTPUT_SCALE, TZV_OUTPUT_ZERO_POINT, &rec);
        clamped += (long)rec.clamped;
#else
        const int rc = tz_zo_step(m, arena, &cfg, &ws, (uint32_t)step, TZV_LR[step], TZV_X_TRAIN, TZV_Y,
                                  TZV_OUTPUT_SCALE, TZV_OUTPUT_ZERO_POINT, &rec);
#endif
        if (rc != 0) printf("step %d failed (%d)\n", (int)step, rc), b_loss++;
        const int32_t B = TZV_TRAIN_BATCH, K = TZV_OUTPUT_SIZE;
        for (int32_t n = 0; n < B; ++n)
            for (int32_t j = 0; j < K; ++j) { c_log++; b_log += rec.logits[n][j] != EXP_LOGITS[step][n * K + j]; }
        b_loss += cmp_f32(rec.base, EXP_BASE[step], B, &c_loss);
        for (int32_t q = 0; q < TZV_TRAIN_QUERIES; ++q) {
            b_loss += cmp_f32(rec.plus[q], EXP_PLUS[step] + q * B, B, &c_loss);
#if TZV_TRAIN_HAS_MINUS
            b_loss += cmp_f32(rec.minus[q], EXP_MINUS[step] + q * B, B, &c_loss);
#endif
            b_coef += cmp_f32(rec.coef[q], EXP_COEF[step] + q * B, B, &c_coef);
            b_coef += cmp_f32(&rec.coef_mean[q], EXP_COEF_MEAN[step] + q, 1, &c_coef);
            for (int32_t li = 0; li < TZV_TRAIN_N_LAYERS; ++li)
                for (int j = 0; j < 3; ++j) {
                    c_seed++;
                    b_seed += rec.seeds[q][li][j] != (uint32_t)EXP_SEEDS[step][(q * TZV_TRAIN_N_LAYERS + li) * 3 + j];
                }
            if (step == 0) { /* the perturbations the seeds give, regenerated by tz_perturbation */
                for (int32_t li = 0; li < TZV_TRAIN_N_LAYERS; ++li) {
                    const tz_op_t *op = &OPS[LAYERS[li]];
                    const int32_t idx = q * TZV_TRAIN_N_LAYERS + li;
                    if (DW0[idx] != NULL) {
                        tz_perturbation(cfg.direction, rec.seeds[q][li][0], cfg.sigma, 0, op->n_weights, check_buf);
                        for (int32_t i = 0; i < op->n_weights; ++i) { c_dir++; b_dir += check_buf[i] != DW0[idx][i]; }
                        tz_perturbation(cfg.direction, rec.seeds[q][li][1], 1, 0, op->n_out, check_buf);
                        for (int32_t i = 0; i < op->n_out; ++i) {
                            c_dir++;
                            b_dir += (int64_t)check_buf[i] * tzv_sigma_b[li][i] != (int64_t)DB0[idx][i];
                        }
                    }
                    if (DNODE0[idx] != NULL) {
                        const int32_t size = TZV_TENSOR_SIZE[op->out];
                        for (int32_t n = 0; n < B; ++n) { /* sample n = values [n size, (n+1) size) */
                            tz_perturbation(cfg.direction, rec.seeds[q][li][2], cfg.sigma_node, n * size, size, check_buf);
                            for (int32_t i = 0; i < size; ++i) { c_dir++; b_dir += check_buf[i] != DNODE0[idx][n * size + i]; }
                        }
                    }
                }
            }
        }
        for (int32_t li = 0; li < TZV_TRAIN_N_LAYERS; ++li) {
            const tz_op_t *op = &OPS[LAYERS[li]];
#ifndef TZ_LEAN_WEIGHT /* the lean step keeps no gradient buffer */
            b_grad += cmp_f32(ws.gw[li], EXP_GW[li][step], op->n_weights, &c_grad);
            b_grad += cmp_f32(ws.gb[li], EXP_GB[li][step], op->n_out, &c_grad);
#endif
            for (int32_t i = 0; i < op->n_weights; ++i) { c_par++; b_par += ws.w[li][i] != EXP_W[li][step][i]; }
            for (int32_t i = 0; i < op->n_out; ++i) { c_par++; b_par += ws.b[li][i] != EXP_B[li][step][i]; }
        }
    }
    report("train seeds", c_seed, b_seed);
    report("train perturbations (step 0)", c_dir, b_dir);
    report("train logits", c_log, b_log);
    report("train losses", c_loss, b_loss);
    report("train projected differences", c_coef, b_coef);
#ifdef TZ_LEAN_WEIGHT
    (void)c_grad;
    (void)b_grad;
    (void)EXP_GW;
    (void)EXP_GB;
    printf("lean clamped perturbations %ld (restored from the clamp record), clamp bits %d\n", clamped,
           (int)tz_lean_clamp_bits(cfg.direction, cfg.sigma));
#else
    report("train gradient estimates", c_grad, b_grad);
#endif
    report("train parameters", c_par, b_par);
}
#endif

int main(void) {
    tz_model_t model;
    tz_model_init(&model, OPS, TZV_N_OPS, TZV_TENSOR_SHAPE, TZV_TENSOR_SIZE, TZV_TENSOR_OFFSET, TZV_INPUT_TENSOR,
                  TZV_OUTPUT_TENSOR);
    tz_model_set_types(&model, TZV_TENSOR_TYPE);
    tz_model_set_state(&model, state_u.bytes, TZV_STATE_OFFSET, TZV_STATE_INIT, TZV_STATE_BYTES);
    printf("arena %d bytes, %d operators\n", (int)TZV_ARENA_BYTES, (int)TZV_N_OPS);
    run_inference(&model);
#if TZV_HAS_TRAIN
    run_training(&model);
#endif
    printf("TOTAL MISMATCHES %ld\n", total_mismatches);
    return total_mismatches == 0 ? 0 : 1;
}

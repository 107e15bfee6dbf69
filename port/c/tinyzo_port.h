/*
 * tinyzo C99 reference port: int8 and 16x8 inference (TFLite Micro arithmetic, double rounding; SVDF
 * with its state in a caller-owned static buffer, int16 QUANTIZE / SOFTMAX outputs) and one
 * zeroth-order training step (int8 models) (weight or node perturbation, integer ZO-SGD update).
 *
 * Plain C99, no dynamic allocation, no global state: the caller owns one static arena for the
 * activations (offsets planned on the host, like TFLite Micro's greedy planner) and, for
 * training, a workspace of static buffers (tz_zo_ws_t). Random numbers: tinyzo_prng.h
 * (xorshift32 and the seed schedule, shared with tinyzo/training/c/). libm: exp and log only, for
 * the float32 cross-entropy (TZ_EXPF / TZ_LOGF below).
 *
 * Verified bit for bit against tinyzo's golden vectors by port/c/test_main.c
 * (tests/test_c_port.py). Guide: docs/porting.md.
 */
#ifndef TINYZO_PORT_H
#define TINYZO_PORT_H

#include <stddef.h>
#include <stdint.h>

/* operator codes: the order of tinyzo.golden.export.SUPPORTED_OPS (1-based) */
enum {
    TZ_OP_CONV_2D = 1,
    TZ_OP_DEPTHWISE_CONV_2D = 2,
    TZ_OP_FULLY_CONNECTED = 3,
    TZ_OP_ADD = 4,
    TZ_OP_MEAN = 5,
    TZ_OP_AVERAGE_POOL_2D = 6,
    TZ_OP_RESHAPE = 7,
    TZ_OP_SOFTMAX = 8,
    TZ_OP_SVDF = 9,
    TZ_OP_QUANTIZE = 10
};

/* tensor element types (the code is the element's size in bytes): model.tensor_type[t] */
enum { TZ_INT8 = 1, TZ_INT16 = 2, TZ_INT32 = 4 };

#ifndef TZ_MAX_OPS
#define TZ_MAX_OPS 64
#endif
#ifndef TZ_MAX_LAYERS
#define TZ_MAX_LAYERS 16
#endif
#ifndef TZ_MAX_BATCH
#define TZ_MAX_BATCH 32
#endif
#ifndef TZ_MAX_QUERIES
#define TZ_MAX_QUERIES 8
#endif
#ifndef TZ_MAX_CLASSES
#define TZ_MAX_CLASSES 16
#endif

/* One operator with everything its kernel needs, computed on the host (TFLM's Prepare).
 * Field names follow TFLM. Unused fields are 0 (in1: -1). */
typedef struct {
    int32_t type, in0, in1, out;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t filter_h, filter_w;          /* FULLY_CONNECTED: filter_w = K (dot length) */
    int32_t depth_multiplier, n_out;
    int32_t input_offset, output_offset; /* -zp_in, zp_out */
    int32_t act_min, act_max;
    int32_t has_params;
    /* ADD (TFLM CalculateOpDataAdd) */
    int32_t in1_offset, in1_multiplier, in1_shift, in2_offset, in2_multiplier, in2_shift, left_shift;
    int32_t out_multiplier, out_shift;   /* ADD output; MEAN (1/count folded in) */
    int32_t count;                       /* MEAN: elements per output */
    int32_t sm_multiplier, sm_left_shift, sm_diff_min; /* SOFTMAX */
    /* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED */
    const int8_t *weights;               /* OHWI, 1HWC or [O, K] */
    const int32_t *bias;                 /* [n_out] */
    const int32_t *multiplier, *shift;   /* [n_out] per channel */
    const float *weight_scale;           /* [n_weight_scale]: 1 (per tensor) or n_out */
    int32_t n_weight_scale, n_weights;
    /* 16x8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: int64 (acc_bits 64) or int32 (acc_bits 32,
     * CONV_2D and FULLY_CONNECTED with an int32 bias) accumulator; the bias widened to int64 */
    int32_t acc_bits;
    const int64_t *bias64;               /* [n_out] */
    /* SVDF (TFLM OpDataSvdf): in1 = the activation state (a variable tensor), filter_w = input size,
     * n_out = units, input_offset = -zp_in, output_offset = zp_out, (out_multiplier, out_shift) = scale 2 */
    int32_t rank, memory_size, state_zero_point, multiplier_1, shift_1;
    const int8_t *weights_time8;         /* [filters][memory_size], int8 state */
    const int16_t *weights_time16;       /* [filters][memory_size], int16 state */
} tz_op_t;

/* A model: the operator and tensor tables (generated) plus the parameters in use. */
typedef struct {
    const tz_op_t *ops;
    int32_t n_ops;
    const int32_t *tensor_shape;  /* [n_tensors][4], NHWC with leading 1s */
    const int32_t *tensor_size;   /* elements (batch 1); 0 for constants */
    const int32_t *tensor_offset; /* byte offset in the arena; -1 for constants */
    int32_t input, output;        /* tensor ids */
    const int8_t *weights[TZ_MAX_OPS];  /* parameters used by tz_invoke (default: ops[k].weights) */
    const int32_t *bias[TZ_MAX_OPS];
    const int8_t *node_add[TZ_MAX_OPS]; /* node perturbation added to op k's output, or NULL */
    int32_t node_sign;                   /* +1 or -1 */
    const int32_t *tensor_type;          /* TZ_INT8 / TZ_INT16 / TZ_INT32 per tensor; NULL: all int8 */
    /* model state (variable tensors, e.g. SVDF's activation state): kept in a caller-owned static buffer
     * between invocations; tz_reset_state restores state_init (TFLM's Reset) */
    int8_t *state;                       /* [state_bytes], aligned for int16; NULL: stateless */
    const int32_t *state_offset;         /* byte offset of each variable tensor in state; -1 otherwise */
    const int8_t *state_init;            /* [state_bytes] initial bytes (TFLM memsets: zero point or 0) */
    int32_t state_bytes;
} tz_model_t;

/* called after each operator with its output: the tensor's bytes (size elements of the output's type,
 * tz_tensor_type); may be NULL */
typedef void (*tz_hook_t)(void *ctx, int32_t op, const int8_t *out, int32_t size);

void tz_model_init(tz_model_t *m, const tz_op_t *ops, int32_t n_ops, const int32_t *tensor_shape,
                   const int32_t *tensor_size, const int32_t *tensor_offset, int32_t input, int32_t output);
/* Run one sample: the input must already be in the arena at its offset. Returns 0, or -1 for an
 * unknown operator / a softmax row TFLM would abort on. */
int tz_invoke(const tz_model_t *m, int8_t *arena, tz_hook_t hook, void *ctx);
/* Typed tensors (int16 / int32 activations): the arena must be aligned for int32 (the planned offsets are
 * multiples of 16). tensor_type as model.tensor_type (NULL: every tensor int8). */
void tz_model_set_types(tz_model_t *m, const int32_t *tensor_type);
/* A stateful model: attach the state buffer and its initial bytes, and reset it. */
void tz_model_set_state(tz_model_t *m, int8_t *state, const int32_t *state_offset, const int8_t *state_init,
                        int32_t state_bytes);
void tz_reset_state(tz_model_t *m); /* every variable tensor back to its initial value (TFLM's Reset) */
static inline int32_t tz_tensor_type(const tz_model_t *m, int32_t t) {
    return m->tensor_type != NULL ? m->tensor_type[t] : TZ_INT8;
}
/* the bytes of tensor t: the state buffer for a variable tensor, else the arena */
static inline int8_t *tz_tensor(const tz_model_t *m, int8_t *arena, int32_t t) {
    if (m->state != NULL && m->state_offset[t] >= 0) return m->state + m->state_offset[t];
    return arena + m->tensor_offset[t];
}

/* ---- kernels (tz_kernels.c); layouts as TFLite: NHWC, OHWI, 1HWC ---- */
void tz_conv_s8(const tz_op_t *op, const int8_t *w, const int32_t *b, const int8_t *x, int32_t h, int32_t wd,
                int32_t c, int8_t *y, int32_t oh, int32_t ow);
void tz_depthwise_conv_s8(const tz_op_t *op, const int8_t *w, const int32_t *b, const int8_t *x, int32_t h,
                          int32_t wd, int32_t c, int8_t *y, int32_t oh, int32_t ow);
void tz_fully_connected_s8(const tz_op_t *op, const int8_t *w, const int32_t *b, const int8_t *x, int32_t rows,
                           int8_t *y);
void tz_add_s8(const tz_op_t *op, const int8_t *x1, const int8_t *x2, int8_t *y, int32_t n);
void tz_mean_hw_s8(const tz_op_t *op, const int8_t *x, int32_t hw, int32_t c, int8_t *y);
void tz_average_pool_s8(const tz_op_t *op, const int8_t *x, int32_t h, int32_t wd, int32_t c, int8_t *y,
                        int32_t oh, int32_t ow);
int tz_softmax_s8(const tz_op_t *op, const int8_t *x, int32_t rows, int32_t depth, int8_t *y);
/* int8 -> int16 (TFLM Softmax<int8_t, int16_t>: output zero point -32768, scale 1/65536) */
int tz_softmax_s8_s16(const tz_op_t *op, const int8_t *x, int32_t rows, int32_t depth, int16_t *y);

/* ---- 16x8 and keyword-spotting kernels (tz_kernels16.c) ----
 * 16x8: int16 activations (zero point 0), int8 weights, bias64; TFLM's reference int16 kernels. */
void tz_conv_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t h, int32_t wd, int32_t c, int16_t *y,
                 int32_t oh, int32_t ow);
void tz_depthwise_conv_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t h, int32_t wd, int32_t c,
                           int16_t *y, int32_t oh, int32_t ow);
void tz_fully_connected_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t rows, int16_t *y);
void tz_add_s16(const tz_op_t *op, const int16_t *x1, const int16_t *x2, int16_t *y, int32_t n); /* left_shift 15 */
/* One SVDF invocation (TFLM EvalIntegerSvdfReference): int8 x[filter_w] -> int8 y[n_out]; state (int8 or
 * int16 per state_type, [filters * memory_size]) is shifted and updated in place. */
void tz_svdf_s8(const tz_op_t *op, const int8_t *x, void *state, int32_t state_type, int8_t *y);
/* QUANTIZE between integer types (TFLM Requantize): clamp(MBQM(x + input_offset) + output_offset, act_min,
 * act_max), x of in_type, y of out_type (TZ_INT8 / TZ_INT16 / TZ_INT32) */
void tz_requantize(const tz_op_t *op, const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n);

/* ---- training (tz_train.c) ---- */
#ifndef TZ_EXPF
#define TZ_EXPF(a) ((float)exp((double)(a)))  /* correctly rounded float32 exp, as tinyzo */
#endif
#ifndef TZ_LOGF
#define TZ_LOGF(a) ((float)log((double)(a)))
#endif

enum { TZ_TARGET_WEIGHT = 0, TZ_TARGET_NODE = 1 };
enum { TZ_EST_RGE = 0, TZ_EST_SPSA = 1, TZ_EST_SIGN_SPSA = 2 };
enum { TZ_DIR_RADEMACHER = 0, TZ_DIR_GAUSSIAN = 1, TZ_DIR_UNIFORM = 2 };
enum { TZ_ROUND_NEAREST = 0, TZ_ROUND_STOCHASTIC = 1 };
#define TZ_ROUNDING_QUERY 0xFFFFFFFFu
#define TZ_NODE_LAYER_ID 1000000u

typedef struct {
    int32_t target, estimator, direction, rounding, queries, sigma, sigma_node, batch;
    uint32_t seed;
    int32_t n_layers;
    const int32_t *layers;                    /* trained operator indices, ascending */
    float norm_w, norm_node;                  /* 1 / (m E[delta^2]) (sign-spsa: 1 / (m sigma)) */
    const int32_t *sigma_bias[TZ_MAX_LAYERS]; /* weight target: bias perturbation per channel */
    const float *norm_b[TZ_MAX_LAYERS];       /* weight target: norm per bias channel */
    const int32_t *crc[TZ_MAX_LAYERS];        /* stochastic rounding ids of 'k/w', 'k/b' (uint32 bits) */
    const float *acc_scale[TZ_MAX_LAYERS];    /* node target: s_x s_w[c] / s_y per channel */
    const float *bias_scale[TZ_MAX_LAYERS];   /* s_x s_w[c] (float32) per channel (1 if per tensor) */
    int32_t n_bias_scale[TZ_MAX_LAYERS];
} tz_zo_config_t;

/* Caller-owned buffers, one entry per trained layer (index in config.layers). */
typedef struct {
    int8_t *w[TZ_MAX_LAYERS];       /* current parameters (RAM) */
    int32_t *b[TZ_MAX_LAYERS];
    int8_t *w_pert[TZ_MAX_LAYERS];  /* weight target: perturbed copies */
    int32_t *b_pert[TZ_MAX_LAYERS];
    float *gw[TZ_MAX_LAYERS];       /* gradient estimates per integer unit */
    float *gb[TZ_MAX_LAYERS];
    float *g_node[TZ_MAX_LAYERS];   /* node target: dL/dy, [batch][out size] */
    int8_t *x_node[TZ_MAX_LAYERS];  /* node target: layer input / output of the base pass, [batch][size] */
    int8_t *y_node[TZ_MAX_LAYERS];
    int8_t *u_node[TZ_MAX_LAYERS];  /* node target: one sample's perturbation, [out size] */
    int32_t *dir;                   /* scratch for one parameter tensor's perturbation, max layer size */
} tz_zo_ws_t;

/* What one step computed (for the golden comparison; a firmware needs only the losses). */
typedef struct {
    int8_t logits[TZ_MAX_BATCH][TZ_MAX_CLASSES];
    float base[TZ_MAX_BATCH], base_mean;
    float plus[TZ_MAX_QUERIES][TZ_MAX_BATCH], minus[TZ_MAX_QUERIES][TZ_MAX_BATCH];
    float coef[TZ_MAX_QUERIES][TZ_MAX_BATCH], coef_mean[TZ_MAX_QUERIES];
    uint32_t seeds[TZ_MAX_QUERIES][TZ_MAX_LAYERS][3]; /* weights, bias, node output */
    uint32_t clamped; /* lean step: weights whose perturbation was clamped (restored from the record) */
} tz_zo_record_t;

float tz_cross_entropy(const int8_t *q, int32_t k, int32_t label, float scale, int32_t zero_point);
float tz_mean_f32(const float *v, int32_t n);
/* Values [offset, offset + n) of the perturbation stream of `seed` (kind TZ_DIR_*, times sigma). */
void tz_perturbation(int32_t kind, uint32_t seed, int32_t sigma, int32_t offset, int32_t n, int32_t *out);
/* exact round(x - d) of an integer and a float32 (half away from zero, or floor(x - d + r24 / 2^24)) */
int64_t tz_round_subtract(int64_t x, float d, int32_t rounding, uint32_t r24);
/* One element of the integer update (both ZO steps): clamp(round(p - (lr * (1 / (s * s))) * g)) with
 * p an int8 weight (clamped to [-127, 127]) or an int32 bias; *st is the stochastic-rounding stream. */
int8_t tz_update_weight(int8_t w, float g, float s, float lr, int32_t rounding, uint32_t *st);
int32_t tz_update_bias(int32_t b, float g, float s, float lr, int32_t rounding, uint32_t *st);
/* One ZO step on a batch x[batch][input size] with labels y. The model's trained layers must
 * point at ws->w / ws->b. Returns 0 or -1. */
int tz_zo_step(tz_model_t *m, int8_t *arena, const tz_zo_config_t *cfg, tz_zo_ws_t *ws, uint32_t step, float lr,
               const int8_t *x, const int32_t *y, float out_scale, int32_t out_zero_point, tz_zo_record_t *rec);

/* ---- lean weight-perturbation step (tz_train_lean.c) ----
 * Same result as tz_zo_step for target weight (every estimator, direction and rounding), bit for bit,
 * with only the memory tinyzo's planner counts: the SRAM copies w, b and a clamp record of `bits` per
 * trained weight (bits = tz_lean_clamp_bits(direction, sigma): 1 for Rademacher or uniform sigma = 1,
 * ceil(log2(U + 1)) for a largest |u| of U). Per query the parameters are perturbed in place and
 * restored exactly; the update regenerates every query's u element by element. */
#ifndef TZ_LEAN_MAX_CLAMP_BITS
#define TZ_LEAN_MAX_CLAMP_BITS 8 /* |u| <= 255: beyond, a perturbation spans the whole int8 range */
#endif
enum {
    TZ_LEAN_ERR_CONFIG = -2, /* node target, or a perturbation wider than TZ_LEAN_MAX_CLAMP_BITS */
    TZ_LEAN_ERR_RANGE = -3   /* a trained weight at -128, or a bias that would saturate when perturbed */
};

typedef struct {
    int8_t *w[TZ_MAX_LAYERS];     /* current parameters (RAM), one entry per trained layer */
    int32_t *b[TZ_MAX_LAYERS];
    uint8_t *clamp[TZ_MAX_LAYERS]; /* ceil(n_weights * bits / 8) bytes each */
} tz_zo_lean_ws_t;

/* bits of clamp record per weight for a perturbation stream (TZ_DIR_*, sigma >= 1), or -1 if unsupported */
int32_t tz_lean_clamp_bits(int32_t direction, int32_t sigma);
/* One weight-perturbation ZO step (cfg->target must be TZ_TARGET_WEIGHT). The model's trained layers must
 * point at ws->w / ws->b. rec may be NULL (a firmware needs nothing of it); when given, everything but the
 * gradient estimates is filled. Returns 0, -1 (invoke error / limits), TZ_LEAN_ERR_CONFIG or
 * TZ_LEAN_ERR_RANGE (nothing changed for the last two). */
int tz_zo_step_weight_lean(tz_model_t *m, int8_t *arena, const tz_zo_config_t *cfg, tz_zo_lean_ws_t *ws,
                           uint32_t step, float lr, const int8_t *x, const int32_t *y, float out_scale,
                           int32_t out_zero_point, tz_zo_record_t *rec);

#endif /* TINYZO_PORT_H */

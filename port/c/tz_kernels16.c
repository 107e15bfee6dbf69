/*
 * 16x8 kernels (int16 activations with zero point 0, int8 weights, int64 bias) and the keyword-spotting
 * operators (SVDF, integer QUANTIZE) of the C reference port, each the loop of TFLite Micro's reference
 * kernel. Bit-exact with tinyzo/spec/conv16.py, binary.py (int16 ADD), svdf.py and requantize.py.
 */
#include <string.h>

#include "tinyzo_port.h"
#include "tz_arith.h"

/* the 16x8 requantization of one accumulator: int64 overload, or the int32 one for acc_bits 32 */
static int16_t requant16(int64_t acc, int32_t acc_bits, int32_t mult, int32_t shift, int32_t out_offset, int32_t lo,
                         int32_t hi) {
    const int32_t v = acc_bits == 64 ? tz_mbqm64(acc, mult, shift) : tz_mbqm((int32_t)(uint32_t)(uint64_t)acc, mult, shift);
    return (int16_t)tz_clamp((int32_t)((uint32_t)v + (uint32_t)out_offset), lo, hi);
}

/* acc += p in the accumulator's width (int64, or int32 wrapping as C) */
static int64_t acc_add(int64_t acc, int64_t p, int32_t acc_bits) {
    const uint64_t s = (uint64_t)acc + (uint64_t)p;
    return acc_bits == 64 ? (int64_t)s : (int64_t)(int32_t)(uint32_t)s;
}

void tz_conv_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t h, int32_t wd, int32_t c, int16_t *y,
                 int32_t oh, int32_t ow) {
    /* TFLM ConvPerChannel<AccumScalar> (int16): no input or output offset */
    const int32_t kh = op->filter_h, kw = op->filter_w, o_n = op->n_out, ab = op->acc_bits;
    for (int32_t oy = 0; oy < oh; ++oy) {
        for (int32_t ox = 0; ox < ow; ++ox) {
            for (int32_t oc = 0; oc < o_n; ++oc) {
                int64_t acc = 0;
                for (int32_t fy = 0; fy < kh; ++fy) {
                    const int32_t iy = oy * op->stride_h - op->pad_h + op->dil_h * fy;
                    if (iy < 0 || iy >= h) continue;
                    for (int32_t fx = 0; fx < kw; ++fx) {
                        const int32_t ix = ox * op->stride_w - op->pad_w + op->dil_w * fx;
                        if (ix < 0 || ix >= wd) continue;
                        const int16_t *xr = x + ((size_t)iy * wd + ix) * c;
                        const int8_t *wr = w + (((size_t)oc * kh + fy) * kw + fx) * c;
                        for (int32_t ic = 0; ic < c; ++ic)
                            acc = acc_add(acc, (int64_t)((int32_t)wr[ic] * (int32_t)xr[ic]), ab);
                    }
                }
                acc = acc_add(acc, op->bias64[oc], ab);
                y[((size_t)oy * ow + ox) * o_n + oc] =
                    requant16(acc, ab, op->multiplier[oc], op->shift[oc], 0, op->act_min, op->act_max);
            }
        }
    }
}

void tz_depthwise_conv_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t h, int32_t wd, int32_t c,
                           int16_t *y, int32_t oh, int32_t ow) {
    /* TFLM DepthwiseConvPerChannel (int16): int64 accumulator, no offsets */
    const int32_t kh = op->filter_h, kw = op->filter_w, mult = op->depth_multiplier, o_n = op->n_out;
    for (int32_t oy = 0; oy < oh; ++oy) {
        for (int32_t ox = 0; ox < ow; ++ox) {
            for (int32_t ic = 0; ic < c; ++ic) {
                for (int32_t m = 0; m < mult; ++m) {
                    const int32_t oc = ic * mult + m;
                    int64_t acc = 0;
                    for (int32_t fy = 0; fy < kh; ++fy) {
                        const int32_t iy = oy * op->stride_h - op->pad_h + op->dil_h * fy;
                        if (iy < 0 || iy >= h) continue;
                        for (int32_t fx = 0; fx < kw; ++fx) {
                            const int32_t ix = ox * op->stride_w - op->pad_w + op->dil_w * fx;
                            if (ix < 0 || ix >= wd) continue;
                            const int32_t xv = x[((size_t)iy * wd + ix) * c + ic];
                            const int32_t wv = w[((size_t)fy * kw + fx) * o_n + oc];
                            acc += (int64_t)(wv * xv);
                        }
                    }
                    acc = acc_add(acc, op->bias64[oc], 64);
                    y[((size_t)oy * ow + ox) * o_n + oc] =
                        requant16(acc, 64, op->multiplier[oc], op->shift[oc], 0, op->act_min, op->act_max);
                }
            }
        }
    }
}

void tz_fully_connected_s16(const tz_op_t *op, const int8_t *w, const int16_t *x, int32_t rows, int16_t *y) {
    /* TFLM FullyConnectedPerChannel<int16_t, int8_t, int16_t, BiasType>: (w) * (x + input_offset) */
    const int32_t k_len = op->filter_w, o_n = op->n_out, ab = op->acc_bits;
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t oc = 0; oc < o_n; ++oc) {
            int64_t acc = 0;
            for (int32_t k = 0; k < k_len; ++k)
                acc = acc_add(acc, (int64_t)w[(size_t)oc * k_len + k] * ((int64_t)x[(size_t)r * k_len + k] + op->input_offset),
                              ab);
            acc = acc_add(acc, op->bias64[oc], ab);
            y[(size_t)r * o_n + oc] =
                requant16(acc, ab, op->multiplier[oc], op->shift[oc], op->output_offset, op->act_min, op->act_max);
        }
    }
}

void tz_add_s16(const tz_op_t *op, const int16_t *x1, const int16_t *x2, int16_t *y, int32_t n) {
    for (int32_t i = 0; i < n; ++i) { /* TFLM's general int16 path (AddElementwise, left_shift 15) */
        const int32_t v1 = (int32_t)((uint32_t)(op->in1_offset + x1[i]) << op->left_shift);
        const int32_t v2 = (int32_t)((uint32_t)(op->in2_offset + x2[i]) << op->left_shift);
        const int32_t s1 = tz_mbqm(v1, op->in1_multiplier, op->in1_shift);
        const int32_t s2 = tz_mbqm(v2, op->in2_multiplier, op->in2_shift);
        const int32_t sum = (int32_t)((uint32_t)s1 + (uint32_t)s2);
        y[i] = (int16_t)tz_clamp(tz_mbqm(sum, op->out_multiplier, op->out_shift) + op->output_offset, op->act_min,
                                 op->act_max);
    }
}

/* ---- typed element access for the state and QUANTIZE (int8 / int16 / int32) ---- */
static int32_t load(const void *p, int32_t type, size_t i) {
    if (type == TZ_INT16) return ((const int16_t *)p)[i];
    if (type == TZ_INT32) return ((const int32_t *)p)[i];
    return ((const int8_t *)p)[i];
}

static void store(void *p, int32_t type, size_t i, int32_t v) { /* C's conversion: wraps to the type */
    if (type == TZ_INT16) ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint32_t)v;
    else if (type == TZ_INT32) ((int32_t *)p)[i] = v;
    else ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint32_t)v;
}

void tz_svdf_s8(const tz_op_t *op, const int8_t *x, void *state, int32_t state_type, int8_t *y) {
    const int32_t n_input = op->filter_w, n_unit = op->n_out, rank = op->rank, mem = op->memory_size;
    const int32_t n_filter = n_unit * rank, n_state = n_filter * mem, zp_s = op->state_zero_point;
    const int32_t s_min = state_type == TZ_INT16 ? INT16_MIN : INT8_MIN;
    const int32_t s_max = state_type == TZ_INT16 ? INT16_MAX : INT8_MAX;
    /* 1. shift the flattened state left by one element */
    memmove(state, (const int8_t *)state + state_type, (size_t)(n_state - 1) * (size_t)state_type);
    /* 2. feature matmul into each filter's newest column (zero point added after the clamp, stored wrapping) */
    for (int32_t f = 0; f < n_filter; ++f) {
        int32_t acc = 0;
        for (int32_t c = 0; c < n_input; ++c)
            acc = (int32_t)((uint32_t)acc +
                            (uint32_t)((int32_t)op->weights[(size_t)f * n_input + c] * ((int32_t)x[c] + op->input_offset)));
        const int32_t v = tz_clamp(tz_mbqm(acc, op->multiplier_1, op->shift_1), s_min, s_max);
        store(state, state_type, (size_t)f * mem + (size_t)(mem - 1), v + zp_s);
    }
    /* 3.-5. time weights, rank reduction with the bias, requantization */
    for (int32_t u = 0; u < n_unit; ++u) {
        int32_t o = op->bias[u];
        for (int32_t r = 0; r < rank; ++r) {
            const int32_t f = u * rank + r;
            int32_t t = 0;
            for (int32_t j = 0; j < mem; ++j) {
                const size_t i = (size_t)f * mem + (size_t)j;
                const int32_t wt = state_type == TZ_INT16 ? op->weights_time16[i] : op->weights_time8[i];
                t = (int32_t)((uint32_t)t + (uint32_t)((int64_t)wt * (load(state, state_type, i) - zp_s)));
            }
            o = (int32_t)((uint32_t)o + (uint32_t)t);
        }
        y[u] = (int8_t)tz_clamp(tz_mbqm(o, op->out_multiplier, op->out_shift) + op->output_offset, -128, 127);
    }
}

void tz_requantize(const tz_op_t *op, const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = tz_mbqm((int32_t)((uint32_t)load(x, in_type, (size_t)i) + (uint32_t)op->input_offset),
                                  op->out_multiplier, op->out_shift);
        store(y, out_type, (size_t)i, tz_clamp((int32_t)((uint32_t)v + (uint32_t)op->output_offset), op->act_min,
                                               op->act_max));
    }
}

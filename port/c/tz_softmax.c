/*
 * int8 -> int8 and int8 -> int16 SOFTMAX of TFLite Micro (reference_ops::Softmax<int8_t, int8_t / int16_t>), gemmlowp fixed
 * point. One function per gemmlowp primitive, as tinyzo/spec/softmax.py; FixedPoint<int32_t, n>
 * values are raw int32, additions wrap.
 */
#include "tinyzo_port.h"
#include "tz_arith.h"

static int32_t wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

static int32_t one_q(int32_t integer_bits) { return integer_bits == 0 ? INT32_MAX : (int32_t)1 << (31 - integer_bits); }

static int32_t srmbpot(int32_t x, int32_t exponent) { /* SaturatingRoundingMultiplyByPOT */
    if (exponent == 0) return x;
    if (exponent < 0) return tz_rdbpot(x, -exponent);
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t rescale(int32_t x, int32_t src_bits, int32_t dst_bits) { return srmbpot(x, src_bits - dst_bits); }

static int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t s = (int64_t)a + (int64_t)b;
    return (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
}

static int32_t exp_quarter(int32_t a) { /* exp_on_interval_between_negative_one_quarter_and_0_excl */
    const int32_t exp_m1_8 = 1895147668, one_third = 715827883;
    const int32_t x = wrap_add(a, (int32_t)1 << 28);
    const int32_t x2 = tz_srdhm(x, x), x3 = tz_srdhm(x2, x), x4 = tz_srdhm(x2, x2);
    const int32_t x4_over_4 = srmbpot(x4, -2);
    const int32_t poly = srmbpot(wrap_add(tz_srdhm(wrap_add(x4_over_4, x3), one_third), x2), -1);
    return wrap_add(exp_m1_8, tz_srdhm(exp_m1_8, wrap_add(x, poly)));
}

static int32_t exp_on_negative_values(int32_t a, int32_t integer_bits) {
    static const int32_t k_exp[7] = {-2, -1, 0, 1, 2, 3, 4};
    static const int32_t k_mult[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod = wrap_sub(a & mask, one_quarter);
    int32_t result = exp_quarter(rescale(a_mod, integer_bits, 0));
    const int32_t remainder = wrap_sub(a_mod, a);
    for (int i = 0; i < 7; ++i)
        if (integer_bits > k_exp[i] && (remainder & (int32_t)((uint32_t)1 << (fractional_bits + k_exp[i]))))
            result = tz_srdhm(result, k_mult[i]);
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0;
    if (a == 0) result = one_q(0);
    return result;
}

static int32_t one_over_one_plus_x(int32_t a) { /* one_over_one_plus_x_for_x_in_0_1 */
    const int32_t half_den = rounding_half_sum(a, one_q(0));
    int32_t x = wrap_add(1515870810, tz_srdhm(half_den, -1010580540));
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = tz_srdhm(half_den, x);
        const int32_t one_minus = wrap_sub(one_q(2), hdx);
        x = wrap_add(x, rescale(tz_srdhm(x, one_minus), 4, 2));
    }
    return rescale(x, 1, 0);
}

static int32_t count_leading_zeros(uint32_t x) {
    int32_t n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

/* one row set of TFLM's Softmax<int8_t, OutT>: out_bits 8 (int8, zero point -128) or 16 (int16, -32768) */
static int softmax_rows(const tz_op_t *op, const int8_t *x, int32_t rows, int32_t depth, int32_t out_bits, int8_t *y8,
                        int16_t *y16) {
    const int32_t out_min = out_bits == 16 ? INT16_MIN : INT8_MIN, out_max = out_bits == 16 ? INT16_MAX : INT8_MAX;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *in = x + (size_t)r * depth;
        int32_t max_in = -128;
        for (int32_t i = 0; i < depth; ++i) if (in[i] > max_in) max_in = in[i];
        int32_t sum = 0; /* Q12.19 */
        for (int32_t i = 0; i < depth; ++i) {
            const int32_t diff = in[i] - max_in;
            if (diff >= op->sm_diff_min) {
                const int32_t scaled = tz_srdhm((int32_t)((uint32_t)diff << op->sm_left_shift), op->sm_multiplier);
                sum = wrap_add(sum, rescale(exp_on_negative_values(scaled, 5), 0, 12));
            }
        }
        const int32_t headroom = count_leading_zeros((uint32_t)sum);
        if (headroom >= 32) return -1;
        const int32_t bits_over_unit = 12 - headroom;
        const int32_t shifted_minus_one = (int32_t)(((uint32_t)sum << headroom) - 0x80000000u);
        const int32_t scale = one_over_one_plus_x(shifted_minus_one);
        const int32_t exponent = bits_over_unit + 31 - out_bits;
        if (exponent < 0 || exponent > 31) return -1; /* TFLM aborts (TFLITE_CHECK) */
        for (int32_t i = 0; i < depth; ++i) {
            const int32_t diff = in[i] - max_in;
            int32_t v = out_min;
            if (diff >= op->sm_diff_min) {
                const int32_t scaled = tz_srdhm((int32_t)((uint32_t)diff << op->sm_left_shift), op->sm_multiplier);
                const int32_t e = exp_on_negative_values(scaled, 5);
                v = tz_clamp(tz_rdbpot(tz_srdhm(scale, e), exponent) + out_min, out_min, out_max);
            }
            if (out_bits == 16) y16[(size_t)r * depth + i] = (int16_t)v;
            else y8[(size_t)r * depth + i] = (int8_t)v;
        }
    }
    return 0;
}

int tz_softmax_s8(const tz_op_t *op, const int8_t *x, int32_t rows, int32_t depth, int8_t *y) {
    return softmax_rows(op, x, rows, depth, 8, y, NULL);
}

int tz_softmax_s8_s16(const tz_op_t *op, const int8_t *x, int32_t rows, int32_t depth, int16_t *y) {
    return softmax_rows(op, x, rows, depth, 16, NULL, y);
}

/*
 * Fixed-point primitives of TFLite Micro / gemmlowp (double rounding, TFLM's default build).
 * Same names and semantics as tinyzo/spec/arith.py; int64 products, C truncating division.
 */
#ifndef TZ_ARITH_H
#define TZ_ARITH_H

#include <stdint.h>

static inline int32_t tz_srdhm(int32_t a, int32_t b) { /* SaturatingRoundingDoublingHighMul */
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (int64_t)1 << 30 : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates toward zero */
}

static inline int32_t tz_rdbpot(int32_t x, int32_t exponent) { /* RoundingDivideByPOT, exponent in [0, 31] */
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* arithmetic shift of a negative value: what every TFLM target compiler does */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t tz_mbqm(int32_t x, int32_t multiplier, int32_t shift) { /* MultiplyByQuantizedMultiplier */
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    int32_t shifted = (int32_t)(uint32_t)((uint32_t)x << left); /* int32 wrap, as compiled C */
    return tz_rdbpot(tz_srdhm(shifted, multiplier), right);
}

/* MultiplyByQuantizedMultiplier(int64_t x, int32_t, int) of the 16x8 kernels (shift in [-31, 14]): the
 * multiplier reduced to 15 bits, one rounding; int64 and the int32 cast wrap as compiled C */
static inline int32_t tz_mbqm64(int64_t x, int32_t multiplier, int32_t shift) {
    const int64_t reduced = multiplier < 0x7FFF0000 ? ((int64_t)multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total_shift = 15 - shift;
    const int64_t v = (int64_t)((uint64_t)x * (uint64_t)reduced + ((uint64_t)1 << (total_shift - 1)));
    return (int32_t)(uint32_t)(uint64_t)(v >> total_shift); /* arithmetic shift, as every TFLM target */
}

static inline int32_t tz_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

#endif /* TZ_ARITH_H */

/* tinyzo_prng.h -- tinyzo's zeroth-order perturbation generator in plain C99.
 *
 * Header-only, static inline, no allocation, no floating point, no global state. Every function
 * gives exactly the integers of tinyzo.training.prng / tinyzo.spec.prng (tests/test_prng.py compiles
 * this header and compares). Recipes and moments: docs/zo_prng.md.
 *
 *   uint32_t s = tzo_derive_seed(base_seed, step, query, layer);   // never 0
 *   int8_t  u[N];  s = tzo_rademacher(s, u, N);                    // +-1
 *   int32_t g[N];  s = tzo_gaussian_int(s, sigma, g, N);           // ~N(0, sigma^2), 1 <= sigma <= 16384
 *   int32_t r[N];  s = tzo_uniform_int(s, lo, hi, r, N);           // uniform on [lo, hi]
 *
 * Each generator starts from a non-zero state and returns the final state (pass it back to
 * continue the stream). A perturbation is regenerated from its seed whenever it is needed, so it
 * costs one uint32_t of memory, never a buffer per layer.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef TINYZO_PRNG_H
#define TINYZO_PRNG_H

#include <stddef.h>
#include <stdint.h>

#define TZO_ZERO_SEED_REPLACEMENT 0x6D2B79F5u
#define TZO_GAUSSIAN_SIGMA_MAX 16384

/* Marsaglia's xorshift32 (13, 17, 5): next state = output. State 0 is forbidden (fixed point). */
static inline uint32_t tzo_xorshift32(uint32_t x) {
  x ^= (uint32_t)(x << 13);
  x ^= x >> 17;
  x ^= (uint32_t)(x << 5);
  return x;
}

/* MurmurHash3's 32-bit finalizer (a bijection of uint32_t). */
static inline uint32_t tzo_fmix32(uint32_t h) {
  h ^= h >> 16;
  h = (uint32_t)(h * 0x85EBCA6Bu);
  h ^= h >> 13;
  h = (uint32_t)(h * 0xC2B2AE35u);
  h ^= h >> 16;
  return h;
}

/* Seed of the perturbation of (step, query, layer) under base_seed: in [1, 2^32 - 1]. */
static inline uint32_t tzo_derive_seed(uint32_t base_seed, uint32_t step, uint32_t query, uint32_t layer) {
  uint32_t h = tzo_fmix32(base_seed);
  h = tzo_fmix32(h ^ (uint32_t)(step * 0x9E3779B1u));
  h = tzo_fmix32(h ^ (uint32_t)(query * 0x85EBCA77u));
  h = tzo_fmix32(h ^ (uint32_t)(layer * 0xC2B2AE3Du));
  return h != 0u ? h : TZO_ZERO_SEED_REPLACEMENT;
}

/* out[i] = +1 if bit (i % 32) of draw (i / 32) is set, else -1 (low bit first, 32 values per draw). */
static inline uint32_t tzo_rademacher(uint32_t state, int8_t *out, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    if ((i & 31u) == 0u) state = tzo_xorshift32(state);
    out[i] = (int8_t)(((state >> (i & 31u)) & 1u) ? 1 : -1);
  }
  return state;
}

/* out[i] uniform on [lo, hi] (lo <= hi, at most 2^32 - 1 values), unbiased by rejection:
 * u = draw - 1 is uniform on [0, 2^32 - 2]; accept u < N - N % r (N = 2^32 - 1, r = hi - lo + 1). */
static inline uint32_t tzo_uniform_int(uint32_t state, int32_t lo, int32_t hi, int32_t *out, size_t n) {
  const uint32_t r = (uint32_t)((int64_t)hi - (int64_t)lo + 1);
  const uint32_t limit = 0xFFFFFFFFu - 0xFFFFFFFFu % r;
  size_t i;
  for (i = 0; i < n; ++i) {
    do {
      state = tzo_xorshift32(state);
    } while (state - 1u >= limit);
    out[i] = (int32_t)((int64_t)lo + (int64_t)((state - 1u) % r));
  }
  return state;
}

/* floor(sqrt(t)) for t < 2^62. */
static inline uint64_t tzo_isqrt64(uint64_t t) {
  uint64_t r = 0, bit = (uint64_t)1 << 60;
  while (bit > t) bit >>= 2;
  while (bit != 0u) {
    if (t >= r + bit) {
      t -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
    bit >>= 2;
  }
  return r;
}

/* m = isqrt(floor((12 sigma^2 - 1) * 2^30 / 65535)), 1 <= sigma <= 16384: (m / 2^16)^2 * 21845 = sigma^2 - 1/12. */
static inline int32_t tzo_gaussian_multiplier(int32_t sigma) {
  const uint64_t q = 12u * (uint64_t)sigma * (uint64_t)sigma - 1u;
  return (int32_t)tzo_isqrt64((q << 30) / 65535u);
}

/* out[i] ~ N(0, sigma^2) in integers, 1 <= sigma <= 16384, one draw each:
 * c = b0 + b1 + b2 + b3 - 510 (the draw's bytes), out = round_half_away(c * m / 2^16). */
static inline uint32_t tzo_gaussian_int(uint32_t state, int32_t sigma, int32_t *out, size_t n) {
  const int64_t m = tzo_gaussian_multiplier(sigma);
  size_t i;
  for (i = 0; i < n; ++i) {
    int32_t c;
    int64_t v;
    state = tzo_xorshift32(state);
    c = (int32_t)((state & 255u) + ((state >> 8) & 255u) + ((state >> 16) & 255u) + (state >> 24)) - 510;
    v = (int64_t)c * m;
    out[i] = (int32_t)(v >= 0 ? (v + 32768) >> 16 : -((32768 - v) >> 16));
  }
  return state;
}

#endif /* TINYZO_PRNG_H */

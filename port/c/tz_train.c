/*
 * One zeroth-order training step of the C reference port, in the order of tinyzo's ZOTrainer.step:
 * forward + loss, then per query: perturb (regenerated from its seed), forward, loss, projected
 * difference, accumulate the estimate; node perturbation: one-layer local backward; then the
 * integer update w <- clamp(round(w - lr * g / s^2)). Float32 everywhere tinyzo uses float32, in
 * the same operation order (compile with -ffp-contract=off); the local backward accumulates exact
 * double products in (sample, y, x) order (tinyzo/kernels/local_grad.py).
 */
#include <math.h>
#include <string.h>

#include "tinyzo_port.h"
#include "tinyzo_prng.h"

/* ---------------------------------------------------------------- loss */

float tz_cross_entropy(const int8_t *q, int32_t k, int32_t label, float scale, int32_t zero_point) {
    int32_t qmax = q[0];
    for (int32_t j = 1; j < k; ++j) if (q[j] > qmax) qmax = q[j];
    const float m = (float)(qmax - zero_point) * scale;
    float total = 0.0f, a_y = 0.0f;
    for (int32_t j = 0; j < k; ++j) {
        const float a = (float)(q[j] - zero_point) * scale - m; /* <= 0 */
        const float e = TZ_EXPF(a);
        total = j == 0 ? e : total + e; /* left to right */
        if (j == label) a_y = a;
    }
    return TZ_LOGF(total) - a_y;
}

float tz_mean_f32(const float *v, int32_t n) {
    float s = v[0];
    for (int32_t i = 1; i < n; ++i) s = s + v[i];
    return s / (float)n;
}

/* ---------------------------------------------------------------- perturbations */

void tz_perturbation(int32_t kind, uint32_t seed, int32_t sigma, int32_t offset, int32_t n, int32_t *out) {
    uint32_t st = seed;
    if (kind == TZ_DIR_RADEMACHER) { /* value i = bit i % 32 of draw i / 32, low bit first */
        int32_t drawn = -1;
        for (int32_t i = 0; i < n; ++i) {
            const int32_t pos = offset + i;
            while (drawn < pos / 32) { st = tzo_xorshift32(st); ++drawn; }
            out[i] = ((st >> (pos % 32)) & 1u) ? sigma : -sigma;
        }
    } else if (kind == TZ_DIR_GAUSSIAN) { /* one draw per value */
        for (int32_t j = 0; j < offset; ++j) st = tzo_xorshift32(st);
        (void)tzo_gaussian_int(st, sigma, out, (size_t)n);
    } else { /* uniform on [-sigma, sigma]: rejection, so the skipped values are generated */
        int32_t tmp;
        for (int32_t j = 0; j < offset; ++j) st = tzo_uniform_int(st, -sigma, sigma, &tmp, 1);
        (void)tzo_uniform_int(st, -sigma, sigma, out, (size_t)n);
    }
}

/* ---------------------------------------------------------------- exact rounding of (integer - float32) */

static int64_t floor_shift24(int64_t v) { return v >= 0 ? v >> 24 : -((-v + 0xFFFFFF) >> 24); }

int64_t tz_round_subtract(int64_t x, float d, int32_t rounding, uint32_t r24) {
    const float lim = 274877906944.0f; /* 2^38 */
    if (d > lim) d = lim;
    if (d < -lim) d = -lim;
    const float t = d * 16777216.0f; /* exact */
    int64_t ft = (int64_t)t;
    if ((float)ft > t) ft -= 1;      /* floor */
    const int64_t sticky = (float)ft != t;
    const int64_t v = x * 16777216 - ft; /* (x - d) * 2^24 in (v - 1, v], == v iff not sticky */
    if (rounding == TZ_ROUND_STOCHASTIC) return floor_shift24(v + (int64_t)r24 - sticky);
    const int64_t a = floor_shift24(v);
    const int64_t r = v - a * 16777216;
    const int up = r > 8388608 || (r == 8388608 && !sticky && a >= 0);
    return a + up;
}

/* One element of the integer update: x <- clamp(round(x - (lr * (1 / (s * s))) * g)), with the
 * stochastic-rounding stream *st advanced once when rounding is stochastic. */
static int64_t update_value(int64_t x, float g, float s, float lr, int32_t rounding, uint32_t *st) {
    const float kc = lr * (1.0f / (s * s));
    const float d = lr > 0.0f ? kc * g : 0.0f;
    uint32_t r24 = 0;
    if (rounding == TZ_ROUND_STOCHASTIC) { *st = tzo_xorshift32(*st); r24 = *st >> 8; }
    return tz_round_subtract(x, d, rounding, r24);
}

int8_t tz_update_weight(int8_t w, float g, float s, float lr, int32_t rounding, uint32_t *st) {
    const int64_t v = update_value(w, g, s, lr, rounding, st);
    return (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
}

int32_t tz_update_bias(int32_t b, float g, float s, float lr, int32_t rounding, uint32_t *st) {
    const int64_t v = update_value(b, g, s, lr, rounding, st);
    return (int32_t)(v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v));
}

/* ---------------------------------------------------------------- helpers */

typedef struct {
    const tz_model_t *m;
    int8_t *arena;
    const tz_zo_config_t *cfg;
    tz_zo_ws_t *ws;
    int32_t sample;
} capture_t;

static void capture_hook(void *ctx, int32_t op, const int8_t *out, int32_t size) {
    capture_t *c = (capture_t *)ctx;
    for (int32_t li = 0; li < c->cfg->n_layers; ++li) {
        if (c->cfg->layers[li] != op) continue;
        const int32_t in_t = c->m->ops[op].in0;
        const int32_t in_size = c->m->tensor_size[in_t];
        memcpy(c->ws->y_node[li] + (size_t)c->sample * size, out, (size_t)size);
        memcpy(c->ws->x_node[li] + (size_t)c->sample * in_size, c->arena + c->m->tensor_offset[in_t], (size_t)in_size);
    }
}

static float forward_loss(tz_model_t *m, int8_t *arena, const int8_t *x, int32_t label, float s, int32_t zp,
                          int8_t *logits, tz_hook_t hook, void *ctx, int *err) {
    memcpy(tz_tensor(m, arena, m->input), x, (size_t)m->tensor_size[m->input]);
    if (tz_invoke(m, arena, hook, ctx) != 0) *err = -1;
    const int8_t *q = tz_tensor(m, arena, m->output);
    const int32_t k = m->tensor_size[m->output];
    if (logits != NULL) memcpy(logits, q, (size_t)k);
    return tz_cross_entropy(q, k, label, s, zp);
}

static void node_sample_dir(const tz_model_t *m, const tz_zo_config_t *cfg, tz_zo_ws_t *ws, int32_t li,
                            uint32_t seed, int32_t n) {
    const int32_t size = m->tensor_size[m->ops[cfg->layers[li]].out];
    tz_perturbation(cfg->direction, seed, cfg->sigma_node, n * size, size, ws->dir);
    for (int32_t i = 0; i < size; ++i) ws->u_node[li][i] = (int8_t)ws->dir[i]; /* |u| <= 127: sigma_node <= 64, and <= 36 with gaussian directions (ZOConfig checks) */
}

/* losses of every sample with the perturbation of query (seeds) applied with `sign` */
static int perturbed_losses(tz_model_t *m, int8_t *arena, const tz_zo_config_t *cfg, tz_zo_ws_t *ws,
                            uint32_t seeds[][3], int32_t sign, const int8_t *x, const int32_t *y, float s, int32_t zp,
                            float *losses) {
    int err = 0;
    const int32_t in_size = m->tensor_size[m->input];
    if (cfg->target == TZ_TARGET_WEIGHT) {
        for (int32_t li = 0; li < cfg->n_layers; ++li) {
            const int32_t k = cfg->layers[li];
            const tz_op_t *op = &m->ops[k];
            tz_perturbation(cfg->direction, seeds[li][0], cfg->sigma, 0, op->n_weights, ws->dir);
            for (int32_t i = 0; i < op->n_weights; ++i) {
                int32_t v = (int32_t)ws->w[li][i] + sign * ws->dir[i];
                ws->w_pert[li][i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
            }
            tz_perturbation(cfg->direction, seeds[li][1], 1, 0, op->n_out, ws->dir);
            for (int32_t c = 0; c < op->n_out; ++c) {
                int64_t v = (int64_t)ws->b[li][c] + (int64_t)sign * (int64_t)cfg->sigma_bias[li][c] * ws->dir[c];
                ws->b_pert[li][c] = (int32_t)(v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v));
            }
            m->weights[k] = ws->w_pert[li];
            m->bias[k] = ws->b_pert[li];
        }
    } else {
        for (int32_t li = 0; li < cfg->n_layers; ++li) m->node_add[cfg->layers[li]] = ws->u_node[li];
        m->node_sign = sign;
    }
    for (int32_t n = 0; n < cfg->batch; ++n) {
        if (cfg->target == TZ_TARGET_NODE)
            for (int32_t li = 0; li < cfg->n_layers; ++li) node_sample_dir(m, cfg, ws, li, seeds[li][2], n);
        losses[n] = forward_loss(m, arena, x + (size_t)n * in_size, y[n], s, zp, NULL, NULL, NULL, &err);
    }
    for (int32_t li = 0; li < cfg->n_layers; ++li) { /* restore */
        const int32_t k = cfg->layers[li];
        m->weights[k] = ws->w[li];
        m->bias[k] = ws->b[li];
        m->node_add[k] = NULL;
    }
    m->node_sign = 1;
    return err;
}

static float sign_f32(float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); }

/* dL/dacc of node layer li at (sample b, output element i): (g * mask) * s_x s_w[c] / s_y */
static float dacc_at(const tz_op_t *op, const tz_zo_config_t *cfg, const tz_zo_ws_t *ws, int32_t li, size_t idx,
                     int32_t c) {
    const int8_t yv = ws->y_node[li][idx];
    const float mask = (yv > op->act_min && yv < op->act_max) ? 1.0f : 0.0f;
    const float t = ws->g_node[li][idx] * mask;
    return t * cfg->acc_scale[li][c];
}

/* one-layer local backward: exact double products summed in (b, oy, ox) order, one float32 rounding */
static void local_backward(const tz_model_t *m, const tz_zo_config_t *cfg, tz_zo_ws_t *ws, int32_t li) {
    const int32_t k = cfg->layers[li];
    const tz_op_t *op = &m->ops[k];
    const int32_t *si = m->tensor_shape + 4 * op->in0, *so = m->tensor_shape + 4 * op->out;
    const int32_t in_size = m->tensor_size[op->in0], out_size = m->tensor_size[op->out];
    const int32_t o_n = op->n_out, batch = cfg->batch;
    if (op->type == TZ_OP_FULLY_CONNECTED) {
        const int32_t k_len = op->filter_w, rows = in_size / k_len;
        for (int32_t o = 0; o < o_n; ++o) {
            double gb = 0.0;
            for (int32_t b = 0; b < batch; ++b)
                for (int32_t r = 0; r < rows; ++r) {
                    const float d = dacc_at(op, cfg, ws, li, (size_t)b * out_size + (size_t)r * o_n + o, o);
                    if (d != 0.0f) gb += (double)d;
                }
            ws->gb[li][o] = (float)gb;
            for (int32_t kk = 0; kk < k_len; ++kk) {
                double acc = 0.0;
                for (int32_t b = 0; b < batch; ++b)
                    for (int32_t r = 0; r < rows; ++r) {
                        const float d = dacc_at(op, cfg, ws, li, (size_t)b * out_size + (size_t)r * o_n + o, o);
                        if (d == 0.0f) continue;
                        const int32_t xv = ws->x_node[li][(size_t)b * in_size + (size_t)r * k_len + kk] + op->input_offset;
                        acc += (double)d * (double)xv;
                    }
                ws->gw[li][(size_t)o * k_len + kk] = (float)acc;
            }
        }
        return;
    }
    const int32_t h = si[1], wd = si[2], c = si[3], oh = so[1], ow = so[2];
    const int32_t kh = op->filter_h, kw = op->filter_w;
    const int depthwise = op->type == TZ_OP_DEPTHWISE_CONV_2D;
    const int32_t mult = depthwise ? op->depth_multiplier : 1;
    for (int32_t o = 0; o < o_n; ++o) {
        double gb = 0.0;
        for (int32_t b = 0; b < batch; ++b)
            for (int32_t p = 0; p < oh * ow; ++p) {
                const float d = dacc_at(op, cfg, ws, li, (size_t)b * out_size + (size_t)p * o_n + o, o);
                if (d != 0.0f) gb += (double)d;
            }
        ws->gb[li][o] = (float)gb;
        const int32_t n_ic = depthwise ? 1 : c;
        for (int32_t fy = 0; fy < kh; ++fy)
            for (int32_t fx = 0; fx < kw; ++fx)
                for (int32_t j = 0; j < n_ic; ++j) {
                    const int32_t ic = depthwise ? o / mult : j;
                    double acc = 0.0;
                    for (int32_t b = 0; b < batch; ++b)
                        for (int32_t oy = 0; oy < oh; ++oy) {
                            const int32_t iy = oy * op->stride_h - op->pad_h + fy * op->dil_h;
                            if (iy < 0 || iy >= h) continue;
                            for (int32_t ox = 0; ox < ow; ++ox) {
                                const int32_t ix = ox * op->stride_w - op->pad_w + fx * op->dil_w;
                                if (ix < 0 || ix >= wd) continue;
                                const float d = dacc_at(op, cfg, ws, li, (size_t)b * out_size + ((size_t)oy * ow + ox) * o_n + o, o);
                                if (d == 0.0f) continue;
                                const int32_t xv = ws->x_node[li][(size_t)b * in_size + ((size_t)iy * wd + ix) * c + ic] + op->input_offset;
                                acc += (double)d * (double)xv;
                            }
                        }
                    const size_t wi = depthwise ? ((size_t)fy * kw + fx) * o_n + o : (((size_t)o * kh + fy) * kw + fx) * c + j;
                    ws->gw[li][wi] = (float)acc;
                }
    }
}

/* ---------------------------------------------------------------- the step */

int tz_zo_step(tz_model_t *m, int8_t *arena, const tz_zo_config_t *cfg, tz_zo_ws_t *ws, uint32_t step, float lr,
               const int8_t *x, const int32_t *y, float out_scale, int32_t out_zero_point, tz_zo_record_t *rec) {
    int err = 0;
    const int32_t batch = cfg->batch, in_size = m->tensor_size[m->input];
    if (batch > TZ_MAX_BATCH || cfg->queries > TZ_MAX_QUERIES || cfg->n_layers > TZ_MAX_LAYERS ||
        m->tensor_size[m->output] > TZ_MAX_CLASSES)
        return -1;
    /* 1. forward + loss (node target: keep each trained layer's input and output) */
    capture_t cap = {m, arena, cfg, ws, 0};
    for (int32_t n = 0; n < batch; ++n) {
        cap.sample = n;
        rec->base[n] = forward_loss(m, arena, x + (size_t)n * in_size, y[n], out_scale, out_zero_point, rec->logits[n],
                                    cfg->target == TZ_TARGET_NODE ? capture_hook : NULL, &cap, &err);
    }
    rec->base_mean = tz_mean_f32(rec->base, batch);
    for (int32_t li = 0; li < cfg->n_layers; ++li) {
        const tz_op_t *op = &m->ops[cfg->layers[li]];
        for (int32_t i = 0; i < op->n_weights; ++i) ws->gw[li][i] = 0.0f;
        for (int32_t c = 0; c < op->n_out; ++c) ws->gb[li][c] = 0.0f;
        if (cfg->target == TZ_TARGET_NODE) {
            const int32_t size = batch * m->tensor_size[op->out];
            for (int32_t i = 0; i < size; ++i) ws->g_node[li][i] = 0.0f;
        }
    }
    /* 2.-4. queries: perturb, forward, loss, estimate */
    for (int32_t q = 0; q < cfg->queries; ++q) {
        for (int32_t li = 0; li < cfg->n_layers; ++li) {
            const uint32_t k = (uint32_t)cfg->layers[li];
            rec->seeds[q][li][0] = tzo_derive_seed(cfg->seed, step, (uint32_t)q, 2u * k);
            rec->seeds[q][li][1] = tzo_derive_seed(cfg->seed, step, (uint32_t)q, 2u * k + 1u);
            rec->seeds[q][li][2] = tzo_derive_seed(cfg->seed, step, (uint32_t)q, TZ_NODE_LAYER_ID + k);
        }
        float *plus = rec->plus[q], *minus = rec->minus[q], *coef = rec->coef[q];
        err |= perturbed_losses(m, arena, cfg, ws, rec->seeds[q], +1, x, y, out_scale, out_zero_point, plus);
        float coef_mean;
        if (cfg->estimator == TZ_EST_RGE) {
            for (int32_t n = 0; n < batch; ++n) coef[n] = plus[n] - rec->base[n];
            coef_mean = tz_mean_f32(plus, batch) - rec->base_mean;
        } else {
            err |= perturbed_losses(m, arena, cfg, ws, rec->seeds[q], -1, x, y, out_scale, out_zero_point, minus);
            for (int32_t n = 0; n < batch; ++n) coef[n] = (plus[n] - minus[n]) / 2.0f;
            coef_mean = (tz_mean_f32(plus, batch) - tz_mean_f32(minus, batch)) / 2.0f;
            if (cfg->estimator == TZ_EST_SIGN_SPSA) {
                for (int32_t n = 0; n < batch; ++n) coef[n] = sign_f32(coef[n]);
                coef_mean = sign_f32(coef_mean);
            }
        }
        rec->coef_mean[q] = coef_mean;
        for (int32_t li = 0; li < cfg->n_layers; ++li) { /* accumulate: regenerate the perturbation */
            const tz_op_t *op = &m->ops[cfg->layers[li]];
            if (cfg->target == TZ_TARGET_WEIGHT) {
                const float cw = coef_mean * cfg->norm_w;
                tz_perturbation(cfg->direction, rec->seeds[q][li][0], cfg->sigma, 0, op->n_weights, ws->dir);
                for (int32_t i = 0; i < op->n_weights; ++i) ws->gw[li][i] += cw * (float)ws->dir[i];
                tz_perturbation(cfg->direction, rec->seeds[q][li][1], 1, 0, op->n_out, ws->dir);
                for (int32_t c = 0; c < op->n_out; ++c) {
                    const float cb = coef_mean * cfg->norm_b[li][c];
                    ws->gb[li][c] += cb * (float)((int64_t)cfg->sigma_bias[li][c] * ws->dir[c]);
                }
            } else {
                const int32_t size = m->tensor_size[op->out];
                const float fac = cfg->norm_node / (float)batch;
                for (int32_t n = 0; n < batch; ++n) {
                    node_sample_dir(m, cfg, ws, li, rec->seeds[q][li][2], n);
                    const float t = coef[n] * fac;
                    float *g = ws->g_node[li] + (size_t)n * size;
                    for (int32_t i = 0; i < size; ++i) g[i] += t * (float)ws->u_node[li][i];
                }
            }
        }
    }
    if (cfg->target == TZ_TARGET_NODE)
        for (int32_t li = 0; li < cfg->n_layers; ++li) local_backward(m, cfg, ws, li);
    /* 5. integer update: w <- clamp(round(w - (lr * (1 / (s * s))) * g)) */
    for (int32_t li = 0; li < cfg->n_layers; ++li) {
        const tz_op_t *op = &m->ops[cfg->layers[li]];
        const int32_t o_n = op->n_out, per = op->n_weights / o_n;
        const int depthwise = op->type == TZ_OP_DEPTHWISE_CONV_2D;
        uint32_t st_w = 0, st_b = 0;
        if (cfg->rounding == TZ_ROUND_STOCHASTIC) {
            st_w = tzo_derive_seed(cfg->seed, step, TZ_ROUNDING_QUERY, (uint32_t)cfg->crc[li][0]);
            st_b = tzo_derive_seed(cfg->seed, step, TZ_ROUNDING_QUERY, (uint32_t)cfg->crc[li][1]);
        }
        for (int32_t i = 0; i < op->n_weights; ++i) {
            const int32_t c = op->n_weight_scale > 1 ? (depthwise ? i % o_n : i / per) : 0;
            ws->w[li][i] = tz_update_weight(ws->w[li][i], ws->gw[li][i], op->weight_scale[c], lr, cfg->rounding, &st_w);
        }
        for (int32_t c = 0; c < o_n; ++c) {
            const float s = cfg->bias_scale[li][cfg->n_bias_scale[li] > 1 ? c : 0];
            ws->b[li][c] = tz_update_bias(ws->b[li][c], ws->gb[li][c], s, lr, cfg->rounding, &st_b);
        }
    }
    return err;
}

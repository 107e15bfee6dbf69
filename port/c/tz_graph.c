/* The graph executor of the C reference port: one sample, operators in order, one arena. */
#include <string.h>

#include "tinyzo_port.h"

void tz_model_init(tz_model_t *m, const tz_op_t *ops, int32_t n_ops, const int32_t *tensor_shape,
                   const int32_t *tensor_size, const int32_t *tensor_offset, int32_t input, int32_t output) {
    m->ops = ops;
    m->n_ops = n_ops;
    m->tensor_shape = tensor_shape;
    m->tensor_size = tensor_size;
    m->tensor_offset = tensor_offset;
    m->input = input;
    m->output = output;
    m->node_sign = 1;
    m->tensor_type = NULL;
    m->state = NULL;
    m->state_offset = NULL;
    m->state_init = NULL;
    m->state_bytes = 0;
    for (int32_t k = 0; k < TZ_MAX_OPS; ++k) {
        m->weights[k] = k < n_ops ? ops[k].weights : NULL;
        m->bias[k] = k < n_ops ? ops[k].bias : NULL;
        m->node_add[k] = NULL;
    }
}

void tz_model_set_types(tz_model_t *m, const int32_t *tensor_type) { m->tensor_type = tensor_type; }

void tz_model_set_state(tz_model_t *m, int8_t *state, const int32_t *state_offset, const int8_t *state_init,
                        int32_t state_bytes) {
    m->state = state;
    m->state_offset = state_offset;
    m->state_init = state_init;
    m->state_bytes = state_bytes;
    tz_reset_state(m);
}

void tz_reset_state(tz_model_t *m) {
    if (m->state != NULL && m->state_bytes > 0) memcpy(m->state, m->state_init, (size_t)m->state_bytes);
}

/* typed views of the arena (int16 / int32 tensors are aligned: the plan's offsets are multiples of 16) */
#define AS16(p) ((int16_t *)(void *)(p))

int tz_invoke(const tz_model_t *m, int8_t *arena, tz_hook_t hook, void *ctx) {
    for (int32_t k = 0; k < m->n_ops; ++k) {
        const tz_op_t *op = &m->ops[k];
        const int32_t *si = m->tensor_shape + 4 * op->in0, *so = m->tensor_shape + 4 * op->out;
        const int8_t *x = tz_tensor(m, arena, op->in0);
        int8_t *y = tz_tensor(m, arena, op->out);
        const int32_t out_size = m->tensor_size[op->out];
        const int32_t in_type = tz_tensor_type(m, op->in0), out_type = tz_tensor_type(m, op->out);
        const int s16 = in_type == TZ_INT16; /* 16x8 (int16 activations) */
        switch (op->type) {
        case TZ_OP_CONV_2D:
            if (s16) tz_conv_s16(op, m->weights[k], AS16(x), si[1], si[2], si[3], AS16(y), so[1], so[2]);
            else tz_conv_s8(op, m->weights[k], m->bias[k], x, si[1], si[2], si[3], y, so[1], so[2]);
            break;
        case TZ_OP_DEPTHWISE_CONV_2D:
            if (s16) tz_depthwise_conv_s16(op, m->weights[k], AS16(x), si[1], si[2], si[3], AS16(y), so[1], so[2]);
            else tz_depthwise_conv_s8(op, m->weights[k], m->bias[k], x, si[1], si[2], si[3], y, so[1], so[2]);
            break;
        case TZ_OP_FULLY_CONNECTED:
            if (s16) tz_fully_connected_s16(op, m->weights[k], AS16(x), m->tensor_size[op->in0] / op->filter_w, AS16(y));
            else tz_fully_connected_s8(op, m->weights[k], m->bias[k], x, m->tensor_size[op->in0] / op->filter_w, y);
            break;
        case TZ_OP_ADD:
            if (s16) tz_add_s16(op, AS16(x), AS16(tz_tensor(m, arena, op->in1)), AS16(y), out_size);
            else tz_add_s8(op, x, tz_tensor(m, arena, op->in1), y, out_size);
            break;
        case TZ_OP_SVDF:
            if (m->state == NULL || m->state_offset[op->in1] < 0) return -1; /* no state buffer attached */
            tz_svdf_s8(op, x, tz_tensor(m, arena, op->in1), tz_tensor_type(m, op->in1), y);
            break;
        case TZ_OP_QUANTIZE:
            tz_requantize(op, x, in_type, y, out_type, out_size);
            break;
        case TZ_OP_MEAN:
            tz_mean_hw_s8(op, x, si[1] * si[2], si[3], y);
            break;
        case TZ_OP_AVERAGE_POOL_2D:
            tz_average_pool_s8(op, x, si[1], si[2], si[3], y, so[1], so[2]);
            break;
        case TZ_OP_RESHAPE:
            memmove(y, x, (size_t)out_size * (size_t)out_type);
            break;
        case TZ_OP_SOFTMAX:
            if (out_type == TZ_INT16) {
                if (tz_softmax_s8_s16(op, x, out_size / so[3], so[3], AS16(y)) != 0) return -1;
            } else if (tz_softmax_s8(op, x, out_size / so[3], so[3], y) != 0) {
                return -1;
            }
            break;
        default:
            return -1;
        }
        if (m->node_add[k] != NULL && out_type == TZ_INT8) { /* node perturbation: saturating int8 add */
            const int8_t *u = m->node_add[k];
            for (int32_t i = 0; i < out_size; ++i) {
                int32_t v = (int32_t)y[i] + m->node_sign * (int32_t)u[i];
                y[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
            }
        }
        if (hook != NULL) hook(ctx, k, y, out_size);
    }
    return 0;
}

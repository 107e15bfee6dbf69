"""Float convolution loops shared by the float layer kernels and the local weight gradient.

:mod:`tinyzo.fp.kernels` (float training and the back propagation through the quantized graph) and
:mod:`tinyzo.kernels.local_grad` (node perturbation's defined-order weight gradient) run the same
two loops over the taps of a convolution; they are written once here:

* :func:`patch_copy`: im2col (each output pixel's receptive field copied into one row, 0.0 at
  padding) and, with ``adjoint=True``, its adjoint col2im (each row added back to the pixels it was
  read from, padding dropped);
* :func:`depthwise_taps`: the depthwise tap loop, in three modes (:data:`FORWARD`,
  :data:`WEIGHT_GRAD`, :data:`INPUT_GRAD`), each adding one product per in-image tap into one of its
  three arrays.

Layouts as TFLite: activations NHWC, depthwise weights HWC (the 1HWC filter without its leading 1),
output channel ``k = ic * M + m`` reads input channel ``ic`` (M = depth multiplier). Every sum is
accumulated in the order of the loops (written in each function), in the arrays' float dtype
(float32 or float64), without FMA contraction (no fastmath); a depthwise weight-gradient element
gets its terms in increasing ``(b, oy, ox)`` order, which :mod:`tinyzo.kernels.local_grad`
relies on. Padding taps are skipped. Nothing is validated here; outputs are caller-provided.
"""

from __future__ import annotations

from numba import njit

__all__ = ["FORWARD", "INPUT_GRAD", "WEIGHT_GRAD", "depthwise_taps", "patch_copy"]

#: :func:`depthwise_taps` modes: which of its arrays the products are added into.
FORWARD, WEIGHT_GRAD, INPUT_GRAD = 0, 1, 2


@njit(cache=True, nogil=True)
def patch_copy(x, cols, sh, sw, dh, dw, ph, pw, oh, ow, adjoint):
    """im2col, or (``adjoint``) col2im, of a convolution with the given geometry.

    ``adjoint=False``: ``cols[(b*OH + oy)*OW + ox, fy, fx, :] = x[b, oy*sh - ph + fy*dh, ox*sw - pw + fx*dw, :]``,
    0.0 where that pixel is outside the image (cols written).
    ``adjoint=True``: ``x[b, iy, ix, :] += cols[row, fy, fx, :]`` for the same in-image taps (x
    accumulated into; padding taps dropped).

    Args:
        x: float[N, H, W, C] (the input, or its gradient for col2im).
        cols: float[N*OH*OW, KH, KW, C] (the K axis of the GEMM in OHWI order), same dtype.
        sh, sw, dh, dw: strides and dilations >= 1; ph, pw: leading padding >= 0; oh, ow: output size.
        adjoint: False for im2col, True for col2im.
    """
    n, h, wd, c = x.shape
    _, kh, kw, _ = cols.shape
    row = 0
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for fy in range(kh):
                    iy = oy * sh - ph + fy * dh
                    for fx in range(kw):
                        ix = ox * sw - pw + fx * dw
                        patch = cols[row, fy, fx]
                        inside = iy >= 0 and iy < h and ix >= 0 and ix < wd
                        if adjoint:
                            if inside:
                                pixel = x[b, iy, ix]
                                for k in range(c):
                                    pixel[k] += patch[k]
                        elif inside:
                            pixel = x[b, iy, ix]
                            for k in range(c):
                                patch[k] = pixel[k]
                        else:
                            for k in range(c):
                                patch[k] = 0.0
                row += 1


@njit(cache=True, nogil=True)
def depthwise_taps(mode, x, w, y, sh, sw, dh, dw, ph, pw, mult):
    """The depthwise convolution's tap loop; ``mode`` says which array the products go into.

    For every in-image tap (b, oy, ox, fy, fx), ``iy = oy*sh - ph + fy*dh``, ``ix = ox*sw - pw + fx*dw``,
    and every output channel ``k = ic*M + m``, the product of the other two arrays is added:

    * :data:`FORWARD`: ``y[b,oy,ox,k] += w[fy,fx,k] * x[b,iy,ix,ic]`` (y pre-filled with the bias or 0);
    * :data:`WEIGHT_GRAD`: ``w[fy,fx,k] += y[b,oy,ox,k] * x[b,iy,ix,ic]`` (w is the weight gradient
      and y the output gradient; w zeroed by the caller);
    * :data:`INPUT_GRAD`: ``x[b,iy,ix,ic] += sum_m w[fy,fx,k] * y[b,oy,ox,k]`` (x is the input
      gradient and y the output gradient; x zeroed by the caller).

    Args:
        mode: FORWARD, WEIGHT_GRAD or INPUT_GRAD.
        x: float[N, H, W, C]; w: float[KH, KW, C*M]; y: float[N, OH, OW, C*M]; one float dtype.
        sh, sw, dh, dw: strides and dilations >= 1; ph, pw: leading padding >= 0; mult: M >= 1.

    Each branch passes its mode as a constant, so Numba compiles one copy of the loop per mode
    without the test inside it (with the mode tested per tap the loop no longer vectorized: 5x
    slower, measured here). One mode per call: one loop with both gradients' accumulations ran 3x
    slower than two calls.
    """
    if mode == FORWARD:
        _taps(FORWARD, x, w, y, sh, sw, dh, dw, ph, pw, mult)
    elif mode == WEIGHT_GRAD:
        _taps(WEIGHT_GRAD, x, w, y, sh, sw, dh, dw, ph, pw, mult)
    else:
        _taps(INPUT_GRAD, x, w, y, sh, sw, dh, dw, ph, pw, mult)


@njit(cache=True, nogil=True)
def _taps(mode, x, w, y, sh, sw, dh, dw, ph, pw, mult):
    """:func:`depthwise_taps` for one constant ``mode``."""
    n, h, wd, _ = x.shape
    kh, kw, _ = w.shape
    _, oh, ow, _ = y.shape
    for b in range(n):
        for oy in range(oh):
            for fy in range(kh):
                iy = oy * sh - ph + fy * dh
                if iy < 0 or iy >= h:
                    continue
                for ox in range(ow):
                    y_row = y[b, oy, ox]
                    for fx in range(kw):
                        ix = ox * sw - pw + fx * dw
                        if ix < 0 or ix >= wd:
                            continue
                        x_row = x[b, iy, ix]
                        w_row = w[fy, fx]
                        # acc += p * q, where q is indexed by input channel (x_row) in FORWARD and
                        # WEIGHT_GRAD, and acc is indexed by input channel (x_row) in INPUT_GRAD
                        if mode == FORWARD:
                            acc, p, q = y_row, w_row, x_row
                        elif mode == WEIGHT_GRAD:
                            acc, p, q = w_row, y_row, x_row
                        else:
                            acc, p, q = x_row, w_row, y_row
                        if mult == 1:
                            for k in range(acc.shape[0]):
                                acc[k] += p[k] * q[k]
                        elif mode == INPUT_GRAD:  # acc[ic] += sum_m p[ic*M + m] * q[ic*M + m]
                            k = 0
                            for ic in range(acc.shape[0]):
                                s = acc[ic]
                                for _ in range(mult):
                                    s += p[k] * q[k]
                                    k += 1
                                acc[ic] = s
                        else:  # acc[ic*M + m] += p[ic*M + m] * q[ic]
                            k = 0
                            for ic in range(q.shape[0]):
                                v = q[ic]
                                for _ in range(mult):
                                    acc[k] += p[k] * v
                                    k += 1

"""Jitted layout kernels: TRANSPOSE, STRIDED_SLICE, SPLIT/SPLIT_V and GATHER copies.

Each output element is one input element copied bit for bit, so one kernel serves every integer
dtype (int8, int16, int32; Numba compiles one version per dtype). Every kernel takes a leading
batch dimension ``N`` and does for each sample what TFLite Micro does for one invoke:

* :func:`transpose_copy`: ``reference_ops::Transpose`` on shapes extended to 5-D;
* :func:`strided_slice_copy`: ``reference_ops::StridedSlice`` (5-D, TFLM's loop conditions, the
  ``SequentialTensorWriter`` order);
* :func:`split_copy`: one output of ``SplitImpl`` (``split.cc`` / ``split_v.cc``);
* :func:`gather_copy`: ``Gather`` of ``gather.cc`` (batch/outer/coord/inner blocks).

SQUEEZE and EXPAND_DIMS need no kernel: TFLM copies the bytes unchanged. Equal to
:mod:`tinyzo.spec.layout` and :mod:`tinyzo.spec.strided_slice` (property-tested); nothing is
validated here (:mod:`tinyzo.ops.layout` and :mod:`tinyzo.ops.slicing` validate).
"""

from numba import njit


@njit(cache=True, nogil=True)
def transpose_copy(x, in_strides, out):
    """TRANSPOSE of each sample (TFLM ``reference_ops::Transpose``, 5-D).

    Args:
        x: [N, L] C-contiguous, each row one sample of ``L`` elements (any integer dtype).
        in_strides: int64[5]: element stride in a sample of the input dimension that output
            dimension k reads (``stride_of_input_dim[perm[k]]``; 0 for padding dimensions).
        out: [N, o0, o1, o2, o3, o4] (the output shape extended to 5-D with leading 1s), written.
    """
    n, o0, o1, o2, o3, o4 = out.shape
    s0, s1, s2, s3, s4 = in_strides[0], in_strides[1], in_strides[2], in_strides[3], in_strides[4]
    for b in range(n):
        for i0 in range(o0):
            for i1 in range(o1):
                for i2 in range(o2):
                    for i3 in range(o3):
                        base = i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3
                        for i4 in range(o4):
                            out[b, i0, i1, i2, i3, i4] = x[b, base + i4 * s4]


@njit(cache=True, nogil=True)
def strided_slice_copy(x, starts, stops, strides, out):
    """STRIDED_SLICE of each sample (TFLM ``reference_ops::StridedSlice``, 5-D).

    For every axis k the offsets are ``starts[k], starts[k] + strides[k], ...`` while
    ``offset < stops[k]`` (stride > 0) or ``offset > stops[k]`` (stride < 0); the selected input
    elements are written in row-major order (TFLM's ``SequentialTensorWriter``).

    Args:
        x: [N, d0, d1, d2, d3, d4] (each sample's shape extended to 5-D with leading 1s), any integer dtype.
        starts, stops, strides: int64[5] as TFLM's ``StridedSliceStartForAxis`` /
            ``StridedSliceEndForAxis`` return them (:func:`tinyzo.spec.strided_slice.resolve`).
        out: [N, M] with M the number of selected elements per sample, written.
    """
    n = x.shape[0]
    for b in range(n):
        k = 0
        i0 = starts[0]
        while (i0 < stops[0]) if strides[0] > 0 else (i0 > stops[0]):
            i1 = starts[1]
            while (i1 < stops[1]) if strides[1] > 0 else (i1 > stops[1]):
                i2 = starts[2]
                while (i2 < stops[2]) if strides[2] > 0 else (i2 > stops[2]):
                    i3 = starts[3]
                    while (i3 < stops[3]) if strides[3] > 0 else (i3 > stops[3]):
                        i4 = starts[4]
                        while (i4 < stops[4]) if strides[4] > 0 else (i4 > stops[4]):
                            out[b, k] = x[b, i0, i1, i2, i3, i4]
                            k += 1
                            i4 += strides[4]
                        i3 += strides[3]
                    i2 += strides[2]
                i1 += strides[1]
            i0 += strides[0]


@njit(cache=True, nogil=True)
def split_copy(x, out, offset):
    """One output of SPLIT / SPLIT_V (TFLM ``SplitImpl``): ``out[k, j] = x[k, offset + j]``.

    With the tensors viewed as [outer, axis_size * inner] (``outer``: the batch times the product
    of the dimensions before the axis), TFLM hands each output in turn a block of
    ``out.shape[1]`` consecutive values per outer index.

    Args:
        x: [outer, L_total] the input; out: [outer, L] one output, written;
        offset: sum of the block lengths of the outputs before this one.
    """
    outer, length = out.shape
    for k in range(outer):
        for j in range(length):
            out[k, j] = x[k, offset + j]


@njit(cache=True, nogil=True, inline="always")
def operand_rows(b, a1, a2):
    """The rows of two operands ``[N or 1, ...]`` that sample ``b`` reads: ``b``, or 0 for an operand
    with one row shared by every sample (a constant)."""
    return (b if a1.shape[0] > 1 else 0), (b if a2.shape[0] > 1 else 0)


@njit(cache=True, nogil=True)
def gather_copy(params, indices, batch_size, outer_size, axis_size, inner_size, coord_size, out):
    """GATHER of each sample (TFLM ``Gather`` in ``gather.cc``).

    ``out[b][((batch * outer_size + outer) * coord_size + coord) * inner_size + i] =
    params[b][((batch * outer_size + outer) * axis_size + indices[b][batch * coord_size + coord]) *
    inner_size + i]``.

    Args:
        params: [Np, P] (Np = N, or 1 for constant params shared by every sample), any integer dtype.
        indices: int32[Ni, I] (Ni = N or 1), every value in ``[0, axis_size)`` (checked by the caller).
        batch_size, outer_size, axis_size, inner_size, coord_size: TFLM's block sizes.
        out: [N, batch_size * outer_size * coord_size * inner_size], written.
    """
    n = out.shape[0]
    for b in range(n):
        pb, ib = operand_rows(b, params, indices)
        for batch in range(batch_size):
            for outer in range(outer_size):
                for coord in range(coord_size):
                    src = ((batch * outer_size + outer) * axis_size + indices[ib, batch * coord_size + coord]) * inner_size
                    dst = ((batch * outer_size + outer) * coord_size + coord) * inner_size
                    for i in range(inner_size):
                        out[b, dst + i] = params[pb, src + i]

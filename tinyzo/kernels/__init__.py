"""Numba-jitted array kernels, one module per operator family.

The int8 modules (arith, conv, elementwise, binary, activations, pool, shape, softmax, matmul,
transpose_conv (also 16x8), lstm (int8 with an int16 cell)) and
the copying/conversion modules (layout: any integer dtype; cast) are bit-exact with TFLite Micro;
``zo`` and ``local_grad`` are the training kernels whose float32 order is part of the firmware
contract. The float32 layer kernels of float training live with it, in :mod:`tinyzo.fp.kernels`.


Int8 conventions: ``@njit(cache=True, nogil=True)``, no fastmath, no Python objects, outputs
written into caller-provided arrays, no validation inside (the callers in
:mod:`tinyzo.ops` validate). Activations NHWC, conv filters OHWI, depthwise
filters 1HWC. Every kernel is bit-exact with TFLite Micro's reference kernel
of the same name and is tested against :mod:`tinyzo.spec`.
"""

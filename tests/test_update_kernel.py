"""The jitted float-shadow step (tinyzo.kernels.update) equals FloatShadow's numpy arithmetic bit for bit."""

import numpy as np
import pytest

from tinyzo.kernels.update import shadow_update_nearest
from tinyzo.training.update import _DELTA_LIMIT, FloatShadow, round_subtract


def numpy_shadow_step(p, d, r, lo, hi):
    """FloatShadow.update's numpy expressions (nearest rounding), written out."""
    e = (d.astype(np.float32) - r).astype(np.float32)
    new = np.clip(round_subtract(p, e, "nearest"), lo, hi)
    r_new = ((p.astype(np.int64) - new).astype(np.float32) - e).astype(np.float32)
    r_new = np.clip(r_new, (lo - new).astype(np.float32), (hi - new).astype(np.float32)).astype(np.float32)
    return new, r_new


def cases():
    rng = np.random.default_rng(11)
    n = 4000
    for dtype, lo, hi in ((np.int8, -127, 127), (np.int32, -(2**31), 2**31 - 1)):
        info = np.iinfo(dtype)
        p = rng.integers(max(info.min, lo), min(info.max, hi) + 1, n).astype(dtype)
        p[:4] = (lo, hi, 0, lo + 1)
        for d_scale in (1e-3, 0.7, 3.0, 1e12):
            d = (rng.standard_normal(n) * d_scale).astype(np.float32)
            r = (rng.random(n) - 0.5).astype(np.float32)
            # ties: p - e exactly at .5, both signs; zero steps; steps beyond the 2**38 limit; the clamps
            d[4:12] = (0.5, -0.5, 1.5, -1.5, 2.5, 0.0, 3e11, -3e11)
            r[4:12] = 0.0
            d[12:16] = np.float32(np.nextafter(np.float32(0.5), np.float32(1)))
            r[12:16] = (0.25, -0.25, 0.0, 0.5)
            yield p, d, r, lo, hi


@pytest.mark.parametrize("case", range(8))
def test_kernel_equals_numpy(case):
    p, d, r, lo, hi = list(cases())[case]
    want_new, want_r = numpy_shadow_step(p, d, r, lo, hi)
    new = np.empty(p.size, np.int64)
    r_new = np.empty(p.size, np.float32)
    shadow_update_nearest(p, d, r, lo, hi, _DELTA_LIMIT, new, r_new)
    np.testing.assert_array_equal(new, want_new)
    assert want_r.tobytes() == r_new.tobytes()  # float32 bits, signed zeros included


def test_float_shadow_uses_the_same_values_over_steps():
    """FloatShadow.update (jitted for nearest rounding) follows the numpy steps for 20 steps."""
    rng = np.random.default_rng(2)
    shadow = FloatShadow()
    p = rng.integers(-127, 128, (6, 5)).astype(np.int8)
    p_ref, r_ref = p.astype(np.int64), np.zeros(p.shape, np.float32)
    for _ in range(20):
        d = (rng.standard_normal(p.shape) * 0.4).astype(np.float32)
        new = shadow.update("w", p, d, -127, 127, "nearest")
        want_new, r_ref = numpy_shadow_step(p_ref.astype(np.int8), d, r_ref, -127, 127)
        np.testing.assert_array_equal(new, want_new)
        assert shadow.residuals["w"].tobytes() == r_ref.tobytes()
        p, p_ref = new.astype(np.int8), want_new

"""Integer updates (tinyzo.training.update): exact rounding, QAS scaling, clamps, shadow vs per-step, schedules, state."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzo.training.update import (
    ROUNDING_QUERY,
    IntegerSGD,
    FloatShadow,
    OptimizerError,
    int8_weight_update,
    int32_bias_update,
    lr_schedule,
    param_layer_id,
    qas_step,
    round_subtract,
    round_subtract_spec,
    stochastic_bits,
)
from tinyzo.training.prng import derive_seed, xorshift32_sequence

f32 = np.float32


# ----------------------------------------------------------------------------------------------
# the rounding core against its Fraction spec
# ----------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(x=st.integers(-(2**31), 2**31 - 1), d=st.floats(width=32, allow_nan=False, allow_infinity=False),
       r=st.integers(0, 2**24 - 1))
def test_round_subtract_equals_spec(x, d, r):
    for mode in ("nearest", "stochastic"):
        fast = int(round_subtract(np.array([x]), np.array([d], np.float32), mode, np.array([r]))[0])
        assert fast == round_subtract_spec(x, d, mode, r)


def test_round_subtract_edge_cases():
    # values just off a tie (representable float32 d with bits below 2**-24), ties, tiny and huge d
    xs = [-3, -1, 0, 1, 2, 5, -(2**31), 2**31 - 1, 2**25 + 1]
    ds = [0.5, -0.5, 1.5, -1.5, 2.5, f32(0.5) - f32(2**-25), f32(-0.5) + f32(2**-25), f32(2**-25),
          f32(-(2**-25)), f32(1e-30), f32(-1e-30), f32(1 - 2**-24), f32(-1 + 2**-24), 3e38, -3e38, 0.0]
    rs = [0, 1, 2**23, 2**24 - 1]
    for x in xs:
        for d in ds:
            for r in rs:
                for mode in ("nearest", "stochastic"):
                    fast = int(round_subtract(np.array([x]), np.array([d], np.float32), mode, np.array([r]))[0])
                    assert fast == round_subtract_spec(x, float(np.float32(d)), mode, r), (x, d, r, mode)


# ----------------------------------------------------------------------------------------------
# hand-computed updates
# ----------------------------------------------------------------------------------------------


def test_nearest_ties_away_from_zero():
    w = np.array([3, -3, 0, 0, 10, -10, 1], np.int8)
    g = np.array([0.5, -0.5, 0.5, -0.5, 1.5, -1.5, 0.49], np.float32)
    # lr = 1, s = 1: w - g = [2.5, -2.5, -0.5, 0.5, 8.5, -8.5, 0.51]
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, 1.0), [3, -3, -1, 1, 9, -9, 1])
    # QAS: lr = 0.25, s = 0.5 -> k = lr / s**2 = 1: same numbers
    np.testing.assert_array_equal(int8_weight_update(w, g, 0.25, 0.5), [3, -3, -1, 1, 9, -9, 1])
    # the step is float32 arithmetic in a fixed order: (float)lr * (1.0f / (s * s)), then * g
    k = f32(0.01) * (f32(1) / (f32(0.1) * f32(0.1)))
    np.testing.assert_array_equal(qas_step(np.array([1.0]), 0.01, 0.1), [k])


def test_per_channel_scales_along_an_axis():
    w = np.zeros((2, 3), np.int8)
    g = np.ones((2, 3), np.float32)
    # axis 0: channel 0 s = 1 (step 1), channel 1 s = 0.5 (step 4)
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, np.array([1.0, 0.5], np.float32), axis=0),
                                  [[-1, -1, -1], [-4, -4, -4]])
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, np.array([1.0, 0.5, 0.25], np.float32), axis=1),
                                  [[-1, -4, -16], [-1, -4, -16]])
    # depthwise 1HWC, channels on axis 3 (also as axis=-1)
    w = np.zeros((1, 2, 2, 3), np.int8)
    g = np.full((1, 2, 2, 3), 0.25, np.float32)
    out = int8_weight_update(w, g, 1.0, np.array([1.0, 0.5, 0.25], np.float32), axis=3)
    np.testing.assert_array_equal(out[0, 1, 1], [0, -1, -4])          # -0.25 -> 0, -1 -> -1, -4 -> -4
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, np.array([1.0, 0.5, 0.25], np.float32), axis=-1), out)


def test_clamping():
    w = np.array([126, -126, 127, -127, 50], np.int8)
    g = np.array([-5, 5, -1000, 1000, 0], np.float32)
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, 1.0), [127, -127, 127, -127, 50])
    np.testing.assert_array_equal(int8_weight_update(w, g, 1.0, 1.0, clamp=(-100, 100)), [100, -100, 100, -100, 50])
    np.testing.assert_array_equal(int8_weight_update(np.array([0], np.int8), np.array([1e30], np.float32), 1.0, 1e-3),
                                  [-127])


def test_bias_update_is_exact_above_2_24():
    b = np.array([2**25 + 1, -(2**25) - 1, 2**31 - 1, -(2**31), 100], np.int32)
    g = np.array([0.25, -0.25, -10.0, 10.0, 2.5], np.float32)
    # float32(b) would already be off by one for 2**25 + 1; the exact rule keeps it
    out = int32_bias_update(b, g, 1.0, 1.0)
    np.testing.assert_array_equal(out, [2**25 + 1, -(2**25) - 1, 2**31 - 1, -(2**31), 98])   # 97.5 -> 98
    # per-channel bias scale s_x * s_w: step lr * g / bs**2
    bs = np.array([0.5, 0.5, 1, 1, 0.25], np.float32)
    out = int32_bias_update(np.zeros(5, np.int32), np.ones(5, np.float32), 0.125, bs)
    np.testing.assert_array_equal(out, [-1, -1, 0, 0, -2])            # -0.5 -> -1, -0.125 -> 0, -2


def test_stochastic_rounding_hand_computed():
    seed = derive_seed(3, 0, 0, 0)
    w = np.array([0, 5, -5, 7], np.int8)
    g = np.array([0.3, 0.75, -0.1, 0.0], np.float32)
    r24 = (xorshift32_sequence(seed, 4).astype(np.int64) >> 8)
    np.testing.assert_array_equal(stochastic_bits(seed, 4), r24)
    expected = [math.floor((int(x) - float(np.float32(d))) + int(r) / 2**24) for x, d, r in zip(w, g, r24)]
    out = int8_weight_update(w, g, 1.0, 1.0, rounding="stochastic", seed=seed)
    np.testing.assert_array_equal(out, expected)
    assert out[3] == 7                                                  # an integer stays put


@pytest.mark.parametrize("frac", [0.1, 0.3, 0.5, 0.875])
def test_stochastic_rounding_is_unbiased(frac):
    # v = -frac for 40000 elements: result is -1 with probability frac, else 0 (Bernoulli),
    # so the mean is -frac within 5 standard errors sqrt(frac (1 - frac) / N)
    n = 40_000
    out = int8_weight_update(np.zeros(n, np.int8), np.full(n, frac, np.float32), 1.0, 1.0, rounding="stochastic",
                             seed=derive_seed(1, 2, 3, 4))
    assert set(np.unique(out)) <= {-1, 0}
    se = math.sqrt(frac * (1 - frac) / n)
    assert abs(out.mean() + float(np.float32(frac))) <= 5 * se


# ----------------------------------------------------------------------------------------------
# IntegerSGD: shadow vs per-step, momentum, stochastic streams
# ----------------------------------------------------------------------------------------------


def run(opt, w0, g, steps, scale=1.0):
    p = {"w": np.array(w0, np.int8)}
    hist = []
    for _ in range(steps):
        p = opt.step(p, {"w": np.asarray(g, np.float32)}, {"w": scale})
        hist.append(int(p["w"][0]))
    return hist


def test_tiny_lr_accumulates_in_shadow_but_rounds_away_per_step():
    # step d = 0.125 per step on w = 10 (exact binary fractions): per-step nearest never moves;
    # the shadow goes 9.875, 9.75, 9.625, 9.5 (tie, away from zero -> 10), 9.375 -> 9, ...
    per_step = run(IntegerSGD(0.125, mode="per_step"), [10], [1.0], 13)
    assert per_step == [10] * 13
    shadow = run(IntegerSGD(0.125, mode="shadow"), [10], [1.0], 13)
    assert shadow == [10, 10, 10, 10, 9, 9, 9, 9, 9, 9, 9, 9, 8]       # 8.5 -> 9 (away from zero), 8.375 -> 8
    # stochastic per-step rounding moves on average: 200 steps of -0.125 -> about -25 in expectation
    drift = run(IntegerSGD(0.125, mode="per_step", rounding="stochastic", seed=5), [100], [1.0], 200)
    # each step is -1 w.p. 1/8: the total is Binomial(200, 1/8), mean 25, sd 4.68; 5 sd -> [1.6, 48.4]
    assert abs((100 - drift[-1]) - 25) <= 5 * math.sqrt(200 * 0.125 * 0.875)


def test_shadow_does_not_wind_up_at_the_clamp():
    opt = IntegerSGD(1.0, mode="shadow")
    p = {"w": np.array([127], np.int8)}
    for _ in range(5):
        p = opt.step(p, {"w": np.array([-3.0], np.float32)}, {"w": None})      # pushes up, clamped
        assert p["w"][0] == 127
    p = opt.step(p, {"w": np.array([1.0], np.float32)}, {"w": None})
    assert p["w"][0] == 126                                                     # moves back at once
    assert opt.shadow.value("w", p["w"])[0] == 126.0


def test_shadow_keeps_int32_biases_exact():
    opt = IntegerSGD(1.0, mode="shadow")
    p = {"b": np.array([2**25 + 1, -(2**30) + 3], np.int32)}
    for _ in range(3):
        p = opt.step(p, {"b": np.array([0.25, -0.25], np.float32)}, {"b": None})
    # shadows 2**25 + 0.25 and -2**30 + 3.75 (a float32 copy could not hold either): round to nearest
    np.testing.assert_array_equal(p["b"], [2**25, -(2**30) + 4])
    np.testing.assert_array_equal(opt.shadow.value("b", p["b"]), [2**25 + 0.25, -(2**30) + 3.75])
    fs = FloatShadow()
    assert fs.update("x", np.array([5]), np.array([0.0], np.float32), -127, 127, "nearest")[0] == 5


def test_momentum_hand_computed():
    # v1 = 1, v2 = 1.5, v3 = 1.75; per-step nearest: 0 -> -1 -> -2.5 -> -3 -> -4.75 -> -5
    assert run(IntegerSGD(1.0, momentum=0.5), [0], [1.0], 3) == [-1, -3, -5]
    opt = IntegerSGD(1.0, momentum=0.5)
    run(opt, [0], [1.0], 3)
    assert opt.buffers["w"].dtype == np.float32 and opt.buffers["w"][0] == 1.75
    assert IntegerSGD(1.0).buffers == {} and not IntegerSGD(1.0).state_dict().get("momentum/w")


def test_zosgd_int8_and_int32_with_per_channel_scales():
    s_w = np.array([0.5, 1.0], np.float32)
    params = {"0/w": np.zeros((2, 3), np.int8), "0/b": np.zeros(2, np.int32)}
    grads = {"0/w": np.ones((2, 3), np.float32), "0/b": np.ones(2, np.float32)}
    scales = {"0/w": (s_w, 0), "0/b": ((np.float32(0.5) * s_w).astype(np.float32), 0)}
    out = IntegerSGD(0.25).step(params, grads, scales)
    np.testing.assert_array_equal(out["0/w"], [[-1, -1, -1], [0, 0, 0]])        # steps 1 and 0.25
    np.testing.assert_array_equal(out["0/b"], [-4, -1])                          # steps 4 and 1
    assert out["0/w"].dtype == np.int8 and out["0/b"].dtype == np.int32
    np.testing.assert_array_equal(params["0/w"], 0)                              # inputs untouched


def test_stochastic_streams_per_parameter_and_step():
    opt = IntegerSGD(1.0, rounding="stochastic", seed=77)
    p = {"a": np.zeros(64, np.int8), "b": np.zeros(64, np.int8)}
    g = {"a": np.full(64, 0.5, np.float32), "b": np.full(64, 0.5, np.float32)}
    out = opt.step(p, g, {"a": None, "b": None})
    for name in ("a", "b"):
        seed = derive_seed(77, 0, ROUNDING_QUERY, param_layer_id(name))
        np.testing.assert_array_equal(out[name], int8_weight_update(p[name], g[name], 1.0, 1.0,
                                                                    rounding="stochastic", seed=seed))
    assert not np.array_equal(out["a"], out["b"])
    out2 = opt.step(p, g, {"a": None, "b": None})
    assert not np.array_equal(out["a"], out2["a"])                               # a new stream each step


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


def test_schedules():
    assert lr_schedule("constant", 7, None, 0.1) == 0.1
    assert lr_schedule("constant", 0, 10, 0.1, warmup_steps=4) == pytest.approx(0.025)
    assert lr_schedule("constant", 3, 10, 0.1, warmup_steps=4) == pytest.approx(0.1)
    assert lr_schedule("cosine", 0, 10, 0.2) == pytest.approx(0.2)
    assert lr_schedule("cosine", 5, 10, 0.2) == pytest.approx(0.1)
    assert lr_schedule("cosine", 10, 10, 0.2) == 0.0
    assert lr_schedule("cosine", 2, 12, 0.2, warmup_steps=2) == pytest.approx(0.2)  # warm-up done
    assert lr_schedule("cosine", 7, 12, 0.2, warmup_steps=2) == pytest.approx(0.1)
    assert lr_schedule("cosine", 1, 12, 0.2, warmup_steps=2) == pytest.approx(0.2)  # (1 + 1) / 2 * base
    assert lr_schedule("linear", 0, 4, 1.0) == 1.0
    assert lr_schedule("linear", 3, 4, 1.0) == 0.25
    assert lr_schedule("linear", 9, 4, 1.0) == 0.0
    opt = IntegerSGD(0.2, "cosine", total_steps=10)
    assert [opt.lr_at(k) for k in (0, 5)] == [pytest.approx(0.2), pytest.approx(0.1)]


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


def test_state_dict_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    params0 = {"1/w": rng.integers(-100, 100, (4, 3)).astype(np.int8), "1/b": rng.integers(-999, 999, 4).astype(np.int32)}
    grads = [{"1/w": rng.normal(size=(4, 3)).astype(np.float32), "1/b": rng.normal(size=4).astype(np.float32)}
             for _ in range(6)]
    scales = {"1/w": (np.array([0.1, 0.2, 0.3, 0.4], np.float32), 0), "1/b": (np.full(4, 0.05, np.float32), 0)}
    kw = {"schedule": "cosine", "total_steps": 6, "warmup_steps": 1, "momentum": 0.9, "mode": "shadow", "rounding": "stochastic",
              "seed": 123}

    def make():
        return IntegerSGD(0.05, **kw)

    full = make()
    p = dict(params0)
    for g in grads:
        p = full.step(p, g, scales)
    half = make()
    q = dict(params0)
    for g in grads[:3]:
        q = half.step(q, g, scales)
    np.savez(tmp_path / "opt.npz", **half.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.step_count == 3
    for g in grads[3:]:
        q = resumed.step(q, g, scales)
    for k in p:
        np.testing.assert_array_equal(p[k], q[k])
    other = IntegerSGD(0.05, **dict(kw, mode="per_step"))
    with pytest.raises(OptimizerError, match="mode"):
        other.load_state_dict(state)
    with pytest.raises(OptimizerError, match="step"):
        other.load_state_dict({})


# ----------------------------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------------------------


def test_bad_arguments():
    w = np.zeros(3, np.int8)
    g = np.zeros(3, np.float32)
    cases = [
        (lambda: int8_weight_update(w, g, 0.0, 1.0), "lr must be > 0"),
        (lambda: int8_weight_update(w, g, -1.0, 1.0), "lr must be > 0"),
        (lambda: int8_weight_update(w, g, float("nan"), 1.0), "finite"),
        (lambda: int8_weight_update(w, g, 1.0, 1.0, rounding="floor"), "unknown rounding"),
        (lambda: int8_weight_update(w, g, 1.0, 1.0, rounding="stochastic"), "needs a seed"),
        (lambda: int8_weight_update(w, g, 1.0, 1.0, rounding="stochastic", seed=0), "seed must be"),
        (lambda: int8_weight_update(w.astype(np.int16), g, 1.0, 1.0), "int8"),
        (lambda: int8_weight_update(w, np.zeros(4, np.float32), 1.0, 1.0), "shape"),
        (lambda: int8_weight_update(w, g.astype(np.int32), 1.0, 1.0), "float"),
        (lambda: int8_weight_update(w, np.array([0, np.nan, 0], np.float32), 1.0, 1.0), "NaN"),
        (lambda: int8_weight_update(w, g, 1.0, 0.0), "scale must be finite and > 0"),
        (lambda: int8_weight_update(w, g, 1.0, np.array([1.0, 2.0, 3.0], np.float32)), "axis"),
        (lambda: int8_weight_update(w, g, 1.0, np.array([1.0, 2.0], np.float32), axis=0), "channels"),
        (lambda: int8_weight_update(w, g, 1.0, np.array([1.0, 2.0, 3.0], np.float32), axis=2), "out of range"),
        (lambda: int8_weight_update(w, g, 1.0, 1.0, clamp=(5, -5)), "clamp"),
        (lambda: int32_bias_update(w, g, 1.0, 1.0), "int32"),
        (lambda: IntegerSGD(0.0), "lr must be > 0"),
        (lambda: IntegerSGD(0.1, mode="ema"), "unknown mode"),
        (lambda: IntegerSGD(0.1, rounding="up"), "unknown rounding"),
        (lambda: IntegerSGD(0.1, momentum=1.0), "momentum"),
        (lambda: IntegerSGD(0.1, schedule="step"), "unknown schedule"),
        (lambda: IntegerSGD(0.1, schedule="cosine"), "needs total_steps"),
        (lambda: IntegerSGD(0.1, seed=-1), "seed"),
        (lambda: lr_schedule("linear", 0, 5, 1.0, warmup_steps=6), "exceeds"),
        (lambda: lr_schedule("linear", -1, 5, 1.0), "step"),
        (lambda: lr_schedule("linear", 0, 0, 1.0), "total_steps"),
        (lambda: IntegerSGD(0.1).step({"w": w}, {}, {"w": None}), "same names"),
        (lambda: IntegerSGD(0.1).step({"w": w}, {"w": g}, {}), "no scale"),
        (lambda: IntegerSGD(0.1).step({"w": w.astype(np.float32)}, {"w": g}, {"w": None}), "int8 .weights. or int32"),
    ]
    for fn, msg in cases:
        with pytest.raises(OptimizerError, match=msg):
            fn()


def test_update_params_per_layer_then_end_step_is_one_step():
    """A trainer may update each layer as its gradient comes (update_params per part, then end_step): the
    new parameters, the shadow residuals, the momentum buffers and the schedule are those of one step()."""
    rng = np.random.default_rng(5)
    params = {f"{k}/w": rng.integers(-127, 128, (3, 4), dtype=np.int8) for k in (1, 2)}
    params.update({f"{k}/b": rng.integers(-1000, 1000, 3, dtype=np.int32) for k in (1, 2)})
    scales = {name: (np.array([0.02, 0.05, 0.1], np.float32), 0) if name.endswith("/w") else np.float32(0.001)
              for name in params}
    kwargs = {"lr": 0.3, "momentum": 0.9, "mode": "shadow", "rounding": "stochastic", "seed": 9,
              "schedule": "cosine", "total_steps": 5}
    whole, parts = IntegerSGD(**kwargs), IntegerSGD(**kwargs)
    p_whole, p_parts = dict(params), dict(params)
    for _ in range(3):
        grads = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
        p_whole = whole.step(p_whole, grads, scales)
        new = {}
        for layer in ("2", "1"):  # in any order
            names = [n for n in p_parts if n.split("/")[0] == layer]
            new.update(parts.update_params({n: p_parts[n] for n in names}, {n: grads[n] for n in names},
                                           {n: scales[n] for n in names}))
        parts.end_step()
        p_parts = new
        for name in params:
            np.testing.assert_array_equal(p_parts[name], p_whole[name])
    state_a, state_b = whole.state_dict(), parts.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        np.testing.assert_array_equal(state_a[key], state_b[key])

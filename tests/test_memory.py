"""Memory planner: schedule, TFLM-style greedy arena, in-place, report; checked against TFLM live.

The TFLM numbers are measured in the test: the tflite-micro Python interpreter (default
kAllocationRecording config) prints "Arena allocation head N bytes" from C++ in
``print_allocations()``; the test captures file descriptors 1 and 2 and parses N.
"""

from __future__ import annotations

import glob
import json
import os
import random
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import tflm_allocations

import tinyzo
from tinyzo.errors import TinyzoError
from tinyzo.memory import (
    Buffer,
    InPlace,
    PlanError,
    Schedule,
    ScheduleError,
    Step,
    check_plan,
    greedy_offsets,
    inference_schedule,
    memory_report,
    plan_arena,
    plot_timeline,
)

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)
TFLM_MODELS = sorted(glob.glob(os.path.join(HERE, "data", "tflite-micro", "*.tflite")))
DIGITS = os.path.join(ROOT, "reference_models", "digits_cnn.tflite")
ALL_MODELS = TFLM_MODELS + [DIGITS]


# --------------------------------------------------------------------------- TFLM, live
def tflm_arena_head(data: bytes) -> int:
    """TFLM's non-persistent arena ("Arena allocation head") for a model, measured live."""
    head = tflm_allocations(data)["head"]
    assert head is not None, "no 'Arena allocation head' line in TFLM's print_allocations() output"
    return head


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_models_present():
    names = {os.path.basename(p) for p in TFLM_MODELS}
    assert {"person_detect.tflite", "micro_speech_quantized.tflite", "hello_world_int8.tflite",
            "simple_add_model.tflite"} <= names


@pytest.mark.oracle
@pytest.mark.parametrize("path", ALL_MODELS, ids=os.path.basename)
def test_arena_vs_tflm_live(path):
    """tinyzo's greedy plan reproduces TFLM's head exactly; with in-place it is at most that."""
    head = tflm_arena_head(_read(path))
    model = tinyzo.load(path)
    sched = inference_schedule(model)
    greedy = plan_arena(sched)
    inplace = plan_arena(sched, in_place=True)
    check_plan(greedy)
    check_plan(inplace)
    assert greedy.peak_bytes == head
    assert inplace.peak_bytes <= greedy.peak_bytes <= head


def test_person_detect_known_head():
    """The known figure (TFLM's print_allocations on person_detect): 55,296 bytes."""
    model = tinyzo.load(os.path.join(HERE, "data", "tflite-micro", "person_detect.tflite"))
    assert plan_arena(inference_schedule(model)).peak_bytes == 55296


def _sub_model(data: bytes, a: int, b: int) -> bytes:
    """Operators a..b-1 of a model as a model of their own (only the tensors they use)."""
    from tinyzo.graph import Operator
    from tinyzo.io import read_tflite_parts, write_tflite_parts

    tensors, ops, _, outs, _ = read_tflite_parts(data)
    part = ops[a:b]
    produced = {t for o in part for t in o.outputs}
    used = sorted({t for o in part for t in o.inputs + o.outputs if t != -1})
    remap = {t: i for i, t in enumerate(used)}
    inputs = [t for t in used if t not in produced and tensors[t].data is None]
    later = {t for o in ops[b:] for t in o.inputs} | set(outs)
    outputs = sorted(t for t in produced if t in later) or [part[-1].outputs[0]]
    new_ops = [Operator(o.opcode, [remap[t] if t != -1 else -1 for t in o.inputs], [remap[t] for t in o.outputs],
                        o.options) for o in part]
    return write_tflite_parts([tensors[t] for t in used], new_ops, [remap[t] for t in inputs],
                              [remap[t] for t in outputs])


@pytest.mark.oracle
def test_sub_models_vs_tflm_live():
    """Exact reproduction on pieces of real models (placement order of equal sizes, MEAN scratch)."""
    rng = random.Random(6)
    cases = [(DIGITS, 3, 7), (DIGITS, 10, 12)]  # equal-size tie order; MEAN's three scratch buffers
    pd = os.path.join(HERE, "data", "tflite-micro", "person_detect.tflite")
    for path, n in ((DIGITS, 12), (pd, 31)):
        for _ in range(4):
            a = rng.randrange(n)
            cases.append((path, a, rng.randrange(a + 1, n + 1)))
    for path, a, b in cases:
        data = _sub_model(_read(path), a, b)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "sub.tflite")
            with open(p, "wb") as f:
                f.write(data)
            model = tinyzo.load(p)
        assert plan_arena(inference_schedule(model)).peak_bytes == tflm_arena_head(data), (path, a, b)


@pytest.mark.oracle
def test_single_operator_models_vs_tflm_live():
    """Every operator tinyzo supports, 10 random one-operator models each: scratch requests included."""
    import sys

    sys.path.insert(0, HERE)
    from single_op import CASES

    from tinyzo.io import write_tflite

    for opcode, build in CASES.items():
        for seed in range(10):
            model = build(np.random.default_rng(seed))
            head = tflm_arena_head(write_tflite(model))
            sched = inference_schedule(model)
            assert plan_arena(sched).peak_bytes == head, (opcode, seed)
            assert plan_arena(sched, in_place=True).peak_bytes <= head


# --------------------------------------------------------------------------- greedy planner
def test_greedy_matches_tflm_unit_tests():
    """Cases of TFLM's greedy_memory_planner_test.cc (offsets and maximum size)."""
    assert greedy_offsets([10, 20], [0, 2], [1, 3]) == ([0, 0], 20)  # TestGreedyBasics
    assert greedy_offsets([10, 20, 30, 40, 50], [0, 1, 2, 3, 0], [1, 2, 3, 4, 1]) == ([50, 70, 40, 0, 0], 90)
    assert greedy_offsets([100, 50, 20], [0, 2, 1], [1, 3, 2])[1] == 120  # TestOverlapCase
    assert greedy_offsets([], [], []) == ([], 0)


def test_equal_sizes_placed_in_reverse_id_order():
    # a (id 0) and b (id 1) have equal size; TFLM places b first (reverse id order), at offset 0
    offs, peak = greedy_offsets([16, 16, 32], [0, 1, 3], [1, 2, 3])
    assert offs[1] == 0 and offs[0] == 16 and peak == 32


def _random_schedule(draw_sizes, lifetimes, n_steps, cands, pinned):
    buffers = [Buffer(f"b{i}", "activation" if i % 3 else "scratch", s, f, last, pinned=p)
               for i, (s, (f, last), p) in enumerate(zip(draw_sizes, lifetimes, pinned))]
    steps = []
    for k in range(n_steps):
        live = [i for i, b in enumerate(buffers) if b.first <= k <= b.last]
        inplace = tuple(InPlace(o, s, sc) for (step, o, s, sc) in cands if step == k)
        steps.append(Step(k, "forward", "ADD", k, tuple(live), (), (), inplace))
    return Schedule(steps, buffers, {"weights": 0}, "inference", "random")


@st.composite
def schedules(draw):
    n_steps = draw(st.integers(1, 12))
    n_buf = draw(st.integers(0, 25))
    sizes = draw(st.lists(st.integers(0, 5000), min_size=n_buf, max_size=n_buf))
    lifetimes = []
    for _ in range(n_buf):
        f = draw(st.integers(-1, n_steps - 1))
        lifetimes.append((f, draw(st.integers(max(f, 0), n_steps - 1))))
    pinned = draw(st.lists(st.booleans(), min_size=n_buf, max_size=n_buf))
    cands = []
    if n_buf >= 2:
        for _ in range(draw(st.integers(0, 8))):
            o = draw(st.integers(0, n_buf - 1))
            s = draw(st.integers(0, n_buf - 1))
            # steps where the candidate could be legal half of the time, anywhere otherwise
            step = lifetimes[o][0] if draw(st.booleans()) and lifetimes[o][0] >= 0 else draw(st.integers(0, n_steps - 1))
            cands.append((step, o, s, draw(st.sampled_from([0, 0, 100, 1000]))))
    return _random_schedule(sizes, lifetimes, n_steps, cands, pinned)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules(), st.sampled_from([1, 4, 16]))
def test_planner_properties(sched, alignment):
    """No two buffers alive together overlap; in-place never raises the peak; peak >= live bytes."""
    base = plan_arena(sched, alignment=alignment)
    inpl = plan_arena(sched, in_place=True, alignment=alignment)
    for plan in (base, inpl):
        check_plan(plan)  # raises on any overlap of simultaneously alive buffers
        for i, b in enumerate(plan.buffers):
            if plan.offsets[i] is not None:
                assert plan.offsets[i] % alignment == 0
                assert plan.sizes[i] >= b.nbytes
    assert inpl.peak_bytes <= base.peak_bytes
    lower = max((sched.live_bytes(k, alignment) for k in range(-1, sched.n_steps)), default=0)
    assert base.peak_bytes >= lower
    assert base.peak_bytes <= sum(-(-b.nbytes // alignment) * alignment for b in sched.buffers)
    # every in-place write taken is legal: the source dies at that step and is not a model output
    for step, out, src in inpl.inplace:
        assert sched.buffers[src].last == step and not sched.buffers[src].pinned
        assert sched.buffers[out].first == step


def test_check_plan_catches_overlap():
    sched = _random_schedule([32, 32], [(0, 1), (1, 2)], 3, [], [False, False])
    plan = plan_arena(sched)
    assert plan.offsets[0] != plan.offsets[1]
    plan.offsets[1] = plan.offsets[0]
    with pytest.raises(PlanError, match="overlap"):
        check_plan(plan)


def test_inplace_chain_and_pinned_output():
    # step 0 reads b0 and writes b1, step 1 reads b1 and writes b2 (the model output)
    lifetimes, cands = [(-1, 0), (0, 1), (1, 1)], [(0, 1, 0, 0), (1, 2, 1, 0)]
    chain = plan_arena(_random_schedule([64, 64, 64], lifetimes, 2, cands, [False, False, True]), in_place=True)
    assert chain.inplace == [(0, 1, 0), (1, 2, 1)] and chain.groups == [[0, 1, 2]]
    assert chain.peak_bytes == 64
    # b1 pinned (read by the application after the run): step 1 may not write over it
    sched = _random_schedule([64, 64, 64], lifetimes, 2, cands, [False, True, True])
    plan = plan_arena(sched, in_place=True)
    assert plan.inplace == [(0, 1, 0)]
    assert plan.peak_bytes == plan_arena(sched).peak_bytes == 128
    # an in-place kernel's scratch is charged when the candidate is taken
    scr = plan_arena(_random_schedule([64, 64], [(-1, 0), (0, 0)], 1, [(0, 1, 0, 20)], [False, True]), in_place=True)
    assert scr.peak_bytes == 64 + 32 and scr.buffers[-1].kind == "scratch"


# --------------------------------------------------------------------------- schedule of real models
def test_digits_schedule():
    model = tinyzo.load(DIGITS)
    sched = inference_schedule(model)
    assert sched.n_steps == len(model.operators) == 12
    by_tensor = {b.tensor: b for b in sched.buffers if b.tensor is not None}
    assert by_tensor[0].first == -1 and by_tensor[0].last == 0  # model input
    assert by_tensor[33].last == 11 and by_tensor[33].pinned  # model output
    assert by_tensor[15].first == 4 and by_tensor[15].last == 7  # skip connection read by ADD
    assert by_tensor[9].nbytes == 16 * 16 * 48
    # MEAN (op 10): int32 accumulator per output (160 x 4), rank-4 iterator, 2 axes
    scratch = [b for b in sched.buffers if b.kind == "scratch"]
    assert [(b.nbytes, b.first, b.last) for b in scratch] == [(640, 10, 10), (16, 10, 10), (8, 10, 10)]
    consts = [t for t in model.tensors if t.is_constant]
    assert sched.flash_bytes == sum(t.data.nbytes for t in consts)
    assert sched.flash["weights"] == sum(t.data.nbytes for t in consts if t.dtype == np.int8)


def test_inplace_candidates_follow_the_rule():
    model = tinyzo.load(DIGITS)
    sched = inference_schedule(model)
    kinds = {s.opcode for s in sched.steps if s.inplace}
    assert kinds == {"DEPTHWISE_CONV_2D", "ADD"}
    dw = sched.steps[1].inplace[0]  # 16x16x24, 3x3 stride 1 SAME: padded plane 18 x 18
    assert dw.scratch_bytes == 18 * 18
    dw2 = sched.steps[3].inplace[0]  # 16x16x48, 3x3 stride 2 SAME -> 8x8: rows/cols 0..16 read (pad after)
    assert dw2.scratch_bytes == 17 * 17
    plan = plan_arena(sched, in_place=True)
    assert {sched.steps[s].op for s, _, _ in plan.inplace} == {1, 3, 7, 8}
    # person_detect's first depthwise has depth multiplier 8 (output larger): never in place
    pd = tinyzo.load(os.path.join(HERE, "data", "tflite-micro", "person_detect.tflite"))
    psched = inference_schedule(pd)
    dm8 = [s for s in psched.steps if s.opcode == "DEPTHWISE_CONV_2D"
           and pd.tensors[pd.operators[s.op].outputs[0]].shape[-1] != pd.tensors[pd.operators[s.op].inputs[0]].shape[-1]]
    assert dm8 and all(not s.inplace for s in dm8)


def test_simple_add_inplace_saves_one_input():
    model = tinyzo.load(os.path.join(HERE, "data", "tflite-micro", "simple_add_model.tflite"))
    sched = inference_schedule(model)
    assert plan_arena(sched).peak_bytes == 3 * 128 * 128
    assert plan_arena(sched, in_place=True).peak_bytes == 2 * 128 * 128


# --------------------------------------------------------------------------- report and plot
def test_memory_report(tmp_path):
    model = tinyzo.load(DIGITS)
    rep = memory_report(model)
    json.dumps(rep)  # JSON-ready
    assert rep["peak_sram_bytes"] == 18432 and rep["peak_without_inplace_bytes"] == 21504
    assert rep["flash_bytes"] == inference_schedule(model).flash_bytes
    assert set(rep["breakdown"]) >= {"activations", "scratch", "fragmentation"}
    assert sum(rep["breakdown"].values()) == rep["peak_sram_bytes"]
    assert len(rep["timeline"]) == 12 and rep["timeline"][10][1] == "MEAN"
    assert all(t[2] <= rep["peak_sram_bytes"] for t in rep["timeline"])
    assert max(t[2] for t in rep["timeline"]) == rep["live_lower_bound_bytes"]
    assert [sum(r.values()) for r in rep["timeline_by_kind"]] == [t[2] for t in rep["timeline"]]
    plain = memory_report(model, in_place=False)
    assert plain["peak_sram_bytes"] == 21504 and plain["breakdown"]["fragmentation"] == 21504 - 18432
    out = tmp_path / "timeline.png"
    plot_timeline(rep, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input():
    with pytest.raises(ScheduleError, match="tinyzo Model"):
        inference_schedule("model.tflite")
    with pytest.raises(TinyzoError):
        memory_report(None)
    sched = inference_schedule(tinyzo.load(DIGITS))
    for bad in (0, -16, 2.5, True):
        with pytest.raises(PlanError, match="alignment"):
            plan_arena(sched, alignment=bad)
    with pytest.raises(PlanError, match="Schedule"):
        plan_arena([1, 2, 3])
    broken = Schedule(sched.steps, [Buffer("x", "activation", 16, 3, 1)], {}, "inference", "x")
    with pytest.raises(ScheduleError):
        plan_arena(broken)
    with pytest.raises(TinyzoError, match="timeline"):
        plot_timeline({"timeline_by_kind": []}, "/dev/null")


def test_cli_memory_json_and_budget(tmp_path, capsys):


    from tinyzo.cli import main

    path = os.path.join(os.path.dirname(__file__), "data", "tflite-micro", "person_detect.tflite")
    assert main(["memory", path, "--json", "--budget-kb", "50", "--plot", str(tmp_path / "t.png")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["peak_sram_bytes"] == 55296 and rep["fits"] is False and rep["margin_bytes"] == 50 * 1024 - 55296
    assert rep["flash_bytes"] > 0 and (tmp_path / "t.png").exists()
    assert main(["memory", path, "--method", "zo"]) == 2


@pytest.mark.oracle
def test_variable_tensors_live_outside_the_planned_arena_as_in_tflm():
    """keyword_scrambled_8bit: seven SVDF states (variable tensors) live for the whole run in TFLM's
    persistent tail, not in the planned head; tinyzo's plan (with SVDF's two scratch buffers per
    step) equals TFLM's head, and the states are listed apart with their bytes."""
    path = os.path.join(HERE, "data", "tflite-micro", "keyword_scrambled_8bit.tflite")
    alloc = tflm_allocations(_read(path))
    model = tinyzo.load(path)
    sched = inference_schedule(model)
    assert plan_arena(sched).peak_bytes == alloc["head"] == 672
    assert [b.tensor for b in sched.persistent] == list(model.variables)
    assert all(b.kind == "state" and b.first == -1 and b.last == sched.n_steps - 1 for b in sched.persistent)
    assert not {b.tensor for b in sched.buffers} & set(model.variables)
    state = sum(model.tensors[t].nbytes for t in model.variables)
    assert sched.persistent_bytes() == state == 5120 and alloc["tail"] > state
    rep = memory_report(model)
    assert rep["state_bytes"] == 5120 and rep["peak_sram_bytes"] == 672
    assert memory_report(tinyzo.load(DIGITS))["state_bytes"] == 0

"""benchmarks/profile_zo_step.py times every phase of the trainer it profiles: its wrappers follow the
ZO trainer's current methods (a renamed method would leave its phase at zero and the time in "rest")."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_zo_step.py"


def test_every_phase_of_a_node_step_is_timed(capsys):
    import tinyzo.graph as graph
    import tinyzo.zo.trainer as zt
    from tinyzo import runtime

    spec = importlib.util.spec_from_file_location("profile_zo_step", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    helpers = (graph._saturating_add_int8, zt.local_backward_from_acc, zt.accumulate_acc_grads)
    threads = runtime.get_num_threads()
    try:
        per = mod.main(["--steps", "2", "--threads", "1", "--setting", "node8"])
    finally:
        runtime.set_num_threads(threads)
    assert set(per) == set(mod.PHASES) | {"rest"}
    assert all(per[p] > 0 for p in mod.PHASES), per
    assert "| **step** |" in capsys.readouterr().out
    # the module-level helpers it wrapped are put back
    assert (graph._saturating_add_int8, zt.local_backward_from_acc, zt.accumulate_acc_grads) == helpers

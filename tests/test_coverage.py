"""tinyzo info --ops: the coverage table names every registered operator, and every type the random
one-operator cases (checked against TFLM in tests/test_ops_tflm.py) exercise."""

from __future__ import annotations

from single_op import CASES, CASES_INT16, TYPED_CASES

from tinyzo.cli import main
from tinyzo.ops.base import REGISTRY
from tinyzo.ops.coverage import COVERAGE, coverage_table


def test_every_registered_operator_is_listed_and_nothing_else():
    assert sorted(COVERAGE) == sorted(REGISTRY)
    for op, (runs, refused) in COVERAGE.items():
        assert runs and all(isinstance(x, str) and x for x in runs + refused), op


def test_the_types_the_random_cases_check_are_listed():
    for name in CASES:
        opcode = name.split("_INT16")[0].split("_16x8")[0].replace("SOFTMAX_INT16_OUT", "SOFTMAX")
        assert opcode in COVERAGE or name in ("QUANTIZE_INT16", "SOFTMAX_INT16_OUT"), name
    for opcode in CASES_INT16:
        assert any("int16" in t for t in COVERAGE[opcode][0]), opcode
    for name in TYPED_CASES:   # e.g. "CONV_2D grouped 16x8"
        opcode, *kinds = name.split()
        runs = " ".join(COVERAGE[opcode][0])
        for kind in kinds:
            if kind in ("16x8", "int4", "grouped"):
                assert kind in runs, (name, kind)
    assert any("int16" in t for t in COVERAGE["QUANTIZE"][0]) and "int8 -> int16" in COVERAGE["SOFTMAX"][0]


def test_info_ops_prints_the_table(capsys):
    assert main(["info", "--ops"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("operator") and "UNIDIRECTIONAL_SEQUENCE_LSTM" in out and out == coverage_table() + "\n"
    assert main(["info"]) == 2

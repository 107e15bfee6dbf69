"""Code size and static RAM of the C reference port on a Cortex-M4F, next to tinyzo's memory estimate.

Builds port/c/size_main.c with arm-none-eabi-gcc (Debian ``gcc-arm-none-eabi`` +
``libnewlib-arm-none-eabi``; not needed in CI) for each configuration below, reads ``text``, ``data``
and ``bss`` with arm-none-eabi-size, and prints a Markdown table with tinyzo's
``memory_report(model, method, layers=...)`` (peak SRAM of the planned arena, Flash of the constants)
for the same model and method. Lean rows build the lean weight step (``-DTZ_LEAN_WEIGHT``,
port/c/tz_train_lean.c); a second table splits their static RAM by kind (symbol sizes from
arm-none-eabi-nm) next to the planner's ``breakdown``. ``--update-doc`` replaces the table in docs/porting.md between the
``<!-- port_size -->`` markers. Without the cross compiler it prints a message and exits 0.

    python scripts/port_size.py [--update-doc]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "reference_models" / "digits_cnn.tflite"
PERSON = ROOT / "tests" / "data" / "tflite-micro" / "person_detect.tflite"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os",
         "-ffp-contract=off", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "--specs=nano.specs",
         "--specs=nosys.specs", "-DTZ_EXPF=expf", "-DTZ_LOGF=logf", "-DTZ_MAX_BATCH=1", "-DTZ_MAX_QUERIES=1",
         "-DTZ_MAX_LAYERS=16", "-DTZ_MAX_OPS=32", "-DTZ_MAX_CLASSES=16"]
NM = "arm-none-eabi-nm"
SOURCES = ["size_main.c", "tz_kernels.c", "tz_kernels16.c", "tz_softmax.c", "tz_graph.c", "tz_train.c", "tz_train_lean.c"]
# (label, model, method, layers, lean): training at batch 1 (one sample per step, as on the MCU); lean: the
# weight step of tz_train_lean.c (-DTZ_LEAN_WEIGHT: SRAM copies + clamp record only)
CONFIGS = [
    ("digits_cnn", DIGITS, "inference", None, False),
    ("digits_cnn", DIGITS, "zo-rge-weight", "9,11", False),
    ("digits_cnn", DIGITS, "zo-rge-weight", "9,11", True),
    ("digits_cnn", DIGITS, "zo-rge-node", "9,11", False),
    ("digits_cnn", DIGITS, "zo-rge-weight", None, False),
    ("digits_cnn", DIGITS, "zo-rge-weight", None, True),
    ("digits_cnn", DIGITS, "zo-rge-node", None, False),
    ("person_detect", PERSON, "inference", None, False),
]
# static RAM symbols of a lean build, by the planner's kinds (everything else: "other")
LEAN_SYMBOLS = {"arena": "arena", "tzv_w_ram": "param copies", "tzv_b_ram": "param copies",
                "tzv_clamp_buf": "clamp record", "batch_x": "batch (input, label)", "batch_y": "batch (input, label)"}
BEGIN, END = "<!-- port_size -->", "<!-- /port_size -->"


def _size(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run([SIZE, str(elf)], capture_output=True, text=True, check=True).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return text, data, bss


def _ram_symbols(elf: Path) -> dict:
    """Bytes of static RAM per LEAN_SYMBOLS kind (from arm-none-eabi-nm -S; bss/data symbols only)."""
    out = subprocess.run([NM, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    kinds: dict = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdD":
            kind = LEAN_SYMBOLS.get(parts[3], "other")
            kinds[kind] = kinds.get(kind, 0) + int(parts[1], 16)
    return kinds


def _build(vec_dir: Path, elf: Path, train: bool, lean: bool = False) -> tuple[int, int, int]:
    defs = (["-DTZ_SIZE_TRAIN"] if train else []) + (["-DTZ_LEAN_WEIGHT"] if lean else [])
    cmd = [CC, *FLAGS, *defs, f"-I{vec_dir}", f"-I{ROOT / 'port' / 'c'}",
           f"-I{ROOT / 'tinyzo' / 'training' / 'c'}", *[str(ROOT / "port" / "c" / s) for s in SOURCES], "-o", str(elf), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return _size(elf)


def _baseline(tmp: Path) -> tuple[int, int, int]:
    src = tmp / "empty.c"
    src.write_text("int main(void) { return 0; }\n")
    elf = tmp / "empty.elf"
    subprocess.run([CC, *FLAGS, str(src), "-o", str(elf)], check=True, capture_output=True, text=True)
    return _size(elf)


def table() -> str:
    """The Markdown tables (builds every configuration; a few seconds): sizes, then the lean builds' static
    RAM by kind next to the planner's breakdown."""
    import tinyzo
    from tinyzo.cli import main as tinyzo_main
    from tinyzo.memory import memory_report

    rows = [("| model | build | trained layers | text | data | bss | static RAM (data+bss) | tinyzo peak SRAM | "
             "tinyzo Flash |"), "|---|---|---|---|---|---|---|---|---|"]
    lean_rows = ["| trained layers | build | arena / activations | param copies | clamp record / masks | "
                 "batch (input, label) | fragmentation | other | total |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        b_text, b_data, b_bss = _baseline(tmp)
        rows.append(f"| (empty `main`, same flags) | startup + newlib nano | - | {b_text:,} | {b_data:,} | {b_bss:,} | "
                    f"{b_data + b_bss:,} | - | - |")
        for i, (label, path, method, layers, lean) in enumerate(CONFIGS):
            vec = tmp / f"v{i}"
            args = ["vectors", str(path), "--out", str(vec), "--samples", "1"]
            if method == "inference":
                np_path = tmp / f"x{i}.npz"
                import numpy as np

                model = tinyzo.load(path)
                np.savez(np_path, x=np.zeros((1,) + tuple(model.tensors[model.inputs[0]].shape[1:]), np.int8))
                args += ["--data", str(np_path), "--steps", "0"]
            else:
                args += ["--data", "digits", "--method", method, "--steps", "1", "--batch", "1"]
                if layers:
                    args += ["--layers", layers]
            if tinyzo_main(args) != 0:
                raise SystemExit(f"tinyzo vectors failed for {label} {method}")
            elf = tmp / f"b{i}.elf"
            text, data, bss = _build(vec, elf, method != "inference", lean)
            model = tinyzo.load(path)
            kw = {} if layers is None else {"layers": [int(v) for v in layers.split(",")]}
            if method != "inference":
                kw["optimizer"] = "sgd"
            rep = memory_report(model, method, **kw)
            build = "inference" if method == "inference" else f"inference + {method} step (batch 1)"
            if lean:
                build = f"inference + **lean** {method} step (batch 1)"
                k = _ram_symbols(elf)
                bd = rep["breakdown"]
                lean_rows.append(
                    f"| {layers or 'all'} | C lean (`bss` + `data`) | {k.get('arena', 0):,} | {k.get('param copies', 0):,} | "
                    f"{k.get('clamp record', 0):,} | {k.get('batch (input, label)', 0):,} | - | {k.get('other', 0):,} | "
                    f"{sum(k.values()):,} |")
                lean_rows.append(
                    f"| {layers or 'all'} | tinyzo planner | {bd.get('activations', 0):,} | {bd.get('param_copies', 0):,} | "
                    f"{bd.get('masks', 0):,} | - | {bd.get('fragmentation', 0):,} | {bd.get('scratch', 0):,} | "
                    f"{rep['peak_sram_bytes']:,} |")
            rows.append(f"| {label} | {build} | {layers or ('all' if method != 'inference' else '-')} | {text:,} | "
                        f"{data:,} | {bss:,} | {data + bss:,} | {rep['peak_sram_bytes']:,} | {rep['flash_bytes']:,} |")
    return "\n".join(rows) + "\n\nLean weight step, static RAM by kind (C: symbol sizes from arm-none-eabi-nm; " \
        "planner: `memory_report(...)['breakdown']`, its `scratch` in the `other` column):\n\n" + "\n".join(lean_rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--update-doc", action="store_true", help="write the table into docs/porting.md")
    args = p.parse_args(argv)
    if shutil.which(CC) is None or shutil.which(SIZE) is None or shutil.which(NM) is None:
        print(f"{CC} not found: install gcc-arm-none-eabi and libnewlib-arm-none-eabi (Debian) to measure the port")
        return 0
    version = subprocess.run([CC, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    t = table()
    print(f"{version}; flags: {' '.join(FLAGS)}\n")
    print(t)
    if args.update_doc:
        doc = ROOT / "docs" / "porting.md"
        s = doc.read_text()
        if BEGIN not in s or END not in s:
            print(f"{doc} has no {BEGIN} ... {END} markers", file=sys.stderr)
            return 1
        head, rest = s.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc.write_text(f"{head}{BEGIN}\n{version}; flags: `{' '.join(FLAGS)}`\n\n{t}\n{END}{tail}")
        print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

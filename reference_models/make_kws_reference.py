"""Regenerate the keyword-spotting reference model ``kws_dscnn`` (DS-CNN-S on TFLM front-end features) and its card.

    PYTHONPATH=. python reference_models/make_kws_reference.py [--data DIR/speech.npz] [--epochs N]

1. The training set: ``tinyzo data speech --per-class 400 --seed 1`` (espeak-ng needed), or the
   ``--data`` file it wrote. Train 4,800 clips, val 1,200, test 1,200; the val and test speakers
   are voices never heard in training (docs/audio.md, "Keyword dataset").
2. DS-CNN-S (``tinyzo.models.build("ds-cnn", input_shape=(49, 40, 1), num_classes=12)``) trained in
   float32 (``tinyzo.fp.train``, fixed seed) on the dequantized features
   ``(q + 128) * 0.10171568`` (the front end's int8 features in micro_speech's input quantization).
3. Post-training quantization (``tinyzo.fp.ptq.ptq``) with the input quantization fixed to that
   of the features, so the int8 features are the model's input unchanged.
4. The int8 model is evaluated on the generated test split and on the shipped subset's test split
   (``tinyzo.data.load("speech")``), checked against TFLite Micro when it is installed, and
   ``kws_dscnn.tflite``, ``kws_dscnn.json`` and ``kws_dscnn.md`` are written here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NAME = "kws_dscnn"
RECIPE = dict(dataset="speech", generate=dict(per_class=400, seed=1, snr_db=[5.0, 30.0]), arch="ds-cnn",
              size="s", input_shape=(49, 40, 1), epochs=15, batch_size=64, lr=0.05, momentum=0.9,
              weight_decay=5e-4, warmup_epochs=1, calibration="percentile", percentile=99.99, calib_samples=512,
              seed=0)


def to_float(x: np.ndarray, feature_quant) -> np.ndarray:
    """int8[N, 49, 40] features -> float32[N, 49, 40, 1], the real values they stand for."""
    scale, zp = feature_quant
    return ((x.astype(np.float32) - np.float32(zp)) * np.float32(scale))[..., None]


def main(argv=None) -> int:
    import tinyzo
    from tinyzo import data, fp, models
    from tinyzo.audio import synth
    from tinyzo.evaluate import evaluate
    from tinyzo.fp.ptq import ptq
    from tinyzo.nn import count_params, init_params
    from tinyzo.summary import totals

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a speech.npz written by `tinyzo data speech --per-class 400 --seed 1`")
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    args = ap.parse_args(argv)
    r = dict(RECIPE, epochs=args.epochs)
    if args.data:
        ds = data.load(args.data)
    else:
        g = r["generate"]
        ds, _ = synth.build_speech_dataset(per_class=g["per_class"], seed=g["seed"], snr_db=g["snr_db"])
    prov = json.loads(ds.provenance)
    fq = ds.feature_quant
    xtr, xva, xte = (to_float(ds.split(s)[0], fq) for s in ("train", "val", "test"))
    net = models.build(r["arch"], input_shape=r["input_shape"], num_classes=len(ds.classes), size=r["size"])
    params = init_params(net, seed=r["seed"])
    t0 = time.perf_counter()
    history = fp.train(net, params, xtr, ds.y_train, xva, ds.y_val, epochs=r["epochs"], batch_size=r["batch_size"],
                       lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"],
                       warmup_epochs=r["warmup_epochs"], seed=r["seed"], progress=False,
                       on_epoch=lambda h: print(json.dumps({k: h[k] for k in ("epoch", "train_acc", "val_acc")}),
                                                flush=True) and None)
    train_s = time.perf_counter() - t0
    float_test = fp.evaluate(net, params, xte, ds.y_test)
    calib = xtr[np.random.default_rng(r["seed"]).permutation(len(xtr))[: r["calib_samples"]]]
    model = ptq(net, params, calib, method=r["calibration"], percentile=r["percentile"], input_quant=fq)
    model.name = NAME
    path = HERE / f"{NAME}.tflite"
    model.save(path)
    model = tinyzo.load(path)  # evaluate exactly what was written
    own = evaluate(model, ds.x_test, ds.y_test, feature_quant=fq)
    shipped = data.load("speech")
    ship = evaluate(model, shipped.x_test, shipped.y_test, feature_quant=shipped.feature_quant)
    pred = np.argmax(model(ds.x_test[..., None]).reshape(len(ds.x_test), -1), axis=1)
    per_class = {c: float((pred[ds.y_test == k] == k).mean()) for k, c in enumerate(ds.classes)}
    tflm_equal = None
    try:
        from tflite_micro.python.tflite_micro import runtime

        interp = runtime.Interpreter.from_file(str(path))
        xq = shipped.x_test[:64, ..., None]
        theirs = []
        for b in range(len(xq)):
            interp.set_input(xq[b: b + 1], 0)
            interp.invoke()
            theirs.append(interp.get_output(0))
        tflm_equal = bool(np.array_equal(model(xq), np.concatenate(theirs)))
    except ImportError:
        pass
    tot = totals(model)
    facts = dict(
        name=NAME, arch=f"{r['arch']}-{r['size']}", input_shape=list(r["input_shape"]), classes=list(ds.classes),
        recipe=r, feature_quant=list(fq), espeak_ng=prov["espeak_ng"], train_clips=len(ds.y_train),
        test_speakers=prov["speakers"]["test"], train_seconds=round(train_s, 1),
        float_test_accuracy=float_test["accuracy"], int8_test_accuracy=own["accuracy"], n_test=own["n"],
        int8_shipped_test_accuracy=ship["accuracy"], n_shipped_test=ship["n"], int8_per_class=per_class,
        final_val_accuracy=history[-1].get("val_acc"), tflm_bit_exact_on_64_test_clips=tflm_equal,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size, macs=tot["macs"],
        weight_bytes=tot["weight_bytes"], params_int8=count_params(net, "int8"),
        platform=f"{platform.machine()} {platform.processor()}", tinyzo=tinyzo.__version__,
    )
    (HERE / f"{NAME}.json").write_text(json.dumps(facts, indent=2, default=float) + "\n")
    (HERE / f"{NAME}.md").write_text(model_card(facts))
    print(json.dumps({k: facts[k] for k in ("int8_test_accuracy", "int8_shipped_test_accuracy",
                                            "float_test_accuracy", "sha256")}))
    return 0


def model_card(f: dict) -> str:
    """The model card (Markdown) of the keyword model."""
    r = f["recipe"]
    g = r["generate"]
    rows = "\n".join(f"| {c} | {a * 100:.1f}% |" for c, a in f["int8_per_class"].items())
    tflm = ("runs it with outputs exactly equal to tinyzo (64 test clips)" if f["tflm_bit_exact_on_64_test_clips"]
            else "not checked (tflite-micro not installed)" if f["tflm_bit_exact_on_64_test_clips"] is None
            else "MISMATCH")
    return f"""# Model card: {f['name']}

| | |
|---|---|
| file | `{f['name']}.tflite` ({f['bytes']:,} bytes), sha256 `{f['sha256']}` |
| task | keyword spotting, 12 classes ({', '.join(f['classes'])}) |
| input | int8[1, 49, 40, 1]: one second of TFLM front-end features (`tinyzo.audio.features`), scale {f['feature_quant'][0]:.8g}, zero point {f['feature_quant'][1]} (micro_speech's input quantization): the features go in unchanged |
| architecture | `{f['arch']}` (tinyzo.models "ds-cnn", size "{r['size']}"), {f['macs']:,} MACs, {f['params_int8']:,} int8 parameters, {f['weight_bytes']:,} weight bytes |
| output | int8 logits (no softmax) |
| int8 accuracy, unseen voices | **{f['int8_test_accuracy'] * 100:.2f}%** on the {f['n_test']:,} test clips of its generated set; **{f['int8_shipped_test_accuracy'] * 100:.2f}%** on the {f['n_shipped_test']} test clips of the shipped subset (`tinyzo.data.load("speech")`); float model before quantization {f['float_test_accuracy'] * 100:.2f}% |
| TFLite Micro | {tflm} |
| produced by | `tinyzo data speech --out DIR --per-class {r['generate']['per_class']} --seed {r['generate']['seed']}`, then `python reference_models/make_kws_reference.py --data DIR/speech.npz` (without `--data` the script generates the same set itself) (tinyzo {f['tinyzo']}, {f['espeak_ng']}, {f['platform'].strip()}, {f['train_seconds']} s of training on a shared 2-core machine) |

## Data

`tinyzo data speech --per-class {g['per_class']} --seed {g['seed']}` (SNR {g['snr_db'][0]:g}..{g['snr_db'][1]:g} dB):
{f['train_clips']:,} training clips of espeak-ng speech with generated noise (docs/audio.md,
"Keyword dataset"). The test speakers ({len(f['test_speakers'])}: every accent with the variants
m3, f3, klatt2, Alex) are never heard in training. **Synthetic speech only**: this says how well the
model separates espeak-ng's words; it is not a measure of accuracy on human speech.

## Training recipe

Float32 training with `tinyzo.fp.train` on the dequantized features: {r['epochs']} epochs, batch
{r['batch_size']}, SGD momentum {r['momentum']}, learning rate {r['lr']} with {r['warmup_epochs']} warm-up
epoch then cosine decay, weight decay {r['weight_decay']}, no augmentation, seed {r['seed']}; final
validation accuracy (float, unseen voices) {f['final_val_accuracy'] * 100:.2f}%. Post-training
quantization with `tinyzo.fp.ptq.ptq`: batch norm folded, {r['calibration']} calibration
({r['percentile']}) on {r['calib_samples']} training clips, per-channel int8 weights, int32
biases, input quantization fixed to the features'.

## int8 accuracy per class (generated test split)

| class | accuracy |
|---|---:|
{rows}
"""


if __name__ == "__main__":
    sys.exit(main())

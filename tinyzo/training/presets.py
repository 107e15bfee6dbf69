"""Named training recipes: sets of ``tinyzo train`` options (``tinyzo train --preset NAME``, or
:func:`preset_options` in Python). An option given on the command line wins over the preset's.

* ``pmt``: the public configuration of "Poor Man's Training on MCUs" (quantized zeroth-order
  training; CIFAR-10-C, MCUNet-5fps, severity 5) mapped onto tinyzo's integer units:

  ========================================  ===========================================================
  paper                                     tinyzo
  ========================================  ===========================================================
  integer QAS-scaled SGD, no momentum,      ``--update per_step --rounding nearest`` (no shadow copy,
  lr 0.01                                   no momentum: the paper's on-device update), ``--lr 0.01``
  one-sided estimate, +-1 directions,       ``--method zo-rge-mixed`` (RGE), Rademacher directions,
  50 queries per step                       ``--queries 50``
  layer-wise "mixture" over 5 blocks:       ``--layers last5`` (the last 5 trainable layers stand for
  weight perturbation in the earlier        the 5 blocks), ``--mixed-split 2`` (weight perturbation
  blocks, node (activation) perturbation    in the first 2, node perturbation in the last 3)
  in the later ones
  perturbation sizes: weight 1, bias 100,   ``--sigma 1`` (int8 LSB), ``--sigma-bias 100`` (int32
  activation 5 (integer units)              units), ``--sigma-node 5`` (int8 LSB of the layer output)
  1,000 training images, batch 100,         ``--batch-size 100 --epochs 50`` (on the whole training
  50 epochs                                 split given, e.g. the digits' 1,257 images)
  ========================================  ===========================================================

  Which blocks get weight vs node perturbation in the paper's mixture is not stated as a number; the
  split 2 / 3 is tinyzo's reading (weight perturbation where activations are large, node where they
  are small), and can be changed with ``--mixed-split``.
"""

from __future__ import annotations

from tinyzo.errors import InputError

__all__ = ["PRESETS", "preset_options"]

#: preset name -> ``tinyzo train`` options (argparse ``dest`` names)
PRESETS = {
    "pmt": {"method": "zo-rge-mixed", "layers": "last5", "mixed_split": 2, "queries": 50, "sigma": 1,
            "sigma_bias": 100, "sigma_node": 5, "lr": 0.01, "momentum": 0.0, "update": "per_step",
            "rounding": "nearest", "schedule": "constant", "batch_size": 100, "epochs": 50},
}


def preset_options(name: str) -> dict:
    """The ``tinyzo train`` options (``dest`` -> value) of preset ``name`` (a copy); InputError if unknown."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])

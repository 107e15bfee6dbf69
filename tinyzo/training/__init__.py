"""The training core shared by zeroth-order (:mod:`tinyzo.zo`) and back-propagation (:mod:`tinyzo.bp`)
training: the trainable-layer view (:mod:`~tinyzo.training.layers`), the loss
(:mod:`~tinyzo.training.loss`), the one update module (:mod:`~tinyzo.training.update`), the
perturbation PRNG (:mod:`~tinyzo.training.prng`), the sparse-update scheme
(:mod:`~tinyzo.training.scheme`), the one-layer local backward (:mod:`~tinyzo.training.local_backward`),
the trainer base class (:mod:`~tinyzo.training.trainer`), the methods (:mod:`~tinyzo.training.methods`)
and the loop (:func:`~tinyzo.training.loop.fit`). See docs/architecture.md.
"""

from tinyzo.training.layers import TrainableLayer, select_channels, trainable_layer, trainable_layers
from tinyzo.training.loop import fit
from tinyzo.training.scheme import SparseScheme
from tinyzo.training.update import IntegerSGD, QASOptimizer, lr_schedule

__all__ = [
           "IntegerSGD",
           "QASOptimizer",
           "SparseScheme",
           "TrainableLayer",
           "fit",
           "lr_schedule",
           "select_channels",
           "trainable_layer",
           "trainable_layers",
]

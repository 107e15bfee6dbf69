"""Back propagation on the real int8 graph (tiny-training's method).

* :func:`tinyzo.bp.backward.backward`: gradients of the int8 weights and int32 biases from an int8
  forward pass, straight through the roundings and masked at every clamp, with the float trainer's
  layer-backward kernels (:mod:`tinyzo.fp.kernels`).
* :class:`tinyzo.training.update.QASOptimizer`: SGD (momentum) and Adam, with or without QAS.
* :class:`tinyzo.training.scheme.SparseScheme`: which biases, layers and channels to update (JSON form).
* :class:`tinyzo.bp.trainer.BPTrainer`: the step (forward, loss, backward, update) for :func:`tinyzo.training.loop.fit`.
* :func:`tinyzo.bp.contrib.contribution_analysis`: tiny-training's accuracy gains of bias-only and
  per-layer weight updates; :func:`tinyzo.bp.search.best_scheme`: the best scheme under a memory budget.
"""

from tinyzo.bp.backward import BackwardError, backward, logits_gradient  # noqa: F401
from tinyzo.bp.contrib import ContribError, Contributions, contribution_analysis  # noqa: F401
from tinyzo.bp.search import SearchError, best_scheme  # noqa: F401
from tinyzo.bp.trainer import BPTrainer  # noqa: F401
from tinyzo.training.scheme import SchemeError, SparseScheme  # noqa: F401
from tinyzo.training.update import QASOptimizer  # noqa: F401

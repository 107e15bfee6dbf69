"""Quantized zeroth-order (back-propagation-free) training.

``tinyzo.training.prng``: the firmware-portable perturbation generator (xorshift32, the seed schedule
``derive_seed(base_seed, step, query, layer)``, Rademacher / uniform / integer-Gaussian / sphere
perturbations); the same sequences come out of the C header ``tinyzo/training/c/tinyzo_prng.h``.

The front door for training: :class:`ZOTrainer` with its :class:`ZOConfig` (the estimators RGE,
SPSA, Sign-m-SPSA; weight, node and mixed perturbation), run by :func:`tinyzo.training.loop.fit`.
"""

from tinyzo.training.prng import (  # noqa: F401
    GAUSSIAN_SIGMA_MAX,
    KINDS,
    PRNGError,
    derive_seed,
    gaussian_int,
    gaussian_multiplier,
    kind_code,
    perturbation,
    rademacher,
    sphere,
    uniform_int,
    xorshift32_sequence,
)
from tinyzo.zo.hybrid import HybridTrainer  # noqa: F401
from tinyzo.zo.trainer import ESTIMATORS, TARGETS, ZOConfig, ZOConfigError, ZOTrainer  # noqa: F401

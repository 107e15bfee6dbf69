"""Float32 training of :class:`tinyzo.nn.Net` networks without a deep-learning framework.

* :func:`forward`, :func:`backward`: the network interpreter over the float kernels of
  :mod:`tinyzo.fp.kernels` (conv, depthwise, fc, add, pools, gap, flatten, upsample, batch
  norm, ReLU/ReLU6), params in the int8 engine's layouts.
* :func:`activations` (every layer's eval-mode output, for quantization calibration),
  :func:`predict`, :func:`evaluate`.
* :func:`train`: SGD with momentum, weight decay, cosine schedule with warm-up, augmentation
  (:mod:`tinyzo.fp.augment`), atomic ``.npz`` checkpoints and resume, NaN guard.

See docs/training_float.md.
"""

from tinyzo.fp import augment  # noqa: F401
from tinyzo.fp.forward import (  # noqa: F401
    BN_EPS,
    FloatNetError,
    activations,
    backward,
    evaluate,
    forward,
    predict,
    update_bn_stats,
)
from tinyzo.fp.train import (  # noqa: F401
    CheckpointError,
    History,
    TrainingDivergedError,
    learning_rate,
    load_checkpoint,
    save_checkpoint,
    sgd_step,
    train,
    zeros_like_grads,
)

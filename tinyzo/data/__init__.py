"""tinyzo.data: the bundled digits and keyword features, loaders for user data, corruptions, resizing.

Public names::

    load(source, split=None)            "digits", "speech", a tinyzo .npz, an MNIST/CIFAR/image-folder directory
    save(dataset, path)                 write the tinyzo dataset format (.npz)
    Dataset                             x_train, y_train, x_val, y_val, x_test, y_test, name, classes
    corrupt(x, name, severity, seed=0)  CIFAR-10-C / MNIST-C style corruptions, severity 1..5
    corruptions()                       their names
    fit_to_model(x, (H, W, C))          integer upsampling / centre crop / zero pad, 1 -> 3 channels
    write_dataset(source, out, ...)     the data side of ``tinyzo data``
    load_idx, load_mnist, load_cifar, load_image_folder, load_npz, load_digits
    DataError                           every error of this package (a TinyzoError)

Note: the attribute ``tinyzo.data.corruptions`` is the function, which shadows the
submodule of the same name; its tables are exported here (``SEVERITY_PARAMS``,
``PARAM_NAMES``) or importable with ``from tinyzo.data.corruptions import ...``.

See docs/data.md.
"""

from tinyzo.data.corruptions import PARAM_NAMES, SEVERITY_PARAMS, corrupt, corruptions
from tinyzo.data.datasets import DIGITS_PATH, SPLITS, DataError, Dataset, fit_to_model, load_digits, load_npz, save
from tinyzo.data.loaders import (
    FASHION_MNIST_CLASSES,
    load,
    load_cifar,
    load_idx,
    load_image_folder,
    load_mnist,
    write_dataset,
)

__all__ = [
    "DIGITS_PATH",
    "FASHION_MNIST_CLASSES",
    "PARAM_NAMES",
    "SEVERITY_PARAMS",
    "SPLITS",
    "DataError",
    "Dataset",
    "corrupt",
    "corruptions",
    "fit_to_model",
    "load",
    "load_cifar",
    "load_digits",
    "load_idx",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "save",
    "write_dataset",
]

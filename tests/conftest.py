"""Shared fixtures: tiny training runs, a cache directory per test, the session's classifier cache and
the unpacked CIFAR-10 JPEGs. Shared names and functions: tests/helpers.py."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

from helpers import CIFAR_JPEG, TINY
from wgan.config import compose_config
from wgan.train import run

# GPU-only tests are not collected where there is no GPU (CI): their CPU fallbacks are tested.
collect_ignore = [] if torch.cuda.is_available() else ["gpu"]


@pytest.fixture
def train_tiny(tmp_path):
    """Run a tiny training in-process: `train_tiny(*overrides, run_dir=...)` returns results."""

    def train(*overrides: str, run_dir: Path | None = None):
        cfg = compose_config(TINY + list(overrides))
        return run(cfg, run_dir or tmp_path / "run")

    return train


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """W&B in offline mode without credentials, as a user's machine has it before `wandb login`."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory, monkeypatch) -> Path:
    """Each test's default cache directory ($XDG_CACHE_HOME/wgan), a folder of its own: tests never
    write into the user's ~/.cache, nor read what another test left there."""
    home = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "wgan"


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """One metrics cache for the session, so the Fashion-MNIST classifier is trained at most once."""
    return tmp_path_factory.mktemp("metrics-cache")


# The images of each CIFAR-10 class the tests unpack: what they use. All 60,000 took 20 s to unpack
# and minutes for pytest to delete again with its old temporary folders.
CIFAR_PER_CLASS = 100


@pytest.fixture(scope="session")
def cifar_jpeg(tmp_path_factory) -> Path:
    """The first CIFAR_PER_CLASS training images of each class of the CIFAR-10 JPEG copy of
    ../shared/data, unpacked once: <dir>/train/<class>/NNNN.jpg, NNNN < CIFAR_PER_CLASS."""
    if not CIFAR_JPEG.is_file():
        pytest.skip(f"needs {CIFAR_JPEG} (the project's shared data beside the repository)")
    root = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(CIFAR_JPEG) as archive:
        chosen = (m for m in archive
                  if m.isfile() and m.name.startswith("train/") and int(Path(m.name).stem) < CIFAR_PER_CLASS)
        archive.extractall(root, members=chosen, filter="data")
    return root

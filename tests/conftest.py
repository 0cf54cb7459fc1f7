"""Shared fixtures: configs composed exactly as `run.py` composes them, and tiny training runs."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from wgan.config import register_configs
from wgan.train import run

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
# Small enough that a run takes about a second on two CPU cores.
TINY = ["logger=none", "arch.width=32", "train.batch_size=32", "train.iterations=20", "train.log_every=5",
        "eval.every=10", "ckpt.every=5", "metrics.num_samples=200"]


def compose_config(overrides: list[str] = ()):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def train_tiny(tmp_path):
    """Run a tiny training in-process: `train_tiny(*overrides, run_dir=...)` returns results."""

    def train(*overrides: str, run_dir: Path | None = None):
        cfg = compose_config(TINY + list(overrides))
        return run(cfg, run_dir or tmp_path / "run")

    return train


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """One metrics cache for the session, so the Fashion-MNIST classifier is trained at most once."""
    return tmp_path_factory.mktemp("metrics-cache")

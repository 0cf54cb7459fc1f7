"""`python run.py` exactly as the README's quick start runs it: WGAN-GP learns the 8 Gaussians.

This is the slowest test (2 to 6 minutes on two CPU cores); it checks the targets of the
embedded default: all 8 modes covered and at least half of 2,500 samples high-quality.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_default_run_learns_the_eight_gaussians(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    started = time.perf_counter()
    subprocess.run([sys.executable, "run.py", f"hydra.run.dir={tmp_path}"], cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    results = json.loads((tmp_path / "results.json").read_text())
    print(f"default run: {seconds:.0f} s wall clock, results {results['final']}")
    assert results["status"] == "complete" and results["step"] == 800
    assert results["method"] == "wgan_gp" and results["dataset"] == "toy_8gaussians"
    assert results["final"]["modes"] == 8
    assert results["final"]["hq_fraction"] >= 0.5
    assert (tmp_path / "samples" / "step_000800.png").exists()
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))

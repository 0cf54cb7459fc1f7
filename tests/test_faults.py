"""Faults with real processes and real signals: stop signals checkpoint and exit, unreadable
checkpoints fall back to the one before."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import CONF_DIR, TINY
from wgan.files import RunFiles

ROOT = Path(CONF_DIR).parent


def checkpoint_step(files: RunFiles) -> int:
    try:
        return torch.load(files.checkpoint, weights_only=True)["step"]
    except (FileNotFoundError, RuntimeError, EOFError):  # not written yet
        return -1


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_checkpoints_and_exits_within_seconds_then_the_run_resumes(tmp_path, stop):
    overrides = [*TINY, "train.iterations=600", "ckpt.every=600", "eval.every=600", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "run.py", *overrides]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    files = RunFiles(tmp_path)
    deadline = time.monotonic() + 60
    while checkpoint_step(files) < 0:  # the step-0 checkpoint: training has started
        assert time.monotonic() < deadline and process.poll() is None, "training never started"
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(stop)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == 128 + stop
    stopped_at = checkpoint_step(files)
    assert 0 < stopped_at < 600 and f"{stop.name} at iteration {stopped_at}: checkpointed" in output
    assert files.read_results() is None  # unfinished, not a result
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"at iteration {stopped_at}" in resumed.stdout
    assert json.loads(files.results.read_text())["step"] == 600


def test_an_unreadable_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    files = RunFiles(tmp_path)
    files.save_checkpoint({"step": 10})
    files.save_checkpoint({"step": 20})
    assert files.load_checkpoint() == {"step": 20}
    files.checkpoint.write_bytes(files.checkpoint.read_bytes()[:50])  # cut short, as by a full disk
    assert files.load_checkpoint() == {"step": 10}
    assert f"checkpoint {files.checkpoint} is unreadable" in caplog.text
    files.previous_checkpoint.write_bytes(b"")
    assert files.load_checkpoint() is None

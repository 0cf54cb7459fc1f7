"""Everything a run leaves in its directory, written so that a kill at any moment loses nothing:

- `config.yaml`: the resolved config;
- `results.json`: status (`complete`, `diverged`, `crashed`), iterations done, metrics, timing;
- `metrics.jsonl`: one JSON line per evaluation;
- `checkpoints/last.pt`: models, optimizers, RNG states and step (`previous.pt`: the one before);
- `samples/step_NNNNNN.png`: a figure per evaluation.

Files that are replaced are written to a temporary name and renamed into place (atomic on POSIX).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

FINISHED = ("complete", "diverged")  # statuses that are results: such a run is never trained again


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFiles:
    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.config = self.dir / "config.yaml"
        self.results = self.dir / "results.json"
        self.metrics = self.dir / "metrics.jsonl"
        self.checkpoint = self.dir / "checkpoints" / "last.pt"
        self.previous_checkpoint = self.dir / "checkpoints" / "previous.pt"
        self.samples = self.dir / "samples"

    def read_results(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.results.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write(self.results, lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def drop_metrics_after(self, step: int) -> None:
        """Forget evaluations logged after `step`: a resumed run redoes them from its checkpoint."""
        if not self.metrics.exists():
            return
        kept = [line for line in self.metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
        atomic_write(self.metrics, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept)))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write `last.pt` atomically, keeping the one it replaces as `previous.pt`: a checkpoint
        that is later found unreadable (a failing disk, a copy cut short) still has a fallback."""
        if self.checkpoint.exists():
            os.replace(self.checkpoint, self.previous_checkpoint)
        atomic_write(self.checkpoint, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest readable checkpoint (`last.pt`, else `previous.pt`), or None if there is none."""
        for path in (self.checkpoint, self.previous_checkpoint):
            if not path.exists():
                continue
            try:
                # weights_only: a checkpoint is data; loading one never runs pickled code.
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # truncated or corrupt: torch raises several kinds
                log.warning("checkpoint %s is unreadable (%s: %s); trying the one before it",
                            path, type(error).__name__, error)
        return None

    def sample_figure(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.png"

"""How close `python -m wgan.plan` comes to a study's real wall time: plans a small toy study, then
runs it as `python run.py -m` would, and prints both and their ratio.

    python benchmarks/plan_accuracy.py                       # 6 jobs of robustness_toy, ~10 min on 2 cores
    python benchmarks/plan_accuracy.py arch.count=5 train.iterations=600

Extra arguments are overrides of the study. Run it on a quiet machine: other processes slow the
study, not the plan's few timed iterations. The issue's target: within 25%.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wgan.plan import duration, plan  # noqa: E402

STUDY = ["sweeps=robustness_toy", "arch.count=3", "train.iterations=200", "eval.every=200", "logger.mode=offline"]


def main() -> None:
    overrides = [*STUDY, *sys.argv[1:]]
    with tempfile.TemporaryDirectory(prefix="plan-accuracy-") as scratch:
        sweep = [f"hydra.sweep.dir={scratch}/study"]
        projected = plan([*overrides, *sweep], iterations=3, parallel=None)
        print(f"planned: {len(projected['jobs'])} jobs, {duration(projected['wall_seconds'])} wall time with "
              f"{projected['parallel']} at a time", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "run.py", "-m", *overrides, *sweep], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        measured = time.perf_counter() - started
    print(f"measured: {duration(measured)} wall time; planned / measured = {projected['wall_seconds'] / measured:.2f}")


if __name__ == "__main__":
    main()

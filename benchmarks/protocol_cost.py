"""What each of the paper's experiments costs to train: seconds per generator iteration of its
jobs' networks, measured on this machine, and the study's total, printed as a Markdown table.

    python benchmarks/protocol_cost.py                 # every study, about 15 minutes on 2 CPU cores
    python benchmarks/protocol_cost.py --only figure3 --device cuda

Each job kind is built as its study composes it (`sweeps/<study>.yaml` and the job's overrides)
on synthetic images of the study's size (the real data is not needed to time a step), trained for
one warm-up iteration and then timed over `--iterations` more; a random-architecture study is
sampled over `--architectures` seeds. Training only: the evaluations (a final 50,000-sample
Inception Score per job) come on top. docs/protocol.md quotes the table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wgan.config import compose_config  # noqa: E402
from wgan.files import RunFiles  # noqa: E402
from wgan.train import Trainer  # noqa: E402

# study: (the job kinds to time as override lists, how many jobs the study has)
RANDOM = "random"  # a job kind per sampled architecture seed
STUDIES = {
    "robustness_paper": ([["method=wgan_gp"], ["method=dcgan"]], 400),
    "figure2": ([[f"arch={a}", f"method={m}"] for a in ("dcgan", "dcgan_constfilter", "mlp_generator", "dcgan_nonorm",
                                                         "dcgan_gated", "dcgan_tanh", "resnet101")
                 for m in ("wgan_gp_beta05", "wgan_clip", "dcgan", "lsgan")], 28),
    "figure3": ([[f"method={m}"] for m in ("wgan_clip", "wgan_gp_rmsprop", "wgan_gp_beta05", "dcgan")], 4),
    "table3_resnet": ([[]], 1),
}
SYNTHETIC = ["dataset=synthetic", "metrics=none", "logger=none"]


def seconds_per_iteration(overrides: list[str], iterations: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*overrides, f"device={device}"])
        trainer = Trainer(cfg, RunFiles(Path(tmp)))
        trainer.iteration()  # warm-up: allocations, autotuning
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(iterations):
            trainer.iteration()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / iterations


def study_cost(study: str, iterations: int, architectures: int, device: str) -> tuple[float, int, int]:
    """(mean seconds per iteration over the study's job kinds, generator iterations per job, jobs)."""
    kinds, jobs = STUDIES[study]
    base = compose_config([f"sweeps={study}"])
    resolution = base.dataset.resolution
    sampled = [[*kind, f"arch.seed={seed}"] for kind in kinds for seed in range(architectures)] \
        if base.arch.name == RANDOM else kinds
    times = []
    for kind in sampled:
        overrides = [f"sweeps={study}", *SYNTHETIC, f"dataset.resolution={resolution}", *kind]
        times.append(seconds_per_iteration(overrides, iterations, device))
        print(f"  {study} {' '.join(kind) or '(the study)'}: {times[-1]:.3f} s/it", file=sys.stderr, flush=True)
    return statistics.fmean(times), base.train.iterations, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(STUDIES), default=sorted(STUDIES))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--architectures", type=int, default=6, help="seeds sampled from a random study")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    peak = 5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9
    print(f"device {args.device}, {torch.get_num_threads()} threads, torch.mm peak {peak:.0f} GFLOP/s (CPU)\n")
    print("| study | s/it (mean over job kinds) | iterations per job | jobs | training, all jobs |")
    print("|---|---|---|---|---|")
    for study in args.only:
        per_it, iterations, jobs = study_cost(study, args.iterations, args.architectures, args.device)
        total_h = per_it * iterations * jobs / 3600
        print(f"| {study} | {per_it:.3f} | {iterations:,} | {jobs} | {total_h:,.0f} device-hours |", flush=True)


if __name__ == "__main__":
    main()

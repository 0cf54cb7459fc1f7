"""What each of the paper's experiments costs to train: seconds per generator iteration of its
jobs' networks, measured on this machine, and the study's total, printed as a Markdown table.

    python benchmarks/protocol_cost.py                 # every study, about 15 minutes on 2 CPU cores
    python benchmarks/protocol_cost.py --only figure3 --device cuda

Each job kind is built as its study composes it (`sweeps/<study>.yaml` and the job's overrides)
on a folder of random images of the study's size (the real data is not needed to time a step), trained for
one warm-up iteration and then timed over `--iterations` more; a random-architecture study is
sampled over `--architectures` seeds. Training only: the evaluations (a final 50,000-sample
Inception Score per job) come on top. docs/protocol.md quotes the table.

The GPU column projects each study onto one H100 from the one step measured there: the 32x32
DCGAN under WGAN-GP at batch 64 takes 75 ms per iteration eager (benchmarks/RESULTS.md, GPU). Each job
kind's time is that, scaled by its CPU time relative to the same reference network timed here in
the same run. Small networks are launch-bound on a GPU, so this over-estimates them: read the
column as an upper bound.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wgan.config import compose_config  # noqa: E402
from wgan.files import RunFiles  # noqa: E402
from wgan.plan import iteration_seconds  # noqa: E402
from wgan.train import Trainer  # noqa: E402

# The network timed on an H100: 75 ms per iteration eager (benchmarks/gpu_levers.py, README).
REFERENCE = ["arch=dcgan", "arch.dim=64", "method=wgan_gp", "train.batch_size=64"]
REFERENCE_GPU_SECONDS = 0.075

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


def image_folder(root: Path, resolution: int, count: int = 64) -> Path:
    """`count` random RGB PNGs: a stand-in for the study's data with its shape and its settings."""
    from PIL import Image

    folder = root / f"images{resolution}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = torch.randint(0, 256, (resolution, resolution, 3), dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def job_config(overrides: list[str], device: str, data: DictConfig | None = None) -> DictConfig:
    """The job `overrides` composes, its dataset replaced by `data` where given (the study's own
    data option stays out: its files are not needed to time a step)."""
    cfg = compose_config([*overrides, f"device={device}"])
    if data is not None:
        with open_dict(cfg):
            cfg.dataset = data
    return cfg


def seconds_per_iteration(cfg: DictConfig, iterations: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return iteration_seconds(Trainer(cfg, RunFiles(Path(tmp))), iterations)


def stand_in_data(study: str, root: Path) -> DictConfig:
    """Random images of the study's resolution, read as the study reads its data (dequantized or not)."""
    base = compose_config([f"sweeps={study}"]).dataset
    return compose_config(["dataset=imagefolder", f"dataset.root={image_folder(root, base.resolution)}",
                           f"dataset.resolution={base.resolution}", "dataset.cache=false",
                           f"dataset.dequantize={base.get('dequantize', False)}"]).dataset


def job_configs(study: str, architectures: int, device: str, root: Path) -> list[tuple[list[str], DictConfig]]:
    """(the overrides, the config) of each job kind the study is timed by."""
    kinds, _ = STUDIES[study]
    base = compose_config([f"sweeps={study}"])
    sampled = [[*kind, f"arch.seed={seed}"] for kind in kinds for seed in range(architectures)] \
        if base.arch.name == RANDOM else kinds
    data = stand_in_data(study, root)
    return [(kind, job_config([f"sweeps={study}", "metrics=none", "logger=none", *kind], device, data))
            for kind in sampled]


def study_cost(study: str, iterations: int, architectures: int, device: str, root: Path) -> tuple[float, int, int]:
    """(mean seconds per iteration over the study's job kinds, generator iterations per job, jobs)."""
    times = []
    for kind, cfg in job_configs(study, architectures, device, root):
        times.append(seconds_per_iteration(cfg, iterations))
        print(f"  {study} {' '.join(kind) or '(the study)'}: {times[-1]:.3f} s/it", file=sys.stderr, flush=True)
    return statistics.fmean(times), compose_config([f"sweeps={study}"]).train.iterations, STUDIES[study][1]


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
    data = Path(tempfile.mkdtemp(prefix="protocol-cost-"))
    reference = seconds_per_iteration(job_config(
        ["dataset=imagefolder", f"dataset.root={image_folder(data, 32)}", "dataset.cache=false", "metrics=none",
         "logger=none", *REFERENCE], args.device), args.iterations)
    print(f"reference (32x32 DCGAN, WGAN-GP, batch 64): {reference:.3f} s/it here, {REFERENCE_GPU_SECONDS} s/it on an H100\n")
    print("| study | s/it here (mean over job kinds) | iterations per job | jobs | training here | projected H100 |")
    print("|---|---|---|---|---|---|")
    for study in args.only:
        per_it, iterations, jobs = study_cost(study, args.iterations, args.architectures, args.device, data)
        here_h = per_it * iterations * jobs / 3600
        gpu_h = here_h * REFERENCE_GPU_SECONDS / reference
        print(f"| {study} | {per_it:.2f} | {iterations:,} | {jobs} | {here_h:,.0f} h | {gpu_h:,.0f} GPU-hours |", flush=True)


if __name__ == "__main__":
    main()

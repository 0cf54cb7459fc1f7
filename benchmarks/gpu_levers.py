"""The GPU levers of `speed` (README: Performance; tables in benchmarks/RESULTS.md), on a CUDA GPU:

    python benchmarks/gpu_levers.py              # about 7 minutes on an H100
    make bench-gpu

- step: milliseconds per generator iteration (5 critic steps + 1 generator step) of the 32x32
  DCGAN under WGAN-GP at batch 64, with each lever alone and all together, against the reference
  loop of bench.py on the same networks (interleaved repetitions; ratio = reference / ours).
- jobs per GPU: generator iterations per second of the whole GPU when 1, 2 or 4 training processes
  share it (each a `python run.py` of the same DCGAN; training time from their results.json).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import bench

LEVERS = {
    "none (fp32, eager)": [],
    "fused optimizer": ["speed.fused_optimizer=true"],
    "channels_last": ["speed.channels_last=true"],
    "bf16 autocast": ["speed.precision=bf16"],
    "CUDA graphs": ["speed.cuda_graphs=true"],
    "all four": ["speed.fused_optimizer=true", "speed.channels_last=true", "speed.precision=bf16",
                 "speed.cuda_graphs=true"],
}
CASE = [*bench.DCGAN, "method=wgan_gp"]


def step_table(iterations: int, reps: int, tmp: Path) -> list[str]:
    reference = bench.ReferenceLoop(bench.make_trainer(CASE, "cuda", tmp / "reference"))
    lines = ["| levers | ours (ms/it) | reference loop (ms/it) | reference / ours |", "|---|---|---|---|"]
    for name, overrides in LEVERS.items():
        trainer = bench.make_trainer([*CASE, *overrides], "cuda", tmp / "levers")

        def ours(trainer=trainer):
            for _ in range(iterations):
                trainer.iteration()

        def theirs():
            for _ in range(iterations):
                reference.iteration()

        bench.interleaved({"ours": ours, "reference": theirs}, 1, trainer.device)  # warm-up, graph capture
        times = bench.interleaved({"ours": ours, "reference": theirs}, reps, trainer.device)
        ms = {k: 1000 * statistics.median(v) / iterations for k, v in times.items()}
        ratio = bench.median_ratio(times["reference"], times["ours"])
        lines.append(f"| {name} | {ms['ours']:.2f} | {ms['reference']:.2f} | {ratio:.2f}x |")
        bench.progress(lines[-1])
    return lines


def jobs_per_gpu_table(iterations: int, tmp: Path) -> list[str]:
    lines = ["| training processes on the GPU | iterations/s, all together | vs one process |", "|---|---|---|"]
    single = None
    for jobs in (1, 2, 4):
        dirs = [tmp / f"jobs{jobs}-{i}" for i in range(jobs)]
        command = [sys.executable, "run.py", *CASE, "device=cuda", "logger=none", "metrics=none",
                   f"train.iterations={iterations}", f"eval.every={iterations}", f"ckpt.every={iterations}"]
        processes = [subprocess.Popen([*command, f"hydra.run.dir={d}"], cwd=bench.ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for d in dirs]
        assert all(p.wait() == 0 for p in processes)
        seconds = max(json.loads((d / "results.json").read_text())["wall_time"] for d in dirs)
        rate = jobs * iterations / seconds
        single = single or rate
        lines.append(f"| {jobs} | {rate:.1f} | {rate / single:.2f}x |")
        bench.progress(lines[-1])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=50, help="generator iterations per timed repetition")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--job-iterations", type=int, default=300, help="iterations of each training process")
    parser.add_argument("--tables", default="steps,jobs", help="which tables: steps, jobs or both")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_levers.py needs a CUDA GPU; `make bench` measures the CPU")
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
    with tempfile.TemporaryDirectory(prefix="wgan-gpu-bench-") as tmp:
        if "steps" in args.tables:
            print("\n".join(step_table(args.iterations, args.reps, Path(tmp))), "\n")
        if "jobs" in args.tables:
            print("\n".join(jobs_per_gpu_table(args.job_iterations, Path(tmp))))


if __name__ == "__main__":
    main()

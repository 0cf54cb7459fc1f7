"""`python -m wgan.plan` (or `wgan-plan`): what a study will cost, before it is launched.

    python -m wgan.plan sweeps=robustness_toy
    python -m wgan.plan sweeps=robustness_paper device=cuda --parallel 4 --json

Takes the overrides `python run.py -m` would take, expands them into the study's jobs as Hydra's
sweeper does, and for each job builds its networks on this device, times a few iterations (after
one that warms up) and one evaluation on `metrics.num_samples`, then projects the job's seconds:

    setup + remaining iterations x seconds per iteration + evaluations x seconds per evaluation

The final evaluation on `metrics.final_num_samples` is scaled from the measured one by the sample
count (linear: sampling and features are; FID's matrix square root is not, so it is an upper
bound there). Jobs already finished in the study directory cost nothing; an interrupted one costs
what its checkpoint leaves. The wall time is the study's jobs dealt in order to `--parallel`
workers (the launcher's n_jobs or array parallelism by default), each to the first free one, as
Hydra's joblib launcher and a SLURM array run them. Nothing is written: a temporary directory
holds the measuring runs.

`--list` measures nothing: it lists the jobs and how far each has come (finished, the iteration of
its checkpoint, not started), so a study's progress can be read without its data, weights or device.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from wgan.config import compose_config, validate
from wgan.files import RunDirError, RunFiles, Status, counted, is_finished
from wgan.schema import ConfigError
from wgan.study import cpu_share, expand_jobs, job_dir_name, joblib_workers

log = logging.getLogger("wgan.plan")


@dataclass
class JobCost:
    job: str  # the job's directory name in the study
    iterations: int  # still to train
    evaluations: int  # still to run, the final one included
    setup_s: float  # building data and networks, starting and ending the logger (a W&B run)
    iteration_s: float  # one generator iteration with its critic steps
    evaluation_s: float  # one evaluation on metrics.num_samples
    final_evaluation_s: float  # the last one, on metrics.final_num_samples

    @property
    def seconds(self) -> float:
        if self.iterations == 0 and self.evaluations == 0:
            return 0.0
        return (self.setup_s + self.iterations * self.iteration_s
                + max(self.evaluations - 1, 0) * self.evaluation_s + self.final_evaluation_s * (self.evaluations > 0))


def base_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides with each sweep (`a,b`, `range(...)`) replaced by its first value: a config to
    read the study's sweeper params and launcher from."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed]


def is_hydra_setting(override: str) -> bool:
    """`hydra.sweep.dir=...`, `hydra/launcher=joblib`: how Hydra runs the jobs, not a job's overrides."""
    return override.startswith(("hydra.", "hydra/", "+hydra.", "~hydra."))


def study_jobs(overrides: Sequence[str]) -> tuple[DictConfig, list[list[str]]]:
    """The study's config (with Hydra's part) and the overrides of each of its jobs."""
    cfg = compose_config(base_overrides(overrides), return_hydra_config=True)
    task = [override for override in overrides if not is_hydra_setting(override)]
    return cfg, expand_jobs(task, cfg.hydra.sweeper.get("params"))


def launcher_parallelism(launcher: Mapping[str, Any], cpus: Optional[int] = None) -> int:
    """Jobs the launcher runs at once: joblib's n_jobs (negative: counted from the cores, as joblib
    does), a SLURM array's parallelism, else one."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs:
        return joblib_workers(n_jobs, cpus or os.cpu_count() or 1)
    return int(launcher.get("array_parallelism") or 1)


def evaluations_left(cfg: DictConfig, step: int) -> int:
    """Evaluations after `step`: every eval.every iterations, and one at the end."""
    end, every = cfg.train.iterations, cfg.eval.every
    return end // every - step // every + (end % every != 0) if step < end else 0


def wall_seconds(costs: Sequence[float], workers: int) -> float:
    """Jobs in order, each to the worker that frees first: when the last one ends."""
    free = [0.0] * max(1, workers)
    for cost in costs:
        first = free.index(min(free))
        free[first] += cost
    return max(free)


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":  # CUDA runs asynchronously: wait for the queued work before reading a clock
        torch.cuda.synchronize(device)


def iteration_seconds(trainer: Any, iterations: int) -> float:
    """A `wgan.train.Trainer`'s seconds per generator iteration over `iterations` of them, after one
    that warms up (allocations, lazy initialization, cuDNN's algorithm choices)."""
    trainer.iteration()
    synchronize(trainer.device)
    started = time.perf_counter()
    for _ in range(iterations):
        trainer.iteration()
    synchronize(trainer.device)
    return (time.perf_counter() - started) / iterations


def logger_seconds(cfg: DictConfig, run_dir: Path) -> float:
    """Starting and finishing the configured logger once: a W&B run takes seconds even offline.
    Always offline: a plan creates no run on a W&B server (an online one costs more, by the network)."""
    from wgan.config import build

    started = time.perf_counter()
    logger = build(cfg.logger, **({"mode": "offline"} if "mode" in cfg.logger else {}))
    logger.start(run_dir=run_dir, name="wgan-plan", group=cfg.study, job_type="plan", config={}, resume_id=None)
    logger.finish({}, 0)
    return time.perf_counter() - started


def measure(cfg: DictConfig, name: str, iterations: int, threads: Optional[int]) -> JobCost:
    """Time one job: its setup, `iterations` iterations after a first one, one evaluation."""
    from wgan.train import Trainer  # the training stack: imported once a job is measured

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="wgan-plan-") as scratch:
        trainer, setup_s = timed(Trainer, cfg, RunFiles(Path(scratch)))
        setup_s += logger_seconds(cfg, Path(scratch))
        seconds = iteration_seconds(trainer, iterations)
        with torch.no_grad():
            _, evaluation_s = timed(trainer.evaluation.score, 0) if cfg.metrics.names else (None, 0.0)
    final = cfg.metrics.final_num_samples or cfg.metrics.num_samples
    return JobCost(name, cfg.train.iterations, evaluations_left(cfg, 0), setup_s, seconds, evaluation_s,
                   evaluation_s * final / cfg.metrics.num_samples)


def reached(cfg: DictConfig, job_dir: Path) -> Optional[int]:
    """The iteration a job of the study directory goes on from (0 if it has not started), or None
    if it has finished, as training decides it (wgan.files.is_finished). A checkpoint that cannot
    be read is a RunDirError, as for the run itself."""
    files = RunFiles(job_dir)
    if is_finished(files.read_results(), cfg.train.iterations):
        return None
    state = files.load_checkpoint()
    return state["step"] if state else 0


def listing(overrides: Sequence[str]) -> dict[str, Any]:
    """The study's jobs and how far each has come, measuring nothing: no data, weights or device
    needed (the configs are composed, not validated: validating looks for the metrics' weights)."""
    study, jobs = study_jobs(overrides)
    sweep_dir = Path(study.hydra.sweep.dir)
    rows = []
    for job in jobs:
        cfg, name = compose_config(job), job_dir_name(job)
        results = RunFiles(sweep_dir / name).read_results()
        row = {"job": name, "iterations": cfg.train.iterations, "status": results["status"] if results else None}
        try:
            step = reached(cfg, sweep_dir / name)
            row.update(finished=step is None, reached=cfg.train.iterations if step is None else step)
        except RunDirError as error:  # its run will stop too: said here, for this job alone
            row.update(finished=False, reached=None, error=str(error))
        rows.append(row)
    return {"study": study.study, "study_dir": str(sweep_dir), "jobs": rows}


def job_state(job: dict[str, Any]) -> str:
    if job["finished"]:
        return f"finished ({job['status']})"
    if job["reached"] is None:
        return job["error"]
    crashed = " (crashed: runs again)" if job["status"] == Status.crashed else ""
    return f"{job['reached']} of {job['iterations']} iterations{crashed}"


def print_listing(result: dict[str, Any]) -> None:
    jobs = result["jobs"]
    finished = sum(job["finished"] for job in jobs)
    started = sum(not job["finished"] and job["reached"] != 0 for job in jobs)
    print(f"study {result['study']} in {result['study_dir']}: {counted(len(jobs), 'job')}, {finished} finished, "
          f"{started} started, {len(jobs) - finished - started} not started")
    width = max(len(job["job"]) for job in jobs)
    for job in jobs:
        print(f"  {job['job']:<{width}}  {job_state(job)}")


def plan(overrides: Sequence[str], iterations: int, parallel: Optional[int]) -> dict[str, Any]:
    study, jobs = study_jobs(overrides)
    workers = parallel or launcher_parallelism(study.hydra.launcher)
    threads = study.threads or cpu_share(study.hydra.launcher)
    sweep_dir = Path(study.hydra.sweep.dir)
    costs = []
    for number, job in enumerate(jobs, 1):
        cfg = compose_config(job)
        validate(cfg)
        name = job_dir_name(job)
        step = reached(cfg, sweep_dir / name)
        if step is None:  # finished: nothing to measure
            cost = JobCost(name, 0, 0, 0.0, 0.0, 0.0, 0.0)
        else:
            measured = measure(cfg, name, iterations, threads)
            cost = JobCost(**{**asdict(measured), "iterations": cfg.train.iterations - step,
                              "evaluations": evaluations_left(cfg, step)})
        log.info("job %d of %d, %s: %.3g s/iteration, %.3g s/evaluation, %s", number, len(jobs), name,
                 cost.iteration_s, cost.evaluation_s, duration(cost.seconds))
        costs.append(cost)
    seconds = [cost.seconds for cost in costs]
    return {
        "study": study.study,
        "study_dir": str(sweep_dir),
        "device": str(study.device),
        "jobs": [{**asdict(cost), "seconds": cost.seconds} for cost in costs],
        "device_hours": sum(seconds) / 3600,
        "parallel": workers,
        "wall_seconds": wall_seconds(seconds, workers),
    }


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def print_plan(result: dict[str, Any]) -> None:
    jobs = result["jobs"]
    left = [job for job in jobs if job["seconds"] > 0]
    print(f"study {result['study']} in {result['study_dir']}: {counted(len(jobs), 'job')}, "
          f"{len(jobs) - len(left)} finished already")
    width = max([len(job["job"]) for job in jobs] + [3])
    print(f"  {'job':<{width}}  {'s/it':>8}  {'s/eval':>8}  {'iters left':>10}  {'time':>8}")
    for job in jobs:
        print(f"  {job['job']:<{width}}  {job['iteration_s']:8.3g}  {job['evaluation_s']:8.3g}  "
              f"{job['iterations']:10d}  {duration(job['seconds']):>8}")
    print(f"total: {result['device_hours']:.3g} device-hours; {duration(result['wall_seconds'])} wall time with "
          f"{counted(result['parallel'], 'job')} at a time")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wgan-plan", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="the overrides of `python run.py -m`, e.g. sweeps=robustness_toy")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per job (default 3)")
    parser.add_argument("--parallel", type=int, help="jobs at a time (default: the launcher's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--list", action="store_true", help="only list the jobs and how far each has come "
                                                             "(measures nothing: no data or weights needed)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or (args.parallel is not None and args.parallel < 1):
        parser.error("--iterations and --parallel must be at least 1")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")  # the measuring W&B runs: not one banner per job
    try:
        result = listing(args.overrides) if args.list else plan(args.overrides, args.iterations, args.parallel)
    except (ConfigError, RunDirError) as error:  # RunDirError: a job's checkpoints cannot be read
        log.error("%s", error)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        (print_listing if args.list else print_plan)(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

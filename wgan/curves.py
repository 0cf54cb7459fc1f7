"""`python -m wgan.curves` (or `wgan-curves`): a logged metric of runs against generator iterations
and against training time, two panels, one line per method (the paper's Figures 3 and 5a).

    python -m wgan.curves multirun/figure3 --metric is_1000           # Figure 3: CIFAR-10 IS, four ways
    python -m wgan.curves multirun/lsun_run --metric critic_loss --negate   # Figure 5a: -critic loss
    python -m wgan.curves outputs/default/run_a outputs/default/run_b --metric w1 --out w1.png

Each argument is a run directory or a study directory (its jobs found as `wgan.report` finds them).
A run's values are those of its `metrics.jsonl` (the evaluations: is_<n>, fid_<n>, w1, hq_fraction,
...) and its `train.jsonl` (the training scalars of every `train.log_every`: critic_loss,
wasserstein, generator_loss, penalty, grad_norm_mean, ...), each line with `step` and `elapsed`, the
training seconds (evaluations and checkpoints left out), which is the time axis. The method is the
run's as its config names it (`wgan.config.method_name`: wgan_gp, wgan_clip, gan, or a
`method_label`); several runs of one method share its colour and its one legend entry. `--negate`
plots minus the metric (Figure 5a's negative critic loss); `--yscale symlog` keeps runs readable beside
one that diverged by orders of magnitude. Writes `curves_<metric>.png` into the
one directory given, or `--out`, atomically; prints where, and each run's last value. The figure is
logged to W&B beside the runs (a run of job type `figure` in their project and group, with the
last values as its summary) unless the runs ran with `logger=none` or `--no-log` is given.

The paper's published values are overlaid where the paper gives any for the runs plotted. Its
Figures 3 and 5a are plots without published numbers, so no curve is overlaid; what it publishes
are final numbers (Table 3's CIFAR-10 Inception Scores), drawn as dashed horizontal lines in the
method's colour on both panels for the runs they describe (PAPER_FINAL).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from wgan.config import method_name
from wgan.files import DiskFull, RunFiles, atomic_write
from wgan.logger import add_no_log_argument, log_figure_run, runs_figure_destination
from wgan.report import find_job_dirs, is_job_dir


class CurvesError(Exception):
    """A problem with the inputs that the user has to fix; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Series:
    run: Path
    method: str
    steps: list[int]
    elapsed: list[float]  # training seconds at each step
    values: list[float]


@dataclass(frozen=True)
class PaperFinal:
    """A final number the paper publishes for runs of one dataset, method and architecture."""

    metric_prefix: str  # is_ matches is_50k, is_1000, ...
    dataset: str
    method: str
    arch: Optional[str]  # None: any architecture
    value: float
    label: str


PAPER_FINAL = [
    PaperFinal("is_", "cifar10", "wgan_gp", "resnet_cifar", 7.86, "paper, Table 3: WGAN-GP ResNet 7.86 (final)"),
    PaperFinal("is_", "cifar10", "gan", None, 6.16, "paper, Table 3: DCGAN 6.16 (final)"),
]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines log; a line cut short by a kill mid-append is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_series(run: Path, metric: str, negate: bool = False) -> Optional[Series]:
    """The metric's values in the run's logs, by step; None where the run logged none."""
    files = RunFiles(run)
    records = [r for path in (files.metrics, files.train_stats) for r in read_lines(path)
               if is_number(r.get(metric)) and is_number(r.get("step")) and is_number(r.get("elapsed"))]
    if not records:
        return None
    records.sort(key=lambda r: r["step"])
    sign = -1.0 if negate else 1.0
    return Series(run, run_method(files), [int(r["step"]) for r in records], [float(r["elapsed"]) for r in records],
                  [sign * float(r[metric]) for r in records])


def run_config(files: RunFiles) -> Any:
    if not files.config.is_file():
        raise CurvesError(f"{files.dir} has no config.yaml: not a run directory")
    return OmegaConf.load(files.config)


def run_method(files: RunFiles) -> str:
    return method_name(run_config(files))


def run_dirs(paths: list[Path]) -> list[Path]:
    """Each path as a run, or the runs of a study directory."""
    runs = []
    for path in paths:
        if not path.is_dir():
            raise CurvesError(f"{path} is not a directory")
        runs += [path] if is_job_dir(path) else find_job_dirs(path)
    if not runs:
        raise CurvesError(f"no runs under {', '.join(map(str, paths))}: looked for directories holding config.yaml")
    return runs


def available_metrics(runs: list[Path]) -> list[str]:
    files = [RunFiles(run) for run in runs]
    keys = {key for f in files for path in (f.metrics, f.train_stats) for r in read_lines(path) for key in r}
    return sorted(keys - {"step", "elapsed"})


def collect(paths: list[Path], metric: str, negate: bool = False) -> list[Series]:
    """One series per run that logged the metric, in the order of the runs' directories."""
    runs = run_dirs(paths)
    series = [s for run in runs if (s := run_series(run, metric, negate)) is not None]
    if not series:
        raise CurvesError(f"no run logged {metric!r}; logged: {', '.join(available_metrics(runs)) or 'nothing'}")
    return series


def paper_finals(series: list[Series], metric: str) -> dict[str, PaperFinal]:
    """Method -> the paper's final number for its runs, where the paper publishes one."""
    found = {}
    for s in series:
        cfg = run_config(RunFiles(s.run))
        for paper in PAPER_FINAL:
            if (metric.startswith(paper.metric_prefix) and cfg.dataset.name == paper.dataset
                    and s.method == paper.method and paper.arch in (None, cfg.arch.name)):
                found[s.method] = paper
    return found


def time_axis(series: list[Series]) -> tuple[float, str]:
    """A divisor and unit that keep the time axis readable."""
    longest = max(max(s.elapsed) for s in series)
    return (3600.0, "hours") if longest > 2 * 3600 else (60.0, "minutes") if longest > 120 else (1.0, "seconds")


class YScale(Enum):
    """The value axis: `symlog` (linear near zero, logarithmic beyond) keeps the other runs readable
    beside one whose values ran off by orders of magnitude, of either sign."""

    linear = "linear"
    log = "log"
    symlog = "symlog"

    def __str__(self) -> str:  # as argparse shows the choices
        return self.value


def plot(series: list[Series], metric: str, negate: bool, finals: dict[str, PaperFinal],
         yscale: YScale = YScale.linear) -> Any:
    """The two-panel figure: against generator iterations (left) and training time (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg without pyplot's global backend
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    by_steps, by_time = figure.subplots(1, 2, sharey=True)
    divisor, unit = time_axis(series)
    methods = sorted({s.method for s in series})
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    label = f"-{metric}" if negate else metric
    for s in series:
        runs = sum(other.method == s.method for other in series)
        first = next(other for other in series if other.method == s.method) is s
        legend = (s.method if runs == 1 else f"{s.method} ({runs} runs)") if first else None
        by_steps.plot(s.steps, s.values, color=colours[s.method], label=legend, linewidth=1.2)
        by_time.plot([t / divisor for t in s.elapsed], s.values, color=colours[s.method], linewidth=1.2)
    for method, paper in finals.items():
        for axes in (by_steps, by_time):
            axes.axhline(paper.value, color=colours[method], linestyle="--", linewidth=1,
                         label=paper.label if axes is by_steps else None)
    by_steps.set(xlabel="generator iterations", ylabel=label, yscale=yscale.value)  # shared by both panels
    by_time.set(xlabel=f"training time ({unit})")
    for axes in (by_steps, by_time):
        axes.grid(alpha=0.3)
    by_steps.legend(fontsize=8)
    figure.suptitle(f"{label} against generator iterations and training time")
    figure.tight_layout()
    return figure


def save(figure: Any, path: Path) -> None:
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120))


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wgan-curves", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories, or study directories holding runs")
    parser.add_argument("--metric", required=True,
                        help="a key of metrics.jsonl or train.jsonl, e.g. is_1000, w1, critic_loss, wasserstein")
    parser.add_argument("--negate", action="store_true", help="plot minus the metric (Figure 5a: -critic_loss)")
    parser.add_argument("--out", type=Path, help="the PNG to write (default: curves_<metric>.png in the one "
                                                 "directory given; required with several)")
    parser.add_argument("--yscale", type=YScale, choices=list(YScale), default=YScale.linear,
                        help="the value axis (default: linear; symlog where a diverged run dwarfs the others)")
    add_no_log_argument(parser)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.out is None and len(args.dirs) > 1:
            raise CurvesError("several directories: say where the figure goes with --out PATH.png")
        out = args.out or args.dirs[0] / f"curves_{args.metric}.png"
        series = collect(args.dirs, args.metric, args.negate)
        figure = plot(series, args.metric, args.negate, paper_finals(series, args.metric), args.yscale)
    except CurvesError as error:
        print(f"wgan-curves: error: {error}", file=sys.stderr)
        return 2
    try:
        save(figure, out)
    except DiskFull as error:
        print(f"wgan-curves: error: {error}", file=sys.stderr)
        return 1
    last = {f"{s.method}: {s.run}": s.values[-1] for s in series}
    for s in series:
        print(f"{s.method}: {s.run}: {len(s.steps)} points, last {s.values[-1]:.4g} at iteration {s.steps[-1]}")
    print(f"wrote {out}")
    print(log_figure_run(runs_figure_destination([s.run for s in series], args.no_log), out_dir=out.parent,
                         name=out.stem, figure=out,
                         config={"metric": args.metric, "negate": args.negate, "yscale": args.yscale.value,
                                "runs": [str(s.run) for s in series]},
                         summary={"last": last}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the critic overfit? (the paper's Figure 5b, "Meaningful loss curves and detecting overfitting").

Every `eval.validation_every` iterations, the critic's loss (with the penalty, as training computes
it) and its Wasserstein estimate, mean D(real) - mean D(fake), on images it trains on and on held-out
images of the same data (`dataset.subset` keeps the rest aside), against the same generated samples.
A critic that generalizes scores both sets alike; one that overfits rates its training images above
the held-out ones, and its loss on them falls below theirs: the two curves diverge.

Both sets are scored alike and the same way at every validation: `eval.validation_samples` real
images of each and as many generated ones, from a generator of their own seeded by the run's seed
(the training RNG stream is left alone), in batches of `train.batch_size` (batch norm in a network
normalizes each batch by its own statistics, as in training, and keeps its running ones), with the
penalty's interpolation weights seeded too. The official gan_mnist.py scores its dev set the same way
every 100 iterations ('dev disc cost', in batches, with the penalty).

`python -m wgan.overfitting DIR...` draws the negative critic loss of every run below the folders,
on training and on validation images, one panel per run, prints how far they diverged, and logs the
figure to W&B beside the runs (a run of job type `figure` in their project and group, the gap at each
validation as its summary) unless they ran with `logger=none` or `--no-log` is given.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from wgan.arch.base import Generator
from wgan.dataset.kind import Dataset
from wgan.logger import add_no_log_argument, log_figure_run, runs_figure_destination
from wgan.sampling import sampling_mode
from wgan.schema import ConfigError

SETS = ("training", "validation")
LOSS, ESTIMATE = "critic_loss_{}_images", "wasserstein_{}_images"  # the names in metrics.jsonl
FIGURE = "overfitting.png"


class CriticValidation:
    """The critic's loss and Wasserstein estimate on training and on held-out images."""

    def __init__(self, cfg: DictConfig, dataset: Dataset, loss: Any, lipschitz: Any) -> None:
        held_out = getattr(dataset, "held_out", None)
        if held_out is None:
            raise ConfigError(f"eval.validation_every={cfg.eval.validation_every} needs held-out images: set "
                              "dataset.subset to the number of training images (image datasets; the rest are held out)")
        self.every = cfg.eval.validation_every
        self.images = {"training": dataset, "validation": held_out}
        self.samples, self.batch_size, self.seed = cfg.eval.validation_samples, cfg.train.batch_size, cfg.seed
        self.loss, self.lipschitz = loss, lipschitz

    @classmethod
    def configured(cls, cfg: DictConfig, dataset: Dataset, loss: Any, lipschitz: Any) -> CriticValidation | None:
        """The run's validation, or None without `eval.validation_every`."""
        return None if cfg.eval.validation_every is None else cls(cfg, dataset, loss, lipschitz)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def __call__(self, critic: nn.Module, generator: Generator) -> dict[str, float]:
        device = next(critic.parameters()).device
        rng = torch.Generator().manual_seed(self.seed)
        noise = generator.sample_noise(self.samples, device, rng)
        with torch.no_grad(), sampling_mode(generator, batch_stats=True):
            fake = torch.cat([generator(batch) for batch in noise.split(self.batch_size)])
        values = {}
        for name, images in self.images.items():
            loss, estimate = self.critic_loss(critic, images.sample(self.samples, device, rng), fake)
            values[LOSS.format(name)], values[ESTIMATE.format(name)] = loss, estimate
        return values

    def critic_loss(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
        """The critic loss with its penalty and the Wasserstein estimate, averaged over the batches."""
        loss = estimate = 0.0
        devices = [real.device] if real.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), sampling_mode(critic, batch_stats=True):
            torch.manual_seed(self.seed)  # the penalty's interpolates: the same at every validation
            for real_batch, fake_batch in zip(real.split(self.batch_size), fake.split(self.batch_size)):
                with torch.no_grad():
                    d_real, d_fake = critic(real_batch), critic(fake_batch)
                penalty, _ = self.lipschitz.penalty(critic, real_batch, fake_batch)
                batch_loss = self.loss.critic(d_real, d_fake) + (0.0 if penalty is None else penalty.detach())
                share = len(real_batch) / len(real)
                loss += float(batch_loss) * share
                estimate += float(d_real.mean() - d_fake.mean()) * share
        return loss, estimate


# --- the figure --------------------------------------------------------------------------------


def read_curves(metrics_file: Path) -> dict[str, list[float]]:
    """step and the negative critic loss on each set, from the validation lines of a metrics.jsonl."""
    lines = []
    for text in metrics_file.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut short by a kill mid-append (redone on resume)
            continue
    lines = [line for line in lines if isinstance(line, dict) and LOSS.format(SETS[0]) in line]
    curves = {"step": [line["step"] for line in lines]}
    for name in SETS:
        curves[name] = [-line[LOSS.format(name)] for line in lines]
    return curves


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Each run's method (results.json), or its folder's name; both where methods repeat."""
    def method(run_dir: Path) -> str | None:
        results = run_dir / "results.json"
        return json.loads(results.read_text()).get("method") if results.is_file() else None

    methods = [method(run_dir) for run_dir in run_dirs]
    if None not in methods and len(set(methods)) == len(methods):
        return methods
    return [f"{m} ({d.name})" if m else d.name for m, d in zip(methods, run_dirs)]


def plot(curves: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """A column per run: the negative critic loss on training and on validation images, and below
    it their difference (where the two curves are too close to tell apart at the loss's scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(curves), 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(curves), squeeze=False, sharex="col")
    for (top, bottom), (label, curve) in zip(axes.T, curves.items()):
        for name in SETS:
            top.plot(curve["step"], curve[name], label=f"{name} images")
        top.set(title=label, ylabel="negative critic loss")
        top.legend()
        bottom.plot(curve["step"], gaps(curve), color="black")
        bottom.axhline(0, color="gray", linewidth=0.5)
        bottom.set(xlabel="generator iterations", ylabel="training - validation")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def gaps(curve: dict[str, list[float]]) -> list[float]:
    """Training minus validation negative critic loss at each validation: positive where the
    critic rates its training images above held-out ones."""
    return [train - valid for train, valid in zip(curve["training"], curve["validation"])]


def divergence(curve: dict[str, list[float]]) -> str:
    """How far the two curves are apart at the first and at the last validation."""
    gap = gaps(curve)
    return (f"negative critic loss, training - validation images: {gap[0]:+.4g} at iteration {curve['step'][0]}, "
            f"{gap[-1]:+.4g} at iteration {curve['step'][-1]} (training {curve['training'][0]:.4g} -> "
            f"{curve['training'][-1]:.4g}, validation {curve['validation'][0]:.4g} -> {curve['validation'][-1]:.4g})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgan.overfitting", description=(
        "Plot the negative critic loss on training and on validation images (eval.validation_every) of every "
        f"run below the folders, one panel per run, into {FIGURE} in the first folder (or --out)."))
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories or study directories holding them")
    parser.add_argument("--out", type=Path, help=f"the PNG to write (default: <first dir>/{FIGURE})")
    add_no_log_argument(parser)
    args = parser.parse_args(argv)
    files = sorted({f for d in args.dirs for f in ([d / "metrics.jsonl"] if (d / "metrics.jsonl").is_file()
                                                     else d.rglob("metrics.jsonl"))})
    runs = {label: f.parent for label, f in zip(run_labels([f.parent for f in files]), files)}
    curves = {label: curve for label, run in runs.items() if (curve := read_curves(run / "metrics.jsonl"))["step"]}
    if not curves:
        parser.error(f"no run below {', '.join(map(str, args.dirs))} logged validation losses (eval.validation_every)")
    for label, curve in curves.items():
        finite = all(math.isfinite(v) for name in SETS for v in curve[name])
        print(f"{label}: {divergence(curve)}" + ("" if finite else " (some values are not finite)"))
    path = plot(curves, args.out or args.dirs[0] / FIGURE)
    print(f"figure: {path}")
    print(log_figure_run(runs_figure_destination([runs[label] for label in curves], args.no_log), out_dir=path.parent,
                         name=path.stem, figure=path,
                         config={"runs": {label: str(runs[label]) for label in curves}},
                         summary={"gap": {label: dict(zip(map(str, c["step"]), gaps(c))) for label, c in curves.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

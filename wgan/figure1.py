"""The paper's Figure 1 as commands, each writing a PNG and the numbers it measured (JSON) into
`--out`, printing those numbers, and logging the figure to W&B (the config's `logger`):

    python -m wgan.figure1 surfaces [key=value ...]  # 1a: critic value surfaces, generator fixed at data + N(0, 1)
    python -m wgan.figure1 layers [key=value ...]    # 1b left: the critic loss's gradient norm per layer
    python -m wgan.figure1 weights [key=value ...]   # 1b right: critic weight histograms, clipping vs penalty

Every panel's data, networks, Lipschitz method, optimizer and schedule are the project's config,
composed as `python run.py` composes it, with the figure's own choices (below) and then the
command line's key=value overrides, which apply to every panel.

`surfaces` trains critics alone, against the generator `gan_toy.py` holds fixed for the paper's
plots (FIXED_GENERATOR: the real batch plus N(0, 1) noise), for the `train.iterations` x
`train.n_critic` critic steps a run would take, without batch norm, and draws their contours on
gan_toy.py's fixed range. `layers` and `weights` train full WGANs on the Swiss roll with 12-hidden-
layer MLPs (`train.critic_diagnostics=true`) in `<out>/runs/`, one run directory each: a second
command finds them finished and only draws.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from wgan.arch.base import Norm
from wgan.config import LRDecay, build, build_dataset, compose_config, validate
from wgan.critic_diagnostics import LAYER_METRIC, critic_weights, fraction_at_bound
from wgan.dataset.kind import Dataset
from wgan.device import resolve_device
from wgan.figures import GRID_POINTS, critic_surface, figure
from wgan.files import RunFiles, Status
from wgan.lipschitz import input_gradient_norms
from wgan.logger import FigureDestination, log_figure_run
from wgan.optimizer import build_critic_optimizer, build_schedule
from wgan.sampling import read_checkpoint
from wgan.schema import ConfigError
from wgan.study import limit_threads
from wgan.train import run
from wgan.update import critic_update

log = logging.getLogger(__name__)

TOY_DATASETS = ("toy_8gaussians", "toy_25gaussians", "toy_swissroll")  # Figure 1a's columns
# The penalty of Figure 1 weighs the paper's lambda = 10 (Algorithm 1), not gan_toy.py's speed choice of
# 0.1 that the toy recipe takes: a critic at the optimum of E[D(real)] - E[D(fake)] - lambda E[(|g| - 1)^2]
# has |g| near 1 + W / (2 lambda), about 5 against data + N(0, 1) with lambda = 0.1.
PENALTY = ["lipschitz=gp", "lipschitz.lam=10"]
# Figure 1a's rows: (title, the rows' config choices).
SURFACE_METHODS = {"clip": ("weight clipping", ["lipschitz=clip"]), "gp": ("gradient penalty", PENALTY)}
RANGE = 3.0  # gan_toy.py draws the critic on [-RANGE, RANGE]^2 (N_POINTS = figures.GRID_POINTS = 128)
MEASURED_POINTS = 1000  # real and as many fixed-generator points on which the gradient norms are measured
# Figure 1b: a WGAN on the Swiss roll, 12-layer ReLU MLPs (arch.depth counts hidden layers: 13
# weight layers, the 13 points of the paper's plot), the layers looked into at every evaluation.
SWISSROLL = ["dataset=toy_swissroll", "arch.depth=12", "train.critic_diagnostics=true", "metrics=none"]
BOUNDS = (0.1, 0.01, 0.001)  # Figure 1b left's clipping thresholds c
HISTOGRAM_BOUND = 0.01  # Figure 1b right compares the clipping run of this c with the penalty's


def fixed_generator(real: torch.Tensor) -> torch.Tensor:
    """gan_toy.py's FIXED_GENERATOR: the real batch plus unit-variance Gaussian noise."""
    return real + torch.randn_like(real)


def train_fixed_critic(cfg: DictConfig) -> tuple[torch.nn.Module, Any]:
    """A critic trained alone against the fixed generator for `train.iterations` x `train.n_critic`
    steps, with the config's loss, Lipschitz method, optimizer and schedule; no batch norm whatever
    the architecture (the paper's Figure 1a). Returns it with its dataset."""
    validate(cfg)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    dataset = build_dataset(cfg)
    lipschitz, loss = build(cfg.lipschitz), build(cfg.loss)
    critic = lipschitz.wrap_critic(build(cfg.arch).critic(dataset.shape, Norm.none)).to(device)
    optimizer = build_critic_optimizer(cfg.optimizer, critic)
    schedule = build_schedule(LRDecay(cfg.train.lr_decay).value, optimizer, cfg.train.iterations)
    for _ in range(cfg.train.iterations):
        for _ in range(cfg.train.n_critic):
            real = dataset.sample(cfg.train.batch_size, device)
            critic_update(critic, loss, lipschitz, optimizer, real, fixed_generator(real))
        schedule.step()
    return critic, dataset


def gradient_norms(critic: torch.nn.Module, dataset: Dataset, seed: int) -> dict[str, float]:
    """The critic's mean input-gradient norm on real points and on the fixed generator's."""
    device = next(critic.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    real = dataset.sample(MEASURED_POINTS, "cpu", rng)
    fake = real + torch.randn(real.shape, generator=rng)
    return {f"grad_norm_{name}": float(input_gradient_norms(critic, points.to(device), create_graph=False).mean())
            for name, points in (("real", real), ("fake", fake))}


def surfaces(out: Path, overrides: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """Figure 1a: a critic per toy dataset and Lipschitz method, its contours in a 2 x 3 panel."""
    fig = figure(12, 8)
    axes = fig.subplots(len(SURFACE_METHODS), len(TOY_DATASETS))
    numbers: dict[str, Any] = {}
    for row, (method, (title, choices)) in enumerate(SURFACE_METHODS.items()):
        for col, name in enumerate(TOY_DATASETS):
            cfg = compose_config([f"dataset={name}", *choices, *overrides])
            critic, dataset = train_fixed_critic(cfg)
            numbers[f"{method}/{name}"] = measured = gradient_norms(critic, dataset, cfg.seed)
            log.info("%s on %s: %s", title, name, measured)
            surface = critic_surface(critic, RANGE, next(critic.parameters()).device)
            real = dataset.sample(MEASURED_POINTS, "cpu", torch.Generator().manual_seed(cfg.seed))
            ax = axes[row, col]
            ax.contour(surface.numpy(), levels=15, extent=(-RANGE, RANGE, -RANGE, RANGE), cmap="viridis")
            ax.scatter(real[:, 0], real[:, 1], s=4, c="orange", marker="+", linewidths=0.5)
            ax.set(xlim=(-RANGE, RANGE), ylim=(-RANGE, RANGE), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{title}, {name.removeprefix('toy_')}\n|grad| real {measured['grad_norm_real']:.3g}, "
                         f"fake {measured['grad_norm_fake']:.3g}", fontsize=9)
    fig.suptitle(f"Critic value surfaces, generator fixed at data + N(0, 1) ({GRID_POINTS}x{GRID_POINTS} grid)")
    fig.tight_layout()
    return save(fig, out / "figure1a.png"), numbers


def swissroll_runs(out: Path, overrides: Sequence[str], labels: Sequence[str]) -> dict[str, DictConfig]:
    """Figure 1b's runs (trained, resumed, or found finished in <out>/runs/<label>): {label: config}.
    A label is `clip<c>` or `gp`."""
    configs = {}
    for label in labels:
        method = ["lipschitz=clip", f"lipschitz.bound={label.removeprefix('clip')}"] if label != "gp" else PENALTY
        cfg = compose_config([*SWISSROLL, *method, *overrides])
        results = run(cfg, out / "runs" / label)
        if results["status"] != Status.complete:
            raise RuntimeError(f"the {label} run in {out / 'runs' / label} ended {results['status']}: "
                               f"{results.get('reason') or results.get('signal') or ''}")
        configs[label] = cfg
    return configs


def clip_label(bound: float) -> str:
    return f"clip{bound:g}"


def last_layer_norms(run_dir: Path) -> list[float]:
    """The layer gradient norms of a run's last evaluation, from layer 1 (the output's) on."""
    last = json.loads(RunFiles(run_dir).metrics.read_text().splitlines()[-1])
    return [last[LAYER_METRIC.format(k)] for k in range(1, 1 + sum(key.startswith("layer_grad_norm_") for key in last))]


def layer_trend(norms: Sequence[float]) -> dict[str, Any]:
    """The least-squares slope of log10(norm) against the layer number (per layer towards the input)
    and the largest norm over the smallest, over the layers whose norm is not zero: a tiny clipped
    critic's gradient underflows float32 to exactly zero a few layers below the output, and the
    first layer where it does is reported."""
    norms = np.asarray(norms)
    layer_numbers = np.arange(1, len(norms) + 1)
    seen = norms > 0
    return {"norms": norms.tolist(),
            "log10_slope": float(np.polyfit(layer_numbers[seen], np.log10(norms[seen]), 1)[0]),
            "max_over_min": float(norms[seen].max() / norms[seen].min()),
            "zero_from_layer": int(layer_numbers[~seen][0]) if not seen.all() else None}


def layers(out: Path, overrides: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """Figure 1b left: the critic loss's gradient norm at each layer, clipping at each c and the penalty."""
    labels = [*map(clip_label, BOUNDS), "gp"]
    swissroll_runs(out, overrides, labels)
    fig = figure(6, 4.5)
    ax = fig.subplots()
    numbers: dict[str, Any] = {}
    for label in labels:
        numbers[label] = trend = layer_trend(last_layer_norms(out / "runs" / label))
        norms = np.array(trend["norms"])
        ax.plot(np.arange(1, len(norms) + 1), np.where(norms > 0, norms, np.nan), marker="o",
                label="gradient penalty" if label == "gp" else f"c = {label[4:]}")
    ax.set(yscale="log", xlabel="critic layer (input side on the left)", ylabel="gradient norm (log scale)",
           title="Gradient of the critic loss per layer, Swiss roll")
    ax.invert_xaxis()  # the paper draws layer 13 (the input side) on the left
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out / "figure1b_layers.png"), numbers


def weights(out: Path, overrides: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """Figure 1b right: histograms of the critic's weights, clipping (c = HISTOGRAM_BOUND) and penalty."""
    labels = {clip_label(HISTOGRAM_BOUND): "weight clipping", "gp": "gradient penalty"}
    configs = swissroll_runs(out, overrides, list(labels))
    fig = figure(10, 4)
    numbers: dict[str, Any] = {}
    for ax, (label, title) in zip(fig.subplots(1, 2), labels.items()):
        values = critic_weights(load_critic(configs[label], out / "runs" / label))
        fraction = fraction_at_bound(values, HISTOGRAM_BOUND)
        numbers[label] = {"fraction_within_1pct_of_c": fraction, "weights": values.numel(), "bound": HISTOGRAM_BOUND}
        ax.hist(values.numpy(), bins=100, color="tab:blue")
        for edge in (-HISTOGRAM_BOUND, HISTOGRAM_BOUND):
            ax.axvline(edge, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set(title=f"{title}: {fraction:.2%} within 1% of ±{HISTOGRAM_BOUND:g}", xlabel="weight", ylabel="count")
        ax.locator_params(axis="x", nbins=5)
    fig.tight_layout()
    return save(fig, out / "figure1b_weights.png"), numbers


def load_critic(cfg: DictConfig, run_dir: Path) -> torch.nn.Module:
    """A finished run's critic, built from its config and loaded from its last checkpoint."""
    state = read_checkpoint(RunFiles(run_dir))
    lipschitz = build(cfg.lipschitz)
    critic = lipschitz.wrap_critic(build(cfg.arch).critic(build_dataset(cfg).shape, lipschitz.critic_norm))
    critic.load_state_dict(state["critic"])
    return critic


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


COMMANDS = {"surfaces": surfaces, "layers": layers, "weights": weights}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m wgan.figure1", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS))
    parser.add_argument("overrides", nargs="*", help="config overrides for every panel, as run.py takes them")
    parser.add_argument("--out", type=Path, default=Path("outputs/figure1"), help="where the figure, numbers and runs go")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    cfg = compose_config(args.overrides)
    validate(cfg)  # a wrong override stops before the first panel trains
    limit_threads(cfg.threads)
    path, numbers = COMMANDS[args.command](args.out, args.overrides)
    path.with_suffix(".json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))
    print(f"figure: {path}\nnumbers: {path.with_suffix('.json')}")
    print(log_figure_run(FigureDestination(build(cfg.logger), cfg.study), out_dir=args.out,
                         name=f"figure1-{args.command}", figure=path,
                         config={"command": args.command, "overrides": list(args.overrides)}, summary={"numbers": numbers}))
    return numbers


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:  # a wrong override: its message, as run.py gives it, not a traceback
        sys.exit(f"invalid config: {error}")

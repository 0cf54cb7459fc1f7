"""The paper's Figure 1 (`python -m wgan.figure1`) and the critic diagnostics it reads, on tiny
networks: the numbers the paper's claims rest on, the files, and what reaches W&B."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from wandb_records import finished_run
from wgan import figure1
from wgan.critic_diagnostics import fraction_at_bound, layer_gradient_norms
from wgan.loss import WassersteinLoss

TINY = ["threads=1", "arch.width=32", "train.batch_size=64", "train.iterations=20", "eval.every=20", "ckpt.every=20"]


def test_layer_gradient_norms_follow_the_chain_rule_from_the_output_layer():
    critic = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Flatten(0))
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    norms = layer_gradient_norms(critic, WassersteinLoss().critic, real, fake)
    assert list(norms) == ["layer_grad_norm_01", "layer_grad_norm_02"]
    # L = mean D(fake) - mean D(real): at the output layer's input every sample's gradient is
    # -+ W2 / n, so the batch's norm is |W2| sqrt(2n) / n.
    w2 = critic[2].weight.detach()
    assert norms["layer_grad_norm_01"] == pytest.approx(float(w2.norm()) * (2 * 8) ** 0.5 / 8, rel=1e-5)
    x = torch.cat([real, fake]).requires_grad_(True)
    signs = torch.cat([-torch.ones(8), torch.ones(8)]) / 8
    (grad,) = torch.autograd.grad((critic(x) * signs).sum(), x)
    assert norms["layer_grad_norm_02"] == pytest.approx(float(grad.norm()), rel=1e-5)
    assert all(p.grad is None for p in critic.parameters())  # a look, not a training step


def test_fraction_at_bound_counts_weights_within_one_percent_of_either_end():
    weights = torch.tensor([-0.01, 0.00995, 0.005, 0.0102, -0.0098])
    assert fraction_at_bound(weights, 0.01) == pytest.approx(2 / 5)


@pytest.mark.slow
def test_figure1a_penalty_critics_reach_unit_gradients_and_clipping_stays_far_below(tmp_path, offline_wandb):
    out = tmp_path / "fig"
    numbers = figure1.main(["surfaces", "--out", str(out), *TINY])
    assert set(numbers) == {f"{m}/{d}" for m in ("clip", "gp") for d in figure1.TOY_DATASETS}
    for dataset in figure1.TOY_DATASETS:
        for where in ("real", "fake"):
            assert 0.8 < numbers[f"gp/{dataset}"][f"grad_norm_{where}"] < 1.25
            assert numbers[f"clip/{dataset}"][f"grad_norm_{where}"] < 1e-3
    assert Image.open(out / "figure1a.png").size == (1200, 800)
    assert json.loads((out / "figure1a.json").read_text()) == numbers
    (log,) = out.glob("figures_wandb/wandb/offline-run-*/run-*.wandb")
    logged = finished_run(log)
    assert logged["run"]["name"] == "figure1-surfaces" and logged["run"]["job_type"] == "figure"
    assert [row.get("figure1a/_type") for row in logged["history"]] == ["image-file"]
    assert logged["summary"]["numbers"]["gp/toy_swissroll"] == pytest.approx(numbers["gp/toy_swissroll"])


@pytest.mark.slow
def test_figure1b_clipping_explodes_or_vanishes_across_layers_the_penalty_stays_flat(tmp_path):
    out = tmp_path / "fig"
    numbers = figure1.main(["layers", "--out", str(out), "logger=none", *TINY])
    for c in figure1.BOUNDS:
        # Every clipped weight at +-c: each ReLU layer scales the gradient by about c sqrt(width / 2)
        # (measured: -0.40, -1.48, -2.42 per layer at width 32).
        assert numbers[figure1.clip_label(c)]["log10_slope"] == pytest.approx(math.log10(c * (32 / 2) ** 0.5), abs=0.2)
    assert numbers["gp"]["max_over_min"] < 4 and abs(numbers["gp"]["log10_slope"]) < 0.1  # measured: 2.4, -0.01
    assert Image.open(out / "figure1b_layers.png").size == (600, 450)
    rows = [json.loads(line) for line in (out / "runs" / "gp" / "metrics.jsonl").read_text().splitlines()]
    assert [k for k in rows[-1] if k.startswith("layer_grad")] == [f"layer_grad_norm_{k:02d}" for k in range(1, 14)]
    assert rows[-1]["step"] == 20 and numbers["gp"]["norms"][0] == rows[-1]["layer_grad_norm_01"]

    weights = figure1.main(["weights", "--out", str(out), "logger=none", *TINY])  # the same runs, drawn
    assert weights["clip0.01"]["fraction_within_1pct_of_c"] > 0.5  # measured: 0.97
    assert weights["gp"]["fraction_within_1pct_of_c"] < 0.01  # measured: 0.0005
    assert Image.open(out / "figure1b_weights.png").size == (1000, 400)


@pytest.mark.slow
def test_at_the_papers_width_the_gradient_under_clipping_at_0_1_explodes_towards_the_input(tmp_path):
    """Figure 1b left's rising c = 0.1 curve: at width 512 a clipped ReLU layer scales the gradient
    by up to 0.1 sqrt(512 / 2) = 1.6. Measured at 60 iterations (40 s): log10 slope +0.080 per layer,
    rising at every layer from the output's 0.13 to 1.39 at layer 12 (the README's +0.15 at 100)."""
    overrides = ["threads=1", "logger=none", "train.iterations=60", "eval.every=60", "ckpt.every=60"]
    figure1.swissroll_runs(tmp_path, overrides, [figure1.clip_label(0.1)])
    trend = figure1.layer_trend(figure1.last_layer_norms(tmp_path / "runs" / "clip0.1"))
    hidden = trend["norms"][:12]  # layers 1 (the output's) to 12; layer 13 takes the 2-D data
    assert trend["log10_slope"] > 0.04 and hidden[-1] > 5 * hidden[0]
    assert all(deeper > shallower for shallower, deeper in zip(hidden, hidden[1:]))


@pytest.mark.slow
def test_critic_diagnostics_reach_wandb_as_lines_per_layer_and_a_weight_histogram(train_tiny, tmp_path, offline_wandb):
    train_tiny("logger=wandb", "train.critic_diagnostics=true", "lipschitz=clip", "metrics=none")
    (log,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    history = finished_run(log)["history"]
    keys = set().union(*history)
    assert {"eval/layer_grad_norm_01", "eval/layer_grad_norm_04"} <= keys and "eval/layer_grad_norm_05" not in keys
    histograms = [row for row in history if "critic_weights/values" in row]
    assert len(histograms) == 2 and histograms[-1]["critic_weights/_type"] == "histogram"  # one per evaluation
    assert len(histograms[-1]["critic_weights/bins"]) == 64 + 1
    assert sum(histograms[-1]["critic_weights/values"]) == 2 * 32 + 32 * 32 * 2 + 32  # every weight, no bias


@pytest.mark.slow
def test_a_wrong_override_stops_the_figure_command_before_anything_trains(tmp_path):
    out = tmp_path / "fig"
    done = subprocess.run([sys.executable, "-m", "wgan.figure1", "surfaces", "--out", str(out), "train.n_critic=0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "invalid config: train.n_critic=0 is out of range: must be >= 1"
    assert not out.exists()

"""The optimizers as the paper's code ran them: TF1's RMSProp, and Appendix B's weight decay on
normalized critics."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from torch import nn

from wgan.config import compose_config, validate
from wgan.files import RunFiles
from wgan.optimizer import build_optimizers, tf1_rmsprop
from wgan.schema import ConfigError
from wgan.speed import restore, snapshot
from wgan.train import Trainer


def tf1_rmsprop_reference(w: np.ndarray, grads: list[np.ndarray], lr: float, weight_decay: float) -> np.ndarray:
    """TF1's tf.train.RMSPropOptimizer(lr) with its defaults (decay 0.9, momentum 0, epsilon 1e-10,
    accumulator starting at ones), the gradient of the loss plus weight_decay/2 ||w||^2."""
    ms = np.ones_like(w)
    for g in grads:
        g = g + weight_decay * w
        ms = 0.9 * ms + 0.1 * g**2
        w = w - lr * g / np.sqrt(ms + 1e-10)
    return w


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_rmsprop_takes_tf1_steps(weight_decay):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    # Gradients of very different sizes: where TF1's and torch's RMSProp differ most.
    grads = [rng.normal(size=(3, 4)) * 10.0 ** rng.integers(-6, 2, size=(3, 4)) for _ in range(20)]
    w = nn.Parameter(torch.tensor(w0))
    optimizer = tf1_rmsprop([w], lr=1e-2, alpha=0.9, eps=1e-10, weight_decay=weight_decay)
    for g in grads:
        w.grad = torch.tensor(g)
        optimizer.step()
    expected = tf1_rmsprop_reference(w0, grads, lr=1e-2, weight_decay=weight_decay)
    # The displacement, float64 throughout: torch's RMSprop misses it by a factor of ~40. eps
    # (1e-10 beside an average that stays above 0.1) cannot show here: its value is checked below.
    np.testing.assert_allclose(w.detach().numpy() - w0, expected - w0, rtol=1e-6, atol=0)


def test_weight_clipping_runs_tf1_rmsprop_by_default(tmp_path):
    cfg = compose_config(["lipschitz=clip", "device=cpu", "metrics=none", "logger=none"])
    trainer = Trainer(cfg, RunFiles(tmp_path))
    for optimizer in (trainer.parts.opt_g, trainer.parts.opt_d):
        assert type(optimizer).__name__ == "RMSpropTF"
        [group] = optimizer.param_groups
        settings = (group["lr"], group["alpha"], group["eps"], group["momentum"], group["centered"])
        assert settings == (5e-5, 0.9, 1e-10, 0, False)
        assert all(torch.equal(optimizer.state[p]["square_avg"], torch.ones_like(p)) for p in group["params"])


@pytest.mark.parametrize("option,target,lr", [("rmsprop_lsgan", "RMSpropTF", 1e-4), ("rmsprop_torch", "RMSprop", 5e-5)])
def test_the_other_rmsprop_options(option, target, lr):
    cfg = compose_config(["method=wgan_clip", f"optimizer={option}"])
    validate(cfg)
    _, optimizer = build_optimizers(cfg.optimizer, nn.Linear(2, 2), nn.Linear(2, 1))
    assert type(optimizer).__name__ == target and optimizer.param_groups[0]["lr"] == lr
    if option == "rmsprop_torch":
        assert (optimizer.param_groups[0]["alpha"], optimizer.param_groups[0]["eps"]) == (0.99, 1e-8)


def test_tf1_rmsprop_falls_back_from_fused_and_takes_capturable(caplog):
    cfg = compose_config(["optimizer=rmsprop"])
    with caplog.at_level(logging.WARNING):
        _, optimizer = build_optimizers(cfg.optimizer, nn.Linear(2, 2), nn.Linear(2, 1),
                                        {"fused": True, "capturable": True})
    assert "no fused optimizer here" in caplog.text
    assert type(optimizer).__name__ == "RMSpropTF"


def test_a_cuda_graph_warm_up_is_undone_to_the_accumulator_of_ones():
    """speed.restore zeroes optimizer state made since its snapshot; TF1's starts at ones, so it
    must exist before (wgan.optimizer.tf1_rmsprop makes it at construction)."""
    net = nn.Linear(3, 2)
    optimizer = tf1_rmsprop(net.parameters(), lr=1e-2, alpha=0.9, eps=1e-10, weight_decay=0.0)
    saved = snapshot([net, optimizer])
    net(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    restore([net, optimizer], saved)
    assert all(torch.equal(optimizer.state[p]["square_avg"], torch.ones_like(p)) for p in net.parameters())


# Appendix B's weight decay on normalized critics.

def critic(norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(1, 4, 3), nn.GroupNorm(1, 4)] if norm else [nn.Conv2d(1, 4, 3)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 1)).double()


def optimizers(overrides: list[str], generator: nn.Module, net: nn.Module):
    cfg = compose_config(overrides)
    validate(cfg)
    return build_optimizers(cfg.optimizer, generator, net)


@pytest.mark.parametrize("option", ["adam", "rmsprop"])
def test_a_normalized_critic_decays_exactly_its_weight_layers_weights(option, caplog):
    net, generator = critic(norm=True), nn.Linear(2, 2)
    with caplog.at_level(logging.INFO, logger="wgan.optimizer"):
        opt_g, opt_d = optimizers([f"optimizer={option}", "optimizer.normalized_critic_weight_decay=1e-3",
                                   "optimizer.critic.weight_decay=1e-4"], generator, net)
    conv, norm, linear = net[0], net[1], net[4]
    decayed, rest = opt_d.param_groups
    assert [id(p) for p in decayed["params"]] == [id(conv.weight), id(linear.weight)]
    assert [id(p) for p in rest["params"]] == [id(conv.bias), id(norm.weight), id(norm.bias), id(linear.bias)]
    # Both are coupled L2 terms: on the weights they add up.
    assert decayed["weight_decay"] == pytest.approx(1e-3 + 1e-4, rel=1e-12) and rest["weight_decay"] == 1e-4
    assert [g["weight_decay"] for g in opt_g.param_groups] == [0.0]
    assert "optimizer.normalized_critic_weight_decay=0.001: 2 critic weight tensors decayed" in caplog.text


def test_a_critic_without_normalization_gets_no_decay(caplog):
    net = critic(norm=False)
    with caplog.at_level(logging.INFO, logger="wgan.optimizer"):
        _, opt_d = optimizers(["optimizer.normalized_critic_weight_decay=1e-3"], nn.Linear(2, 2), net)
    [group] = opt_d.param_groups
    assert group["weight_decay"] == 0.0 and len(group["params"]) == len(list(net.parameters()))
    assert "0 critic weight tensors decayed (the critic has no normalization layers)" in caplog.text


def test_a_step_on_zero_gradients_moves_only_the_decayed_weights_by_adams_first_step():
    lam, lr, eps = 1e-3, 1e-4, 1e-8
    net = critic(norm=True)
    overrides = ["optimizer=adam", f"optimizer.critic.lr={lr}", f"optimizer.normalized_critic_weight_decay={lam}"]
    _, opt_d = optimizers(overrides, nn.Linear(2, 2), net)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt_d.step()
    for name, p in net.named_parameters():
        w = before[name]
        if name in ("0.weight", "4.weight"):
            # Adam's first step on g = lam w: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected to
            # g and g^2, so w moves by -lr g / (|g| + eps) (torch's eps, 1e-8), whatever the betas.
            g = lam * w
            torch.testing.assert_close(p.detach() - w, -lr * g / (g.abs() + eps), rtol=1e-9, atol=0)
        else:
            assert torch.equal(p.detach(), w), name


@pytest.mark.parametrize("option", ["adam", "rmsprop"])
def test_a_negative_normalized_critic_weight_decay_fails_naming_the_key(option):
    cfg = compose_config([f"optimizer={option}", "optimizer.normalized_critic_weight_decay=-1e-3"])
    message = "optimizer.normalized_critic_weight_decay=-0.001 is out of range: must be >= 0"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(cfg)

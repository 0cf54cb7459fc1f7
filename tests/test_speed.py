"""The speed levers: each one's CPU fallback (CI has no GPU) trains as the plain run does. On a
GPU machine, tests/gpu/ checks the levers themselves."""
from __future__ import annotations

import pytest

import logging

import torch

from wgan.config import compose_config
from wgan.files import RunFiles
from wgan.speed import restore, snapshot
from wgan.train import Trainer

# A normalized critic (layer norm under the penalty) exercises channels_last on norm layers too.
DCGAN = ["dataset=synthetic", "arch=dcgan", "arch.dim=8", "arch.d_norm_under_penalty=layer", "train.batch_size=8",
         "metrics=none", "logger=none"]


def losses(tmp_path, *overrides: str, iterations: int = 4) -> torch.Tensor:
    """The critic and generator losses of the first iterations. (Losses, not parameters: Adam's
    first steps move every parameter by about the learning rate whatever its gradient's size, so
    rounding flips the updates of parameters whose gradients are near zero.)"""
    trainer = Trainer(compose_config([*DCGAN, *overrides]), RunFiles(tmp_path))
    values = []
    for _ in range(iterations):
        stats = trainer.iteration()
        values += [float(stats["critic_loss"]), float(stats["generator_loss"])]
    return torch.tensor(values)


def test_cuda_graphs_fall_back_to_the_same_eager_training_on_the_cpu(tmp_path, caplog):
    plain = losses(tmp_path, "device=cpu")
    with caplog.at_level(logging.WARNING):
        graphed = losses(tmp_path, "device=cpu", "speed.cuda_graphs=true")
    assert "speed.cuda_graphs needs a CUDA device; training eagerly on cpu" in caplog.text
    assert torch.equal(plain, graphed)


@pytest.mark.slow
def test_channels_last_and_fused_optimizers_train_as_the_plain_run(tmp_path):
    plain = losses(tmp_path, "device=cpu")
    for lever in ("speed.channels_last=true", "speed.fused_optimizer=true"):
        assert torch.allclose(plain, losses(tmp_path, "device=cpu", lever), rtol=1e-4, atol=1e-5), lever


@pytest.mark.slow
def test_bf16_autocasts_the_networks_but_keeps_the_penalty_in_fp32(tmp_path):
    trainer = Trainer(compose_config([*DCGAN, "device=cpu", "speed.precision=bf16"]), RunFiles(tmp_path))
    stats = trainer.critic_step()
    assert stats["fake"].dtype == torch.float32 and stats["grad_norms"].dtype == torch.float32
    with trainer.parts.speed.autocast():
        assert trainer.parts.critic(stats["real"]).dtype == torch.bfloat16
    plain = losses(tmp_path, "device=cpu")
    assert torch.allclose(plain, losses(tmp_path, "device=cpu", "speed.precision=bf16"), rtol=0.05, atol=0.05)


def test_warm_up_steps_before_a_capture_are_undone_in_place():
    """What GraphedUpdate does around its capture, on the CPU: models and optimizer state go back
    to their values, in the same tensors; optimizer state created by the warm-up goes to zero."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    weight, before = net.weight, net.weight.detach().clone()
    saved = snapshot([net, opt])
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(net.weight, before)
    restore([net, opt], saved)
    assert net.weight is weight and torch.equal(net.weight, before)
    assert all(float(value.abs().sum()) == 0 for state in opt.state.values() for value in state.values())

"""What a run trains with, built from its config groups (each by `hydra.utils.instantiate`): the
dataset, the architecture's generator and critic, the Lipschitz method, the loss, the optimizers
and their learning-rate schedules, and the speed settings that place them on the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from wgan.config import LRDecay, build, build_dataset, method_name
from wgan.dataset.kind import DataKind, Dataset
from wgan.device import resolve_device
from wgan.optimizer import build_optimizers, build_schedule
from wgan.sampling import check_sampling_batches
from wgan.speed import Speed


@dataclass
class Components:
    cfg: DictConfig
    device: torch.device
    dataset: Dataset
    arch: Any
    lipschitz: Any
    loss: Any
    speed: Speed
    generator: Any  # a wgan.arch.base.Generator, placed by `speed`
    critic: torch.nn.Module  # wrapped by the Lipschitz method (e.g. spectral norm)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    schedules: list[Any]  # the generator's and the critic's learning-rate schedules

    @property
    def method(self) -> str:
        return method_name(self.cfg)

    @property
    def arch_choices(self) -> dict[str, Any]:
        """A drawn architecture's choices (arch=random); empty for a fixed one."""
        return getattr(self.arch, "choices", {})


def build_components(cfg: DictConfig) -> Components:
    """Every component of the run `cfg` describes, its networks initialized from `cfg.seed`."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    dataset = build_dataset(cfg)
    arch, lipschitz, loss = build(cfg.arch), build(cfg.lipschitz), build(cfg.loss)  # in the order seeds expect
    speed = Speed(cfg.speed, device, image=dataset.kind is DataKind.image)
    generator = speed.network(arch.generator(dataset.shape).to(device))
    check_sampling_batches(cfg.metrics, generator)
    critic = speed.network(lipschitz.wrap_critic(arch.critic(dataset.shape, lipschitz.critic_norm)).to(device))
    opt_g, opt_d = build_optimizers(cfg.optimizer, generator, critic, speed.optimizer_options())
    decay = LRDecay(cfg.train.lr_decay).value
    schedules = [build_schedule(decay, opt, cfg.train.iterations) for opt in (opt_g, opt_d)]
    return Components(cfg, device, dataset, arch, lipschitz, loss, speed, generator, critic,
                      opt_g, opt_d, schedules)

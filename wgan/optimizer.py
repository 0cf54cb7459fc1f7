"""The `optimizer` config group: one torch optimizer per network, built by `hydra.utils.instantiate`.

Each option sets `optimizer.generator` and `optimizer.critic`; either can be changed on its own,
e.g. `optimizer.critic.lr=3e-4`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hydra.utils import instantiate
from omegaconf import DictConfig
import torch
from torch import nn
from torch.optim.lr_scheduler import LinearLR, LRScheduler

from wgan.schema import bounded
from wgan.speed import make_optimizer


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = bounded(1e-4, gt=0)
    betas: list[float] = bounded([0.0, 0.9], ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)


@dataclass
class RMSpropConfig:
    _target_: str = "torch.optim.RMSprop"
    _partial_: bool = True
    lr: float = bounded(5e-5, gt=0)
    alpha: float = bounded(0.99, gt=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)


@dataclass
class AdamPairConfig:
    generator: AdamConfig = field(default_factory=AdamConfig)
    critic: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class RMSpropPairConfig:
    generator: RMSpropConfig = field(default_factory=RMSpropConfig)
    critic: RMSpropConfig = field(default_factory=RMSpropConfig)


def build_optimizers(cfg: DictConfig, generator: nn.Module, critic: nn.Module, options: dict[str, bool] | None = None):
    """(generator optimizer, critic optimizer) from `cfg.optimizer`; `options` are the speed
    settings' keyword arguments (fused, capturable)."""
    make_g = instantiate(cfg.generator, _convert_="all")
    make_d = instantiate(cfg.critic, _convert_="all")
    return make_optimizer(make_g, generator.parameters(), options or {}), make_optimizer(make_d, critic.parameters(), options or {})


def build_schedule(decay: str, optimizer: torch.optim.Optimizer, iterations: int) -> LRScheduler:
    """The learning-rate schedule, stepped once per generator iteration: `constant`, or `linear`
    decay from the configured rate to zero at the last iteration."""
    end_factor = 0.0 if decay == "linear" else 1.0
    return LinearLR(optimizer, start_factor=1.0, end_factor=end_factor, total_iters=iterations)

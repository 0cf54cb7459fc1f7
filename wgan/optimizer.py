"""The `optimizer` config group: one optimizer per network, built by `hydra.utils.instantiate`.

Each option sets `optimizer.generator` and `optimizer.critic`; either can be changed on its own,
e.g. `optimizer.critic.lr=3e-4`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from hydra.utils import instantiate
from omegaconf import DictConfig
import torch
from torch import nn
from torch.optim.lr_scheduler import LinearLR, LRScheduler

from wgan.arch.init import WEIGHT_LAYERS
from wgan.schema import bounded
from wgan.speed import make_optimizer

log = logging.getLogger(__name__)

# The layers that make a critic "normalized" (layer norm is GroupNorm(1, C) here: wgan/arch/layers.py).
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = bounded(1e-4, gt=0)
    betas: list[float] = bounded([0.0, 0.9], ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)  # coupled L2 (added to the gradient), as torch's Adam does it


@dataclass
class RMSpropConfig:
    # TF1's RMSProp by default; conf/optimizer/rmsprop_torch.yaml re-targets torch.optim.RMSprop,
    # which takes the same keywords (its eps sits outside the square root).
    _target_: str = "wgan.optimizer.tf1_rmsprop"
    _partial_: bool = True
    lr: float = bounded(5e-5, gt=0)
    alpha: float = bounded(0.9, gt=0, lt=1)  # the squared-gradient average's decay (TF1's `decay`)
    eps: float = bounded(1e-10, gt=0)
    weight_decay: float = bounded(0.0, ge=0)  # coupled L2 (added to the gradient)


@dataclass
class OptimizerPairConfig:
    # Appendix B: "In the discriminator, if we use batch normalization (or layer normalization) we
    # also apply a small weight decay (lambda = 1e-3)". Applied only where the critic holds
    # normalization layers; see critic_parameters for which weights and in what form.
    normalized_critic_weight_decay: float = bounded(0.0, ge=0)


@dataclass
class AdamPairConfig(OptimizerPairConfig):
    generator: AdamConfig = field(default_factory=AdamConfig)
    critic: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class RMSpropPairConfig(OptimizerPairConfig):
    generator: RMSpropConfig = field(default_factory=RMSpropConfig)
    critic: RMSpropConfig = field(default_factory=RMSpropConfig)


def tf1_rmsprop(params: Iterable[Any], lr: float, alpha: float, eps: float, weight_decay: float,
                capturable: bool = False) -> torch.optim.Optimizer:
    """TF1's `tf.train.RMSPropOptimizer(lr)`, every RMSProp of the official code: the squared-gradient
    average starts at ONES, `ms = alpha ms + (1 - alpha) g^2; w -= lr g / sqrt(ms + eps)`, momentum 0.
    timm's RMSpropTF computes exactly this (its weight decay is coupled: g += weight_decay w).

    `capturable` is accepted and needs nothing: the update reads no step count, so a CUDA graph
    replays it as it ran. There is no fused kernel: `fused` is refused (TypeError), which
    `make_optimizer` turns into its warning and the plain implementation.
    """
    from timm.optim import RMSpropTF  # imported on use: importing timm takes seconds

    optimizer = RMSpropTF(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)
    # timm makes this state on the first step; made now, it is in the snapshot a CUDA graph's
    # warm-up is undone from, which would otherwise reset the average to zero, not to its ones.
    for group in optimizer.param_groups:
        for p in group["params"]:
            optimizer.state[p] = {"step": torch.zeros(()), "square_avg": torch.ones_like(p)}
    return optimizer


def build_optimizers(cfg: DictConfig, generator: nn.Module, critic: nn.Module, options: dict[str, bool] | None = None):
    """(generator optimizer, critic optimizer) from `cfg.optimizer`; `options` are the speed
    settings' keyword arguments (fused, capturable)."""
    make_g = instantiate(cfg.generator, _convert_="all")
    return make_optimizer(make_g, generator.parameters(), options or {}), build_critic_optimizer(cfg, critic, options)


def build_critic_optimizer(cfg: DictConfig, critic: nn.Module, options: dict[str, bool] | None = None):
    """The critic's optimizer from `cfg.optimizer` (a critic trained alone: Figure 1a's)."""
    make_d = instantiate(cfg.critic, _convert_="all")
    critic_params = critic_parameters(critic, cfg.critic.weight_decay, cfg.normalized_critic_weight_decay)
    return make_optimizer(make_d, critic_params, options or {})


def critic_parameters(critic: nn.Module, weight_decay: float, normalized_decay: float) -> Any:
    """The critic's parameters, in two groups where `normalized_decay` applies (a critic with
    normalization layers): the Linear/Conv weights, with `weight_decay + normalized_decay`, and the
    rest (biases, norm scales and offsets), with the optimizer's `weight_decay`.

    The paper names neither the parameters nor the form; our choice: weights only (the usual
    practice) and coupled L2, gradient += lambda w, i.e. lambda/2 ||w||^2 added to the loss as
    TF1's tf.nn.l2_loss does. Both decays are coupled L2 terms, so on the weights they add up.
    """
    if normalized_decay == 0:
        return critic.parameters()
    normalized = any(isinstance(m, NORM_LAYERS) for m in critic.modules())
    decayed = weight_tensors(critic) if normalized else []
    log.info("optimizer.normalized_critic_weight_decay=%g: %d critic weight tensors decayed%s", normalized_decay,
             len(decayed), "" if normalized else " (the critic has no normalization layers)")
    if not decayed:
        return critic.parameters()
    ids = {id(p) for p in decayed}
    rest = [p for p in critic.parameters() if id(p) not in ids]
    return [{"params": decayed, "weight_decay": weight_decay + normalized_decay}, {"params": rest}]


def weight_tensors(module: nn.Module) -> list[nn.Parameter]:
    """Each distinct weight of the module's weight layers: all a layer holds but its bias (a
    spectral-normalized layer holds its weight as `parametrizations.weight.original`)."""
    weights = {id(p): p for m in module.modules() if isinstance(m, WEIGHT_LAYERS)
               for name, p in m.named_parameters() if name != "bias"}
    return list(weights.values())


def build_schedule(decay: str, optimizer: torch.optim.Optimizer, iterations: int) -> LRScheduler:
    """The learning-rate schedule, stepped once per generator iteration: `constant`, or `linear`
    decay from the configured rate to zero at the last iteration."""
    end_factor = 0.0 if decay == "linear" else 1.0
    return LinearLR(optimizer, start_factor=1.0, end_factor=end_factor, total_iters=iterations)


def resize_schedule(schedule: LinearLR, iterations: int) -> None:
    """A restored schedule made to end at `iterations` (a run extended, or shortened): a linear
    decay goes on from where the rate would be at this iteration had the run been this long from
    the start, lr * (1 - step / iterations), down to zero at the new end. LinearLR steps
    multiplicatively, so the rate is set here once; a schedule of the same length is left alone."""
    if schedule.total_iters == iterations:
        return
    schedule.total_iters = iterations
    progress = min(schedule.last_epoch, iterations) / iterations
    factor = schedule.start_factor + (schedule.end_factor - schedule.start_factor) * progress
    for group, base_lr in zip(schedule.optimizer.param_groups, schedule.base_lrs):
        group["lr"] = base_lr * factor

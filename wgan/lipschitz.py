"""The `lipschitz` config group: how the critic is kept (approximately) 1-Lipschitz.

Each method hooks into the critic update at the three places where the methods differ:
`wrap_critic` once when the critic is built (spectral norm), `penalty` inside every critic loss
(gradient penalty), and `after_critic_step` after every critic optimizer step (weight clipping).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wgan.arch.base import Norm
from wgan.arch.init import WEIGHT_LAYERS
from wgan.schema import bounded


@dataclass
class GradientPenaltyConfig:
    _target_: str = "wgan.lipschitz.GradientPenalty"
    name: str = "gp"
    lam: float = bounded(10.0, ge=0)  # the penalty weight lambda
    one_sided: bool = False  # max(0, ||g|| - 1)^2 instead of (||g|| - 1)^2 (Appendix C)


@dataclass
class WeightClippingConfig:
    _target_: str = "wgan.lipschitz.WeightClipping"
    name: str = "clip"
    bound: float = bounded(0.01, gt=0)  # c: every critic weight is clamped to [-c, c]


@dataclass
class SpectralNormConfig:
    _target_: str = "wgan.lipschitz.SpectralNorm"
    name: str = "sn"
    n_power_iterations: int = bounded(1, ge=1)


@dataclass
class NoConstraintConfig:
    _target_: str = "wgan.lipschitz.NoConstraint"
    name: str = "none"


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn per sample."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return eps * real + (1 - eps) * fake


def input_gradient_norms(critic: nn.Module, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """||grad_x D(x)||_2 for each sample of `x`; `create_graph` keeps it differentiable."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
    return grad.flatten(1).norm(dim=1)


class NoConstraint:
    """No Lipschitz control: the plain GAN and LSGAN baselines."""

    # What the critic uses wherever its architecture calls for batch norm: batch norm, or layer norm
    # under a gradient penalty (batch norm makes the per-sample input gradient ill-defined), or
    # none where spectral norm alone controls the critic.
    critic_norm = Norm.batch

    def __init__(self, name: str = "none") -> None:
        self.name = name

    def wrap_critic(self, critic: nn.Module) -> nn.Module:
        return critic

    def penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor):
        """The term added to the critic loss, and the gradient norms it saw (or None, None)."""
        return None, None

    def after_critic_step(self, critic: nn.Module) -> None:
        pass

    def stats(self, critic: nn.Module) -> dict[str, float]:
        return {}


class GradientPenalty(NoConstraint):
    """WGAN-GP: lambda * E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates (Algorithm 1)."""

    critic_norm = Norm.layer

    def __init__(self, name: str = "gp", lam: float = 10.0, one_sided: bool = False) -> None:
        super().__init__(name)
        self.lam = lam
        self.one_sided = one_sided

    def penalty(self, critic, real, fake):
        norms = input_gradient_norms(critic, interpolates(real, fake), create_graph=True)
        excess = norms - 1
        if self.one_sided:
            excess = excess.clamp(min=0)
        return self.lam * excess.pow(2).mean(), norms.detach()


class WeightClipping(NoConstraint):
    """WGAN (Arjovsky et al. 2017): clamp every critic parameter to [-c, c] after each update."""

    def __init__(self, name: str = "clip", bound: float = 0.01) -> None:
        super().__init__(name)
        self.bound = bound

    @torch.no_grad()
    def after_critic_step(self, critic):
        for p in critic.parameters():
            p.clamp_(-self.bound, self.bound)

    @torch.no_grad()
    def stats(self, critic):
        """The fraction of critic weights sitting at either end of the clip range (Figure 1c)."""
        at_bound = total = 0
        for p in critic.parameters():
            at_bound += int((p.abs() >= self.bound * (1 - 1e-6)).sum())
            total += p.numel()
        return {"clip_fraction": at_bound / total}


class SpectralNorm(NoConstraint):
    """Spectral normalization (Miyato et al. 2018) of every critic weight layer, via torch's
    parametrization, which keeps each layer's top singular value near 1."""

    critic_norm = Norm.none

    def __init__(self, name: str = "sn", n_power_iterations: int = 1) -> None:
        super().__init__(name)
        self.n_power_iterations = n_power_iterations

    def wrap_critic(self, critic):
        for module in list(critic.modules()):
            if isinstance(module, WEIGHT_LAYERS):
                nn.utils.parametrizations.spectral_norm(module, n_power_iterations=self.n_power_iterations)
        return critic

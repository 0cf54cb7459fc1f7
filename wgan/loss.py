"""The `loss` config group: the adversarial objective, as a critic loss and a generator loss.

Both take critic outputs (logits for `gan`, raw scores otherwise) and return scalars to minimize.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING


@dataclass
class LossConfig:
    _target_: str = MISSING
    name: str = MISSING


class WassersteinLoss:
    """WGAN: the critic maximizes E[D(real)] - E[D(fake)]; the generator maximizes E[D(fake)]."""

    def __init__(self, name: str = "wgan") -> None:
        self.name = name

    def critic(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return d_fake.mean() - d_real.mean()

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -d_fake.mean()


class StandardGANLoss(WassersteinLoss):
    """Goodfellow et al. 2014 with the non-saturating generator loss -log sigmoid(D(G(z)))."""

    def critic(self, d_real, d_fake):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def generator(self, d_fake):
        return F.softplus(-d_fake).mean()


class LeastSquaresLoss(WassersteinLoss):
    """LSGAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1 (generator)."""

    def critic(self, d_real, d_fake):
        return 0.5 * ((d_real - 1).pow(2).mean() + d_fake.pow(2).mean())

    def generator(self, d_fake):
        return 0.5 * (d_fake - 1).pow(2).mean()


class HingeLoss(WassersteinLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018); the generator loss is WGAN's."""

    def critic(self, d_real, d_fake):
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

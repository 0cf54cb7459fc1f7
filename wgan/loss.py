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
    """Goodfellow et al. 2014 with the non-saturating generator loss -log sigmoid(D(G(z))), scaled
    as the official code (gan_64x64.py, gan_cifar.py: `disc_cost /= 2.`): the discriminator's loss
    is the mean of its two cross-entropies."""

    def critic(self, d_real, d_fake):
        real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        return (real + fake) / 2

    def generator(self, d_fake):
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


class LeastSquaresLoss(WassersteinLoss):
    """LSGAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1 (generator), scaled as the
    official gan_64x64.py: the critic's two squared errors halved, the generator's not. (The scale
    matters: TF1's RMSProp, which trains it, starts its average of squared gradients at 1.)"""

    def critic(self, d_real, d_fake):
        return (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake))) / 2

    def generator(self, d_fake):
        return F.mse_loss(d_fake, torch.ones_like(d_fake))


class HingeLoss(WassersteinLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018); the generator loss is WGAN's."""

    def critic(self, d_real, d_fake):
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

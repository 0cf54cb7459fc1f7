"""The `loss` config group: the adversarial objective, as a critic loss and a generator loss.

Both take critic outputs (logits for `gan`, raw scores otherwise) and return scalars to minimize.
`critic_objective` and `generator_objective` run the critic on a batch and apply them; for a
conditional model (arch.num_classes) they add the AC-GAN terms of the critic's auxiliary
classifier (`AuxiliaryClassifier`), as gan_cifar_resnet.py adds them to WGAN-GP's losses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from wgan.arch.conditional import Classifying
from wgan.schema import bounded


@dataclass
class LossConfig:
    _target_: str = MISSING
    name: str = MISSING
    # A conditional model's AC-GAN terms (gan_cifar_resnet.py's ACGAN_SCALE and ACGAN_SCALE_G): the
    # auxiliary classifier's cross-entropy on real images, times ac_scale, joins the critic loss; on
    # generated images (for the classes they were generated for), times ac_scale_g, the generator's.
    ac_scale: float = bounded(1.0, ge=0)
    ac_scale_g: float = bounded(0.1, ge=0)


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The fraction of samples whose most likely class is their label."""
    return (logits.argmax(dim=1) == labels).float().mean()


class AuxiliaryClassifier:
    """The AC-GAN terms (Odena et al. 2017) as the official code weighs them: the critic learns to
    classify real images only (generated ones are scored, not trained on), the generator to make
    images the critic classifies as the class they were generated for."""

    def __init__(self, critic_scale: float, generator_scale: float) -> None:
        self.critic_scale = critic_scale
        self.generator_scale = generator_scale

    def critic(self, logits_real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.critic_scale * F.cross_entropy(logits_real, labels)

    def generator(self, logits_fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator_scale * F.cross_entropy(logits_fake, labels)


class WassersteinLoss:
    """WGAN: the critic maximizes E[D(real)] - E[D(fake)]; the generator maximizes E[D(fake)]."""

    def __init__(self, name: str = "wgan", ac_scale: float = 1.0, ac_scale_g: float = 0.1) -> None:
        self.name = name
        self.auxiliary = AuxiliaryClassifier(ac_scale, ac_scale_g)

    def critic_objective(self, critic: nn.Module | Classifying, real: torch.Tensor, fake: torch.Tensor,
                         labels: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """The critic loss on a batch (without a Lipschitz penalty), the scores D(real) and D(fake),
        and statistics of its own. With `labels` (a conditional model: the real images' classes, which
        the generated ones were generated for, as in the official code), the auxiliary classifier's
        term joins the loss, with its cross-entropy and accuracies as statistics."""
        if labels is None:
            d_real, d_fake = critic(real).float(), critic(fake).float()
            return self.critic(d_real, d_fake), d_real, d_fake, {}
        (d_real, logits_real), (d_fake, logits_fake) = critic.classify(real), critic.classify(fake)
        d_real, d_fake, logits_real = d_real.float(), d_fake.float(), logits_real.float()
        classes = self.auxiliary.critic(logits_real, labels)
        stats = {
            "ac_loss": F.cross_entropy(logits_real, labels).detach(),
            "ac_accuracy_real": class_accuracy(logits_real.detach(), labels),
            "ac_accuracy_fake": class_accuracy(logits_fake.detach(), labels),
        }
        return self.critic(d_real, d_fake) + classes, d_real, d_fake, stats

    def generator_objective(self, critic: nn.Module | Classifying, fake: torch.Tensor,
                            labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The generator loss on generated samples; with `labels`, the classes they were generated
        for, plus the auxiliary classifier's term."""
        if labels is None:
            return self.generator(critic(fake).float())
        d_fake, logits = critic.classify(fake)
        return self.generator(d_fake.float()) + self.auxiliary.generator(logits.float(), labels)

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

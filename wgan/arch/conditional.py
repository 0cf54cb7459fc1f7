"""What class-conditional (AC-GAN) networks are made of: the official conditional CIFAR-10 ResNet
(gan_cifar_resnet.py with CONDITIONAL and ACGAN) conditions G by conditional batch norm and gives
D an auxiliary classifier head beside its score.

A conditional generator's latent is its noise with the class one-hot appended: the class travels
with the noise through everything that only passes latents along (the fixed figure batch, the
evaluation's sampling, CUDA graph inputs), and `labels(latent)` reads it back.
"""
from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from wgan.arch.base import Generator
from wgan.arch.layers import Residual


class TakesLabels:
    """A module whose forward takes (x, labels): LabeledSequential hands it the batch's classes."""


class ConditionalBatchNorm2d(nn.Module, TakesLabels):
    """Batch norm over (N, H, W) without an affine of its own, then a scale and an offset per class
    (Dumoulin et al. 2017; tflib's cond_batchnorm: scales start at 1, offsets at 0, eps 1e-5)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Parameter(torch.ones(num_classes, channels))
        self.offset = nn.Parameter(torch.zeros(num_classes, channels))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale[labels][:, :, None, None] + self.offset[labels][:, :, None, None]


class LabeledSequential(nn.Sequential, TakesLabels):
    """nn.Sequential that also hands the labels to the modules that take them."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for module in self:
            x = module(x, labels) if isinstance(module, TakesLabels) else module(x)
        return x


class LabeledResidual(Residual, TakesLabels):
    """A residual block whose branch takes the labels (conditional batch norm inside)."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.shortcut(x) + self.scale * self.branch(x, labels)


class ConditionalGenerator(Generator):
    """A generator of images of chosen classes; `net` takes (noise, labels)."""

    def __init__(self, net: nn.Module, noise_dim: int, num_classes: int) -> None:
        super().__init__(net, noise_dim)
        self.num_classes = num_classes

    def sample_noise(self, n: int, device: torch.device | str, generator: torch.Generator | None = None,
                     labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Noise and, unless given, classes drawn uniformly (as gan_cifar_resnet.py draws them)."""
        noise = super().sample_noise(n, device, generator)
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator,
                                   device="cpu" if generator is not None else device)
        return torch.cat([noise, F.one_hot(labels.to(noise.device), self.num_classes).to(noise.dtype)], dim=1)

    def labels(self, latent: torch.Tensor) -> torch.Tensor:
        return latent[:, self.noise_dim:].argmax(dim=1)

    def balanced_labels(self, n: int) -> torch.Tensor:
        """0, 1, ..., K-1, 0, 1, ...: every class equally often (to one), and in a grid K wide one
        class per column."""
        return torch.arange(n) % self.num_classes

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent[:, :self.noise_dim], self.labels(latent))


@runtime_checkable
class Classifying(Protocol):
    """A critic with an auxiliary classifier: its forward gives the score alone (what the Lipschitz
    method, the diagnostics and the validation read), `classify` the score and class logits of one pass."""

    num_classes: int

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class ClassifyingCritic(nn.Module):
    """`features` (N, F) read by a score layer (F -> 1) and an auxiliary classifier (F -> K), as the
    official Discriminator.Output and Discriminator.ACGANOutput."""

    def __init__(self, features: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = features
        self.classes = nn.Linear(width, num_classes)
        self.score = nn.Linear(width, 1)  # registered last: the output layer of the diagnostics' count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x)).flatten()

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.score(features).flatten(), self.classes(features)

"""What every architecture shares: its config fields, the two factories the training loop calls,
the weights' initialization, and the latent distribution its generator is fed."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Optional

import torch
from omegaconf import MISSING
from torch import nn

from wgan.arch.init import Init, initialize


class Norm(Enum):
    """What normalizes a network's features where its architecture calls for batch norm; for the
    critic the Lipschitz method decides (`critic_norm` in wgan.lipschitz)."""

    batch = "batch"
    layer = "layer"  # per sample over channels and positions: the official layer norm over axes [1, 2, 3]
    none = "none"


@dataclass
class ArchConfig:
    _target_: str = MISSING
    name: str = MISSING
    init: Init = Init.official  # the official code's (tflib's) initialization, or torch's defaults


class Generator(nn.Module):
    """Wraps a network mapping `noise_dim`-dimensional standard Gaussian noise to samples. An
    unconditional one: no classes (wgan.arch.conditional.ConditionalGenerator has them)."""

    num_classes = 0

    def __init__(self, net: nn.Module, noise_dim: int) -> None:
        super().__init__()
        self.net = net
        self.noise_dim = noise_dim

    def sample_noise(self, n: int, device: torch.device | str, generator: torch.Generator | None = None,
                     labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`n` latents; `labels`, the classes to generate, only for a conditional generator."""
        if generator is None:
            return torch.randn(n, self.noise_dim, device=device)
        return torch.randn(n, self.noise_dim, generator=generator).to(device)

    def labels(self, latent: torch.Tensor) -> Optional[torch.Tensor]:
        """The classes a batch of latents generates: None, no classes."""
        return None

    def balanced_labels(self, n: int) -> Optional[torch.Tensor]:
        """Classes for `n` evaluation samples, each class equally often: None, no classes."""
        return None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Architecture(ABC):
    """An `arch` option: `generator(data_shape)` and `critic(data_shape, norm)` build initialized
    networks. `norm` is what the critic uses wherever the architecture calls for batch norm
    (a `Norm`), as the Lipschitz method decides; the critic returns one score per
    sample."""

    def __init__(self, name: str, init: Init | str = Init.official) -> None:
        self.name = name
        self.init = Init(init)

    def generator(self, data_shape: tuple[int, ...]) -> Generator:
        return initialize(self.build_generator(data_shape), self.init, self.weight_std(data_shape, "g"))

    def critic(self, data_shape: tuple[int, ...], norm: Norm | str = Norm.none) -> nn.Module:
        return initialize(self.build_critic(data_shape, Norm(norm)), self.init, self.weight_std(data_shape, "d"))

    @abstractmethod
    def build_generator(self, data_shape: tuple[int, ...]) -> Generator: ...

    @abstractmethod
    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module: ...

    def weight_std(self, data_shape: tuple[int, ...], net: str) -> float | None:
        """One std for every weight of network `net` ("g" or "d"), as tflib's set_weights_stdev,
        or None: each layer's own (see wgan.arch.init)."""
        return None

"""What every architecture's generator shares: the latent distribution it is fed."""
from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """Wraps a network mapping `noise_dim`-dimensional standard Gaussian noise to samples."""

    def __init__(self, net: nn.Module, noise_dim: int) -> None:
        super().__init__()
        self.net = net
        self.noise_dim = noise_dim

    def sample_noise(self, n: int, device: torch.device | str, generator: torch.Generator | None = None):
        if generator is None:
            return torch.randn(n, self.noise_dim, device=device)
        return torch.randn(n, self.noise_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

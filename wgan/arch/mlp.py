"""`arch=mlp`: the toy ReLU MLPs of the official `gan_toy.py` (3 hidden layers of 512 units)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from wgan.arch.base import Generator
from wgan.schema import bounded


@dataclass
class MLPArchConfig:
    _target_: str = "wgan.arch.mlp.MLPArch"
    name: str = "mlp"
    width: int = bounded(512, ge=1)  # units per hidden layer
    depth: int = bounded(3, ge=1)  # hidden layers, in G and in D
    noise_dim: int = bounded(2, ge=1)


def relu_mlp(n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLPArch:
    def __init__(self, name: str, width: int, depth: int, noise_dim: int) -> None:
        self.name = name
        self.width = width
        self.depth = depth
        self.noise_dim = noise_dim

    def generator(self, data_shape: tuple[int, ...]) -> Generator:
        net = relu_mlp(self.noise_dim, math.prod(data_shape), self.width, self.depth)
        return Generator(nn.Sequential(net, nn.Unflatten(1, data_shape)), self.noise_dim)

    def critic(self, data_shape: tuple[int, ...], norm: str = "none") -> nn.Module:
        """The toy critic has no normalization layers, so `norm` changes nothing."""
        return nn.Sequential(nn.Flatten(), relu_mlp(math.prod(data_shape), 1, self.width, self.depth), nn.Flatten(0))

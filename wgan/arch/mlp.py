"""`arch=mlp`: the toy ReLU MLPs of the official `gan_toy.py` (3 hidden layers of 512 units);
`arch.nonlinearity` swaps ReLU for another (Appendix D's elu against softplus, say).

The MLP builders here also make the random toy MLPs of `arch=random` and the MLP generator of
`arch=mlp_generator`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from torch import nn

from wgan.arch.base import ArchConfig, Architecture, Generator, Norm
from wgan.arch.init import Init, he
from wgan.arch.layers import Nonlinearity, unit
from wgan.schema import bounded


@dataclass
class MLPArchConfig(ArchConfig):
    _target_: str = "wgan.arch.mlp.MLPArch"
    name: str = "mlp"
    width: int = bounded(512, ge=1)  # units per hidden layer
    depth: int = bounded(3, ge=1)  # hidden layers, in G and in D
    noise_dim: int = bounded(2, ge=1)
    nonlinearity: Nonlinearity = Nonlinearity.relu  # of every hidden layer, in G and in D


def he_linear(n_in: int, n_out: int) -> nn.Linear:
    return he(nn.Linear(n_in, n_out))


def mlp(n_in: int, n_out: int, width: int, depth: int, nonlinearity: Nonlinearity | str = Nonlinearity.relu,
        norm: Norm = Norm.none) -> nn.Sequential:
    """`depth` hidden layers of `width` units, each normalized (`norm`) and then `nonlinearity`;
    initialized as the official MLPs (`gan_toy.py`'s ReLULayer): 'he' hidden layers, 'glorot' output."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += unit(partial(he_linear, n_in if i == 0 else width), width, nonlinearity, norm, image=False)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def mlp_generator(noise_dim: int, data_shape: tuple[int, ...], squash: bool = False, **mlp_args) -> Generator:
    """An MLP from the noise to samples of `data_shape`; `squash` ends it with tanh (images)."""
    squashing = [nn.Tanh()] if squash else []
    net = nn.Sequential(mlp(noise_dim, math.prod(data_shape), **mlp_args), *squashing, nn.Unflatten(1, data_shape))
    return Generator(net, noise_dim)


def mlp_critic(data_shape: tuple[int, ...], **mlp_args) -> nn.Module:
    return nn.Sequential(nn.Flatten(), mlp(math.prod(data_shape), 1, **mlp_args), nn.Flatten(0))


class MLPArch(Architecture):
    def __init__(self, name: str, width: int, depth: int, noise_dim: int,
                 nonlinearity: Nonlinearity | str = Nonlinearity.relu, init: Init | str = Init.official) -> None:
        super().__init__(name, init)
        self.width = width
        self.depth = depth
        self.noise_dim = noise_dim
        self.nonlinearity = Nonlinearity(nonlinearity)

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        return mlp_generator(self.noise_dim, data_shape, width=self.width, depth=self.depth,
                             nonlinearity=self.nonlinearity)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        """The toy critic has no normalization layers, so `norm` changes nothing."""
        return mlp_critic(data_shape, width=self.width, depth=self.depth, nonlinearity=self.nonlinearity)

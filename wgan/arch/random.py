"""`arch=random`: one architecture drawn from the random-architecture space of Table 1 (Section 5.1).

For G and D separately: the nonlinearity, the depth, normalization on or off, and the base filter
count (images) or hidden width (2-D toy data). `seed` picks the architecture; each setting is drawn
uniformly from its list with Python's `random.Random("<seed>:<net>_<setting>")` (e.g. "7:d_depth"),
which hashes its string seed with SHA-512, so equal seeds give equal architectures on every machine
and under every method (the torch RNG is never touched), and narrowing one list never changes
another setting's draw. The lists are the config (`arch.g.depth=[4,8]` narrows a space,
`arch.d.filters=[16,32,64]` widens one); the drawn values are `choices` ({"g_nonlinearity": "relu",
"d_depth": 12, ...}), every setting of both networks: an image run uses `filters`, a 2-D run `width`.

Depth counts weight layers; the paper does not say how it maps onto layers, so this is our choice.
Images: depth 4 is the 32x32 DCGAN the study starts from (G: linear to a 4x4 grid of 4d channels
and three stride-2 5x5 transposed convolutions; D: three stride-2 5x5 convolutions and a linear
score, d being the drawn filter count). Each layer beyond 4 is a stride-1 3x3 convolution with the
network's normalization and nonlinearity, inserted where the first author's
`wgan_imagenet32_stab.py` inserts its extra depth: on the grid of a quarter of the image side at 2d
channels, in G after its first transposed convolution, in D after its second convolution. At 64x64
the same three-stage networks start (G) and end (D) on an 8x8 grid, so every depth builds at both
sizes. 2-D data: depth L is an MLP of L - 1 hidden layers and an output layer (4: the toy MLP).

Normalization: G's switch turns batch norm on; D's switch decides whether the critic is normalized
at all and the Lipschitz method which kind (layer norm under a gradient penalty; none under
spectral norm), wherever the DCGAN critic has it (after every layer but the first).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any, Mapping

from torch import nn

from wgan.arch.base import ArchConfig, Architecture, Generator, Norm
from wgan.arch.dcgan import dcgan_critic, dcgan_generator
from wgan.arch.init import Init
from wgan.arch.layers import Nonlinearity, image_size
from wgan.arch.mlp import mlp_critic, mlp_generator
from wgan.schema import ConfigError, bounded

STAGES = 3  # stride-2 layers of every random image network: the 32x32 DCGAN's
BASE_DEPTH = STAGES + 1  # weight layers without extra depth: the stride-2 layers and the linear one


@dataclass
class NetSpaceConfig:
    """The values each setting of one network is drawn from (Table 1, plus the width on 2-D data)."""

    nonlinearity: list[Nonlinearity] = field(default_factory=lambda: [
        Nonlinearity.relu, Nonlinearity.leaky_relu, Nonlinearity.softplus, Nonlinearity.tanh])
    depth: list[int] = bounded([4, 8, 12, 20], ge=BASE_DEPTH)  # weight layers
    norm: list[bool] = field(default_factory=lambda: [True, False])
    filters: list[int] = bounded([32, 64, 128], ge=1)  # base filter count d, images
    width: list[int] = bounded([128, 256, 512], ge=1)  # units per hidden layer, 2-D data


@dataclass
class RandomArchConfig(ArchConfig):
    _target_: str = "wgan.arch.random.RandomArch"
    name: str = "random"
    seed: int = bounded(0, ge=0, lt=2**64)  # which architecture of the space (a 64-bit seed, as `seed`)
    count: int = bounded(200, ge=1)  # architectures a multirun study sweeps: seeds 0..count-1 (the paper's 200)
    noise_dim: int = bounded(128, ge=1)
    g: NetSpaceConfig = field(default_factory=NetSpaceConfig)
    d: NetSpaceConfig = field(default_factory=NetSpaceConfig)


def draw(seed: int, net: str, setting: str, values: list[Any]) -> str | int | bool:
    """One value of `values`, by the seed and the setting's name alone; enums by their value."""
    if len(values) == 0:
        raise ConfigError(f"arch.{net}.{setting} is empty: list at least one value to draw from")
    value = random.Random(f"{seed}:{net}_{setting}").choice(list(values))
    return value.value if isinstance(value, Enum) else value


class RandomArch(Architecture):
    def __init__(self, name: str, seed: int, noise_dim: int, g: Mapping[str, list], d: Mapping[str, list],
                 count: int = 200, init: Init | str = Init.official) -> None:
        # `count` sizes the multirun sweep over seeds (conf/arch/random.yaml); one network needs only its seed.
        super().__init__(name, init)
        self.seed = seed
        self.noise_dim = noise_dim
        self.spaces = {"g": g, "d": d}

    @cached_property
    def choices(self) -> dict[str, str | int | bool]:
        """Drawn on use, not in the constructor, so that an unusable space raises a ConfigError
        rather than Hydra's instantiation error."""
        return {
            f"{net}_{setting}": draw(self.seed, net, setting, values)
            for net, space in self.spaces.items()
            for setting, values in space.items()
        }

    def drawn(self, net: str) -> dict[str, Any]:
        """The settings drawn for one network ("g" or "d"), by their names in the space."""
        return {key.split("_", 1)[1]: value for key, value in self.choices.items() if key.startswith(f"{net}_")}

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        c = self.drawn("g")
        norm = Norm.batch if c["norm"] else Norm.none
        if len(data_shape) == 1:
            return mlp_generator(self.noise_dim, data_shape, width=c["width"], depth=c["depth"] - 1,
                                 nonlinearity=c["nonlinearity"], norm=norm)
        image_size(data_shape, self.name)
        return dcgan_generator(data_shape, self.noise_dim, c["filters"], STAGES, c["nonlinearity"], norm,
                               extra=c["depth"] - BASE_DEPTH)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        c = self.drawn("d")
        norm = norm if c["norm"] else Norm.none
        if len(data_shape) == 1:
            return mlp_critic(data_shape, width=c["width"], depth=c["depth"] - 1, nonlinearity=c["nonlinearity"],
                              norm=norm)
        image_size(data_shape, self.name)
        return dcgan_critic(data_shape, c["filters"], STAGES, c["nonlinearity"], norm, extra=c["depth"] - BASE_DEPTH)

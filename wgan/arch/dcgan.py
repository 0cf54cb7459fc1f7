"""`arch=dcgan` and the Figure 2 variants: the official DCGANs of `gan_64x64.py` (64x64) and
`gan_cifar.py` (32x32).

G: a linear map to a 4x4 grid of 8d channels (64x64; 4d at 32x32), then stride-2 5x5 transposed
convolutions halving the channels (8d, 4d, 2d, d) up to the image, batch norm and ReLU after every
layer but the last, tanh out. D mirrors it: stride-2 5x5 convolutions doubling the channels from d,
LeakyReLU 0.2, normalization after every convolution but the first, a linear score on the 4x4 grid.
The variants (`dcgan_constfilter`, `dcgan_nonorm`, `dcgan_gated`, `dcgan_tanh`) are settings of
the same builders; `mlp_generator` swaps G for the 4-layer 512-unit ReLU MLP of `gan_64x64.py`.

At each size the networks are built and initialized as the script of that size builds its DCGAN:
- 32x32, `gan_cifar.py`: G's first batch norm normalizes each of the linear layer's outputs (over
  the batch alone, before the reshape to the 4x4 grid); the critic has no normalization under the
  gradient penalty (`MODE != 'wgan-gp'` guards its batch norms); tflib's per-layer initializers.
- 64x64, `gan_64x64.py`: batch norm per channel; layer norm in the critic under the penalty; every
  weight with std 0.02 (`set_weights_stdev`) in the DCGAN generator and critic and in the no-norm
  and tanh variants; per-layer initializers in the constant-filter and gated generators, the gated
  critic and the MLP generator.
`arch.d_norm_under_penalty` chooses the critic's normalization under the penalty explicitly.

`dcgan_generator` and `dcgan_critic` also build the random architectures (`wgan.arch.random`):
`stages` fixes the number of stride-2 layers and `extra` inserts stride-1 3x3 layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import partial

from torch import nn

from wgan.arch.base import Generator, Norm
from wgan.arch.init import Init
from wgan.arch.layers import ImageArch, ImageArchConfig, Nonlinearity, doublings, image_size, to_grid, unit
from wgan.arch.mlp import mlp_generator
from wgan.schema import bounded


class PenaltyNorm(Enum):
    """The critic's normalization where the Lipschitz method asks for layer norm (the penalty)."""

    official = "official"  # as the script of the image size: none at 32x32 (gan_cifar.py), layer at 64x64 (gan_64x64.py)
    layer = "layer"
    none = "none"


# gan_64x64.py's set_weights_stdev(0.02) for its DCGAN networks.
DCGAN_64_WEIGHT_STD = 0.02


@dataclass
class DCGANArchConfig(ImageArchConfig):
    _target_: str = "wgan.arch.dcgan.DCGANArch"
    name: str = "dcgan"
    g_nonlinearity: Nonlinearity = Nonlinearity.relu
    d_nonlinearity: Nonlinearity = Nonlinearity.leaky_relu
    g_norm: bool = True  # batch norm after every G layer but the last
    d_norm: bool = True  # normalization after every D conv but the first; the Lipschitz method picks its kind
    constant_filters: bool = False  # G keeps d channels throughout instead of 8d, 4d, 2d, d
    d_norm_under_penalty: PenaltyNorm = PenaltyNorm.official


@dataclass
class MLPGeneratorArchConfig(ImageArchConfig):
    _target_: str = "wgan.arch.dcgan.MLPGeneratorArch"
    name: str = "mlp_generator"
    width: int = bounded(512, ge=1)  # units per hidden layer of G
    depth: int = bounded(4, ge=1)  # hidden ReLU layers of G


def channel_widths(dim: int, stages: int, constant: bool = False) -> list[int]:
    """Channels from the coarsest grid to the finest: 8d, 4d, 2d, d for four stages."""
    return [dim if constant else dim * 2**i for i in reversed(range(stages))]


def same_convs(n: int, channels: int, nonlinearity: Nonlinearity | str, norm: Norm) -> list[nn.Module]:
    """`n` stride-1 3x3 layers that keep the grid: the extra depth of the random architectures."""
    return [m for _ in range(n) for m in unit(partial(nn.Conv2d, channels, kernel_size=3, padding=1),
                                             channels, nonlinearity, norm)]


def dcgan_generator(data_shape: tuple[int, int, int], noise_dim: int, dim: int, stages: int,
                    nonlinearity: Nonlinearity | str, norm: Norm, constant: bool = False, extra: int = 0,
                    flat_first_norm: bool = False) -> Generator:
    """`stages` stride-2 transposed convolutions up to the image; `extra` stride-1 layers after the
    first of them (on the grid of a quarter of the image side, as the first author's extra-depth
    DCGAN does); `flat_first_norm` normalizes the linear layer's outputs one by one (gan_cifar.py)
    rather than per channel of the grid."""
    channels, size, _ = data_shape
    widths = channel_widths(dim, stages, constant)
    grid = size >> stages
    if flat_first_norm:
        layers = [*unit(partial(nn.Linear, noise_dim), widths[0] * grid * grid, nonlinearity, norm, image=False),
                  nn.Unflatten(1, (widths[0], grid, grid))]
    else:
        layers = unit(partial(to_grid, noise_dim, size=grid), widths[0], nonlinearity, norm)
    for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
        layers += unit(partial(up_conv, c_in), c_out, nonlinearity, norm)
        layers += same_convs(extra if i == 0 else 0, c_out, nonlinearity, norm)
    layers += [up_conv(widths[-1], channels), nn.Tanh()]
    return Generator(nn.Sequential(*layers), noise_dim)


def dcgan_critic(data_shape: tuple[int, int, int], dim: int, stages: int, nonlinearity: Nonlinearity | str,
                 norm: Norm, extra: int = 0) -> nn.Module:
    """`stages` stride-2 convolutions down to the grid, no normalization after the first; `extra`
    stride-1 layers after the second (on the grid of a quarter of the image side)."""
    channels, size, _ = data_shape
    widths = channel_widths(dim, stages)[::-1]
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip([channels, *widths], widths)):
        layers += unit(partial(down_conv, c_in), c_out, nonlinearity, norm if i else Norm.none)
        layers += same_convs(extra if i == 1 else 0, c_out, nonlinearity, norm)
    end = size >> stages
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * end * end, 1), nn.Flatten(0))


def up_conv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)


def down_conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)


class DCGANArch(ImageArch):
    def __init__(self, name: str, noise_dim: int, dim: int, g_nonlinearity: Nonlinearity | str = "relu",
                 d_nonlinearity: Nonlinearity | str = "leaky_relu", g_norm: bool = True, d_norm: bool = True,
                 constant_filters: bool = False, d_norm_under_penalty: PenaltyNorm | str = PenaltyNorm.official,
                 init: Init | str = Init.official) -> None:
        super().__init__(name, noise_dim, dim, init)
        self.g_nonlinearity = Nonlinearity(g_nonlinearity)
        self.d_nonlinearity = Nonlinearity(d_nonlinearity)
        self.g_norm = g_norm
        self.d_norm = d_norm
        self.constant_filters = constant_filters
        self.d_norm_under_penalty = PenaltyNorm(d_norm_under_penalty)

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        size = image_size(data_shape, self.name)
        return dcgan_generator(data_shape, self.noise_dim, self.dim, doublings(size), self.g_nonlinearity,
                               Norm.batch if self.g_norm else Norm.none, self.constant_filters, flat_first_norm=size == 32)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        size = image_size(data_shape, self.name)
        if not self.d_norm:
            norm = Norm.none
        elif norm is Norm.layer:
            norm = self.penalty_norm(size)
        return dcgan_critic(data_shape, self.dim, doublings(size), self.d_nonlinearity, norm)

    def penalty_norm(self, size: int) -> Norm:
        if self.d_norm_under_penalty is PenaltyNorm.official:
            return Norm.none if size == 32 else Norm.layer
        return Norm(self.d_norm_under_penalty.value)

    def weight_std(self, data_shape: tuple[int, ...], net: str) -> float | None:
        """0.02 for gan_64x64.py's DCGAN networks, which are neither gated nor (G) constant-filter."""
        gated = (self.g_nonlinearity if net == "g" else self.d_nonlinearity) is Nonlinearity.gated
        crippled = net == "g" and self.constant_filters
        return DCGAN_64_WEIGHT_STD if data_shape[-1] == 64 and not gated and not crippled else None


class MLPGeneratorArch(DCGANArch):
    """Figure 2's MLP generator (`FCGenerator`: ReLU layers of 512 units, a linear map to the
    pixels, tanh) against the DCGAN critic."""

    def __init__(self, name: str, noise_dim: int, dim: int, width: int, depth: int,
                 init: Init | str = Init.official) -> None:
        super().__init__(name, noise_dim, dim, init=init)
        self.width = width
        self.depth = depth

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        image_size(data_shape, self.name)
        return mlp_generator(self.noise_dim, data_shape, squash=True, width=self.width, depth=self.depth)

    def weight_std(self, data_shape: tuple[int, ...], net: str) -> float | None:
        """FCGenerator uses the per-layer initializers; its critic is the DCGAN one."""
        return None if net == "g" else super().weight_std(data_shape, net)

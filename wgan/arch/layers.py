"""Building blocks shared by the architectures: nonlinearities, normalization, the
"layer, normalization, nonlinearity" unit every DCGAN-style network is a chain of, resampling,
residual connections, the check that the data is an image an image architecture can build, and the
settings and constructor every image option shares.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from wgan.arch.base import ArchConfig, Architecture, Norm
from wgan.arch.init import Init
from wgan.dataset.kind import IMAGE_CHANNELS
from wgan.schema import ConfigError, bounded

RESOLUTIONS = (32, 64)


class Nonlinearity(Enum):
    relu = "relu"
    leaky_relu = "leaky_relu"  # slope 0.2, as in the official DCGAN critic
    softplus = "softplus"  # softplus(2x + 2) / 2 - 1 (Table 1): a smooth ReLU shifted to pass near (-1, -1)
    tanh = "tanh"
    elu = "elu"  # Appendix D's ELU, differentiated correctly (torch's nn.ELU)
    elu_tf1 = "elu_tf1"  # the same ELU with the second derivative of the paper's TensorFlow (TF1Elu): Appendix D's failure
    gated = "gated"  # sigmoid(a) * tanh(b) over the two halves of twice as many channels (PixelCNN's gate)

    def __str__(self) -> str:
        """The name, so that `${arch.nonlinearity}` inside a string (a method label) reads `elu`."""
        return self.value


class ShiftedSoftplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(2 * x + 2) / 2 - 1


class Gated(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.sigmoid(a) * torch.tanh(b)


class _TF1EluGrad(torch.autograd.Function):
    """TensorFlow's EluGrad op, `dx = g * elu'(x)` from the upstream gradient g and y = elu(x), with
    the gradient TensorFlow registered for it in 2017 (nn_grad.py's `_EluGradGrad`). That gradient
    reads dx where it should read y and g, so second derivatives through an ELU are wrong wherever
    x < 0, and for x >= 0 wherever g < 0:
      d/dg: TF `ggx * (dx + 1 if dx < 0 else 1)`, true `ggx * (y + 1 if y < 0 else 1)` (still so in
            later 1.x versions: tensorflow/tensorflow#19333, May 2018);
      d/dy: TF `ggx * (dx + 2 if dx < -1 else 1)` where y < 0, true `ggx * g` (0 where y >= 0)
            (tensorflow/tensorflow#11091, reported on 1.2.0 in June 2017).
    """

    @staticmethod
    def forward(ctx, g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dx = torch.where(y < 0, g * (y + 1), g)
        ctx.save_for_backward(y, dx)
        return dx

    @staticmethod
    def backward(ctx, ggx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, dx = ctx.saved_tensors
        d_g = torch.where(dx < 0, ggx * (dx + 1), ggx)
        d_y = torch.where(y < 0, torch.where(dx + 1 < 0, ggx * (dx + 2), ggx), torch.zeros_like(ggx))
        return d_g, d_y


class _TF1EluFunction(torch.autograd.Function):
    """elu(x), whose backward is the EluGrad op above. It saves its output y, as TensorFlow's Elu
    gradient reads it: the second derivative's d/dy then reaches x through this backward again."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = F.elu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return _TF1EluGrad.apply(g, y)


class TF1Elu(nn.Module):
    """ELU whose values and first derivatives are nn.ELU's, and whose second derivatives are those
    the paper's TensorFlow computed (`_TF1EluGrad`). The gradient penalty differentiates the critic's
    input gradient, so under it an ELU critic trains on a wrong parameter gradient: the likely cause
    of Appendix D's "ELU could not be trained with the penalty", where softplus, whose second
    derivative TensorFlow had right, trained. `Nonlinearity.elu` is the correct ELU beside it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _TF1EluFunction.apply(x)


class Scale(nn.Module):
    """Multiplies by a constant: the official ResNets divide their output pre-activations by 5."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class _PiecewiseLinearFunction(torch.autograd.Function):
    """torch's leaky ReLU forward and backward, with the backward's dependence on x cut."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.slope = slope
        ctx.save_for_backward(x.detach())
        return F.leaky_relu(x, slope) if slope else F.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.leaky_relu_backward(grad, x, ctx.slope, False), None


class PiecewiseLinear(nn.Module):
    """ReLU (slope 0) or leaky ReLU: the values and gradients of nn.ReLU and nn.LeakyReLU, with
    the same kernels, but the backward treats x as a constant.

    Its true derivative in x is zero. torch's own backward depends on x, so the gradient penalty's
    double backward sends those zeros back through the whole forward pass as tensors: 15% of a
    toy critic step's FLOPs.
    """

    def __init__(self, slope: float = 0.0) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PiecewiseLinearFunction.apply(x, self.slope)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


ACTIVATIONS: dict[Nonlinearity, Callable[[], nn.Module]] = {
    Nonlinearity.relu: PiecewiseLinear,
    Nonlinearity.leaky_relu: partial(PiecewiseLinear, 0.2),
    Nonlinearity.softplus: ShiftedSoftplus,
    Nonlinearity.tanh: nn.Tanh,
    Nonlinearity.elu: nn.ELU,
    Nonlinearity.elu_tf1: TF1Elu,
    Nonlinearity.gated: Gated,
}


def norm_layers(kind: Norm, channels: int, image: bool = True) -> list[nn.Module]:
    """The layers of normalization `kind`; `image` says the features are (C, H, W) rather than flat."""
    if kind is Norm.batch:
        return [nn.BatchNorm2d(channels) if image else nn.BatchNorm1d(channels)]
    if kind is Norm.layer:
        return [nn.GroupNorm(1, channels)]
    return []


def unit(layer: Callable[[int], nn.Module], channels: int, nonlinearity: Nonlinearity | str, norm: Norm,
         image: bool = True) -> list[nn.Module]:
    """`layer(n)` (a layer with n output channels), normalization, nonlinearity: `channels` out.
    A gated unit's layer produces twice the channels, as the gate halves them."""
    nonlinearity = Nonlinearity(nonlinearity)
    width = 2 * channels if nonlinearity is Nonlinearity.gated else channels
    return [layer(width), *norm_layers(norm, width, image), ACTIVATIONS[nonlinearity]()]


def resampled(conv: nn.Module, resample: str | None) -> nn.Module:
    """`conv` followed by 2x2 mean pooling ("down") or preceded by nearest-neighbour 2x upsampling
    ("up"): the official ConvMeanPool and UpsampleConv."""
    if resample == "down":
        return nn.Sequential(conv, nn.AvgPool2d(2))
    if resample == "up":
        return nn.Sequential(nn.Upsample(scale_factor=2), conv)
    return conv


class Residual(nn.Module):
    """shortcut(x) + scale * branch(x); the shortcut is the identity unless given (a projection).
    Projections live under the name `shortcut`, so weight-layer counts can leave them out."""

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.scale * self.branch(x)


def to_grid(n_in: int, channels: int, size: int) -> nn.Sequential:
    """The generators' first layer: a linear map from the noise to a size x size x channels grid."""
    return nn.Sequential(nn.Linear(n_in, channels * size * size), nn.Unflatten(1, (channels, size, size)))


def image_size(data_shape: tuple[int, ...], arch: str) -> int:
    """The side of the square (C, H, W) images an image architecture is given, checked to be one it
    builds; a ConfigError naming the setting to change otherwise."""
    if len(data_shape) != 3:
        raise ConfigError(
            f"arch={arch} needs images (channels, height, width), but the dataset gives samples of shape "
            f"{tuple(data_shape)}; use arch=mlp or arch=random for 2-D toy data"
        )
    channels, height, width = data_shape
    if channels not in IMAGE_CHANNELS:
        raise ConfigError(f"arch={arch} supports 1 or 3 channels, not {channels}; set dataset.channels=1 or 3")
    if height != width or height not in RESOLUTIONS:
        raise ConfigError(
            f"arch={arch} supports 32x32 and 64x64 images, not {height}x{width}; set dataset.resolution=32 "
            f"or 64 (28x28 data is padded or resized to it, see dataset.fit)"
        )
    return height


def doublings(size: int) -> int:
    """How many 2x resamplings lie between the 4x4 grid and a size x size image."""
    return int(math.log2(size // 4))


@dataclass
class ImageArchConfig(ArchConfig):
    noise_dim: int = bounded(128, ge=1)
    dim: int = bounded(64, ge=1)  # d, the base filter count


class ImageArch(Architecture):
    def __init__(self, name: str, noise_dim: int, dim: int, init: Init | str = Init.official) -> None:
        super().__init__(name, init)
        self.noise_dim = noise_dim
        self.dim = dim

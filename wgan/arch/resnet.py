"""`arch=resnet101` and `arch=resnet_cifar`: the residual networks of the official code.

`resnet101` (Figure 2, `gan_64x64.py`): G and D of 101 weight layers each, counted as ResNet-101
counts them: the input layer, 33 bottleneck blocks of three convolutions (1x1 halving the channels,
3x3, 1x1 without bias, then normalization; the branch is scaled by 0.3 before the skip connection)
and the output layer. The four blocks that change the channel count also carry a 1x1 projection
on their shortcut, which is not counted (so each network has 105 weight modules in all).
G: linear to 4x4x8d; stages of 6, 6, 6, 6 and 5 blocks at 8d, 4d, 2d, d and d/2 channels, joined by
an upsampling block (3x3 stride-2 transposed convolution; sub-pixel 1x1 shortcut); 1x1 conv to the
image, tanh(x / 5); batch norm. D: 1x1 conv to d/2; stages of 5, 6, 6, 6, 6 blocks at d/2, d, 2d,
4d, 8d joined by stride-2 blocks; linear score / 5; normalization as the Lipschitz method says.
The official network is 64x64 only; at 32x32 the transition nearest the image keeps the grid
(G's last, D's first), so the networks keep their 101 layers.

`resnet_cifar` (Table 3, Appendix F, `gan_cifar_resnet.py`): pre-activation blocks of two 3x3
convolutions, 128 filters. G: linear to 4x4x128, upsampling blocks to the image, batch norm, ReLU,
3x3 conv, tanh. D: an optimized first block (conv, ReLU, conv, mean-pool), then downsampling blocks
until 8x8 (one at 32x32, two at 64x64), two blocks that keep the grid, ReLU, global mean-pool,
linear. As in the paper, D has no normalization, whatever the Lipschitz method asks for.
With `num_classes` (Table 3's supervised row, CONDITIONAL and ACGAN in the official code), G's
blocks normalize by conditional batch norm (a scale and an offset per class; its last batch norm
stays plain) and D gets an auxiliary classifier head beside its score (wgan.arch.conditional).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from wgan.arch.base import Generator, Norm
from wgan.arch.conditional import (ClassifyingCritic, ConditionalBatchNorm2d, ConditionalGenerator, LabeledResidual,
                                   LabeledSequential)
from wgan.arch.init import Init, glorot
from wgan.arch.layers import (ImageArch, ImageArchConfig, PiecewiseLinear, Residual, Scale, doublings, image_size,
                              norm_layers, resampled, to_grid)
from wgan.schema import ConfigError, bounded

# Bottleneck blocks that keep the grid, per stage from the 4x4 grid to the image; a resampling
# block joins consecutive stages. 33 blocks of 3 layers plus input and output layers: 101.
RESNET101_BLOCKS = (6, 6, 6, 6, 5)  # G's order; D's is the reverse
BRANCH_SCALE = 0.3  # the official bottleneck block scales its residual branch by 0.3
OUTPUT_SCALE = 0.2  # and both networks divide their output pre-activations by 5


@dataclass
class ResNet101ArchConfig(ImageArchConfig):
    _target_: str = "wgan.arch.resnet.ResNet101Arch"
    name: str = "resnet101"
    dim: int = bounded(64, ge=4)  # d: the stages have 8d, 4d, 2d, d and d/2 channels


@dataclass
class ResNetCIFARArchConfig(ImageArchConfig):
    _target_: str = "wgan.arch.resnet.ResNetCIFARArch"
    name: str = "resnet_cifar"
    dim: int = bounded(128, ge=1)  # filters of every block, in G and D
    # Classes of a conditional (AC-GAN) model, which the dataset's labels must have (10 for
    # CIFAR-10); 0: unconditional.
    num_classes: int = bounded(0, ge=0)


def bottleneck_projection(c_in: int, c_out: int, resample: str | None) -> nn.Module | None:
    """The shortcut's 1x1 projection (he_init=False in the official code, as every shortcut)."""
    if resample == "down":
        return glorot(nn.Conv2d(c_in, c_out, 1, stride=2))
    if resample == "up":  # sub-pixel convolution: 4x the channels, rearranged into a 2x grid
        return nn.Sequential(glorot(nn.Conv2d(c_in, 4 * c_out, 1)), nn.PixelShuffle(2))
    return glorot(nn.Conv2d(c_in, c_out, 1)) if c_in != c_out else None


def bottleneck_middle(c_in: int, c_out: int, resample: str | None) -> nn.Module:
    if resample == "down":
        return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
    if resample == "up":
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def bottleneck(c_in: int, c_out: int, resample: str | None, norm: Norm) -> Residual:
    branch = nn.Sequential(
        PiecewiseLinear(), nn.Conv2d(c_in, c_in // 2, 1),
        PiecewiseLinear(), bottleneck_middle(c_in // 2, c_out // 2, resample),
        PiecewiseLinear(), nn.Conv2d(c_out // 2, c_out, 1, bias=False), *norm_layers(norm, c_out),
    )
    return Residual(branch, bottleneck_projection(c_in, c_out, resample), BRANCH_SCALE)


def bottleneck_stages(widths: list[int], blocks: tuple[int, ...], resamples: list[str | None],
                      norm: Norm) -> list[nn.Module]:
    """Stage i: `blocks[i]` blocks at `widths[i]` channels; then a block to the next stage's width,
    resampling as `resamples[i]` says."""
    layers: list[nn.Module] = []
    for i, (width, n) in enumerate(zip(widths, blocks)):
        layers += [bottleneck(width, width, None, norm) for _ in range(n)]
        if i < len(resamples):
            layers.append(bottleneck(width, widths[i + 1], resamples[i], norm))
    return layers


def resnet101_plan(dim: int, size: int, resample: str) -> tuple[list[int], list[str | None]]:
    """G's stage widths (8d to d/2) and transitions, coarsest first; the 64x64 network resamples at
    all four, the 32x32 one at the three nearest the 4x4 grid."""
    widths = [8 * dim, 4 * dim, 2 * dim, dim, dim // 2]
    n = doublings(size)
    return widths, [resample] * n + [None] * (len(widths) - 1 - n)


def preact_block(c_in: int, c_out: int, resample: str | None, norm: Norm, num_classes: int = 0) -> Residual:
    """The CIFAR-10 ResNet block: norm, ReLU, 3x3 conv, norm, ReLU, 3x3 conv; upsampling before
    the first conv, mean pooling after the second. With `num_classes`, its norms are conditional
    batch norms and it takes (x, labels)."""
    def norms(channels: int) -> list[nn.Module]:
        return [ConditionalBatchNorm2d(channels, num_classes)] if num_classes else norm_layers(norm, channels)

    mid = c_in if resample == "down" else c_out
    layers = [
        *norms(c_in), PiecewiseLinear(),
        resampled(nn.Conv2d(c_in, mid, 3, padding=1), "up" if resample == "up" else None),
        *norms(mid), PiecewiseLinear(),
        resampled(nn.Conv2d(mid, c_out, 3, padding=1), "down" if resample == "down" else None),
    ]
    projects = resample is not None or c_in != c_out
    shortcut = resampled(glorot(nn.Conv2d(c_in, c_out, 1)), resample) if projects else None
    if num_classes:
        return LabeledResidual(LabeledSequential(*layers), shortcut)
    return Residual(nn.Sequential(*layers), shortcut)


def optimized_block(c_in: int, c_out: int) -> Residual:
    """The CIFAR-10 critic's first block: no activation before its first conv (it sees pixels).
    Its shortcut pools before its 1x1 conv in the official code: the same function."""
    branch = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), PiecewiseLinear(),
                           resampled(nn.Conv2d(c_out, c_out, 3, padding=1), "down"))
    return Residual(branch, resampled(glorot(nn.Conv2d(c_in, c_out, 1)), "down"))


class ResNet101Arch(ImageArch):
    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        widths, resamples = resnet101_plan(self.dim, image_size(data_shape, self.name), "up")
        net = nn.Sequential(
            to_grid(self.noise_dim, widths[0], 4),
            *bottleneck_stages(widths, RESNET101_BLOCKS, resamples, Norm.batch),
            glorot(nn.Conv2d(widths[-1], data_shape[0], 1)), Scale(OUTPUT_SCALE), nn.Tanh(),
        )
        return Generator(net, self.noise_dim)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        widths, resamples = resnet101_plan(self.dim, image_size(data_shape, self.name), "down")
        return nn.Sequential(
            glorot(nn.Conv2d(data_shape[0], widths[-1], 1)),
            *bottleneck_stages(widths[::-1], RESNET101_BLOCKS[::-1], resamples[::-1], norm),
            nn.Flatten(), nn.Linear(widths[0] * 4 * 4, 1), Scale(OUTPUT_SCALE), nn.Flatten(0),
        )


class ResNetCIFARArch(ImageArch):
    def __init__(self, name: str, noise_dim: int, dim: int, init: Init | str = Init.official,
                 num_classes: int = 0) -> None:
        super().__init__(name, noise_dim, dim, init)
        if num_classes == 1:
            raise ConfigError("arch.num_classes=1: a conditional model needs 2 classes or more (0: unconditional)")
        self.num_classes = num_classes

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        ups = doublings(image_size(data_shape, self.name))
        d, k = self.dim, self.num_classes
        layers = [
            to_grid(self.noise_dim, d, 4),
            *[preact_block(d, d, "up", Norm.batch, k) for _ in range(ups)],
            *norm_layers(Norm.batch, d), PiecewiseLinear(), glorot(nn.Conv2d(d, data_shape[0], 3, padding=1)), nn.Tanh(),
        ]
        if k:
            return ConditionalGenerator(LabeledSequential(*layers), self.noise_dim, k)
        return Generator(nn.Sequential(*layers), self.noise_dim)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        """No normalization (Appendix F: batch norm in G only), so `norm` changes nothing."""
        downs = doublings(image_size(data_shape, self.name)) - 2  # to 8x8, the first block included
        d = self.dim
        features = [
            optimized_block(data_shape[0], d),
            *[preact_block(d, d, "down", Norm.none) for _ in range(downs)],
            *[preact_block(d, d, None, Norm.none) for _ in range(2)],
            PiecewiseLinear(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ]
        if self.num_classes:
            return ClassifyingCritic(nn.Sequential(*features), d, self.num_classes)
        return nn.Sequential(*features, nn.Linear(d, 1), nn.Flatten(0))

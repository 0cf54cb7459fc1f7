"""The `arch` config group: every option builds an `Architecture` (wgan.arch.base) with two
factories, `generator(data_shape)` and `critic(data_shape, norm)`, returning initialized torch
modules. `norm` is what the critic uses wherever the architecture calls for batch norm (a
`wgan.arch.base.Norm`: batch, layer or none); the Lipschitz method decides it (see `wgan.lipschitz`). The critic returns one
score per sample. `arch.init` initializes the weights as the official code does (tflib, the
default; see wgan.arch.init) or leaves torch's defaults.

Generators carry `noise_dim` and `sample_noise`, so the training loop never needs to know which
architecture it trains. An architecture may expose `choices`, a flat dict of what it sampled
(random architectures); the run records it in results.json and W&B.

`mlp` is for 2-D toy data; the image options (`dcgan` and its variants, `mlp_generator`,
`resnet101`, `resnet_cifar`) build 32x32 and 64x64 images of 1 or 3 channels and raise a
ConfigError for anything else (`resnet_cifar` with `num_classes` builds a class-conditional G,
`wgan.arch.conditional.ConditionalGenerator`, and a critic that also classifies, `Classifying`); `random` builds both; `text_resnet` is the character-level language
model (text data only).
"""
from wgan.arch.base import Architecture, Generator
from wgan.arch.init import Init
from wgan.arch.dcgan import DCGANArch, DCGANArchConfig, MLPGeneratorArch, MLPGeneratorArchConfig
from wgan.arch.mlp import MLPArch, MLPArchConfig
from wgan.arch.random import NetSpaceConfig, RandomArch, RandomArchConfig
from wgan.arch.resnet import ResNet101Arch, ResNet101ArchConfig, ResNetCIFARArch, ResNetCIFARArchConfig
from wgan.arch.text import TextResNetArch, TextResNetArchConfig

# The structured config of each kind of option, registered as /schema/arch/<name>.
SCHEMAS = {
    "mlp": MLPArchConfig,
    "dcgan": DCGANArchConfig,
    "mlp_generator": MLPGeneratorArchConfig,
    "resnet101": ResNet101ArchConfig,
    "resnet_cifar": ResNetCIFARArchConfig,
    "random": RandomArchConfig,
    "text_resnet": TextResNetArchConfig,
}

__all__ = [
    "Architecture", "DCGANArch", "Init", "DCGANArchConfig", "Generator", "MLPArch", "MLPArchConfig", "MLPGeneratorArch",
    "MLPGeneratorArchConfig", "NetSpaceConfig", "RandomArch", "RandomArchConfig", "ResNet101Arch",
    "ResNet101ArchConfig", "ResNetCIFARArch", "ResNetCIFARArchConfig", "SCHEMAS", "TextResNetArch",
    "TextResNetArchConfig",
]

"""The `arch` config group: every option builds an architecture object with two factories,
`generator(data_shape)` and `critic(data_shape)`, returning torch modules.

Generators carry `noise_dim` and `sample_noise`, so the training loop never needs to know which
architecture it trains.
"""
from wgan.arch.base import Generator
from wgan.arch.mlp import MLPArch, MLPArchConfig

__all__ = ["Generator", "MLPArch", "MLPArchConfig"]

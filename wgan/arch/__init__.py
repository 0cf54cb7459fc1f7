"""The `arch` config group: every option builds an architecture object with two factories,
`generator(data_shape)` and `critic(data_shape, norm)`, returning torch modules. `norm` is what
the critic uses wherever the architecture calls for batch norm ("batch", "layer" or "none"); the
Lipschitz method decides it (see `wgan.lipschitz`). The critic returns one score per sample.

Generators carry `noise_dim` and `sample_noise`, so the training loop never needs to know which
architecture it trains. An architecture may expose `choices`, a flat dict of what it sampled
(random architectures); the run records it in results.json and W&B.
"""
from wgan.arch.base import Generator
from wgan.arch.mlp import MLPArch, MLPArchConfig

# The structured config of each kind of option, registered as /schema/arch/<name>.
SCHEMAS = {"mlp": MLPArchConfig}

__all__ = ["Generator", "MLPArch", "MLPArchConfig", "SCHEMAS"]

"""The `dataset` config group: every option builds an object that samples training batches.

A dataset object exposes `shape` (one sample's shape), `kind` ("toy" for 2-D point clouds) and
`sample(n, device, generator=None)`, which returns `n` samples on `device`, drawn with the global
torch RNG unless a `torch.Generator` is given (evaluation uses its own, so it never shifts the
training stream and a resumed run stays bit-identical).
"""
from wgan.dataset.toy import ToyDataset, ToyDatasetConfig, ToyDistribution

# The structured config of each kind of option, registered as /schema/dataset/<name>.
SCHEMAS = {"toy": ToyDatasetConfig}

__all__ = ["SCHEMAS", "ToyDataset", "ToyDatasetConfig", "ToyDistribution"]

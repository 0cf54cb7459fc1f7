"""The 2-D toy distributions of the paper's Figure 1, generated as in the official `gan_toy.py`.

- 8 Gaussians: centres at distance 2 in the eight compass directions, noise std 0.02,
  every coordinate then divided by 1.414.
- 25 Gaussians: centres on the grid {-4,-2,0,2,4}^2, noise std 0.05, a fixed pool of 100,000
  points, 4,000 around each centre, shuffled, then divided by 2.828.
- Swiss roll: scikit-learn's `make_swiss_roll(noise=0.25)` (re-implemented here, it is a
  three-line formula), coordinates 0 and 2, divided by 7.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from omegaconf import MISSING

from wgan.dataset.kind import DataKind
from wgan.schema import ConfigError, bounded


class ToyDistribution(Enum):
    eight_gaussians = "eight_gaussians"
    twentyfive_gaussians = "twentyfive_gaussians"
    swiss_roll = "swiss_roll"

    @property
    def is_mixture(self) -> bool:
        return self is not ToyDistribution.swiss_roll


@dataclass
class ToyDatasetConfig:
    _target_: str = "wgan.dataset.toy.ToyDataset"
    name: str = MISSING
    distribution: ToyDistribution = MISSING
    noise: float = bounded(0.02, ge=0)  # standard deviation before scaling
    scale: float = bounded(1.414, gt=0)  # every coordinate is divided by this
    # >0: sample batches from a fixed pool of this many points, the same number around each centre
    # of a mixture (so a multiple of their count), as gan_toy.py builds its 25 Gaussians' pool.
    pool_size: int = bounded(0, ge=0)


def _mixture_centres(distribution: ToyDistribution) -> torch.Tensor:
    if distribution is ToyDistribution.eight_gaussians:
        d = 1.0 / math.sqrt(2.0)
        unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)]
        return 2.0 * torch.tensor(unit, dtype=torch.float32)
    if distribution is ToyDistribution.twentyfive_gaussians:
        grid = torch.arange(-2, 3, dtype=torch.float32) * 2.0
        return torch.cartesian_prod(grid, grid)
    raise ValueError(f"{distribution.value} is not a Gaussian mixture")


def swiss_roll(n: int, noise: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """scikit-learn's `make_swiss_roll(n, noise)`: 3-D points on a rolled sheet plus noise."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    height = 21 * torch.rand(n, generator=generator)
    points = torch.stack([t * torch.cos(t), height, t * torch.sin(t)], dim=1)
    return points + noise * torch.randn(n, 3, generator=generator)


class ToyDataset:
    """Samples one of the toy distributions; `centres` and `mode_std` describe a mixture's modes."""

    kind = DataKind.toy
    shape = (2,)

    def __init__(
        self, name: str, distribution: ToyDistribution | str, noise: float, scale: float, pool_size: int = 0
    ) -> None:
        self.name = name
        self.distribution = ToyDistribution(distribution)
        self.noise = noise
        self.scale = scale
        self.centres = _mixture_centres(self.distribution) / scale if self.distribution.is_mixture else None
        self.mode_std = noise / scale
        # The pool is drawn once from the global RNG, which the trainer has seeded.
        self.pool = self._draw_pool(pool_size) if pool_size else None

    def _draw_pool(self, size: int) -> torch.Tensor:
        """gan_toy.py's pool: rounds of one point around every centre in turn (no random centre
        counts), shuffled, then scaled."""
        if not self.distribution.is_mixture:
            return self._draw(size)
        centres = _mixture_centres(self.distribution)
        rounds, left = divmod(size, len(centres))
        if left:
            raise ConfigError(
                f"dataset.pool_size={size}: must be a multiple of the {len(centres)} centres of "
                f"{self.distribution.value}, which each get the same number of points "
                f"(e.g. {max(rounds, 1) * len(centres)})"
            )
        points = centres.repeat(rounds, 1) + self.noise * torch.randn(size, 2)
        return points[torch.randperm(size)] / self.scale

    def _draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.distribution is ToyDistribution.swiss_roll:
            return swiss_roll(n, self.noise, generator)[:, [0, 2]] / self.scale
        centre_index = torch.randint(len(self.centres), (n,), generator=generator)
        offsets = self.noise * torch.randn(n, 2, generator=generator)
        return self.centres[centre_index] + offsets / self.scale

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        if self.pool is None:
            points = self._draw(n, generator)
        else:
            points = self.pool[torch.randint(len(self.pool), (n,), generator=generator)]
        return points.to(device)

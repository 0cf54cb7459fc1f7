"""Metrics for the 2-D toy distributions.

- `toy_modes`: for Gaussian mixtures (nothing for the Swiss roll), the number of modes covered and the fraction of
  high-quality samples, i.e. samples within 3 standard deviations of their nearest centre (the
  protocol of the unrolled-GAN and VEEGAN papers). A mode counts as covered when it holds at
  least `MIN_SHARE` of the high-quality samples a perfect generator would put there.
- `toy_w1`: the exact Wasserstein-1 distance between the empirical distributions of the first
  `W1_POINTS` generated and real samples (an optimal one-to-one assignment, solved by scipy; its
  cost grows with the cube of the count, and it is slowest on collapsed generators).
"""
from __future__ import annotations

import torch

from wgan.metrics.registry import Better, EvalContext, register

MIN_SHARE = 0.1
W1_POINTS = 1000


@register("toy_modes", better={"modes": Better.higher, "hq_fraction": Better.higher}, all_samples=True)
def modes_and_quality(context: EvalContext, fake: torch.Tensor) -> dict[str, float]:
    dataset = context.dataset
    if dataset.centres is None:  # the Swiss roll has no modes
        return {}
    distances = torch.cdist(fake.double(), dataset.centres.double())
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= 3 * dataset.mode_std
    per_mode = torch.bincount(nearest[high_quality], minlength=len(dataset.centres))
    fair_share = len(fake) / len(dataset.centres)
    return {
        "modes": float((per_mode >= MIN_SHARE * fair_share).sum()),
        "hq_fraction": float(high_quality.double().mean()),
    }


@register("toy_w1", better={"w1": Better.lower}, all_samples=True)
def wasserstein1(context: EvalContext, fake: torch.Tensor) -> dict[str, float]:
    fake, real = fake[:W1_POINTS], context.real[:W1_POINTS]
    cost = torch.cdist(fake.double(), real.double()).numpy()
    from scipy.optimize import linear_sum_assignment  # imported on use: it slows every start

    rows, cols = linear_sum_assignment(cost)
    return {"w1": float(cost[rows, cols].mean())}

"""The `metrics` config group: a small registry of named metric functions.

A metric function takes the generated samples, real samples of the same count and the dataset,
and returns a dict of named floats (empty where the metric is undefined for that dataset). `register` declares which of those values are better when
higher, so that the run can keep the best value of each over its evaluations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from wgan.schema import bounded

MetricFn = Callable[[torch.Tensor, torch.Tensor, object], dict[str, float]]


@dataclass
class Metric:
    fn: MetricFn
    higher_is_better: dict[str, bool]


REGISTRY: dict[str, Metric] = {}


def register(name: str, higher_is_better: dict[str, bool]):
    def decorate(fn: MetricFn) -> MetricFn:
        REGISTRY[name] = Metric(fn, higher_is_better)
        return fn

    return decorate


@dataclass
class MetricsConfig:
    names: list[str] = field(default_factory=list)  # entries of wgan.metrics.REGISTRY
    num_samples: int = bounded(2500, ge=2)  # generated (and real) samples per evaluation


def compute(names: list[str], fake: torch.Tensor, real: torch.Tensor, dataset) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in names:
        values.update(REGISTRY[name].fn(fake, real, dataset))
    return values


def is_improvement(names: list[str], key: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    higher = next(REGISTRY[n].higher_is_better[key] for n in names if key in REGISTRY[n].higher_is_better)
    return new > old if higher else new < old


from wgan.metrics import toy  # noqa: E402,F401  (registers the toy metrics)

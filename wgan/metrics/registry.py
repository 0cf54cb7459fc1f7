"""The metric registry: named builders of `Scorer`s, which take the generated samples batch by batch
and compute a dict of named floats; `compute` draws each batch once and feeds every scorer, so an
evaluation holds the metrics' states, never all the samples.

A scorer computes an empty dict where it is undefined for the data. `register` declares,
by key prefix, the `Better` direction of each value (a run keeps the best of each over its
evaluations; the report counts a success on that side of a threshold), a `check` run before training (raises ConfigError for data or settings it cannot
score), and `unavailable`, the values it will not compute with the resources at hand and why.
Metrics whose value depends on the sample count carry it in their names
(`protocol_name("cls_fid", 5000)` is `cls_fid_5k`), so numbers of different protocols are never
mixed up.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol

import torch
from omegaconf import DictConfig

from wgan import cache
from wgan.dataset.kind import Dataset
from wgan.signals import stopping_in


@dataclass
class EvalContext:
    num_samples: int  # generated samples the evaluation scores (the scorers receive them in batches)
    real: Optional[torch.Tensor]  # as many real points, for toy data; None for images
    dataset: Dataset  # the training dataset
    cfg: DictConfig  # the run's whole config: the dataset option, metrics settings, device
    fake_labels: Optional[torch.Tensor] = None  # a conditional model's: the class each sample was generated for

    @property
    def cache_dir(self) -> Path:
        return cache.directory(self.cfg.metrics.cache_dir)


class Scorer(Protocol):
    """One evaluation's state of a metric: `update` with each batch of generated samples (points,
    uint8 images (B, C, H, W) as real ones are, or text as indices), then `compute` once."""

    def update(self, samples: torch.Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


Build = Callable[[EvalContext], Scorer]
Check = Callable[[DictConfig], None]
AllSamplesFn = Callable[[EvalContext, torch.Tensor], dict[str, float]]


def all_samples_scorer(fn: AllSamplesFn, context: EvalContext) -> Scorer:
    """The scorer of a metric registered with `all_samples`. torchmetrics is imported on a first
    evaluation, not at every start: importing it takes seconds (it brings torchvision)."""
    from wgan.metrics.scores import AllSamples

    return AllSamples(fn, context)


class Better(Enum):
    """Which way a metric's values improve."""

    higher = "higher"
    lower = "lower"

    def beats(self, value: float, other: float) -> bool:
        """Whether `value` is strictly better than `other` (NaN is never better)."""
        return value > other if self is Better.higher else value < other

    @property
    def worst(self) -> float:
        """A value every other beats: what a diverged run scores."""
        return -math.inf if self is Better.higher else math.inf


@dataclass
class Metric:
    build: Build
    better: dict[str, Better]  # value key prefix -> direction
    check: Optional[Check]
    unavailable: Optional[Callable[[DictConfig], dict[str, str]]]


REGISTRY: dict[str, Metric] = {}


def register(name: str, better: dict[str, Better], check: Optional[Check] = None,
             unavailable: Optional[Callable[[DictConfig], dict[str, str]]] = None, all_samples: bool = False):
    """Register a `Build`, or with `all_samples` a function of the context and every sample (`AllSamplesFn`)."""
    def decorate(fn):
        build = functools.partial(all_samples_scorer, fn) if all_samples else fn
        REGISTRY[name] = Metric(build, better, check, unavailable)
        return fn

    return decorate


def direction(key: str) -> Optional[Better]:
    """The direction of the value `key` (e.g. `fid_50k`), from the registered prefix that matches
    it longest (`is_std` before `is`); None for a key no metric declares."""
    matches = [(len(prefix), better) for metric in REGISTRY.values() for prefix, better in metric.better.items()
               if key.startswith(prefix)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] onto the uint8 grid real images come from, so generated and real
    samples are scored at the same precision: truncated as the official scripts quantize samples
    for the Inception Score, `((x + 1) * (255.99 / 2)).astype('int32')` (the study script,
    gan_64x64.py, gan_cifar_resnet.py), which splits [-1, 1] into 256 equal bins and maps every
    real image's pixels back to themselves."""
    return ((images + 1) * (255.99 / 2)).clamp(0, 255).to(torch.uint8)


def protocol_name(key: str, num_samples: int) -> str:
    """`key` with the sample count it was computed on: 5000 -> `key_5k`, 2500 -> `key_2500`."""
    count = f"{num_samples // 1000}k" if num_samples % 1000 == 0 else str(num_samples)
    return f"{key}_{count}"


def compute(names: list[str], context: EvalContext, samples: Iterable[torch.Tensor]) -> dict[str, float]:
    """The metrics `names` of the generated `samples` (batches, drawn once, each fed to every metric)."""
    scorers: dict[str, Scorer] = {}
    for name in names:
        with stopping_in(f"metric {name}"):
            scorers[name] = REGISTRY[name].build(context)
    for batch in samples:
        for scorer in scorers.values():
            scorer.update(batch)
    values: dict[str, float] = {}
    for name, scorer in scorers.items():
        with stopping_in(f"metric {name}"):
            values.update(scorer.compute())
    return values


def unavailable(cfg: DictConfig) -> dict[str, str]:
    """{value: reason} for what the configured metrics cannot compute here (recorded, never faked)."""
    missing: dict[str, str] = {}
    for name in cfg.metrics.names:
        if REGISTRY[name].unavailable is not None:
            missing.update(REGISTRY[name].unavailable(cfg))
    return missing


def declared_values(names: list[str]) -> set[str]:
    """The value names (key prefixes) the metrics `names` declare a direction for."""
    return {prefix for name in names for prefix in REGISTRY[name].better}


def success_key(preferences: list[str], values: dict[str, float]) -> Optional[str]:
    """The key of `values` that picks the best generator: the first of `preferences` (names without
    the sample count, `is` for `is_5k`) that `values` holds, or None."""
    for name in preferences:
        for key in values:
            if re.fullmatch(rf"{re.escape(name)}(_\d+k?)?", key):
                return key
    return None


def is_improvement(key: str, new: float, old: float | None) -> bool:
    return old is None or direction(key).beats(new, old)

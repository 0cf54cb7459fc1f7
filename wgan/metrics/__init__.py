"""The `metrics` config group: a small registry of named metric functions.

A metric function takes an `EvalContext` (the generated samples, real samples of the same
count, the dataset and the cache directory) and returns a dict of named floats (empty where the
metric is undefined for that dataset). `register` declares, by key prefix, which of those
values are better when higher, so that the run can keep the best value of each over its
evaluations. Metrics whose value depends on the sample count carry it in their names
(`protocol_name("cls_fid", 5000)` is `cls_fid_5k`), so numbers of different protocols are never
mixed up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from omegaconf import DictConfig

from wgan.schema import bounded


@dataclass
class EvalContext:
    fake: torch.Tensor  # generated samples, on the CPU (images quantized as real ones are)
    real: torch.Tensor  # as many real samples, on the CPU
    dataset: object
    dataset_cfg: DictConfig  # the dataset option, for metrics that read more of the data
    cache_dir: Path  # where metrics keep what they compute once (networks, statistics)


MetricFn = Callable[[EvalContext], dict[str, float]]


@dataclass
class Metric:
    fn: MetricFn
    higher_is_better: dict[str, bool]
    check: Optional[Callable[[DictConfig], None]]  # raises ConfigError for data it cannot score


REGISTRY: dict[str, Metric] = {}


def register(name: str, higher_is_better: dict[str, bool], check: Optional[Callable[[DictConfig], None]] = None):
    def decorate(fn: MetricFn) -> MetricFn:
        REGISTRY[name] = Metric(fn, higher_is_better, check)
        return fn

    return decorate


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] through the uint8 grid real images come from, so generated and real
    samples are scored at the same precision."""
    return ((images + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


@dataclass
class MetricsConfig:
    names: list[str] = field(default_factory=list)  # entries of wgan.metrics.REGISTRY
    num_samples: int = bounded(2500, ge=2)  # generated (and real) samples per evaluation
    cache_dir: Optional[str] = None  # None: $XDG_CACHE_HOME/wgan, else ~/.cache/wgan


def cache_dir(setting: Optional[str]) -> Path:
    if setting is not None:
        return Path(setting).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "wgan"


def protocol_name(key: str, num_samples: int) -> str:
    """`key` with the sample count it was computed on: 5000 -> `key_5k`, 2500 -> `key_2500`."""
    count = f"{num_samples // 1000}k" if num_samples % 1000 == 0 else str(num_samples)
    return f"{key}_{count}"


def compute(names: list[str], context: EvalContext) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in names:
        values.update(REGISTRY[name].fn(context))
    return values


def is_improvement(names: list[str], key: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    higher = next(
        better for n in names for prefix, better in REGISTRY[n].higher_is_better.items() if key.startswith(prefix)
    )
    return new > old if higher else new < old


from wgan.metrics import classifier, toy  # noqa: E402,F401  (register their metrics)

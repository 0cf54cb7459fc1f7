"""The metric registry: named functions from an `EvalContext` to a dict of named floats.

A metric function returns an empty dict where it is undefined for the data. `register` declares,
by key prefix, which values are better when higher (so a run keeps the best of each over its
evaluations), a `check` run before training (raises ConfigError for data or settings it cannot
score), and `unavailable`, the values it will not compute with the resources at hand and why.
Metrics whose value depends on the sample count carry it in their names
(`protocol_name("cls_fid", 5000)` is `cls_fid_5k`), so numbers of different protocols are never
mixed up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from omegaconf import DictConfig

from wgan.signals import stopping_in


@dataclass
class EvalContext:
    fake: torch.Tensor  # generated samples on the CPU: points, or uint8 images (N, C, H, W) as real ones are
    real: Optional[torch.Tensor]  # as many real points, for toy data; None for images
    dataset: object  # the training dataset object
    cfg: DictConfig  # the run's whole config: the dataset option, metrics settings, device

    @property
    def cache_dir(self) -> Path:
        return cache_dir(self.cfg.metrics.cache_dir)


MetricFn = Callable[[EvalContext], dict[str, float]]
Check = Callable[[DictConfig], None]


@dataclass
class Metric:
    fn: MetricFn
    higher_is_better: dict[str, bool]
    check: Optional[Check]
    unavailable: Optional[Callable[[DictConfig], dict[str, str]]]


REGISTRY: dict[str, Metric] = {}


def register(name: str, higher_is_better: dict[str, bool], check: Optional[Check] = None,
             unavailable: Optional[Callable[[DictConfig], dict[str, str]]] = None):
    def decorate(fn: MetricFn) -> MetricFn:
        REGISTRY[name] = Metric(fn, higher_is_better, check, unavailable)
        return fn

    return decorate


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] onto the uint8 grid real images come from, so generated and real
    samples are scored at the same precision: truncated as the official scripts quantize samples
    for the Inception Score, `((x + 1) * (255.99 / 2)).astype('int32')` (the study script,
    gan_64x64.py, gan_cifar_resnet.py), which splits [-1, 1] into 256 equal bins and maps every
    real image's pixels back to themselves."""
    return ((images + 1) * (255.99 / 2)).clamp(0, 255).to(torch.uint8)


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
        with stopping_in(f"metric {name}"):
            values.update(REGISTRY[name].fn(context))
    return values


def unavailable(cfg: DictConfig) -> dict[str, str]:
    """{value: reason} for what the configured metrics cannot compute here (recorded, never faked)."""
    missing: dict[str, str] = {}
    for name in cfg.metrics.names:
        if REGISTRY[name].unavailable is not None:
            missing.update(REGISTRY[name].unavailable(cfg))
    return missing


def is_improvement(names: list[str], key: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    higher = next(
        better for n in names for prefix, better in REGISTRY[n].higher_is_better.items() if key.startswith(prefix)
    )
    return new > old if higher else new < old

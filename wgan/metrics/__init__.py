"""The `metrics` config group: a small registry of named metric functions (`registry`) and the
modules that register them: `toy` (mode coverage, W1), `classifier` (offline MNIST-like scores),
`inception` (Inception Score, FID, KID) and `text` (n-gram Jensen-Shannon divergences).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from wgan.metrics import classifier, inception, text, toy  # noqa: F401  (register their metrics)
from wgan.metrics.inception import InceptionConfig
from wgan.metrics.registry import (  # noqa: F401
    REGISTRY,
    Better,
    EvalContext,
    compute,
    direction,
    is_improvement,
    protocol_name,
    declared_values,
    success_key,
    register,
    to_uint8,
    unavailable,
)
from wgan.schema import bounded


@dataclass
class MetricsConfig:
    names: list[str] = field(default_factory=list)  # entries of wgan.metrics.REGISTRY
    num_samples: int = bounded(2500, ge=2)  # generated samples per evaluation during training
    final_num_samples: Optional[int] = bounded(None, ge=2)  # at the last iteration (the paper: 50,000); None: num_samples
    batch_size: int = bounded(100, ge=1)  # generated per forward pass (with batch_stats, the batch norm batch)
    # Batch norm in the generator normalizes with each sampling batch's statistics, as the official
    # code does when it samples for scores; false: with the running averages (eval mode).
    batch_stats: bool = True
    # Every cache (decoded datasets, classifier, reference statistics; see wgan.cache);
    # None: $XDG_CACHE_HOME/wgan, else ~/.cache/wgan
    cache_dir: Optional[str] = None
    # The value that picks the generator kept in checkpoints/best.pt: the first of these names (a
    # value without its sample count: is, fid, hq_fraction) that the run's evaluations give. Its best
    # over the evaluations on num_samples wins; [] keeps no best generator.
    best: list[str] = field(default_factory=list)
    inception: InceptionConfig = field(default_factory=InceptionConfig)

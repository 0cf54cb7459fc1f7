"""Reference statistics computed once and shared: the hundreds of jobs of a study evaluate against
the same real-data statistics, so each (data, network, protocol) is computed by the first job that
needs it and read by every other one. Files are written atomically (a temporary name renamed into
place), so concurrent jobs never read a half-written file; two jobs racing to compute the same
statistics both write the same numbers.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch

from wgan.files import atomic_save

log = logging.getLogger(__name__)

# How often each kind of entry was computed rather than read in this process ({network: count}):
# what tests (and curious users) check to see that the cache is hit.
computed: Counter = Counter()


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"stats-{key['network']}-{key['dataset']}-{digest}.pt"


def cached_tensors(
    cache_dir: Path, key: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """The tensors for `key` (which names at least `network` and `dataset`), from the cache or
    from `compute()`, which then fills the cache."""
    path = cache_path(cache_dir, key)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)  # data only, never code
        if saved.get("key") == json.dumps(key, sort_keys=True):
            return saved["tensors"]
        log.warning("%s holds statistics of another key (a hash collision?); computing them again", path)
    tensors = compute()
    computed[key["network"]] += 1
    saved = {"tensors": tensors, "key": json.dumps(key, sort_keys=True)}
    atomic_save(path, saved)
    log.info("reference statistics for %s saved to %s", key, path)
    return tensors

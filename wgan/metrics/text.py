"""Metrics for text: the n-gram Jensen-Shannon divergences of the official `gan_language.py`.

Generated sequences are decoded by argmax (one character per position) and compared with the
held-out lines (wgan.dataset.text) through the distributions of their character n-grams, n = 1 to
4, padding included, as `language_helpers.NgramLanguageModel.js_with` compares them: the
Jensen-Shannon divergence in bits (its natural-log value divided by log 2), 0 for identical
distributions and 1 for disjoint ones. It is biased upwards for few samples (an n-gram seen once
among 640 sentences is a large probability), so the count is part of the name: `js4_640` is the
4-gram divergence of 640 generated sentences (the official code's 10 batches of 64).
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from omegaconf import DictConfig, OmegaConf

from wgan.dataset.text import TextDataset, TextDatasetConfig
from wgan.metrics.registry import Better, EvalContext, protocol_name, register
from wgan.schema import ConfigError

ORDERS = (1, 2, 3, 4)  # the n of the n-grams, as gan_language.py monitors them


def ngrams(sequences: torch.Tensor, n: int, vocab: int) -> np.ndarray:
    """Every n-gram of the index sequences (N, L) as one integer (its digits in base `vocab`)."""
    windows = sliding_window_view(sequences.numpy().astype(np.int64), n, axis=1)
    return (windows * vocab ** np.arange(n - 1, -1, -1)).sum(axis=-1).ravel()


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """The Jensen-Shannon divergence in bits between the empirical distributions of the values in `p` and `q`."""
    from scipy.spatial.distance import jensenshannon  # imported on use: it slows every start

    union, inverse = np.unique(np.concatenate([p, q]), return_inverse=True)
    p_counts = np.bincount(inverse[:len(p)], minlength=len(union))
    q_counts = np.bincount(inverse[len(p):], minlength=len(union))
    return float(jensenshannon(p_counts, q_counts, base=2) ** 2)  # scipy gives the distance, its square root


# The held-out lines' n-grams, computed once per dataset and dropped with it (a study's jobs build one each).
_HELDOUT: weakref.WeakKeyDictionary[TextDataset, dict[int, np.ndarray]] = weakref.WeakKeyDictionary()


def heldout_ngrams(dataset: TextDataset, n: int) -> np.ndarray:
    per_order = _HELDOUT.setdefault(dataset, {})
    if n not in per_order:
        per_order[n] = ngrams(dataset.heldout, n, len(dataset.vocab))
    return per_order[n]


def check_dataset(cfg: DictConfig) -> None:
    if OmegaConf.get_type(cfg.dataset) is not TextDatasetConfig:
        raise ConfigError(f"metrics.names: 'ngram_js' scores text, not dataset={cfg.dataset.name}")


@register("ngram_js", better={"js": Better.lower}, check=check_dataset, all_samples=True)
def ngram_js(context: EvalContext, fake: torch.Tensor) -> dict[str, float]:
    """`fake`: generated sequences as vocabulary indices (N, seq_len), already argmax-decoded."""
    dataset = context.dataset
    vocab = len(dataset.vocab)
    return {protocol_name(f"js{n}", len(fake)): js_divergence(ngrams(fake, n, vocab), heldout_ngrams(dataset, n))
            for n in ORDERS}

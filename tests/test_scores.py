"""The score formulas against closed forms, a from-the-formula reference and torch-fidelity.

torch-fidelity is a dependency of the project, so its comparisons run everywhere, never skip.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from wgan import signals
from wgan.metrics import matrix_sqrt, scores
from wgan.metrics.scores import (
    FID_EPS,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    stoppable_sqrtm,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture
def logits():
    # 1003 samples do not divide into 10 splits: checks the split boundaries too.
    return 3 * randn(1003, 20)


@pytest.fixture
def feature_pair():
    """Correlated features and a shifted, rescaled copy of their distribution."""
    mixing = randn(16, 16, seed=1)
    return randn(500, 16, seed=2) @ mixing, 0.8 * randn(400, 16, seed=3) @ mixing + 0.5


def reference_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The original code's loop: contiguous splits [i*N//splits, (i+1)*N//splits)."""
    log_p = log_softmax(logits.astype(np.float64), axis=1)
    n, scores = len(log_p), []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        marginal = np.exp(part).mean(axis=0)
        kl = (np.exp(part) * (part - np.log(marginal))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_of_uniform_predictions_is_one():
    # A per-sample offset leaves the softmax uniform.
    mean, std = inception_score(randn(100, 10)[:, :1].expand(100, 10))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_evenly_spread_predictions_is_the_class_count():
    classes, splits = 7, 10
    labels = torch.arange(classes * splits * 10) % classes  # every split holds every class equally
    mean, std = inception_score(30.0 * torch.nn.functional.one_hot(labels, classes), splits)
    assert mean == pytest.approx(classes, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_the_formula(logits):
    assert inception_score(logits, 10) == pytest.approx(reference_inception_score(logits.numpy(), 10), rel=1e-9)


def test_inception_score_matches_torch_fidelity_isc(logits):
    theirs = isc_features_to_metric(logits, splits=10, shuffle=False)
    expected = theirs["inception_score_mean"], theirs["inception_score_std"]
    assert inception_score(logits, 10) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_identical_statistics_is_zero(feature_pair):
    mu, sigma = feature_statistics(feature_pair[0])
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_diagonal_covariances_has_a_closed_form():
    mu1, mu2, a, b = (randn(32, seed=s).numpy() for s in range(4))
    a, b = np.exp(a), np.exp(b)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-8)


def test_feature_statistics_and_frechet_distance_match_torch_fidelity(feature_pair):
    ours = [feature_statistics(f) for f in feature_pair]
    theirs = [fid_features_to_statistics(f) for f in feature_pair]
    for (mu, sigma), stats in zip(ours, theirs):
        np.testing.assert_allclose(mu, stats["mu"], rtol=1e-12)
        np.testing.assert_allclose(sigma, stats["sigma"], rtol=1e-12)
    expected = fid_statistics_to_metric(*theirs, verbose=False)["frechet_inception_distance"]
    assert frechet_distance(*ours[0], *ours[1]) == pytest.approx(expected, rel=1e-6)


SINGULAR = ("FID: the product of the two feature covariances ({d} x {d}) is singular or ill-conditioned{nudged}, so "
            "its square root, and this FID, are approximate. A covariance falls short of rank {d} when it comes from "
            "too few samples (N samples span at most N - 1 dimensions) or when features do not vary across the "
            "samples; score more than {d} samples (metrics.num_samples) for full-rank covariances")


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


@pytest.mark.filterwarnings("error")  # scipy's own LinAlgWarning would fail the test
def test_frechet_distance_nudges_a_product_without_a_square_root(caplog):
    # [[0, 1], [0, 0]] has no square root; with eps*I added, sqrtm's trace is 2 sqrt(eps (1 + eps)).
    nilpotent = np.array([[0.0, 1.0], [0.0, 0.0]])
    expected = 2 - 4 * np.sqrt(FID_EPS * (1 + FID_EPS))
    assert frechet_distance(np.zeros(2), nilpotent, np.zeros(2), np.eye(2)) == pytest.approx(expected, abs=1e-9)
    nudged = " (its root was not finite: 1e-06 was added to both covariance diagonals first, as pytorch-fid does)"
    assert warnings_of(caplog) == [SINGULAR.format(d=2, nudged=nudged)]


@pytest.mark.filterwarnings("error")
def test_a_singular_covariance_product_gives_one_explained_warning_instead_of_scipys(caplog):
    """What the Inception FID of a few samples meets: 10 samples, and features that are 0 for all of
    them (dead ReLU units), give a singular product; the value is pytorch-fid's all the same."""
    few = randn(10, 16, seed=4)
    few[:, 12:] = 0
    ours = feature_statistics(few), feature_statistics(randn(100, 16, seed=5))
    theirs = fid_features_to_statistics(few), fid_features_to_statistics(randn(100, 16, seed=5))
    assert frechet_distance(*ours[0], *ours[1]) == pytest.approx(
        fid_statistics_to_metric(*theirs, verbose=False)["frechet_inception_distance"], rel=1e-6)
    assert warnings_of(caplog) == [SINGULAR.format(d=16, nudged="")]
    caplog.clear()
    frechet_distance(*feature_statistics(randn(100, 16, seed=6)), *ours[1])  # full rank: no warning
    assert warnings_of(caplog) == []


@pytest.fixture
def children(monkeypatch) -> list[tuple[subprocess.Popen, float]]:
    """The processes started (and when), as they start."""
    started, popen = [], subprocess.Popen

    def start(*args, **kwargs):
        started.append((popen(*args, **kwargs), time.monotonic()))
        return started[-1][0]

    monkeypatch.setattr(subprocess, "Popen", start)
    return started


def test_large_square_roots_are_computed_in_a_child_process_with_the_same_result(children, monkeypatch):
    monkeypatch.setattr(scores, "CHILD_PROCESS_DIMENSION", 64)  # "large" for a fast test: FID's are 2048
    few = randn(50, 64, seed=7)  # fewer samples than dimensions: singular, as scipy reports
    few[:, :4] = 0
    product = feature_statistics(few)[1] @ feature_statistics(randn(200, 64, seed=8))[1]
    root, singular = stoppable_sqrtm(product)
    assert len(children) == 1 and children[0][0].returncode == 0
    assert np.array_equal(root, matrix_sqrt.sqrtm(product)[0]) and singular
    assert not stoppable_sqrtm(np.eye(64) * 4)[1] and len(children) == 2


def test_a_stop_signal_ends_fids_matrix_square_root_at_once(tmp_path, monkeypatch, children):
    """scipy's sqrtm of Inception's 2048 x 2048 product takes 33 s on one core here, holding the GIL
    throughout: in a child process, a SIGTERM (a real one) ends it within a fraction of a second."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    matrix = np.random.default_rng(0).random((2048, 2048))
    stop = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    with signals.stop_signals(), pytest.raises(signals.Stopped) as stopped:
        stop.start()
        try:
            stoppable_sqrtm(matrix)
        finally:
            stop.cancel()  # had it failed before the signal, the signal would end pytest
    ended = time.monotonic()
    assert str(stopped.value) == "SIGTERM during the matrix square root of FID (2048 x 2048)"
    (child, started), = children
    assert child.poll() == -signal.SIGKILL and list(tmp_path.iterdir()) == []  # ended, its files removed
    assert ended - started < 2.5  # the signal 1 s after the start, honoured within 0.1 s (generously: a shared machine)


def test_frechet_distance_rejects_a_clearly_complex_square_root():
    with pytest.raises(ValueError, match="imaginary component of 1"):
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))


def test_kernel_inception_distance_is_near_zero_for_one_distribution_and_positive_for_two():
    same = kernel_inception_distance(randn(1000, 8, seed=1), randn(1000, 8, seed=2), subsets=20, subset_size=200)
    shifted = kernel_inception_distance(randn(1000, 8, seed=1), randn(1000, 8, seed=2) + 0.5, subsets=20,
                                        subset_size=200)
    assert abs(same[0]) < 0.01 < 0.1 < shifted[0]


def test_kernel_inception_distance_matches_torch_fidelity_kid(feature_pair):
    ours = kernel_inception_distance(*feature_pair, subsets=10, subset_size=100, seed=3)
    theirs = kid_features_to_metric(*feature_pair, kid_subsets=10, kid_subset_size=100, rng_seed=3, verbose=False)
    expected = theirs["kernel_inception_distance_mean"], theirs["kernel_inception_distance_std"]
    assert ours == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("call, message", [
    (lambda: inception_score(randn(5, 3), splits=10), "splits <= samples, got 10 splits of 5 samples"),
    (lambda: feature_statistics(randn(1, 3)), "at least 2 samples for a covariance, got 1"),
    (lambda: kernel_inception_distance(randn(300, 3), randn(250, 3), subset_size=1000),
     r"subset size 1000 .* \(features1: 300, features2: 250\)"),
])
def test_scores_name_the_counts_they_cannot_work_with(call, message):
    with pytest.raises(ValueError, match=message):
        call()

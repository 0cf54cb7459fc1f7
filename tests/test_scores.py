"""The score metrics, fed in batches, against closed forms, a from-the-formula reference (the
original code's loop, `np.cov`) and torch-fidelity; their states' size against the sample count.

torch-fidelity is a dependency of the project, so its comparisons run everywhere, never skip.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from torchmetrics import Metric
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from wgan.metrics.scores import (
    FeatureMoments,
    InceptionScore,
    KernelInceptionDistance,
    Rows,
    frechet_distance,
    trace_sqrt_product,
)

BATCH = 97  # divides none of the counts below: batches straddle the Inception Score's splits


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


def streamed(metric: Metric, data: torch.Tensor, batch: int = BATCH) -> Metric:
    for part in data.split(batch):
        metric.update(part)
    return metric


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    return streamed(InceptionScore(len(logits), logits.shape[1], splits), logits).compute()


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = streamed(FeatureMoments(features.shape[1]), features).compute()
    return mu.numpy(), sigma.numpy()


def kernel_inception_distance(features1, features2, subsets=100, subset_size=1000, seed=0) -> tuple[float, float]:
    return streamed(KernelInceptionDistance(features2, len(features1), subsets, subset_size, seed), features1).compute()


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
        np.testing.assert_allclose(sigma, stats["sigma"], rtol=1e-9, atol=1e-12 * np.abs(sigma).max())
    expected = fid_statistics_to_metric(*theirs, verbose=False)["frechet_inception_distance"]
    assert frechet_distance(*ours[0], *ours[1]) == pytest.approx(expected, rel=1e-6)


def test_the_trace_term_from_eigenvalues_is_scipys_sqrtm_trace():
    """pytorch-fid's and the TTUR code's Tr(sqrtm(sigma1 sigma2)), from scipy, to 1e-9 relative."""
    from scipy import linalg

    sigma1, sigma2 = (feature_statistics(randn(300, 64, seed=s))[1] for s in (11, 12))
    expected = np.trace(linalg.sqrtm(sigma1 @ sigma2)).real
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("error")  # no library warning reaches the user
def test_a_singular_covariance_gives_torch_fidelitys_value_without_a_warning(caplog):
    """What the Inception FID of a few samples meets: 10 samples, and features that are 0 for all of
    them (dead ReLU units), give singular covariances; their FID is still exact."""
    few = randn(10, 16, seed=4)
    few[:, 12:] = 0
    ours = feature_statistics(few), feature_statistics(randn(100, 16, seed=5))
    theirs = fid_features_to_statistics(few), fid_features_to_statistics(randn(100, 16, seed=5))
    assert frechet_distance(*ours[0], *ours[1]) == pytest.approx(
        fid_statistics_to_metric(*theirs, verbose=False)["frechet_inception_distance"], rel=1e-6)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_what_is_no_covariance_is_refused():
    with pytest.raises(ValueError, match="FID: sigma1 has the negative eigenvalue -1, so it is not a covariance"):
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="FID: sigma2 is not symmetric, so not a covariance"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.array([[0.0, 1.0], [0.0, 0.0]]))


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
    (lambda: feature_statistics(randn(1, 3)), "FID needs at least 2 samples for a covariance, got 1"),
    (lambda: InceptionScore(10, 3).update(randn(11, 3)), "more than the 10 samples it was made for"),
    (lambda: streamed(InceptionScore(10, 3), randn(4, 3)).compute(), "4 samples of the 10 it was made for"),
    (lambda: kernel_inception_distance(randn(300, 3), randn(250, 3), subset_size=1000),
     r"subset size 1000 .* \(features1: 300, features2: 250\)"),
])
def test_scores_name_the_counts_they_cannot_work_with(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_scored_batch_grows_no_state():
    """The states hold sums, and KID the features its subsets draw: at most subsets x subset_size."""
    def state_bytes(count: int) -> tuple[int, int]:
        sums = [InceptionScore(count, 1008), FeatureMoments(2048)]
        kid = KernelInceptionDistance(randn(500, 2048), count, subsets=10, subset_size=50)
        return sum(value.numel() * value.element_size() for metric in sums for value in metric.metric_state.values()), \
            len(kid.features.rows)

    (small, kid_small), (large, kid_large) = state_bytes(10_000), state_bytes(1_000_000)
    assert small == large == 8 + 10 * 1008 * 8 + 10 * 8 + 8 + 2048 * 8 + 2048 * 2048 * 8
    assert 480 < kid_small <= 500 and 495 < kid_large <= 500  # rows drawn by more than one subset are kept once


def test_shares_scored_apart_and_merged_give_the_whole_score(logits, feature_pair):
    """What torch.distributed's reduction does: each process scores a contiguous share, the sum states add up."""
    whole = inception_score(logits)
    first = streamed(InceptionScore(1003, 20), logits[:400])
    first.merge_state(streamed(InceptionScore(1003, 20, start=400), logits[400:]))
    assert first.compute() == pytest.approx(whole, rel=1e-12)
    features = feature_pair[0]
    rows = torch.tensor([499, 3, 250, 0])
    kept = streamed(Rows(rows, 16, torch.float64), features[:250])
    kept.merge_state(streamed(Rows(rows, 16, torch.float64, start=250), features[250:]))
    assert torch.equal(kept.compute(), features[rows])


def test_class_accuracy_counts_top_logits_equal_to_the_generated_class_across_batches():
    """A conditional model's samples scored in batches (of 7, straddling nothing in particular) give
    the fraction argmax(logits) == label, over all and per class (NaN for a class never generated);
    two contiguous shares merged give the whole's."""
    from wgan.metrics.scores import ClassAccuracy

    torch.manual_seed(0)
    logits, labels = torch.randn(30, 5), torch.arange(30) % 4  # class 4 never generated
    hits = logits.argmax(1) == labels
    expected = float(hits.double().mean())
    expected_per_class = [float(hits[labels == k].double().mean()) for k in range(4)]
    whole = ClassAccuracy(labels, num_classes=5)
    for batch in logits.split(7):
        whole.update(batch)
    overall, per_class = whole.compute()
    assert overall == pytest.approx(expected, abs=0) and 0 < expected < 1
    assert per_class[:4] == pytest.approx(expected_per_class, abs=0) and math.isnan(per_class[4])
    assert len(set(expected_per_class)) > 1  # the classes differ: a per-class mix-up would show
    first, second = ClassAccuracy(labels, 5), ClassAccuracy(labels, 5, start=12)
    first.update(logits[:12])
    second.update(logits[12:])
    first.merge_state(second)
    assert first.compute()[0] == pytest.approx(expected, abs=0)
    assert first.compute()[1][:4] == pytest.approx(expected_per_class, abs=0)

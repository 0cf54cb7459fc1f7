"""The score formulas shared by the Inception and classifier metrics, as torchmetrics `Metric`s that
accumulate batch by batch (on the device the batches are on), so that scoring N samples holds a
state of fixed size, never the samples, and every state is a sum that `torch.distributed` can reduce
across processes (each scoring its own contiguous share of the samples).

Each metric reproduces a reference implementation exactly, so that numbers are comparable with
published ones:

- `InceptionScore`: the original TF code and torch-fidelity's `isc` (contiguous splits, population
  standard deviation; torchmetrics' `InceptionScore` shuffles and uses the sample std instead).
- `FeatureMoments` and `frechet_distance`: pytorch-fid (Heusel et al.'s TTUR code), the trace of the
  matrix square root taken from eigenvalues (`trace_sqrt_product`).
- `KernelInceptionDistance`: torch-fidelity's `kid` (the MMD-GAN code of Binkowski et al.),
  including its random subsets, so the same seed draws the same subsets.

Everything is computed in float64: the scores are differences of large, nearly equal numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from wgan.metrics.registry import AllSamplesFn, EvalContext
from wgan.signals import stoppable


class InceptionScore(Metric):
    """Mean and population std over `splits` contiguous splits of exp(mean_x KL(p(y|x) || p(y))),
    of `total` samples passed in order.

    Split i holds samples [i*N//splits, (i+1)*N//splits), as in the original code and
    torch-fidelity, so a count not divisible by `splits` gives the same splits as theirs. Since
    mean_x KL = mean_x sum_y p log p - sum_y p(y) log p(y), with p(y) the split's mean of p(y|x),
    each split needs only the sums of p(y|x) and of p log p: the split of every sample is known
    from its position and `total`, so no probabilities are kept. Under torch.distributed, each
    process scores a contiguous share of the samples, the first at position `start`.
    """

    full_state_update = False

    def __init__(self, total: int, classes: int, splits: int = 10, start: int = 0) -> None:
        super().__init__()
        if not 1 <= splits <= total:
            raise ValueError(f"the Inception Score needs 1 <= splits <= samples, got {splits} splits of {total} samples")
        self.total, self.start = total, start
        self.register_buffer("bounds", torch.tensor([i * total // splits for i in range(1, splits)]), persistent=False)
        self.add_state("seen", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("p_sums", torch.zeros(splits, classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("p_log_p_sums", torch.zeros(splits, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor) -> None:
        if self.start + int(self.seen) + len(logits) > self.total:
            raise ValueError(f"Inception Score: more than the {self.total} samples it was made for")
        log_p = logits.double().log_softmax(dim=1)
        p = log_p.exp()
        positions = self.start + self.seen + torch.arange(len(logits), device=self.seen.device)
        split = torch.bucketize(positions, self.bounds, right=True)
        self.p_sums.index_add_(0, split, p)
        self.p_log_p_sums.index_add_(0, split, (p * log_p).sum(dim=1))
        self.seen += len(logits)

    def compute(self) -> tuple[float, float]:
        if int(self.seen) != self.total:
            raise ValueError(f"Inception Score: {int(self.seen)} samples of the {self.total} it was made for")
        counts = self.bounds.diff(prepend=self.bounds.new_tensor([0]), append=self.bounds.new_tensor([self.total]))
        counts = counts.to(self.p_sums)
        marginal = self.p_sums / counts[:, None]
        # xlogy: a class with no probability in a split adds 0 log 0 = 0 (log would give NaN)
        kl = self.p_log_p_sums / counts - torch.xlogy(marginal, marginal).sum(dim=1)
        scores = kl.exp()
        return float(scores.mean()), float(scores.std(correction=0))


class ClassAccuracy(Metric):
    """The fraction of samples whose top logit is the class they were generated for (`labels`, by
    sample position; a conditional model's), over all of them and per class (which classes the
    generator has learned). Under torch.distributed, each process scores a contiguous share of the
    samples, the first at position `start`."""

    full_state_update = False

    def __init__(self, labels: torch.Tensor, num_classes: int, start: int = 0) -> None:
        super().__init__()
        self.register_buffer("labels", labels.long(), persistent=False)
        self.start = start
        self.add_state("seen", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor) -> None:
        first = self.start + int(self.seen.sum())
        wanted = self.labels[first:first + len(logits)].to(logits.device)
        if len(wanted) != len(logits):
            raise ValueError(f"class accuracy: more than the {len(self.labels)} labelled samples it was made for")
        hits = wanted[logits.argmax(dim=1) == wanted]
        self.correct += torch.bincount(hits, minlength=len(self.correct)).to(self.correct.device)
        self.seen += torch.bincount(wanted, minlength=len(self.seen)).to(self.seen.device)

    def compute(self) -> tuple[float, list[float]]:
        """The accuracy over all samples, and per class (NaN for a class with no samples)."""
        per_class = [int(c) / int(n) if n else math.nan for c, n in zip(self.correct, self.seen)]
        return int(self.correct.sum()) / int(self.seen.sum()), per_class


class FeatureMoments(Metric):
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, float64, as pytorch-fid's
    `np.cov`, from the sums of x and x x^T (exact products of float32 features in float64)."""

    full_state_update = False

    def __init__(self, width: int) -> None:
        super().__init__()
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(width, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("products", torch.zeros(width, width, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, features: torch.Tensor) -> None:
        x = features.double()
        self.count += len(x)
        self.total += x.sum(dim=0)
        self.products += x.T @ x

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) on the CPU."""
        n = int(self.count)
        if n < 2:
            raise ValueError(f"FID needs at least 2 samples for a covariance, got {n}")
        mu = self.total / n
        sigma = (self.products - n * torch.outer(mu, mu)) / (n - 1)
        return mu.cpu(), sigma.cpu()


class Rows(Metric):
    """The rows at the sample positions `positions` of the (N, D) features passed in order, in the
    order of `positions`: what a score needs of the individual features, and no more. Under
    torch.distributed, each process passes a contiguous share, the first at position `start`, and
    fills its rows of the state (zero elsewhere), which the reduction sums."""

    full_state_update = False

    def __init__(self, positions: torch.Tensor, width: int, dtype: torch.dtype = torch.float32, start: int = 0) -> None:
        super().__init__()
        self.start = start
        self.register_buffer("positions", positions, persistent=False)
        self.add_state("seen", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("rows", torch.zeros(len(positions), width, dtype=dtype), dist_reduce_fx="sum")

    def update(self, features: torch.Tensor) -> None:
        positions = self.positions - self.start - self.seen
        inside = (positions >= 0) & (positions < len(features))
        self.rows[inside] = features[positions[inside]].to(self.rows.dtype)
        self.seen += len(features)

    def compute(self) -> torch.Tensor:
        if len(self.positions) and self.start + int(self.seen) <= int(self.positions.max()):
            raise ValueError(f"the rows up to sample {int(self.positions.max())} were asked for, "
                             f"but {int(self.seen)} samples came")
        return self.rows


class FrechetDistance(FeatureMoments):
    """FID of the features passed against fixed reference statistics `mu`, `sigma`."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor) -> None:
        super().__init__(len(mu))
        self.reference = mu, sigma

    def compute(self) -> float:
        return frechet_distance(*super().compute(), *self.reference)


class KernelInceptionDistance(Metric):
    """Mean and population std of the unbiased MMD^2, polynomial kernel, over random subsets of the
    `total` features passed in order and of the `reference` features.

    Each subset draws `subset_size` rows of each without replacement from
    `np.random.RandomState(seed)`, in torch-fidelity's order, so equal seeds draw equal subsets.
    The draws depend only on the counts, so they are made first and only the features that some
    subset holds are kept: at most subsets x subset_size, whatever the sample count. Under
    torch.distributed, as `Rows`.
    """

    full_state_update = False

    def __init__(self, reference: torch.Tensor, total: int, subsets: int = 100, subset_size: int = 1000,
                 seed: int = 0, start: int = 0) -> None:
        super().__init__()
        if not 2 <= subset_size <= min(total, len(reference)):
            raise ValueError(f"KID subset size {subset_size} must be at least 2 and at most the number of "
                             f"samples (features1: {total}, features2: {len(reference)})")
        rng = np.random.RandomState(seed)
        draws = [(rng.choice(total, subset_size, replace=False), rng.choice(len(reference), subset_size, replace=False))
                 for _ in range(subsets)]
        kept = np.unique(np.concatenate([fake for fake, _ in draws]))
        self.subsets = [(torch.from_numpy(np.searchsorted(kept, fake)), torch.from_numpy(real)) for fake, real in draws]
        self.register_buffer("reference", reference, persistent=False)
        self.features = Rows(torch.from_numpy(kept), reference.shape[1], reference.dtype, start)

    def update(self, features: torch.Tensor) -> None:
        self.features.update(features)

    def compute(self) -> tuple[float, float]:
        x, y = self.features.compute().double(), self.reference.double()
        mmds = torch.stack([_unbiased_mmd2(x[fake.to(x.device)], y[real.to(y.device)])
                            for fake, real in stoppable(self.subsets, "kernel inception distance", unit="subset")])
        return float(mmds.mean()), float(mmds.std(correction=0))


@dataclass
class FeatureScores:
    """Scores of a network's view of samples: each batch goes through `extract` once, to (features,
    logits), and updates every metric of either; `values` names what they compute (metric name ->
    its result) as the run logs it."""

    extract: Callable[[torch.Tensor], tuple[torch.Tensor, Optional[torch.Tensor]]]
    of_features: dict[str, Metric]
    of_logits: dict[str, Metric]
    values: Callable[[dict[str, Any]], dict[str, float]]

    def update(self, samples: torch.Tensor) -> None:
        features, logits = self.extract(samples)
        for metric in self.of_features.values():
            metric.update(features)
        for metric in self.of_logits.values():
            metric.update(logits)

    def compute(self) -> dict[str, float]:
        return self.values({name: metric.compute() for name, metric in {**self.of_features, **self.of_logits}.items()})


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 sigma2))."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrtm(sigma1 sigma2)) of two covariances, from eigenvalues: sigma1 sigma2 has those of the
    symmetric s sigma2 s, s = sqrtm(sigma1), all >= 0, and the trace of a root is the sum of their
    roots. pytorch-fid takes scipy's `sqrtm` of the product instead (the same value, to 1e-9 relative,
    tested), and torch-fidelity the eigenvalues of the product itself. Two symmetric eigen-
    decompositions take a fraction of `sqrtm`'s time (see `benchmarks/`), and are exact for singular
    covariances (fewer samples than features), where `sqrtm` is approximate and warns."""
    a, b = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
    for name, matrix in (("sigma1", a), ("sigma2", b)):
        if not torch.allclose(matrix, matrix.T, rtol=1e-8, atol=1e-12):
            raise ValueError(f"FID: {name} is not symmetric, so not a covariance")
    values, vectors = torch.linalg.eigh(a)
    check_semidefinite(values, "sigma1")
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    product = root @ b @ root
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)  # symmetric up to rounding
    check_semidefinite(eigenvalues, "sigma1 sigma2")
    return float(eigenvalues.clamp(min=0).sqrt().sum())


NEGATIVE_RTOL = 1e-6  # eigenvalues below -NEGATIVE_RTOL x the largest are no rounding noise


def check_semidefinite(eigenvalues: torch.Tensor, name: str) -> None:
    """Covariances have no negative eigenvalues: rounding leaves tiny ones, anything else is an error."""
    scale = max(float(eigenvalues.abs().max()), 1e-300)
    if float(eigenvalues.min()) < -NEGATIVE_RTOL * scale:
        raise ValueError(f"FID: {name} has the negative eigenvalue {float(eigenvalues.min()):.3g}, so it is not a "
                         "covariance (or a product of two)")


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMD^2 without the diagonal self-similarities of x and y (the cross term keeps its diagonal)."""
    m = len(x)
    k_xx, k_yy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return within / (m * (m - 1)) - 2 * _polynomial_kernel(x, y).sum() / (m * m)


class AllSamples(Metric):
    """A scorer for metrics that need every sample at once (the toy metrics' assignments, the text
    n-gram counts): it keeps them, on the CPU. Only for small samples (2-D points, index sequences),
    never images."""

    full_state_update = False

    def __init__(self, fn: AllSamplesFn, context: EvalContext) -> None:
        super().__init__()
        self.fn, self.context = fn, context
        self.add_state("samples", [], dist_reduce_fx="cat")

    def update(self, samples: torch.Tensor) -> None:
        self.samples.append(samples.cpu())

    def compute(self) -> dict[str, float]:
        return self.fn(self.context, dim_zero_cat(self.samples))

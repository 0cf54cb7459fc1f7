"""The score formulas shared by the Inception and classifier metrics, on logits and features.

Each function reproduces a reference implementation exactly, so that numbers are comparable
with published ones:

- `inception_score`: the original TF code and torch-fidelity's `isc` (contiguous splits, population
  standard deviation; torchmetrics' `InceptionScore` shuffles and uses the sample std instead).
- `feature_statistics` and `frechet_distance`: pytorch-fid (Heusel et al.'s TTUR code), the trace of the
  matrix square root taken from eigenvalues (`trace_sqrt_product`).
- `kernel_inception_distance`: torch-fidelity's `kid` (the MMD-GAN code of Binkowski et al.),
  including its random subsets, so the same seed draws the same subsets.

Everything is computed in float64: the scores are differences of large, nearly equal numbers.
"""
from __future__ import annotations

import numpy as np
import torch

from wgan.signals import stoppable


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and population std over `splits` contiguous splits of exp(mean_x KL(p(y|x) || p(y))).

    Split i holds samples [i*N//splits, (i+1)*N//splits), as in the original code and
    torch-fidelity, so a count not divisible by `splits` gives the same splits as theirs.
    """
    n = len(logits)
    if not 1 <= splits <= n:
        raise ValueError(f"inception_score needs 1 <= splits <= samples, got {splits} splits of {n} samples")
    log_p = logits.double().log_softmax(dim=1)
    bounds = [i * n // splits for i in range(1, splits)]
    scores = torch.stack([_split_score(part) for part in torch.tensor_split(log_p, bounds)])
    return float(scores.mean()), float(scores.std(correction=0))


def _split_score(log_p: torch.Tensor) -> torch.Tensor:
    p = log_p.exp()
    kl = (p * (log_p - p.mean(dim=0).log())).sum(dim=1)
    return kl.mean().exp()


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, float64, as pytorch-fid."""
    if len(features) < 2:
        raise ValueError(f"feature_statistics needs at least 2 samples for a covariance, got {len(features)}")
    x = features.double().cpu().numpy()
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


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


def kernel_inception_distance(features1: torch.Tensor, features2: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean and population std of the unbiased MMD^2 over random subsets, polynomial kernel.

    Each subset draws `subset_size` rows of each input without replacement from
    `np.random.RandomState(seed)`, in torch-fidelity's order, so equal seeds draw equal subsets.
    """
    n1, n2 = len(features1), len(features2)
    if not 2 <= subset_size <= min(n1, n2):
        raise ValueError(f"KID subset size {subset_size} must be at least 2 and at most the number of "
                         f"samples (features1: {n1}, features2: {n2})")
    x, y = features1.double().cpu(), features2.double().cpu()
    rng = np.random.RandomState(seed)
    mmds = torch.stack([
        _unbiased_mmd2(x[rng.choice(n1, subset_size, replace=False)], y[rng.choice(n2, subset_size, replace=False)])
        for _ in stoppable(range(subsets), "kernel inception distance", unit="subset")
    ])
    return float(mmds.mean()), float(mmds.std(correction=0))


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMD^2 without the diagonal self-similarities of x and y (the cross term keeps its diagonal)."""
    m = len(x)
    k_xx, k_yy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return within / (m * (m - 1)) - 2 * _polynomial_kernel(x, y).sum() / (m * m)

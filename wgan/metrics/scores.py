"""The score formulas shared by the Inception and classifier metrics, on logits and features.

Each function reproduces a reference implementation exactly, so that numbers are comparable
with published ones:

- `inception_score`: the original TF code and torch-fidelity's `isc` (contiguous splits, population
  standard deviation; torchmetrics' `InceptionScore` shuffles and uses the sample std instead).
- `feature_statistics` and `frechet_distance`: pytorch-fid (Heusel et al.'s TTUR code).
- `kernel_inception_distance`: torch-fidelity's `kid` (the MMD-GAN code of Binkowski et al.),
  including its random subsets, so the same seed draws the same subsets.

Everything is computed in float64: the scores are differences of large, nearly equal numbers.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from wgan.metrics import matrix_sqrt
from wgan.signals import stop_point, stoppable

log = logging.getLogger(__name__)

FID_EPS = 1e-6  # added to the covariance diagonals when their product has no finite square root
IMAGINARY_ATOL = 1e-3  # the largest imaginary diagonal of sqrtm(s1 s2) dropped as rounding noise
# Square roots of matrices this large or larger run in a child process that a stop can end (scipy
# holds the GIL throughout): on this shared 2-core machine 2.8 s at 512, 33 s at Inception's 2048,
# against 0.8 s to start the child.
CHILD_PROCESS_DIMENSION = 512
STOP_POLL_SECONDS = 0.1  # how often the wait for the child looks for a stop signal


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
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), with pytorch-fid's guards."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    tr_covmean = np.trace(_product_sqrtm(sigma1, sigma2))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """The real square root of sigma1 @ sigma2, as pytorch-fid and the official TTUR code take it: a
    product whose root is not finite is nudged by FID_EPS * I. A singular or ill-conditioned one is
    explained in one warning (scipy's own says nothing of what it means for the score)."""
    covmean, singular = stoppable_sqrtm(sigma1 @ sigma2)
    nudged = not np.isfinite(covmean).all()
    if nudged:
        offset = np.eye(len(sigma1)) * FID_EPS
        covmean, _ = stoppable_sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if singular:
        log.warning(singular_product_warning(len(sigma1), nudged))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_ATOL):
            raise ValueError(f"sqrtm(sigma1 sigma2) has an imaginary component of {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    return covmean


def singular_product_warning(dimensions: int, nudged: bool) -> str:
    nudge = (f" (its root was not finite: {FID_EPS:g} was added to both covariance diagonals first, as pytorch-fid "
             "does)") if nudged else ""
    return (f"FID: the product of the two feature covariances ({dimensions} x {dimensions}) is singular or "
            f"ill-conditioned{nudge}, so its square root, and this FID, are approximate. A covariance falls short of "
            f"rank {dimensions} when it comes from too few samples (N samples span at most N - 1 dimensions) or when "
            f"features do not vary across the samples; score more than {dimensions} samples (metrics.num_samples) "
            "for full-rank covariances")


def stoppable_sqrtm(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """`matrix_sqrt.sqrtm`; from CHILD_PROCESS_DIMENSION on, in a child process (see
    wgan.metrics.matrix_sqrt), which a stop signal ends at once: the stop is honoured here."""
    if len(matrix) < CHILD_PROCESS_DIMENSION:
        return matrix_sqrt.sqrtm(matrix)
    where = f"the matrix square root of FID ({len(matrix)} x {len(matrix)})"
    with tempfile.TemporaryDirectory(prefix="wgan-sqrtm-") as folder:
        given, result = os.path.join(folder, "matrix.npy"), os.path.join(folder, "root.npz")
        np.save(given, matrix)
        # Its own session: a Ctrl-C at the terminal reaches this process alone, which ends the child.
        child = subprocess.Popen([sys.executable, matrix_sqrt.__file__, given, result], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            while True:
                try:
                    _, errors = child.communicate(timeout=STOP_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    stop_point(where)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode != 0:
            stop_point(where)  # a signal to the whole job (SLURM's) ends the child too
            last_line = (errors.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"the matrix square root of FID failed in its process (exit {child.returncode}): "
                               f"{last_line}")
        with np.load(result, allow_pickle=False) as saved:
            return saved["root"], bool(saved["singular"])


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

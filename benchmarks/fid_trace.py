"""FID's trace term at Inception's 2048 dimensions: scipy's `sqrtm` of the covariance product (as
pytorch-fid and the official TTUR code take it) against `wgan.metrics.scores.trace_sqrt_product`
(two symmetric eigendecompositions), timed in one run, with their values.

    python benchmarks/fid_trace.py            # about a minute on 2 CPU cores
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wgan.metrics.scores import trace_sqrt_product  # noqa: E402


def main(dimensions: int = 2048, samples: int = 5000) -> None:
    from scipy import linalg

    rng = np.random.default_rng(0)
    sigma1 = np.cov(rng.standard_normal((samples, dimensions)), rowvar=False)
    sigma2 = np.cov(rng.standard_normal((samples, dimensions)) * 1.1 + 0.1, rowvar=False)
    started = time.perf_counter()
    ours = trace_sqrt_product(sigma1, sigma2)
    eigen_s = time.perf_counter() - started
    started = time.perf_counter()
    scipys = np.trace(linalg.sqrtm(sigma1 @ sigma2)).real
    sqrtm_s = time.perf_counter() - started
    print(f"{dimensions} x {dimensions} from {samples:,} samples: eigenvalues {eigen_s:.2f} s, scipy sqrtm "
          f"{sqrtm_s:.2f} s ({sqrtm_s / eigen_s:.1f}x); traces {ours:.10g} and {scipys:.10g} "
          f"(relative difference {abs(ours - scipys) / abs(scipys):.1e})")


if __name__ == "__main__":
    main()

"""scipy's matrix square root, and whether scipy found the matrix singular or ill-conditioned.

scipy holds the GIL for the whole computation, which takes 33 s for FID's 2048 x 2048 product on
one core here: nothing else in the process runs meanwhile, a stop signal's handler included.
`wgan.metrics.scores` therefore computes large ones in a child process that runs this file as a
script (`python matrix_sqrt.py IN.npy OUT.npz`) and ends it on a stop. As a script it imports
only numpy and scipy (not the project, nor torch), so that the child starts in a fraction of a
second.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np


def sqrtm(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """scipy.linalg.sqrtm(matrix), and whether it warned that the matrix is singular or
    ill-conditioned (its LinAlgWarning, recorded here instead of shown: the caller explains it)."""
    from scipy import linalg  # imported on use: it slows every start

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        root = linalg.sqrtm(matrix)
    return root, any(issubclass(warning.category, linalg.LinAlgWarning) for warning in caught)


if __name__ == "__main__":
    root, singular = sqrtm(np.load(sys.argv[1], allow_pickle=False))
    np.savez(sys.argv[2], root=root, singular=singular)

"""Precision, recall, density and coverage (Kynkäänniemi et al. 2019; Naeem et al. 2020).

Real features X_i (i = 1..N), generated features Y_j (j = 1..M), Euclidean distances, and
r_k(A) = distance from a sample A to its k-th nearest other sample of its own set:

    precision = 1/M  sum_j  1[ exists i: ||Y_j - X_i|| <= r_k(X_i) ]
    recall    = 1/N  sum_i  1[ exists j: ||X_i - Y_j|| <= r_k(Y_j) ]
    density   = 1/(kM) sum_j sum_i 1[ ||Y_j - X_i|| <= r_k(X_i) ]
    coverage  = 1/N  sum_i  1[ min_j ||X_i - Y_j|| <= r_k(X_i) ]

Each is an average over one set of a per-sample quantity; :func:`prdc_terms` returns those
per-sample values so confidence intervals can be bootstrapped over samples (with the k-NN
radii held fixed).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def kth_neighbour_radius(features: np.ndarray, k: int) -> np.ndarray:
    """Distance ``[n]`` of every sample to its k-th nearest other sample of the same set."""
    d = cdist(features, features)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc_terms(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-sample terms: precision/density per generated sample ``[M]``, recall/coverage per real ``[N]``."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"k={k} needs more than k samples per set (got {len(real)} real, {len(fake)} generated)")
    r_real = kth_neighbour_radius(real, k)
    r_fake = kth_neighbour_radius(fake, k)
    d = cdist(real, fake)  # [N, M]
    inside_real = d <= r_real[:, None]  # Y_j inside the ball of X_i
    return {
        "precision": inside_real.any(axis=0).astype(np.float64),
        "recall": (d <= r_fake[None, :]).any(axis=1).astype(np.float64),
        "density": inside_real.sum(axis=0) / float(k),
        "coverage": (d.min(axis=1) <= r_real).astype(np.float64),
    }


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake [M, d]`` against ``real [N, d]``."""
    return {name: float(v.mean()) for name, v in prdc_terms(real, fake, k).items()}

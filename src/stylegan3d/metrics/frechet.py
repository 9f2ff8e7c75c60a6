"""Fréchet distance between Gaussians fitted to two feature sets (FID and its 3D analogue).

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The matrix square root is never formed the slow way (``scipy.linalg.sqrtm``, ~10 s for
2048-d features). ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of
``S1 S2``, which are those of the symmetric matrix ``S1^(1/2) S2 S1^(1/2)`` (feature form, two
``eigh`` of d x d), and also the squared singular values of ``X1 X2^T / sqrt((n1-1)(n2-1))``
for the centred feature matrices X (sample form, one SVD of n1 x n2). The sample form is exact
and much cheaper when there are fewer samples than feature dimensions, the usual case for
bootstrapped confidence intervals. Everything is float64.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and unbiased covariance ``[d, d]`` (ddof=1) of features ``[n, d]``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features [n >= 2, d], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) * 0.5)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric positive semi-definite ``S1, S2`` (``[d, d]``)."""
    r = _sqrtm_psd(np.asarray(sigma1, dtype=np.float64))
    m = r @ np.asarray(sigma2, dtype=np.float64) @ r
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) * 0.5), 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, S1) and N(mu2, S2)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return float(max(value, 0.0))


def frechet_distance_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features ``f1 [n1, d]`` and ``f2 [n2, d]``.

    Uses the sample (SVD) form when ``min(n1, n2) < d`` and the feature (eigh) form otherwise;
    both give the same value (tested).
    """
    a = np.asarray(f1, dtype=np.float64)
    b = np.asarray(f2, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature matrices must be [n, d] with the same d, got {a.shape} and {b.shape}")
    n1, n2, d = a.shape[0], b.shape[0], a.shape[1]
    if n1 < 2 or n2 < 2:
        raise ValueError("the Fréchet distance needs at least 2 samples per set")
    if min(n1, n2) >= d:
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    x1, x2 = a - mu1, b - mu2
    tr1 = float(np.einsum("ij,ij->", x1, x1)) / (n1 - 1)
    tr2 = float(np.einsum("ij,ij->", x2, x2)) / (n2 - 1)
    nuclear = float(np.linalg.svd(x1 @ x2.T, compute_uv=False).sum()) / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(max(diff @ diff + tr1 + tr2 - 2.0 * nuclear, 0.0))

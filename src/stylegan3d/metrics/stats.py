"""Bootstrap confidence intervals (percentile method) over samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def shifted_percentile_ci(
    values: np.ndarray, estimate: float, level: float = 0.95, nonnegative: bool = True
) -> list[float] | None:
    """95 % interval from bootstrap values ``[B]``: their central percentiles, shifted so that
    the bootstrap median sits on the point ``estimate`` (bounds clipped at 0 if ``nonnegative``).

    Resampling with replacement duplicates samples, which biases sample-size-dependent
    statistics (Fréchet distance, bMMD²) upwards, so raw percentiles can miss the estimate;
    the shift keeps the bootstrap's spread but not that bias. For means (PRDC, MS-SSIM,
    memorisation) the median is the estimate up to noise and the shift is ~0.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, med, hi = np.percentile(v, [50 * (1 - level), 50, 50 * (1 + level)])
    bounds = [estimate + lo - med, estimate + hi - med]
    return [float(max(b, 0.0)) if nonnegative else float(b) for b in bounds]


def bootstrap_two(
    fn: Callable[[np.ndarray, np.ndarray], float | np.ndarray],
    n1: int,
    n2: int,
    n_boot: int,
    rng: np.random.Generator,
    shape: tuple[int, ...] = (),
) -> np.ndarray:
    """``fn(i1, i2)`` on ``n_boot`` resamples (with replacement) of ``range(n1)`` and ``range(n2)``.

    Returns ``[n_boot]`` or ``[n_boot, K]`` for vector-valued ``fn`` (``shape`` is ``fn``'s value
    shape, ``()`` or ``(K,)``: it gives ``n_boot = 0`` its ``[0]`` or ``[0, K]``).
    """
    out = [fn(rng.integers(0, n1, n1), rng.integers(0, n2, n2)) for _ in range(n_boot)]
    return np.asarray(out, dtype=np.float64).reshape(n_boot, *shape)


def bootstrap_mean(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of per-sample ``values [n]`` -> ``[n_boot]``."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or n_boot == 0:
        return np.zeros(0)
    return v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)

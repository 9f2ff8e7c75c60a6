"""bMMD²: the batch-wise linear-kernel maximum mean discrepancy of the 3D-StyleGAN reference.

For batches X_b (generated) and Y_b (real) of ``b`` flattened volumes each:

    bMMD² = mean over batches of || mean(X_b) - mean(Y_b) ||²

i.e. the squared Euclidean distance between the batch-mean volumes, summed over all voxels
(intensities in [0, 1]), averaged over batches. It is the biased (V-statistic) MMD² with the
linear kernel k(x, y) = <x, y>, so it grows with the voxel count: divide by C·D·H·W to compare
resolutions. It also contains the variance term tr(Σx + Σy) / b, which dominates when the
distributions are close. MONAI's ``MMDMetric`` computes the unbiased (U-statistic) linear
MMD², an unbiased estimate of ||E x - E y||² without that term; :func:`linear_mmd2` gives
either estimator and :func:`mmd2_unbiased_gram` the unbiased one over whole sets.

Everything here works on the Gram matrix K = V Vᵀ of the flattened volumes (float64), computed
once: any batching, bootstrap resample or pairwise distance is then a small index operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

BLOCK_BYTES = 256 * 2**20
"""Memory of one float64 block of volumes read for the Gram matrix."""


def _chunk(vs: Any, chunk: int | None) -> int:
    return chunk if chunk is not None else int(max(1, min(64, BLOCK_BYTES // (8 * vs.voxels))))


def _flat(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(v).reshape(v.shape[0], -1)).double()


def gram_matrix(vs: Any, chunk: int | None = None, progress: Any = None) -> np.ndarray:
    """Gram matrix ``[N, N]`` (float64) of the flattened volumes of a VolumeSet.

    Volumes are read ``chunk`` at a time (default: ~256 MiB per block); blocks i <= j are
    computed and mirrored.
    """
    chunk = _chunk(vs, chunk)
    starts = list(range(0, len(vs), chunk))
    gram = np.zeros((len(vs), len(vs)), dtype=np.float64)
    task = (
        progress.add_task("gram (bMMD², memorisation)", total=len(starts) * (len(starts) + 1) // 2)
        if progress
        else None
    )
    for i, a in enumerate(starts):
        ra = np.arange(a, min(a + chunk, len(vs)))
        xa = _flat(vs.get(ra))
        for b in starts[i:]:
            rb = np.arange(b, min(b + chunk, len(vs)))
            xb = xa if b == a else _flat(vs.get(rb))
            block = (xa @ xb.T).numpy()
            gram[np.ix_(ra, rb)] = block
            gram[np.ix_(rb, ra)] = block.T
            if task is not None:
                progress.advance(task)
    return gram


def cross_gram(rows: Any, sets: list[Any], chunk: int | None = None) -> np.ndarray:
    """Inner products ``[len(rows), sum(len(s) for s in sets)]`` of the volumes of VolumeSet
    ``rows`` with those of each VolumeSet in ``sets`` (concatenated in order), float64."""
    chunk = _chunk(rows, chunk)
    parts = []
    for _, x in rows.batches(chunk):
        xt = _flat(x)
        parts.append(np.concatenate([(xt @ _flat(y).T).numpy() for vs in sets for _, y in vs.batches(chunk)], 1))
    return np.concatenate(parts, axis=0)


def batch_mean_sqdist(gram: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """``||mean(V[x]) - mean(V[y])||²`` from the Gram matrix (row indices ``x`` and ``y`` into it)."""
    return float(gram[np.ix_(x, x)].mean() + gram[np.ix_(y, y)].mean() - 2.0 * gram[np.ix_(x, y)].mean())


def bmmd2_gram(gram: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator) -> float:
    """bMMD² between the volumes at Gram rows ``x`` and ``y``.

    Both index lists are shuffled with ``rng`` and cut into ``min(len) // batch`` batch pairs
    (one batch of ``min(len)`` volumes when fewer than ``batch`` are available).
    """
    x, y = rng.permutation(np.asarray(x)), rng.permutation(np.asarray(y))
    m = min(len(x), len(y))
    b = min(batch, m)
    nb = m // b
    return float(np.mean([batch_mean_sqdist(gram, x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(nb)]))


def mmd2_unbiased_gram(gram: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased linear-kernel MMD² (U-statistic, MONAI's ``MMDMetric``) of Gram rows ``x`` vs ``y``.

    An unbiased estimate of ``||E x - E y||²``: ~0 (possibly negative) for equal distributions.
    """
    kxx, kyy = gram[np.ix_(x, x)], gram[np.ix_(y, y)]
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * gram[np.ix_(x, y)].mean())


def bmmd2(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch: int = 8) -> float:
    """bMMD² computed directly on volumes ``[N, ...]``: consecutive batches, no shuffling."""
    a = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(len(x), -1)
    c = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(len(y), -1)
    m = min(len(a), len(c))
    b = min(batch, m)
    vals = [
        ((a[i * b : (i + 1) * b].mean(0) - c[i * b : (i + 1) * b].mean(0)) ** 2).sum().item() for i in range(m // b)
    ]
    return float(np.mean(vals))


def linear_mmd2(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, unbiased: bool = False) -> float:
    """Linear-kernel MMD² of two sample sets ``[n, ...]`` and ``[m, ...]`` (all values, float64).

    ``unbiased=False``: ``||mean x - mean y||²`` (one bMMD² batch). ``unbiased=True``: the
    U-statistic without the i == j terms, as MONAI's ``MMDMetric``.
    """
    a = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(len(x), -1)
    c = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(len(y), -1)
    if not unbiased:
        return float(((a.mean(0) - c.mean(0)) ** 2).sum())
    n, m = len(a), len(c)
    kxx, kyy = a @ a.T, c @ c.T
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2.0 * (a @ c.T).mean())

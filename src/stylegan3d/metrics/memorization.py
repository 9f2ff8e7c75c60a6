"""Memorisation check: is a generated volume a near-copy of a training volume?

Distances are root-mean-square voxel differences (intensity units, [0, 1] data):
``rms(a, b) = sqrt(mean((a - b)²))``, from the Gram matrix of the flattened volumes
(``||a - b||² = <a,a> + <b,b> - 2<a,b>``). For each generated sample we report its nearest
training volume (index, file name, distance). The summary number is the fraction of
generated samples closer to their nearest training volume than the closest pair of distinct
training volumes is to each other; real data gives ~0, copies of training volumes give 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sq_distances(gram: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[len(rows), len(cols)]`` between Gram rows and columns."""
    diag = np.diagonal(gram)
    d2 = diag[rows][:, None] + diag[cols][None, :] - 2.0 * gram[np.ix_(rows, cols)]
    return np.clip(d2, 0.0, None)


def nearest(gram: np.ndarray, queries: np.ndarray, train: np.ndarray, voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: (position in ``train`` of its nearest training row, RMS distance)."""
    d2 = sq_distances(gram, np.asarray(queries), np.asarray(train))
    pos = d2.argmin(axis=1)
    return pos, np.sqrt(d2[np.arange(len(pos)), pos] / voxels)


def closest_pair(gram: np.ndarray, train: np.ndarray, voxels: int) -> float:
    """RMS distance of the closest pair of distinct training rows."""
    d2 = sq_distances(gram, np.asarray(train), np.asarray(train))
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(d2.min() / voxels))


def memorisation_report(
    gram: np.ndarray,
    queries: np.ndarray,
    train: np.ndarray,
    voxels: int,
    query_names: Sequence[str],
    train_names: Sequence[str],
) -> dict:
    """Nearest training volume per query and the fraction closer than the closest training pair.

    ``queries``/``train`` are Gram rows; ``train_names`` are the names of the ``train`` rows.
    Returns ``{"threshold", "closer": bool [Q], "distance": [Q], "samples": [...]}``.
    """
    pos, dist = nearest(gram, queries, train, voxels)
    threshold = closest_pair(gram, train, voxels)
    closer = dist < threshold
    samples = [
        {"sample": str(q), "nearest": str(train_names[p]), "distance": float(d), "closer_than_real_pairs": bool(c)}
        for q, p, d, c in zip(query_names, pos, dist, closer, strict=True)
    ]
    return {"threshold": threshold, "closer": closer, "distance": dist, "samples": samples}

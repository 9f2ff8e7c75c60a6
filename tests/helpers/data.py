"""Data of the tests: the demo grid, a NIfTI writer and the tiny prepared-dataset writers
(``volumes.npy`` + ``manifest.json``, docs/formats.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

DEMO_SHAPE = [20, 24, 28]
"""Voxel grid of the demo preset."""
DEMO_AFFINE = np.array([[8.0, 0.0, 0.0, -80.0], [0.0, 8.0, 0.0, -114.0], [0.0, 0.0, 8.0, -106.0], [0.0, 0.0, 0.0, 1.0]])
"""World frame of the demo preset's grid (8 mm voxels)."""
COHORT_SEED = 3
"""Seed of the data tests' synthetic cohort."""
TINY_SHAPE = (10, 12, 14)
"""Grid of the tiny datasets (16 mm voxels)."""


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` with ``affine`` as NIfTI (format from the suffix)."""
    nib.save(nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64)), str(path))
    return path


def write_prepared(
    path: Path,
    vols: np.ndarray,
    *,
    spacing: float,
    affine: np.ndarray | Sequence[Sequence[float]],
    names: Sequence[str] | None = None,
    records: Sequence[dict[str, Any]] | None = None,
    **fields: Any,
) -> Path:
    """A prepared dataset of ``vols`` ``[N, C, D, H, W]`` (stored as float16) in ``path``.

    ``names``: the volumes' file names (default ``sub-000.nii.gz``, ...); ``records``: further fields of
    each volume record (default: a made-up ``sha256``); ``fields``: further manifest keys (e.g. ``frame``).
    """
    path.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(vols).astype(np.float16)
    np.save(path / "volumes.npy", arr)
    names = names or [f"sub-{i:03d}.nii.gz" for i in range(len(arr))]
    records = records or [{"sha256": f"{i:064x}"} for i in range(len(arr))]
    manifest = {
        "format": "stylegan3d-dataset",
        "version": 1,
        "shape": list(arr.shape[2:]),
        "channels": int(arr.shape[1]),
        "spacing": [float(spacing)] * 3,
        "dtype": "float16",
        "affine": np.asarray(affine, dtype=np.float64).tolist(),
        **fields,
        "volumes": [{"index": i, "name": n, **r} for i, (n, r) in enumerate(zip(names, records, strict=True))],
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


def ellipsoids(n: int, shape: Sequence[int] = TINY_SHAPE, seed: int = 0, vary_brightness: bool = True) -> np.ndarray:
    """``[n, 1, *shape]`` ellipsoid 'brains' in [0, 1]; ``vary_brightness``: each scaled by a random 0.7-1."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    vols = []
    for _ in range(n):
        radii = 0.6 + 0.25 * rng.random((3, 1, 1, 1))
        vol = np.clip(1.3 - np.sqrt(((grid / radii) ** 2).sum(0)), 0, 1)
        vols.append(vol * (0.7 + 0.3 * rng.random()) if vary_brightness else vol)
    return np.stack(vols)[:, None]


def write_tiny_dataset(
    path: Path, n: int = 8, shape: Sequence[int] = TINY_SHAPE, seed: int = 0, vary_brightness: bool = True
) -> Path:
    """A prepared dataset of ``n`` :func:`ellipsoids` on 16 mm voxels in the MNI frame, centred on the origin."""
    spacing = 16.0
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing / 2
    vols = ellipsoids(n, shape, seed, vary_brightness)
    return write_prepared(path, vols, spacing=spacing, affine=affine, frame="mni")

"""Shared helpers of the training tests (tiny network, hand-made dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_SHAPE = (10, 12, 14)
TINY_OVERRIDES = [
    "resolution=[10,12,14]",
    "width=8",
    "z_dim=8",
    "g.mapping_layers=2",
    "train.batch=4",
    "train.tick_kimg=0.008",
    "train.snap_ticks=1",
    "train.ema_kimg=0.01",
    "train.r1_interval=4",
    "train.pl_interval=2",
    "train.aug=ada",
    "train.ada_kimg=0.1",
    "train.ada_interval=1",
    "train.precision=fp32",
]


def write_dataset(path: Path, n: int = 8, shape=TINY_SHAPE, seed: int = 0) -> Path:
    """Write a prepared dataset (volumes.npy + manifest.json, docs/formats.md) of ellipsoid 'brains'."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    vols = []
    for _ in range(n):
        radii = 0.6 + 0.25 * rng.random((3, 1, 1, 1))
        r = np.sqrt(((grid / radii) ** 2).sum(0))
        vols.append(np.clip(1.3 - r, 0, 1) * (0.7 + 0.3 * rng.random()))
    np.save(path / "volumes.npy", np.stack(vols)[:, None].astype(np.float16))
    spacing = 16.0
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing / 2
    manifest = {
        "format": "stylegan3d-dataset", "version": 1, "shape": list(shape), "channels": 1,
        "spacing": [spacing] * 3, "dtype": "float16", "affine": affine.tolist(), "frame": "mni",
        "volumes": [{"index": i, "name": f"sub-{i:03d}.nii.gz", "sha256": f"{i:064x}"} for i in range(n)],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path

TINY_ARGS = ["--preset", "demo"] + [a for o in TINY_OVERRIDES for a in ("--set", o)]

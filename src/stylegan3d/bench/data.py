"""Random volumes for the bench: in memory (the trainer's data) and as a prepared dataset (the loader's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from stylegan3d.config import Config


class RandomVolumes:
    """In-memory stand-in for a prepared dataset (what ``Trainer`` accepts as ``data``).

    ``n`` random volumes ``[C, D, H, W]`` in [-1, 1]; ``geometry``/``manifest`` describe them.
    """

    def __init__(self, cfg: Config, n: int, seed: int = 0) -> None:
        m = cfg.model
        gen = torch.Generator().manual_seed(seed)
        self.volumes = torch.rand(n, m.channels, *m.resolution, generator=gen) * 2 - 1
        spacing = [float(m.spacing_mm)] * 3
        affine = np.diag(spacing + [1.0]).tolist()
        self.geometry = {"shape": list(m.resolution), "spacing": spacing, "affine": affine, "channels": m.channels}
        self.manifest = {
            "shape": list(m.resolution),
            "spacing": spacing,
            "affine": affine,
            "volumes": [{"name": f"random-{i}", "sha256": f"{i:064x}"} for i in range(n)],
        }
        self.labels = None

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.volumes[i]


def write_random_dataset(path: Path, cfg: Config, n: int, seed: int = 0) -> Path:
    """A prepared dataset (docs/formats.md: float16 ``volumes.npy`` + ``manifest.json``) of random volumes."""
    m = cfg.model
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = np.lib.format.open_memmap(
        path / "volumes.npy", mode="w+", dtype=np.float16, shape=(n, m.channels, *m.resolution)
    )
    for i in range(n):
        arr[i] = rng.random((m.channels, *m.resolution), dtype=np.float32)
    arr.flush()
    del arr
    spacing = [float(m.spacing_mm)] * 3
    manifest = {
        "format": "stylegan3d-dataset",
        "version": 1,
        "shape": list(m.resolution),
        "channels": m.channels,
        "spacing": spacing,
        "dtype": "float16",
        "affine": np.diag(spacing + [1.0]).tolist(),
        "frame": "centre",
        "volumes": [{"index": i, "name": f"random-{i:04d}", "sha256": f"{i:064x}"} for i in range(n)],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path

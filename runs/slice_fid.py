"""Why is the reference slice FID the hardest target (issue 18)? FID per sagittal slice.

    .venv/bin/python runs/slice_fid.py src/stylegan3d/models/demo-8mm.safetensors

The reference slice FID uses one slice per volume, the middle of the first axis (the midline).
Here the same Inception FID is taken slice by slice across that axis, each against the same
slice of the first 64 held-out subjects, for: 64 generated volumes (the metrics' seeds), 64
training subjects (a real-vs-real baseline), and the same 64 training subjects blurred with a
Gaussian of sigma 0.5 voxel (how much a smoother rendering alone costs).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from diversity import HELDOUT, TRAIN, generated
from scipy.ndimage import gaussian_filter

from stylegan3d.metrics import inception
from stylegan3d.metrics.frechet import frechet_distance_features


def fid_at(x: np.ndarray, ref: np.ndarray, d: int) -> float:
    """Slice FID between slice ``d`` of the first axis of two sets ``[N, D, H, W]``."""
    fx, fr = (inception.image_features(torch.from_numpy(np.ascontiguousarray(v[:, d]))) for v in (x, ref))
    return frechet_distance_features(fx, fr)


def main(ckpt: str) -> None:
    held = np.load(HELDOUT)[:64, 0].astype(np.float32)
    train = np.load(TRAIN)[:64, 0].astype(np.float32)
    sets = {"generated": generated(ckpt), "train": train, "train_blur0.5": gaussian_filter(train, (0, 0.5, 0.5, 0.5))}
    mid = held.shape[1] // 2
    print("slice  " + "  ".join(f"{k:>13}" for k in sets) + "  generated/train")
    for d in range(mid - 4, mid + 3):
        row = {k: fid_at(v, held, d) for k, v in sets.items()}
        tag = " (reference)" if d == mid else ""
        cells = "  ".join(f"{v:13.1f}" for v in row.values())
        print(f"{d:5d}  {cells}  {row['generated'] / row['train']:15.2f}{tag}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

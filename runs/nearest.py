"""Are generated volumes copies of training subjects? (issue 18, beside the memorisation metric)

    .venv/bin/python runs/nearest.py CKPT

The memorisation metric counts generated volumes closer (RMS voxel distance) to a training volume
than the closest pair of training volumes. Smooth samples sit closer to everything than noisy real
scans do (a distance between two real scans carries two noise fields, one to a smooth sample only
one), so this also reports, for 64 generated (seeds 1000-1063, as the metrics) and 64 held-out
real volumes against the 336 training ones:
- d1, the distance to the nearest training volume, on the raw volumes and after a Gaussian blur
  (sigma 1 voxel) that removes most of the voxel noise from both sides;
- d1 / d2, nearest over second nearest: a copy of one subject is much closer to it than to any
  other (ratio well below the held-out reals'), a new brain is not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from stylegan3d.infer.api import load

ROOT = Path(__file__).resolve().parent


def nearest_two(q: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS distances of each row of ``q [Q, V]`` to its nearest and second-nearest row of ``t [T, V]``."""
    d2 = (q**2).sum(1)[:, None] + (t**2).sum(1)[None] - 2 * q @ t.T
    d = np.sqrt(np.maximum(d2, 0) / q.shape[1])
    d.sort(1)
    return d[:, 0], d[:, 1]


def closest_pair(t: np.ndarray) -> float:
    """The smallest RMS distance between two distinct rows of ``t``."""
    d2 = (t**2).sum(1)[:, None] + (t**2).sum(1)[None] - 2 * t @ t.T
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(max(d2.min(), 0) / t.shape[1]))


def main(ckpt: str) -> None:
    train = np.load(ROOT / "ds8mm-train" / "volumes.npy")[:, 0].astype(np.float64)
    real = np.load(ROOT / "ds8mm-heldout" / "volumes.npy")[:64, 0].astype(np.float64)
    gen = np.asarray(load(ckpt).generate(list(range(1000, 1064)), trunc=1.0, noise_mode="const", batch=8))[:, 0]
    gen = gen.astype(np.float64)
    for label, f in (("raw", lambda v: v), ("blurred (sigma 1 voxel)", lambda v: gaussian_filter(v, (0, 1, 1, 1)))):
        t, r, g = (f(x).reshape(len(x), -1) for x in (train, real, gen))
        thr = closest_pair(t)
        print(f"{label}: closest training pair {thr:.4f}")
        head = ("d1 min", "d1 p10", "d1 med", "< pair", "d1/d2 min", "d1/d2 med")
        print(f"  {'set':10s} " + " ".join(f"{h:>7s}" for h in head))
        for name, q in (("held-out", r), ("generated", g)):
            d1, d2 = nearest_two(q, t)
            ratio = d1 / d2
            print(
                f"  {name:10s} {d1.min():7.4f} {np.quantile(d1, 0.1):7.4f} {np.median(d1):7.4f} "
                f"{int((d1 < thr).sum()):6d} {ratio.min():9.3f} {np.median(ratio):9.3f}"
            )


if __name__ == "__main__":
    main(sys.argv[1])

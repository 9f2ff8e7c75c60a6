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
Distances and the threshold are the metric's own (stylegan3d.metrics.memorization).
"""

from __future__ import annotations

import sys

import numpy as np
from diversity import HELDOUT, TRAIN, generated
from scipy.ndimage import gaussian_filter

from stylegan3d.metrics.memorization import closest_pair, sq_distances


def main(ckpt: str) -> None:
    train = np.load(TRAIN)[:, 0].astype(np.float64)
    real = np.load(HELDOUT)[:64, 0].astype(np.float64)
    gen = generated(ckpt).astype(np.float64)
    sets = np.concatenate([train, real, gen])
    rows_t = np.arange(len(train))
    rows = {"held-out": len(train) + np.arange(len(real)), "generated": len(train) + len(real) + np.arange(len(gen))}
    voxels = train[0].size
    head = ("d1 min", "d1 p10", "d1 med", "< pair", "d1/d2 min", "d1/d2 med")
    for label, blur in (("raw", 0), ("blurred (sigma 1 voxel)", 1)):
        x = gaussian_filter(sets, (0, blur, blur, blur)).reshape(len(sets), -1)  # sigma 0: unchanged
        gram = x @ x.T
        thr = closest_pair(gram, rows_t, voxels)
        print(f"{label}: closest training pair {thr:.4f}")
        print(f"  {'set':10s} " + " ".join(f"{h:>{w}s}" for h, w in zip(head, (7, 7, 7, 6, 9, 9), strict=True)))
        for name, q in rows.items():
            d = np.sort(np.sqrt(sq_distances(gram, q, rows_t) / voxels), axis=1)
            d1, ratio = d[:, 0], d[:, 0] / d[:, 1]
            print(
                f"  {name:10s} {d1.min():7.4f} {np.quantile(d1, 0.1):7.4f} {np.median(d1):7.4f} "
                f"{int((d1 < thr).sum()):6d} {ratio.min():9.3f} {np.median(ratio):9.3f}"
            )


if __name__ == "__main__":
    main(sys.argv[1])

"""Which factors of variation do generated volumes under- or over-represent (issue 18)?

    .venv/bin/python runs/diversity.py src/stylegan3d/models/demo-8mm.safetensors

64 generated volumes (seeds 1000-1063, psi 1, const noise, as the metrics) against 64 held-out
real ones: per-volume summaries (foreground > 0.1: size, intensity quantiles, centroid and extent
in voxels; left-right asymmetry) with their spread across each set, the voxelwise spread, and the
spread of both sets along the first 10 principal components of the real set.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stylegan3d.infer.api import load

HELDOUT = Path(__file__).resolve().parent / "ds8mm-heldout" / "volumes.npy"
TRAIN = HELDOUT.parent.parent / "ds8mm-train" / "volumes.npy"
SEEDS = list(range(1000, 1064))  # the seeds runs/evaluate.sh gives the metrics


def generated(ckpt: str, seeds: Sequence[int] = SEEDS) -> np.ndarray:
    """Volumes ``[len(seeds), D, H, W]`` as the metrics sample them (psi 1, const noise); by
    default the 64 they see (seeds 1000-1063)."""
    return np.asarray(load(ckpt).generate(list(seeds), trunc=1.0, noise_mode="const", batch=8))[:, 0]


def summary(v: np.ndarray) -> dict[str, float]:
    """Scalar summaries of one volume ``[D, H, W]`` in [0, 1]."""
    fg = v > 0.1
    idx = np.argwhere(fg)
    centre, extent = idx.mean(0), idx.max(0) - idx.min(0)
    q = np.quantile(v[fg], [0.25, 0.5, 0.75, 0.95])
    return {
        "fg_voxels": float(fg.sum()),
        "mean": float(v[fg].mean()),
        **{f"q{p}": float(x) for p, x in zip((25, 50, 75, 95), q, strict=True)},
        **{f"centre_{a}": float(c) for a, c in zip("dhw", centre, strict=True)},
        **{f"extent_{a}": float(e) for a, e in zip("dhw", extent, strict=True)},
        "lr_asym": float(np.abs(v - v[:, :, ::-1]).mean()),
    }


def main(ckpt: str) -> None:
    real = np.load(HELDOUT, mmap_mode="r")[:64, 0].astype(np.float32)
    gen = generated(ckpt)
    rs, gs = [summary(v) for v in real], [summary(v) for v in gen]
    print(f"{'feature':12s} {'real mean':>10s} {'gen mean':>10s} {'real std':>10s} {'gen std':>10s} {'ratio':>6s}")
    for k in rs[0]:
        r, g = np.array([d[k] for d in rs]), np.array([d[k] for d in gs])
        ratio = g.std() / max(r.std(), 1e-12)
        print(f"{k:12s} {r.mean():10.4g} {g.mean():10.4g} {r.std():10.4g} {g.std():10.4g} {ratio:6.2f}")
    print(f"mean voxelwise std: real {real.std(0).mean():.4f}, generated {gen.std(0).mean():.4f}")
    x, y = real.reshape(64, -1), gen.reshape(64, -1)
    mu = x.mean(0)
    pcs = np.linalg.svd(x - mu, full_matrices=False)[2][:10]
    pr, pg = (x - mu) @ pcs.T, (y - mu) @ pcs.T
    print("std along the real set's PCs 1-10")
    print("  real     ", np.round(pr.std(0), 2))
    print("  generated", np.round(pg.std(0), 2))


if __name__ == "__main__":
    main(sys.argv[1])

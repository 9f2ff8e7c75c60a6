"""3-D MS-SSIM between random pairs of volumes: a diversity measure.

The mean MS-SSIM over random pairs of distinct volumes of one set is high when the volumes
look alike (mode collapse) and lower for diverse sets; a generator should match the real
data's value. MONAI's ``MultiScaleSSIMMetric`` with its defaults (5 scales, kernel 11) refuses
volumes under 160 voxels per side, so the scales and kernel are chosen from the volume size:

* MONAI needs ``min_side // (scales - 1)² > kernel - 1``;
* we also want the coarsest scale (``min_side / 2^(scales-1)``) to hold a full kernel;
* the most scales (up to 5) with a kernel of at least 5, then the largest odd kernel <= 11;
  for very small volumes fewer scales or a kernel of 3.

This gives 80x96x112 -> 5 scales, kernel 5; 40x48x56 -> 3 scales, kernel 9;
20x24x28 -> 3 scales, kernel 5; 160x192x224 -> 5 scales, kernel 9. The scale weights are the
first ``scales`` of MONAI's default ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``, renormalised
to sum to 1. Gaussian sigma 1.5, data range 1, K1 = 0.01, K2 = 0.03 (MONAI defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stylegan3d.errors import UserError

DEFAULT_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _fits(side: int, scales: int, kernel: int) -> bool:
    div = max(1, scales - 1) ** 2
    return side // div > kernel - 1 and side // 2 ** (scales - 1) >= kernel


def ms_ssim_settings(shape: Sequence[int]) -> tuple[int, int, tuple[float, ...]]:
    """``(scales, kernel_size, weights)`` for volumes of spatial ``shape`` (D, H, W)."""
    side = int(min(shape))
    for min_kernel in (5, 3):
        for scales in range(5, 0, -1):
            kernels = [k for k in range(11, min_kernel - 1, -2) if _fits(side, scales, k)]
            if kernels:
                w = np.asarray(DEFAULT_WEIGHTS[:scales])
                return scales, kernels[0], tuple(float(v) for v in w / w.sum())
    raise UserError(f"volumes of shape {list(shape)} are too small for MS-SSIM (need >= 3 voxels per side)")


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per pair of volumes ``x, y [B, C, D, H, W]`` in [0, 1] -> ``[B]`` (mean over channels).

    MONAI's ``MultiScaleSSIMMetric(spatial_dims=3, data_range=1)`` with the scales and kernel of
    :func:`ms_ssim_settings`.
    """
    from monai.metrics import MultiScaleSSIMMetric

    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"need two [B, C, D, H, W] batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    _, kernel, weights = ms_ssim_settings(x.shape[2:])
    metric = MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, kernel_size=kernel, weights=weights)
    b, c = x.shape[:2]
    per_channel = metric(x.float().reshape(b * c, 1, *x.shape[2:]), y.float().reshape(b * c, 1, *y.shape[2:]))
    return per_channel.reshape(b, c).mean(dim=1)


def random_pairs(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` distinct unordered pairs ``[P, 2]`` of distinct indices in ``range(n)``."""
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    total = n * (n - 1) // 2
    pick = rng.choice(total, size=min(count, total), replace=False)
    iu, ju = np.triu_indices(n, k=1)
    return np.stack([iu[pick], ju[pick]], axis=1).astype(np.int64)


def pairwise_ms_ssim(vs: Any, pairs: np.ndarray, batch: int = 8, progress: Any = None, label: str = "") -> np.ndarray:
    """MS-SSIM ``[P]`` of the volume pairs ``pairs [P, 2]`` (rows of a VolumeSet)."""
    out = []
    task = progress.add_task(f"ms-ssim {label}".strip(), total=len(pairs)) if progress is not None else None
    for start in range(0, len(pairs), batch):
        p = pairs[start : start + batch]
        a = torch.from_numpy(vs.get(p[:, 0]))
        b = torch.from_numpy(vs.get(p[:, 1]))
        out.append(ms_ssim(a, b).numpy())
        if task is not None:
            progress.advance(task, len(p))
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

"""Reconstruction quality of a projection: PSNR, 3D SSIM, MAE and MSE, optionally inside a mask."""

from __future__ import annotations

import math

import numpy as np
import torch

from stylegan3d.errors import UserError


def ssim_kernel(shape: tuple[int, ...] | list[int], win: int = 11) -> int:
    """Largest odd Gaussian window <= ``win`` that fits the volume (at least 3)."""
    k = min(win, min(shape))
    return max(3, k if k % 2 else k - 1)


def reconstruction_metrics(
    reconstruction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """PSNR (dB, data range 1), 3D SSIM and MAE of ``[C, D, H, W]`` volumes in [0, 1].

    SSIM uses MONAI's Gaussian-window SSIM (window 11, sigma 1.5, shrunk for tiny volumes); with
    a ``mask [D, H, W]`` all three are averaged over the voxels inside it (for SSIM: both volumes
    are zeroed outside the mask and the SSIM map is averaged over windows centred inside it).
    """
    from monai.metrics.regression import compute_ssim_and_cs

    x = torch.as_tensor(np.asarray(reconstruction, np.float32))[None]
    y = torch.as_tensor(np.asarray(target, np.float32))[None]
    if x.shape != y.shape:
        raise UserError(f"reconstruction {list(x.shape)} and target {list(y.shape)} differ in shape")
    m = None if mask is None else torch.as_tensor(np.asarray(mask, bool))[None, None].expand_as(x)
    diff = x - y
    sq = diff.square()
    mse = float(sq[m].mean()) if m is not None else float(sq.mean())
    mae = float(diff.abs()[m].mean()) if m is not None else float(diff.abs().mean())
    k = ssim_kernel(x.shape[2:])
    if m is not None:  # voxels outside the mask must not lower the SSIM of windows on its border
        x, y = x * m, y * m
    ssim_map, _ = compute_ssim_and_cs(
        x, y, spatial_dims=x.ndim - 2, kernel_size=[k] * (x.ndim - 2), kernel_sigma=[1.5] * (x.ndim - 2), data_range=1.0
    )
    if m is not None:
        h = k // 2
        inner = m[(slice(None), slice(None)) + tuple(slice(h, s - h) for s in m.shape[2:])]
        ssim = float(ssim_map[inner].mean()) if bool(inner.any()) else float("nan")
    else:
        ssim = float(ssim_map.mean())
    psnr = float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)
    return {"psnr": psnr, "ssim": ssim, "mae": mae, "mse": mse}

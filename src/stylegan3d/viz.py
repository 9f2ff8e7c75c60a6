"""Tri-planar pictures of volumes: axial, coronal and sagittal slices through the centre.

Volumes are ``[D, H, W]`` arrays in RAS voxel order (i = left->right, j = posterior->anterior,
k = inferior->superior), intensities in [0, 1]. Slices are shown in radiological-free,
anatomical orientation: superior/anterior up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from stylegan3d.fileio import atomic_path


def _as_volume(vol) -> np.ndarray:
    a = vol.detach().float().cpu().numpy() if hasattr(vol, "detach") else np.asarray(vol, dtype=np.float32)
    while a.ndim > 3:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {a.shape}")
    return a


def triplanar(vol, index: Sequence[int] | None = None, spacing: Sequence[float] | None = None) -> list[np.ndarray]:
    """Three 2-D slices (sagittal, coronal, axial) through ``index`` (default: centre).

    Each slice is oriented for display (row 0 at the top = superior / anterior), and
    resampled with nearest neighbour so anisotropic ``spacing`` (mm) shows true proportions.
    """
    a = _as_volume(vol)
    d, h, w = a.shape
    i, j, k = index if index is not None else (d // 2, h // 2, w // 2)
    sag = a[i, :, :].T[::-1]  # rows: k (superior up), cols: j (posterior->anterior)
    cor = a[:, j, :].T[::-1]  # rows: k, cols: i (left->right)
    axi = a[:, :, k].T[::-1]  # rows: j (anterior up), cols: i
    planes = [np.ascontiguousarray(p) for p in (sag, cor, axi)]
    if spacing is not None and len(set(spacing)) > 1:
        planes = _isotropic(planes, spacing)
    return planes


def _isotropic(planes: list[np.ndarray], spacing: Sequence[float]) -> list[np.ndarray]:
    sx, sy, sz = spacing
    out = []
    for p, (sr, sc) in zip(planes, [(sz, sy), (sz, sx), (sy, sx)], strict=True):
        m = min(sr, sc)
        rows = np.round(np.arange(0, p.shape[0] * sr / m) * m / sr).astype(int).clip(0, p.shape[0] - 1)
        cols = np.round(np.arange(0, p.shape[1] * sc / m) * m / sc).astype(int).clip(0, p.shape[1] - 1)
        out.append(p[np.ix_(rows, cols)])
    return out


def triplanar_strip(vol, gap: int = 2, **kwargs) -> np.ndarray:
    """The three planes side by side in one 2-D image (padded to a common height)."""
    planes = triplanar(vol, **kwargs)
    hmax = max(p.shape[0] for p in planes)
    padded = [np.pad(p, ((0, hmax - p.shape[0]), (0, gap)), constant_values=0.0) for p in planes]
    return np.concatenate(padded, axis=1)[:, :-gap] if gap else np.concatenate(padded, axis=1)


def grid(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile 2-D images (all the same shape) into one image, row by row."""
    h, w = rows[0][0].shape
    out = np.zeros((len(rows) * (h + gap) - gap, max(len(r) for r in rows) * (w + gap) - gap), np.float32)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = img
    return out


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (unless a backend was chosen already).

    The one matplotlib bootstrap: every figure writer calls this before drawing, so no display is
    ever needed (servers, CI, worker processes)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(path: str | Path, image: np.ndarray, vmin: float = 0.0, vmax: float = 1.0, scale: int = 1) -> Path:
    """Save a 2-D float image as an 8-bit greyscale PNG (atomic write); ``scale`` enlarges pixels."""
    pyplot()
    import matplotlib.image as mpimg

    img = np.clip((np.asarray(image, np.float32) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    if scale > 1:
        img = np.kron(img, np.ones((scale, scale), np.float32))
    with atomic_path(path, suffix=".png") as tmp:
        mpimg.imsave(tmp, img, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return Path(path)


def save_figure(path: str | Path, fig, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG (atomic write), and close it even if writing fails."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def display_scale(shape: Sequence[int], target: int = 256) -> int:
    """Integer pixel enlargement so a picture of ``shape`` is roughly ``target`` pixels tall."""
    return max(1, int(round(target / max(shape))))


def save_triplanar(path: str | Path, vol, spacing: Sequence[float] | None = None, scale: int | None = None) -> Path:
    """Save one volume's tri-planar strip as a PNG."""
    strip = triplanar_strip(vol, spacing=spacing)
    return save_png(path, strip, scale=scale or display_scale(strip.shape))


def save_contact_sheet(
    path: str | Path, vols: Sequence, ncols: int = 4, spacing: Sequence[float] | None = None
) -> Path:
    """Save a grid of tri-planar strips (one per volume) as a PNG."""
    strips = [triplanar_strip(v, spacing=spacing) for v in vols]
    rows = [strips[i : i + ncols] for i in range(0, len(strips), ncols)]
    img = grid(rows, gap=4)
    return save_png(path, img, scale=display_scale(strips[0].shape, 192))

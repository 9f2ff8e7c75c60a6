"""Quality-control pictures: the registered scan with the template's brain outline on top.

A good registration puts the red outline (MNI152 brain-mask boundary) on the edge of the scan's
brain in all three planes; a failed one shows the brain shifted, rotated or scaled against it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from stylegan3d.fileio import atomic_path

OUTLINE_RGB = (1.0, 0.15, 0.1)


def _outline(mask2d: np.ndarray) -> np.ndarray:
    m = mask2d > 0.5
    return m & ~ndimage.binary_erosion(m)


def qc_image(volume: np.ndarray, template_mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """RGB picture ``[H, W, 3]`` in [0, 1]: sagittal, coronal, axial slices of ``volume [X, Y, Z]`` (RAS)
    through the template brain's centre, greyscale (1st-99.5th percentile window), with the outline
    of ``template_mask`` (same grid) in red."""
    from stylegan3d.viz import triplanar

    vol = np.asarray(volume, dtype=np.float32)
    tm = np.asarray(template_mask, dtype=np.float32)
    centre = tuple(int(round(c)) for c in ndimage.center_of_mass(tm > 0.5)) if tm.any() else None
    nz = vol[vol > 0]
    lo, hi = np.percentile(nz, [1.0, 99.5]) if nz.size else (0.0, 1.0)
    grey = np.clip((vol - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    planes = triplanar(grey, index=centre, spacing=spacing)
    outlines = triplanar(tm, index=centre, spacing=spacing)
    height = max(p.shape[0] for p in planes)
    tiles = []
    for p, o in zip(planes, outlines, strict=True):
        rgb = np.repeat(p[..., None], 3, axis=2)
        rgb[_outline(o)] = OUTLINE_RGB
        tiles.append(np.pad(rgb, ((0, height - rgb.shape[0]), (0, 2), (0, 0))))
    return np.concatenate(tiles, axis=1)[:, :-2]


def save_rgb(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> Path:
    """Write an RGB float image ``[H, W, 3]`` in [0, 1] as a PNG (atomic); ``scale`` enlarges pixels."""
    import matplotlib.image as mpimg

    from stylegan3d.viz import pyplot

    pyplot()
    img = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    with atomic_path(path, suffix=".png") as tmp:
        mpimg.imsave(tmp, img, format="png")
    return Path(path)


def save_qc(
    path: str | os.PathLike, volume: np.ndarray, template_mask: np.ndarray, spacing: Sequence[float] | None = None
) -> Path:
    """Save :func:`qc_image` as a PNG (enlarged to about 300 pixels tall)."""
    img = qc_image(volume, template_mask, spacing)
    return save_rgb(path, img, scale=max(1, int(round(300 / img.shape[0]))))


def save_qc_sheet(
    path: str | os.PathLike,
    pictures: Sequence[str | os.PathLike],
    titles: Sequence[str],
    ncols: int = 3,
    limit: int = 60,
) -> Path:
    """Contact sheet of QC PNGs (one panel per scan, titled) as one PNG; at most ``limit`` panels."""
    import matplotlib.image as mpimg

    from stylegan3d.viz import pyplot, save_figure

    plt = pyplot()

    items = [(Path(p), t) for p, t in zip(pictures, titles, strict=True) if Path(p).is_file()][:limit]
    n = max(1, len(items))
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 2.1 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (p, title) in zip(axes.ravel(), items, strict=False):
        ax.imshow(mpimg.imread(p))
        ax.set_title(title, fontsize=8, color="red" if "FLAGGED" in title else "black")
    fig.tight_layout()
    return save_figure(path, fig, dpi=90)

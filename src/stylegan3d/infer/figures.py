"""Pictures of inference results: the style-mixing grid, projection comparison and loss curve,
and the interpolation animation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stylegan3d.fileio import atomic_path
from stylegan3d.viz import display_scale, grid, pyplot, save_figure, save_png, triplanar, triplanar_strip


def save_mix_grid(
    path: str | os.PathLike,
    mixed: np.ndarray,
    row_vols: np.ndarray,
    col_vols: np.ndarray,
    spacing: Sequence[float] | None = None,
) -> Path:
    """StyleGAN-style mixing figure: first row = column sources, first column = row sources,
    cell (r, k) = ``mixed[r, k]``; each cell is a tri-planar strip. Volumes ``[..., C, D, H, W]``."""
    strip = lambda v: triplanar_strip(v[0], spacing=spacing)  # noqa: E731
    head = [strip(v) for v in col_vols]
    blank = np.zeros_like(head[0])
    rows = [[blank] + head]
    for r in range(mixed.shape[0]):
        rows.append([strip(row_vols[r])] + [strip(mixed[r, k]) for k in range(mixed.shape[1])])
    img = grid(rows, gap=4)
    return save_png(path, img, scale=display_scale(head[0].shape, 128))


def save_comparison(
    path: str | os.PathLike,
    target: np.ndarray,
    reconstruction: np.ndarray,
    mask: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Figure with rows target / reconstruction / |error| in the three planes (``[C, D, H, W]`` in [0, 1]).

    The error row has its own colour scale (with a colour bar); with a mask, the error is shown inside it only.
    """
    err = np.abs(np.asarray(reconstruction[0], np.float32) - np.asarray(target[0], np.float32))
    if mask is not None:
        err = err * mask
    rows = [("target", target[0]), ("reconstruction", reconstruction[0]), ("|error|", err)]
    emax = max(float(err.max()), 1e-6)
    plt = pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(7.5, 7.0), layout="constrained")
    for r, (label, vol) in enumerate(rows):
        for c, (plane, img) in enumerate(
            zip(("sagittal", "coronal", "axial"), triplanar(vol, spacing=spacing), strict=True)
        ):
            ax = axes[r, c]
            im = ax.imshow(
                img, cmap="magma" if r == 2 else "gray", vmin=0.0, vmax=emax if r == 2 else 1.0, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(plane, fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        if r == 2:
            fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    return save_figure(path, fig)


def save_loss_curve(path: str | os.PathLike, history: dict[str, list[float]]) -> Path:
    """Loss terms per projection step (log scale) and the learning rate, as a PNG."""
    plt = pyplot()
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(6, 5), sharex=True, height_ratios=[3, 1])
    steps = np.arange(1, len(history.get("loss", [])) + 1)
    for key in ("loss", "mse", "pooled", "noise_reg", "perceptual"):
        values = np.asarray(history.get(key, []), np.float64)
        if values.size and np.any(values > 0):
            ax.plot(steps, np.where(values > 0, values, np.nan), label=key)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax_lr.plot(steps, history.get("lr", []), color="k")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    return save_figure(path, fig)


def pillow_available() -> bool:
    """Whether Pillow (for GIF writing) is installed."""
    import importlib.util

    return importlib.util.find_spec("PIL") is not None


def save_animation(
    path: str | os.PathLike, vols: np.ndarray, fps: int = 8, spacing: Sequence[float] | None = None
) -> list[Path]:
    """Animated GIF of the tri-planar view of ``vols [F, C, D, H, W]`` (matplotlib + PillowWriter).

    Without Pillow, the frames are written as ``<stem>_frames/frame_XXXX.png`` instead; returns the
    written paths (one GIF, or the PNG frames).
    """
    path = Path(path)
    strips = [triplanar_strip(v[0], spacing=spacing) for v in vols]
    if not pillow_available():
        folder = path.with_name(path.stem + "_frames")
        scale = display_scale(strips[0].shape)
        return [save_png(folder / f"frame_{i:04d}.png", s, scale=scale) for i, s in enumerate(strips)]
    plt = pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    h, w = strips[0].shape
    scale = max(1, display_scale(strips[0].shape))
    fig = plt.figure(figsize=(w * scale / 100, h * scale / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    im = ax.imshow(strips[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")

    def update(i: int):
        im.set_data(strips[i])
        return (im,)

    anim = FuncAnimation(fig, update, frames=len(strips), blit=True)
    try:
        with atomic_path(path, suffix=".gif") as tmp:
            anim.save(str(tmp), writer=PillowWriter(fps=fps))
    finally:
        plt.close(fig)
    return [path]

"""Projection targets and masks: arrays or scans brought onto the model grid like the training data."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stylegan3d.errors import DataError, UserError

if TYPE_CHECKING:
    from stylegan3d.infer.geometry import ModelGeometry


def real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float32 array; ragged (object), complex or non-numeric input is a UserError.

    ``np.asarray(..., dtype=float32)`` alone raises a raw ValueError for ragged nested lists and
    silently drops the imaginary part of complex data.
    """
    try:
        arr = np.asarray(value)
    except ValueError:
        raise UserError(f"{what} is a ragged nested sequence, not a regular numeric array") from None
    if arr.dtype == object:
        raise UserError(f"{what} is a ragged or object array (dtype object), not a regular numeric array")
    if arr.dtype.kind == "c":
        raise UserError(f"{what} is complex ({arr.dtype}); pass real intensities (e.g. its magnitude)")
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def prepare_target(
    geometry: ModelGeometry,
    channels: int,
    target: np.ndarray | str | os.PathLike,
    mask: np.ndarray | str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any] | None]:
    """Bring a projection target (and mask) onto the model grid ``geometry`` (``channels`` per volume).

    A path is read as a volume (NIfTI, MGH, ...), reoriented, resampled and intensity-scaled
    exactly like the training data (``stylegan3d.data.spatial.prepare_array`` with the
    checkpoint's geometry, frame, intensity percentiles and mask threshold); a mask path is
    resampled alongside it. An array must already be
    ``[D, H, W]`` or ``[C, D, H, W]`` at the model resolution with values in [0, 1].
    Returns ``(target [C, D, H, W], mask [D, H, W] bool or None, affine 4x4, source info)``.
    """
    if isinstance(target, str | os.PathLike):
        return _prepare_scan(geometry, Path(target), mask, channels)
    arr = real_array(target, "target")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim == 5 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 4 or tuple(arr.shape) != (channels, *geometry.shape):
        raise UserError(
            f"target shape {list(np.shape(target))} does not match the model grid "
            f"{list(geometry.shape)} with {channels} channel(s)"
        )
    if not np.isfinite(arr).all() or arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise UserError("target intensities must be finite and in [0, 1]")
    m = None
    if mask is not None:
        if isinstance(mask, str | os.PathLike):
            m = mask_on_grid(Path(mask), geometry.affine, geometry.shape)
        else:
            m = real_array(mask, "mask") > 0.5
            if m.shape != geometry.shape:
                raise UserError(f"mask shape {list(m.shape)} does not match the model grid {list(geometry.shape)}")
    return np.clip(arr, 0.0, 1.0), m, geometry.affine.copy(), None


def load_scan(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a scan given as a projection target or mask (``what``); problems are one-line UserErrors."""
    from stylegan3d.data.io import load_volume, volume_suffix

    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if volume_suffix(path) is None:
        raise UserError(f"{what} {path} is not a NIfTI/MGH volume (.nii, .nii.gz, .mgz, .hdr, .npz)")
    try:
        return load_volume(path)
    except DataError as e:
        raise UserError(f"{what} {path}: {e}") from None


def mask_on_grid(path: Path, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A mask file resampled onto the grid ``affine``/``shape`` (bool); no overlap is a UserError."""
    from stylegan3d.data.spatial import resample_to

    data, aff = load_scan(path, "mask")
    m = resample_to((data > 0.5).astype(np.float32), aff, affine, shape, order=1) > 0.5
    if not m.any():
        raise UserError(f"mask {path} does not overlap the model grid")
    return m


def preprocess_target(
    geometry: ModelGeometry, path: Path, skip: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], Any]:
    """``project --preprocess t1``: the T1 pipeline onto the model's MNI grid; the brain mask is the loss mask.

    Returns ``(target [1, D, H, W], mask, affine, source info, PreprocessResult)``."""
    from stylegan3d.data.preprocess import PreprocessError
    from stylegan3d.data.preprocess.pipeline import preprocess_file
    from stylegan3d.data.preprocess.register import to_grid

    if not path.exists():
        raise UserError(f"target not found: {path}")
    g = geometry
    geom = g.data_geometry()
    try:
        pre = preprocess_file(path, geom, skip or (), lower_pct=g.lower_pct, upper_pct=g.upper_pct)
    except PreprocessError as e:
        raise UserError(f"target {path}: {e}") from None
    reg = pre.registration
    m = to_grid(pre.mask.astype(np.float32), pre.ras_affine, reg.mni_to_native, g.affine, g.shape) > 0.5
    source = {
        "path": str(path),
        "orig_affine": pre.info["orig_affine"],
        "orig_shape": pre.info["orig_shape"],
        "intensity": pre.info["intensity"],
        "grid_affine": pre.info["target_affine"],
        "mni_to_native": reg.mni_to_native.tolist(),
        "preprocess": pre.info["preprocess"],
    }
    return pre.volume[None], m, np.asarray(g.affine, dtype=np.float64).copy(), source, pre


def _prepare_scan(
    geometry: ModelGeometry, path: Path, mask: Any, channels: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any]]:
    """A scan path prepared like the training data (see :func:`prepare_target`)."""
    from stylegan3d.data.spatial import prepare_array, resample_to

    if channels != 1:
        raise UserError(f"this model makes {channels}-channel volumes; project from an array [C, D, H, W]")
    data, affine = load_scan(path, "target")
    from stylegan3d.data.preprocess.pipeline import mni_mismatch

    reasons = mni_mismatch(data, affine) if mask is None else []
    if geometry.frame != "mni":  # a 'centre' model crops around the brain itself: position does not matter
        reasons = [r for r in reasons if "whole head" in r]
    if reasons:
        warnings.warn(
            f"target {path.name} does not look like a skull-stripped brain in MNI152 space ({'; '.join(reasons)}); "
            "for a raw scan use --preprocess t1 (Python: preprocess='t1')",
            stacklevel=4,
        )
    mask_native = None
    if mask is not None:
        if isinstance(mask, str | os.PathLike):
            mdata, maff = load_scan(Path(mask), "mask")
            if mdata.shape == data.shape and np.allclose(maff, affine, atol=1e-3):
                mask_native = (mdata > 0.5).astype(np.float32)
            else:
                mask_native = resample_to((mdata > 0.5).astype(np.float32), maff, affine, data.shape) > 0.5
                mask_native = mask_native.astype(np.float32)
        else:
            mask_native = real_array(mask, "mask")
            if mask_native.shape != data.shape:
                raise UserError(f"mask shape {list(mask_native.shape)} differs from the target's {list(data.shape)}")
        if not mask_native.any():
            raise UserError("the mask is empty")
    g = geometry
    how = mask_native if mask_native is not None else g.mask_threshold  # as prepare: a mask wins
    try:
        vol, info = prepare_array(data, affine, g.data_geometry(), g.lower_pct, g.upper_pct, how)
    except DataError as e:
        raise UserError(f"target {path}: {e}") from None
    grid_affine = np.asarray(info["target_affine"], dtype=np.float64)
    m = None
    if mask_native is not None:
        m = resample_to(mask_native, affine, grid_affine, g.shape, order=1) > 0.5
    source = {
        "path": str(path),
        "orig_affine": info["orig_affine"],
        "orig_shape": info["orig_shape"],
        "intensity": info["intensity"],
        "grid_affine": info["target_affine"],
    }
    return vol[None], m, grid_affine, source

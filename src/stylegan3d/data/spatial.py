"""Spatial maths of volumes: world grids, reorientation, resampling and preparing one volume.

Per volume (:func:`prepare_array`): reorient to RAS (exact axis permutation/flip), choose
the target voxel grid (``mni``: one fixed world grid for all volumes; ``centre``: the same
spacing and shape centred on the brain / field of view), low-pass filter when downsampling
(Gaussian, sigma = (zoom - 1) / 2 source voxels per axis, the rule of
``skimage.transform.rescale``), trilinear resampling onto the grid, and robust scaling of
intensities to [0, 1] (percentiles of the non-zero voxels).

Used by the dataset builder (:mod:`stylegan3d.data.prepare`), the T1 pipeline
(:mod:`stylegan3d.data.preprocess`), projection targets (:mod:`stylegan3d.infer`) and ``import-tf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from stylegan3d.data.io import check_affine, check_volume
from stylegan3d.errors import DataError, UserError

MNI_CENTRE_MM = (0.0, -18.0, 6.0)
"""MNI point (mm) at voxel ``shape // 2`` of the fixed MNI grid: the centre of the bounding box
of the MNI152 2009 brain mask shipped with nilearn ((0, -17, 5) mm), rounded to the 2 mm lattice.
At every preset (160 x 192 x 224 mm field of view) the whole brain fits with a margin."""

FRAMES = ("centre", "mni")
"""Where a dataset's voxel grid sits: one fixed MNI grid, or centred on each volume's foreground."""


@dataclass
class Geometry:
    """Target voxel grid of a dataset: shape [D, H, W], spacing [3] mm, affine of the MNI grid.

    ``affine`` maps voxel indices (i, j, k) to RAS mm with voxel ``shape // 2`` at
    :data:`MNI_CENTRE_MM`. In ``frame='mni'`` every volume is resampled onto exactly this
    grid; in ``frame='centre'`` each volume gets the same shape/spacing centred on its own
    brain (its ``target_affine`` differs; the dataset-level affine stays this MNI grid).
    """

    shape: list[int]
    spacing: list[float]
    affine: np.ndarray
    frame: str = "centre"

    def __post_init__(self) -> None:
        self.shape = [int(s) for s in self.shape]
        self.spacing = [float(s) for s in self.spacing]
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if len(self.shape) != 3 or min(self.shape) < 2:
            raise UserError(f"target shape must be three sizes >= 2, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0 or not np.isfinite(self.spacing).all():
            raise UserError(f"target spacing must be three positive sizes in mm, got {self.spacing}")
        if self.frame not in FRAMES:
            raise UserError(f"frame must be one of {', '.join(FRAMES)}, got {self.frame!r}")
        if self.affine.shape != (4, 4):
            raise UserError("geometry affine must be 4x4")

    @classmethod
    def from_shape(
        cls,
        shape: Sequence[int],
        spacing: float | Sequence[float],
        frame: str = "centre",
        centre_mm: Sequence[float] = MNI_CENTRE_MM,
    ) -> Geometry:
        """The MNI grid of ``shape`` voxels of ``spacing`` mm with voxel ``shape // 2`` at ``centre_mm``."""
        sp = [float(spacing)] * 3 if np.isscalar(spacing) else [float(s) for s in spacing]
        shp = [int(s) for s in shape]
        if len(sp) != 3 or len(shp) != 3:
            raise UserError(f"need a 3D shape and spacing, got shape {list(shape)} and spacing {sp}")
        return cls(shp, sp, grid_affine(shp, sp, centre_mm), frame)

    @classmethod
    def from_preset(cls, cfg: Any, frame: str = "centre") -> Geometry:
        """Geometry of a model: ``cfg`` is a ModelConfig, a Config or a preset name."""
        from stylegan3d.config import Config, load_preset

        if isinstance(cfg, str):
            cfg = load_preset(cfg)
        model = cfg.model if isinstance(cfg, Config) else cfg
        if len(model.resolution) != 3:
            raise UserError(f"preset resolution {model.resolution} is not 3D")
        return cls.from_shape(model.resolution, model.spacing_mm, frame)

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        """Inverse of :meth:`to_dict` (also accepts a dataset manifest)."""
        return cls(d["shape"], d["spacing"], np.asarray(d["affine"]), d.get("frame", "centre"))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "spacing": self.spacing, "affine": self.affine.tolist(), "frame": self.frame}


def grid_affine(shape: Sequence[int], spacing: Sequence[float], centre_mm: Sequence[float], axes=None) -> np.ndarray:
    """4x4 affine of a grid with voxel ``shape // 2`` at world point ``centre_mm``.

    ``axes`` (3x3, unit columns) gives the direction of the voxel axes (default: RAS identity).
    """
    rot = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)
    aff = np.eye(4)
    aff[:3, :3] = rot * np.asarray(spacing, dtype=np.float64)[None, :]
    aff[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - aff[:3, :3] @ (np.asarray(shape) // 2)
    return aff


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each voxel axis: column norms of the 3x3 part."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def reorient_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute/flip voxel axes so they point (closest to) Right, Anterior, Superior.

    Exact (no interpolation); the world position of every voxel is unchanged.
    """
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return data, np.asarray(affine, dtype=np.float64)
    out = nio.apply_orientation(data, ornt)
    return np.ascontiguousarray(out), affine @ nio.inv_ornt_aff(ornt, data.shape)


def resample_to(
    array: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: Sequence[int],
    order: int = 1,
    antialias: bool = True,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample a 3D ``array`` (voxel-to-world ``src_affine``) onto the grid ``dst_affine``/``dst_shape``.

    Order-1 (trilinear) by default; points outside the source get ``cval``. With
    ``antialias``, source axes that are sampled more coarsely than their spacing are first
    Gaussian-filtered with sigma = (zoom - 1) / 2 voxels. Only the part of the source that the
    target grid touches is filtered, so large scans resample quickly. Returns float32
    ``[dst_shape]``.
    """
    src = np.asarray(array)
    if src.ndim != 3:
        raise DataError(f"resample_to needs a 3D array, got shape {src.shape}")
    dst_shape = tuple(int(s) for s in dst_shape)
    m = np.linalg.inv(np.asarray(src_affine, dtype=np.float64)) @ np.asarray(dst_affine, dtype=np.float64)
    matrix, offset = m[:3, :3], m[:3, 3].copy()
    zoom = np.linalg.norm(matrix, axis=1)
    sigma = np.maximum(0.0, (zoom - 1.0) / 2.0) if antialias else np.zeros(3)
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in dst_shape], indexing="ij")).reshape(3, -1)
    src_pts = matrix @ corners + offset[:, None]
    margin = np.ceil(4.0 * sigma).astype(int) + 2
    lo = np.maximum(np.floor(src_pts.min(axis=1)).astype(int) - margin, 0)
    hi = np.minimum(np.ceil(src_pts.max(axis=1)).astype(int) + margin + 1, src.shape)
    if np.any(hi <= lo):
        return np.full(dst_shape, cval, dtype=np.float32)
    sub = np.asarray(src[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32)
    offset -= lo
    if sigma.max() > 0:
        sub = ndimage.gaussian_filter(sub, sigma=sigma, mode="nearest")
    return ndimage.affine_transform(
        sub, matrix, offset=offset, output_shape=dst_shape, order=order, mode="constant", cval=cval, prefilter=order > 1
    ).astype(np.float32, copy=False)


def _foreground_centre(
    data: np.ndarray, affine: np.ndarray, mask: np.ndarray | None, tail: float = 0.001
) -> np.ndarray:
    """World (mm) centre of the robust bounding box of the foreground.

    Foreground: ``mask`` if given, else voxels above 10 % of the 99th percentile of the
    non-zero voxels (the brain of a skull-stripped scan, the head otherwise). The box ignores
    ``tail`` of the foreground on each side; an empty foreground gives the field-of-view centre.
    """
    if mask is not None:
        fg = mask > 0.5
    else:
        sample = data[::2, ::2, ::2]
        nz = sample[sample != 0]
        fg = data > 0.1 * np.percentile(nz, 99.0) if nz.size else np.zeros(data.shape, bool)
    total = int(fg.sum())
    centre_vox = (np.asarray(data.shape) - 1) / 2.0
    if total:
        for ax in range(3):
            cum = np.cumsum(fg.sum(axis=tuple(a for a in range(3) if a != ax)))
            lo = int(np.searchsorted(cum, tail * total, side="right"))
            hi = int(np.searchsorted(cum, (1.0 - tail) * total, side="left"))
            centre_vox[ax] = (lo + hi) / 2.0
    return (affine @ np.append(centre_vox, 1.0))[:3]


def target_affine_for(
    data: np.ndarray, affine: np.ndarray, geom: Geometry, mask: np.ndarray | None = None
) -> np.ndarray:
    """Target grid of one RAS-oriented volume: the MNI grid (``mni``) or a grid of the same
    shape/spacing, axes along the volume's own voxel axes, centred on its foreground (``centre``)."""
    if geom.frame == "mni":
        return geom.affine.copy()
    axes = affine[:3, :3] / voxel_sizes(affine)[None, :]
    return grid_affine(geom.shape, geom.spacing, _foreground_centre(data, affine, mask), axes)


def prepare_array(
    data: np.ndarray,
    affine: np.ndarray,
    geom: Geometry,
    lower_pct: float = 0.5,
    upper_pct: float = 99.5,
    mask: np.ndarray | float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Prepare one volume exactly like the training data.

    ``data`` [X, Y, Z] with voxel-to-RAS-mm ``affine`` (any orientation). ``mask``: an array
    on the same voxel grid (brain mask; voxels outside become 0 and intensity percentiles
    are taken inside it) or a float threshold in [0, 1] applied after scaling. Returns float32
    ``[D, H, W]`` in [0, 1] on the target grid and ``info`` with ``target_affine`` (4x4 list),
    ``orig_shape``, ``orig_affine``, ``orig_spacing`` and ``intensity`` ``{"lo", "hi"}``
    (source values mapped to 0 and 1). Background (exact zeros) stays 0.
    """
    data = check_volume(np.asarray(data, dtype=np.float32))
    affine = check_affine(affine)
    if not 0.0 <= lower_pct < upper_pct <= 100.0:
        raise UserError(f"need 0 <= lower percentile < upper percentile <= 100, got {lower_pct}, {upper_pct}")
    mask_arr = None
    if isinstance(mask, np.ndarray):
        if mask.shape != data.shape:
            raise DataError(f"mask shape {list(mask.shape)} differs from the volume's {list(data.shape)}")
        mask_arr = mask.astype(np.float32)
    data_r, aff_r = reorient_ras(data, affine)
    mask_r = reorient_ras(mask_arr, affine)[0] if mask_arr is not None else None
    target = target_affine_for(data_r, aff_r, geom, mask_r)
    out = resample_to(data_r, aff_r, target, geom.shape, order=1)
    inside = out != 0
    if mask_r is not None:
        inside &= resample_to(mask_r, aff_r, target, geom.shape, order=1) > 0.5
    values = out[inside]
    if values.size < 8:
        raise DataError("no foreground inside the target field of view (empty volume or no overlap with the grid)")
    lo, hi = (float(v) for v in np.percentile(values, [lower_pct, upper_pct]))
    if not hi - lo > 1e-6 * max(abs(hi), abs(lo), 1e-12):
        raise DataError(f"constant intensity ({lo:g}) inside the field of view")
    scaled = np.clip((out - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    scaled[~inside] = 0.0
    if isinstance(mask, int | float) and not isinstance(mask, bool):
        scaled[scaled < float(mask)] = 0.0
    info = {
        "target_affine": target.tolist(),
        "orig_shape": [int(s) for s in data.shape],
        "orig_affine": np.asarray(affine).tolist(),
        "orig_spacing": voxel_sizes(affine).tolist(),
        "intensity": {"lo": lo, "hi": hi},
    }
    return scaled, info

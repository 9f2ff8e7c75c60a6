"""Helpers of the preprocessing tests: nilearn's MNI152 brain moved by a known random affine."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from stylegan3d.data.preprocess.register import mni_template
from stylegan3d.data.spatial import grid_affine, resample_to


def random_affine(seed: int, max_deg: float = 15.0, max_mm: float = 20.0, max_scale: float = 0.1) -> np.ndarray:
    """4x4 MNI->scan affine: rotation up to ``max_deg`` about a random axis, translation up to ``max_mm``,
    per-axis scaling within 1 +- ``max_scale`` (each drawn in the upper half of its range)."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rot = Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(max_deg / 2, max_deg))).as_matrix()
    scale = np.diag(1.0 + rng.choice([-1.0, 1.0], 3) * rng.uniform(max_scale / 2, max_scale, 3))
    shift = rng.normal(size=3)
    shift *= rng.uniform(max_mm / 2, max_mm) / np.linalg.norm(shift)
    m = np.eye(4)
    m[:3, :3] = rot @ scale
    m[:3, 3] = shift
    return m


def moved_template(seed: int, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNI152 brain at ``spacing`` mm moved by ``random_affine(seed)``, on a RAS grid around it.

    Returns ``(scan [X, Y, Z], mask bool, scan affine, true mni_to_native 4x4)``.
    """
    t1, mask, aff = mni_template(spacing)
    true = random_affine(seed)
    shape = (np.asarray(mask.shape) * 1.2).astype(int)
    centre = (true @ aff @ np.append(np.asarray(mask.shape) / 2.0, 1.0))[:3]
    native = grid_affine(shape, [spacing] * 3, centre)
    scan = resample_to(t1, true @ aff, native, shape)
    m = resample_to(mask.astype(np.float32), true @ aff, native, shape) > 0.5
    return scan * m, m, native, true


def bbox_corners_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The 8 corners (homogeneous, ``[8, 4]``) of ``mask``'s bounding box in mm."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0)
    pts = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return pts @ np.asarray(affine).T

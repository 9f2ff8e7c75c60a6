"""numpy (voxel array + voxel-to-RAS-mm affine) <-> SimpleITK images.

SimpleITK images made here carry RAS millimetres as their physical coordinates (not ITK's usual
LPS): every image of a registration is built the same way, so the transforms it finds map RAS
points to RAS points and can be written as plain 4x4 RAS matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stylegan3d.errors import UserError


def sitk() -> Any:
    """The SimpleITK module, or a one-line error naming the extra that installs it."""
    try:
        import SimpleITK
    except ImportError:
        raise UserError("preprocessing needs SimpleITK: pip install 'stylegan3d[preprocess]'") from None
    return SimpleITK


def set_threads(n: int) -> None:
    """Threads SimpleITK filters and registrations use in this process."""
    sitk().ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(n)))


def to_sitk(data: np.ndarray, affine: np.ndarray) -> Any:
    """SimpleITK float32 image of ``data [X, Y, Z]`` with voxel-to-RAS-mm ``affine`` (physical = RAS mm)."""
    s = sitk()
    affine = np.asarray(affine, dtype=np.float64)
    img = s.GetImageFromArray(np.ascontiguousarray(np.transpose(np.asarray(data, np.float32), (2, 1, 0))))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    img.SetSpacing([float(v) for v in spacing])
    img.SetOrigin([float(v) for v in affine[:3, 3]])
    img.SetDirection([float(v) for v in (affine[:3, :3] / spacing[None, :]).ravel()])
    return img


def from_sitk(img: Any) -> np.ndarray:
    """``[X, Y, Z]`` float32 array of a SimpleITK image (inverse of :func:`to_sitk`'s axis order)."""
    return np.ascontiguousarray(np.transpose(sitk().GetArrayFromImage(img), (2, 1, 0)), dtype=np.float32)


def affine_of(img: Any) -> np.ndarray:
    """Voxel-to-physical 4x4 affine of a SimpleITK image."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3) * np.asarray(img.GetSpacing())[None]
    aff[:3, 3] = img.GetOrigin()
    return aff

"""Step 1: reorientation to RAS and N4 bias-field correction (SimpleITK).

N4 (Tustison et al., 2010) is fitted on a copy shrunk by ``shrink`` along every axis, inside a
head mask (Otsu threshold of the shrunk image); the fitted B-spline log-field is then evaluated
on the full-resolution grid and divided out, so the output keeps the scan's resolution and no
voxel is interpolated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from stylegan3d.data.preprocess import PreprocessError
from stylegan3d.data.preprocess.sitkio import sitk, to_sitk
from stylegan3d.util import one_line


def reorient(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data [X, Y, Z]`` with voxel axes permuted/flipped to RAS (exact, nibabel); returns (data, affine)."""
    from stylegan3d.data.spatial import reorient_ras

    return reorient_ras(np.asarray(data, dtype=np.float32), affine)


def n4_correct(
    data: np.ndarray,
    affine: np.ndarray,
    shrink: int = 4,
    iterations: Sequence[int] = (30, 20, 10),
    convergence: float = 1e-3,
    mesh_mm: float = 100.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """N4 bias-field correction of one volume ``data [X, Y, Z]`` (voxel-to-RAS-mm ``affine``).

    ``iterations``: per fitting level (each level halves the B-spline spacing); the initial control
    point spacing is about ``mesh_mm`` mm. Returns the corrected float32 array (same grid; values
    <= 0 stay 0) and ``info`` with ``seconds``, ``shrink`` and the field's range (``field_min``,
    ``field_max``: multiplicative bias removed). Raises :class:`PreprocessError` (step ``n4``).
    """
    s = sitk()
    t0 = time.perf_counter()
    data = np.asarray(data, dtype=np.float32)
    positive = np.where(data > 0, data, 0.0).astype(np.float32)
    if not positive.any():
        raise PreprocessError("n4", "no positive intensities to correct")
    img = to_sitk(positive, affine)
    factor = [max(1, min(int(shrink), n // 16)) for n in img.GetSize()]
    small = s.Shrink(img, factor)
    head = s.OtsuThreshold(small, 0, 1, 128)
    head = s.And(head, s.Cast(small > 0, head.GetPixelID()))
    if s.GetArrayViewFromImage(head).sum() < 64:
        raise PreprocessError("n4", "no foreground found (Otsu mask is empty)")
    extent = np.asarray(small.GetSize()) * np.asarray(small.GetSpacing())
    n4 = s.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(float(convergence))
    n4.SetNumberOfControlPoints([int(max(4, round(e / mesh_mm) + 3)) for e in extent])
    try:
        n4.Execute(small, head)
        log_field = s.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img))
    except RuntimeError as e:
        raise PreprocessError("n4", f"SimpleITK failed ({one_line(e, 200)})") from None
    field = np.exp(np.transpose(log_field, (2, 1, 0))).astype(np.float32)
    if not np.isfinite(field).all() or field.min() <= 0:
        raise PreprocessError("n4", "the fitted bias field is not finite and positive")
    out = positive / field
    info = {
        "seconds": time.perf_counter() - t0,
        "shrink": factor,
        "iterations": [int(i) for i in iterations],
        "field_min": float(field.min()),
        "field_max": float(field.max()),
    }
    return out.astype(np.float32), info

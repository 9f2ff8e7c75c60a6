"""Step 3: 12-dof affine registration of a brain to nilearn's MNI152 template, and its use.

:func:`register_affine` (SimpleITK ``ImageRegistrationMethod``): Mattes mutual information on a
random sample of the template's (dilated) brain-mask voxels, a 3-level pyramid, a centred start
(moments of the two brains), first a 7-dof similarity then the full 12-dof affine (the
similarity stage makes large rotations converge; the affine stage adds scaling and shear).
The moving brain is cropped to its mask and resampled to the template's spacing first, so a 1 mm
scan costs the same as a 2 mm one.

The result is one 4x4 matrix ``mni_to_native`` mapping MNI152 RAS mm to the scan's RAS mm (the
direction a resampler needs). :func:`to_grid` composes it with the scan's own affine and the
target grid into one resampling; :func:`to_native` maps a volume on an MNI grid back onto the
scan's voxels.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from stylegan3d.data.preprocess import PreprocessError
from stylegan3d.data.preprocess.sitkio import sitk, to_sitk
from stylegan3d.util import one_line

MIN_DICE = 0.5
"""Below this brain-mask Dice with the template, a registration counts as failed (an error, not a flag)."""

SCALE_RANGE = (0.5, 2.0)
"""Singular values of the fitted matrix outside this range mean the optimiser diverged."""


@dataclass
class Registration:
    """A fitted affine: ``mni_to_native`` 4x4 (MNI152 RAS mm -> scan RAS mm) and its quality.

    ``metric``: final Mattes mutual information (negative; lower is better); ``dice``: the scan's
    brain mask carried into MNI space against the template's brain mask (None when no mask was given).
    """

    mni_to_native: np.ndarray
    metric: float
    dice: float | None = None
    seconds: float = 0.0
    iterations: list[int] = field(default_factory=list)
    template: str = "MNI152 2009 (nilearn), 2 mm"

    @property
    def native_to_mni(self) -> np.ndarray:
        return np.linalg.inv(self.mni_to_native)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mni_to_native"] = np.asarray(self.mni_to_native).tolist()
        d["native_to_mni"] = self.native_to_mni.tolist()
        d["frame"] = "RAS mm; mni_to_native maps a point in MNI152 space to the same point in the scan"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Registration:
        keys = {"metric", "dice", "seconds", "iterations", "template"}
        return cls(np.asarray(d["mni_to_native"], dtype=np.float64), **{k: d[k] for k in keys if k in d})


@functools.lru_cache(maxsize=4)
def mni_template(spacing: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nilearn's MNI152 2009 T1 brain (skull-stripped) and brain mask at ``spacing`` mm (offline).

    Returns ``(t1 [X, Y, Z] float32 in [0, 1], mask [X, Y, Z] bool, affine 4x4 RAS)``. 1 and 2 mm
    come from nilearn; other spacings are resampled from 1 mm (anti-aliased).
    """
    from nilearn import datasets

    from stylegan3d.data.spatial import resample_to

    res = 2 if spacing == 2.0 else 1
    t1 = datasets.load_mni152_template(resolution=res)
    mask = datasets.load_mni152_brain_mask(resolution=res)
    data = np.asarray(t1.get_fdata(), dtype=np.float32)
    m = np.asarray(mask.get_fdata(), dtype=np.float32)
    aff = np.asarray(t1.affine, dtype=np.float64)
    if float(spacing) not in (1.0, 2.0):
        shape = np.ceil(np.asarray(data.shape) / spacing).astype(int)
        dst = aff.copy()
        dst[:3, :3] = np.eye(3) * spacing
        data = resample_to(data, aff, dst, shape)
        m = resample_to(m, aff, dst, shape)
        aff = dst
    data = data * (m > 0.5)
    return data, m > 0.5, aff


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks of the same shape (0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0


def to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    mni_to_native: np.ndarray,
    grid_affine: np.ndarray,
    shape: Sequence[int],
    order: int = 1,
) -> np.ndarray:
    """Resample ``data [X, Y, Z]`` (voxel-to-RAS ``affine``) onto an MNI grid in one interpolation.

    The chain grid voxel -> MNI mm -> scan mm -> scan voxel is composed into one matrix.
    Anti-aliased when the grid is coarser than the scan (as :func:`stylegan3d.data.spatial.resample_to`).
    """
    from stylegan3d.data.spatial import resample_to

    placed = np.linalg.inv(np.asarray(mni_to_native, np.float64)) @ np.asarray(affine, np.float64)
    return resample_to(data, placed, grid_affine, shape, order=order)


def to_native(
    volume: np.ndarray,
    grid_affine: np.ndarray,
    mni_to_native: np.ndarray,
    native_affine: np.ndarray,
    native_shape: Sequence[int],
    order: int = 1,
) -> np.ndarray:
    """Map a volume on an MNI grid (``grid_affine``) back onto the scan's voxels (``native_affine``, shape)."""
    from stylegan3d.data.spatial import resample_to

    placed = np.asarray(mni_to_native, np.float64) @ np.asarray(grid_affine, np.float64)
    return resample_to(volume, placed, native_affine, native_shape, order=order, antialias=False)


def _moving_image(brain: np.ndarray, affine: np.ndarray, mask: np.ndarray | None, spacing: float) -> Any:
    """The brain cropped to its mask (+10 mm) and resampled to ``spacing`` mm along its own axes, scaled to [0, 1]."""
    from stylegan3d.data.spatial import resample_to, voxel_sizes

    fg = mask if mask is not None else brain > 0
    if not fg.any():
        raise PreprocessError("register", "the brain is empty")
    idx = np.argwhere(fg)
    sizes = voxel_sizes(affine)
    margin = np.ceil(10.0 / sizes).astype(int)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, brain.shape)
    crop = brain[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    crop_aff = affine.copy()
    crop_aff[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    step = np.maximum(spacing / sizes, 1.0)
    shape = np.maximum(np.round(np.asarray(crop.shape) / step).astype(int), 4)
    dst = crop_aff.copy()
    dst[:3, :3] = crop_aff[:3, :3] * (np.asarray(crop.shape) / shape)[None, :]
    small = resample_to(crop, crop_aff, dst, shape) if np.any(step > 1.0) else np.asarray(crop, np.float32)
    vals = small[small > 0]
    top = float(np.percentile(vals, 99.5)) if vals.size else 0.0
    if not top > 0:
        raise PreprocessError("register", "the brain has no positive intensities")
    return to_sitk(np.clip(small / top, 0.0, 1.0), dst)


def _matrix(tx: Any) -> np.ndarray:
    """4x4 matrix of a SimpleITK affine-like transform (x -> A (x - c) + c + t)."""
    a = np.asarray(tx.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(tx.GetCenter(), dtype=np.float64)
    t = np.asarray(tx.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = c + t - a @ c
    return m


def _stage(fixed: Any, moving: Any, fixed_mask: Any, initial: Any, iterations: int, seed: int, sampling: float):
    s = sitk()
    reg = s.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(s.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([4.0, 2.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=True)
    counts: list[int] = []
    reg.AddCommand(s.sitkMultiResolutionIterationEvent, lambda: counts.append(0))
    reg.AddCommand(s.sitkIterationEvent, lambda: counts.__setitem__(-1, counts[-1] + 1) if counts else None)
    reg.Execute(fixed, moving)
    return reg.GetMetricValue(), counts


def register_affine(
    brain: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None = None,
    spacing: float = 2.0,
    iterations: int = 100,
    sampling: float = 0.1,
    seed: int = 0,
) -> Registration:
    """12-dof affine registration of a skull-stripped brain ``brain [X, Y, Z]`` (RAS ``affine``) to MNI152.

    ``mask`` (bool, same grid; default ``brain > 0``) also gives the Dice quality figure.
    ``spacing``: template resolution in mm; ``iterations`` per pyramid level and stage; ``sampling``:
    fraction of the template's brain voxels in the metric. Raises :class:`PreprocessError` (step
    ``register``) when SimpleITK fails, the matrix diverges or the Dice is below :data:`MIN_DICE`.
    """
    s = sitk()
    t0 = time.perf_counter()
    affine = np.asarray(affine, dtype=np.float64)
    t1, tmask, taff = mni_template(spacing)
    fixed = to_sitk(t1, taff)
    grown = ndimage.binary_dilation(tmask, iterations=max(1, int(round(6.0 / spacing))))
    fixed_mask = s.Cast(to_sitk(grown.astype(np.float32), taff), s.sitkUInt8)
    moving = _moving_image(np.asarray(brain, np.float32), affine, mask, spacing)
    try:
        sim = s.CenteredTransformInitializer(
            fixed, moving, s.Similarity3DTransform(), s.CenteredTransformInitializerFilter.MOMENTS
        )
        _, c1 = _stage(fixed, moving, fixed_mask, sim, iterations, seed, sampling)
        aff_tx = s.AffineTransform(3)
        aff_tx.SetCenter(sim.GetCenter())
        aff_tx.SetMatrix(sim.GetMatrix())
        aff_tx.SetTranslation(sim.GetTranslation())
        metric, c2 = _stage(fixed, moving, fixed_mask, aff_tx, iterations, seed + 1, sampling)
    except RuntimeError as e:
        raise PreprocessError("register", f"SimpleITK failed ({one_line(e, 200)})") from None
    m = _matrix(aff_tx)
    sv = np.linalg.svd(m[:3, :3], compute_uv=False) if np.isfinite(m).all() else np.array([np.nan])
    if not np.isfinite(sv).all() or sv.min() < SCALE_RANGE[0] or sv.max() > SCALE_RANGE[1]:
        raise PreprocessError("register", f"diverged (scales {np.round(sv, 2).tolist()} of the fitted matrix)")
    reg = Registration(m, float(metric), seconds=0.0, iterations=c1 + c2)
    if mask is not None:
        warped = to_grid(np.asarray(mask, np.float32), affine, m, taff, tmask.shape) > 0.5
        reg.dice = dice(warped, tmask)
        if reg.dice < MIN_DICE:
            raise PreprocessError("register", f"failed: brain-mask Dice {reg.dice:.2f} with the template")
    reg.seconds = time.perf_counter() - t0
    return reg

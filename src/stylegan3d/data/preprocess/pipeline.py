"""The whole T1 pipeline: checks, RAS, N4, deepbet, affine to MNI152, one resampling, scaling.

:func:`preprocess_t1` runs it on one volume in memory; :func:`preprocess_file` reads a file first;
:func:`save_outputs` writes the per-scan transform (JSON), brain mask (NIfTI) and QC picture.
``prepare --preprocess t1`` and ``project --preprocess t1`` call these.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from stylegan3d.data.preprocess import SKIPPABLE, PreprocessError
from stylegan3d.errors import DataError, UserError

MIN_FOV_MM = 80.0
"""A field of view narrower than this along any axis cannot hold a brain (check step)."""

MAX_BRAIN_SPREAD = 0.8
"""Brain intensities of a T1 scan after N4 have an interquartile range below this fraction of their median."""

MIN_BRAIN_TO_SURROUND = 1.1
"""In a T1 scan the brain is brighter than the 2-8 mm shell around it (CSF and skull are dark)."""

MIN_NEIGHBOUR_CORR = 0.3
"""Neighbouring voxels of any MRI scan correlate strongly; below this the volume has no structure (check step)."""

DEFAULT_FLAG_DICE = 0.8
"""Registrations whose brain-mask Dice with the template lies below this are flagged."""


@dataclass
class PreprocessResult:
    """One preprocessed scan.

    ``volume [D, H, W]`` float32 in [0, 1] on the target grid; ``mask [X, Y, Z]`` bool brain mask on the
    RAS-reoriented scan grid (``ras_affine``); ``info``: what ``prepare`` stores per volume
    (``target_affine``, ``orig_*``, ``intensity``, ``preprocess``); ``qc_volume``: the scan on the
    template's 2 mm grid (for the QC picture).
    """

    volume: np.ndarray
    mask: np.ndarray
    ras_affine: np.ndarray
    info: dict[str, Any]
    registration: Any = None
    qc_volume: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def parse_skip(skip: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"n4,brain"`` or a sequence -> validated tuple of skippable step names."""
    if skip is None:
        return ()
    items = [s.strip() for s in (skip.split(",") if isinstance(skip, str) else skip) if s.strip()]
    bad = [s for s in items if s not in SKIPPABLE]
    if bad:
        raise UserError(f"cannot skip {', '.join(bad)}: choose from {', '.join(SKIPPABLE)}")
    return tuple(s for s in SKIPPABLE if s in items)


def check_input(data: np.ndarray, affine: np.ndarray) -> None:
    """Check step: a 3D, non-constant volume whose field of view can hold a brain."""
    from stylegan3d.data.spatial import voxel_sizes

    if data.ndim != 3:
        raise PreprocessError("check", f"{data.ndim}D image, need a 3D volume")
    fov = np.asarray(data.shape) * voxel_sizes(affine)
    if fov.min() < MIN_FOV_MM:
        shown = "x".join(f"{v:.0f}" for v in fov)
        raise PreprocessError("check", f"field of view {shown} mm is too small for a brain (< {MIN_FOV_MM:g} mm)")
    if not np.any(data):
        raise PreprocessError("check", "empty volume (all voxels are 0)")
    if float(data.max()) - float(data.min()) <= 1e-6 * max(abs(float(data.max())), 1e-12):
        raise PreprocessError("check", f"constant volume ({float(data.max()):g})")
    corr = neighbour_correlation(data)
    if corr < MIN_NEIGHBOUR_CORR:
        raise PreprocessError(
            "check", f"no anatomical structure (neighbouring voxels correlate {corr:.2f}, scans > 0.5): noise?"
        )


def neighbour_correlation(data: np.ndarray) -> float:
    """Mean Pearson correlation of voxels with their next neighbour along each axis (~0 for noise, > 0.8 for MRI)."""
    vals = []
    for ax in range(3):
        a = np.moveaxis(data, ax, 0)[:, ::2, ::2]  # every 4th pair, 2x2-strided planes
        n = a.shape[0] - 1
        x, y = a[0:n:4].astype(np.float64).ravel(), a[1 : n + 1 : 4].astype(np.float64).ravel()
        if x.std() > 0 and y.std() > 0:
            vals.append(float(np.corrcoef(x, y)[0, 1]))
    return float(np.mean(vals)) if vals else 0.0


def check_t1_profile(data: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Check that the brain looks like T1: homogeneous-ish tissue, brighter than its surroundings.

    Returns ``{"spread", "brain_to_surround"}``; raises :class:`PreprocessError` (step ``check``).
    """
    from stylegan3d.data.spatial import voxel_sizes

    inside = data[mask]
    q1, med, q3 = np.percentile(inside, [25, 50, 75])
    spread = float((q3 - q1) / med) if med > 0 else float("inf")
    vox = float(voxel_sizes(affine).mean())
    near = ndimage.binary_dilation(mask, iterations=max(1, int(round(2.0 / vox))))
    far = ndimage.binary_dilation(near, iterations=max(1, int(round(6.0 / vox))))
    shell = data[far & ~near]
    shell = shell[shell > 0]
    ratio = float(med / np.median(shell)) if shell.size > 100 and np.median(shell) > 0 else float("inf")
    if not spread <= MAX_BRAIN_SPREAD or not ratio >= MIN_BRAIN_TO_SURROUND:
        raise PreprocessError(
            "check",
            f"not a T1-like intensity profile (brain spread {spread:.2f}, limit {MAX_BRAIN_SPREAD}; brain/surround "
            f"{ratio:.2f}, need >= {MIN_BRAIN_TO_SURROUND})",
        )
    return {"spread": spread, "brain_to_surround": ratio if np.isfinite(ratio) else None}


def preprocess_t1(
    data: np.ndarray,
    affine: np.ndarray,
    geom: Any,
    skip: Sequence[str] = (),
    lower_pct: float = 0.5,
    upper_pct: float = 99.5,
    seed: int = 0,
) -> PreprocessResult:
    """Run the T1 pipeline on ``data [X, Y, Z]`` (voxel-to-RAS-mm ``affine``, any orientation).

    ``geom``: the target grid (a :class:`stylegan3d.data.spatial.Geometry`; its MNI affine is used
    whatever its frame). ``skip``: steps the scan does not need (``n4``, ``brain``, ``register``:
    already corrected / skull-stripped / in MNI152 space). Raises :class:`PreprocessError` naming the step.
    """
    from stylegan3d.data.io import check_affine, check_volume
    from stylegan3d.data.preprocess.bias import n4_correct, reorient
    from stylegan3d.data.preprocess.brain import extract_brain
    from stylegan3d.data.preprocess.register import Registration, mni_template, register_affine, to_grid
    from stylegan3d.data.spatial import Geometry, prepare_array

    skip = parse_skip(skip)
    times: dict[str, float] = {}
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 3:
        raise PreprocessError("check", f"{data.ndim}D image (shape {list(data.shape)}), need a 3D volume")
    try:
        check_volume(data)
        orig_affine = check_affine(affine)
    except DataError as e:
        raise PreprocessError("check", str(e)) from None
    check_input(data, orig_affine)

    t = time.perf_counter()
    ras, ras_aff = reorient(data, orig_affine)
    times["reorient"] = time.perf_counter() - t
    info_n4: dict[str, Any] = {}
    if "n4" in skip:
        corrected = np.where(ras > 0, ras, 0.0).astype(np.float32)
    else:
        corrected, info_n4 = n4_correct(ras, ras_aff)
        times["n4"] = info_n4["seconds"]
    if "brain" in skip:
        mask = corrected > 0
        if not mask.any():
            raise PreprocessError("brain", "empty brain mask (no positive voxels)")
        mask_cm3 = float(mask.sum()) * abs(float(np.linalg.det(ras_aff[:3, :3]))) / 1000.0
    else:
        mask, info_bet = extract_brain(corrected, ras_aff)
        times["brain"], mask_cm3 = info_bet["seconds"], info_bet["volume_cm3"]
    profile = check_t1_profile(corrected, mask, ras_aff)
    brain = corrected * mask
    t1_tmpl, tmask, taff = mni_template(2.0)
    if "register" in skip:
        from stylegan3d.data.preprocess.register import dice

        reg = Registration(np.eye(4), float("nan"))
        reg.dice = dice(to_grid(mask.astype(np.float32), ras_aff, reg.mni_to_native, taff, tmask.shape) > 0.5, tmask)
    else:
        reg = register_affine(brain, ras_aff, mask, seed=seed)
        times["register"] = reg.seconds

    t = time.perf_counter()
    grid = Geometry(list(geom.shape), list(geom.spacing), geom.affine, "mni")
    placed = np.linalg.inv(reg.mni_to_native) @ ras_aff  # the scan's voxels in MNI mm: one resampling
    try:
        vol, info = prepare_array(brain, placed, grid, lower_pct, upper_pct, mask.astype(np.float32))
    except DataError as e:
        raise PreprocessError("resample", str(e)) from None
    qc_volume = to_grid(brain, ras_aff, reg.mni_to_native, taff, tmask.shape)
    times["resample"] = time.perf_counter() - t
    info.update(
        orig_shape=[int(s) for s in data.shape],
        orig_affine=orig_affine.tolist(),
    )
    info["preprocess"] = {
        "pipeline": "t1",
        "skipped": list(skip),
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "mask_cm3": round(mask_cm3, 1),
        "n4": {k: v for k, v in info_n4.items() if k != "seconds"} or None,
        "profile": profile,
        "registration": {
            "metric": None if not np.isfinite(reg.metric) else reg.metric,
            "dice": reg.dice,
            "mni_to_native": reg.mni_to_native.tolist(),
        },
    }
    del t1_tmpl
    return PreprocessResult(vol, mask, ras_aff, info, reg, qc_volume, times)


def preprocess_file(
    path: str | os.PathLike, geom: Any, skip: Sequence[str] = (), volume_index: int | None = None, **kwargs: Any
) -> PreprocessResult:
    """:func:`preprocess_t1` of a volume file (load errors become step ``load``)."""
    from stylegan3d.data.io import load_volume

    try:
        data, affine = load_volume(path, volume_index)
    except DataError as e:
        raise PreprocessError("load", str(e)) from None
    return preprocess_t1(data, affine, geom, skip, **kwargs)


def save_outputs(result: PreprocessResult, folder: str | os.PathLike, stem: str) -> dict[str, str]:
    """Write ``STEM.transform.json``, ``STEM.mask.nii.gz`` (native space) and ``STEM.qc.png`` into ``folder``.

    Returns ``{"transform", "mask", "qc"}`` paths (as strings).
    """
    import nibabel as nib

    from stylegan3d.data.preprocess.qc import save_qc
    from stylegan3d.data.preprocess.register import mni_template
    from stylegan3d.fileio import atomic_path, atomic_write_json

    folder = Path(folder)
    paths = {k: folder / f"{stem}.{k}{ext}" for k, ext in (("transform", ".json"), ("mask", ".nii.gz"), ("qc", ".png"))}
    reg = result.info["preprocess"]["registration"]
    transform = {
        "format": "stylegan3d-affine",
        "frame": "RAS mm; mni_to_native maps an MNI152 point to the same point in the scan",
        "mni_to_native": reg["mni_to_native"],
        "native_to_mni": np.linalg.inv(np.asarray(reg["mni_to_native"])).tolist(),
        "metric": reg["metric"],
        "dice": reg["dice"],
        "template": "MNI152 2009 (nilearn)",
    }
    atomic_write_json(paths["transform"], transform)
    img = nib.Nifti1Image(result.mask.astype(np.uint8), result.ras_affine)
    img.header.set_data_dtype(np.uint8)
    with atomic_path(paths["mask"], suffix=".nii.gz") as tmp:
        nib.save(img, tmp)
    _, tmask, _ = mni_template(2.0)
    save_qc(paths["qc"], result.qc_volume, tmask)
    return {k: str(v) for k, v in paths.items()}


def mni_mismatch(data: np.ndarray, affine: np.ndarray) -> list[str]:
    """Reasons why a volume does not look like a skull-stripped brain in MNI152 space (empty: it does).

    Checks: voxel axes oblique to RAS (> 10 degrees: scanner space), the foreground's centre farther
    than 30 mm from the MNI152 brain's, and a foreground volume (voxels above 10 % of the 99th
    percentile) above 2.6 L (a whole head; brains are ~1.1-1.9 L).
    """
    import nibabel.orientations as nio

    from stylegan3d.data.spatial import MNI_CENTRE_MM, voxel_sizes

    affine = np.asarray(affine, dtype=np.float64)
    reasons = []
    axes = affine[:3, :3] / voxel_sizes(affine)[None, :]
    ornt = nio.io_orientation(affine)
    nearest = np.zeros((3, 3))
    for i, (ax, sign) in enumerate(ornt):
        nearest[int(ax), i] = sign
    cos = np.clip((axes * nearest).sum(axis=0), -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)).max())
    if angle > 10.0:
        reasons.append(f"voxel axes {angle:.0f} degrees oblique to RAS")
    sample = data[::2, ::2, ::2]
    nz = sample[sample > 0]
    if nz.size:
        fg = data > 0.1 * np.percentile(nz, 99.0)
        vol_l = float(fg.sum()) * abs(float(np.linalg.det(affine[:3, :3]))) / 1e6
        if vol_l > 2.6:
            reasons.append(f"foreground of {vol_l:.1f} L looks like a whole head, not a skull-stripped brain")
        if fg.any():
            centre = affine[:3, :3] @ np.argwhere(fg).mean(axis=0) + affine[:3, 3]
            off = float(np.linalg.norm(centre - np.asarray(MNI_CENTRE_MM)))
            if off > 30.0:
                reasons.append(f"its centre lies {off:.0f} mm from the MNI152 brain's")
    return reasons

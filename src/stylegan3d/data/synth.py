"""Synthetic T1-weighted brain cohort from the MNI152 template shipped inside ``nilearn``.

There is no public multi-subject brain dataset available offline, so the demo and the tests
use subjects simulated from the MNI152 2009 T1 template and its grey/white-matter
probability maps (CSF = brain mask - GM - WM). Per subject, all drawn from one seed:

* anatomy: a smooth random non-linear deformation (coarse Gaussian control grid, cubic
  upsampling), a small affine (rotation, head size, shift), ventricle enlargement (a radial
  expansion around the lateral ventricles) and cortical atrophy (GM turned into CSF), both
  growing with a simulated age; head size depends on a simulated sex;
* appearance: per-tissue intensities with random contrast, blended with the template's own
  T1 texture, a gamma curve, a smooth multiplicative bias field, Rician noise (magnitude of
  complex Gaussian noise), skull-stripping with the deformed brain mask and a random
  scanner gain, stored as int16.

Volumes are written on a regular MNI grid (``spacing`` mm, the template's field of view),
with ``sform``/``qform`` code 4 (MNI152). The deformation is evaluated at the output
spacing on template maps low-pass filtered to that spacing, so a 2-4 mm cohort takes well
under a second per subject. Subject ``i`` of a cohort with seed ``S`` uses
:func:`subject_seed` ``(S, i)``, so ``--n 4`` is a prefix of ``--n 8``.
"""

from __future__ import annotations

import csv
import gzip
import io
import multiprocessing as mp
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from stylegan3d.data.spatial import MNI_CENTRE_MM
from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_bytes, atomic_write_text
from stylegan3d.util import progress_bar

TEMPLATE_ORIGIN_MM = (-98.0, -134.0, -72.0)
TEMPLATE_EXTENT_MM = (196.0, 232.0, 188.0)
VENTRICLE_CENTRE_MM = (0.0, -12.0, 16.0)
"""Centre of the radial expansion that enlarges the lateral ventricles (MNI mm)."""

VARIATION_KEYS = (
    "age", "sex", "head_scale", "rotation_deg", "shift_mm", "deform_mm", "ventricle", "atrophy",
    "contrast", "texture", "gamma", "bias", "noise", "gain",
)  # fmt: skip
"""Keys accepted by :func:`synth_subject` to fix a subject variable instead of drawing it."""


def subject_seed(cohort_seed: int, index: int) -> int:
    """Seed of subject ``index`` in a cohort drawn with ``cohort_seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(cohort_seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def output_grid(spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the synthetic volumes: the template's field of view at ``spacing`` mm."""
    shape = tuple(int(np.floor(e / spacing + 1e-6)) + 1 for e in TEMPLATE_EXTENT_MM)
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = TEMPLATE_ORIGIN_MM
    return shape, aff  # type: ignore[return-value]


TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
"""The files behind ``nilearn.datasets.MNI152_FILE_PATH``, ``GM_MNI152_FILE_PATH`` and ``WM_MNI152_FILE_PATH``."""


def template_path(which: str) -> Path:
    """Path of a MNI152 map inside the installed ``nilearn`` package (found without importing
    nilearn, whose import takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the synthetic cohort needs the MNI152 template of nilearn: pip install nilearn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / TEMPLATE_FILES[which]
    if not path.is_file():
        raise UserError(f"MNI152 template not found in the nilearn package: {path}")
    return path


@lru_cache(maxsize=4)
def _templates(spacing: float) -> dict[str, Any]:
    """Template maps (float32) low-pass filtered for sampling at ``spacing`` mm, and their inverse affine."""
    import nibabel as nib

    imgs = {k: nib.load(template_path(k)) for k in TEMPLATE_FILES}

    def load(k: str) -> np.ndarray:
        return np.asarray(imgs[k].dataobj, dtype=np.float32) / 255.0

    t1 = load("t1")
    affine = imgs["t1"].affine
    brain = (t1 > 0).astype(np.float32)
    gm = load("gm") * brain
    wm = load("wm") * brain
    maps = {"t1": t1 / 0.87, "gm": gm, "wm": wm, "brain": brain}  # WM of the T1 template ~ 0.87
    # Low-pass to the output spacing (Gaussian sigma (spacing - 1) / 2 mm) and keep the maps on a grid
    # of about half the output spacing (small, cache-friendly): block means of f voxels (variance
    # (f^2 - 1) / 12 mm^2) then the remaining Gaussian on the coarser grid.
    f = max(1, int(spacing / 2.0))
    if f > 1:
        maps = {k: _block_mean(v, f) for k, v in maps.items()}
        affine = affine @ np.array(
            [[f, 0, 0, (f - 1) / 2], [0, f, 0, (f - 1) / 2], [0, 0, f, (f - 1) / 2], [0, 0, 0, 1]]
        )
    var = ((spacing - 1.0) / 2.0) ** 2 - (f**2 - 1) / 12.0
    if var > 0:
        maps = {k: ndimage.gaussian_filter(v, np.sqrt(var) / f, mode="constant") for k, v in maps.items()}
    return {"maps": maps, "inv_affine": np.linalg.inv(affine)}


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over non-overlapping f x f x f blocks (zero-padded at the far edges)."""
    pad = [(0, -n % f) for n in a.shape]
    a = np.pad(a, pad)
    x, y, z = (n // f for n in a.shape)
    return a.reshape(x, f, y, f, z, f).mean(axis=(1, 3, 5), dtype=np.float32)


def _upsample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] matrix of 1-D cubic-spline upsampling (``ndimage.zoom`` of unit vectors)."""
    eye = np.eye(n_in, dtype=np.float64)
    return np.stack([ndimage.zoom(e, n_out / n_in, order=3, mode="nearest", grid_mode=True) for e in eye], axis=1)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], grid: int, std: float, n: int = 1) -> np.ndarray:
    """``n`` smooth random fields [n, *shape]: N(0, std) on a coarse ``grid``^3 lattice, cubic upsampling.

    The upsampling is separable, applied as three small matrix products (fast at any size).
    """
    coarse = rng.normal(0.0, std, size=(n, grid, grid, grid))
    mx, my, mz = (_upsample_matrix(s, grid) for s in shape)
    return np.einsum("nabc,ia,jb,kc->nijk", coarse, mx, my, mz, optimize=True).astype(np.float32)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_variation(seed: int) -> dict[str, Any]:
    """The random subject variables of ``seed`` (see :data:`VARIATION_KEYS`)."""
    rng = np.random.default_rng(seed)
    age = float(rng.uniform(20.0, 90.0))
    sex = "F" if rng.random() < 0.5 else "M"
    old = (age - 20.0) / 70.0
    return {
        "age": round(age, 1),
        "sex": sex,
        "head_scale": float((0.95 if sex == "F" else 1.0) * rng.normal(1.0, 0.03)),
        "rotation_deg": rng.normal(0.0, 3.0, 3).tolist(),
        "shift_mm": rng.normal(0.0, 2.5, 3).tolist(),
        "deform_mm": float(rng.uniform(2.0, 4.5)),
        "ventricle": float(max(1.0, 1.0 + 0.7 * old**2 + rng.normal(0.0, 0.08))),
        "atrophy": float(np.clip(0.3 * old + rng.normal(0.0, 0.04), 0.0, 0.45)),
        "contrast": {
            "wm": 1.0,
            "gm": float(rng.uniform(0.55, 0.75)),
            "csf": float(rng.uniform(0.12, 0.35)),
        },
        "texture": float(rng.uniform(0.2, 0.5)),
        "gamma": float(rng.uniform(0.8, 1.25)),
        "bias": float(rng.uniform(0.05, 0.2)),
        "noise": float(rng.uniform(0.01, 0.04)),
        "gain": float(rng.uniform(400.0, 1200.0)),
        "field_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _check_spacing(spacing: float) -> None:
    if not 0.5 <= float(spacing) <= 16.0:
        raise UserError(f"synthetic spacing must be between 0.5 and 16 mm, got {spacing}")


def synth_array(seed: int, spacing: float = 2.0, **variation: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One synthetic subject as ``(int16 [X, Y, Z], affine, variables)``; see :func:`synth_subject`."""
    _check_spacing(spacing)
    unknown = sorted(set(variation) - set(VARIATION_KEYS))
    if unknown:
        raise UserError(f"unknown variation {unknown}; choose from {', '.join(VARIATION_KEYS)}")
    v = draw_variation(seed)
    v.update(variation)
    spacing = float(spacing)
    shape, affine = output_grid(spacing)
    tpl = _templates(spacing)
    rng = np.random.default_rng(v["field_seed"])

    # world coordinates of the subject's voxels -> template world coordinates (pull mapping)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    x = np.stack([g * spacing + o for g, o in zip(grids, TEMPLATE_ORIGIN_MM, strict=True)])  # [3, X, Y, Z] mm
    del grids
    centre = np.asarray(MNI_CENTRE_MM, dtype=np.float32)[:, None, None, None]  # rotate/scale about the brain
    lin = np.linalg.inv(_rotation(np.asarray(v["rotation_deg"])) * float(v["head_scale"])).astype(np.float32)
    y = (
        np.einsum("ij,j...->i...", lin, x - centre)
        + centre
        - np.asarray(v["shift_mm"], np.float32)[:, None, None, None]
    )
    y += _smooth_field(rng, shape, grid=6, std=float(v["deform_mm"]), n=3)
    vc = np.asarray(VENTRICLE_CENTRE_MM, dtype=np.float32)[:, None, None, None]
    d = y - vc
    k = 1.0 - 1.0 / float(v["ventricle"])  # enlargement factor 1/(1-k) at the centre, invertible for k < 1
    y -= k * d * np.exp(-(d**2).sum(axis=0) / (2.0 * 22.0**2))[None]
    del d, x
    inv = tpl["inv_affine"].astype(np.float32)
    coords = np.einsum("ij,j...->i...", inv[:3, :3], y) + inv[:3, 3][:, None, None, None]
    del y

    # Intensity before gamma: tissue mixture with atrophy (a fraction of GM becomes CSF), CSF = brain - GM - WM
    # (no CSF map offline; GM + WM <= brain holds before and after the linear low-pass), blended with the
    # template's T1 texture. It is linear in the maps, so one combined map is sampled instead of four.
    a, c, tau = float(v["atrophy"]), v["contrast"], float(v["texture"])
    maps = tpl["maps"]
    weights = {
        "gm": (1.0 - tau) * (1.0 - a) * (c["gm"] - c["csf"]),
        "wm": (1.0 - tau) * (c["wm"] - c["csf"]),
        "brain": (1.0 - tau) * c["csf"],
        "t1": tau,
    }
    combined = sum(np.float32(w) * maps[k] for k, w in weights.items())
    img = ndimage.map_coordinates(combined, coords, order=1, mode="constant", cval=0.0)
    brain = ndimage.map_coordinates(maps["brain"], coords, order=1, mode="constant", cval=0.0)
    del combined, coords
    img = np.clip(img, 0.0, None) ** float(v["gamma"])
    img *= np.exp(_smooth_field(rng, shape, grid=4, std=float(v["bias"]))[0])
    sigma = float(v["noise"])
    noise = rng.normal(0.0, sigma, size=(2, *shape)).astype(np.float32)
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
    img *= brain > 0.5
    out = np.clip(np.round(img * float(v["gain"])), 0, 32767).astype(np.int16)
    return out, affine, v


def synth_subject(seed: int, spacing: float = 2.0, **variation: Any):
    """One synthetic T1-weighted brain as a ``nibabel.Nifti1Image`` (int16, MNI affine, RAS).

    ``variation`` fixes subject variables instead of drawing them from ``seed``, e.g.
    ``ventricle=1.5`` (ventricle scale), ``atrophy=0.3`` (fraction of GM turned into CSF),
    ``age=80``, ``noise=0.0``; see :func:`draw_variation` for all keys and their ranges.
    """
    data, affine, _ = synth_array(seed, spacing, **variation)
    return _nifti(data, affine)


def _nifti(data: np.ndarray, affine: np.ndarray):
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=4)  # 4 = MNI152
    img.set_qform(affine, code=4)
    img.header.set_xyzt_units("mm")
    return img


def nifti_gz_bytes(img) -> bytes:
    """Deterministic ``.nii.gz`` bytes of an image (gzip header time fixed to 0)."""
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _write_subject(task: tuple[str, int, float]) -> dict[str, Any]:
    path, seed, spacing = task
    data, affine, v = synth_array(seed, spacing)
    atomic_write_bytes(path, nifti_gz_bytes(_nifti(data, affine)))
    return {"name": Path(path).name, "seed": seed, **v}


def synth_cohort(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    spacing: float = 2.0,
    workers: int | None = None,
    progress: bool = True,
    on_subject: Callable[[dict[str, Any]], None] | None = None,
) -> list[Path]:
    """Write ``n`` subjects ``sub-000.nii.gz`` ... into ``out`` plus ``participants.csv``.

    ``participants.csv`` lists each file's simulated age, sex, ventricle scale, atrophy and
    seed (usable as conditioning labels). Subject ``i`` depends only on ``(seed, i)``.
    Uses ``workers`` processes (default: all cores).
    """
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(str(out / f"sub-{i:03d}.nii.gz"), subject_seed(seed, i), float(spacing)) for i in range(n)]
    _check_spacing(spacing)
    _templates(float(spacing))  # load once here: forked workers inherit the filtered maps
    n_workers = max(1, min(workers or os.cpu_count() or 1, n))
    rows: dict[str, dict[str, Any]] = {}
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn

    # fork: workers inherit the filtered templates; they start (at submit) before the progress thread
    pool = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork")) if n_workers > 1 else nullcontext()
    with pool as ex:
        results = ex.map(_write_subject, tasks) if ex is not None else map(_write_subject, tasks)
        columns = ("synth", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with progress_bar(*columns, enabled=progress, stderr=True) as bar:
            job = bar.add_task("synth", total=n)
            for r in results:
                rows[r["name"]] = r
                bar.advance(job)
                if on_subject:
                    on_subject(r)
    _write_participants(out / "participants.csv", [rows[Path(t[0]).name] for t in tasks])
    return [Path(t[0]) for t in tasks]


def _write_participants(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["name", "age", "sex", "ventricle", "atrophy", "head_scale", "seed"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r["name"], r["age"], r["sex"], *(f"{r[c]:.4f}" for c in cols[3:6]), r["seed"]])
    atomic_write_text(path, buf.getvalue())

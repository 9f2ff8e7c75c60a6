"""Viewer pages for what the commands write: samples, projections, mixing grids, interpolations,
and any NIfTI files or output folders (``stylegan3d view``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.util import one_line
from stylegan3d.viewer.page import Page, Section, Volume, robust_window, write_page

PER_SECTION = 8
"""At most this many viewers side by side in one section (one WebGL context each)."""

VIEWER_NAME = "viewer.html"


def _vol3d(array: np.ndarray) -> np.ndarray:
    """``[D, H, W]`` of a ``[C, D, H, W]`` / ``[1, D, H, W]`` / ``[D, H, W]`` array (first channel)."""
    a = np.asarray(array, dtype=np.float32)
    while a.ndim > 3:
        a = a[0]
    if a.ndim != 3:
        raise UserError(f"the viewer shows 3D volumes, got shape {list(np.shape(array))}")
    return a


def _add_shared_window(page: Page, names: Sequence[str], arrays: Sequence[np.ndarray], affine: np.ndarray) -> list[int]:
    """Add volumes that are compared with each other (one shared window); returns their indices."""
    vols = [_vol3d(a) for a in arrays]
    window = robust_window(vols)
    return [page.add(Volume(n, v, affine, window)) for n, v in zip(names, vols, strict=True)]


def add_samples(
    page: Page, names: Sequence[str], arrays: Sequence[np.ndarray], affine: np.ndarray, title: str = "Samples"
) -> None:
    """Volumes side by side (sections of at most :data:`PER_SECTION`), one shared window."""
    idx = _add_shared_window(page, names, arrays, affine)
    for start in range(0, len(idx), PER_SECTION):
        chunk = idx[start : start + PER_SECTION]
        part = f" ({start + 1}-{start + len(chunk)} of {len(idx)})" if len(idx) > PER_SECTION else ""
        page.sections.append(
            Section(
                title + part,
                [names[i - idx[0]] for i in chunk],
                [{"label": "all", "vols": chunk}],
                note="Linked crosshairs: click in any view; the 3D render is bottom right.",
            )
        )


def add_projection(
    page: Page,
    target: np.ndarray,
    reconstruction: np.ndarray,
    affine: np.ndarray,
    title: str = "Projection",
    note: str = "",
) -> None:
    """Target / reconstruction / |error| with a shared crosshair (target and reconstruction share a window)."""
    t, r = _vol3d(target), _vol3d(reconstruction)
    err = np.abs(t - r)
    window = robust_window([t, r])
    ids = [
        page.add(Volume(f"{title}: target", t, affine, window)),
        page.add(Volume(f"{title}: reconstruction", r, affine, window)),
        page.add(Volume(f"{title}: |error|", err, affine, robust_window([err], 0.0, 99.5), colormap="hot")),
    ]
    slots = ["target", "reconstruction", "|error|"]
    page.sections.append(Section(title, slots, [{"label": "", "vols": ids}], note=note))


def add_mixing(
    page: Page,
    row_names: Sequence[str],
    rows: Sequence[np.ndarray],
    col_names: Sequence[str],
    cols: Sequence[np.ndarray],
    cells: np.ndarray | Sequence[Sequence[np.ndarray]],
    affine: np.ndarray,
    title: str = "Style mixing",
) -> None:
    """Row source / mixed cell / column source, the cell picked on a grid of buttons (rows x columns)."""
    rv, cv = [_vol3d(a) for a in rows], [_vol3d(a) for a in cols]
    mixed = [[_vol3d(cells[r][c]) for c in range(len(cv))] for r in range(len(rv))]
    window = robust_window(rv + cv + [m for row in mixed for m in row])
    ri = [page.add(Volume(f"row {n}", v, affine, window)) for n, v in zip(row_names, rv, strict=True)]
    ci = [page.add(Volume(f"column {n}", v, affine, window)) for n, v in zip(col_names, cv, strict=True)]
    options = []
    for r, rn in enumerate(row_names):
        for c, cn in enumerate(col_names):
            m = page.add(Volume(f"mix {rn} x {cn}", mixed[r][c], affine, window))
            options.append({"label": f"{rn} x {cn}", "vols": [ri[r], m, ci[c]], "row": r, "col": c})
    page.sections.append(
        Section(
            title,
            ["row source", "mixed", "column source"],
            options,
            control="grid",
            note="Pick a cell (row source x column source); the cell takes the column's styles for the chosen layers.",
        )
    )


def add_interpolation(
    page: Page, names: Sequence[str], frames: Sequence[np.ndarray], affine: np.ndarray, title: str = "Interpolation"
) -> None:
    """One viewer, the frame chosen with a slider (one shared window)."""
    ids = _add_shared_window(page, names, frames, affine)
    options = [{"label": f"frame {i + 1}/{len(ids)} ({names[i]})", "vols": [k]} for i, k in enumerate(ids)]
    page.sections.append(Section(title, ["frame"], options, control="slider", note="Move the slider to step through."))


def write_viewer(page: Page, out: str | os.PathLike) -> Path:
    """Write ``page`` as ``out/viewer.html`` (``out`` a folder) or to ``out`` itself (an ``.html`` path)."""
    out = Path(out)
    path = out if out.suffix.lower() in (".html", ".htm") else out / VIEWER_NAME
    return write_page(page, path)


# ------------------------------------------------------------------ files and folders on disk
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_name(path: Path) -> bool:
    """True when the file name ends in ``.nii`` or ``.nii.gz``."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data [X, Y, Z] float32, affine)`` of a NIfTI file (first frame of 4D); a clear error otherwise."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises many kinds for non-images
        raise UserError(f"not a NIfTI volume: {path} ({one_line(e, 120, with_type=True)})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise UserError(f"not a NIfTI volume: {path} (a {type(img).__name__})")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise UserError(f"cannot read {path}: {one_line(e, 120, with_type=True)}") from None
    while data.ndim > 3:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 1:
        raise UserError(f"not a 3D volume: {path} (shape {list(img.shape)})")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise UserError(f"{path} has an invalid affine (not finite or singular)")
    return data, affine


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]


def _niftis(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_nifti_name(p))


def _folder_sections(page: Page, folder: Path, label: str, generic: bool) -> bool:
    """Add the sections for one output folder by its layout; True when something was added."""
    files = {_stem(p): p for p in _niftis(folder)}
    added = False
    if "target" in files and "reconstruction" in files:
        (t, aff), (r, _) = load_volume(files["target"]), load_volume(files["reconstruction"])
        if t.shape == r.shape:
            add_projection(page, t, r, aff, title=f"Projection {label}".strip())
            added = True
    mixes = {k: p for k, p in files.items() if k.startswith("mix_")}
    rows = {k[4:]: p for k, p in files.items() if k.startswith("row_")}
    cols = {k[4:]: p for k, p in files.items() if k.startswith("col_")}
    if mixes and rows and cols and all(f"mix_{r}_{c}" in files for r in rows for c in cols):
        cells = [[load_volume(files[f"mix_{r}_{c}"])[0] for c in cols] for r in rows]
        rv = [load_volume(p) for p in rows.values()]
        cv = [load_volume(p)[0] for p in cols.values()]
        title = f"Style mixing {label}".strip()
        add_mixing(page, list(rows), [v for v, _ in rv], list(cols), cv, cells, rv[0][1], title)
        added = True
    frames = [k for k in files if re.fullmatch(r"frame_\d+", k)]
    if len(frames) >= 2:
        loaded = [load_volume(files[k]) for k in frames]
        add_interpolation(page, frames, [v for v, _ in loaded], loaded[0][1], f"Interpolation {label}".strip())
        added = True
    seeds = [k for k in files if re.fullmatch(r"seed\d+", k)]
    if seeds:
        loaded = [load_volume(files[k]) for k in seeds]
        _add_loaded(page, seeds, loaded, f"Samples {label}".strip(), shared=True)
        added = True
    if not added and generic and files:
        loaded = [load_volume(p) for p in files.values()]
        _add_loaded(page, list(files), loaded, f"Volumes {label}".strip())
        added = True
    return added


def _add_loaded(
    page: Page, names: list[str], loaded: list[tuple[np.ndarray, np.ndarray]], title: str, shared: bool = False
) -> None:
    """Side-by-side sections for volumes from disk, each with its own affine; one window for all when
    ``shared`` (samples of one model), else each its own (files may come from different scanners)."""
    window = robust_window([v for v, _ in loaded]) if shared else None
    idx = [page.add(Volume(n, v, a, window)) for n, (v, a) in zip(names, loaded, strict=True)]
    for start in range(0, len(idx), PER_SECTION):
        chunk = idx[start : start + PER_SECTION]
        part = f" ({start + 1}-{start + len(chunk)} of {len(idx)})" if len(idx) > PER_SECTION else ""
        page.sections.append(Section(title + part, [names[i - idx[0]] for i in chunk], [{"label": "", "vols": chunk}]))


def page_for_paths(paths: Sequence[str | os.PathLike], title: str | None = None) -> Page:
    """A page for NIfTI files and/or output folders (generate, project, mix, interpolate, the demo).

    Files are shown side by side. A folder shows its own layout (samples, projection, mixing grid,
    interpolation, or else every NIfTI in it) and the recognised layouts of its sub-folders (two levels).
    """
    if not paths:
        raise UserError("give at least one NIfTI file or output folder")
    page = Page(title or "stylegan3d viewer")
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UserError(f"not found: {p}")
        if p.is_file():
            if not is_nifti_name(p):
                raise UserError(f"not a NIfTI volume or output folder: {p} (expected .nii or .nii.gz)")
            files.append(p)
            continue
        if not p.is_dir():
            raise UserError(f"not a NIfTI volume or output folder: {p}")
        added = _folder_sections(page, p, "" if len(paths) == 1 else p.name, generic=True)
        for sub in sorted(q for q in p.iterdir() if q.is_dir()):
            added |= _folder_sections(page, sub, sub.name, generic=False)
            for subsub in sorted(q for q in sub.iterdir() if q.is_dir()):
                added |= _folder_sections(page, subsub, f"{sub.name}/{subsub.name}", generic=False)
        if not added:
            raise UserError(
                f"no NIfTI volumes in {p}: give NIfTI files or a folder written by generate, project, mix, "
                "interpolate or demo"
            )
    if files:
        _add_loaded(page, [f.name for f in files], [load_volume(f) for f in files], "Volumes")
    return page


# ------------------------------------------------------------------ one call per command output
def samples_viewer(
    out: str | os.PathLike, names: Sequence[str], vols: Sequence[np.ndarray], affine: np.ndarray
) -> Path:
    """``out/viewer.html`` of generated volumes (``generate --html``)."""
    page = Page("stylegan3d generate")
    add_samples(page, names, vols, affine)
    return write_viewer(page, out)


def projection_viewer(
    out: str | os.PathLike, target: np.ndarray, reconstruction: np.ndarray, affine: np.ndarray, note: str = ""
) -> Path:
    """``out/viewer.html`` of a projection: target / reconstruction / |error| (``project --html``)."""
    page = Page("stylegan3d project")
    add_projection(page, target, reconstruction, affine, note=note)
    return write_viewer(page, out)


def mixing_viewer(
    out: str | os.PathLike,
    row_names: Sequence[str],
    rows: Sequence[np.ndarray],
    col_names: Sequence[str],
    cols: Sequence[np.ndarray],
    cells: np.ndarray,
    affine: np.ndarray,
) -> Path:
    """``out/viewer.html`` of a style-mixing grid (``mix --html``)."""
    page = Page("stylegan3d mix")
    add_mixing(page, row_names, rows, col_names, cols, cells, affine)
    return write_viewer(page, out)


def interpolation_viewer(
    out: str | os.PathLike, names: Sequence[str], frames: Sequence[np.ndarray], affine: np.ndarray
) -> Path:
    """``out/viewer.html`` of interpolation frames on a slider (``interpolate --html``)."""
    page = Page("stylegan3d interpolate")
    add_interpolation(page, names, frames, affine)
    return write_viewer(page, out)

"""Reading one 3D volume (NIfTI and friends) with its affine, with one clear error per bad file;
writing one (:func:`write_nifti`).

Every problem a user's folder can hold (empty file, truncated gzip, not an image, 2D image,
4D series, NaN/Inf voxels, zero-scale affine, unreadable path) becomes a
:class:`~stylegan3d.errors.DataError` whose message is a single line, so ``prepare`` can
collect them into its report and carry on with the other files.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from stylegan3d.errors import DataError, UserError
from stylegan3d.fileio import atomic_path
from stylegan3d.util import one_line

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".hdr", ".img", ".npz")
"""File names treated as volumes when scanning folders (``.img`` is read through its ``.hdr``)."""


def volume_suffix(path: str | os.PathLike) -> str | None:
    """The recognised volume suffix of ``path`` (``.nii.gz``, ``.nii``, ...) or None."""
    name = Path(path).name.lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def volume_stem(path: str | os.PathLike) -> str:
    """File name without its volume suffix (``sub-01.nii.gz`` -> ``sub-01``)."""
    name = Path(path).name
    suffix = volume_suffix(name)
    return name[: -len(suffix)] if suffix else Path(name).stem


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise DataError("file not found")
    if path.is_dir():
        raise DataError("is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise DataError("permission denied")
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)")


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in ("data", "image", "volume", "arr_0") if k in keys), None)
            if key is None:
                raise DataError(f"npz file has no 'data' array (arrays: {', '.join(keys) or 'none'})")
            if "affine" not in keys:
                raise DataError("npz file has no 'affine' array (4x4 voxel-to-RAS-mm matrix)")
            return np.asarray(z[key]), np.asarray(z["affine"], dtype=np.float64)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError, MemoryError) as e:
        raise DataError(f"not a readable npz file ({one_line(e, with_type=True)})") from None


def _gzip_problem(path: Path) -> str | None:
    """Describe a damaged gzip stream (e.g. a truncated ``.nii.gz``), or None if it decompresses."""
    import gzip

    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as e:
        return f"truncated or corrupt gzip data ({one_line(e, with_type=True)})"
    return None


MAX_VOXELS = 2**30
"""Largest single 3D volume accepted (1024^3 voxels, 4 GiB as float32): guards against headers
that claim absurd sizes in a tiny file."""


def _check_claimed_size(path: Path, img, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse headers whose dimensions are impossible before any voxel is read."""
    if any(d < 1 for d in shape):
        raise DataError(f"invalid image dimensions {list(shape)}")
    per_volume = int(np.prod(shape[:3], dtype=np.float64))
    if per_volume > MAX_VOXELS:
        raise DataError(f"header claims {per_volume:.3g} voxels per volume (limit {MAX_VOXELS:.3g})")
    if volume_suffix(path) in (".nii", ".img", ".hdr"):
        data_file = path.with_suffix(".img") if path.suffix == ".hdr" else path
        offset = int(getattr(img.dataobj, "offset", 0) or 0)
        need = offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        have = data_file.stat().st_size if data_file.is_file() else 0
        if need > have:
            raise DataError(f"truncated file: header needs {need} bytes of data, file has {have}")


def _load_nibabel(path: Path, volume_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(path))
    except ImageFileError as e:
        raise DataError(_gzip_problem(path) or f"not a recognised image file ({one_line(e, with_type=True)})") from None
    except (EOFError, zlib.error, OSError) as e:
        raise DataError(f"truncated or corrupt file ({one_line(e, with_type=True)})") from None
    except Exception as e:  # nibabel raises many types for malformed headers
        raise DataError(f"invalid image header ({one_line(e, with_type=True)})") from None
    if not hasattr(img, "dataobj") or not hasattr(img, "affine"):
        raise DataError(f"not a volume image ({type(img).__name__})")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise DataError(f"unsupported voxel data type {dtype} (need real-valued scalars)")
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    _check_claimed_size(path, img, shape, dtype)
    try:
        if len(shape) == 4 and shape[3] > 1:
            _check_index(shape, volume_index)
            data = np.asarray(img.dataobj[..., volume_index], dtype=np.float32)
        else:
            data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except DataError:
        raise
    except (EOFError, zlib.error, OSError, ValueError, OverflowError, MemoryError) as e:
        raise DataError(f"truncated or corrupt data ({one_line(e, with_type=True)})") from None
    affine = img.affine
    if affine is None:
        raise DataError("image has no affine")
    return data, np.asarray(affine, dtype=np.float64)


def _check_index(shape: tuple[int, ...], volume_index: int | None) -> None:
    n = shape[3]
    dims = "x".join(map(str, shape))
    if volume_index is None:
        raise DataError(f"4D series of {n} volumes (shape {dims}): choose one with --volume-index")
    if not -n <= volume_index < n:
        raise DataError(f"volume index {volume_index} out of range for a series of {n} volumes")


def check_affine(affine: np.ndarray) -> np.ndarray:
    """Validate a 4x4 voxel-to-world affine (finite, non-zero voxel scales, invertible)."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise DataError(f"affine must be 4x4, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError("affine contains NaN/Inf")
    scales = np.linalg.norm(a[:3, :3], axis=0)
    if scales.min() < 1e-6:
        raise DataError(f"affine has a zero voxel scale (voxel sizes {np.round(scales, 4).tolist()} mm)")
    if abs(np.linalg.det(a[:3, :3])) < 1e-9 * float(np.prod(scales)):
        raise DataError("affine is singular (voxel axes are linearly dependent)")
    return a


def check_volume(data: np.ndarray) -> np.ndarray:
    """Validate a 3D float array: every axis >= 2 voxels and all voxels finite."""
    shape = "x".join(map(str, data.shape))
    if data.ndim < 3 or (data.ndim == 3 and min(data.shape) < 2):
        raise DataError(f"2D image (shape {shape}), need a 3D volume")
    if data.ndim > 3:
        raise DataError(f"{data.ndim}D image (shape {shape}), need a 3D volume")
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise DataError(f"{bad} non-finite voxels (NaN/Inf) of {data.size}")
    return data


def load_volume(path: str | os.PathLike, volume_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one 3D volume and its voxel-to-RAS-mm affine.

    Returns ``(data, affine)``: float32 array ``[X, Y, Z]`` in the file's voxel order and a
    float64 4x4 affine. A 4D series needs ``volume_index`` (trailing singleton axes are
    dropped). Supported: NIfTI-1/2 (``.nii``, ``.nii.gz``), MGH (``.mgz``), Analyze/NIfTI
    pairs (``.hdr``/``.img``) and ``.npz`` holding ``data`` + ``affine`` arrays (no pickle).
    Raises :class:`DataError` with a one-line message for every unusable input.
    """
    path = Path(path)
    try:
        _check_readable(path)
    except OSError as e:
        raise DataError(f"cannot access file ({one_line(e, with_type=True)})") from None
    if volume_suffix(path) == ".npz":
        data, affine = _load_npz(path)
        data = np.asarray(data)
        if data.dtype.kind not in "biuf":
            raise DataError(f"unsupported voxel data type {data.dtype} (need real-valued scalars)")
        while data.ndim > 3 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim == 4:
            _check_index(data.shape, volume_index)
            data = data[..., volume_index]
        data = data.astype(np.float32)
    else:
        data, affine = _load_nibabel(path, volume_index)
    check_volume(data)
    check_affine(affine)
    return np.ascontiguousarray(data, dtype=np.float32), affine


def write_nifti(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike, mni: bool = False) -> Path:
    """Atomically write a float32 NIfTI: ``array`` ``[D, H, W]``, ``[1, D, H, W]`` or ``[C, D, H, W]``
    (stored 4D as ``[D, H, W, C]``) with the voxel-to-RAS-mm ``affine`` (sform and qform, mm units;
    xform code 4 "MNI" when ``mni``, else 2 "aligned")."""
    import nibabel as nib

    a = np.asarray(array, dtype=np.float32)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 4:
        a = np.moveaxis(a, 0, -1)
    if a.ndim not in (3, 4):
        raise UserError(f"cannot save an array of shape {list(np.shape(array))} as a volume")
    img = nib.Nifti1Image(np.ascontiguousarray(a), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    code = 4 if mni else 2
    img.set_sform(img.affine, code=code)
    img.set_qform(img.affine, code=code)
    path = Path(path)
    name = path.name.lower()
    suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return path

"""Sets of volumes the metrics compare: arrays, prepared datasets, folders of NIfTI, checkpoints.

Every source becomes a :class:`VolumeSet`: a read-only view of ``[N, C, D, H, W]`` float
volumes in [0, 1] (RAS voxel order), with a name per volume and, for prepared datasets, the
manifest hash that keys the feature cache. Volumes are read lazily in batches, so a
memory-mapped dataset larger than RAM works.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stylegan3d.data.dataset import load_manifest, manifest_hash
from stylegan3d.errors import UserError

if TYPE_CHECKING:
    from stylegan3d.checkpoint import Checkpoint

NIFTI_SUFFIXES = (".nii", ".nii.gz")


class VolumeSet:
    """Read-only volumes ``[N, C, D, H, W]`` in [0, 1] plus names and an optional cache identity.

    ``array`` may be a numpy array or a memory map; ``index`` selects (and orders) its rows.
    ``key`` identifies the underlying data for the feature cache (``None``: never cached) and
    ``cache_dirs`` lists where cached features may be written, best first.
    """

    def __init__(
        self,
        array: np.ndarray,
        names: Sequence[str] | None = None,
        *,
        key: str | None = None,
        cache_dirs: Sequence[Path] = (),
        source: str = "array",
        index: np.ndarray | None = None,
        keepalive: Any = None,
    ) -> None:
        if array.ndim != 5:
            raise UserError(f"volumes must be [N, C, D, H, W], got shape {list(array.shape)} ({source})")
        self.array = array
        self.index = np.arange(array.shape[0]) if index is None else np.asarray(index, dtype=np.int64)
        all_names = list(names) if names is not None else [f"{source}[{i}]" for i in range(array.shape[0])]
        if len(all_names) != array.shape[0]:
            raise UserError(f"{source}: {len(all_names)} names for {array.shape[0]} volumes")
        self._names = all_names
        self.key = key
        self.cache_dirs = [Path(p) for p in cache_dirs]
        self.source = source
        self._keepalive = keepalive

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, D, H, W)`` of each volume."""
        return tuple(int(s) for s in self.array.shape[1:])  # type: ignore[return-value]

    @property
    def voxels(self) -> int:
        """Values per volume (C * D * H * W)."""
        return int(np.prod(self.shape))

    @property
    def names(self) -> list[str]:
        return [self._names[i] for i in self.index]

    def subset(self, rows: Sequence[int] | np.ndarray) -> VolumeSet:
        """The volumes at positions ``rows`` of this set (same cache identity, new order)."""
        return VolumeSet(
            self.array,
            self._names,
            key=self.key,
            cache_dirs=self.cache_dirs,
            source=self.source,
            index=self.index[np.asarray(rows, dtype=np.int64)],
            keepalive=self._keepalive,
        )

    def get(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Volumes at positions ``rows`` as float32 ``[len(rows), C, D, H, W]``."""
        idx = self.index[np.asarray(rows, dtype=np.int64)]
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.shape), dtype=np.float32)
        out[order] = self.array[idx[order]]
        return out

    def batches(self, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(rows, volumes float32 [b, C, D, H, W])`` over the whole set in order."""
        for start in range(0, len(self), batch):
            rows = np.arange(start, min(start + batch, len(self)))
            yield rows, self.get(rows)

    def identity(self) -> str | None:
        """Cache identity of exactly these volumes: the data key plus the selected rows."""
        if self.key is None:
            return None
        if np.array_equal(self.index, np.arange(self.array.shape[0])):
            return self.key
        rows = hashlib.sha256(self.index.astype("<i8").tobytes()).hexdigest()[:16]
        return f"{self.key}-{rows}"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/stylegan3d`` or ``~/.cache/stylegan3d``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stylegan3d"


def open_dataset(path: str | os.PathLike) -> VolumeSet:
    """A prepared dataset directory (``volumes.npy`` + ``manifest.json``, docs/formats.md)."""
    root = Path(path)
    man_path, vol_path = root / "manifest.json", root / "volumes.npy"
    if not man_path.is_file() or not vol_path.is_file():
        raise UserError(f"{root} is not a prepared dataset (needs manifest.json and volumes.npy)")
    manifest = load_manifest(man_path, strict=False)
    try:
        array = np.load(vol_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {vol_path} as a .npy array: {e}") from None
    if array.ndim == 4:
        array = array[:, None]
    records = manifest.get("volumes", [])
    if array.ndim != 5 or len(records) not in (0, array.shape[0]):
        raise UserError(
            f"{root}: volumes.npy has shape {list(array.shape)} but the manifest lists {len(records)} volumes"
        )
    if array.shape[0] == 0:
        raise UserError(f"{root}: the dataset holds no volumes")
    shape = manifest.get("shape")
    if shape is not None and list(shape) != list(array.shape[2:]):
        raise UserError(f"{root}: manifest shape {shape} differs from volumes.npy {list(array.shape[2:])}")
    names = [str(r.get("name", f"volume-{i}")) for i, r in enumerate(records)] or None
    return VolumeSet(
        array,
        names,
        key=manifest_hash(manifest),
        cache_dirs=[root / ".cache", user_cache_dir()],
        source=str(root),
    )


def open_nifti_dir(path: str | os.PathLike) -> VolumeSet:
    """A folder of NIfTI volumes (e.g. ``generate`` outputs), already in [0, 1] and the data frame.

    Volumes are reoriented to the closest canonical (RAS) axis order; all must share one shape.
    """
    import nibabel as nib

    root = Path(path)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise UserError(f"no NIfTI files (.nii, .nii.gz) in {root}")
    vols, shape = [], None
    for f in files:
        try:
            img = nib.as_closest_canonical(nib.load(str(f)))
            a = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as e:  # nibabel raises many types for broken files
            raise UserError(f"cannot read {f} as NIfTI: {e}") from None
        if a.ndim == 4 and a.shape[3] == 1:
            a = a[..., 0]
        if a.ndim != 3:
            raise UserError(f"{f}: expected a 3D volume, got shape {list(a.shape)}")
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise UserError(f"{f}: shape {list(a.shape)} differs from {list(shape)} of {files[0].name}")
        if not np.isfinite(a).all() or a.min() < -1e-3 or a.max() > 1.0 + 1e-3:
            raise UserError(f"{f}: intensities must be finite and in [0, 1] (prepare the scans first)")
        vols.append(np.clip(a, 0.0, 1.0))
    return VolumeSet(np.stack(vols)[:, None], [f.name for f in files], source=str(root))


def as_volume_set(obj: Any, what: str = "volumes") -> VolumeSet:
    """Turn an array/tensor ``[N, C, D, H, W]`` (or ``[N, D, H, W]``), a dataset directory, a
    NIfTI folder, a ``.npy`` file or a :class:`VolumeSet` into a :class:`VolumeSet`."""
    if isinstance(obj, VolumeSet):
        return obj
    if isinstance(obj, str | os.PathLike):
        p = Path(obj)
        if p.is_dir() and (p / "manifest.json").is_file():
            return open_dataset(p)
        if p.is_dir():
            return open_nifti_dir(p)
        if p.is_file() and p.suffix == ".npy":
            a = np.load(p, mmap_mode="r", allow_pickle=False)
            return VolumeSet(a[:, None] if a.ndim == 4 else a, source=str(p))
        raise UserError(f"{what} not found or not usable: {p} (need a dataset dir, a NIfTI folder or a .npy file)")
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().float().cpu().numpy()
    a = np.asarray(obj)
    if a.ndim == 4:
        a = a[:, None]
    if not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"{what}: expected float volumes in [0, 1], got dtype {a.dtype}")
    return VolumeSet(a, source=what)


def generate_volumes(
    ckpt: str | os.PathLike,
    seeds: Sequence[int],
    *,
    psi: float = 1.0,
    prior: str | os.PathLike | None = None,
    batch: int = 8,
    device: str = "cpu",
    progress: Any = None,
) -> tuple[VolumeSet, Checkpoint]:
    """Volumes from a checkpoint's EMA generator for ``seeds`` (:meth:`~stylegan3d.infer.api.Model.generate`
    with ``noise_mode='const'``, ``batch`` seeds at a time; w from the W ``prior`` when given).

    Returns ``(VolumeSet named seed0000..., the resolved Checkpoint)``. Large sets go to a temporary
    float16 memory map instead of RAM.
    """
    from stylegan3d.checkpoint import resolve_checkpoint
    from stylegan3d.infer.api import Model

    found = resolve_checkpoint(ckpt)
    if found.config.model.c_dim:
        raise UserError("metrics for conditional checkpoints (c_dim > 0) are not supported")
    model = Model.from_checkpoint(found, device)
    model.set_prior(prior)
    m = found.config.model
    shape = (len(seeds), int(m.channels), *[int(s) for s in m.resolution])
    keep = None
    if np.prod(shape) * 4 > 2**31:
        keep = tempfile.TemporaryDirectory(prefix="stylegan3d-fakes-")
        out = np.lib.format.open_memmap(Path(keep.name) / "fakes.npy", mode="w+", dtype=np.float16, shape=shape)
    else:
        out = np.empty(shape, dtype=np.float32)
    task = progress.add_task("generate", total=len(seeds)) if progress is not None else None
    for start in range(0, len(seeds), batch):
        chunk = [int(s) for s in seeds[start : start + batch]]
        out[start : start + len(chunk)] = model.generate(chunk, trunc=psi, noise_mode="const", batch=batch)
        if task is not None:
            progress.advance(task, len(chunk))
    names = [f"seed{s:04d}" for s in seeds]
    return VolumeSet(out, names, source=f"generated:{found.path.name}", keepalive=keep), found

"""The world frame of a checkpoint's volumes, read from its sidecar (``dataset``) or an MNI-centred default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stylegan3d.errors import CheckpointError

if TYPE_CHECKING:
    from stylegan3d.checkpoint import Sidecar
    from stylegan3d.config import Config
    from stylegan3d.data.spatial import Geometry


@dataclass
class ModelGeometry:
    """World frame of the generated volumes: 4x4 voxel-to-RAS-mm ``affine``, ``shape`` [D, H, W], ``spacing`` mm.

    ``from_dataset`` is False when the checkpoint carried no dataset geometry and an MNI-centred
    grid of the model resolution and ``config.model.spacing_mm`` is used instead. ``frame``,
    ``lower_pct``/``upper_pct`` and ``mask_threshold`` are the training data's preparation
    settings, applied to scans given as projection targets.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    frame: str = "mni"
    from_dataset: bool = True
    lower_pct: float = 0.5
    upper_pct: float = 99.5
    mask_threshold: float | None = None

    @property
    def note(self) -> str:
        """Human-readable description of where the geometry comes from."""
        if self.from_dataset:
            return f"dataset geometry: {list(self.shape)} voxels of {list(self.spacing)} mm"
        return (
            "checkpoint has no dataset geometry; using an MNI-centred grid of "
            f"{list(self.shape)} voxels of {list(self.spacing)} mm"
        )

    def data_geometry(self) -> Geometry:
        """The same grid as a :class:`stylegan3d.data.spatial.Geometry` (for preparing targets)."""
        from stylegan3d.data.spatial import Geometry

        return Geometry(list(self.shape), list(self.spacing), self.affine, self.frame)


def _sidecar_numbers(value: Any, what: str) -> np.ndarray:
    """``value`` as a finite float64 array, or a CheckpointError naming the sidecar field ``what``."""
    if value is None or isinstance(value, str | bytes | dict):
        raise CheckpointError(f"checkpoint dataset {what} must be numbers, got {_short(value)}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise CheckpointError(f"checkpoint dataset {what} must be numbers, got {_short(value)}") from None
    if not np.isfinite(arr).all():
        raise CheckpointError(f"checkpoint dataset {what} must be finite numbers, got {_short(value)}")
    return arr


def _short(value: Any, limit: int = 60) -> str:
    """One-line, length-limited repr of a sidecar value for error messages."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def geometry_from_sidecar(meta: Sidecar, cfg: Config) -> ModelGeometry:
    """World frame of a checkpoint: its ``dataset`` geometry, else an MNI-centred grid (see :class:`ModelGeometry`).

    Also reads how the training data were prepared (``frame``, ``intensity`` percentiles and
    ``mask_threshold``, recorded by the training loop from the dataset manifest) so that
    projection targets are prepared the same way; checkpoints without them get prepare's
    defaults. The sidecar is not covered by the checkpoint's SHA-256, so a malformed entry is a
    CheckpointError rather than a crash.
    """
    from stylegan3d.data.spatial import FRAMES, Geometry

    res = tuple(int(s) for s in cfg.model.resolution)
    ds = meta.dataset or {}
    if not isinstance(ds, dict):
        raise CheckpointError(f"checkpoint dataset geometry must be an object, got {_short(ds)}")
    intensity = ds.get("intensity") or {}
    if not isinstance(intensity, dict):
        raise CheckpointError(f"checkpoint dataset intensity must be an object, got {_short(intensity)}")
    pct = _sidecar_numbers([intensity.get("lower_pct", 0.5), intensity.get("upper_pct", 99.5)], "percentiles")
    if pct.shape != (2,) or not 0.0 <= pct[0] < pct[1] <= 100.0:
        raise CheckpointError(
            f"checkpoint dataset percentiles must be 0 <= lower < upper <= 100, got {_short(intensity)}"
        )
    threshold = ds.get("mask_threshold")
    if threshold is not None:
        t = _sidecar_numbers(threshold, "mask_threshold")
        if t.shape != () or not 0.0 <= float(t) <= 1.0:
            raise CheckpointError(
                f"checkpoint dataset mask_threshold must be a number in [0, 1], got {_short(threshold)}"
            )
        threshold = float(t)
    prep = {"lower_pct": float(pct[0]), "upper_pct": float(pct[1]), "mask_threshold": threshold}
    if ds.get("affine") is None:
        g = Geometry.from_shape(res, cfg.model.spacing_mm, frame="mni")
        return ModelGeometry(g.affine, res, tuple(g.spacing), "mni", False, **prep)
    affine = _sidecar_numbers(ds["affine"], "affine")
    if affine.shape != (4, 4):
        raise CheckpointError(f"checkpoint dataset affine must be a finite 4x4 matrix, got shape {list(affine.shape)}")
    shape = _sidecar_numbers(ds.get("shape", list(res)), "shape")
    if shape.shape != (3,) or (shape != np.round(shape)).any():
        raise CheckpointError(f"checkpoint dataset shape must be three whole numbers, got {_short(ds.get('shape'))}")
    if tuple(int(s) for s in shape) != res:
        raise CheckpointError(
            f"checkpoint dataset shape {shape.astype(int).tolist()} differs from the model resolution {list(res)}"
        )
    spacing = ds.get("spacing") or np.linalg.norm(affine[:3, :3], axis=0).tolist()
    sp = _sidecar_numbers(spacing, "spacing")
    if sp.shape != (3,) or (sp <= 0).any():
        raise CheckpointError(f"checkpoint dataset spacing must be three positive sizes in mm, got {_short(spacing)}")
    frame = ds.get("frame", "centre")
    if not isinstance(frame, str) or frame not in FRAMES:
        raise CheckpointError(f"checkpoint dataset frame must be one of {', '.join(FRAMES)}, got {_short(frame)}")
    return ModelGeometry(affine, res, tuple(float(s) for s in sp), frame, True, **prep)

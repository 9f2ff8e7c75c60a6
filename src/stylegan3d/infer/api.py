"""Python API for using a trained generator: generate, project, mix styles, interpolate.

>>> from stylegan3d.infer.api import load
>>> model = load("runs/demo")                      # run dir, .safetensors or its .json
>>> vols = model.generate([0, 1, 2], trunc=0.7)    # [3, C, D, H, W] float32 in [0, 1]
>>> model.save_nifti(vols[0], "seed0.nii.gz")      # dataset world frame (affine from the checkpoint)
>>> res = model.project("scan.nii.gz", space="w+", steps=500)
>>> res.metrics["ssim"], res.save("proj/")

Latents: seeds name ``z = seeds_to_z(seeds)``; ws are ``[N, num_ws, w_dim]``; volumes are
``[N, C, D, H, W]`` numpy arrays in [0, 1] (``to_unit_range`` of the network output). The
command line (``stylegan3d generate|project|mix|interpolate``) is a thin layer over this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan3d.config import Config
from stylegan3d.errors import CheckpointError, DataError, UserError
from stylegan3d.fileio import atomic_path, atomic_write_json
from stylegan3d.nn import seeds_to_z, to_unit_range

LATENT_FORMAT = "stylegan3d-latent"
NOISE_MODES = ("const", "random", "none")


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

    def data_geometry(self):
        """The same grid as a :class:`stylegan3d.data.prepare.Geometry` (for preparing targets)."""
        from stylegan3d.data.prepare import Geometry

        return Geometry(list(self.shape), list(self.spacing), self.affine, self.frame)


@dataclass
class Latent:
    """One point of the style space: ``ws [num_ws, w_dim]`` plus optional noise maps and z.

    ``noise`` (per-layer ``[1, 1, *res]`` maps) is set for projected latents; None means the
    model's noise mode decides. ``z [z_dim]`` is set for latents made from a seed.
    """

    ws: torch.Tensor
    name: str
    noise: list[torch.Tensor] | None = None
    z: torch.Tensor | None = None
    seed: int | None = None


@dataclass
class ProjectionResult:
    """Outcome of :meth:`Model.project`.

    Arrays: ``target``/``reconstruction`` ``[C, D, H, W]`` in [0, 1] on the model grid
    (``affine``), ``mask`` ``[D, H, W]`` bool or None. ``metrics``: psnr (dB), ssim, mae, mse
    (inside the mask when given). ``history``: per-step loss terms and learning rate.
    """

    ws: np.ndarray
    noise: list[np.ndarray]
    space: str
    target: np.ndarray
    reconstruction: np.ndarray
    mask: np.ndarray | None
    metrics: dict[str, float]
    history: dict[str, list[float]]
    seconds: float
    affine: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    """For NIfTI targets: ``path``, ``orig_affine``, ``orig_shape``, ``intensity`` of the original scan."""
    model_sha256: str | None = None
    preprocessed: Any = None
    """``project(..., preprocess="t1")``: the :class:`~stylegan3d.data.preprocess.pipeline.PreprocessResult`."""

    def reconstruction_native(self) -> np.ndarray | None:
        """The reconstruction resampled back onto the target's own voxel grid (``[X, Y, Z]``, [0, 1]).

        For a preprocessed target the inverse of its registration is composed in (one resampling),
        so the result overlays the original scan."""
        if self.source is None:
            return None
        from stylegan3d.data.prepare import resample_to

        if self.source.get("mni_to_native") is not None:
            from stylegan3d.data.preprocess.register import to_native

            return to_native(
                self.reconstruction[0], self.affine, np.asarray(self.source["mni_to_native"]),
                np.asarray(self.source["orig_affine"]), self.source["orig_shape"],
            )
        return resample_to(
            self.reconstruction[0], self.affine, np.asarray(self.source["orig_affine"]), self.source["orig_shape"]
        )

    def save(
        self, out: str | os.PathLike, spacing: Sequence[float] | None = None, *, html: bool = False
    ) -> dict[str, Path]:
        """Write every output of a projection into folder ``out``; returns ``{kind: path}``.

        ``reconstruction.nii.gz`` and ``target.nii.gz`` (model grid), ``reconstruction_native.nii.gz``
        (target's own grid, NIfTI targets only), ``mask.nii.gz``, ``latent.npz``, ``compare.png``
        (target / reconstruction / |error| in three planes), ``loss.png`` and ``metrics.json``; with
        ``html`` also ``viewer.html`` (interactive NiiVue page, see :mod:`stylegan3d.viewer`).
        """
        from stylegan3d.infer.mixing import save_comparison, save_loss_curve

        out = Path(out)
        paths = {
            "reconstruction": write_nifti(self.reconstruction, self.affine, out / "reconstruction.nii.gz"),
            "target": write_nifti(self.target, self.affine, out / "target.nii.gz"),
        }
        native = self.reconstruction_native()
        if native is not None:
            paths["reconstruction_native"] = write_nifti(
                native, np.asarray(self.source["orig_affine"]), out / "reconstruction_native.nii.gz"
            )
        if self.mask is not None:
            paths["mask"] = write_nifti(self.mask.astype(np.float32), self.affine, out / "mask.nii.gz")
        if self.preprocessed is not None:
            from stylegan3d.data.preprocess.pipeline import save_outputs

            for kind, p in save_outputs(self.preprocessed, out, "target").items():
                paths[f"target_{kind}"] = Path(p)
        paths["latent"] = save_latent(out / "latent.npz", self.ws, self.noise, self.space, self.model_sha256)
        paths["compare"] = save_comparison(out / "compare.png", self.target, self.reconstruction, self.mask, spacing)
        paths["loss"] = save_loss_curve(out / "loss.png", self.history)
        if html:
            from stylegan3d.viewer.build import projection_viewer

            note = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items() if isinstance(v, float))
            paths["viewer"] = projection_viewer(out, self.target, self.reconstruction, self.affine, note)
        summary = {
            "metrics": self.metrics,
            "space": self.space,
            "steps": len(self.history.get("loss", [])),
            "seconds": self.seconds,
            "masked": self.mask is not None,
            "settings": self.settings,
            "source": self.source,
            "final_loss": self.history["loss"][-1] if self.history.get("loss") else None,
        }
        paths["metrics"] = out / "metrics.json"
        atomic_write_json(paths["metrics"], summary)
        return paths


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"invalid device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {device!r} requested but MPS is not available")
    return dev


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


def geometry_from_sidecar(meta: dict, cfg: Config) -> ModelGeometry:
    """World frame of a checkpoint: its ``dataset`` geometry, else an MNI-centred grid (see :class:`ModelGeometry`).

    Also reads how the training data were prepared (``frame``, ``intensity`` percentiles and
    ``mask_threshold``, recorded by the training loop from the dataset manifest) so that
    projection targets are prepared the same way; checkpoints without them get prepare's
    defaults. The sidecar is not covered by the checkpoint's SHA-256, so a malformed entry is a
    CheckpointError rather than a crash.
    """
    from stylegan3d.data.prepare import FRAMES, Geometry

    res = tuple(int(s) for s in cfg.model.resolution)
    ds = meta.get("dataset") or {}
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


def load(ckpt: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Load the EMA generator of a checkpoint (run dir, ``.safetensors`` or its ``.json``) for inference."""
    from stylegan3d.checkpoint import load_generator

    dev = _parse_device(device)
    G, meta = load_generator(ckpt, dev)
    cfg = Config.from_dict(meta["config"])
    geometry = geometry_from_sidecar(meta, cfg)
    if not geometry.from_dataset:
        warnings.warn(geometry.note, stacklevel=2)
    return Model(G, cfg, geometry, meta, dev)


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


def save_latent(
    path: str | os.PathLike,
    ws: np.ndarray | torch.Tensor,
    noise: Sequence[np.ndarray | torch.Tensor] | None = None,
    space: str = "w+",
    model_sha256: str | None = None,
) -> Path:
    """Write a latent as ``.npz`` (no pickle): ``ws [num_ws, w_dim]``, ``w [w_dim]`` (W space only),
    ``noise_<i>`` per layer, ``space``, ``format``, ``model_sha256`` (checkpoint the latent belongs to)."""
    ws_np = np.asarray(ws.detach().cpu() if torch.is_tensor(ws) else ws, dtype=np.float32)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(LATENT_FORMAT),
        "space": np.array(space),
        "ws": ws_np,
        "model_sha256": np.array(model_sha256 or ""),
    }
    if space == "w":
        arrays["w"] = ws_np[0]
    for i, v in enumerate(noise or []):
        arrays[f"noise_{i}"] = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float32)
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float32 array; ragged (object), complex or non-numeric input is a UserError.

    ``np.asarray(..., dtype=float32)`` alone raises a raw ValueError for ragged nested lists and
    silently drops the imaginary part of complex data.
    """
    try:
        arr = np.asarray(value)
    except ValueError:
        raise UserError(f"{what} is a ragged nested sequence, not a regular numeric array") from None
    if arr.dtype == object:
        raise UserError(f"{what} is a ragged or object array (dtype object), not a regular numeric array")
    if arr.dtype.kind == "c":
        raise UserError(f"{what} is complex ({arr.dtype}); pass real intensities (e.g. its magnitude)")
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _labels_to_c(labels: Any, n: int, c_dim: int) -> torch.Tensor | None:
    """Labels (None, one int, one int per sample or an ``[N, c_dim]`` array) -> one-hot/real ``c [N, c_dim]``."""
    if c_dim == 0:
        if labels is not None:
            raise UserError("this model is unconditional; do not pass labels")
        return None
    if labels is None:
        raise UserError(f"this model is conditional ({c_dim} classes); pass labels")
    arr = np.asarray(labels)
    if arr.ndim == 2:
        if arr.shape != (n, c_dim):
            raise UserError(f"label array must be [{n}, {c_dim}], got {list(arr.shape)}")
        return torch.from_numpy(arr.astype(np.float32))
    idx = np.broadcast_to(arr.astype(np.int64).reshape(-1), (n,)) if arr.size == 1 else arr.astype(np.int64)
    if idx.shape != (n,):
        raise UserError(f"give one label or one label per sample ({n}), got {arr.size}")
    if idx.min() < 0 or idx.max() >= c_dim:
        raise UserError(f"labels must be class indices in 0..{c_dim - 1}")
    return torch.nn.functional.one_hot(torch.from_numpy(np.array(idx, dtype=np.int64)), c_dim).float()


class Model:
    """A loaded generator with its configuration and world geometry (see :func:`load`)."""

    def __init__(
        self, G: torch.nn.Module, config: Config, geometry: ModelGeometry, sidecar: dict, device: torch.device
    ) -> None:
        self.G = G
        self.config = config
        self.geometry = geometry
        self.sidecar = sidecar
        self.device = device

    # ------------------------------------------------------------------ basics
    @property
    def num_ws(self) -> int:
        return int(self.G.synthesis.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.G.w_dim)

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the checkpoint file (identifies the model in saved latents)."""
        return self.sidecar.get("sha256")

    def noise_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.G.synthesis.noise_shapes()]

    def const_noise(self) -> list[torch.Tensor]:
        """The model's fixed per-layer noise maps ``[1, 1, *res]`` (what ``noise_mode='const'`` uses)."""
        return [layer.noise_const.detach().clone() for layer in self.G.synthesis.layers]

    def seed_noise(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """Per-layer noise maps ``[N, 1, *res]`` drawn from each seed (independent of batch and device)."""
        per_seed = []
        for s in seeds:
            gen = torch.Generator().manual_seed(int(s) % (2**63))
            per_seed.append([torch.randn(shape, generator=gen) for shape in self.noise_shapes()])
        return [torch.cat([p[i] for p in per_seed]) for i in range(len(self.noise_shapes()))]

    def save_nifti(self, array: np.ndarray, path: str | os.PathLike) -> Path:
        """Write a volume ``[D, H, W]`` / ``[C, D, H, W]`` as float32 NIfTI in the model's world frame."""
        a = np.asarray(array)
        if tuple(a.shape[-3:]) != self.geometry.shape:
            raise UserError(f"volume shape {list(a.shape)} does not match the model grid {list(self.geometry.shape)}")
        return write_nifti(a, self.geometry.affine, path, mni=self.geometry.frame == "mni")

    # ------------------------------------------------------------------ latents
    def ws_from_seeds(
        self, seeds: Sequence[int], trunc: float = 1.0, labels: Any = None, trunc_cutoff: int | None = None
    ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` (on the model's device) of ``seeds``, truncated toward ``w_avg`` by ``trunc``."""
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise UserError("no seeds given")
        z = seeds_to_z(seeds, self.G.z_dim)
        c = _labels_to_c(labels, len(seeds), self.G.c_dim)
        with torch.no_grad():
            ws = [
                self.G.mapping(
                    z[i : i + 1].to(self.device),
                    None if c is None else c[i : i + 1].to(self.device),
                    truncation_psi=trunc,
                    truncation_cutoff=trunc_cutoff,
                )
                for i in range(len(seeds))
            ]
        return torch.cat(ws)

    def latent_from_seed(self, seed: int, trunc: float = 1.0, labels: Any = None) -> Latent:
        ws = self.ws_from_seeds([seed], trunc, labels)[0]
        return Latent(ws=ws, name=f"seed{seed}", z=seeds_to_z([seed], self.G.z_dim)[0], seed=int(seed))

    def load_latent(self, path: str | os.PathLike) -> Latent:
        """Read a latent ``.npz`` (from :meth:`project`); latents of another model give a UserError."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"latent file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError) as e:
            raise UserError(f"{path} is not a latent .npz file ({' '.join(str(e).split())})") from None
        if "ws" not in data:
            raise UserError(f"{path} holds no 'ws' array; not a stylegan3d latent")
        ws = data["ws"]
        if ws.ndim == 3 and ws.shape[0] == 1:
            ws = ws[0]
        want = (self.num_ws, self.w_dim)
        if tuple(ws.shape) != want:
            raise UserError(
                f"latent {path.name} has ws {list(ws.shape)} but this model needs {list(want)}: "
                "it belongs to another model"
            )
        noise = None
        keys = sorted((k for k in data if k.startswith("noise_")), key=lambda k: int(k.split("_")[1]))
        if keys:
            shapes = self.noise_shapes()
            got = [tuple(data[k].shape) for k in keys]
            if got != shapes:
                raise UserError(f"latent {path.name} has noise maps of another model ({got} vs {shapes})")
            noise = [torch.from_numpy(data[k].astype(np.float32)).to(self.device) for k in keys]
        sha = str(data.get("model_sha256", "")) or None
        if sha and self.sha256 and sha != self.sha256:
            warnings.warn(
                f"latent {path.name} was projected with another checkpoint of the same architecture", stacklevel=2
            )
        return Latent(ws=torch.from_numpy(ws.astype(np.float32)).to(self.device), name=path.stem, noise=noise)

    def latents(
        self, specs: Sequence[int | str | os.PathLike | Latent], trunc: float = 1.0, labels: Any = None
    ) -> list[Latent]:
        """Resolve a list of seeds, ``.npz`` latent paths or :class:`Latent` objects."""
        out = []
        for s in specs:
            if isinstance(s, Latent):
                out.append(s)
            elif isinstance(s, int | np.integer):
                out.append(self.latent_from_seed(int(s), trunc, labels))
            else:
                out.append(self.load_latent(s))
        return out

    # ------------------------------------------------------------------ synthesis
    def synthesize(
        self,
        ws: np.ndarray | torch.Tensor,
        noise_mode: str = "const",
        noise: Sequence[torch.Tensor] | None = None,
        batch: int = 8,
        progress: bool = False,
        description: str = "synthesize",
    ) -> np.ndarray:
        """Volumes ``[N, C, D, H, W]`` in [0, 1] from ``ws [N, num_ws, w_dim]`` (or one ``[num_ws, w_dim]``).

        ``noise``: explicit per-layer maps ``[N or 1, 1, *res]`` (overrides ``noise_mode``).
        """
        if noise_mode not in NOISE_MODES:
            raise UserError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        if batch < 1:
            raise UserError("batch must be >= 1")
        ws = torch.as_tensor(ws, dtype=torch.float32)
        if ws.ndim == 2:
            ws = ws[None]
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise UserError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        n = ws.shape[0]
        out = np.empty((n, self.G.synthesis.torgb.bias.shape[0], *self.geometry.shape), np.float32)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not progress) as bar, torch.no_grad():
            task = bar.add_task(description, total=n)
            for i in range(0, n, batch):
                j = min(n, i + batch)
                nz = None
                if noise is not None:
                    nz = [(v if v.shape[0] == 1 else v[i:j]).to(self.device) for v in noise]
                y = self.G.synthesis(ws[i:j].to(self.device), noise_mode=noise_mode, noise=nz)
                out[i:j] = to_unit_range(y).cpu().numpy()
                bar.advance(task, j - i)
        return out

    def generate(
        self,
        seeds: Sequence[int],
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
    ) -> np.ndarray:
        """Volumes ``[N, C, D, H, W]`` in [0, 1] for ``seeds``; the same seed and options give the same volume.

        ``noise_mode``: ``const`` (the model's fixed noise maps), ``random`` (maps drawn from the
        seed, so still reproducible) or ``none``.
        """
        if noise_mode not in NOISE_MODES:
            raise UserError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        ws = self.ws_from_seeds(seeds, trunc, labels)
        noise = self.seed_noise(seeds) if noise_mode == "random" else None
        return self.synthesize(ws, noise_mode, noise, batch, progress, "generate")

    # ------------------------------------------------------------------ projection
    def prepare_target(
        self, target: np.ndarray | str | os.PathLike, mask: np.ndarray | str | os.PathLike | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any] | None]:
        """Bring a projection target (and mask) onto the model grid.

        A path is read as a volume (NIfTI, MGH, ...), reoriented, resampled and intensity-scaled
        exactly like the training data (``stylegan3d.data.prepare.prepare_array`` with the
        checkpoint's geometry, frame, intensity percentiles and mask threshold); a mask path is
        resampled alongside it. An array must already be
        ``[D, H, W]`` or ``[C, D, H, W]`` at the model resolution with values in [0, 1].
        Returns ``(target [C, D, H, W], mask [D, H, W] bool or None, affine 4x4, source info)``.
        """
        channels = int(self.G.synthesis.torgb.bias.shape[0])
        if isinstance(target, str | os.PathLike):
            return self._prepare_path(Path(target), mask, channels)
        arr = _real_array(target, "target")
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim == 5 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 4 or tuple(arr.shape) != (channels, *self.geometry.shape):
            raise UserError(
                f"target shape {list(np.shape(target))} does not match the model grid "
                f"{list(self.geometry.shape)} with {channels} channel(s)"
            )
        if not np.isfinite(arr).all() or arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
            raise UserError("target intensities must be finite and in [0, 1]")
        m = None
        if mask is not None:
            if isinstance(mask, str | os.PathLike):
                m = self._mask_on_grid(Path(mask), self.geometry.affine, self.geometry.shape)
            else:
                m = _real_array(mask, "mask") > 0.5
                if m.shape != self.geometry.shape:
                    raise UserError(
                        f"mask shape {list(m.shape)} does not match the model grid {list(self.geometry.shape)}"
                    )
        return np.clip(arr, 0.0, 1.0), m, self.geometry.affine.copy(), None

    def _load(self, path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
        from stylegan3d.data.io import load_volume, volume_suffix

        if not path.exists():
            raise UserError(f"{what} not found: {path}")
        if volume_suffix(path) is None:
            raise UserError(f"{what} {path} is not a NIfTI/MGH volume (.nii, .nii.gz, .mgz, .hdr, .npz)")
        try:
            return load_volume(path)
        except DataError as e:
            raise UserError(f"{what} {path}: {e}") from None

    def _mask_on_grid(self, path: Path, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        from stylegan3d.data.prepare import resample_to

        data, aff = self._load(path, "mask")
        m = resample_to((data > 0.5).astype(np.float32), aff, affine, shape, order=1) > 0.5
        if not m.any():
            raise UserError(f"mask {path} does not overlap the model grid")
        return m

    def _preprocess_path(self, path: Path, skip: Any = None):
        """``project --preprocess t1``: the T1 pipeline onto the model's MNI grid; the brain mask is the loss mask."""
        from stylegan3d.data.preprocess import PreprocessError
        from stylegan3d.data.preprocess.pipeline import preprocess_file
        from stylegan3d.data.preprocess.register import to_grid

        if not path.exists():
            raise UserError(f"target not found: {path}")
        g = self.geometry
        geom = g.data_geometry()
        try:
            pre = preprocess_file(path, geom, skip or (), lower_pct=g.lower_pct, upper_pct=g.upper_pct)
        except PreprocessError as e:
            raise UserError(f"target {path}: {e}") from None
        reg = pre.registration
        m = to_grid(pre.mask.astype(np.float32), pre.ras_affine, reg.mni_to_native, g.affine, g.shape) > 0.5
        source = {
            "path": str(path),
            "orig_affine": pre.info["orig_affine"],
            "orig_shape": pre.info["orig_shape"],
            "intensity": pre.info["intensity"],
            "grid_affine": pre.info["target_affine"],
            "mni_to_native": reg.mni_to_native.tolist(),
            "preprocess": pre.info["preprocess"],
        }
        return pre.volume[None], m, np.asarray(g.affine, dtype=np.float64).copy(), source, pre

    def _prepare_path(self, path: Path, mask: Any, channels: int):
        from stylegan3d.data.prepare import prepare_array, resample_to

        if channels != 1:
            raise UserError(f"this model makes {channels}-channel volumes; project from an array [C, D, H, W]")
        data, affine = self._load(path, "target")
        from stylegan3d.data.preprocess.pipeline import mni_mismatch

        reasons = mni_mismatch(data, affine) if mask is None else []
        if self.geometry.frame != "mni":  # a 'centre' model crops around the brain itself: position does not matter
            reasons = [r for r in reasons if "whole head" in r]
        if reasons:
            warnings.warn(
                f"target {path.name} does not look like a skull-stripped brain in MNI152 space ({'; '.join(reasons)}); "
                "for a raw scan use --preprocess t1 (Python: preprocess='t1')",
                stacklevel=3,
            )
        mask_native = None
        if mask is not None:
            if isinstance(mask, str | os.PathLike):
                mdata, maff = self._load(Path(mask), "mask")
                if mdata.shape == data.shape and np.allclose(maff, affine, atol=1e-3):
                    mask_native = (mdata > 0.5).astype(np.float32)
                else:
                    mask_native = resample_to((mdata > 0.5).astype(np.float32), maff, affine, data.shape) > 0.5
                    mask_native = mask_native.astype(np.float32)
            else:
                mask_native = _real_array(mask, "mask")
                if mask_native.shape != data.shape:
                    raise UserError(
                        f"mask shape {list(mask_native.shape)} differs from the target's {list(data.shape)}"
                    )
            if not mask_native.any():
                raise UserError("the mask is empty")
        g = self.geometry
        how = mask_native if mask_native is not None else g.mask_threshold  # as prepare: a mask wins
        try:
            vol, info = prepare_array(data, affine, g.data_geometry(), g.lower_pct, g.upper_pct, how)
        except DataError as e:
            raise UserError(f"target {path}: {e}") from None
        grid_affine = np.asarray(info["target_affine"], dtype=np.float64)
        m = None
        if mask_native is not None:
            m = resample_to(mask_native, affine, grid_affine, g.shape, order=1) > 0.5
        source = {
            "path": str(path),
            "orig_affine": info["orig_affine"],
            "orig_shape": info["orig_shape"],
            "intensity": info["intensity"],
            "grid_affine": info["target_affine"],
        }
        return vol[None], m, grid_affine, source

    def project(
        self,
        target: np.ndarray | str | os.PathLike,
        space: str = "w+",
        steps: int = 1000,
        mask: np.ndarray | str | os.PathLike | None = None,
        labels: Any = None,
        progress: bool = False,
        preprocess: str | None = None,
        skip: Any = None,
        **settings: Any,
    ) -> ProjectionResult:
        """Find ws (W or W+) and noise maps reproducing ``target`` (array ``[D, H, W]`` in [0, 1] or a scan path).

        Extra ``settings`` are :class:`~stylegan3d.infer.projector.ProjectorConfig` fields
        (``lr``, ``w_noise``, ``noise_reg``, ``perceptual``, ``seed``, ...). ``preprocess="t1"``
        (a scan path only) runs the raw-T1 pipeline first (N4, deepbet, affine to MNI152; ``skip``
        names steps to leave out); the brain mask becomes the loss mask, and the result maps back
        to the scan's native space through the inverse transform.
        """
        from stylegan3d.infer.projector import ProjectorConfig, project_volume, reconstruction_metrics

        known = set(ProjectorConfig.__dataclass_fields__)
        unknown = set(settings) - known
        if unknown:
            raise UserError(f"unknown projector setting(s) {sorted(unknown)}")
        cfg = ProjectorConfig(space=space, steps=steps, **settings).validate()
        pre = None
        if preprocess is not None:
            if preprocess != "t1":
                raise UserError(f"unknown preprocessing {preprocess!r}: the pipeline is 't1'")
            if not isinstance(target, str | os.PathLike):
                raise UserError("preprocess='t1' needs a scan path as the target")
            if mask is not None:
                raise UserError("--preprocess t1 makes its own brain mask: drop --mask")
            vol, m, affine, source, pre = self._preprocess_path(Path(target), skip)
        else:
            vol, m, affine, source = self.prepare_target(target, mask)
        c = _labels_to_c(labels, 1, self.G.c_dim)
        out = project_volume(
            self.G,
            torch.from_numpy(vol),
            None if m is None else torch.from_numpy(m),
            cfg,
            None if c is None else c.to(self.device),
            progress,
        )
        metrics = reconstruction_metrics(out.reconstruction, vol, m)
        return ProjectionResult(
            ws=out.ws.numpy(),
            noise=[v.numpy() for v in out.noise],
            space=space,
            target=vol,
            reconstruction=out.reconstruction,
            mask=m,
            metrics=metrics,
            history=out.history,
            seconds=out.seconds,
            affine=affine,
            settings=out.config,
            source=source,
            model_sha256=self.sha256,
            preprocessed=pre,
        )

    # ------------------------------------------------------------------ mixing / interpolation
    def mix(
        self,
        row_ws: Sequence[Latent] | np.ndarray | torch.Tensor,
        col_ws: Sequence[Latent] | np.ndarray | torch.Tensor,
        styles: Sequence[int],
        noise_mode: str = "const",
        batch: int = 8,
        progress: bool = False,
    ) -> np.ndarray:
        """Style mixing: volume ``[R, K, C, D, H, W]`` for row r and column k uses the row's ws, with
        the style layers ``styles`` taken from the column (low indices = coarse anatomy, high = texture).

        Rows and columns are ws ``[N, num_ws, w_dim]`` or :class:`Latent` lists; a row latent with
        noise maps (a projection) keeps them.
        """
        from stylegan3d.infer.mixing import mix_ws

        rows = self._as_latents(row_ws, "row")
        cols = self._as_latents(col_ws, "col")
        styles = self._check_styles(styles)
        out = []
        for r in rows:
            ws = mix_ws(r.ws, torch.stack([c.ws for c in cols]), styles)
            out.append(self.synthesize(ws, noise_mode, r.noise, batch, progress, f"mix {r.name}"))
        return np.stack(out)

    def _check_styles(self, styles: Sequence[int]) -> list[int]:
        styles = sorted({int(s) for s in styles})
        if not styles or styles[0] < 0 or styles[-1] >= self.num_ws:
            raise UserError(f"style layers must be in 0..{self.num_ws - 1}, got {styles}")
        return styles

    def _as_latents(self, value: Any, name: str) -> list[Latent]:
        if isinstance(value, np.ndarray | torch.Tensor):
            ws = torch.as_tensor(value, dtype=torch.float32)
            if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
                raise UserError(f"{name} ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
            return [Latent(ws=w.to(self.device), name=f"{name}{i}") for i, w in enumerate(ws)]
        latents = self.latents(value)
        if not latents:
            raise UserError(f"no {name} latents given")
        return latents

    def interpolate(
        self,
        keys: Sequence[int | str | os.PathLike | Latent],
        frames: int = 16,
        space: str = "w",
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
    ) -> np.ndarray:
        """Volumes ``[(K - 1) * frames + 1, C, D, H, W]`` along a path through K key latents.

        ``space='z'``: spherical interpolation (slerp) of the seeds' z, then mapping (keys must be
        seeds); ``space='w'``: linear interpolation of ws (seeds or projected ``.npz`` latents).
        Noise maps of projected keys are interpolated too (others use the model's const maps).
        """
        from stylegan3d.infer.mixing import interpolation_weights, slerp

        if space not in ("z", "w"):
            raise UserError(f"interpolation space must be z or w, got {space!r}")
        if frames < 1:
            raise UserError("frames must be >= 1")
        lats = self.latents(keys, trunc, labels)
        if len(lats) < 2:
            raise UserError("interpolation needs at least two keys")
        seg, t = interpolation_weights(len(lats), frames)
        if space == "z":
            if any(lat.z is None for lat in lats):
                raise UserError(
                    "z-space interpolation needs seeds as keys (projected latents have no z); use --space w"
                )
            z = torch.stack([slerp(lats[s].z, lats[s + 1].z, float(w)) for s, w in zip(seg, t, strict=True)])
            c = _labels_to_c(labels, len(z), self.G.c_dim)
            with torch.no_grad():
                ws = torch.cat(
                    [
                        self.G.mapping(
                            z[i : i + 1].to(self.device),
                            None if c is None else c[i : i + 1].to(self.device),
                            truncation_psi=trunc,
                        )
                        for i in range(len(z))
                    ]
                )
        else:
            tt = torch.as_tensor(t, dtype=torch.float32, device=self.device)[:, None, None]
            a = torch.stack([lats[s].ws for s in seg])
            b = torch.stack([lats[s + 1].ws for s in seg])
            ws = a + (b - a) * tt
        noise = None
        if any(lat.noise is not None for lat in lats):
            const = [v.to(self.device) for v in self.const_noise()]
            maps = [lat.noise if lat.noise is not None else const for lat in lats]
            noise = []
            for i in range(len(const)):
                tt = torch.as_tensor(t, dtype=torch.float32, device=self.device).view(
                    -1, 1, *([1] * (const[i].ndim - 2))
                )
                a = torch.cat([maps[s][i] for s in seg])
                b = torch.cat([maps[s + 1][i] for s in seg])
                noise.append(a + (b - a) * tt)
        return self.synthesize(ws, noise_mode, noise, batch, progress, "interpolate")

    # ------------------------------------------------------------------ writing results
    def write_volumes(
        self,
        vols: np.ndarray,
        names: Sequence[str],
        out: str | os.PathLike,
        contact_sheet: str | None = "contact_sheet.png",
    ) -> list[Path]:
        """Write ``vols [N, C, D, H, W]`` as ``<name>.nii.gz`` + ``<name>.png`` (tri-planar) in ``out``,
        plus a contact sheet of all of them; returns the written paths."""
        from stylegan3d.viz import save_contact_sheet, save_triplanar

        out = Path(out)
        spacing = self.geometry.spacing
        paths = []
        for vol, name in zip(vols, names, strict=True):
            paths.append(self.save_nifti(vol, out / f"{name}.nii.gz"))
            paths.append(save_triplanar(out / f"{name}.png", vol[0], spacing=spacing))
        if contact_sheet:
            paths.append(save_contact_sheet(out / contact_sheet, [v[0] for v in vols], spacing=spacing))
        return paths

    def generate_to_dir(
        self,
        seeds: Sequence[int],
        out: str | os.PathLike,
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
        *,
        html: bool = False,
    ) -> list[Path]:
        """:meth:`generate` and write ``seedXXXX.nii.gz`` / ``.png`` per seed and ``contact_sheet.png``
        (and ``viewer.html``, an interactive NiiVue page, with ``html``)."""
        vols = self.generate(seeds, trunc, noise_mode, labels, batch, progress)
        names = [f"seed{int(s):04d}" for s in seeds]
        paths = self.write_volumes(vols, names, out)
        if html:
            from stylegan3d.viewer.build import samples_viewer

            paths.append(samples_viewer(out, names, list(vols), self.geometry.affine))
        return paths

    def mix_to_dir(
        self,
        rows: Sequence[int | str | os.PathLike | Latent],
        cols: Sequence[int | str | os.PathLike | Latent],
        styles: Sequence[int],
        out: str | os.PathLike,
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
        *,
        html: bool = False,
    ) -> list[Path]:
        """:meth:`mix` and write ``mix_<row>_<col>.nii.gz`` for every cell, the sources
        (``row_<name>``, ``col_<name>``) and ``mix_grid.png`` (StyleGAN's mixing figure); with
        ``html`` also ``viewer.html`` (the grid in an interactive NiiVue page)."""
        from stylegan3d.infer.mixing import save_mix_grid

        row_l = self.latents(rows, trunc, labels)
        col_l = self.latents(cols, trunc, labels)
        mixed = self.mix(row_l, col_l, styles, noise_mode, batch, progress)
        row_v = np.concatenate([self.synthesize(r.ws, noise_mode, r.noise) for r in row_l])
        col_v = np.concatenate([self.synthesize(c.ws, noise_mode, c.noise) for c in col_l])
        out = Path(out)
        paths = [save_mix_grid(out / "mix_grid.png", mixed, row_v, col_v, self.geometry.spacing)]
        for r, lat in enumerate(row_l):
            paths.append(self.save_nifti(row_v[r], out / f"row_{lat.name}.nii.gz"))
            for k, col in enumerate(col_l):
                paths.append(self.save_nifti(mixed[r, k], out / f"mix_{lat.name}_{col.name}.nii.gz"))
        for k, col in enumerate(col_l):
            paths.append(self.save_nifti(col_v[k], out / f"col_{col.name}.nii.gz"))
        if html:
            from stylegan3d.viewer.build import mixing_viewer

            rn, cn = [r.name for r in row_l], [c.name for c in col_l]
            paths.append(mixing_viewer(out, rn, list(row_v), cn, list(col_v), mixed, self.geometry.affine))
        return paths

    def interpolate_to_dir(
        self,
        keys: Sequence[int | str | os.PathLike | Latent],
        out: str | os.PathLike,
        frames: int = 16,
        space: str = "w",
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        fps: int = 8,
        progress: bool = False,
        *,
        html: bool = False,
    ) -> list[Path]:
        """:meth:`interpolate` and write ``frame_XXXX.nii.gz`` per frame and ``interpolation.gif``
        (or PNG frames in ``interpolation_frames/`` when Pillow is missing); with ``html`` also
        ``viewer.html`` (the frames on a slider in an interactive NiiVue page)."""
        from stylegan3d.infer.mixing import save_animation

        vols = self.interpolate(keys, frames, space, trunc, noise_mode, labels, batch, progress)
        out = Path(out)
        paths = [self.save_nifti(v, out / f"frame_{i:04d}.nii.gz") for i, v in enumerate(vols)]
        paths += save_animation(out / "interpolation.gif", vols, fps=fps, spacing=self.geometry.spacing)
        if html:
            from stylegan3d.viewer.build import interpolation_viewer

            names = [f"frame_{i:04d}" for i in range(len(vols))]
            paths.append(interpolation_viewer(out, names, list(vols), self.geometry.affine))
        return paths

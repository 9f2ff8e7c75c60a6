"""Python API for using a trained generator: generate, project, mix styles, interpolate.

The :class:`Model` facade; its parts live beside it: :mod:`~stylegan3d.infer.geometry` (world frame
from the sidecar), :mod:`~stylegan3d.infer.latents` (latent files, labels, mixing/interpolation
maths), :mod:`~stylegan3d.infer.targets` (projection targets and masks),
:mod:`~stylegan3d.infer.projector` (the optimisation and :class:`ProjectionResult`) and
:mod:`~stylegan3d.infer.figures` (pictures). The facade runs a little over 500 lines because every
user-facing method (generate, project, mix, interpolate and their ``*_to_dir`` writers) keeps its
documentation here, where ``help(Model)`` shows it.

>>> from stylegan3d.infer.api import load
>>> model = load("runs/demo")                      # run dir, .safetensors or its .json
>>> vols = model.generate([0, 1, 2], trunc=0.7)    # [3, C, D, H, W] float32 in [0, 1]
>>> model.save_nifti(vols[0], "seed0.nii.gz")      # dataset world frame (affine from the checkpoint)
>>> res = model.project("scan.nii.gz", space="w+", steps=500)
>>> res.metrics["ssim"], res.save("proj/")

Latents: seeds name ``z = seeds_to_z(seeds)``; ws are ``[N, num_ws, w_dim]``; volumes are
``[N, C, D, H, W]`` numpy arrays in [0, 1] (``to_unit_range`` of the network output). After
``model.set_prior(...)`` seeds name w drawn from a fitted W prior instead of ``mapping(z)``
(:mod:`~stylegan3d.infer.prior`; shipped models may ship one: ``model.set_prior("demo-8mm")``).
The command line (``stylegan3d generate|project|mix|interpolate``) is a thin layer over this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stylegan3d.config import Config
from stylegan3d.data.io import write_nifti
from stylegan3d.errors import UserError
from stylegan3d.infer.geometry import ModelGeometry, geometry_from_sidecar
from stylegan3d.infer.latents import Latent, labels_to_c, load_latent
from stylegan3d.infer.prior import WPrior
from stylegan3d.infer.projector import ProjectionResult
from stylegan3d.infer.targets import prepare_target, preprocess_target
from stylegan3d.nn import seeds_to_z, to_unit_range
from stylegan3d.nn.generator import NOISE_MODES
from stylegan3d.util import progress_bar, resolve_device

if TYPE_CHECKING:
    from stylegan3d.checkpoint import Checkpoint, Sidecar

__all__ = ["Latent", "Model", "ModelGeometry", "ProjectionResult", "WPrior", "load"]


def load(ckpt: str | os.PathLike | Checkpoint, device: str | torch.device = "cpu") -> Model:
    """Load the EMA generator of a checkpoint (run dir, ``.safetensors`` or its ``.json``) for inference;
    warns when the checkpoint has no dataset geometry (see :meth:`Model.from_checkpoint`)."""
    model = Model.from_checkpoint(ckpt, device)
    if not model.geometry.from_dataset:
        warnings.warn(model.geometry.note, stacklevel=2)
    return model


class Model:
    """A loaded generator with its configuration and world geometry (see :func:`load`).

    ``prior``: None (seeds go through the mapping network) or the :class:`WPrior` that seeds are
    drawn from (:meth:`set_prior`).
    """

    def __init__(
        self, G: torch.nn.Module, config: Config, geometry: ModelGeometry, sidecar: Sidecar, device: torch.device
    ) -> None:
        self.G = G
        self.config = config
        self.geometry = geometry
        self.sidecar = sidecar
        self.device = device
        self.prior: WPrior | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: str | os.PathLike | Checkpoint, device: str | torch.device = "cpu") -> Model:
        """The EMA generator of a checkpoint with its config and world geometry (no warning; see :func:`load`)."""
        from stylegan3d.checkpoint import load_generator

        dev = resolve_device(device)
        G, found = load_generator(ckpt, dev)
        return cls(G, found.config, geometry_from_sidecar(found.meta, found.config), found.meta, dev)

    # ------------------------------------------------------------------ basics
    @property
    def num_ws(self) -> int:
        return int(self.G.synthesis.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.G.w_dim)

    @property
    def channels(self) -> int:
        """Channels of the generated volumes."""
        return int(self.G.synthesis.torgb.bias.shape[0])

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the checkpoint file (identifies the model in saved latents)."""
        return self.sidecar.sha256

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
    def set_prior(self, prior: WPrior | str | os.PathLike | None) -> WPrior | None:
        """Draw the w of seeds from a fitted W prior from now on (None: the mapping network again).

        ``prior``: a :class:`WPrior`, a prior file, or the name of a shipped model whose prior ships
        (``stylegan3d info --models``). A prior fitted to another model gives a UserError.
        """
        if prior is None:
            self.prior = None
            return None
        self._require_unconditional()
        name = "the W prior"
        if not isinstance(prior, WPrior):
            from stylegan3d.models import resolve_prior

            path = resolve_prior(prior)
            prior, name = WPrior.load(path), f"W prior {path.name}"
        prior.check_model(self.w_dim, self.sha256, name)
        self.prior = prior
        return prior

    def fit_prior(
        self, volumes: Any, steps: int = 200, batch: int = 32, seed: int = 0, progress: bool = False, source: str = ""
    ) -> WPrior:
        """Project ``volumes [N, C, D, H, W]`` (in [0, 1], on the model grid) into W and fit a Gaussian
        (:func:`stylegan3d.infer.prior.fit_prior`); use it with :meth:`set_prior` or save it."""
        from stylegan3d.infer.prior import fit_prior
        from stylegan3d.metrics.volumes import as_volume_set

        self._require_unconditional()
        volumes = as_volume_set(volumes)
        want = (self.channels, *self.geometry.shape)
        if volumes.shape != want:
            raise UserError(f"volumes have shape {list(volumes.shape)} (C, D, H, W) but the model makes {list(want)}")
        return fit_prior(
            self.G,
            volumes,
            steps=steps,
            batch=batch,
            seed=seed,
            model_sha256=self.sha256,
            source=source,
            progress=progress,
        )

    def _require_unconditional(self) -> None:
        if self.G.c_dim:
            raise UserError("a W prior is for unconditional models (this one has class labels)")

    def ws_from_seeds(
        self, seeds: Sequence[int], trunc: float = 1.0, labels: Any = None, trunc_cutoff: int | None = None
    ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` (on the model's device) of ``seeds``, truncated toward ``w_avg`` by ``trunc``
        (with a prior: drawn from it, truncated toward its mean)."""
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise UserError("no seeds given")
        if self.prior is not None:
            if labels is not None:
                raise UserError("a W prior is for unconditional models: give no labels")
            w = torch.from_numpy(self.prior.sample(seeds))
            ws = w[:, None].repeat(1, self.num_ws, 1)
            mean = torch.from_numpy(self.prior.mean).float()
            cut = self.num_ws if trunc_cutoff is None else trunc_cutoff
            ws[:, :cut] = mean + trunc * (ws[:, :cut] - mean)
            return ws.to(self.device)
        z = seeds_to_z(seeds, self.G.z_dim)
        c = labels_to_c(labels, len(seeds), self.G.c_dim)
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
        z = seeds_to_z([seed], self.G.z_dim)[0] if self.prior is None else None
        return Latent(ws=ws, name=f"seed{seed}", z=z, seed=int(seed))

    def load_latent(self, path: str | os.PathLike) -> Latent:
        """Read a latent ``.npz`` (from :meth:`project`); latents of another model give a UserError."""
        return load_latent(path, self.num_ws, self.w_dim, self.noise_shapes(), self.sha256, self.device)

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
        out = np.empty((n, self.channels, *self.geometry.shape), np.float32)
        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn

        columns = (description, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with progress_bar(*columns, enabled=progress) as bar, torch.no_grad():
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
        """Bring a projection target (and mask) onto the model grid (:func:`stylegan3d.infer.targets.prepare_target`).

        Returns ``(target [C, D, H, W], mask [D, H, W] bool or None, affine 4x4, source info)``.
        """
        return prepare_target(self.geometry, self.channels, target, mask)

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
        from stylegan3d.infer.projector import ProjectorConfig, project_volume
        from stylegan3d.metrics.reconstruction import reconstruction_metrics

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
            vol, m, affine, source, pre = preprocess_target(self.geometry, Path(target), skip)
        else:
            vol, m, affine, source = self.prepare_target(target, mask)
        c = labels_to_c(labels, 1, self.G.c_dim)
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
        from stylegan3d.infer.latents import mix_ws

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
        from stylegan3d.infer.latents import interpolation_weights, slerp

        if space not in ("z", "w"):
            raise UserError(f"interpolation space must be z or w, got {space!r}")
        if frames < 1:
            raise UserError("frames must be >= 1")
        if space == "z" and self.prior is not None:
            raise UserError("z-space interpolation goes through the mapping network; with a W prior use --space w")
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
            c = labels_to_c(labels, len(z), self.G.c_dim)
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
        *,
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
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
        *,
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        progress: bool = False,
        html: bool = False,
    ) -> list[Path]:
        """:meth:`mix` and write ``mix_<row>_<col>.nii.gz`` for every cell, the sources
        (``row_<name>``, ``col_<name>``) and ``mix_grid.png`` (StyleGAN's mixing figure); with
        ``html`` also ``viewer.html`` (the grid in an interactive NiiVue page)."""
        from stylegan3d.infer.figures import save_mix_grid

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
        *,
        frames: int = 16,
        space: str = "w",
        trunc: float = 1.0,
        noise_mode: str = "const",
        labels: Any = None,
        batch: int = 8,
        fps: int = 8,
        progress: bool = False,
        html: bool = False,
    ) -> list[Path]:
        """:meth:`interpolate` and write ``frame_XXXX.nii.gz`` per frame and ``interpolation.gif``
        (or PNG frames in ``interpolation_frames/`` when Pillow is missing); with ``html`` also
        ``viewer.html`` (the frames on a slider in an interactive NiiVue page)."""
        from stylegan3d.infer.figures import save_animation

        vols = self.interpolate(keys, frames, space, trunc, noise_mode, labels, batch, progress)
        out = Path(out)
        paths = [self.save_nifti(v, out / f"frame_{i:04d}.nii.gz") for i, v in enumerate(vols)]
        paths += save_animation(out / "interpolation.gif", vols, fps=fps, spacing=self.geometry.spacing)
        if html:
            from stylegan3d.viewer.build import interpolation_viewer

            names = [f"frame_{i:04d}" for i in range(len(vols))]
            paths.append(interpolation_viewer(out, names, list(vols), self.geometry.affine))
        return paths

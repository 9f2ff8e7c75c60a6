"""Projection: find the latent (W or W+) and noise maps that make the generator reproduce a volume.

The optimisation follows the reference projector of StyleGAN2 / 3D-StyleGAN:

* start from the mean of ``w_avg_samples`` w = mapping(z), z ~ N(0, I) (not the tracked
  ``w_avg``, which an untrained or imported model may lack);
* W space optimises one w shared by all layers, W+ one w per layer (both start at that mean);
* the per-layer noise maps are optimised too, starting from N(0, 1), and renormalised to zero
  mean and unit variance after every step; an optional multi-scale autocorrelation penalty
  (weight ``noise_reg``, default 0 as in the 3D reference) keeps them from encoding the image.
  (``noise_init="const"`` starts from the model's fixed maps instead; with ``optimize_noise=False``
  they stay those, which is how :mod:`~stylegan3d.infer.prior` projects a cohort into W.)
  The 2D projector's weight 1e5 is tuned for LPIPS and megapixel maps: on these small 3D maps
  the penalty's white-noise floor alone (~1/voxels per axis and scale) times 1e5 is 3-4 orders
  of magnitude above the MSE, so Adam moves the maps by the penalty only and never towards the
  target's noise (measured, issue 18: W+ SSIM 0.57 instead of 0.98 on a generator's own output);
* Adam with learning rate ``lr`` (0.3 in W as the reference; 0.1 in W+, where 0.3 measurably
  stalls) ramped up over the first ``lr_rampup`` fraction of the steps
  and down with a cosine over the last ``lr_rampdown`` fraction;
* Gaussian noise of ``w_noise * w_std`` added to w, ramped off quadratically over the first
  ``noise_ramp`` fraction of the steps;
* loss = MSE at full resolution + MSE after average pooling by ``min(8, size // 4)`` voxels
  (both in the network's [-1, 1] intensity range, optionally inside a mask), plus an optional
  perceptual term: the distance between deepbet 3D-encoder features. Target voxels at 0 or 1
  are clipped values: the generator's output beyond them is not penalised (:func:`match_saturation`),
  so the latent of a generated volume with saturated regions remains an exact minimum.

Shapes: targets ``[C, D, H, W]`` in [0, 1], masks ``[D, H, W]`` (bool), ws ``[num_ws, w_dim]``,
noise maps as ``G.synthesis.noise_shapes()`` (``[1, 1, *res]`` per layer).

:func:`project_volumes` projects a batch ``[N, C, D, H, W]`` at once: every loss term is computed
per volume and summed, and Adam's update is per element, so each volume follows the path of its own
:func:`project_volume` call (each has its own random stream seeded by ``seed``), up to float
rounding, at a fraction of the time per volume.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_json
from stylegan3d.nn import to_unit_range
from stylegan3d.util import progress_bar

SPACES = ("w", "w+")
NOISE_INITS = ("random", "const")


@dataclass
class ProjectorConfig:
    """Settings of one projection (defaults: the reference projector)."""

    space: str = "w+"
    """``w`` (one w for all layers) or ``w+`` (one w per layer)."""
    steps: int = 1000
    lr: float | None = None
    """Peak learning rate; None = 0.3 in W (the reference) and 0.1 in W+ (0.3 stalls W+ on the demo models)."""
    lr_rampup: float = 0.05
    """Fraction of the steps over which the learning rate ramps up linearly."""
    lr_rampdown: float = 0.25
    """Fraction of the steps (at the end) over which it ramps down with a cosine."""
    w_noise: float = 0.05
    """Initial w noise, in units of the spread ``w_std`` of mapped latents."""
    noise_ramp: float = 0.75
    """Fraction of the steps after which the w noise is zero (quadratic ramp)."""
    noise_reg: float = 0.0
    """Weight of the noise-map autocorrelation penalty (0 = off, as the 3D reference; the 2D
    projector's 1e5 swamps the MSE on 3D noise maps and stops them from fitting, see the module doc)."""
    pool: int = 8
    """Average-pooling factor of the coarse MSE term (reduced to size // 4 for small volumes)."""
    perceptual: float = 0.0
    """Weight of the deepbet-feature distance (0 = off)."""
    w_avg_samples: int = 10000
    optimize_noise: bool = True
    noise_init: str = "random"
    """Start of the noise maps: ``random`` (N(0, 1) from ``seed``) or ``const`` (the model's fixed maps)."""
    seed: int = 0
    """Seed of the initial noise maps, the w noise and the z samples for the mean w."""

    def validate(self) -> ProjectorConfig:
        if self.space not in SPACES:
            raise UserError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.steps < 1:
            raise UserError("steps must be >= 1")
        if self.lr is None:
            self.lr = 0.3 if self.space == "w" else 0.1
        if self.lr <= 0:
            raise UserError("lr must be > 0")
        if not (0 <= self.lr_rampup <= 1 and 0 <= self.lr_rampdown <= 1 and 0 <= self.noise_ramp <= 1):
            raise UserError("lr_rampup, lr_rampdown and noise_ramp are fractions of the steps in [0, 1]")
        if self.noise_init not in NOISE_INITS:
            raise UserError(f"noise_init must be one of {', '.join(NOISE_INITS)}, got {self.noise_init!r}")
        if self.pool < 1 or self.w_avg_samples < 1:
            raise UserError("pool and w_avg_samples must be >= 1")
        if self.perceptual < 0 or self.noise_reg < 0 or self.w_noise < 0:
            raise UserError("loss weights and w_noise must be >= 0")
        return self


def learning_rate(t: float, cfg: ProjectorConfig) -> float:
    """Learning rate at progress ``t`` in [0, 1): linear warm-up, cosine ramp-down at the end."""
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown) if cfg.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if cfg.lr_rampup > 0:
        ramp *= min(1.0, t / cfg.lr_rampup)
    return cfg.lr * ramp


def w_noise_scale(t: float, cfg: ProjectorConfig, w_std: float) -> float:
    """Std of the noise added to w at progress ``t``: ``w_std * w_noise * max(0, 1 - t / noise_ramp)**2``."""
    if cfg.noise_ramp <= 0:
        return 0.0
    return w_std * cfg.w_noise * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2


def noise_regularization(noise: list[torch.Tensor], min_size: int = 8) -> torch.Tensor:
    """Multi-scale autocorrelation penalty of noise maps ``[N, 1, *res]``, one value per volume ``[N]``.

    Sum over maps, scales (2x average pooling while every side is > ``min_size``) and spatial
    axes of the squared mean product of the map with itself shifted by one voxel (circularly).
    Zero-mean white noise scores ~0; smooth structure (an image hidden in the noise) scores high.
    """
    total = noise[0].new_zeros(noise[0].shape[0])
    for v in noise:
        while True:
            for axis in range(2, v.ndim):
                total = total + (v * torch.roll(v, shifts=1, dims=axis)).flatten(1).mean(1).square()
            if min(v.shape[2:]) <= min_size:
                break
            v = F.avg_pool3d(v, kernel_size=2) if v.ndim == 5 else F.avg_pool2d(v, kernel_size=2)
    return total


def renormalize_noise_(noise: list[torch.Tensor]) -> None:
    """In place: every noise map ``[N, 1, *res]`` to zero mean and unit variance, per volume."""
    with torch.no_grad():
        for v in noise:
            dims = tuple(range(1, v.ndim))
            v -= v.mean(dims, keepdim=True)
            v *= v.square().mean(dims, keepdim=True).rsqrt()


def pool_factor(shape: tuple[int, ...] | list[int], pool: int = 8) -> int:
    """Pooling factor of the coarse loss: ``pool``, reduced to ``min(shape) // 4`` for small volumes."""
    return max(1, min(pool, min(shape) // 4))


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    out = [max(1, round(s / k)) for s in x.shape[2:]]
    return F.adaptive_avg_pool3d(x, out) if x.ndim == 5 else F.adaptive_avg_pool2d(x, out)


def masked_mse(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared difference of ``[N, C, *S]`` tensors per volume ``[N]``, over the voxels where
    ``mask [N, 1, *S]`` is 1."""
    d = (x - y).square().flatten(1)
    if mask is None:
        return d.mean(1)
    return (d * mask.expand_as(x).flatten(1)).sum(1) / (mask.flatten(1).sum(1) * x.shape[1]).clamp_min(1.0)


def match_saturation(synth: torch.Tensor, target: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """``synth`` with voxels beyond an intensity bound clamped to it where ``target`` sits at that bound.

    Targets are clipped to [lo, hi] (generated volumes by ``to_unit_range``, scans by the intensity
    scaling), so a target voxel at ``hi`` only says "at least ``hi``": the true latent may produce
    more there and must not be penalised. Elsewhere ``synth`` is unchanged (gradients flow).
    """
    synth = torch.where(target >= hi, synth.clamp(max=hi), synth)
    return torch.where(target <= lo, synth.clamp(min=lo), synth)


def reconstruction_loss(
    synth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, pool: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(full-resolution MSE, pooled MSE) of ``[N, C, *S]`` volumes, each ``[N]``, inside ``mask`` if given.

    With a mask, both volumes are multiplied by it before pooling and the pooled term is
    averaged over the pooled voxels that touch the mask.
    """
    full = masked_mse(synth, target, mask)
    k = pool_factor(synth.shape[2:], pool)
    if k == 1:
        return full, torch.zeros_like(full)
    if mask is None:
        return full, masked_mse(_pool(synth, k), _pool(target, k), None)
    pm = (_pool(mask, k) > 0).to(synth.dtype)
    return full, masked_mse(_pool(synth * mask, k), _pool(target * mask, k), pm)


class DeepbetFeatures(torch.nn.Module):
    """Perceptual distance from the encoder of deepbet's 3D brain-extraction network (TorchScript).

    The volume ``[N, 1, D, H, W]`` in [0, 1] is upsampled (trilinear) so that its smallest side is
    at least ``min_side`` voxels, passed through the encoder stages (16, 16, 32, 64 channels),
    and the distance is the mean over stages of the squared difference of channel-normalised
    features (an LPIPS-like distance without learned weights).
    """

    def __init__(self, device: torch.device | str = "cpu", min_side: int = 64) -> None:
        super().__init__()
        from stylegan3d.metrics.features3d import load_deepbet

        net = load_deepbet(device, "the perceptual term needs the deepbet package (pip install deepbet)")
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.act = getattr(net.conv, "2")
        self.min_side = min_side

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps of ``x [N, 1, D, H, W]`` in [0, 1]."""
        factor = max(1, math.ceil(self.min_side / min(x.shape[2:])))
        if factor > 1:
            x = F.interpolate(x, scale_factor=factor, mode="trilinear", align_corners=False)
        feats = [self.net.init(self.act, x)]
        for stage in (self.net.down0, self.net.down1, self.net.down2):
            feats.append(stage(self.act, feats[-1]))
        return [f / (f.square().sum(1, keepdim=True) + 1e-10).sqrt() for f in feats]

    def distance(self, x: torch.Tensor, target_feats: list[torch.Tensor]) -> torch.Tensor:
        """Mean over stages of the squared feature difference to precomputed ``target_feats``, per volume ``[N]``."""
        feats = self.features(x)
        pairs = zip(feats, target_feats, strict=True)
        return sum((a - b).square().sum(1).flatten(1).mean(1) for a, b in pairs) / len(feats)


@dataclass
class ProjectionOutput:
    """Raw result of :func:`project_volume`."""

    ws: torch.Tensor
    """[num_ws, w_dim] (in W space all rows are equal)."""
    noise: list[torch.Tensor]
    """Per-layer noise maps [1, 1, *res]."""
    reconstruction: np.ndarray
    """[C, D, H, W] in [0, 1]."""
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the projection (of the whole batch for :func:`project_volumes`)."""
    config: dict = field(default_factory=dict)


def mean_w(G: torch.nn.Module, samples: int, seed: int, c: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Mean ``[w_dim]`` and spread ``w_std`` (root mean squared distance to the mean) of mapped random z."""
    device = G.mapping.w_avg.device
    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, G.z_dim)).float().to(device)
    with torch.no_grad():
        chunks = []
        for i in range(0, samples, 4096):
            cc = None if c is None else c.expand(len(z[i : i + 4096]), -1)
            chunks.append(G.mapping(z[i : i + 4096], cc)[:, 0])
        w = torch.cat(chunks)
    w_avg = w.mean(0)
    w_std = float(((w - w_avg).square().sum() / samples).sqrt())
    return w_avg, w_std


def project_volume(
    G: torch.nn.Module,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    cfg: ProjectorConfig | None = None,
    c: torch.Tensor | None = None,
    progress: bool = False,
) -> ProjectionOutput:
    """Optimise a latent (and noise maps) so that ``G.synthesis`` reproduces ``target``.

    Args:
        G: generator (its weights are not changed).
        target: ``[C, D, H, W]`` volume in [0, 1] at the model's resolution.
        mask: optional ``[D, H, W]`` boolean mask; the loss only counts voxels inside it.
        cfg: projector settings (default: the reference projector, W+).
        c: label ``[1, c_dim]`` for conditional models (used for the mean w).
        progress: show a rich progress bar.
    """
    return project_volumes(G, target[None], None if mask is None else mask[None], cfg, c, progress)[0]


def project_volumes(
    G: torch.nn.Module,
    targets: torch.Tensor,
    masks: torch.Tensor | None = None,
    cfg: ProjectorConfig | None = None,
    c: torch.Tensor | None = None,
    progress: bool = False,
) -> list[ProjectionOutput]:
    """:func:`project_volume` of every volume of ``targets [N, C, D, H, W]`` at once (one output each).

    ``masks``: optional ``[N, D, H, W]`` booleans. Each volume has its own latent, noise maps, loss
    and random stream (seeded by ``cfg.seed``), so the results equal N single projections up to float
    rounding; the batch shares the forward passes. Memory grows with N: chunk large cohorts.
    """
    cfg = (cfg or ProjectorConfig()).validate()
    device = G.mapping.w_avg.device
    res = tuple(G.synthesis.resolution)
    expected = (G.synthesis.torgb.bias.shape[0], *res)
    if targets.ndim != 5 or tuple(targets.shape[1:]) != expected or len(targets) == 0:
        raise UserError(f"target shape {list(targets.shape[1:])} does not match the model output {list(expected)}")
    if masks is not None and tuple(masks.shape) != (len(targets), *res):
        raise UserError(f"mask shape {list(masks.shape[1:])} does not match the model resolution {list(res)}")
    t0 = time.perf_counter()
    n = len(targets)
    target_net = targets.to(device).float() * 2.0 - 1.0
    mask_t = None if masks is None else masks.to(device).float()[:, None]
    if mask_t is not None and bool((mask_t.flatten(1).sum(1) == 0).any()):
        raise UserError("the mask is empty at the model resolution")

    w_avg, w_std = mean_w(G, cfg.w_avg_samples, cfg.seed, c)
    num_ws = G.synthesis.num_ws
    n_opt = 1 if cfg.space == "w" else num_ws
    w_opt = w_avg.detach().clone()[None, None].repeat(n, n_opt, 1).requires_grad_(True)
    gens = [torch.Generator().manual_seed(cfg.seed) for _ in range(n)]
    if cfg.noise_init == "const":
        noise = [layer.noise_const.detach().expand(n, *layer.noise_const.shape[1:]) for layer in G.synthesis.layers]
        noise = [v.clone().to(device) for v in noise]
    else:
        draws = [[torch.randn(s, generator=g) for s in G.synthesis.noise_shapes()] for g in gens]
        noise = [torch.cat([d[i] for d in draws]).to(device) for i in range(len(draws[0]))]
    noise = [v.requires_grad_(cfg.optimize_noise) for v in noise]
    params = [w_opt] + (noise if cfg.optimize_noise else [])
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999))

    perc = target_feats = None
    if cfg.perceptual > 0:
        perc = DeepbetFeatures(device)
        with torch.no_grad():
            ref = target_net if mask_t is None else target_net * mask_t
            target_feats = perc.features(((ref + 1) / 2)[:, :1])

    keys = ("loss", "mse", "pooled", "noise_reg", "perceptual")
    history: list[dict[str, list[float]]] = [{k: [] for k in (*keys, "lr")} for _ in range(n)]
    from rich.progress import BarColumn, TimeElapsedColumn, TimeRemainingColumn

    label = "project {task.fields[space]}" + (f" ({n} volumes)" if n > 1 else "")
    columns = (label, BarColumn(), "{task.completed}/{task.total}")
    columns += ("mse {task.fields[mse]:.4g}", TimeElapsedColumn(), TimeRemainingColumn())
    with progress_bar(*columns, enabled=progress) as bar:
        task = bar.add_task("project", total=cfg.steps, space=cfg.space.upper(), mse=float("nan"))
        for step in range(cfg.steps):
            t = step / cfg.steps
            lr = learning_rate(t, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            sigma = w_noise_scale(t, cfg, w_std)
            w_noise = torch.stack([torch.randn(w_opt.shape[1:], generator=g) for g in gens]).to(device) * sigma
            ws = (w_opt + w_noise).expand(n, num_ws, -1) if n_opt == 1 else w_opt + w_noise
            synth = match_saturation(G.synthesis(ws, noise=noise), target_net)
            mse, pooled = reconstruction_loss(synth, target_net, mask_t, cfg.pool)
            reg = noise_regularization(noise)
            loss = mse + pooled + cfg.noise_reg * reg
            p_loss = torch.zeros(n, device=device)
            if perc is not None:
                img = (synth + 1) / 2
                if mask_t is not None:
                    img = img * mask_t
                p_loss = perc.distance(img[:, :1], target_feats)
                loss = loss + cfg.perceptual * p_loss
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            if cfg.optimize_noise:
                renormalize_noise_(noise)
            for key, value in zip(keys, (loss, mse, pooled, reg, p_loss), strict=True):
                for h, v in zip(history, value.detach().cpu().tolist(), strict=True):
                    h[key].append(v)
            for h in history:
                h["lr"].append(lr)
            bar.update(task, advance=1, mse=float(mse.detach().mean()))

    with torch.no_grad():
        ws_final = w_opt.detach().expand(n, num_ws, -1) if n_opt == 1 else w_opt.detach()
        noise_final = [v.detach().clone() for v in noise]
        recon = to_unit_range(G.synthesis(ws_final, noise=noise_final)).cpu().numpy()
    seconds = time.perf_counter() - t0
    return [
        ProjectionOutput(
            ws=ws_final[i].clone().cpu(),
            noise=[v[i : i + 1].cpu() for v in noise_final],
            reconstruction=recon[i],
            history=history[i],
            seconds=seconds,
            config=asdict(cfg),
        )
        for i in range(n)
    ]


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
        from stylegan3d.data.spatial import resample_to

        if self.source.get("mni_to_native") is not None:
            from stylegan3d.data.preprocess.register import to_native

            return to_native(
                self.reconstruction[0],
                self.affine,
                np.asarray(self.source["mni_to_native"]),
                np.asarray(self.source["orig_affine"]),
                self.source["orig_shape"],
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
        from stylegan3d.data.io import write_nifti
        from stylegan3d.infer.figures import save_comparison, save_loss_curve
        from stylegan3d.infer.latents import save_latent

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

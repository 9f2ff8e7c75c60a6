"""3D adaptive discriminator augmentation (ADA, Karras et al. 2020) for brain volumes.

:class:`AugmentPipe` applies random, differentiable transforms to volumes ``[N, C, D, H, W]``
in about ``[-1, 1]`` (background ``-1``) before they reach the discriminator, both reals and
fakes. Each transform is applied per sample with probability ``p`` times its multiplier:

- geometric (one combined resample per sample): optional left-right flip (axis D, the NIfTI
  ``i`` axis; off by default because brains are not symmetric), optional 90-degree rotations in
  allowed planes (default none), small rotation about the three axes, isotropic and
  volume-preserving anisotropic scaling, translation. The affine acts in voxel (physical)
  units, so non-cubic volumes rotate without shear; outside the field of view is background;
- intensity: smooth multiplicative bias field, gamma, contrast, brightness;
- additive Gaussian noise and cutout (a box set to background).

:class:`AdaController` adjusts ``pipe.p`` from the sign of the discriminator's real logits
toward the target ``r_t = E[sign(D(real))] = 0.6``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylegan3d.errors import UserError

DEFAULT_STRENGTHS: dict[str, Any] = {
    "rotate_deg": 10.0,  # std of each of the 3 rotation angles, degrees
    "scale_std": 0.1,  # std of log2 of the isotropic scale
    "aniso_std": 0.1,  # std of log2 of the per-axis (volume-preserving) scale
    "translate_std": 0.05,  # std of the shift, fraction of the extent along each axis
    "rot90_planes": (),  # planes (a, b) of axes 0..2 = (D, H, W) where 90-degree turns are allowed
    "brightness_std": 0.2,  # std of the added offset, in [-1, 1] units
    "contrast_std": 0.25,  # std of log2 of the contrast factor (about the sample mean)
    "gamma_std": 0.2,  # std of log2 of the gamma exponent (on [0, 1] intensities)
    "bias_std": 0.1,  # std of the log bias field at the coarse grid nodes
    "bias_grid": 4,  # coarse bias-field grid size per axis (upsampled trilinearly)
    "noise_std": 0.05,  # sigma of the added noise is |N(0, noise_std)| per sample
    "cutout_size": 0.5,  # side of the cutout box, fraction of each extent
}
"""Default transform strengths; override any of them as keyword arguments of :class:`AugmentPipe`."""

_GAMMA_EPS = 1e-3
"""Offset that keeps the gamma curve's slope finite at 0: ``(|u| + eps)^g - eps^g``."""


def _validate_planes(planes: Any) -> tuple[tuple[int, int], ...]:
    try:
        out = tuple((int(a), int(b)) for a, b in planes)
    except (TypeError, ValueError):
        raise UserError(f"rot90_planes must be a list of axis pairs such as [[1, 2]], got {planes!r}") from None
    for a, b in out:
        if a == b or not (0 <= a <= 2 and 0 <= b <= 2):
            raise UserError(f"rot90_planes: ({a}, {b}) is not a plane of axes 0..2 (D, H, W)")
    return out


def _plane_rotation(angle: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """[N] angles (radians) -> [N, 3, 3] rotations in the plane of axes ``a``, ``b``."""
    m = torch.eye(3, device=angle.device).repeat(angle.shape[0], 1, 1)
    c, s = torch.cos(angle), torch.sin(angle)
    m[:, a, a], m[:, a, b], m[:, b, a], m[:, b, b] = c, -s, s, c
    return m


def _affine_grid(theta: torch.Tensor, size: list[int]) -> torch.Tensor:
    """``F.affine_grid(theta, [N, C, *size], align_corners=False)`` as broadcast sums ([N, D, H, W, 3]);
    about 4x faster than the batched matmul on CPU at 80x96x112."""
    n = theta.shape[0]
    d, h, w = size
    u = [(torch.arange(s, device=theta.device, dtype=torch.float32) * 2 + 1) / s - 1 for s in size]
    col = [theta[:, :, j].reshape(n, 1, 1, 1, 3) for j in range(4)]  # grid columns: x=W, y=H, z=D, shift
    partial = u[0].view(1, d, 1, 1, 1) * col[2] + u[1].view(1, 1, h, 1, 1) * col[1] + col[3]
    return partial + u[2].view(1, 1, 1, w, 1) * col[0]


def resample(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample volumes through per-sample affine maps given in voxel units.

    x: [N, C, D, H, W]; matrix: [N, 3, 4] in (D, H, W) order mapping an output voxel position
    q (voxel units, relative to the volume centre) to the input position ``A @ q + t``.
    Trilinear, computed in float32 (autocast-safe), positions outside the volume read the
    background value -1. Returns x's shape and dtype; differentiable w.r.t. x.
    """
    n, c, *size = x.shape
    half = torch.tensor(size[::-1], device=x.device, dtype=torch.float32) / 2  # grid order (W, H, D)
    lin = matrix[:, :, :3].float().flip(1).flip(2)  # reverse the axis order: (D, H, W) -> (W, H, D)
    shift = matrix[:, :, 3].float().flip(1)
    theta = torch.cat([lin * half[None, None, :] / half[None, :, None], (shift / half)[:, :, None]], dim=2)
    grid = _affine_grid(theta, size)
    out = F.grid_sample(x.float() + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    return out.to(x.dtype)


def _on_subset(x: torch.Tensor, gate: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn(x_sub, idx)`` to the samples where ``gate`` [N] is true; others pass through unchanged."""
    idx = gate.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, idx)
    return x.index_copy(0, idx, fn(x.index_select(0, idx), idx))


class AugmentPipe(nn.Module):
    """Differentiable 3D augmentation of volumes [N, C, D, H, W] for the discriminator.

    ``p`` is the base probability (a buffer, saved with ``state_dict``); each transform is
    applied to a sample with probability ``p * multiplier`` (``xflip`` is on/off). Keyword
    ``strengths`` override :data:`DEFAULT_STRENGTHS`; a strength of 0 switches that part off.
    Randomness comes from torch's global RNG on ``x.device``.
    """

    p: torch.Tensor

    def __init__(
        self,
        p: float = 0.0,
        xflip: bool = False,
        affine: float = 1.0,
        intensity: float = 1.0,
        bias_field: float = 1.0,
        noise: float = 1.0,
        cutout: float = 1.0,
        **strengths: Any,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise UserError(f"augmentation probability p must be in [0, 1], got {p}")
        unknown = sorted(set(strengths) - set(DEFAULT_STRENGTHS))
        if unknown:
            raise UserError(f"unknown augmentation strength(s) {unknown}; known: {sorted(DEFAULT_STRENGTHS)}")
        self.register_buffer("p", torch.tensor(float(p)))
        self.xflip = bool(xflip)
        self.mult = {
            "affine": float(affine),
            "intensity": float(intensity),
            "bias_field": float(bias_field),
            "noise": float(noise),
            "cutout": float(cutout),
        }
        for name, value in self.mult.items():
            if value < 0 or not math.isfinite(value):
                raise UserError(f"augmentation multiplier {name} must be >= 0, got {value}")
        s = {**DEFAULT_STRENGTHS, **strengths}
        s["rot90_planes"] = _validate_planes(s["rot90_planes"])
        for name, value in s.items():
            if name != "rot90_planes" and (float(value) < 0 or not math.isfinite(float(value))):
                raise UserError(f"augmentation strength {name} must be >= 0, got {value}")
        if int(s["bias_grid"]) < 2:
            raise UserError(f"bias_grid must be >= 2, got {s['bias_grid']}")
        if float(s["cutout_size"]) > 1:
            raise UserError(f"cutout_size is a fraction of the extent and must be <= 1, got {s['cutout_size']}")
        self.strengths = s

    def extra_repr(self) -> str:
        mult = ", ".join(f"{k}={v:g}" for k, v in self.mult.items())
        return f"p={float(self.p):.4f}, xflip={self.xflip}, {mult}"

    def _gate(self, n: int, prob: float, device: torch.device) -> torch.Tensor:
        """[N] bool: which samples get a transform applied with probability ``prob``."""
        return torch.rand(n, device=device) < min(prob, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, D, H, W] in about [-1, 1] -> augmented volumes of the same shape and dtype,
        differentiable w.r.t. x. Returns x itself when p is 0."""
        if x.ndim != 5:
            raise ValueError(f"AugmentPipe expects [N, C, D, H, W], got {list(x.shape)}")
        p = float(self.p)
        if p <= 0.0:
            return x
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = x.float()
            y = self._geometric(y, p)
            y = self._bias_field(y, p)
            y = self._intensity(y, p)
            y = self._noise(y, p)
            y = self._cutout(y, p)
        return y.to(dtype)

    def _geometric(self, x: torch.Tensor, p: float) -> torch.Tensor:
        n, dev, s = x.shape[0], x.device, self.strengths
        if self.xflip:
            x = _on_subset(x, self._gate(n, p, dev), lambda v, idx: v.flip(2))
        planes = s["rot90_planes"]
        pa = p * self.mult["affine"]
        if not planes and pa <= 0.0:
            return x
        size = torch.tensor(x.shape[2:], device=dev, dtype=torch.float32)
        lin = torch.eye(3, device=dev).repeat(n, 1, 1)
        shift = torch.zeros(n, 3, device=dev)
        selected = torch.zeros(n, dtype=torch.bool, device=dev)
        if planes:
            gate = self._gate(n, p, dev)
            k = torch.randint(1, 4, (n,), device=dev) * gate
            plane = torch.randint(len(planes), (n,), device=dev)
            for i, (a, b) in enumerate(planes):
                turns = torch.where(plane == i, k, 0).float() * (math.pi / 2)
                lin = lin @ _plane_rotation(turns, a, b).round()
            selected |= gate
        if pa > 0.0:
            gates = [self._gate(n, pa, dev) for _ in range(4)]
            angles = torch.randn(n, 3, device=dev) * math.radians(s["rotate_deg"]) * gates[0][:, None]
            for j, (a, b) in enumerate(((1, 2), (0, 2), (0, 1))):
                lin = lin @ _plane_rotation(angles[:, j], a, b)
            log_iso = torch.randn(n, 1, device=dev) * s["scale_std"] * gates[1][:, None]
            log_aniso = torch.randn(n, 3, device=dev) * s["aniso_std"]
            log_aniso = (log_aniso - log_aniso.mean(dim=1, keepdim=True)) * gates[2][:, None]
            lin = lin @ torch.diag_embed(torch.exp2(log_iso + log_aniso))
            shift = torch.randn(n, 3, device=dev) * s["translate_std"] * size * gates[3][:, None]
            for g in gates:
                selected |= g
        matrix = torch.cat([lin, shift[:, :, None]], dim=2)
        return _on_subset(x, selected, lambda v, idx: resample(v, matrix[idx]))

    def _bias_field(self, x: torch.Tensor, p: float) -> torch.Tensor:
        prob, s = p * self.mult["bias_field"], self.strengths
        if prob <= 0.0 or s["bias_std"] <= 0:
            return x
        n, g = x.shape[0], int(s["bias_grid"])
        gate = self._gate(n, prob, x.device)
        coarse = torch.randn(n, 1, g, g, g, device=x.device) * s["bias_std"]

        def apply(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            field = F.interpolate(coarse[idx], size=v.shape[2:], mode="trilinear", align_corners=True).exp()
            return (v + 1) * field - 1  # multiplies the [0, 1] intensity: background stays -1

        return _on_subset(x, gate, apply)

    def _intensity(self, x: torch.Tensor, p: float) -> torch.Tensor:
        prob, s, n, dev = p * self.mult["intensity"], self.strengths, x.shape[0], x.device
        if prob <= 0.0:
            return x
        shape = (n, 1, 1, 1, 1)
        if s["gamma_std"] > 0:
            gamma = torch.exp2(torch.randn(shape, device=dev) * s["gamma_std"])

            def apply_gamma(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
                u = (v + 1) / 2
                g = gamma[idx]
                curved = torch.sign(u) * ((u.abs() + _GAMMA_EPS) ** g - _GAMMA_EPS**g)
                return curved * 2 - 1

            x = _on_subset(x, self._gate(n, prob, dev), apply_gamma)
        if s["contrast_std"] > 0:
            factor = torch.exp2(torch.randn(shape, device=dev) * s["contrast_std"])

            def apply_contrast(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
                mean = v.mean(dim=(1, 2, 3, 4), keepdim=True)
                return (v - mean) * factor[idx] + mean

            x = _on_subset(x, self._gate(n, prob, dev), apply_contrast)
        if s["brightness_std"] > 0:
            offset = torch.randn(shape, device=dev) * s["brightness_std"]
            x = _on_subset(x, self._gate(n, prob, dev), lambda v, idx: v + offset[idx])
        return x

    def _noise(self, x: torch.Tensor, p: float) -> torch.Tensor:
        prob, s = p * self.mult["noise"], self.strengths
        if prob <= 0.0 or s["noise_std"] <= 0:
            return x
        sigma = (torch.randn(x.shape[0], 1, 1, 1, 1, device=x.device) * s["noise_std"]).abs()
        gate = self._gate(x.shape[0], prob, x.device)
        return _on_subset(x, gate, lambda v, idx: v + sigma[idx] * torch.randn_like(v))

    def _cutout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        prob, s = p * self.mult["cutout"], self.strengths
        if prob <= 0.0 or s["cutout_size"] <= 0:
            return x
        n, dev = x.shape[0], x.device
        centre = torch.rand(n, 3, device=dev)
        gate = self._gate(n, prob, dev)

        def apply(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            inside = torch.ones(v.shape[0], 1, 1, 1, 1, dtype=torch.bool, device=dev)
            for axis, size in enumerate(v.shape[2:]):
                pos = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size
                near = (pos[None, :] - centre[idx, axis : axis + 1]).abs() < s["cutout_size"] / 2
                view = [v.shape[0], 1, 1, 1, 1]
                view[2 + axis] = size
                inside = inside & near.view(view)
            return torch.where(inside, torch.full_like(v, -1.0), v)

        return _on_subset(x, gate, apply)


class AdaController:
    """Adjusts ``pipe.p`` from the sign of the discriminator's real logits (ADA heuristic r_t).

    Every ``interval`` calls of :meth:`step`: ``r_t = mean(sign(D_real))`` over the logits
    accumulated since the last update (summed over DDP ranks when torch.distributed is
    initialised), then ``p += sign(r_t - target) * batch * interval / (ada_kimg * 1000)``,
    clamped to [0, 1] (stylegan2-ada-pytorch clamps at 0 only; a p above 1 acts as 1 but would
    need extra updates to come back down). ``batch`` is the global batch size, so p can go from 0 to 1 in
    ``ada_kimg`` thousand images.
    """

    def __init__(
        self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, ada_kimg: float = 100.0, batch: int = 32
    ) -> None:
        if interval < 1 or batch < 1 or ada_kimg <= 0:
            raise UserError("ADA needs interval >= 1, batch >= 1 and ada_kimg > 0")
        self.pipe = pipe
        self.target = float(target)
        self.interval = int(interval)
        self.ada_kimg = float(ada_kimg)
        self.batch = int(batch)
        self._stats: torch.Tensor | None = None  # [sum of signs, count] on the logits' device
        self._calls = 0
        self.last_rt: float | None = None

    @property
    def adjust(self) -> float:
        """Size of one p update."""
        return self.batch * self.interval / (self.ada_kimg * 1000)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of one D step's real logits [N, 1] (no device sync)."""
        logits = real_logits.detach().float()
        batch = torch.stack([torch.sign(logits).sum(), torch.full((), float(logits.numel()), device=logits.device)])
        self._stats = batch if self._stats is None else self._stats + batch

    def step(self) -> float | None:
        """Call once per training step; every ``interval`` calls updates ``pipe.p`` and returns r_t
        (None on other calls, or when no logits were accumulated on any rank)."""
        self._calls += 1
        if self._calls % self.interval != 0:
            return None
        stats = self._stats if self._stats is not None else torch.zeros(2, device=self.pipe.p.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            stats = stats.clone()
            torch.distributed.all_reduce(stats)
        self._stats = None
        total, count = stats.tolist()
        if count == 0:
            return None
        rt = total / count
        direction = (rt > self.target) - (rt < self.target)
        new_p = min(max(float(self.pipe.p) + direction * self.adjust, 0.0), 1.0)
        self.pipe.p.fill_(new_p)
        self.last_rt = rt
        return rt

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (p, settings, pending statistics) for the checkpoint sidecar."""
        total, count = self._stats.tolist() if self._stats is not None else (0.0, 0.0)
        return {
            "p": float(self.pipe.p),
            "target": self.target,
            "interval": self.interval,
            "ada_kimg": self.ada_kimg,
            "batch": self.batch,
            "calls": self._calls,
            "sign_sum": total,
            "count": count,
            "last_rt": self.last_rt,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; also sets ``pipe.p``."""
        self.pipe.p.fill_(float(d["p"]))
        self.target = float(d.get("target", self.target))
        self.interval = int(d.get("interval", self.interval))
        self.ada_kimg = float(d.get("ada_kimg", self.ada_kimg))
        self.batch = int(d.get("batch", self.batch))
        self._calls = int(d.get("calls", 0))
        count = float(d.get("count", 0.0))
        self._stats = torch.tensor([float(d.get("sign_sum", 0.0)), count]) if count > 0 else None
        if self._stats is not None:
            self._stats = self._stats.to(self.pipe.p.device)
        self.last_rt = d.get("last_rt")


def make_augment(train_cfg: Any, device: torch.device | str | None = None) -> tuple[AugmentPipe, AdaController | None]:
    """Build the pipe (and controller for ``aug=ada``) from a :class:`~stylegan3d.config.TrainConfig`.

    ``none``: a pipe with p = 0 (an exact identity, kept so checkpoints always hold ``p``);
    ``fixed``: constant ``aug_p``; ``ada``: starts at ``aug_p`` and adapts toward ``ada_target``.
    """
    mode = train_cfg.aug
    if mode not in ("ada", "fixed", "none"):
        raise UserError(f"aug must be ada, fixed or none, got {mode!r}")
    pipe = AugmentPipe(p=0.0 if mode == "none" else train_cfg.aug_p, xflip=train_cfg.aug_flip)
    if device is not None:
        pipe = pipe.to(device)
    if mode != "ada":
        return pipe, None
    ctrl = AdaController(
        pipe,
        target=train_cfg.ada_target,
        interval=train_cfg.ada_interval,
        ada_kimg=train_cfg.ada_kimg,
        batch=train_cfg.batch,
    )
    return pipe, ctrl

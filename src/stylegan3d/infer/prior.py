"""A fitted W prior: sample w from a Gaussian fitted to real subjects projected into W.

Why: StyleGAN samples ``w = mapping(z)``. On the small cohorts this project trains on, the
mapping's W distribution can be narrower than the cohort (docs/quality.md, the variety study): a
305-kimg demo-8mm with an 8-layer mapping spanned about 5 effective directions, while its training
subjects projected into W spanned about 12 with 3x the variance, and the synthesis network renders
those projected w as brains. Drawing w from a Gaussian fitted to the projected subjects gave that
generator much higher recall at almost the same precision (the shipped 2-layer-mapping model gains
less: docs/quality.md). This is a sampler beside truncation psi: the network is unchanged.

Fitting: every volume is projected into W (one w for all layers; the model's fixed noise maps,
as ``noise_mode='const'`` sampling uses; :func:`~stylegan3d.infer.projector.project_volumes` in
batches), then ``mean [w_dim]`` and ``cov [w_dim, w_dim]`` (unbiased) of the projected w are stored.

Sampling: seed ``s`` names ``u = RandomState(s).randn(w_dim)`` (float64) and
``w = mean + psi * L u`` with ``L L^T = cov + eps I`` (Cholesky, ``eps = 1e-6 * trace(cov) / w_dim``),
the same w in every layer. Reproducible on every machine; psi truncates toward the prior's mean.

File: one ``.safetensors`` (no pickle) holding ``mean`` and ``cov`` (float64) and, in its header's
metadata, ``format = stylegan3d-w-prior`` and ``info`` (JSON: model_sha256, n, steps, source,
projection MSE, effective dimension). Only aggregate statistics are stored, never per-subject w
(a projected w reconstructs its subject). The shipped models' priors sit beside them as
``NAME.prior.safetensors``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_path
from stylegan3d.util import one_line

PRIOR_FORMAT = "stylegan3d-w-prior"


def effective_dimension(cov: np.ndarray) -> float:
    """Participation ratio ``(sum λ)^2 / sum λ^2`` of the eigenvalues of ``cov``: how many directions
    carry the variance (w_dim for an isotropic Gaussian, 1 for a line)."""
    ev = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    return float(ev.sum() ** 2 / max(float((ev**2).sum()), 1e-300))


@dataclass
class WPrior:
    """Gaussian over W: ``mean [w_dim]``, ``cov [w_dim, w_dim]`` (float64) and where it came from."""

    mean: np.ndarray
    cov: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.cov = np.asarray(self.cov, dtype=np.float64)
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if d < 1 or self.cov.shape != (d, d):
            raise UserError(
                f"a W prior needs mean [w_dim] and cov [w_dim, w_dim], got {self.mean.shape}, {self.cov.shape}"
            )
        if not (np.isfinite(self.mean).all() and np.isfinite(self.cov).all()):
            raise UserError("the W prior holds non-finite values")
        if not np.allclose(self.cov, self.cov.T, rtol=1e-6, atol=1e-12):
            raise UserError("the W prior's covariance is not symmetric")
        eps = 1e-6 * max(float(np.trace(self.cov)) / d, 1e-12)
        try:
            self._chol = np.linalg.cholesky(self.cov + eps * np.eye(d))
        except np.linalg.LinAlgError:
            raise UserError("the W prior's covariance is not positive semi-definite") from None

    @property
    def w_dim(self) -> int:
        return int(self.mean.shape[0])

    def sample(self, seeds: Sequence[int], psi: float = 1.0) -> np.ndarray:
        """``w [N, w_dim]`` (float32) for integer seeds: ``mean + psi * L u`` with
        ``u = RandomState(seed).randn(w_dim)``."""
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise UserError("no seeds given")
        u = np.stack([np.random.RandomState(s % (2**32)).randn(self.w_dim) for s in seeds])
        return (self.mean + psi * u @ self._chol.T).astype(np.float32)

    def check_model(self, w_dim: int, model_sha256: str | None, name: str = "the W prior") -> None:
        """UserError unless the prior was fitted to this model (by w_dim and, when both are known, sha256)."""
        if w_dim != self.w_dim:
            raise UserError(f"{name} has w_dim {self.w_dim} but the model has {w_dim}: it was fitted to another model")
        fitted = self.info.get("model_sha256")
        if fitted and model_sha256 and fitted != model_sha256:
            raise UserError(
                f"{name} was fitted to model {fitted[:12]}, not this one ({model_sha256[:12]}): "
                "fit one for it with stylegan3d fit-prior"
            )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the prior as one ``.safetensors`` file (atomic)."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {"mean": torch.from_numpy(self.mean.copy()), "cov": torch.from_numpy(self.cov.copy())}
        meta = {"format": PRIOR_FORMAT, "version": "1", "info": json.dumps(self.info, sort_keys=True)}
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WPrior:
        """Read a prior written by :meth:`save`; anything else gives a UserError (no code is executed)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UserError(f"W prior not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != PRIOR_FORMAT:
                    raise UserError(f"{path} is not a stylegan3d W prior (format {meta.get('format')!r})")
                mean, cov = f.get_tensor("mean").numpy(), f.get_tensor("cov").numpy()
            info = json.loads(meta.get("info", "{}"))
        except UserError:
            raise
        except Exception as e:  # safetensors raises its own error types for a damaged header or missing tensor
            raise UserError(f"{path} is not a readable W prior ({one_line(e)})") from None
        return cls(mean, cov, info)


def fit_prior(
    G: torch.nn.Module,
    volumes: Any,
    *,
    steps: int = 200,
    batch: int = 32,
    seed: int = 0,
    model_sha256: str | None = None,
    source: str = "",
    progress: bool = False,
) -> WPrior:
    """Project ``volumes`` (``[N, C, D, H, W]`` in [0, 1]: an array, a VolumeSet or whatever
    :func:`stylegan3d.metrics.volumes.as_volume_set` reads) into W and fit a Gaussian to the projected w.

    ``steps`` per projection (W space, the model's fixed noise maps), ``batch`` volumes projected
    at once (memory grows with it). N must be at least 2; a warning when N <= w_dim (the fitted
    Gaussian then lies in the span of the subjects).
    """
    from stylegan3d.infer.projector import ProjectorConfig, project_volumes
    from stylegan3d.metrics.volumes import as_volume_set

    volumes = as_volume_set(volumes)
    n = len(volumes)
    if n < 2:
        raise UserError(f"fitting a W prior needs at least 2 volumes, got {n}")
    if batch < 1:
        raise UserError("batch must be >= 1")
    w_dim = int(G.w_dim)
    if n <= w_dim:
        warnings.warn(f"{n} volumes for a {w_dim}-dimensional W: the prior's covariance is rank {n - 1}", stacklevel=2)
    cfg = ProjectorConfig(space="w", steps=steps, optimize_noise=False, noise_init="const", seed=seed)
    t0 = time.perf_counter()
    ws, mse = [], []
    for _, chunk in volumes.batches(batch):
        outs = project_volumes(G, torch.from_numpy(chunk), cfg=cfg, progress=progress)
        for o, target in zip(outs, chunk, strict=True):
            ws.append(o.ws[0].numpy().astype(np.float64))
            mse.append(float(np.mean((o.reconstruction - target) ** 2)))
    w = np.stack(ws)
    cov = np.cov(w, rowvar=False)
    info = {
        "model_sha256": model_sha256,
        "n": n,
        "steps": steps,
        "space": "w",
        "noise": "const",
        "seed": seed,
        "source": source,
        "projection_mse": {"mean": float(np.mean(mse)), "max": float(np.max(mse))},
        "effective_dimension": effective_dimension(cov),
        "seconds": round(time.perf_counter() - t0, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return WPrior(w.mean(0), cov, info)

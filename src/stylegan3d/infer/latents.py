"""Latents: the :class:`Latent` record, ``.npz`` files (no pickle), labels and latent-space maths.

Style mixing (StyleGAN's figure 3): the volume of row r and column k takes the row's ws, with
the listed style layers replaced by the column's (layer 0 = 4x coarse base, the last = ToRGB;
coarse layers carry global anatomy, fine layers texture/contrast). Interpolation: spherical in
z (z ~ N(0, I) concentrates on a sphere), linear in w.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_path
from stylegan3d.util import one_line

LATENT_FORMAT = "stylegan3d-latent"


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


def load_latent(
    path: str | os.PathLike,
    num_ws: int,
    w_dim: int,
    noise_shapes: Sequence[tuple[int, ...]],
    model_sha256: str | None = None,
    device: torch.device | str = "cpu",
) -> Latent:
    """Read a latent ``.npz`` (from :func:`save_latent`) for a model with ``num_ws`` x ``w_dim`` styles
    and per-layer ``noise_shapes``; latents of another model give a UserError (another checkpoint
    of the same architecture, by ``model_sha256``, a warning)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"latent file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{path} is not a latent .npz file ({one_line(e)})") from None
    if "ws" not in data:
        raise UserError(f"{path} holds no 'ws' array; not a stylegan3d latent")
    ws = data["ws"]
    if ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    want = (num_ws, w_dim)
    if tuple(ws.shape) != want:
        raise UserError(
            f"latent {path.name} has ws {list(ws.shape)} but this model needs {list(want)}: it belongs to another model"
        )
    noise = None
    keys = sorted((k for k in data if k.startswith("noise_")), key=lambda k: int(k.split("_")[1]))
    if keys:
        shapes = [tuple(s) for s in noise_shapes]
        got = [tuple(data[k].shape) for k in keys]
        if got != shapes:
            raise UserError(f"latent {path.name} has noise maps of another model ({got} vs {shapes})")
        noise = [torch.from_numpy(data[k].astype(np.float32)).to(device) for k in keys]
    sha = str(data.get("model_sha256", "")) or None
    if sha and model_sha256 and sha != model_sha256:
        warnings.warn(
            f"latent {path.name} was projected with another checkpoint of the same architecture", stacklevel=2
        )
    return Latent(ws=torch.from_numpy(ws.astype(np.float32)).to(device), name=path.stem, noise=noise)


def labels_to_c(labels: Any, n: int, c_dim: int) -> torch.Tensor | None:
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


def mix_ws(row: torch.Tensor, cols: torch.Tensor, styles: Sequence[int]) -> torch.Tensor:
    """``[K, num_ws, w_dim]``: ``row [num_ws, w_dim]`` repeated K times, layers ``styles`` from ``cols [K, ...]``."""
    out = row.unsqueeze(0).repeat(cols.shape[0], 1, 1)
    idx = list(styles)
    out[:, idx] = cols[:, idx].to(out)
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between vectors ``a`` and ``b`` (directions on the great circle,
    lengths interpolated linearly); falls back to linear interpolation for (anti)parallel vectors."""
    na, nb = a.norm(), b.norm()
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    dot = (ua * ub).sum().clamp(-1.0, 1.0)
    omega = torch.arccos(dot)
    so = torch.sin(omega)
    if float(so) < 1e-6:
        return a + (b - a) * t
    u = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return u * (na + (nb - na) * t)


def interpolation_weights(keys: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment index and weight in [0, 1] of each of the ``(keys - 1) * frames + 1`` frames.

    Frame f lies on segment ``f // frames`` (between keys s and s + 1), the last frame is key K - 1.
    """
    n = (keys - 1) * frames + 1
    f = np.arange(n)
    seg = np.minimum(f // frames, keys - 2)
    t = (f - seg * frames) / frames
    return seg, t.astype(np.float64)

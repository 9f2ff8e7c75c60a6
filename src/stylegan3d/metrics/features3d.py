"""3-D features for the 3-D Fréchet distance and precision/recall: deepbet's brain encoder.

``deepbet`` (PyPI) ships a TorchScript LinkNet3d trained to extract the brain from T1 MRI
(``site-packages/data/models/model.pt``, 2.1 M parameters). Only its encoder is run:
``init`` (conv 7^3 stride 2 + instance norm + ReLU + max-pool, 16 ch, /4) then four residual
stages ``down0..down3`` with 16, 32, 64 and 128 channels (/1, /2, /2, /2). At the 2 mm grid
80x96x112 the stages have 20x24x28, 10x12x14, 5x6x7 and 3x3x4 voxels.

The feature is the global average of the last stage, ``down3`` (128-d): it has the largest
receptive field (it sees the whole brain at 2 mm), it is the most abstract representation the
network learned of a T1 brain, and 128 dimensions keep the 128x128 covariance estimable from a
few hundred volumes. The earlier stages are available (``layers=``) for studies.

Preprocessing matches deepbet's own: every volume (channel 0, in [0, 1]) is resampled
trilinearly to the fixed grid 80x96x112 (so volumes of any resolution are compared at the
scale the features are defined on), then standardised per volume and mapped to
``0.226 * z + 0.449`` (deepbet's ``normalize``). A consequence: a global change of brightness
or contrast alone does not move these features (slice FID and bMMD² see it).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import sysconfig
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylegan3d.errors import UserError

GRID = (80, 96, 112)
STAGES = ("init", "down0", "down1", "down2", "down3")
STAGE_CHANNELS = {"init": 16, "down0": 16, "down1": 32, "down2": 64, "down3": 128}
DEFAULT_LAYERS = STAGES


def find_deepbet_model() -> Path | None:
    """deepbet's TorchScript model (``data/models/model.pt``) beside the installed deepbet package,
    in the interpreter's site-packages or on ``sys.path``; None when deepbet is not installed."""
    roots = []
    spec = importlib.util.find_spec("deepbet")
    if spec is not None and spec.origin is not None:
        roots.append(Path(spec.origin).parent.parent)
    roots += [Path(r) for r in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path)]
    return next((p for r in roots if (p := r / "data" / "models" / "model.pt").is_file()), None)


def deepbet_path(
    missing: str = "3-D features need the package deepbet (pip install 'stylegan3d[metrics]'): model.pt not found",
) -> Path:
    """:func:`find_deepbet_model`, or a UserError saying ``missing``."""
    path = find_deepbet_model()
    if path is None:
        raise UserError(missing)
    return path


def load_deepbet(device: torch.device | str = "cpu", missing: str | None = None) -> torch.jit.ScriptModule:
    """deepbet's whole network (TorchScript, loaded offline) on ``device`` in eval mode; the one
    deepbet loader (3-D features here, the projector's perceptual term). ``missing``: the error
    message when deepbet is not installed."""
    path = deepbet_path(missing) if missing else deepbet_path()
    with warnings.catch_warnings():  # the shipped file is TorchScript; torch.jit.load warns it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


class DeepbetEncoder(nn.Module):
    """Runs the encoder stages of deepbet's scripted LinkNet3d and average-pools chosen stages.

    ``forward(x [N, 1, D, H, W] normalised)`` -> ``[N, sum of channels of layers]``.
    """

    def __init__(self, net: torch.jit.ScriptModule, layers: Sequence[str] = DEFAULT_LAYERS) -> None:
        super().__init__()
        bad = [s for s in layers if s not in STAGES]
        if bad or not layers:
            raise UserError(f"unknown deepbet layer(s) {bad or list(layers)}: choose from {list(STAGES)}")
        self.net = net
        self.layers = tuple(layers)
        self.last = max(STAGES.index(s) for s in self.layers)

    @property
    def dim(self) -> int:
        return sum(STAGE_CHANNELS[s] for s in self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = getattr(self.net.conv, "2")  # the shared ReLU the scripted blocks take as argument
        pooled = []
        h = x
        for i, name in enumerate(STAGES[: self.last + 1]):
            h = getattr(self.net, name)(act, h)
            if STAGES[i] in self.layers:
                pooled.append(h.mean(dim=(2, 3, 4)))
        return torch.cat(pooled, dim=1)


@functools.lru_cache(maxsize=4)
def load_encoder(device: str = "cpu", layers: tuple[str, ...] = DEFAULT_LAYERS) -> DeepbetEncoder:
    """deepbet's encoder (TorchScript, loaded offline) on ``device`` in eval mode."""
    return DeepbetEncoder(load_deepbet(device), layers).eval()


def normalise(vols: torch.Tensor, grid: Sequence[int] = GRID) -> torch.Tensor:
    """``[N, C, D, H, W]`` in [0, 1] -> channel 0 on ``grid``, standardised like deepbet: ``[N, 1, *grid]``."""
    x = vols[:, :1].float()
    if tuple(x.shape[2:]) != tuple(grid):
        x = F.interpolate(x, size=tuple(grid), mode="trilinear", align_corners=False)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    std = x.std(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-6)
    return 0.226 * (x - mean) / std + 0.449


def volume_features(
    vs: Any,
    device: str = "cpu",
    batch: int = 4,
    layers: Sequence[str] = DEFAULT_LAYERS,
    grid: Sequence[int] = GRID,
    progress: Any = None,
    label: str = "",
) -> np.ndarray:
    """deepbet encoder features ``[N, dim]`` (float32) of a :class:`~stylegan3d.metrics.volumes.VolumeSet`."""
    enc = load_encoder(str(device), tuple(layers))
    out = []
    task = progress.add_task(f"deepbet {label}".strip(), total=len(vs)) if progress is not None else None
    with torch.inference_mode():
        for _, vols in vs.batches(batch):
            x = normalise(torch.from_numpy(vols), grid).to(device)
            out.append(enc(x).float().cpu().numpy())
            if task is not None:
                progress.advance(task, vols.shape[0])
    return np.concatenate(out) if out else np.zeros((0, enc.dim), np.float32)

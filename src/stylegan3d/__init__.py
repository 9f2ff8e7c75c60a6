"""stylegan3d: style-based generative modelling of 3D medical volumes in pure PyTorch."""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:
    # Transparent huge pages for PyTorch's large CPU allocations (read once, when torch loads): 3D
    # activations are hundreds of MB, and faulting them in 4 KiB pages made a CPU training step 1.2x slower
    # (docs/benchmarks.md). Set THP_MEM_ALLOC_ENABLE=0 to opt out.
    _os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from stylegan3d.config import Config, ModelConfig, TrainConfig, apply_overrides, list_presets, load_preset
from stylegan3d.errors import CheckpointError, DataError, UserError

__version__ = "0.1.0"


def load(ckpt, device: str = "cpu"):
    """Load a checkpoint / model file / run directory as a :class:`stylegan3d.infer.api.Model`
    (generate, project, mix, interpolate). See :func:`stylegan3d.infer.api.load`."""
    from stylegan3d.infer.api import load as _load

    return _load(ckpt, device)


__all__ = [
    "Config",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "list_presets",
    "load_preset",
    "UserError",
    "DataError",
    "CheckpointError",
    "__version__",
    "load",
]

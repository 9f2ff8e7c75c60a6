"""stylegan3d: style-based generative modelling of 3D medical volumes in pure PyTorch."""

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

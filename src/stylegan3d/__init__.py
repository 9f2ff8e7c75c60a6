"""stylegan3d: style-based generative modelling of 3D medical volumes in pure PyTorch."""

from stylegan3d.config import Config, ModelConfig, TrainConfig, apply_overrides, list_presets, load_preset
from stylegan3d.errors import CheckpointError, DataError, UserError

__version__ = "0.1.0"

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
]

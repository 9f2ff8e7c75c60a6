"""Using a trained generator: generate, project (W / W+), style mixing, interpolation."""

from stylegan3d.infer.api import Latent, Model, ModelGeometry, ProjectionResult, load, save_latent, write_nifti
from stylegan3d.infer.projector import ProjectorConfig, project_volume, reconstruction_metrics

__all__ = [
    "Latent",
    "Model",
    "ModelGeometry",
    "ProjectionResult",
    "ProjectorConfig",
    "load",
    "project_volume",
    "reconstruction_metrics",
    "save_latent",
    "write_nifti",
]

"""Using a trained generator: generate, project (W / W+), style mixing, interpolation.

Modules: :mod:`~stylegan3d.infer.api` (``load`` and the :class:`Model` facade),
:mod:`~stylegan3d.infer.geometry` (world frame from the sidecar), :mod:`~stylegan3d.infer.latents`
(latent files, labels, mixing/interpolation maths), :mod:`~stylegan3d.infer.targets` (projection
targets and masks), :mod:`~stylegan3d.infer.projector` (the optimisation, ``ProjectionResult``) and
:mod:`~stylegan3d.infer.figures` (pictures).
"""

from stylegan3d.data.io import write_nifti
from stylegan3d.infer.api import Latent, Model, ModelGeometry, ProjectionResult, load
from stylegan3d.infer.latents import save_latent
from stylegan3d.infer.projector import ProjectorConfig, project_volume, project_volumes
from stylegan3d.metrics.reconstruction import reconstruction_metrics

__all__ = [
    "Latent",
    "Model",
    "ModelGeometry",
    "ProjectionResult",
    "ProjectorConfig",
    "load",
    "project_volume",
    "project_volumes",
    "reconstruction_metrics",
    "save_latent",
    "write_nifti",
]

"""Quality metrics of generated volumes, each beside its real-vs-real baseline (docs/metrics.md).

Main entry point: :func:`evaluate` with its :class:`EvalSettings` (used by ``stylegan3d metrics``). The building blocks
(Fréchet distance, bMMD², MS-SSIM, PRDC, memorisation, feature extractors) are importable
from their modules.
"""

from stylegan3d.metrics.evaluate import (
    ALL_METRICS,
    DEFAULT_METRICS,
    EvalSettings,
    evaluate,
    parse_metrics,
    split_halves,
)
from stylegan3d.metrics.frechet import frechet_distance, frechet_distance_features, gaussian_stats
from stylegan3d.metrics.mmd import bmmd2, linear_mmd2
from stylegan3d.metrics.prdc import prdc
from stylegan3d.metrics.report import markdown_table, print_table
from stylegan3d.metrics.ssim import ms_ssim, ms_ssim_settings
from stylegan3d.metrics.volumes import VolumeSet, as_volume_set, open_dataset, open_nifti_dir

__all__ = [
    "ALL_METRICS",
    "DEFAULT_METRICS",
    "EvalSettings",
    "VolumeSet",
    "as_volume_set",
    "bmmd2",
    "evaluate",
    "frechet_distance",
    "frechet_distance_features",
    "gaussian_stats",
    "linear_mmd2",
    "markdown_table",
    "ms_ssim",
    "ms_ssim_settings",
    "open_dataset",
    "open_nifti_dir",
    "parse_metrics",
    "prdc",
    "print_table",
    "split_halves",
]

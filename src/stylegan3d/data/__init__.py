"""Data: reading scans, the synthetic MNI152 cohort, preparation into a training set, the loader.

Submodules: :mod:`~stylegan3d.data.io` (``load_volume``, ``write_nifti``), :mod:`~stylegan3d.data.synth`
(``synth_subject``, ``synth_cohort``), :mod:`~stylegan3d.data.spatial` (``Geometry``, ``prepare_array``,
``resample_to``), :mod:`~stylegan3d.data.prepare` (``prepare_dataset``) and :mod:`~stylegan3d.data.dataset`
(``VolumeDataset``, ``load_manifest``, ``manifest_hash``). Names are imported lazily so that worker
processes that only prepare volumes never import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "load_volume": "io",
    "write_nifti": "io",
    "synth_subject": "synth",
    "synth_cohort": "synth",
    "Geometry": "spatial",
    "prepare_array": "spatial",
    "resample_to": "spatial",
    "prepare_dataset": "prepare",
    "VolumeDataset": "dataset",
    "load_manifest": "dataset",
    "manifest_hash": "dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"stylegan3d.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'stylegan3d.data' has no attribute {name!r}")

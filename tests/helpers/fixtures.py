"""Session fixtures shared by several test folders (registered in tests/conftest.py).

Model files: small randomly-initialised demo generators (the demo preset, 20x24x28 voxels of 8 mm,
with ``width=8`` keeps every forward pass in the millisecond range). An untrained generator has zero
noise strengths and a zero ``w_avg``; ``make_generator`` sets both as training would (noise strength
0.1, ``w_avg`` = mean of mapped z) so that noise modes and truncation have a visible effect.
Datasets: the synthetic cohort of ``helpers.cohort`` as a prepared dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.cohort import N_SUBJECTS, make_cohort, write_dataset
from helpers.infer import dataset_dict, make_generator
from stylegan3d.checkpoint import save_model


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """Model file with dataset geometry (an 8 mm MNI-frame grid)."""
    G, cfg = make_generator()
    path = tmp_path_factory.mktemp("infer-ckpt") / "model.safetensors"
    return save_model(path, G, cfg.to_dict(), {"dataset": dataset_dict(cfg)})


@pytest.fixture(scope="session")
def ckpt_nogeom(tmp_path_factory) -> Path:
    """Model file without dataset geometry (geometry falls back to an MNI-centred grid)."""
    G, cfg = make_generator()
    path = tmp_path_factory.mktemp("infer-ckpt-nogeom") / "model.safetensors"
    return save_model(path, G, cfg.to_dict())


@pytest.fixture(scope="session")
def other_ckpt(tmp_path_factory) -> Path:
    """A different architecture (w_dim 16): its latents must not load into the others."""
    G, cfg = make_generator(overrides=["width=8", "z_dim=16"])
    path = tmp_path_factory.mktemp("infer-ckpt-other") / "model.safetensors"
    return save_model(path, G, cfg.to_dict(), {"dataset": dataset_dict(cfg)})


@pytest.fixture(scope="session")
def plain_model(tmp_path_factory):
    """As initialised (noise strengths 0), the generator the projection figures are measured on."""
    from stylegan3d.infer.api import load

    G, cfg = make_generator(noise_strength=0.0)
    path = tmp_path_factory.mktemp("infer-ckpt-plain") / "model.safetensors"
    return load(save_model(path, G, cfg.to_dict(), {"dataset": dataset_dict(cfg)}))


@pytest.fixture(scope="session")
def model(ckpt):
    from stylegan3d.infer.api import load

    return load(ckpt)


@pytest.fixture(scope="session")
def cohort() -> np.ndarray:
    """16 synthetic subjects ``[16, 1, 20, 24, 28]`` (float16 values, as stored in a dataset)."""
    return make_cohort(N_SUBJECTS, seed=0).astype(np.float16).astype(np.float32)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, cohort: np.ndarray) -> Path:
    """The cohort as a prepared dataset directory (shared, so its feature cache is reused)."""
    return write_dataset(tmp_path_factory.mktemp("data") / "cohort", cohort)

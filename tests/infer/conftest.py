"""Fixtures for inference tests: small randomly-initialised demo generators saved as model files.

The demo preset (20x24x28 voxels of 8 mm) with ``width=8`` keeps every forward pass in the
millisecond range. An untrained generator has zero noise strengths and a zero ``w_avg``; the
fixture sets both as training would (noise strength 0.1, ``w_avg`` = mean of mapped z) so that
noise modes and truncation have a visible effect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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

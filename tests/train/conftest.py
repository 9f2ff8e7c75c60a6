"""Fixtures for training tests: a tiny hand-made dataset and a tiny network configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import TINY_OVERRIDES, write_dataset

from stylegan3d.config import apply_overrides, load_preset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("train-data") / "ds")


@pytest.fixture
def tiny_cfg():
    return apply_overrides(load_preset("demo"), TINY_OVERRIDES)

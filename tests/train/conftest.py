"""Fixtures for training tests: a tiny hand-made dataset and a tiny network configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import write_tiny_dataset
from helpers.train import TINY_OVERRIDES
from stylegan3d.config import apply_overrides, load_preset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("train-data") / "ds")


@pytest.fixture
def tiny_cfg():
    return apply_overrides(load_preset("demo"), TINY_OVERRIDES)

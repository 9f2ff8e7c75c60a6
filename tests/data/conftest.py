"""Fixtures for the data tests: a tiny synthetic cohort (8 mm) and a prepared dataset of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import COHORT_SEED
from stylegan3d.data.prepare import prepare_dataset
from stylegan3d.data.spatial import Geometry
from stylegan3d.data.synth import synth_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> list[Path]:
    """Four synthetic subjects at 8 mm (25x30x24 voxels) plus participants.csv."""
    out = tmp_path_factory.mktemp("cohort")
    return synth_cohort(out, 4, seed=COHORT_SEED, spacing=8.0, workers=1, progress=False)


@pytest.fixture(scope="session")
def demo_geom() -> Geometry:
    return Geometry.from_preset("demo")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, cohort, demo_geom) -> Path:
    """The cohort prepared at the demo preset geometry (20x24x28 at 8 mm), float16."""
    out = tmp_path_factory.mktemp("dataset") / "ds"
    report = prepare_dataset([cohort[0].parent], out, demo_geom, workers=1, progress=False)
    assert report.total == 4 and not report.errors
    return out

"""Fixtures of the reliability tests (tiny cohort, dataset, model file, trained run) and the
end-of-run summary of faults injected and bad inputs tried."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import helpers.reliability as rs
from helpers.data import write_tiny_dataset
from helpers.train import MODEL_OVERRIDES
from stylegan3d.checkpoint import save_model
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.nn import Generator


@pytest.fixture(scope="session")
def cohort10(tmp_path_factory) -> list[Path]:
    """Ten synthetic subjects at 8 mm (25x30x24 voxels, int16 NIfTI)."""
    from stylegan3d.data.synth import synth_cohort

    return synth_cohort(tmp_path_factory.mktemp("cohort10"), 10, seed=11, spacing=8.0, workers=1, progress=False)


@pytest.fixture(scope="session")
def clean_prepared(cohort10, tmp_path_factory) -> Path:
    """``cohort10`` prepared in one uninterrupted run at the demo geometry (MNI frame, float16)."""
    from stylegan3d.data.prepare import prepare_dataset
    from stylegan3d.data.spatial import Geometry

    out = tmp_path_factory.mktemp("clean") / "ds"
    report = prepare_dataset(cohort10, out, Geometry.from_preset("demo", frame="mni"), workers=1, progress=False)
    assert report.total == 10 and not report.errors
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-data") / "ds", n=4, vary_brightness=False)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """A generator-only model file of the demo preset (20x24x28) at width 4."""
    cfg = apply_overrides(load_preset("demo"), MODEL_OVERRIDES)
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("model") / "model.safetensors", Generator(cfg.model), cfg.to_dict())


@pytest.fixture(scope="session")
def _trained_run(tmp_path_factory, tiny_data) -> Path:
    """A run of the tiny network: two steps, one checkpoint per step (kept in a read-only master copy)."""
    from stylegan3d.train.loop import train

    run = tmp_path_factory.mktemp("tiny-run") / "run"
    train(rs.tiny_config("train.kimg=0.004"), tiny_data, run, device="cpu", progress=False)
    return run


@pytest.fixture
def tiny_run(_trained_run, tmp_path) -> Path:
    """A private copy of the trained tiny run (tests may damage it)."""
    return Path(shutil.copytree(_trained_run, tmp_path / "run"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not (rs.FAULTS or rs.BAD_INPUTS):
        return
    tr = terminalreporter
    tr.section("reliability summary")
    tr.write_line(f"faults injected: {sum(rs.FAULTS.values())}")
    for kind, n in sorted(rs.FAULTS.items()):
        tr.write_line(f"  {n:5d}  {kind}")
    tr.write_line(f"bad inputs tried: {sum(rs.BAD_INPUTS.values())}")
    for kind, n in sorted(rs.BAD_INPUTS.items()):
        tr.write_line(f"  {n:5d}  {kind}")
    for name, n in sorted(rs.KNOWN_HITS.items()):
        tr.write_line(f"known bug hit {n} time(s): {name}")
    tr.write_line(f"integrity checks passed: {sum(rs.INTACT.values())}")
    for kind, n in sorted(rs.INTACT.items()):
        tr.write_line(f"  {n:5d}  {kind}")
    tr.write_line(f"lost: {'; '.join(rs.LOST) if rs.LOST else 'nothing'}")

"""Fixtures for the metrics tests: the synthetic cohort (synth_cohort.py) as a prepared dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.cohort import N_SUBJECTS, make_cohort, write_dataset


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these small inference workloads single-threaded: on the shared 2-core test machines
    OpenMP spin-waiting under load made Inception ~7x slower with 2 threads than with 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cohort() -> np.ndarray:
    """16 synthetic subjects ``[16, 1, 20, 24, 28]`` (float16 values, as stored in a dataset)."""
    return make_cohort(N_SUBJECTS, seed=0).astype(np.float16).astype(np.float32)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory, cohort: np.ndarray) -> Path:
    """The cohort as a prepared dataset directory (shared, so its feature cache is reused)."""
    return write_dataset(tmp_path_factory.mktemp("data") / "cohort", cohort)

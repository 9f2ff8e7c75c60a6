"""Metrics tests run their inference single-threaded (the cohort fixtures are in helpers.fixtures)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these small inference workloads single-threaded: on the shared 2-core test machines
    OpenMP spin-waiting under load made Inception ~7x slower with 2 threads than with 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

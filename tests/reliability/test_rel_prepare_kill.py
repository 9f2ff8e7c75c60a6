"""``stylegan3d prepare`` killed with SIGKILL part-way: a re-run resumes the finished volumes
(its report says so), prepares only the rest, and the dataset equals a clean run's bitwise."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rel_support as rs

from stylegan3d.fileio import sha256_file

SLOW_PREPARE = """
import sys, time
import stylegan3d.data.prepare as prep
real, delay = prep.prepare_array, float(sys.argv[1])
def slowed(*args, **kwargs):
    time.sleep(delay)
    return real(*args, **kwargs)
prep.prepare_array = slowed
from stylegan3d.cli.main import main
sys.argv = ["stylegan3d", *sys.argv[2:]]
sys.exit(main(sys.argv[1:]))
"""
"""Runs the real CLI with each volume's preparation slowed down, so the kill lands mid-way."""


def prepare_args(sources: list[Path], out: Path, workers: int = 1) -> list[str]:
    return ["prepare", *map(str, sources), "--out", str(out), "--preset", "demo", "--frame", "mni",
            "--workers", str(workers)]  # fmt: skip


def finished_parts(out: Path) -> set[str]:
    """SHA-256 of the sources whose prepared volume is complete in ``.parts`` (both .npy and .json)."""
    parts = out / ".parts"
    if not parts.is_dir():
        return set()
    return {p.name.split("-")[0] for p in parts.glob("*.json") if p.with_suffix(".npy").is_file()}


def kill_when(cmd: list[str], ready, timeout: float = 240.0) -> subprocess.Popen:
    """Start ``cmd``; SIGKILL it as soon as ``ready()`` is true (fails if it exits first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"prepare ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() - t0 < timeout, "prepare made no progress"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the process and anything it started, like a power cut
    proc.wait()
    proc.stderr.close()
    return proc


def assert_same_dataset(out: Path, clean: Path) -> None:
    with rs.intact("prepare: dataset after a fault equals a clean run (bitwise)"):
        a, b = np.load(out / "volumes.npy"), np.load(clean / "volumes.npy")
        assert a.shape == b.shape == (10, 1, 20, 24, 28) and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()
        assert json.loads((out / "manifest.json").read_text()) == json.loads((clean / "manifest.json").read_text())
        assert rs.temp_leftovers(out) == []  # a kill may leave temp files in .parts; the finished run removed it
        assert not (out / ".parts").exists()


@pytest.mark.timeout(300)
def test_prepare_sigkill_then_resume(cohort10, clean_prepared, tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-c", SLOW_PREPARE, "0.4", *prepare_args(cohort10, out)]
    proc = kill_when(cmd, lambda: len(finished_parts(out)) >= 3)
    rs.FAULTS["prepare: SIGKILL mid-way"] += 1
    assert proc.returncode == -signal.SIGKILL
    done = finished_parts(out)
    assert 3 <= len(done) < 10 and not (out / "volumes.npy").exists() and not (out / "manifest.json").exists()
    done_sources = {str(p) for p in cohort10 if sha256_file(p) in done}

    code, text, err = rs.run_cli([*prepare_args(cohort10, out), "--json"])
    assert code == 0, err
    report = json.loads(text)
    assert set(report["resumed"]) == done_sources  # finished volumes were not redone
    assert set(report["prepared"]) == {str(p) for p in cohort10} - done_sources
    assert report["total"] == 10 and not report["errors"]
    assert_same_dataset(out, clean_prepared)

    code, text, err = rs.run_cli(prepare_args(cohort10, out))  # the plain report of a third run
    assert code == 0, err
    assert re.search(r"prepared 0 new, 0 resumed, 10 unchanged, 0 duplicate, 0 failed", text), text
    assert_same_dataset(out, clean_prepared)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_prepare_sigkill_at_random_moments(cohort10, clean_prepared, tmp_path):
    """Soak: the real CLI (two worker processes, no slow-down) killed at random moments, re-run each
    time; every interrupted run keeps what it finished and the end result equals a clean run."""
    out = tmp_path / "ds"
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        cmd = [sys.executable, "-m", "stylegan3d", *prepare_args(cohort10, out, workers=2)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.5, 8.0))
        before = finished_parts(out)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # main process and its forkserver workers
            kills += 1
        proc.wait()
        assert before <= finished_parts(out)
        rs.FAULTS["prepare: SIGKILL at a random moment (soak)"] += 1
    code, text, err = rs.run_cli([*prepare_args(cohort10, out), "--json"])
    assert code == 0, err
    assert_same_dataset(out, clean_prepared)
    assert kills >= 1

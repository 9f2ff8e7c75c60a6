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

import helpers.reliability as rs
from stylegan3d.fileio import sha256_file

GATED_PREPARE = """
import os, sys, threading
import stylegan3d.data.prepare as prep
tokens, real = sys.argv[1], prep.prepare_array
def gated(*args, **kwargs):
    for name in sorted(os.listdir(tokens)):
        try:
            os.remove(os.path.join(tokens, name))  # one token per volume; forked workers share the folder
        except FileNotFoundError:
            continue  # another worker took it
        return real(*args, **kwargs)
    threading.Event().wait()  # no token left: held here until the test's SIGKILL
prep.prepare_array = gated
from stylegan3d.cli.main import main
sys.argv = ["stylegan3d", *sys.argv[2:]]
sys.exit(main(sys.argv[1:]))
"""
"""Runs the real CLI, but each volume's preparation needs a token file from the folder ``argv[1]``; once
they are used up it waits for the kill, so a kill on progress can never come after the end, however fast
the machine is."""


def gated_prepare(tokens: Path, allowed: int, args: list[str]) -> list[str]:
    """The command of a gated ``prepare`` that may start ``allowed`` more volumes."""
    tokens.mkdir(exist_ok=True)
    for old in tokens.iterdir():
        old.unlink()
    for i in range(allowed):
        (tokens / f"{i:03d}").touch()
    return [sys.executable, "-c", GATED_PREPARE, str(tokens), *args]


def prepare_args(sources: list[Path], out: Path, workers: int = 1) -> list[str]:
    return ["prepare", *map(str, sources), "--out", str(out), "--preset", "demo", "--frame", "mni",
            "--workers", str(workers)]  # fmt: skip


def finished_parts(out: Path) -> set[str]:
    """SHA-256 of the sources whose prepared volume is complete in ``.parts`` (both .npy and .json)."""
    parts = out / ".parts"
    if not parts.is_dir():
        return set()
    return {p.name.split("-")[0] for p in parts.glob("*.json") if p.with_suffix(".npy").is_file()}


def kill_when(cmd: list[str], ready) -> subprocess.Popen:
    """Start ``cmd``; SIGKILL it as soon as ``ready()`` is true (fails if it exits first). No clock: the
    poll waits for progress only (a run that hangs is stopped by pytest's timeout)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    while not ready():
        assert proc.poll() is None, f"prepare ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(0.002)
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


def test_prepare_sigkill_then_resume(cohort10, clean_prepared, tmp_path):
    out = tmp_path / "ds"
    cmd = gated_prepare(tmp_path / "tokens", 4, prepare_args(cohort10, out))
    proc = kill_when(cmd, lambda: len(finished_parts(out)) >= 3)  # killed in the 4th volume, or waiting for a 5th
    rs.FAULTS["prepare: SIGKILL mid-way"] += 1
    assert proc.returncode == -signal.SIGKILL
    done = finished_parts(out)
    assert 3 <= len(done) <= 4 and not (out / "volumes.npy").exists() and not (out / "manifest.json").exists()
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
def test_prepare_sigkill_at_random_moments(cohort10, clean_prepared, tmp_path):
    """Soak: the CLI (two worker processes, no slow-down) killed at random points of its progress, re-run
    each time; every interrupted run keeps what it finished and the end result equals a clean run."""
    out = tmp_path / "ds"
    rng = random.Random(7)
    targets = sorted(rng.sample(range(1, 9), 6))  # volumes finished when the kill comes, one run after another
    for target in targets:
        before = finished_parts(out)
        # the run may start volumes up to target + 1 (+1 more in flight in the other worker): the kill lands
        # while a worker prepares one, writes its part, or waits; never after the end
        cmd = gated_prepare(tmp_path / "tokens", target + 1 - len(before), prepare_args(cohort10, out, workers=2))
        proc = kill_when(cmd, lambda t=target: len(finished_parts(out)) >= t)  # main process + forked workers
        assert proc.returncode == -signal.SIGKILL
        after = finished_parts(out)
        assert before <= after and target <= len(after) <= target + 1 < 10
        assert not (out / "volumes.npy").exists()
        rs.FAULTS["prepare: SIGKILL at a random moment (soak)"] += 1
    code, text, err = rs.run_cli([*prepare_args(cohort10, out), "--json"])
    assert code == 0, err
    report = json.loads(text)
    assert set(report["prepared"]) | set(report["resumed"]) == {str(p) for p in cohort10}
    assert len(report["resumed"]) >= targets[-1]  # nothing finished before a kill was redone
    assert_same_dataset(out, clean_prepared)

"""``stylegan3d train --resume``: the checkpoint's network is kept; a ``--preset`` or ``--set`` that
describes another network is one ``error:`` line, training settings may change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.data import write_prepared
from helpers.train import MODEL_OVERRIDES, set_args
from stylegan3d.checkpoint import resolve_checkpoint
from stylegan3d.cli.main import main

MODEL = ["resolution=[10,12,14]", *MODEL_OVERRIDES]
TRAIN = ["train.batch=2", "train.tick_kimg=0.002", "train.snap_ticks=1", "train.aug=none", "train.precision=fp32"]


def _run(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    return int(e.value.code or 0), capsys.readouterr().err


@pytest.fixture
def run(tmp_path, capsys) -> tuple[Path, Path]:
    """A 10x12x14 dataset and a one-step run of the demo preset shrunk by MODEL/TRAIN overrides."""
    vols = np.random.default_rng(0).random((4, 1, 10, 12, 14))
    names = [f"s{i}.nii.gz" for i in range(4)]
    data = write_prepared(tmp_path / "ds", vols, spacing=16.0, affine=np.diag([16.0, 16.0, 16.0, 1.0]), names=names)
    out = tmp_path / "run"
    base = ["train", "--data", str(data), "--out", str(out), "--device", "cpu", "--no-progress", "--kimg", "0.002"]
    code, err = _run([*base, "--preset", "demo", *set_args(MODEL + TRAIN)], capsys)
    assert code == 0, err
    return data, out


def _resume(data: Path, out: Path, *args: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--resume", str(out), "--device", "cpu", "--no-progress",
            *args]  # fmt: skip


def _one_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit()]  # log lines start with a date
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(n in lines[0] for n in needles), lines[0]


def test_resume_refuses_a_preset_of_another_network(run, capsys):
    data, out = run
    before = resolve_checkpoint(out)
    code, err = _run(_resume(data, out, "--preset", "2mm-f96", "--kimg", "0.004"), capsys)
    _one_error(code, err, "--preset 2mm-f96", "another network", "model.resolution")
    code, err = _run(_resume(data, out, "--preset", "demo", "--kimg", "0.004"), capsys)  # demo without the --set
    _one_error(code, err, "--preset demo", "model.g.width 4 -> 32")
    assert resolve_checkpoint(out) == before  # nothing was trained


def test_resume_refuses_set_that_changes_the_network(run, capsys):
    data, out = run
    code, err = _run(_resume(data, out, "--set", "width=8", "--kimg", "0.004"), capsys)
    _one_error(code, err, "--set changes the network", "model.d.width 4 -> 8", "model.g.width 4 -> 8")


def test_resume_accepts_the_same_network_and_new_training_settings(run, capsys):
    data, out = run
    # the original command again (same preset and overrides), with a longer kimg: no warning
    code, err = _run(_resume(data, out, "--preset", "demo", *set_args(MODEL + TRAIN), "--kimg", "0.004"), capsys)
    assert code == 0 and "warning" not in err and "error" not in err, err
    assert resolve_checkpoint(out).meta.kimg == pytest.approx(0.004)
    # a matching network whose preset training settings differ: the checkpoint's are kept, with a warning
    code, err = _run(_resume(data, out, "--preset", "demo", *set_args(MODEL), "--set", "train.kimg=0.006"), capsys)
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if ln.startswith("warning: --resume")]
    assert len(warning) == 1 and "train.batch 2 -> 8" in warning[0] and "not applied" in warning[0], err
    meta = resolve_checkpoint(out).meta
    assert meta.kimg == pytest.approx(0.006) and meta.config["train"]["batch"] == 2

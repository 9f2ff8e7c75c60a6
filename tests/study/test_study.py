"""The network-size study: grid parsing, the torchrun command, and a real 2-point study at the
smallest size (train + evaluate + bench, study.json/md/png), resumed and then skipped on re-run."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.data import write_tiny_dataset
from helpers.train import TINY_OVERRIDES, set_args
from stylegan3d.checkpoint import list_checkpoints
from stylegan3d.cli.main import main
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.errors import UserError
from stylegan3d.metrics import EvalSettings, evaluate
from stylegan3d.nn import Discriminator, Generator
from stylegan3d.study import StudySettings, grid_points, parse_grid, run_study, torchrun_command
from stylegan3d.train.loop import train

# the tiny network of the training tests, without its width (the swept key)
OVERRIDES = [o for o in TINY_OVERRIDES if not o.startswith("width=")]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on shared, busy cores this is several times faster than oversubscribing."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _args(ds: Path, out: Path, *extra: str) -> list[str]:
    args = ["study", "--data", str(ds), "--out", str(out), "--base", "demo", "--grid", "width=4,8"]
    args += ["--kimg", "0.008", "--metrics", "bmmd2", "--n", "4", "--bench-repeats", "1", "--boot", "50"]
    args += set_args(OVERRIDES)
    return [*args, "--no-progress", *extra]


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parse_grid_and_points() -> None:
    grid = parse_grid(["width=16,32", "resolution=[10,12,14],[20,24,28]"])
    assert grid == {"width": ["16", "32"], "resolution": ["[10,12,14]", "[20,24,28]"]}
    points = grid_points(grid)
    assert [p.values for p in points] == [
        {"width": "16", "resolution": "[10,12,14]"},
        {"width": "16", "resolution": "[20,24,28]"},
        {"width": "32", "resolution": "[10,12,14]"},
        {"width": "32", "resolution": "[20,24,28]"},
    ]
    assert points[0].name == "width-16_resolution-10x12x14"
    assert points[3].overrides == ["width=32", "resolution=[20,24,28]"]
    for bad in (["width"], ["width=16,16"], ["width=16,"], ["=4"], ["width=4", "width=8"], []):
        with pytest.raises(UserError):
            parse_grid(bad)


def test_torchrun_command() -> None:
    cmd = torchrun_command(Path("ds"), Path("s/runs/w"), "demo", ["width=8", "z_dim=16"], 0.5, 4, resume=False)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    tail = cmd[5:]
    assert tail[:4] == ["-m", "stylegan3d", "train", "--data"]
    assert tail[tail.index("--out") + 1] == str(Path("s/runs/w"))
    assert tail[tail.index("--kimg") + 1] == "0.5"
    assert [tail[i + 1] for i, a in enumerate(tail) if a == "--set"] == ["width=8", "z_dim=16"]
    assert "--resume" not in tail
    resumed = torchrun_command(Path("ds"), Path("s/runs/w"), "demo", [], None, 1, resume=True)
    assert resumed[-2:] == ["--resume", str(Path("s/runs/w"))] and "--kimg" not in resumed


def test_study_rejects_bad_settings(tmp_path: Path) -> None:
    ds = write_tiny_dataset(tmp_path / "ds", n=8)
    grid = parse_grid(["width=4"])
    with pytest.raises(UserError, match="--nproc needs --launcher torchrun"):
        run_study(StudySettings(ds, "demo", grid, tmp_path / "s", overrides=OVERRIDES, nproc=2))
    with pytest.raises(UserError, match="unknown config key"):
        run_study(StudySettings(ds, "demo", parse_grid(["widht=4,8"]), tmp_path / "s", overrides=OVERRIDES))
    with pytest.raises(UserError, match="2 seeds"):
        run_study(StudySettings(ds, "demo", grid, tmp_path / "s", overrides=OVERRIDES, n=4, seeds=[0, 1]))
    with pytest.raises(UserError, match=r"holds 1x\[10, 12, 14\] volumes but point width-4 makes 1x\[20, 24, 28\]"):
        run_study(StudySettings(ds, "demo", grid, tmp_path / "s", overrides=["z_dim=8"]))
    with pytest.raises(UserError, match="dataset not found"):
        run_study(StudySettings(tmp_path / "nothing", "demo", grid, tmp_path / "s"))
    assert not (tmp_path / "s" / "runs").exists()  # nothing was trained


def test_two_point_study_resumes_then_skips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ds = write_tiny_dataset(tmp_path / "ds", n=8)
    out = tmp_path / "study"
    # an interrupted point: width=4 was trained half-way (0.004 of 0.008 kimg) before the study started
    cfg4 = apply_overrides(load_preset("demo"), [*OVERRIDES, "width=4", "train.kimg=0.004"])
    train(cfg4, ds, out / "runs" / "width-4", progress=False)
    assert [p.name for p in list_checkpoints(out / "runs" / "width-4")] == ["ckpt-00000001.safetensors"]

    main(_args(ds, out))
    log = capsys.readouterr().out
    assert "resumed from" in log and "at kimg 0.004 (step 1)" in log  # width=4 continued, not restarted

    doc = json.loads((out / "study.json").read_text())
    assert doc["format"] == "stylegan3d-study"
    assert doc["command"].startswith("stylegan3d study --data ") and "--grid width=4,8" in doc["command"]
    pts = doc["points"]
    assert [p["name"] for p in pts] == ["width-4", "width-8"]
    for p, width in zip(pts, (4, 8), strict=True):
        cfg = apply_overrides(load_preset("demo"), [*OVERRIDES, f"width={width}"])
        assert p["params"] == {"G": _numel(Generator(cfg.model)), "D": _numel(Discriminator(cfg.model))}
        assert p["kimg"] == pytest.approx(0.008) and p["step"] == 2  # batch 4: 8 images in 2 steps
        m = p["metrics"]["bmmd2"]
        lo, hi = m["ci95"]
        assert m["n"] == 4 and lo <= m["value"] <= hi and m["value"] > 0
        b = p["bench"]
        assert b["sec_per_kimg"] > 0 and b["peak_mem_gb"] > 0 and not b["errors"]
        assert b["batch"] == 4 and b["precision"] == "fp32"
        assert p["eval"]["seeds"] == [0, 1, 2, 3]
    # both points: same seeds and sample count; the stored value is what evaluate() gives afresh
    again = evaluate(out / "runs" / "width-8", ds, EvalSettings("bmmd2", n=4, n_boot=50))
    assert again["metrics"]["bmmd2"]["value"] == pytest.approx(pts[1]["metrics"]["bmmd2"]["value"], rel=1e-6)
    assert doc["real_vs_real"]["bmmd2"]["value"] == pytest.approx(
        again["metrics"]["bmmd2"]["real_vs_real"]["value"], rel=1e-9
    )
    # the conv FLOPs grow about 4x from width 4 to 8 (the mapping network and RGB layers do not)
    ratio = pts[1]["bench"]["gflop_per_img"] / pts[0]["bench"]["gflop_per_img"]
    assert 2.0 < ratio < 4.5
    assert pts[1]["params"]["G"] > pts[0]["params"]["G"]

    md = (out / "study.md").read_text()
    assert doc["command"] in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| `width=")]
    assert len(rows) == 2 and rows[0].startswith("| `width=4` |")
    assert sum(ln.startswith("| real vs real") for ln in md.splitlines()) == 1
    assert f"{pts[0]['metrics']['bmmd2']['value']:.3g}" in rows[0]
    import matplotlib.image

    img = matplotlib.image.imread(out / "study.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400 and float(np.std(img)) > 0

    # re-run: nothing is retrained, evaluated or benchmarked again
    ckpts = {p: p.stat().st_mtime_ns for d in ("width-4", "width-8") for p in list_checkpoints(out / "runs" / d)}
    done = {d: (out / "runs" / d / "done.json").read_text() for d in ("width-4", "width-8")}
    main(_args(ds, out))
    log = capsys.readouterr().out
    assert log.count("done earlier, skipped") == 2 and "training to" not in log
    assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts
    assert {d: (out / "runs" / d / "done.json").read_text() for d in done} == done
    assert len(json.loads((out / "study.json").read_text())["points"]) == 2

    # a changed training setting does not silently mix with the finished runs
    with pytest.raises(SystemExit) as exc:
        main(_args(ds, out, "--set", "train.r1_gamma=2"))
    assert exc.value.code == 2
    assert "trained with other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_study_with_torchrun_launcher(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ds = write_tiny_dataset(tmp_path / "ds", n=8)
    out = tmp_path / "study"
    main(_args(ds, out, "--launcher", "torchrun", "--nproc", "2", "--device", "cpu"))
    log = capsys.readouterr().out
    assert "torch.distributed.run --standalone --nproc_per_node=2" in log
    doc = json.loads((out / "study.json").read_text())
    assert [p["train"]["launcher"] for p in doc["points"]] == ["torchrun", "torchrun"]
    run_log = (out / "runs" / "width-4" / "log.txt").read_text()
    assert "2 process(es)" in run_log
    assert all(math.isfinite(p["metrics"]["bmmd2"]["value"]) for p in doc["points"])

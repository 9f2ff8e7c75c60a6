"""The README's main job at its smallest setting, and the API example script, run for real."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "resolution=[10,12,14]",
    "spacing_mm=16",
    "width=4",
    "z_dim=4",
    "g.mapping_layers=1",
    "train.batch=4",
    "train.tick_kimg=0.004",
    "train.precision=fp32",
    "train.kimg=0.012",
]
"""Training ends at 3 steps (train.kimg), never on the demo's clock: the budget below is far out of reach."""


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    from stylegan3d.demo import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(
        minutes=24 * 60,
        subjects=5,
        synth_spacing=8.0,
        overrides=TINY,
        samples=4,
        project_steps=5,
        metrics="bmmd2,ms_ssim",
        metrics_n=3,
        preprocess_real=False,
    )  # the pipeline has its own tests
    run_demo(out, cfg)
    return out


def test_demo_writes_self_contained_report(demo_out):
    from stylegan3d import checkpoint as ckpt

    page = (demo_out / "report.html").read_text()
    assert ckpt.resolve_checkpoint(demo_out / "run").meta.step == 3  # the same on any machine
    rows = (demo_out / "run" / "stats.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3]  # one tick a step: the loss curves have 3 points
    assert page.count("data:image/png;base64,") >= 4  # samples, mixing, projection(s), loss curves
    assert "<table>" in page and "bmmd2" in page and "real vs real" in page
    metrics = json.loads((demo_out / "metrics.json").read_text())["metrics"]
    for name in ("bmmd2", "ms_ssim"):
        assert np.isfinite(metrics[name]["value"]) and "real_vs_real" in metrics[name]
    img = nib.load(demo_out / "samples" / "seed0000.nii.gz")
    assert img.shape == (10, 12, 14) and np.allclose(np.abs(np.diag(img.affine)[:3]), 16.0)
    data = np.asarray(img.dataobj)
    assert data.dtype == np.float32 and 0.0 <= data.min() and data.max() <= 1.0
    proj = json.loads(next((demo_out / "projection").glob("*/metrics.json")).read_text())
    assert {"psnr", "ssim", "mae"} <= {k.lower() for k in proj} or "metrics" in proj


def test_api_example_runs_on_demo_checkpoint(demo_out, tmp_path):
    spec = importlib.util.spec_from_file_location("api_tour", ROOT / "examples" / "api_tour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main([str(demo_out / "run"), "--out", str(tmp_path), "--steps", "5"])
    assert result["generated"] == (3, 1, 10, 12, 14) and result["mixed"] == (1, 2, 1, 10, 12, 14)
    assert result["finite"] and (tmp_path / "generated.png").stat().st_size > 0
    assert nib.load(tmp_path / "seed0.nii.gz").shape == (10, 12, 14)

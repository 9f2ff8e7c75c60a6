"""``stylegan3d metrics`` on a demo checkpoint (random weights) against the synthetic cohort."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers.cohort import target_affine
from stylegan3d.checkpoint import read_sidecar, save_model
from stylegan3d.cli.main import main
from stylegan3d.config import load_preset
from stylegan3d.nn import Generator, seeds_to_z, to_unit_range


@pytest.fixture(scope="module")
def demo_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_preset("demo")
    torch.manual_seed(0)
    return save_model(
        tmp_path_factory.mktemp("ckpt") / "demo.safetensors",
        Generator(cfg.model),
        cfg.to_dict(),
        {"dataset": {"shape": cfg.model.resolution}},
    )


def test_metrics_command_on_demo_checkpoint(demo_ckpt: Path, dataset_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "metrics.json"
    md = tmp_path / "metrics.md"
    args = ["metrics", "--ckpt", str(demo_ckpt), "--data", str(dataset_dir), "--n", "8", "--boot", "20"]
    assert main([*args, "--json", str(out), "--markdown", str(md), "--prdc-k", "3", "-q"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["checkpoint_sha256"] == read_sidecar(demo_ckpt).sha256
    assert doc["seeds"] == list(range(8)) and doc["real"]["n"] == 16
    names = {"fid_slice", "fd3d", "bmmd2", "mmd2_unbiased", "ms_ssim", "memorisation"}
    assert set(doc["metrics"]) == names | {"precision", "recall", "density", "coverage"}
    for name, entry in doc["metrics"].items():
        assert name in printed and name in md.read_text()
        assert entry["value"] is not None and entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
        assert entry["real_vs_real"]["value"] is not None
    # An untrained generator is far from the data on every distance.
    for name in ("fid_slice", "fd3d", "bmmd2", "mmd2_unbiased"):
        assert doc["metrics"][name]["value"] > 2 * abs(doc["metrics"][name]["real_vs_real"]["value"])
    assert doc["metrics"]["precision"]["value"] < doc["metrics"]["precision"]["real_vs_real"]["value"]
    # Volumes are generated as `generate` does: the same seeds give the memorisation sample names.
    assert [s["sample"] for s in doc["details"]["memorisation"]["samples"]] == [f"seed{i:04d}" for i in range(8)]


def test_metrics_command_on_a_nifti_folder(demo_ckpt: Path, dataset_dir: Path, tmp_path: Path):
    from stylegan3d.checkpoint import load_generator

    g, _ = load_generator(demo_ckpt)
    with torch.no_grad():
        vols = to_unit_range(g(seeds_to_z([0, 1, 2, 3], g.z_dim), None, noise_mode="const")).numpy()
    fake_dir = tmp_path / "gen"
    fake_dir.mkdir()
    for i, v in enumerate(vols):
        nib.save(nib.Nifti1Image(v[0], target_affine()), fake_dir / f"seed{i:04d}.nii.gz")
    out = tmp_path / "m.json"
    args = ["metrics", "--fake", str(fake_dir), "--data", str(dataset_dir), "--metrics", "bmmd2,memorisation"]
    assert main([*args, "--json", str(out), "--boot", "10", "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["metrics"]["memorisation"]["n"] == 4 and doc["seeds"] is None
    # The same volumes straight from the checkpoint give the same bMMD² (NIfTI stores float32).
    args = ["metrics", "--ckpt", str(demo_ckpt), "--data", str(dataset_dir), "--metrics", "bmmd2", "--n", "4"]
    assert main([*args, "--json", str(out), "--boot", "10", "-q"]) == 0
    assert json.loads(out.read_text())["metrics"]["bmmd2"]["value"] == pytest.approx(
        doc["metrics"]["bmmd2"]["value"], rel=1e-5
    )
    assert np.isfinite(doc["metrics"]["bmmd2"]["real_vs_real"]["value"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fake", "FAKE"], "either --ckpt or --fake"),
        (["--metrics", "kid"], "unknown metric"),
        (["--reference", "x"], "reference"),
        (["--seeds", "0-3"], "--seeds only applies with --ckpt"),
        (["--prior", "demo-8mm"], "--prior only applies with --ckpt"),
    ],
)
def test_metrics_command_user_errors(demo_ckpt: Path, dataset_dir: Path, tmp_path: Path, capsys, extra, message):
    extra = [str(tmp_path) if e == "FAKE" else e for e in extra]
    base = ["metrics", "--data", str(dataset_dir), "-q"]
    if "--seeds" not in extra and "--prior" not in extra:
        base += ["--ckpt", str(demo_ckpt)]
    else:
        base += ["--fake", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main([*base, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_metrics_command_missing_dataset(demo_ckpt: Path, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["metrics", "--ckpt", str(demo_ckpt), "--data", str(tmp_path / "nope"), "-q"])
    assert exc.value.code == 2 and "dataset not found" in capsys.readouterr().err

"""Shipped models: found by bare name wherever a checkpoint is accepted, listed by ``info``,
loaded by the same safe path; an unknown name is one error line listing the shipped names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import stylegan3d.models as models
from helpers.cli import run_err
from stylegan3d.checkpoint import load_generator, save_model
from stylegan3d.cli.main import main
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.nn import Generator


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A package models folder holding one tiny model, ``tiny-8mm``."""
    folder = tmp_path / "models"
    folder.mkdir()
    cfg = apply_overrides(load_preset("demo"), ["width=8", "z_dim=8", "g.mapping_layers=2"])
    torch.manual_seed(0)
    save_model(folder / "tiny-8mm.safetensors", Generator(cfg.model), cfg.to_dict(), {"description": "a test"})
    (folder / "stray.safetensors").write_bytes(b"")  # no sidecar: not a model
    monkeypatch.setattr(models, "MODELS_DIR", folder)
    return folder


def test_listing_and_resolution(shipped, tmp_path, monkeypatch):
    assert models.list_models() == ["tiny-8mm"]
    assert models.model_path("tiny-8mm") == shipped / "tiny-8mm.safetensors"
    assert models.resolve_model_or_path("tiny-8mm") == shipped / "tiny-8mm.safetensors"
    # an existing path of the same name wins over the shipped model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-8mm").mkdir()
    assert models.resolve_model_or_path("tiny-8mm") == Path("tiny-8mm")
    for bad in ("nope", "../tiny-8mm", "tiny-8mm.safetensors", ""):
        assert not (bad == "tiny-8mm.safetensors" and Path(bad).exists())
        with pytest.raises(Exception, match="tiny-8mm"):
            models.model_path(bad)


def test_load_by_name_equals_load_by_path(shipped):
    g_name, found = load_generator("tiny-8mm")
    g_path, _ = load_generator(shipped / "tiny-8mm.safetensors")
    assert found.meta.extra["description"] == "a test"
    for a, b in zip(g_name.state_dict().values(), g_path.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_generate_and_info_by_name(shipped, tmp_path, capsys):
    assert main(["generate", "--model", "tiny-8mm", "--seeds", "0-1", "--out", str(tmp_path / "gen")]) == 0
    import nibabel as nib

    vol = np.asarray(nib.load(tmp_path / "gen" / "seed0001.nii.gz").dataobj)
    assert vol.shape == (20, 24, 28) and np.isfinite(vol).all()
    capsys.readouterr()
    assert main(["info", "--models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [r["name"] for r in rows] == ["tiny-8mm"] and rows[0]["resolution"] == [20, 24, 28]
    assert main(["info", "tiny-8mm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"].endswith("tiny-8mm.safetensors")


@pytest.mark.parametrize("command", ["generate", "project", "mix", "interpolate", "metrics", "info"])
def test_unknown_model_name_is_one_error_listing_the_shipped_names(shipped, command, tmp_path, capsys):
    argv = {
        "generate": ["generate", "--model", "nope", "--seeds", "0", "--out", str(tmp_path / "o")],
        "project": ["project", "--model", "nope", "--target", str(tmp_path / "t.nii.gz"), "--out", str(tmp_path / "o")],
        "mix": ["mix", "--model", "nope", "--rows", "1", "--cols", "2", "--out", str(tmp_path / "o")],
        "interpolate": ["interpolate", "--model", "nope", "--seeds", "1,2", "--out", str(tmp_path / "o")],
        "metrics": ["metrics", "--model", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        "info": ["info", "nope"],
    }[command]
    if command == "metrics":
        argv = ["metrics", "--model", "nope", "--data", str(tmp_path)]
    if command == "project":
        import nibabel as nib

        nib.save(nib.Nifti1Image(np.ones((20, 24, 28), np.float32), np.eye(4)), tmp_path / "t.nii.gz")
    line = run_err(argv, capsys)
    assert "nope" in line and "tiny-8mm" in line
    assert not (tmp_path / "o").exists()


def test_a_shipped_prior_is_found_by_the_models_name(shipped, tmp_path, capsys):
    from stylegan3d.infer.api import load
    from stylegan3d.infer.prior import WPrior

    model = load("tiny-8mm")
    g = np.random.default_rng(0).standard_normal((model.w_dim, model.w_dim))
    WPrior(np.ones(model.w_dim), g @ g.T, {"model_sha256": model.sha256}).save(shipped / "tiny-8mm.prior.safetensors")
    assert models.list_models() == ["tiny-8mm"] and models.list_priors() == ["tiny-8mm"]
    assert models.resolve_prior("tiny-8mm") == shipped / "tiny-8mm.prior.safetensors"
    assert main(["info", "--models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["prior"] is True
    out = tmp_path / "gen"
    assert main(["generate", "--model", "tiny-8mm", "--prior", "tiny-8mm", "--seeds", "5", "--out", str(out)]) == 0
    model.set_prior("tiny-8mm")
    import nibabel as nib

    np.testing.assert_allclose(
        np.asarray(nib.load(out / "seed0005.nii.gz").dataobj), model.generate([5])[0, 0], atol=1e-5
    )
    (shipped / "tiny-8mm.prior.safetensors").unlink()
    with pytest.raises(SystemExit) as exc:  # (this tiny model has no geometry: a note line comes first)
        main(["generate", "--model", "tiny-8mm", "--prior", "tiny-8mm", "--seeds", "0", "--out", str(out)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and "no shipped prior named 'tiny-8mm'" in line and "shipped priors: none" in line


def test_shipped_models_load_and_are_documented():
    """Every model in the real package folder loads safely and is named in the README."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in models.list_models():
        g, found = load_generator(name)
        assert found.meta.config["model"]["resolution"] == list(g.cfg.resolution)
        assert (found.meta.dataset or {}).get("frame") == "mni", "a shipped model records its dataset geometry"
        assert name in readme, f"shipped model {name} is not named in the README"
        x = g(torch.randn(2, g.z_dim), None, noise_mode="const")
        assert x.shape[2:] == tuple(g.cfg.resolution) and torch.isfinite(x).all()
    for name in models.list_priors():
        from stylegan3d.infer.api import load

        model = load(name)
        prior = model.set_prior(name)  # loads, and was fitted to this very model file
        assert prior.info["model_sha256"] == model.sha256 and prior.info["n"] > model.w_dim
        assert f"--prior {name}" in readme, f"the README does not show the W prior of {name}"


def test_demo_uses_a_shipped_model_only_on_its_own_grid(shipped):
    from stylegan3d.demo import shipped_model

    demo = load_preset("demo")
    assert shipped_model("tiny-8mm", demo) == shipped / "tiny-8mm.safetensors"
    assert shipped_model("tiny-8mm", apply_overrides(demo, ["resolution=[10,12,14]"])) is None
    assert shipped_model("tiny-8mm", apply_overrides(demo, ["spacing_mm=4"])) is None
    assert shipped_model("absent", demo) is None and shipped_model(None, demo) is None


def test_demo_shows_samples_of_a_shipped_prior(shipped, tmp_path):
    from stylegan3d.demo import prior_samples
    from stylegan3d.infer.api import load
    from stylegan3d.infer.prior import WPrior

    model = load("tiny-8mm")
    assert prior_samples(model, "tiny-8mm", [0, 1], tmp_path / "none.png") is None  # no prior ships yet
    WPrior(np.zeros(model.w_dim), np.eye(model.w_dim), {"model_sha256": model.sha256}).save(
        shipped / "tiny-8mm.prior.safetensors"
    )
    before = model.generate([0, 1])
    path = prior_samples(model, "tiny-8mm", [0, 1], tmp_path / "prior.png")
    assert path.stat().st_size > 0 and model.prior is None
    np.testing.assert_array_equal(model.generate([0, 1]), before)  # back to the mapping

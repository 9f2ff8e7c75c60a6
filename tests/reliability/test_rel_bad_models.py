"""Wrong inputs for a loaded model and checkpoints of another network: projection targets of the
wrong shape/type/range and checkpoints of another preset are refused with one clear error,
before any work is done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import helpers.reliability as rs
from helpers.data import write_tiny_dataset
from helpers.train import MODEL_OVERRIDES
from stylegan3d import checkpoint as ckpt
from stylegan3d.config import load_preset
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.infer import api
from stylegan3d.nn import Generator
from stylegan3d.train.loop import Trainer

FAST = {"w_avg_samples": 16}
"""If a bad target slipped through, the projection would run (1 step) and the test would fail."""


@pytest.fixture(scope="module")
def model(model_file) -> api.Model:
    with pytest.warns(UserWarning, match="no dataset geometry"):
        return api.load(model_file)


GRID = (20, 24, 28)
BAD_ARRAYS = {
    "0-d": np.float32(0.5),
    "1-D": np.full(20, 0.5, np.float32),
    "2-D slice": np.full(GRID[:2], 0.5, np.float32),
    "3-D other shape": np.full((20, 24, 29), 0.5, np.float32),
    "3-D transposed": np.full(GRID[::-1], 0.5, np.float32),
    "4-D two channels": np.full((2, *GRID), 0.5, np.float32),
    "4-D channels last": np.full((*GRID, 1), 0.5, np.float32),
    "5-D batch of 3": np.full((3, 1, *GRID), 0.5, np.float32),
    "6-D": np.full((1, 1, 1, *GRID), 0.5, np.float32),
    "NaN voxel": np.where(np.arange(np.prod(GRID)).reshape(GRID) == 7, np.nan, 0.5).astype(np.float32),
    "Inf voxel": np.where(np.arange(np.prod(GRID)).reshape(GRID) == 7, np.inf, 0.5).astype(np.float32),
    "intensities in [0, 255]": np.full(GRID, 200.0, np.float32),
    "intensities in [-1, 1]": np.full(GRID, -0.9, np.float32),
    "empty": np.zeros((0, *GRID[1:]), np.float32),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_project_rejects_bad_array_targets(kind, model):
    rs.BAD_INPUTS["projection target arrays (shape/values)"] += 1
    with pytest.raises(UserError) as e:
        model.project(BAD_ARRAYS[kind], steps=1, **FAST)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["ragged nested list", "complex array", "object array", "text array"])
def test_project_rejects_non_real_targets(kind, model):
    targets = {
        "ragged nested list": [[0.5, 0.5], [0.5]],
        "complex array": np.full(GRID, 0.5 + 0.5j, np.complex64),
        "object array": np.full(GRID, 0.5, object),
        "text array": np.full(GRID, "0.5"),
    }
    rs.BAD_INPUTS[f"projection target: {kind}"] += 1
    with pytest.raises(UserError, match="ragged|complex|numeric") as e:
        model.prepare_target(targets[kind])  # the first thing project() does with its target
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="mask"):
        model.prepare_target(np.full(GRID, 0.5, np.float32), mask=targets[kind])


def test_project_rejects_bad_mask_and_settings(model):
    good = np.full(GRID, 0.5, np.float32)
    cases = [
        ({"mask": np.ones(GRID[:2], bool)}, "mask shape"),
        ({"mask": np.ones((20, 24, 29), bool)}, "mask shape"),
        ({"space": "z"}, "space"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"bogus_setting": 1}, "unknown projector setting"),
    ]
    for kw, needle in cases:
        rs.BAD_INPUTS["projection mask/settings"] += 1
        args = {"steps": 1, **FAST, **kw}
        with pytest.raises(UserError, match=needle):
            model.project(good, **args)


def _nifti(path: Path, shape: tuple[int, ...], value: float = 1.0) -> Path:
    data = np.full(shape, value, np.float32)
    if data.size:
        data.flat[0] = 0.0
    nib.save(nib.Nifti1Image(data, np.diag([8.0, 8.0, 8.0, 1.0])), str(path))
    return path


def test_project_rejects_bad_target_files(model, model_file, tmp_path):
    """Path targets: 2D and 4D NIfTI, NaN voxels, a folder, a text file, garbage with a NIfTI name."""
    nan = np.full((20, 24, 28), 1.0, np.float32)
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    (tmp_path / "junk.nii.gz").write_bytes(b"\x1f\x8b" + bytes(range(200)))
    (tmp_path / "notes.txt").write_text("not a scan")
    targets = {
        "2D": _nifti(tmp_path / "slice.nii.gz", (20, 24)),
        "4D series": _nifti(tmp_path / "series.nii.gz", (20, 24, 28, 3)),
        "NaN voxel": tmp_path / "nan.nii.gz",
        "folder": tmp_path,
        "text file": tmp_path / "notes.txt",
        "garbage .nii.gz": tmp_path / "junk.nii.gz",
    }
    for kind, target in targets.items():
        rs.BAD_INPUTS["projection target files (api + cli)"] += 2
        with pytest.raises(UserError) as e:
            model.project(target, steps=1, **FAST)
        assert "\n" not in str(e.value), kind
        out = tmp_path / f"out-{kind}"
        code, _, err = rs.run_cli(["project", "--ckpt", str(model_file), "--target", str(target), "--steps", "1",
                                "--out", str(out)])  # fmt: skip
        lines = rs.error_lines(err)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (kind, err)
        assert not out.exists(), kind


# ----------------------------------------------------------------------------- another preset


@pytest.fixture(scope="module")
def demo_tensors(model_file) -> dict[str, torch.Tensor]:
    return ckpt.load_tensors(model_file)


def test_load_module_lists_mismatches_of_another_preset(demo_tensors):
    cfg = load_preset("4mm-f64")
    with torch.device("meta"):
        g = Generator(cfg.model)
    with pytest.raises(CheckpointError) as e:
        ckpt.load_module(g, demo_tensors, "G_ema", "demo.safetensors")
    msg = str(e.value)
    rs.BAD_INPUTS["checkpoint of another preset (load_module)"] += 1
    assert "\n" not in msg and "demo.safetensors" in msg
    own, got = set(g.state_dict()), {k[6:] for k in demo_tensors if k.startswith("G_ema.")}
    assert own - got and "missing [" in msg  # the 4 mm net has a stage more than the demo net
    assert "shape mismatch" in msg
    n_bad = sum(tuple(g.state_dict()[k].shape) != tuple(demo_tensors["G_ema." + k].shape) for k in own & got)
    assert f"{n_bad} shape mismatch(es)" in msg


def test_load_module_refuses_integer_tensors_of_the_right_shape(demo_tensors):
    """Same names and shapes, but a float tensor stored as int32: refused instead of converted."""
    cfg = load_preset("demo")
    from stylegan3d.config import apply_overrides

    g = Generator(apply_overrides(cfg, MODEL_OVERRIDES).model)
    key = "G_ema.synthesis.const"
    bad = dict(demo_tensors)
    bad[key] = demo_tensors[key].view(torch.int32)
    with pytest.raises(CheckpointError, match="dtype mismatch"):
        ckpt.load_module(g, bad, "G_ema")
    rs.BAD_INPUTS["float tensor stored as int32 (load_module)"] += 1
    ckpt.load_module(g, demo_tensors, "G_ema")  # control: the untouched tensors load
    assert torch.equal(g.synthesis.const, demo_tensors[key])


def test_resume_4mm_trainer_from_demo_model(model_file, tmp_path):
    """A 4mm-f64 Trainer resumed from a demo-preset generator file: CheckpointError, no file written."""
    data = write_tiny_dataset(tmp_path / "ds4", n=2, shape=(40, 48, 56), vary_brightness=False)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="another network config"):
        Trainer(load_preset("4mm-f64"), data, out, resume=model_file, device="cpu", progress=False)
    rs.BAD_INPUTS["resume from another preset (Trainer)"] += 1
    assert not out.exists() or not any(out.iterdir())  # at most an empty run folder


def test_resume_from_generator_only_file(tiny_data, tmp_path):
    """A model file (G_ema only) of the very same network cannot resume training: G/D/optimisers are missing."""
    cfg = rs.tiny_config("train.kimg=0.004")
    model = ckpt.save_model(tmp_path / "g.safetensors", Generator(cfg.model), cfg.to_dict())
    with pytest.raises(CheckpointError, match="missing"):
        Trainer(cfg, tiny_data, tmp_path / "run", resume=model, device="cpu", progress=False)
    rs.BAD_INPUTS["resume from a generator-only file"] += 1


def test_sidecar_claiming_another_preset(model_file, tiny_data, tmp_path):
    """Demo tensors whose sidecar (hash recomputed) claims the 4mm-f64 config: every loader refuses it."""
    path = tmp_path / "liar.safetensors"
    shutil.copy(model_file, path)
    meta = json.loads(ckpt.sidecar_path(model_file).read_text())
    meta["config"] = load_preset("4mm-f64").to_dict()
    ckpt.sidecar_path(path).write_text(json.dumps(meta))
    rs.rehash_sidecar(path)
    for load in (ckpt.load_generator, api.load, ckpt.verify_checkpoint):
        with pytest.raises(CheckpointError, match="does not match the G_ema network"):
            load(path)
    for args in (["info", str(path)],
                 ["train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--resume", str(path)],
                 ["generate", "--ckpt", str(path), "--seeds", "0", "--out", str(tmp_path / "gen")]):  # fmt: skip
        code, _, err = rs.run_cli(args)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "does not match the G_ema network" in lines[0], (args[0], err)
    rs.BAD_INPUTS["sidecar claiming another preset (api + cli)"] += 6
    for out in (tmp_path / "run", tmp_path / "gen"):
        assert not out.exists() or not any(out.iterdir())  # no file written


def test_cli_train_resume_with_another_preset(model_file, tmp_path):
    """``train --preset 4mm-f64 --resume demo-model``: one error line, exit 2, no file written."""
    data = write_tiny_dataset(tmp_path / "ds4", n=2, shape=(40, 48, 56), vary_brightness=False)
    out = tmp_path / "run"
    code, _, err = rs.run_cli(["train", "--data", str(data), "--out", str(out), "--preset", "4mm-f64",
                            "--resume", str(model_file), "--device", "cpu"])  # fmt: skip
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    rs.BAD_INPUTS["cli train --resume from another preset"] += 1
    assert not out.exists() or not any(out.iterdir())  # at most an empty run folder

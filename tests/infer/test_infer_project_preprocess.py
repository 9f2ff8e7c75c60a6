"""``stylegan3d project --preprocess t1``: a scan in its own space in, results in MNI and native space out."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from stylegan3d.cli.main import main
from stylegan3d.data.preprocess.register import mni_template, to_native
from stylegan3d.data.spatial import grid_affine, resample_to


@pytest.fixture(scope="module")
def native_scan(tmp_path_factory):
    """nilearn's MNI152 brain (3 mm) rotated by 10 degrees and shifted 15 mm: a 'scan' in its own space."""
    t1, mask, aff = mni_template(3.0)
    c, s = np.cos(np.deg2rad(10.0)), np.sin(np.deg2rad(10.0))
    true = np.eye(4)
    true[:3, :3] = [[1, 0, 0], [0, c, -s], [0, s, c]]
    true[:3, 3] = [5.0, 15.0, -8.0]
    shape = (np.asarray(mask.shape) * 1.2).astype(int)
    native = grid_affine(shape, [3.0] * 3, (true @ aff @ np.append(np.asarray(mask.shape) / 2.0, 1.0))[:3])
    native = native @ np.diag([-1.0, 1.0, 1.0, 1.0])  # stored LAS, like many scanners
    native[:3, 3] -= native[:3, 0] * (shape[0] - 1)
    scan = resample_to(t1 * 900.0, true @ aff, native, shape)
    path = tmp_path_factory.mktemp("scan") / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan.astype(np.float32), native), str(path))
    return path, scan, native


def test_project_preprocess_writes_mni_and_native_results(ckpt, native_scan, tmp_path, capsys):
    path, scan, native = native_scan
    out = tmp_path / "proj"
    argv = [
        "project",
        "--ckpt",
        str(ckpt),
        "--target",
        str(path),
        "--out",
        str(out),
        "--steps",
        "3",
        "--preprocess",
        "t1",
        "--skip",
        "n4,brain",
    ]
    assert main(argv) == 0
    assert "note:" not in capsys.readouterr().err
    for name in (
        "reconstruction.nii.gz",
        "reconstruction_native.nii.gz",
        "target.transform.json",
        "target.mask.nii.gz",
        "target.qc.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    rec_native = nib.load(out / "reconstruction_native.nii.gz")
    assert rec_native.shape == scan.shape and np.allclose(rec_native.affine, native)
    transform = json.loads((out / "target.transform.json").read_text())
    assert transform["dice"] > 0.9
    # the prepared target (model grid, 8 mm) carried back with the saved transform lies on the scan
    target = nib.load(out / "target.nii.gz")
    back = to_native(
        np.asarray(target.dataobj)[..., 0] if target.ndim == 4 else np.asarray(target.dataobj),
        target.affine,
        np.asarray(transform["mni_to_native"]),
        native,
        scan.shape,
    )
    inside = scan > 0
    assert np.corrcoef(back[inside], scan[inside])[0, 1] > 0.8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["masked"] and metrics["source"]["preprocess"]["skipped"] == ["n4", "brain"]


def test_project_warns_on_a_target_that_is_not_mni_registered(ckpt, native_scan, tmp_path, capsys):
    path, _, _ = native_scan
    shifted = tmp_path / "shifted.nii.gz"
    img = nib.load(path)
    aff = img.affine.copy()
    aff[:3, 3] += [0.0, 50.0, 40.0]
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), str(shifted))
    assert (
        main(["project", "--ckpt", str(ckpt), "--target", str(shifted), "--out", str(tmp_path / "p"), "--steps", "1"])
        == 0
    )
    err = capsys.readouterr().err
    assert "note: target shifted.nii.gz does not look like" in err and "--preprocess t1" in err


def test_project_preprocess_bad_target_is_one_error_line(ckpt, tmp_path, capsys):
    noise = tmp_path / "noise.nii.gz"
    nib.save(
        nib.Nifti1Image(
            np.random.default_rng(0).uniform(0, 1, (64, 64, 64)).astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])
        ),
        str(noise),
    )
    with pytest.raises(SystemExit) as exc:
        main(
            ["project", "--ckpt", str(ckpt), "--target", str(noise), "--out", str(tmp_path / "p"), "--preprocess", "t1"]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "check: no anatomical structure" in err[0], err

"""generate / project / mix / interpolate with ``--html`` write ``viewer.html`` holding exactly their volumes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers.page import PLAIN_AFFINE, embedded_images, page_data
from stylegan3d.checkpoint import save_model
from stylegan3d.cli.main import main
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.nn import Generator


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny randomly initialised demo generator with an 8 mm dataset grid."""
    cfg = apply_overrides(load_preset("demo"), ["width=8"])
    torch.manual_seed(0)
    G = Generator(cfg.model).eval()
    dataset = {
        "manifest_sha256": "0" * 64,
        "shape": list(cfg.model.resolution),
        "spacing": [8.0, 8.0, 8.0],
        "affine": PLAIN_AFFINE.tolist(),
        "channels": 1,
        "frame": "mni",
    }
    path = tmp_path_factory.mktemp("viewer-ckpt") / "model.safetensors"
    return save_model(path, G, cfg.to_dict(), {"dataset": dataset})


def _matches_files(page, files) -> None:
    """Every embedded volume equals its NIfTI output (within the 16-bit step), on the same grid."""
    imgs = embedded_images(page)
    assert len(imgs) == len(files)
    for img, f in zip(imgs, files, strict=True):
        ref = nib.load(f)
        np.testing.assert_allclose(img.affine, ref.affine, atol=1e-6)
        np.testing.assert_allclose(img.get_fdata(), ref.get_fdata(), atol=float(img.dataobj.slope))


def test_generate_html(ckpt, tmp_path, capsys):
    main(["generate", "--ckpt", str(ckpt), "--seeds", "0-2", "--out", str(tmp_path / "g"), "--html"])
    page = tmp_path / "g" / "viewer.html"
    assert "(8 files)" in capsys.readouterr().out
    _matches_files(page, [tmp_path / "g" / f"seed000{i}.nii.gz" for i in range(3)])
    (sec,) = page_data(page)["sections"]
    assert sec["slots"] == ["seed0000", "seed0001", "seed0002"]


def test_generate_without_html_writes_no_page(ckpt, tmp_path):
    main(["generate", "--ckpt", str(ckpt), "--seeds", "0", "--out", str(tmp_path / "g")])
    assert not (tmp_path / "g" / "viewer.html").exists()


def test_mix_and_interpolate_html(ckpt, tmp_path):
    main(["mix", "--ckpt", str(ckpt), "--rows", "1,2", "--cols", "3", "--out", str(tmp_path / "m"), "--html"])
    doc = page_data(tmp_path / "m" / "viewer.html")
    (sec,) = doc["sections"]
    assert sec["control"] == "grid" and [o["label"] for o in sec["options"]] == ["seed1 x seed3", "seed2 x seed3"]
    m = tmp_path / "m"
    by_name = {v["name"]: i for i, v in enumerate(doc["volumes"])}
    imgs = embedded_images(m / "viewer.html")
    pairs = [("mix seed2 x seed3", "mix_seed2_seed3"), ("row seed1", "row_seed1"), ("column seed3", "col_seed3")]
    for name, f in pairs:
        img = imgs[by_name[name]]
        ref = nib.load(m / f"{f}.nii.gz").get_fdata()
        np.testing.assert_allclose(img.get_fdata(), ref, atol=float(img.dataobj.slope))

    out = str(tmp_path / "i")
    main(["interpolate", "--ckpt", str(ckpt), "--seeds", "1,2", "--frames", "3", "--out", out, "--html"])
    frames = sorted((tmp_path / "i").glob("frame_*.nii.gz"))
    _matches_files(tmp_path / "i" / "viewer.html", frames)
    (sec,) = page_data(tmp_path / "i" / "viewer.html")["sections"]
    assert sec["control"] == "slider" and len(sec["options"]) == len(frames)


def test_project_html(ckpt, tmp_path):
    target = tmp_path / "target.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((20, 24, 28)).astype(np.float32), PLAIN_AFFINE), str(target))
    out = tmp_path / "p"
    main(["project", "--ckpt", str(ckpt), "--target", str(target), "--steps", "2", "--out", str(out), "--html"])
    page = out / "viewer.html"
    t, r, e = embedded_images(page)
    ref_t, ref_r = nib.load(out / "target.nii.gz").get_fdata(), nib.load(out / "reconstruction.nii.gz").get_fdata()
    np.testing.assert_allclose(t.get_fdata(), ref_t, atol=float(t.dataobj.slope))
    np.testing.assert_allclose(r.get_fdata(), ref_r, atol=float(r.dataobj.slope))
    np.testing.assert_allclose(e.get_fdata(), np.abs(ref_t - ref_r), atol=float(e.dataobj.slope) + 1e-6)
    (sec,) = page_data(page)["sections"]
    assert sec["slots"] == ["target", "reconstruction", "|error|"] and "psnr" in sec["note"]

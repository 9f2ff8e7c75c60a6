"""``stylegan3d generate | project | mix | interpolate`` end to end on a tiny demo model."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from helpers.cli import run_err, run_ok
from helpers.infer import DATASET_AFFINE


def test_generate_writes_reproducible_world_frame_volumes(ckpt, model, tmp_path):
    for out in ("a", "b"):
        run_ok(
            [
                "generate",
                "--ckpt",
                str(ckpt),
                "--seeds",
                "0-2",
                "--batch",
                "2",
                "--noise",
                "random",
                "--trunc",
                "0.7",
                "--out",
                str(tmp_path / out),
            ]
        )
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["contact_sheet.png"] + [f"seed000{i}.{e}" for i in range(3) for e in ("nii.gz", "png")]
    expected = model.generate([0, 1, 2], trunc=0.7, noise_mode="random")
    for i in range(3):
        img_a = nib.load(tmp_path / "a" / f"seed000{i}.nii.gz")
        img_b = nib.load(tmp_path / "b" / f"seed000{i}.nii.gz")
        np.testing.assert_allclose(img_a.affine, DATASET_AFFINE)
        assert img_a.get_data_dtype() == np.float32
        a = np.asarray(img_a.dataobj)
        np.testing.assert_array_equal(a, np.asarray(img_b.dataobj))  # same seed + options: same volume
        np.testing.assert_allclose(a, expected[i, 0], atol=1e-5)
        assert 0.0 <= a.min() and a.max() <= 1.0


def test_generate_without_geometry_notes_the_fallback(ckpt_nogeom, tmp_path, capsys):
    run_ok(["generate", "--ckpt", str(ckpt_nogeom), "--seeds", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "note: checkpoint has no dataset geometry; using an MNI-centred grid" in err
    assert nib.load(tmp_path / "seed0001.nii.gz").header.get_zooms() == (8.0, 8.0, 8.0)


def test_project_mix_interpolate_chain(ckpt, model, tmp_path, capsys):
    """Project a generated scan stored in another orientation, then use the latent in mix and interpolate."""
    vol = model.generate([7])[0, 0]
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    flip[1, 3] = vol.shape[1] - 1
    target_affine = DATASET_AFFINE @ flip
    target = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(vol[:, ::-1].copy(), target_affine), target)
    mask = tmp_path / "mask.nii.gz"
    m = np.zeros(vol.shape, np.uint8)
    m[2:18, 2:22, 2:26] = 1
    nib.save(nib.Nifti1Image(m[:, ::-1].copy(), target_affine), mask)
    proj = tmp_path / "proj"
    run_ok(
        [
            "project",
            "--ckpt",
            str(ckpt),
            "--target",
            str(target),
            "--mask",
            str(mask),
            "--steps",
            "5",
            "--space",
            "w",
            "--out",
            str(proj),
        ]
    )
    assert "PSNR" in capsys.readouterr().out
    names = {p.name for p in proj.iterdir()}
    assert names == {
        "reconstruction.nii.gz",
        "reconstruction_native.nii.gz",
        "target.nii.gz",
        "mask.nii.gz",
        "latent.npz",
        "compare.png",
        "loss.png",
        "metrics.json",
    }
    rec = nib.load(proj / "reconstruction.nii.gz")
    np.testing.assert_allclose(rec.affine, DATASET_AFFINE)
    native = nib.load(proj / "reconstruction_native.nii.gz")
    np.testing.assert_allclose(native.affine, target_affine)
    # back in the target's own (flipped) frame: the same volume, voxel for voxel
    np.testing.assert_allclose(np.asarray(native.dataobj), np.asarray(rec.dataobj)[:, ::-1], atol=1e-4)
    mask_img = np.asarray(nib.load(proj / "mask.nii.gz").dataobj)
    np.testing.assert_array_equal(mask_img, m.astype(np.float32))
    metrics = json.loads((proj / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"psnr", "ssim", "mae", "mse"} and metrics["masked"] and metrics["steps"] == 5
    with np.load(proj / "latent.npz", allow_pickle=False) as z:
        assert z["ws"].shape == (6, 32) and str(z["space"]) == "w" and z["w"].shape == (32,)
        assert [z[f"noise_{i}"].shape for i in range(5)] == model.noise_shapes()
    # the latent reproduces the reconstruction
    lat = model.load_latent(proj / "latent.npz")
    again = model.synthesize(lat.ws[None], noise=lat.noise)[0, 0]
    np.testing.assert_allclose(again, np.asarray(rec.dataobj), atol=1e-5)

    mix = tmp_path / "mix"
    run_ok(
        [
            "mix",
            "--ckpt",
            str(ckpt),
            "--rows",
            f"1,{proj / 'latent.npz'}",
            "--cols",
            "3-4",
            "--styles",
            "0-1",
            "--out",
            str(mix),
        ]
    )
    grid = mix / "mix_grid.png"
    assert grid.read_bytes()[:4] == b"\x89PNG"
    cell = np.asarray(nib.load(mix / "mix_latent_seed4.nii.gz").dataobj)
    ws = lat.ws.clone()
    ws[:2] = model.ws_from_seeds([4])[0, :2]
    np.testing.assert_allclose(cell, model.synthesize(ws[None], noise=lat.noise)[0, 0], atol=1e-5)
    assert (mix / "row_seed1.nii.gz").exists() and (mix / "col_seed3.nii.gz").exists()
    assert len(list(mix.glob("mix_*.nii.gz"))) == 4

    interp = tmp_path / "interp"
    run_ok(
        [
            "interpolate",
            "--ckpt",
            str(ckpt),
            "--seeds",
            f"2,{proj / 'latent.npz'}",
            "--frames",
            "3",
            "--out",
            str(interp),
        ]
    )
    frames = sorted(interp.glob("frame_*.nii.gz"))
    assert len(frames) == 4
    np.testing.assert_allclose(np.asarray(nib.load(frames[0]).dataobj), model.generate([2])[0, 0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(nib.load(frames[-1]).dataobj), again, atol=1e-5)
    from PIL import Image

    with Image.open(interp / "interpolation.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 4

    err = run_err(
        [
            "interpolate",
            "--ckpt",
            str(ckpt),
            "--seeds",
            f"2,{proj / 'latent.npz'}",
            "--space",
            "z",
            "--out",
            str(interp),
        ],
        capsys,
    )
    assert "z-space" in err


def test_interpolate_z_space_gif(ckpt, tmp_path):
    run_ok(
        [
            "interpolate",
            "--ckpt",
            str(ckpt),
            "--seeds",
            "1,2,3",
            "--frames",
            "2",
            "--space",
            "z",
            "--out",
            str(tmp_path),
        ]
    )
    assert len(list(tmp_path.glob("frame_*.nii.gz"))) == 5
    assert (tmp_path / "interpolation.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_cli_user_errors(ckpt, other_ckpt, tmp_path, capsys):
    from stylegan3d.infer.api import load

    out = str(tmp_path / "out")
    other = load(other_ckpt)
    foreign = tmp_path / "foreign.npz"
    from stylegan3d.infer.latents import save_latent

    save_latent(foreign, other.ws_from_seeds([1])[0], None, "w", other.sha256)
    text = tmp_path / "scan.txt"
    text.write_text("not a scan")
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 1), np.float32), np.eye(4)), flat)
    cases = {
        "missing checkpoint": ["generate", "--ckpt", str(tmp_path / "none"), "--out", out],
        "non-NIfTI target": ["project", "--ckpt", str(ckpt), "--target", str(text), "--out", out],
        "2D target": ["project", "--ckpt", str(ckpt), "--target", str(flat), "--out", out],
        "missing mask": [
            "project",
            "--ckpt",
            str(ckpt),
            "--target",
            str(flat),
            "--mask",
            str(text) + "x",
            "--out",
            out,
        ],
        "foreign latent": ["mix", "--ckpt", str(ckpt), "--rows", str(foreign), "--cols", "1", "--out", out],
        "missing latent": ["interpolate", "--ckpt", str(ckpt), "--seeds", f"1,{tmp_path / 'x.npz'}", "--out", out],
        "labels on unconditional": ["generate", "--ckpt", str(ckpt), "--seeds", "1", "--labels", "0", "--out", out],
        "bad space": ["interpolate", "--ckpt", str(ckpt), "--seeds", "1,2", "--space", "q", "--out", out],
    }
    messages = {name: run_err(argv, capsys) for name, argv in cases.items()}
    assert "not a NIfTI" in messages["non-NIfTI target"]
    assert "2D image" in messages["2D target"]
    assert "another model" in messages["foreign latent"]
    assert "not found" in messages["missing latent"] and "not found" in messages["missing checkpoint"]


def test_mix_and_interpolate_take_labels_of_a_conditional_model(tmp_path, capsys):
    from helpers.infer import dataset_dict, make_generator
    from stylegan3d.checkpoint import save_model
    from stylegan3d.infer.api import load

    G, cfg = make_generator(overrides=["width=8", "c_dim=3"])
    ckpt = save_model(tmp_path / "cond.safetensors", G, cfg.to_dict(), {"dataset": dataset_dict(cfg)})
    model = load(ckpt)
    mix = ["mix", "--ckpt", str(ckpt), "--rows", "1", "--cols", "2", "--styles", "0-1"]
    run_ok([*mix, "--labels", "2", "--out", str(tmp_path / "mix")])
    row = np.asarray(nib.load(tmp_path / "mix" / "row_seed1.nii.gz").dataobj)
    np.testing.assert_allclose(row, model.generate([1], labels=2)[0, 0], atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(nib.load(tmp_path / "mix" / "mix_seed1_seed2.nii.gz").dataobj),
        model.mix(model.latents([1], labels=2), model.latents([2], labels=2), [0, 1])[0, 0, 0],
        atol=1e-5,
    )
    for space in ("w", "z"):
        out = tmp_path / f"interp-{space}"
        interp = ["interpolate", "--ckpt", str(ckpt), "--seeds", "1,2", "--frames", "2", "--space", space]
        run_ok([*interp, "--labels", "1", "--out", str(out)])
        last = np.asarray(nib.load(out / "frame_0002.nii.gz").dataobj)
        np.testing.assert_allclose(last, model.generate([2], labels=1)[0, 0], atol=1e-5)
    assert "conditional" in run_err([*mix, "--out", str(tmp_path / "x")], capsys)
    assert "one class label" in run_err([*mix, "--labels", "0,1", "--out", str(tmp_path / "x")], capsys)
    assert "class indices" in run_err([*interp, "--labels", "5", "--out", str(tmp_path / "x")], capsys)


def test_fit_prior_then_generate_and_mix_from_it(ckpt, dataset_dir, tmp_path, capsys):
    from stylegan3d.infer.api import load
    from stylegan3d.infer.prior import WPrior

    path = tmp_path / "cohort.prior.safetensors"
    run_ok(
        ["fit-prior", "--ckpt", str(ckpt), "--data", str(dataset_dir), "--n", "4", "--steps", "5"]
        + ["--batch", "3", "--out", str(path)]
    )
    assert "fitted a W prior to 4 volumes" in capsys.readouterr().out
    prior = WPrior.load(path)
    model = load(ckpt)
    assert prior.info["n"] == 4 and prior.info["steps"] == 5 and prior.info["model_sha256"] == model.sha256
    run_ok(["generate", "--ckpt", str(ckpt), "--seeds", "3,4", "--prior", str(path), "--out", str(tmp_path / "g")])
    model.set_prior(path)
    expected = model.generate([3, 4])
    for i, seed in enumerate((3, 4)):
        got = np.asarray(nib.load(tmp_path / "g" / f"seed000{seed}.nii.gz").dataobj)
        np.testing.assert_allclose(got, expected[i, 0], atol=1e-5)
    assert not np.allclose(expected, load(ckpt).generate([3, 4]), atol=1e-3)  # not the mapping's samples
    run_ok(
        ["mix", "--ckpt", str(ckpt), "--rows", "1", "--cols", "2", "--prior", str(path), "--out", str(tmp_path / "m")]
    )
    row = np.asarray(nib.load(tmp_path / "m" / "row_seed1.nii.gz").dataobj)
    np.testing.assert_allclose(row, model.generate([1])[0, 0], atol=1e-5)

"""The Python inference API: loading, geometry, generation, latents, mixing, interpolation, NIfTI output."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers.infer import DATASET_AFFINE
from stylegan3d.errors import UserError
from stylegan3d.infer.api import Latent, load
from stylegan3d.infer.latents import interpolation_weights, mix_ws, save_latent, slerp
from stylegan3d.nn import seeds_to_z, to_unit_range


def test_load_uses_dataset_geometry(model):
    g = model.geometry
    assert g.from_dataset and g.shape == (20, 24, 28) and g.spacing == (8.0, 8.0, 8.0)
    np.testing.assert_array_equal(g.affine, DATASET_AFFINE)
    assert model.num_ws == 6 and model.w_dim == 32 and model.config.model.g.width == 8


def test_load_falls_back_to_mni_grid_and_says_so(ckpt_nogeom):
    from stylegan3d.data.spatial import MNI_CENTRE_MM

    with pytest.warns(UserWarning, match="no dataset geometry"):
        m = load(ckpt_nogeom)
    g = m.geometry
    assert not g.from_dataset and g.spacing == (8.0, 8.0, 8.0)
    # voxel shape // 2 sits at the MNI centre, axes RAS with 8 mm voxels
    np.testing.assert_allclose(g.affine[:3, :3], np.eye(3) * 8.0)
    np.testing.assert_allclose(g.affine @ np.array([10, 12, 14, 1.0]), [*MNI_CENTRE_MM, 1.0])


def test_load_errors(tmp_path, ckpt):
    with pytest.raises(UserError, match="not found"):
        load(tmp_path / "missing.safetensors")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            load(ckpt, device="cuda")
    with pytest.raises(UserError, match="invalid device"):
        load(ckpt, device="toaster")


def test_generate_matches_direct_network_call(model):
    vols = model.generate([3, 11], trunc=1.0, noise_mode="const")
    assert vols.shape == (2, 1, 20, 24, 28) and vols.dtype == np.float32
    assert vols.min() >= 0.0 and vols.max() <= 1.0
    with torch.no_grad():
        ref = to_unit_range(model.G(seeds_to_z([3, 11], model.G.z_dim), noise_mode="const")).numpy()
    np.testing.assert_allclose(vols, ref, atol=1e-5)


def test_generate_is_reproducible_and_batch_independent(model):
    for mode in ("const", "random", "none"):
        a = model.generate([1, 2, 3], noise_mode=mode, batch=2)
        b = model.generate([1, 2, 3], noise_mode=mode, batch=2)
        np.testing.assert_array_equal(a, b)
        alone = model.generate([3], noise_mode=mode, batch=1)
        np.testing.assert_allclose(alone[0], a[2], atol=1e-5)
    const = model.generate([1], noise_mode="const")
    rand = model.generate([1], noise_mode="random")
    none = model.generate([1], noise_mode="none")
    assert np.abs(const - rand).max() > 1e-3 and np.abs(const - none).max() > 1e-3
    assert np.abs(model.generate([1]) - model.generate([2])).max() > 1e-2


def test_truncation(model):
    ws0 = model.ws_from_seeds([1, 2, 3], trunc=0.0)
    w_avg = model.G.mapping.w_avg
    np.testing.assert_allclose(ws0.numpy(), w_avg.expand_as(ws0).numpy(), atol=1e-6)
    v = model.generate([1, 2], trunc=0.0)
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)
    half = model.ws_from_seeds([5], trunc=0.5)
    full = model.ws_from_seeds([5], trunc=1.0)
    np.testing.assert_allclose(half.numpy(), (w_avg + 0.5 * (full - w_avg)).numpy(), atol=1e-5)


def test_generate_argument_errors(model):
    with pytest.raises(UserError, match="unconditional"):
        model.generate([1], labels=[0])
    with pytest.raises(UserError, match="noise mode"):
        model.generate([1], noise_mode="loud")
    with pytest.raises(UserError, match="no seeds"):
        model.generate([])
    with pytest.raises(UserError, match="ws must be"):
        model.synthesize(np.zeros((1, 3, 32)))


def test_save_nifti_world_frame(model, tmp_path):
    vol = model.generate([4])[0]
    path = model.save_nifti(vol, tmp_path / "v.nii.gz")
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, DATASET_AFFINE)
    assert img.get_data_dtype() == np.float32 and img.shape == (20, 24, 28)
    np.testing.assert_array_equal(np.asarray(img.dataobj), vol[0])
    assert img.header.get_zooms() == (8.0, 8.0, 8.0)
    assert int(img.header["sform_code"]) == 4  # the fixture's dataset is in the MNI frame
    with pytest.raises(UserError, match="does not match"):
        model.save_nifti(np.zeros((4, 4, 4), np.float32), tmp_path / "bad.nii.gz")
    assert not (tmp_path / "bad.nii.gz").exists()


def test_generate_to_dir_writes_volumes_pictures_and_sheet(model, tmp_path):
    paths = model.generate_to_dir([0, 5], tmp_path / "gen")
    names = sorted(p.name for p in paths)
    assert names == ["contact_sheet.png", "seed0000.nii.gz", "seed0000.png", "seed0005.nii.gz", "seed0005.png"]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_allclose(
        np.asarray(nib.load(tmp_path / "gen" / "seed0005.nii.gz").dataobj), model.generate([5])[0, 0], atol=1e-5
    )


def test_latent_roundtrip_and_foreign_latents(model, other_ckpt, tmp_path):
    g = torch.Generator().manual_seed(0)
    ws = torch.randn(model.num_ws, model.w_dim, generator=g)
    noise = [torch.randn(s, generator=g) for s in model.noise_shapes()]
    path = save_latent(tmp_path / "lat.npz", ws, noise, "w+", model.sha256)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["space"]) == "w+" and z["ws"].shape == (6, 32)
    lat = model.load_latent(path)
    np.testing.assert_array_equal(lat.ws.numpy(), ws.numpy())
    assert all(torch.equal(a, b) for a, b in zip(lat.noise, noise, strict=True))
    other = load(other_ckpt)
    with pytest.raises(UserError, match="another model"):
        other.load_latent(path)
    with pytest.raises(UserError, match="not found"):
        model.load_latent(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a latent"):
        model.load_latent(tmp_path / "junk.npz")


def test_mix_takes_listed_layers_from_columns(model):
    rows = model.ws_from_seeds([1, 2])
    cols = model.ws_from_seeds([3, 4, 5])
    mixed = model.mix(rows, cols, styles=[0, 1])
    assert mixed.shape == (2, 3, 1, 20, 24, 28)
    ws = rows[1].clone()
    ws[:2] = cols[2, :2]
    np.testing.assert_allclose(mixed[1, 2], model.synthesize(ws[None])[0], atol=1e-5)
    # all layers from the column = the column's own volume; coarse vs fine layers differ
    every = model.mix(rows, cols, styles=range(model.num_ws))
    np.testing.assert_allclose(every[0], model.synthesize(cols), atol=1e-5)
    fine = model.mix(rows, cols, styles=[4, 5])
    assert np.abs(fine - mixed).max() > 1e-3
    with pytest.raises(UserError, match="style layers"):
        model.mix(rows, cols, styles=[6])


def test_mix_ws_and_slerp_and_weights():
    row = torch.zeros(4, 2)
    cols = torch.ones(3, 4, 2)
    out = mix_ws(row, cols, [1, 3])
    assert out.shape == (3, 4, 2)
    assert out[:, [1, 3]].eq(1).all() and out[:, [0, 2]].eq(0).all()
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    mid = slerp(a, b, 0.5)
    np.testing.assert_allclose(mid.numpy(), 1.5 * np.array([np.sqrt(0.5), np.sqrt(0.5)]), atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 0.0).numpy(), a.numpy(), atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1.0).numpy(), b.numpy(), atol=1e-6)
    seg, t = interpolation_weights(3, 4)
    assert seg.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(t, [0, 0.25, 0.5, 0.75, 0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("space", ["z", "w"])
def test_interpolation_endpoints_are_the_keys(model, space):
    frames = model.interpolate([1, 2, 3], frames=3, space=space)
    assert frames.shape == (7, 1, 20, 24, 28)
    keys = model.generate([1, 2, 3])
    for i, f in enumerate((0, 3, 6)):
        np.testing.assert_allclose(frames[f], keys[i], atol=1e-5)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3, 4))
    assert steps.min() > 0


def test_interpolation_w_midpoint_and_projected_keys(model, tmp_path):
    ws = model.ws_from_seeds([1, 2])
    mid = model.interpolate([1, 2], frames=2, space="w")[1]
    np.testing.assert_allclose(mid, model.synthesize((ws[0] + ws[1])[None] / 2)[0], atol=1e-5)
    g = torch.Generator().manual_seed(3)
    noise = [torch.randn(s, generator=g) for s in model.noise_shapes()]
    path = save_latent(tmp_path / "p.npz", ws[1], noise, "w+", model.sha256)
    vols = model.interpolate([1, path], frames=2, space="w")
    np.testing.assert_allclose(vols[-1], model.synthesize(ws[1:], noise=noise)[0], atol=1e-5)
    const = model.const_noise()
    half = [(a + b) / 2 for a, b in zip(const, noise, strict=True)]
    np.testing.assert_allclose(vols[1], model.synthesize(((ws[0] + ws[1]) / 2)[None], noise=half)[0], atol=1e-5)
    with pytest.raises(UserError, match="z-space"):
        model.interpolate([1, path], frames=2, space="z")
    with pytest.raises(UserError, match="at least two"):
        model.interpolate([1], frames=2)


def test_prepare_target_array_checks(model):
    with pytest.raises(UserError, match="does not match the model grid"):
        model.prepare_target(np.zeros((10, 10, 10), np.float32))
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        model.prepare_target(np.full((20, 24, 28), 3.0, np.float32))
    with pytest.raises(UserError, match="mask shape"):
        model.prepare_target(np.zeros((20, 24, 28), np.float32), mask=np.ones((3, 3, 3)))
    vol, mask, affine, source = model.prepare_target(np.full((20, 24, 28), 0.5, np.float32))
    assert vol.shape == (1, 20, 24, 28) and mask is None and source is None
    np.testing.assert_array_equal(affine, DATASET_AFFINE)


def test_prepare_target_from_any_orientation(model, tmp_path):
    """A generated volume stored flipped (LAS) at a different spacing is prepared back onto the model grid."""
    vol = model.generate([9])[0, 0]
    model.save_nifti(vol, tmp_path / "ras.nii.gz")
    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = vol.shape[0] - 1
    las_affine = DATASET_AFFINE @ flip  # voxel i -> world of RAS voxel (D - 1 - i)
    nib.save(nib.Nifti1Image(vol[::-1].copy(), las_affine), tmp_path / "las.nii.gz")
    a, _, aff_a, src_a = model.prepare_target(tmp_path / "ras.nii.gz")
    b, _, aff_b, src_b = model.prepare_target(tmp_path / "las.nii.gz")
    np.testing.assert_allclose(aff_a, DATASET_AFFINE) and np.testing.assert_allclose(aff_b, DATASET_AFFINE)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # intensities are rescaled like training data (robust percentiles -> [0, 1])
    assert a.min() == 0.0 and a.max() == 1.0
    assert np.corrcoef(a.ravel(), vol.ravel())[0, 1] > 0.99
    np.testing.assert_allclose(src_b["orig_affine"], las_affine)


def test_prepare_target_file_errors(model, tmp_path):
    with pytest.raises(UserError, match="not found"):
        model.prepare_target(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a NIfTI"):
        model.prepare_target(tmp_path / "notes.txt")
    (tmp_path / "fake.nii.gz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="fake.nii.gz"):
        model.prepare_target(tmp_path / "fake.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), tmp_path / "series.nii.gz")
    with pytest.raises(UserError, match="4D"):
        model.prepare_target(tmp_path / "series.nii.gz")


def test_latents_resolve_mixed_specs(model, tmp_path):
    ws = model.ws_from_seeds([4])[0]
    path = save_latent(tmp_path / "x.npz", ws, None, "w", model.sha256)
    lats = model.latents([2, path, Latent(ws=ws, name="mine")])
    assert [lat.name for lat in lats] == ["seed2", "x", "mine"]
    assert lats[0].seed == 2 and lats[1].noise is None and lats[1].z is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_latent(path)  # same checkpoint: no warning


def test_conditional_model_labels(tmp_path):
    from helpers.infer import dataset_dict, make_generator
    from stylegan3d.checkpoint import save_model

    G, cfg = make_generator(overrides=["width=8", "c_dim=3"])
    m = load(save_model(tmp_path / "cond.safetensors", G, cfg.to_dict(), {"dataset": dataset_dict(cfg)}))
    a = m.generate([1, 1], labels=[0, 2])
    assert np.abs(a[0] - a[1]).max() > 1e-3
    np.testing.assert_allclose(m.generate([1], labels=2)[0], a[1], atol=1e-5)
    c = torch.nn.functional.one_hot(torch.tensor([2]), 3).float()
    with torch.no_grad():
        ref = to_unit_range(m.G(seeds_to_z([1], m.G.z_dim), c, noise_mode="const")).numpy()
    np.testing.assert_allclose(a[1:], ref, atol=1e-5)
    with pytest.raises(UserError, match="conditional"):
        m.generate([1])
    with pytest.raises(UserError, match="class indices"):
        m.generate([1], labels=[3])
    with pytest.raises(UserError, match="one label per sample"):
        m.generate([1, 2, 3], labels=[0, 1])

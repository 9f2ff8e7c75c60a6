"""load_volume: good files round-trip, every kind of bad file gives one clear DataError line."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from helpers.data import save_nifti
from stylegan3d.data.io import load_volume, volume_stem, volume_suffix
from stylegan3d.errors import DataError

AFF = np.array([[-1.5, 0, 0, 30.0], [0, 1.2, 0, -40.0], [0, 0, 2.0, -20.0], [0, 0, 0, 1]])


@pytest.fixture
def vol() -> np.ndarray:
    return np.random.default_rng(0).random((12, 10, 8)).astype(np.float32) * 100


def test_good_nifti_round_trips(tmp_path, vol):
    for name in ("a.nii", "a.nii.gz", "a.mgz"):
        img = nib.MGHImage(vol, AFF) if name.endswith("mgz") else nib.Nifti1Image(vol, AFF)
        nib.save(img, str(tmp_path / name))
        data, affine = load_volume(tmp_path / name)
        assert data.dtype == np.float32 and data.shape == (12, 10, 8)
        np.testing.assert_allclose(data, vol, rtol=1e-6)
        np.testing.assert_allclose(affine, AFF, atol=1e-5)


def test_scaled_int16_applies_slope(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), AFF)
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, str(tmp_path / "s.nii"))
    data, _ = load_volume(tmp_path / "s.nii")
    np.testing.assert_allclose(data, np.arange(24).reshape(2, 3, 4) * 0.5 + 10.0)


def test_npz_needs_affine_and_loads(tmp_path, vol):
    np.savez(tmp_path / "v.npz", data=vol, affine=AFF)
    data, affine = load_volume(tmp_path / "v.npz")
    np.testing.assert_array_equal(data, vol)
    np.testing.assert_array_equal(affine, AFF)
    np.savez(tmp_path / "w.npz", data=vol)
    with pytest.raises(DataError, match="no 'affine' array"):
        load_volume(tmp_path / "w.npz")


def test_4d_series_needs_index(tmp_path, vol):
    series = np.stack([vol, vol + 1, vol + 2], axis=-1)
    path = save_nifti(tmp_path / "s.nii.gz", series, AFF)
    with pytest.raises(DataError, match="4D series of 3 volumes.*--volume-index"):
        load_volume(path)
    np.testing.assert_allclose(load_volume(path, volume_index=2)[0], vol + 2, rtol=1e-6)
    np.testing.assert_allclose(load_volume(path, volume_index=-3)[0], vol, rtol=1e-6)
    with pytest.raises(DataError, match="out of range"):
        load_volume(path, volume_index=3)
    single = save_nifti(tmp_path / "one.nii.gz", vol[..., None], AFF)  # trailing singleton axis is 3D
    assert load_volume(single)[0].shape == vol.shape


def _zero_scale(path, vol):
    hdr = nib.Nifti1Image(vol, np.eye(4)).header
    hdr.set_qform(None, code=0)
    hdr["sform_code"] = 2
    hdr["srow_y"] = [0, 0, 0, 5]
    nib.save(nib.Nifti1Image(vol, None, header=hdr), str(path))


def _truncated(path, vol):
    save_nifti(path, vol, AFF)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _nan(path, vol):
    bad = vol.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = np.inf
    save_nifti(path, bad, AFF)


BAD = {
    "empty.nii.gz": (lambda p, v: p.write_bytes(b""), "empty file"),
    "truncated.nii.gz": (_truncated, "truncated or corrupt"),
    "header_only.nii.gz": (lambda p, v: (_truncated(p, v), p.write_bytes(p.read_bytes()[:60])), "truncated or corrupt"),
    "text.nii.gz": (lambda p, v: p.write_text("subject,age\n1,20\n"), "not a recognised image"),
    "text.nii": (lambda p, v: p.write_text("x" * 1000), "not a recognised image"),
    "flat.nii.gz": (lambda p, v: save_nifti(p, v[:, :, 0], AFF), "2D image"),
    "slab.nii.gz": (lambda p, v: save_nifti(p, v[:, :, :1], AFF), "2D image"),
    "nan.nii.gz": (_nan, "2 non-finite voxels"),
    "zero.nii.gz": (_zero_scale, "zero voxel scale"),
    "complex.nii.gz": (lambda p, v: save_nifti(p, v.astype(np.complex64), AFF), "unsupported voxel data type"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_gives_one_line_error(tmp_path, vol, name):
    make, expected = BAD[name]
    path = tmp_path / name
    make(path, vol)
    with pytest.raises(DataError, match=expected) as info:
        load_volume(path)
    assert "\n" not in str(info.value)


def test_unreadable_paths(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_volume(tmp_path / "missing.nii.gz")
    with pytest.raises(DataError, match="is a directory"):
        load_volume(tmp_path)


def test_suffix_helpers():
    assert volume_suffix("x/Sub-01.NII.GZ") == ".nii.gz"
    assert volume_suffix("notes.txt") is None
    assert volume_stem("a/sub-01.nii.gz") == "sub-01"
    assert volume_stem("sub-01.mgz") == "sub-01"

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.cohort import target_affine, write_dataset
from stylegan3d.errors import UserError
from stylegan3d.metrics.cache import cached, load_entry
from stylegan3d.metrics.volumes import VolumeSet, as_volume_set, manifest_hash, open_dataset, open_nifti_dir


def _vols(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 4, 5, 6)).astype(np.float32)


def test_dataset_is_memory_mapped_with_names_and_stable_hash(tmp_path: Path):
    vols = _vols()
    root = write_dataset(tmp_path / "ds", vols, spacing=8.0)
    vs = open_dataset(root)
    assert isinstance(vs.array, np.memmap) and len(vs) == 5 and vs.shape == (1, 4, 5, 6)
    assert vs.names[2] == "sub-002.nii.gz"
    np.testing.assert_allclose(vs.get([3, 1]), vols[[3, 1]].astype(np.float16), rtol=0)
    man = json.loads((root / "manifest.json").read_text())
    # The hash ignores formatting and per-volume details other than the content hashes ...
    (root / "manifest.json").write_text(json.dumps(man))
    assert open_dataset(root).key == vs.key == manifest_hash(man)
    man2 = json.loads(json.dumps(man))
    man2["volumes"][0]["source"] = "/elsewhere/x.nii.gz"
    assert manifest_hash(man2) == vs.key
    # ... but changes with the data.
    man2["volumes"][0]["sha256"] = "0" * 64
    assert manifest_hash(man2) != vs.key


def test_subset_keeps_order_and_changes_identity(tmp_path: Path):
    vs = open_dataset(write_dataset(tmp_path / "ds", _vols(6)))
    sub = vs.subset([4, 0, 2])
    assert sub.names == ["sub-004.nii.gz", "sub-000.nii.gz", "sub-002.nii.gz"]
    np.testing.assert_array_equal(sub.get([0, 1]), vs.get([4, 0]))
    assert sub.identity() != vs.identity() == vs.key
    assert [rows.tolist() for rows, _ in sub.batches(2)] == [[0, 1], [2]]


def test_bad_dataset_inputs_are_user_errors(tmp_path: Path):
    with pytest.raises(UserError, match="not a prepared dataset"):
        open_dataset(tmp_path)
    root = write_dataset(tmp_path / "ds", _vols(3))
    man = json.loads((root / "manifest.json").read_text())
    man["volumes"] = man["volumes"][:2]
    (root / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match="lists 2 volumes"):
        open_dataset(root)
    with pytest.raises(UserError):
        as_volume_set(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(UserError, match="float"):
        as_volume_set(np.zeros((2, 1, 3, 4, 5), np.uint8))


def test_nifti_folder_is_reoriented_to_ras(tmp_path: Path):
    vols = _vols(3)
    d = tmp_path / "gen"
    d.mkdir()
    aff = target_affine((4, 5, 6), 8.0)
    nib.save(nib.Nifti1Image(vols[0, 0], aff), d / "seed0000.nii.gz")
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 3  # voxel i -> 3 - i: the same image stored left-right flipped (LAS)
    nib.save(nib.Nifti1Image(vols[1, 0, ::-1].copy(), aff @ flip), d / "seed0001.nii")
    nib.save(nib.Nifti1Image(vols[2, 0], aff), d / "seed0002.nii.gz")
    (d / "notes.txt").write_text("ignored")
    vs = as_volume_set(d)
    assert vs.names == ["seed0000.nii.gz", "seed0001.nii", "seed0002.nii.gz"] and vs.key is None
    np.testing.assert_allclose(vs.get([0, 1, 2]), vols, atol=1e-6)
    nib.save(nib.Nifti1Image(vols[0, 0] * 3, aff), d / "seed0003.nii.gz")
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        open_nifti_dir(d)
    (d / "seed0003.nii.gz").unlink()
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), aff), d / "seed0004.nii.gz")
    with pytest.raises(UserError, match="shape"):
        open_nifti_dir(d)


def test_cache_roundtrip_without_pickle_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    vs = open_dataset(write_dataset(tmp_path / "ds", _vols(4)))
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(12.0).reshape(4, 3)}

    first = cached(vs, "demo", "a=1", compute)
    again = cached(vs, "demo", "a=1", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["features"], again["features"])
    files = list((tmp_path / "ds" / ".cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and not files[0].name.startswith(".")
    with np.load(files[0], allow_pickle=False) as z:
        assert "demo" in str(z["identity"])
    cached(vs, "demo", "a=2", compute)  # other settings -> other entry
    assert len(calls) == 2
    cached(vs.subset([0, 1]), "demo", "a=1", compute)  # other rows -> other entry
    assert len(calls) == 3
    # A corrupt entry is recomputed, never trusted.
    files[0].write_bytes(b"garbage")
    cached(vs, "demo", "a=1", compute)
    assert len(calls) == 4
    # Unwritable dataset directory: the user cache directory is used instead.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so blocked/.cache cannot be created")
    vs2 = VolumeSet(vs.array, vs.names, key=vs.key, cache_dirs=[blocked / ".cache", tmp_path / "xdg" / "stylegan3d"])
    cached(vs2, "demo", "b", compute)
    assert len(list((tmp_path / "xdg" / "stylegan3d").glob("demo-*.npz"))) == 1
    assert load_entry(vs2, "demo", "b") is not None
    assert load_entry(VolumeSet(_vols(2)), "demo", "b") is None  # arrays without identity are never cached

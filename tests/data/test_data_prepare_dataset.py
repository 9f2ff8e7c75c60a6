"""prepare_dataset / ``stylegan3d prepare``: bad inputs reported, good ones kept, idempotent, resumable."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from helpers.data import DEMO_SHAPE, save_nifti
from stylegan3d.cli.main import main
from stylegan3d.data import prepare as prep
from stylegan3d.data.dataset import load_manifest
from stylegan3d.data.io import load_volume
from stylegan3d.data.prepare import prepare_dataset
from stylegan3d.data.spatial import Geometry, prepare_array
from stylegan3d.errors import UserError


def _bad_files(folder, good):
    """One file of every bad kind, built from a good subject; returns {name: expected message}."""
    data, aff = load_volume(good)
    raw = good.read_bytes()
    (folder / "empty.nii.gz").write_bytes(b"")
    (folder / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    (folder / "notes.nii").write_text("not an image\n" * 50)
    save_nifti(folder / "flat.nii.gz", data[:, :, 10], aff)
    save_nifti(folder / "series.nii.gz", np.stack([data, data * 0.5], -1), aff)
    nan = data.copy()
    nan[5, 5, 5] = np.nan
    save_nifti(folder / "nan.nii.gz", nan, aff)
    hdr = nib.Nifti1Image(data, aff).header
    hdr.set_qform(None, code=0)
    hdr["srow_x"] = [0, 0, 0, 1]
    nib.save(nib.Nifti1Image(data, None, header=hdr), str(folder / "zero_scale.nii.gz"))
    return {
        "empty.nii.gz": "empty file",
        "truncated.nii.gz": "truncated or corrupt",
        "notes.nii": "not a recognised image",
        "flat.nii.gz": "2D image",
        "series.nii.gz": "4D series of 2 volumes",
        "nan.nii.gz": "non-finite",
        "zero_scale.nii.gz": "zero voxel scale",
        "missing.nii.gz": "file not found",
    }


def test_bad_inputs_are_reported_and_good_ones_prepared(tmp_path, cohort, demo_geom):
    src = tmp_path / "src"
    src.mkdir()
    for p in cohort[:2]:
        shutil.copy(p, src / p.name)
    (src / "README.md").write_text("ignored: not a volume suffix")
    expected = _bad_files(src, cohort[0])
    out = tmp_path / "ds"
    report = prepare_dataset([src, tmp_path / "missing.nii.gz"], out, demo_geom, workers=1, progress=False)
    got = {os.path.basename(e["source"]): e["error"] for e in report.errors}
    assert set(got) == set(expected)
    for name, msg in expected.items():
        assert msg in got[name] and "\n" not in got[name]
    assert json.loads((out / "errors.json").read_text()) == report.errors
    assert report.total == 2 and report.ignored == 1 and report.exit_code() == 0 and report.exit_code(strict=True) == 1
    arr = np.load(out / "volumes.npy", mmap_mode="r")
    assert arr.shape == (2, 1, *DEMO_SHAPE) and arr.dtype == np.float16
    manifest = load_manifest(out)
    assert [v["name"] for v in manifest["volumes"]] == ["sub-000.nii.gz", "sub-001.nii.gz"]
    assert (out / "preview.png").stat().st_size > 1000
    # the stored volume equals prepare_array on the source, to float16 precision
    data, aff = load_volume(cohort[1])
    ref, info = prepare_array(data, aff, demo_geom)
    np.testing.assert_allclose(arr[1, 0].astype(np.float32), ref, atol=1e-3)
    rec = manifest["volumes"][1]
    assert rec["target_affine"] == info["target_affine"] and rec["orig_shape"] == list(data.shape)
    assert rec["intensity"] == info["intensity"] and rec["source"] == str(src / "sub-001.nii.gz")
    # 4D series: choosing a volume makes it usable (a new dataset: the option is part of the settings)
    r4 = prepare_dataset([src / "series.nii.gz"], tmp_path / "ds4", demo_geom, volume_index=1, progress=False)
    assert r4.total == 1 and not r4.errors


def test_rerun_skips_unchanged_appends_new_and_replaces_changed(tmp_path, cohort, demo_geom):
    src = tmp_path / "src"
    src.mkdir()
    for p in cohort[:2]:
        shutil.copy(p, src / p.name)
    out = tmp_path / "ds"
    first = prepare_dataset([src], out, demo_geom, workers=1, progress=False)
    assert len(first.prepared) == 2
    assert sorted(p.name for p in out.iterdir()) == ["errors.json", "manifest.json", "preview.png", "volumes.npy"]
    before = np.load(out / "volumes.npy").copy()
    stamp = (out / "volumes.npy").stat().st_mtime_ns, (out / "manifest.json").read_text()
    again = prepare_dataset([src], out, demo_geom, workers=1, progress=False)
    assert again.prepared == [] and len(again.unchanged) == 2 and again.total == 2
    assert ((out / "volumes.npy").stat().st_mtime_ns, (out / "manifest.json").read_text()) == stamp
    # a new file is appended, existing rows are untouched; a copy of known content is a duplicate
    shutil.copy(cohort[2], src / cohort[2].name)
    shutil.copy(cohort[0], src / "copy-of-000.nii.gz")
    third = prepare_dataset([src], out, demo_geom, workers=1, progress=False)
    assert [os.path.basename(p) for p in third.prepared] == ["sub-002.nii.gz"]
    assert [os.path.basename(d["source"]) for d in third.duplicates] == ["copy-of-000.nii.gz"]
    arr = np.load(out / "volumes.npy")
    assert arr.shape[0] == 3
    np.testing.assert_array_equal(arr[:2], before)
    # changed content at a known path replaces its record in place
    shutil.copy(cohort[3], src / "sub-001.nii.gz")
    fourth = prepare_dataset([src], out, demo_geom, workers=1, progress=False)
    names = [v["name"] for v in load_manifest(out)["volumes"]]
    assert names == ["sub-000.nii.gz", "sub-001.nii.gz", "sub-002.nii.gz"] and len(fourth.prepared) == 1
    assert not np.array_equal(np.load(out / "volumes.npy")[1], before[1])
    # swapping two files swaps their rows (content already prepared is reused, not recomputed)
    rows = np.load(out / "volumes.npy")
    a, b = (src / "sub-000.nii.gz").read_bytes(), (src / "sub-002.nii.gz").read_bytes()
    (src / "sub-000.nii.gz").write_bytes(b)
    (src / "sub-002.nii.gz").write_bytes(a)
    swapped = prepare_dataset([src], out, demo_geom, workers=1, progress=False)
    np.testing.assert_array_equal(np.load(out / "volumes.npy"), rows[[2, 1, 0]])
    assert swapped.total == 3 and len(swapped.prepared) == 2
    assert not (out / ".parts").exists()  # every finished run removes its resume cache
    assert [os.path.basename(d["source"]) for d in swapped.duplicates] == ["copy-of-000.nii.gz"]
    with pytest.raises(UserError, match="different settings"):
        prepare_dataset([src], out, Geometry.from_shape([16, 16, 16], 8.0), workers=1, progress=False)


def test_killed_run_resumes_without_redoing_finished_files(tmp_path, cohort, demo_geom, monkeypatch):
    out = tmp_path / "ds"
    srcs = [str(p) for p in cohort[:3]]
    calls = []
    real = prep.prepare_array

    def dying(data, affine, geom, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies while preparing the third file
        return real(data, affine, geom, *args, **kwargs)

    monkeypatch.setattr(prep, "prepare_array", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(srcs, out, demo_geom, workers=1, progress=False)
    assert not (out / "volumes.npy").exists() and len(list((out / ".parts").glob("*.npy"))) == 2
    assert not [p for p in (out / ".parts").iterdir() if p.name.startswith(".")]  # no half-written part
    (out / ".parts" / ".abc.npy.x1y2.npy").write_bytes(b"half")  # what a SIGKILL mid-write leaves
    calls.clear()
    report = prepare_dataset(srcs, out, demo_geom, workers=1, progress=False)
    assert len(calls) == 1 and len(report.resumed) == 2 and len(report.prepared) == 1 and report.total == 3
    assert not (out / ".parts").exists()  # resumed, then the cache (and the stray temp file) removed


def test_failed_run_removes_empty_parts_folder(tmp_path, demo_geom):
    out = tmp_path / "ds"
    report = prepare_dataset([tmp_path / "missing.nii.gz"], out, demo_geom, workers=1, progress=False)
    assert report.total == 0 and len(report.errors) == 1
    assert sorted(p.name for p in out.iterdir()) == ["errors.json"]


def test_parallel_workers_give_identical_dataset(tmp_path, cohort, demo_geom, dataset):
    out = tmp_path / "ds"
    report = prepare_dataset([cohort[0].parent], out, demo_geom, workers=2, progress=False)
    assert report.total == 4
    np.testing.assert_array_equal(np.load(out / "volumes.npy"), np.load(dataset / "volumes.npy"))
    strip = {"source"}
    a = [{k: v for k, v in r.items() if k not in strip} for r in load_manifest(out)["volumes"]]
    b = [{k: v for k, v in r.items() if k not in strip} for r in load_manifest(dataset)["volumes"]]
    assert a == b


def test_path_list_and_mask_pattern(tmp_path, cohort, demo_geom):
    data, aff = load_volume(cohort[0])
    mask = np.zeros_like(data)
    mask[: data.shape[0] // 2] = 1  # right hemisphere removed
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(cohort[0], src / "a.nii.gz")
    save_nifti(src / "a_mask.nii.gz", mask.astype(np.uint8), aff)
    listing = tmp_path / "list.txt"
    listing.write_text("# scans\nsrc/a.nii.gz\n\n")
    out = tmp_path / "ds"
    report = prepare_dataset([listing], out, demo_geom, mask_pattern="{stem}_mask.nii.gz", workers=1, progress=False)
    assert report.total == 1 and not report.errors
    vol = np.load(out / "volumes.npy")[0, 0].astype(np.float32)
    target = np.asarray(load_manifest(out)["volumes"][0]["target_affine"])
    x = (target @ np.vstack([np.indices(vol.shape).reshape(3, -1), np.ones(vol.size)]))[0].reshape(vol.shape)
    assert vol[x > aff[0, 3] + aff[0, 0] * (data.shape[0] // 2) + 8].max() == 0
    assert vol[x < aff[0, 3] + aff[0, 0] * (data.shape[0] // 2) - 8].max() > 0.9


def test_cli_synth_then_prepare_with_a_corrupt_file(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    assert main(["synth", "--out", str(cohort), "--n", "2", "--spacing", "8", "--seed", "5", "--workers", "1"]) == 0
    assert sorted(p.name for p in cohort.iterdir()) == ["participants.csv", "sub-000.nii.gz", "sub-001.nii.gz"]
    (cohort / "broken.nii.gz").write_bytes((cohort / "sub-000.nii.gz").read_bytes()[:300])
    out = tmp_path / "ds"
    argv = ["prepare", str(cohort), "--out", str(out), "--preset", "demo", "--workers", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "prepared 2 new" in text and "1 failed" in text and "broken.nii.gz: truncated" in text
    assert np.load(out / "volumes.npy", mmap_mode="r").shape == (2, 1, *DEMO_SHAPE)
    with pytest.raises(SystemExit) as exc:  # --strict: same work, non-zero exit
        main([*argv, "--strict"])
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:  # nothing usable at all
        main(["prepare", str(cohort / "broken.nii.gz"), "--out", str(tmp_path / "none"), "--preset", "demo"])
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:
        main(["prepare", str(cohort), "--out", str(out), "--preset", "demo", "--shape", "8,8,8"])
    assert exc.value.code == 2 and "either --preset or --shape" in capsys.readouterr().err

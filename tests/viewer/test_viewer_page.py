"""Viewer pages without a browser: the pinned bundle, the embedded NIfTI (geometry and values as
nibabel reads them), offline self-containment, page size, folder layouts and the ``view`` command."""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.cli import run_err
from helpers.page import ODD_AFFINE, PLAIN_AFFINE, blob, embedded_images, page_data
from stylegan3d.cli.main import main
from stylegan3d.errors import UserError
from stylegan3d.viewer import NIIVUE_VERSION, Page, Section, Volume, render_page, write_page
from stylegan3d.viewer.build import page_for_paths
from stylegan3d.viewer.page import NIIVUE_SHA256

ROOT = Path(__file__).resolve().parents[2]
VENDOR = resources.files("stylegan3d.viewer").joinpath("vendor")


def test_vendored_niivue_is_pinned_licensed_and_packaged():
    bundle = VENDOR.joinpath("niivue.umd.js").read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == NIIVUE_SHA256
    assert NIIVUE_VERSION == "0.69.0"
    assert "BSD 2-Clause License" in VENDOR.joinpath("LICENSE.niivue").read_text()
    readme = VENDOR.joinpath("README.md").read_text()
    assert NIIVUE_VERSION in readme and NIIVUE_SHA256 in readme and "npm pack" in readme
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["stylegan3d"]
    assert "viewer/viewer.js" in data and "viewer/vendor/*" in data


def _one_page(tmp_path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    page = Page("one")
    i = page.add(Volume("v", data, affine))
    page.sections.append(Section("s", ["v"], [{"label": "", "vols": [i]}]))
    return write_page(page, tmp_path / "one.html")


def test_embedded_volume_keeps_geometry_and_values(tmp_path):
    data = blob((18, 20, 16), seed=3) * 1000 - 200  # negative values and a large range
    path = _one_page(tmp_path, data, ODD_AFFINE)
    (img,) = embedded_images(path)
    np.testing.assert_allclose(img.affine, ODD_AFFINE)
    assert int(img.header["sform_code"]) == 2 and int(img.header["qform_code"]) == 2
    np.testing.assert_allclose(img.get_qform(), ODD_AFFINE, atol=1e-5)
    assert img.get_data_dtype() == np.int16 and img.header.get_xyzt_units()[0] == "mm"
    step = float(img.dataobj.slope)
    assert step <= (data.max() - data.min()) / 65000
    np.testing.assert_allclose(img.get_fdata(), data, atol=step)
    doc = page_data(path)
    assert doc["volumes"][0]["shape"] == [18, 20, 16]
    lo, hi = doc["volumes"][0]["cal"]
    assert np.percentile(data, 0.4) <= lo <= np.percentile(data, 1) and hi == pytest.approx(np.percentile(data, 99.5))


def test_page_is_self_contained(tmp_path):
    text = _one_page(tmp_path, blob((8, 8, 8)), PLAIN_AFFINE).read_text()
    assert "<script src" not in text.replace(" ", "") and "<link" not in text
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", text)  # nothing fetched at view time
    assert "niivue" in text and len(text) > 2_000_000  # the bundle is inline


def test_eight_4mm_volumes_stay_under_10_mb(tmp_path):
    """The issue's size budget, on realistic brains (the synthetic MNI152 cohort at 4 mm)."""
    from stylegan3d.data.synth import synth_cohort

    files = synth_cohort(tmp_path / "cohort", 8, spacing=4.0, progress=False)
    assert nib.load(files[0]).shape[0] >= 40
    page = page_for_paths([tmp_path / "cohort"])
    assert len(page.volumes) == 8
    path = write_page(page, tmp_path / "viewer.html")
    assert path.stat().st_size < 10_000_000


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, PLAIN_AFFINE), str(path))


def test_folder_layouts_become_sections(tmp_path):
    shape = (6, 7, 8)
    proj = "demo/projection/sub-024"
    for name in ["gen/seed0000", "gen/seed0001", f"{proj}/target", f"{proj}/reconstruction"]:
        _save(blob(shape), tmp_path / f"{name}.nii.gz")
    for name in ["row_1", "row_2", "col_3", "mix_1_3", "mix_2_3"]:
        _save(blob(shape), tmp_path / "mix" / f"{name}.nii.gz")
    for i in range(3):
        _save(blob(shape), tmp_path / "interp" / f"frame_{i:04d}.nii.gz")
    _save(blob(shape), tmp_path / "demo" / "cohort" / "sub-000.nii.gz")  # not an output layout: left out
    page = page_for_paths([tmp_path / "gen", tmp_path / "mix", tmp_path / "interp", tmp_path / "demo"])
    got = [(s.title, s.control, s.slots, len(s.options)) for s in page.sections]
    assert got == [
        ("Samples gen", "none", ["seed0000", "seed0001"], 1),
        ("Style mixing mix", "grid", ["row source", "mixed", "column source"], 2),
        ("Interpolation interp", "slider", ["frame"], 3),
        ("Projection projection/sub-024", "none", ["target", "reconstruction", "|error|"], 1),
    ]
    mix = page.sections[1]
    assert [(o["row"], o["col"], o["label"]) for o in mix.options] == [(0, 0, "1 x 3"), (1, 0, "2 x 3")]


def test_samples_split_into_sections_of_eight(tmp_path):
    from stylegan3d.viewer.build import add_samples

    page = Page("many")
    add_samples(page, [f"s{i}" for i in range(10)], [blob((4, 4, 4), i) for i in range(10)], PLAIN_AFFINE)
    assert [s.title for s in page.sections] == ["Samples (1-8 of 10)", "Samples (9-10 of 10)"]
    assert [len(s.slots) for s in page.sections] == [8, 2]
    assert len({v.window for v in page.volumes}) == 1  # one window for all samples


def test_view_command_writes_page_and_prints_its_path(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii"
    _save(blob((6, 7, 8)), a)
    _save(blob((5, 5, 5)), b)
    monkeypatch.chdir(tmp_path)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or False)
    assert main(["view", str(a), str(b), "--open", "--title", "two files"]) == 0
    out, err = capsys.readouterr()
    page = tmp_path / "viewer.html"
    assert out.strip() == str(page.resolve())
    assert opened == [page.resolve().as_uri()] and err.startswith("note: no web browser")
    doc = page_data(page)
    assert doc["title"] == "two files" and [v["name"] for v in doc["volumes"]] == ["a.nii.gz", "b.nii"]


def test_view_bad_inputs_one_error_line_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"\x00" * 100)
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "arr.npy", np.zeros(3))
    (tmp_path / "flat.nii.gz").parent.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(tmp_path / "flat.nii.gz"))
    assert "not found" in run_err(["view", str(tmp_path / "missing.nii.gz")], capsys)
    assert "not a NIfTI volume or output folder" in run_err(["view", str(tmp_path / "notes.txt")], capsys)
    assert "not a NIfTI volume or output folder" in run_err(["view", str(tmp_path / "arr.npy")], capsys)
    assert "not a NIfTI volume" in run_err(["view", str(tmp_path / "corrupt.nii.gz")], capsys)
    assert "not a 3D volume" in run_err(["view", str(tmp_path / "flat.nii.gz")], capsys)
    assert "no NIfTI volumes" in run_err(["view", str(tmp_path / "empty")], capsys)
    assert "is a folder" in run_err(["view", str(tmp_path / "flat.nii.gz"), "--out", str(tmp_path)], capsys)
    assert not list(tmp_path.rglob("*.html"))  # nothing written on bad input


def test_page_without_volumes_is_an_error():
    with pytest.raises(UserError, match="no volumes"):
        render_page(Page("empty"))

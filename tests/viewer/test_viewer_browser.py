"""The viewer in a real headless browser: NiiVue loads the embedded volumes, draws them, and the
voxel under the crosshair reads back the value and world coordinate nibabel gives for it."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from helpers.page import ODD_AFFINE, PLAIN_AFFINE, blob, embedded_images, page_data, voxel, world
from stylegan3d.cli.main import main
from stylegan3d.fileio import atomic_path
from stylegan3d.viewer import Page, Section, Volume, write_page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # a guard against a hung browser only (each browser run has its own kill timeout); never a speed check
    pytest.mark.timeout(3000),
]


@pytest.fixture(scope="module")
def two_volume_page(tmp_path_factory):
    """Two volumes on different grids (one stored with flipped, permuted axes) side by side."""
    d = tmp_path_factory.mktemp("viewer-page")
    a, b = blob((18, 20, 16), seed=1), blob((20, 24, 28), seed=2)
    page = Page("crosshair test")
    ia, ib = page.add(Volume("odd", a, ODD_AFFINE)), page.add(Volume("plain", b, PLAIN_AFFINE))
    page.sections.append(Section("pair", ["odd", "plain"], [{"label": "", "vols": [ia, ib]}]))
    return write_page(page, d / "pair.html"), a, b


def _check_panel(panel: dict, img, original: np.ndarray, mm: np.ndarray) -> None:
    """The panel's crosshair readout agrees with nibabel: voxel = inverse affine of the world point,
    value = the volume's voxel there, world coordinate = the crosshair position."""
    ijk = voxel(img.affine, mm)
    assert panel["vox"] == ijk
    np.testing.assert_allclose(panel["mm"], mm, atol=1e-3)
    stored = img.get_fdata(dtype=np.float32)[tuple(ijk)]
    slope = float(img.dataobj.slope)  # the 16-bit step of the stored volume
    assert panel["value"] == pytest.approx(stored, abs=1e-4 * slope + 1e-6)  # what the file holds
    assert panel["value"] == pytest.approx(original[tuple(ijk)], abs=slope)  # within the 16-bit step


def test_crosshair_reads_back_voxel_value_and_world_coordinate(browser, two_volume_page):
    page, a, b = two_volume_page
    imgs = embedded_images(page)
    np.testing.assert_allclose(imgs[0].affine, ODD_AFFINE)
    ijk = (4, 13, 10)  # world (-8, -50, 54): also a voxel centre of the plain grid, no rounding tie
    mm = world(ODD_AFFINE, ijk)
    status = browser.status(page, "mm=" + ",".join(f"{x:g}" for x in mm))
    assert [p["name"] for p in status["panels"]] == ["odd.nii.gz", "plain.nii.gz"]
    odd, plain = status["panels"]
    assert odd["vox"] == list(ijk)
    _check_panel(odd, imgs[0], a, mm)
    _check_panel(plain, imgs[1], b, mm)  # linked crosshair: same world point, its own voxel


def test_screenshot_shows_the_volumes(browser, two_volume_page, tmp_path):
    page, _, _ = two_volume_page
    shot = browser.screenshot(page, tmp_path / "shot.png", size="1000,700")
    rgb = imread(shot)[..., :3]
    gray = rgb.mean(axis=2)
    # the viewers' canvases are black with grey anatomy; the page around them is dark grey (#111)
    assert gray.std() > 0.05, "screenshot is blank"
    bright = gray > 0.3
    assert bright.mean() > 0.01, "no volume drawn"
    greyish = np.abs(rgb[..., 0] - rgb[..., 2]) < 0.05
    assert (bright & greyish).sum() > 2000, "no grey-scale anatomy in the screenshot"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A folder laid out as generate / project / mix / interpolate write theirs (8 mm volumes)."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("viewer-run")
    shape = (20, 24, 28)

    def save(arr, path):
        img = nib.Nifti1Image(arr, PLAIN_AFFINE)
        img.set_sform(PLAIN_AFFINE, code=4)
        with atomic_path(path, suffix=".nii.gz") as tmp:
            nib.save(img, str(tmp))

    vols = {}
    for name, seed in [("gen/seed0000", 0), ("gen/seed0001", 1), ("proj/target", 2), ("proj/reconstruction", 3)]:
        vols[name] = blob(shape, seed)
    for r in ("1", "2"):
        vols[f"mix/row_{r}"] = blob(shape, 10 + int(r))
        for c in ("3", "4"):
            vols[f"mix/mix_{r}_{c}"] = blob(shape, 20 + 3 * int(r) + int(c))
    for c in ("3", "4"):
        vols[f"mix/col_{c}"] = blob(shape, 30 + int(c))
    for i in range(3):
        vols[f"interp/frame_{i:04d}"] = blob(shape, 40 + i) * (1 + i)
    for name, arr in vols.items():
        save(arr, root / f"{name}.nii.gz")
    return root, vols


def _section(doc: dict, title_start: str) -> int:
    return next(i for i, s in enumerate(doc["sections"]) if s["title"].startswith(title_start))


IJK = (7, 15, 11)
"""Voxel of the run folder's 8 mm grid the crosshair is put on."""


@pytest.fixture(scope="module")
def run_page(run_folder):
    """``stylegan3d view RUN`` -> RUN/viewer.html, its data document and the crosshair fragment for IJK."""
    root, vols = run_folder
    assert main(["view", str(root)]) == 0
    page = root / "viewer.html"
    mm = world(PLAIN_AFFINE, IJK)
    return page, page_data(page), vols, "mm=" + ",".join(f"{x:g}" for x in mm)


def test_view_prints_the_page_path(run_folder, capsys):
    root, _ = run_folder
    assert main(["view", str(root), "--out", str(root / "again.html")]) == 0
    assert capsys.readouterr().out.strip() == str((root / "again.html").resolve())


def _tol(arr: np.ndarray) -> float:
    return float(2e-4 * (arr.max() - arr.min()))


def test_mixing_cell_row_and_column_sources_under_the_crosshair(browser, run_page):
    page, doc, vols, at = run_page
    mix = _section(doc, "Style mixing")
    status = browser.status(page, f"section={mix}&option=3&{at}")  # option 3: row 2 x column 4
    assert status["section"] == mix and status["option"] == 3
    expected = [vols["mix/row_2"], vols["mix/mix_2_4"], vols["mix/col_4"]]
    assert [p["vox"] for p in status["panels"]] == [list(IJK)] * 3
    for panel, arr in zip(status["panels"], expected, strict=True):
        assert panel["value"] == pytest.approx(arr[IJK], abs=_tol(arr))


def test_projection_target_reconstruction_error_share_the_crosshair(browser, run_page):
    page, doc, vols, at = run_page
    proj = _section(doc, "Projection")
    status = browser.status(page, f"section={proj}&{at}")
    t, r = float(vols["proj/target"][IJK]), float(vols["proj/reconstruction"][IJK])
    assert [p["vox"] for p in status["panels"]] == [list(IJK)] * 3
    assert [p["value"] for p in status["panels"]] == pytest.approx([t, r, abs(t - r)], abs=1e-3)


def test_interpolation_slider_frame_under_the_crosshair(browser, run_page):
    page, doc, vols, at = run_page
    interp = _section(doc, "Interpolation")
    status = browser.status(page, f"section={interp}&option=2&{at}")
    (panel,) = status["panels"]
    assert panel["name"] == "frame_0002.nii.gz" and panel["vox"] == list(IJK)
    arr = vols["interp/frame_0002"]
    assert panel["value"] == pytest.approx(arr[IJK], abs=_tol(arr))

"""Per-volume preparation: geometry, resampling maths, affine round trip, reorientation, scaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from stylegan3d.config import load_preset
from stylegan3d.data.spatial import MNI_CENTRE_MM, Geometry, prepare_array, reorient_ras, resample_to
from stylegan3d.errors import DataError, UserError


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return r


def _phantom(shape=(60, 70, 50), seed=0) -> np.ndarray:
    """An asymmetric smooth 'head' (ellipsoid with texture) on a zero background."""
    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(np.float32)
    c = (np.asarray(shape) - 1) / 2.0 + [3, -4, 2]
    r = np.asarray(shape) * [0.35, 0.3, 0.38]
    inside = (((idx - c[:, None, None, None]) / r[:, None, None, None]) ** 2).sum(0) < 1.0
    texture = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 2.0)
    return (inside * (100.0 + 400.0 * texture + 2.0 * idx[0])).astype(np.float32)


def test_geometry_from_preset_is_the_mni_grid():
    g = Geometry.from_preset(load_preset("2mm-f96").model)
    assert g.shape == [80, 96, 112] and g.spacing == [2.0, 2.0, 2.0] and g.frame == "centre"
    centre = g.affine @ np.append(np.asarray(g.shape) // 2, 1.0)
    np.testing.assert_allclose(centre[:3], MNI_CENTRE_MM)
    np.testing.assert_allclose(np.diag(g.affine)[:3], 2.0)
    # the 160 x 192 x 224 mm field of view holds the MNI brain's bounding box (-72..72, -107..73, -72..82)
    lo, hi = g.affine[:3, 3], (g.affine @ np.append(np.asarray(g.shape) - 1, 1.0))[:3]
    assert np.all(lo < [-72, -107, -72]) and np.all(hi > [72, 73, 82])
    assert Geometry.from_preset("2mm-f96", frame="mni").to_dict() == {**g.to_dict(), "frame": "mni"}
    with pytest.raises(UserError):
        Geometry.from_shape([80, 96], 2.0)
    with pytest.raises(UserError):
        Geometry.from_shape([80, 96, 112], 2.0, frame="native")


def test_resample_identity_and_linear_exactness():
    rng = np.random.default_rng(1)
    a = rng.random((9, 10, 11)).astype(np.float32)
    aff = np.diag([2.0, 3.0, 1.5, 1.0])
    aff[:3, 3] = [5, -7, 3]
    np.testing.assert_allclose(resample_to(a, aff, aff, a.shape), a, atol=1e-6)
    # trilinear interpolation reproduces a linear function at any interior point
    i, j, k = np.indices((20, 20, 20)).astype(np.float32)
    ramp = 0.5 * i - 0.25 * j + 2.0 * k
    src = np.diag([1.0, 1.0, 1.0, 1.0])
    dst = src @ _rot_z(17.0)
    dst[:3, :3] *= 0.7
    dst[:3, 3] = [4.0, 6.0, 3.0]
    out = resample_to(ramp, src, dst, (8, 8, 8), antialias=False)
    pts = dst @ np.vstack([np.indices((8, 8, 8)).reshape(3, -1), np.ones(512)])
    expect = (0.5 * pts[0] - 0.25 * pts[1] + 2.0 * pts[2]).reshape(8, 8, 8)
    np.testing.assert_allclose(out, expect, atol=1e-4)


def test_downsampling_is_antialiased():
    checker = (np.indices((64, 64, 64)).sum(0) % 2).astype(np.float32)  # Nyquist pattern, mean 0.5
    src = np.eye(4)
    dst = np.diag([3.0, 3.0, 3.0, 1.0])
    dst[:3, 3] = 8.0
    aliased = resample_to(checker, src, dst, (16, 16, 16), antialias=False)  # point samples: all 0 or 1
    filtered = resample_to(checker, src, dst, (16, 16, 16), antialias=True)  # sigma 1: Nyquist gain ~exp(-4.9)
    assert aliased.std() > 0.45
    assert filtered.std() < 0.02 and abs(filtered.mean() - 0.5) < 0.02


def test_reorient_ras_keeps_world_positions():
    a = _phantom((12, 14, 10))
    aff = np.diag([-2.0, -1.5, 3.0, 1.0])
    aff[:3, 3] = [20, 30, -10]
    perm = aff[:, [2, 0, 1, 3]]  # axes stored as (z, x, y)
    data = np.transpose(a, (2, 0, 1))
    out, aff_r = reorient_ras(data, perm)
    assert np.all(np.diag(aff_r)[:3] > 0) and np.count_nonzero(aff_r[:3, :3]) == 3
    v = np.array([3, 5, 7])  # a voxel of ``out`` and the same world point in the original
    world = aff_r @ np.append(v, 1)
    orig = np.linalg.solve(aff, world)[:3].round().astype(int)
    assert out[tuple(v)] == a[tuple(orig)]


@pytest.mark.parametrize("frame", ["centre", "mni"])
def test_affine_round_trip_within_half_a_voxel(frame):
    """A bright spot keeps its world position: the prepared volume's peak/centroid maps back within 0.5 voxel."""
    data = _phantom()
    spot = np.array([38.3, 29.6, 27.2])  # voxel position (sub-voxel) of a small bright ball
    idx = np.indices(data.shape)
    data += 3000.0 * np.exp(-(((idx - spot[:, None, None, None]) ** 2).sum(0)) / (2 * 1.0**2))
    # an oblique, LPS-stored acquisition with anisotropic voxels
    aff = _rot_z(12.0) @ np.diag([-1.3, -1.1, 1.6, 1.0])
    aff[:3, 3] = [40.0, 60.0, -40.0]
    geom = Geometry.from_shape([24, 28, 22], 3.0, frame=frame)
    out, info = prepare_array(data, aff, geom, lower_pct=0.0, upper_pct=100.0)
    target = np.asarray(info["target_affine"])
    if frame == "mni":
        np.testing.assert_array_equal(target, geom.affine)
    world_spot = (aff @ np.append(spot, 1.0))[:3]
    peak = np.array(np.unravel_index(np.argmax(out), out.shape))
    lo = np.maximum(peak - 3, 0)
    win = out[lo[0] : peak[0] + 4, lo[1] : peak[1] + 4, lo[2] : peak[2] + 4]
    w = np.clip(win - np.median(win), 0, None) ** 2
    centroid = lo + (np.indices(win.shape) * w).reshape(3, -1).sum(1) / w.sum()
    for vox in (peak, centroid):
        back = np.linalg.solve(target, np.append(world_spot, 1.0))[:3]
        assert np.all(np.abs(back - vox) <= 0.5), (frame, vox, back)


@pytest.mark.parametrize("frame", ["centre", "mni"])
def test_lps_and_flipped_inputs_prepare_like_ras(frame):
    ras = _phantom()
    aff = np.diag([1.2, 1.0, 1.4, 1.0])
    aff[:3, 3] = [-35.0, -52.0, -20.0]
    n = np.asarray(ras.shape) - 1
    lps = ras[::-1, ::-1, :]  # same world positions with the first two axes flipped
    aff_lps = aff @ np.array([[-1, 0, 0, n[0]], [0, -1, 0, n[1]], [0, 0, 1, 0], [0, 0, 0, 1]])
    swapped = np.transpose(ras, (1, 2, 0))[:, ::-1, :]  # (y, z flipped, x)
    aff_sw = aff[:, [1, 2, 0, 3]] @ np.array([[1, 0, 0, 0], [0, -1, 0, n[2]], [0, 0, 1, 0], [0, 0, 0, 1]])
    geom = Geometry.from_shape([32, 36, 30], 2.0, frame=frame)
    ref, ref_info = prepare_array(ras, aff, geom)
    assert ref.max() == 1.0 and ref.std() > 0.1
    for d, a in ((lps, aff_lps), (swapped, aff_sw)):
        out, info = prepare_array(d, a, geom)
        np.testing.assert_allclose(out, ref, atol=1e-5)
        np.testing.assert_allclose(info["target_affine"], ref_info["target_affine"], atol=1e-9)


def test_centre_frame_centres_the_foreground():
    data = _phantom()
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [500.0, -300.0, 80.0]  # far from the MNI grid: only the centre frame sees it
    geom = Geometry.from_shape([40, 48, 40], 2.0, frame="centre")
    out, info = prepare_array(data, aff, geom)
    fg = np.argwhere(out > 0)
    box_centre = (fg.min(0) + fg.max(0)) / 2.0
    np.testing.assert_allclose(box_centre, np.asarray(geom.shape) // 2, atol=1.5)
    with pytest.raises(DataError, match="no foreground"):
        prepare_array(data, aff, Geometry.from_shape([40, 48, 40], 2.0, frame="mni"))


def test_intensity_scaling_and_masks():
    data = _phantom()
    aff = np.eye(4)
    geom = Geometry.from_shape([30, 36, 26], 2.0)
    out, info = prepare_array(data, aff, geom, lower_pct=1.0, upper_pct=99.0)
    assert out.dtype == np.float32 and out.shape == (30, 36, 26)
    assert out.min() == 0.0 and out.max() == 1.0
    nz = out[out > 0]
    assert 0.005 < np.mean(nz == 1.0) < 0.02  # ~1 % of the foreground saturates at the upper percentile
    assert info["intensity"]["lo"] < info["intensity"]["hi"]
    assert info["orig_shape"] == list(data.shape) and info["orig_spacing"] == [1.0, 1.0, 1.0]
    thr, _ = prepare_array(data, aff, geom, lower_pct=1.0, upper_pct=99.0, mask=0.4)
    assert not np.any((thr > 0) & (thr < 0.4))
    np.testing.assert_array_equal(thr[thr >= 0.4], out[out >= 0.4])
    half = np.zeros(data.shape, np.float32)
    half[: data.shape[0] // 2] = 1.0
    masked, minfo = prepare_array(data, aff, geom, mask=half)
    grid = np.vstack([np.indices(out.shape).reshape(3, -1), np.ones(out.size)])
    x_world = (np.asarray(minfo["target_affine"]) @ grid)[0].reshape(out.shape)  # source voxel x (identity affine)
    right = x_world > data.shape[0] / 2 + 1
    assert np.all(masked[right] == 0) and masked[~right].max() == 1.0
    with pytest.raises(DataError, match="constant intensity"):
        prepare_array(np.full((10, 10, 10), 5.0, np.float32), aff, Geometry.from_shape([8, 8, 8], 1.0))
    with pytest.raises(DataError, match="non-finite"):
        prepare_array(np.full((10, 10, 10), np.nan, np.float32), aff, geom)

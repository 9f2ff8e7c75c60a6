import numpy as np
import pytest
import torch

from stylegan3d.metrics import features3d, inception
from stylegan3d.metrics.frechet import frechet_distance_features
from stylegan3d.metrics.volumes import VolumeSet


def _coords(n: int = 2, shape=(6, 7, 8)) -> torch.Tensor:
    """Volumes whose value encodes the voxel index: 10000*i + 100*j + k (+ 1e6 * sample)."""
    i, j, k = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij")
    base = 10000 * i + 100 * j + k
    return torch.stack([base + 1e6 * s for s in range(n)])[:, None]


def test_reference_slice_is_the_middle_of_the_first_axis():
    v = _coords()
    sl = inception.reference_slices(v)
    assert sl.shape == (2, 7, 8)
    assert torch.equal(sl, v[:, 0, 3])


def test_triplanar_slices_geometry_and_orientation():
    v = _coords(shape=(6, 7, 8))
    planes = inception.triplanar_slices(v, 1)
    axial, coronal, sagittal = planes["axial"], planes["coronal"], planes["sagittal"]
    assert axial.shape == (2, 1, 7, 6) and coronal.shape == (2, 1, 8, 6) and sagittal.shape == (2, 1, 8, 7)
    # axial (fixed k = W // 2): row 0 = most anterior j, column 0 = leftmost i
    assert axial[0, 0, 0, 0] == 10000 * 0 + 100 * 6 + 4
    assert axial[0, 0, 6, 5] == 10000 * 5 + 100 * 0 + 4
    # coronal (fixed j): row 0 = most superior k; sagittal (fixed i): columns run posterior->anterior
    assert coronal[1, 0, 0, 0] == 1e6 + 100 * 3 + 7
    assert sagittal[0, 0, 0, 6] == 10000 * 3 + 100 * 6 + 7


def test_slice_positions_are_central_and_symmetric():
    assert inception.slice_positions(112, 1) == [56]
    pos = inception.slice_positions(112, 3)
    assert pos[1] in (55, 56) and pos[0] + pos[2] == 111
    assert min(pos) >= 0.3 * 112 - 1 and max(pos) <= 0.7 * 112
    assert len(set(inception.slice_positions(20, 5))) == 5


def test_prepare_images_scaling_and_aspect():
    img = torch.ones(1, 20, 10)
    x = inception.prepare_images(img)
    assert x.shape == (1, 3, 299, 299)
    assert x.max().item() == pytest.approx(0.9921875)  # 1 * 1.9921875 - 1
    assert x.min().item() == pytest.approx(-1.0)  # zero padding on the short side
    assert x[0, 0, 150, 150].item() == pytest.approx(0.9921875) and x[0, 0, 150, 5].item() == pytest.approx(-1.0)


def test_inception_pool_features_are_real_and_deterministic():
    rng = np.random.default_rng(0)
    imgs = torch.from_numpy(rng.random((3, 24, 28)).astype(np.float32))
    f1 = inception.image_features(imgs)
    f2 = inception.image_features(imgs)
    assert f1.shape == (3, inception.FEATURE_DIM) and np.isfinite(f1).all()
    assert (f1 >= 0).all() and f1.std() > 0  # average-pooled ReLU outputs
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    assert frechet_distance_features(f1, f1) == pytest.approx(0.0, abs=1e-6)
    # Different content -> different features.
    assert np.abs(inception.image_features(imgs * 0.3) - f1).max() > 0.1


def test_deepbet_encoder_stages_and_feature_vector():
    enc = features3d.load_encoder("cpu", features3d.STAGES)
    rng = np.random.default_rng(0)
    vol = torch.from_numpy(rng.random((1, 1, 20, 24, 28)).astype(np.float32))
    x = features3d.normalise(vol)
    assert x.shape == (1, 1, 80, 96, 112)
    assert x.mean().item() == pytest.approx(0.449, abs=1e-4) and x.std().item() == pytest.approx(0.226, abs=1e-3)
    act = getattr(enc.net.conv, "2")
    h = x
    shapes = []
    with torch.no_grad():
        for name in features3d.STAGES:
            h = getattr(enc.net, name)(act, h)
            shapes.append(tuple(h.shape[1:]))
        f = enc(x)
    assert shapes[-1] == (128, 3, 3, 4) and shapes[-2] == (64, 5, 6, 7)
    assert f.shape == (1, sum(features3d.STAGE_CHANNELS.values())) == (1, 256)
    torch.testing.assert_close(f[:, -128:], h.mean(dim=(2, 3, 4)))


def test_deepbet_features_ignore_global_brightness():
    rng = np.random.default_rng(1)
    vols = rng.random((2, 1, 20, 24, 28)).astype(np.float32)
    f = features3d.volume_features(VolumeSet(vols))
    g = features3d.volume_features(VolumeSet(vols * 0.5))
    np.testing.assert_allclose(f, g, rtol=1e-3, atol=1e-4)
    assert np.abs(f[0] - f[1]).max() > 1e-3

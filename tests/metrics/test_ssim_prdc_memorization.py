import numpy as np
import pytest
import torch
from monai.metrics import MultiScaleSSIMMetric

from stylegan3d.errors import UserError
from stylegan3d.metrics.memorization import memorisation_report
from stylegan3d.metrics.prdc import prdc, prdc_terms
from stylegan3d.metrics.ssim import ms_ssim, ms_ssim_settings, pairwise_ms_ssim, random_pairs
from stylegan3d.metrics.volumes import VolumeSet

# ---------------------------------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize(
    "shape, scales, kernel",
    [((80, 96, 112), 5, 5), ((40, 48, 56), 3, 9), ((20, 24, 28), 3, 5), ((160, 192, 224), 5, 9), ((10, 12, 14), 2, 5)],
)
def test_ms_ssim_settings_follow_volume_size(shape, scales, kernel):
    s, k, w = ms_ssim_settings(shape)
    assert (s, k) == (scales, kernel)
    assert len(w) == s and sum(w) == pytest.approx(1.0)
    # MONAI's own size check, which rejects its defaults below 160 voxels per side:
    assert min(shape) // max(1, s - 1) ** 2 > k - 1


def test_monai_defaults_refuse_2mm_volumes():
    x = torch.zeros(1, 1, 80, 96, 112)
    with pytest.raises(ValueError):
        MultiScaleSSIMMetric(spatial_dims=3)(x, x)


def test_too_small_volume_is_a_user_error():
    with pytest.raises(UserError):
        ms_ssim_settings((2, 8, 8))


@pytest.mark.parametrize("shape", [(20, 24, 28), (40, 48, 56)])
def test_identical_pair_is_one(shape):
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((1, 1, *shape)).astype(np.float32))
    smooth = torch.nn.functional.avg_pool3d(base, 3, stride=1, padding=1)
    assert ms_ssim(smooth, smooth).item() == pytest.approx(1.0, abs=1e-5)


def test_noise_lowers_ms_ssim_monotonically():
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 20, 24, 28, generator=gen)
    smooth = torch.nn.functional.avg_pool3d(base, 3, stride=1, padding=1)
    noise = torch.randn(smooth.shape, generator=gen)
    noisy = [(smooth + s * noise).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    values = ms_ssim(smooth.expand(3, -1, -1, -1, -1), torch.cat(noisy)).tolist()
    assert 1.0 > values[0] > values[1] > values[2]
    assert ms_ssim(noisy[1], smooth).item() == pytest.approx(values[1], abs=1e-5)


def test_random_pairs_are_distinct_and_capped():
    rng = np.random.default_rng(0)
    p = random_pairs(6, 100, rng)
    assert len(p) == 15 and (p[:, 0] < p[:, 1]).all()
    assert len({tuple(x) for x in p}) == 15
    assert len(random_pairs(10, 7, rng)) == 7
    vs = VolumeSet(np.stack([np.full((1, 12, 12, 12), v, np.float32) for v in (0.2, 0.2, 0.7)]))
    vals = pairwise_ms_ssim(vs, np.array([[0, 1], [0, 2]]))
    assert vals[0] == pytest.approx(1.0, abs=1e-6) and vals[1] < 0.9


# ------------------------------------------------------------------------------------------- PRDC


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    def radius(x: np.ndarray, i: int) -> float:
        d = sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)
        return d[k - 1]

    rr = [radius(real, i) for i in range(len(real))]
    rf = [radius(fake, j) for j in range(len(fake))]
    dist = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    precision = np.mean([any(dist(y, x) <= r for x, r in zip(real, rr, strict=True)) for y in fake])
    recall = np.mean([any(dist(x, y) <= r for y, r in zip(fake, rf, strict=True)) for x in real])
    density = sum(dist(y, x) <= r for y in fake for x, r in zip(real, rr, strict=True)) / (k * len(fake))
    coverage = np.mean([min(dist(x, y) for y in fake) <= r for x, r in zip(real, rr, strict=True)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_matches_brute_force_definition():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 5))
    fake = rng.normal(size=(25, 5)) * 1.3 + 0.4
    for k in (1, 3, 5):
        got = prdc(real, fake, k)
        ref = _brute_prdc(real, fake, k)
        for name in ref:
            assert got[name] == pytest.approx(ref[name], abs=1e-12), (name, k)


def test_prdc_extremes_and_terms():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(20, 4))
    same = prdc(real, real.copy(), 3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(real, real + 100.0, 3)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    t = prdc_terms(real, real[:10] + 0.01, 3)
    assert t["precision"].shape == (10,) and t["recall"].shape == (20,)
    with pytest.raises(ValueError):
        prdc(real[:3], real, 3)


# ---------------------------------------------------------------------------------- memorisation


def test_memorisation_finds_copies_and_their_names():
    rng = np.random.default_rng(0)
    train = rng.random((6, 1, 4, 5, 6))
    queries = np.stack([train[3] + 0.001 * rng.normal(size=train[3].shape), train[5], rng.random((1, 4, 5, 6))])
    allv = np.concatenate([queries, train]).reshape(9, -1)
    gram = allv @ allv.T
    names = [f"sub-{i}" for i in range(6)]
    rep = memorisation_report(gram, np.arange(3), 3 + np.arange(6), allv.shape[1], ["a", "b", "c"], names)
    vox = allv.shape[1]
    d = np.sqrt(((allv[:3, None] - allv[None, 3:]) ** 2).sum(-1) / vox)
    pairs = np.sqrt(((allv[3:, None] - allv[None, 3:]) ** 2).sum(-1) / vox)
    assert rep["threshold"] == pytest.approx(pairs[np.triu_indices(6, 1)].min(), rel=1e-9)
    np.testing.assert_allclose(rep["distance"], d.min(axis=1), atol=1e-7)
    assert [s["nearest"] for s in rep["samples"][:2]] == ["sub-3", "sub-5"]
    assert rep["samples"][1]["distance"] == pytest.approx(0.0, abs=1e-6)
    assert rep["closer"].tolist() == [True, True, False]

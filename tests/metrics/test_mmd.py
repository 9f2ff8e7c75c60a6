import numpy as np
import pytest
import torch
from monai.metrics import MMDMetric

from stylegan3d.metrics.mmd import bmmd2, bmmd2_gram, cross_gram, gram_matrix, linear_mmd2, mmd2_unbiased_gram
from stylegan3d.metrics.volumes import VolumeSet


def _vols(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.random((n, 1, 5, 6, 7)) * 0.8 + shift, 0, 1).astype(np.float32)


def _kernel_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Biased linear-kernel MMD^2 written as explicit kernel sums (the textbook definition)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    kxx = sum(float(a @ b) for a in x for b in x) / len(x) ** 2
    kyy = sum(float(a @ b) for a in y for b in y) / len(y) ** 2
    kxy = sum(float(a @ b) for a in x for b in y) / (len(x) * len(y))
    return kxx + kyy - 2 * kxy


def test_bmmd2_matches_direct_kernel_computation():
    x, y = _vols(0, 12), _vols(1, 12, shift=0.1)
    # 12 volumes, batch 4: three consecutive batch pairs, averaged.
    expected = np.mean([_kernel_mmd2(x[i : i + 4], y[i : i + 4]) for i in (0, 4, 8)])
    assert bmmd2(x, y, batch=4) == pytest.approx(expected, rel=1e-9)
    assert linear_mmd2(x, y) == pytest.approx(_kernel_mmd2(x, y), rel=1e-9)
    assert bmmd2(x, x, batch=4) == pytest.approx(0.0, abs=1e-9)


def test_unbiased_linear_mmd_agrees_with_monai():
    x, y = _vols(2, 6), _vols(3, 5, shift=0.05)
    ours = linear_mmd2(x, y, unbiased=True)
    # MONAI needs equal shapes after flattening; compare on equal-size sets.
    y6 = _vols(3, 6, shift=0.05)
    monai = MMDMetric()(torch.from_numpy(x).double(), torch.from_numpy(y6).double()).item()
    assert linear_mmd2(x, y6, unbiased=True) == pytest.approx(monai, rel=1e-6)
    both = np.concatenate([x, y6]).reshape(12, -1).astype(np.float64)
    assert mmd2_unbiased_gram(both @ both.T, np.arange(6), 6 + np.arange(6)) == pytest.approx(monai, rel=1e-6)
    # The U-statistic removes the self-similarity terms: it equals the biased value minus them.
    xf, yf = x.reshape(6, -1).astype(np.float64), y.reshape(5, -1).astype(np.float64)
    kxx, kyy = xf @ xf.T, yf @ yf.T
    corr_x = (np.trace(kxx) / 6 - (kxx.sum() - np.trace(kxx)) / (6 * 5)) / 6
    corr_y = (np.trace(kyy) / 5 - (kyy.sum() - np.trace(kyy)) / (5 * 4)) / 5
    assert linear_mmd2(x, y) == pytest.approx(ours + corr_x + corr_y, rel=1e-9)


def test_gram_blocks_and_bmmd2_from_gram():
    x, y = _vols(4, 10), _vols(5, 7, shift=0.1)
    vx, vy = VolumeSet(x), VolumeSet(y)
    flat = np.concatenate([x, y]).reshape(17, -1).astype(np.float64)
    g = gram_matrix(VolumeSet(np.concatenate([x, y])), chunk=3)
    np.testing.assert_allclose(g, flat @ flat.T, rtol=1e-12)
    np.testing.assert_allclose(cross_gram(vx, [vx, vy], chunk=4), flat[:10] @ flat.T, rtol=1e-12)
    # bmmd2_gram shuffles both index lists with rng, then cuts batches; reproduce that directly.
    got = bmmd2_gram(g, np.arange(10), 10 + np.arange(7), batch=3, rng=np.random.default_rng(7))
    rng = np.random.default_rng(7)
    px, py = rng.permutation(10), rng.permutation(7)
    expected = bmmd2(x[px][:6], y[py][:6], batch=3)
    assert got == pytest.approx(expected, rel=1e-9)

import numpy as np
import pytest
import scipy.linalg

from stylegan3d.metrics.frechet import (
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    trace_sqrt_product,
)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_closed_form_for_diagonal_gaussians():
    # Commuting covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a = np.array([1.0, 4.0, 9.0, 0.25])
    b = np.array([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.0, 0.5])
    expected = mu2 @ mu2 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_trace_sqrt_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    s1, s2 = _spd(rng, 12), _spd(rng, 12)
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-9)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * ref
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)


def test_self_distance_is_zero_and_a_shift_adds_its_squared_norm():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance_features(f, f) == pytest.approx(0.0, abs=1e-8 * np.trace(np.cov(f.T)))
    for scale in (0.5, 1.0, 3.0):
        delta = scale * rng.normal(size=16)
        # Same covariance, means differ by delta: FD = |delta|^2 exactly.
        assert frechet_distance_features(f, f + delta) == pytest.approx(delta @ delta, rel=1e-7)


def test_sample_form_equals_feature_form():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20, 64))  # n < d: the SVD (sample) form is used
    b = rng.normal(size=(15, 64)) * 1.5 + 0.3
    via_stats = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    # The eigh form loses ~sqrt(eps) on the zero eigenvalues of rank-deficient covariances.
    assert frechet_distance_features(a, b) == pytest.approx(via_stats, rel=1e-7)


def test_estimate_converges_to_gaussian_closed_form():
    rng = np.random.default_rng(3)
    d = 4
    s1, s2 = _spd(rng, d), _spd(rng, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    exact = frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=40000)
    y = rng.multivariate_normal(mu2, s2, size=40000)
    assert frechet_distance_features(x, y) == pytest.approx(exact, rel=0.03, abs=5e-3)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        frechet_distance_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError):
        frechet_distance_features(np.zeros((1, 3)), np.zeros((5, 3)))

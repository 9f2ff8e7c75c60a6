"""Batched projection and the fitted W prior: equal to single projections, Gaussian moments, the file,
sampling through the Model, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylegan3d.errors import UserError
from stylegan3d.infer.api import load
from stylegan3d.infer.prior import WPrior, effective_dimension, fit_prior
from stylegan3d.infer.projector import ProjectorConfig, project_volume, project_volumes


def _prior(w_dim: int = 32, seed: int = 0, info: dict | None = None) -> WPrior:
    g = np.random.default_rng(seed)
    a = g.standard_normal((w_dim, w_dim)) / np.sqrt(w_dim)
    return WPrior(g.standard_normal(w_dim), a @ np.diag(np.linspace(0.1, 2.0, w_dim)) @ a.T, info or {})


def test_batched_projection_equals_single_projections(model, cohort):
    """Each volume of a batch follows its own single projection: W+, noise maps optimised from
    random, a mask, the noise penalty on; only float rounding differs."""
    targets = torch.from_numpy(cohort[:3])
    masks = torch.from_numpy(cohort[:3, 0] > 0.2)
    cfg = ProjectorConfig(space="w+", steps=8, noise_reg=10.0, w_avg_samples=500, seed=4)
    batch = project_volumes(model.G, targets, masks, cfg)
    assert len(batch) == 3
    for i, out in enumerate(batch):
        single = project_volume(model.G, targets[i], masks[i], ProjectorConfig(**{**cfg.__dict__}))
        torch.testing.assert_close(out.ws, single.ws, atol=2e-5, rtol=1e-4)
        for a, b in zip(out.noise, single.noise, strict=True):
            assert a.shape == b.shape and a.shape[0] == 1
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(out.reconstruction, single.reconstruction, atol=2e-5)
        np.testing.assert_allclose(out.history["loss"], single.history["loss"], rtol=1e-4)
    # volumes differ, so do their latents
    assert float((batch[0].ws - batch[1].ws).abs().max()) > 1e-3


def test_const_noise_init_keeps_the_models_maps(model, cohort):
    cfg = ProjectorConfig(space="w", steps=3, optimize_noise=False, noise_init="const", w_avg_samples=200)
    out = project_volumes(model.G, torch.from_numpy(cohort[:2]), cfg=cfg)
    for o in out:
        for got, const in zip(o.noise, model.const_noise(), strict=True):
            torch.testing.assert_close(got, const)
        assert torch.equal(o.ws[0], o.ws[-1])  # W space: one w for all layers
    with pytest.raises(UserError, match="noise_init"):
        ProjectorConfig(noise_init="zeros").validate()


def test_batched_projection_errors(model, cohort):
    with pytest.raises(UserError, match="target shape"):
        project_volumes(model.G, torch.zeros(2, 1, 10, 10, 10), cfg=ProjectorConfig(steps=1))
    with pytest.raises(UserError, match="mask shape"):
        project_volumes(model.G, torch.from_numpy(cohort[:2]), torch.ones(1, 20, 24, 28, dtype=torch.bool))
    masks = torch.ones(2, 20, 24, 28, dtype=torch.bool)
    masks[1] = False
    with pytest.raises(UserError, match="mask is empty"):
        project_volumes(model.G, torch.from_numpy(cohort[:2]), masks, ProjectorConfig(steps=1))


def test_prior_samples_have_the_fitted_moments():
    prior = _prior()
    w = prior.sample(range(20000)).astype(np.float64)
    assert w.shape == (20000, 32) and w.dtype == np.float64
    se = np.sqrt(np.diag(prior.cov) / len(w))
    assert np.all(np.abs(w.mean(0) - prior.mean) < 5 * se)
    rel = np.linalg.norm(np.cov(w, rowvar=False) - prior.cov) / np.linalg.norm(prior.cov)
    assert rel < 0.05
    # a seed names one w, whatever else is drawn with it; psi scales the offset from the mean exactly
    np.testing.assert_array_equal(prior.sample([7]), prior.sample([3, 7, 9])[1:2])
    np.testing.assert_allclose(
        prior.sample([5], psi=0.5) - prior.mean, 0.5 * (prior.sample([5]) - prior.mean), atol=1e-6
    )
    np.testing.assert_allclose(prior.sample([1, 2], psi=0.0), np.stack([prior.mean] * 2), atol=1e-6)


def test_effective_dimension_known_values():
    assert effective_dimension(np.eye(8)) == pytest.approx(8.0)
    assert effective_dimension(np.diag([1.0, 0, 0, 0])) == pytest.approx(1.0)
    assert effective_dimension(np.diag([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)


def test_prior_file_round_trip_and_bad_files(tmp_path, ckpt):
    prior = _prior(info={"n": 5, "model_sha256": "abc"})
    path = prior.save(tmp_path / "p.prior.safetensors")
    back = WPrior.load(path)
    np.testing.assert_array_equal(back.mean, prior.mean)
    np.testing.assert_array_equal(back.cov, prior.cov)
    assert back.info == {"n": 5, "model_sha256": "abc"}
    np.testing.assert_array_equal(back.sample([1, 2]), prior.sample([1, 2]))
    with pytest.raises(UserError, match="not found"):
        WPrior.load(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="not a stylegan3d W prior"):
        WPrior.load(ckpt)  # a model file is safetensors, but not a prior
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{nonsense")
    with pytest.raises(UserError, match="not a readable W prior"):
        WPrior.load(tmp_path / "junk.safetensors")
    with pytest.raises(UserError, match="positive semi-definite"):
        WPrior(np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(UserError, match="symmetric"):
        WPrior(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(UserError, match=r"mean \[w_dim\]"):
        WPrior(np.zeros(3), np.eye(2))


def test_fit_prior_is_the_gaussian_of_the_projected_latents(model):
    """Volumes the generator made from known w (W space, const noise) are reproduced almost exactly
    by their projections, and the fitted mean and covariance are those of the projected w."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w_true = model.G.mapping(torch.randn(6, model.G.z_dim, generator=g), None)[:, 0]
    vols = model.synthesize(w_true[:, None].repeat(1, model.num_ws, 1), "const")
    with pytest.warns(UserWarning, match="covariance is rank 5"):
        prior = fit_prior(model.G, vols, steps=150, batch=4, model_sha256="m")
    cfg = ProjectorConfig(space="w", steps=150, optimize_noise=False, noise_init="const")
    w_proj = np.stack([o.ws[0].numpy() for o in project_volumes(model.G, torch.from_numpy(vols), cfg=cfg)])
    np.testing.assert_allclose(prior.mean, w_proj.mean(0), atol=1e-5)
    np.testing.assert_allclose(prior.cov, np.cov(w_proj.astype(np.float64), rowvar=False), atol=1e-5)
    assert prior.info["n"] == 6 and prior.info["model_sha256"] == "m"
    assert prior.info["projection_mse"]["max"] < 1e-3 < float(np.var(vols))
    with pytest.raises(UserError, match="at least 2"):
        fit_prior(model.G, vols[:1])


def test_model_samples_from_a_prior(ckpt, other_ckpt, tmp_path):
    m = load(ckpt)
    prior = _prior(info={"model_sha256": m.sha256})
    m.set_prior(prior)
    vols = m.generate([4, 9], trunc=0.8)
    w = prior.mean + 0.8 * (prior.sample([4, 9]) - prior.mean)
    ref = m.synthesize(np.repeat(w[:, None], m.num_ws, 1).astype(np.float32), "const")
    np.testing.assert_allclose(vols, ref, atol=1e-5)
    assert m.latent_from_seed(4).z is None
    with pytest.raises(UserError, match="space w"):
        m.interpolate([1, 2], frames=2, space="z")
    # truncation cutoff: only the first layers move toward the prior's mean
    ws = m.ws_from_seeds([4], trunc=0.0, trunc_cutoff=2)[0].numpy()
    np.testing.assert_allclose(ws[:2], np.stack([prior.mean] * 2), atol=1e-6)
    np.testing.assert_allclose(ws[2:], np.repeat(prior.sample([4]), m.num_ws - 2, 0), atol=1e-6)
    m.set_prior(None)
    np.testing.assert_array_equal(m.generate([4]), load(ckpt).generate([4]))
    # a file, checked against the model
    path = _prior(info={"model_sha256": "0" * 64}).save(tmp_path / "other.prior.safetensors")
    with pytest.raises(UserError, match="fitted to model 000000000000"):
        m.set_prior(path)
    with pytest.raises(UserError, match="w_dim 32 but the model has 16"):
        load(other_ckpt).set_prior(prior)
    with pytest.raises(UserError, match="no shipped prior named 'nosuch'"):
        m.set_prior("nosuch")

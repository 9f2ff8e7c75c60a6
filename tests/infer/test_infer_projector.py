"""Projector pieces (schedules, regulariser, losses, metrics) against hand computations, and
projection of generated volumes back to their latents."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylegan3d.errors import UserError
from stylegan3d.infer.projector import (
    ProjectorConfig,
    learning_rate,
    match_saturation,
    noise_regularization,
    pool_factor,
    project_volume,
    reconstruction_loss,
    renormalize_noise_,
    w_noise_scale,
)
from stylegan3d.metrics.reconstruction import reconstruction_metrics


def test_learning_rate_schedule_warmup_and_cosine_rampdown():
    cfg = ProjectorConfig(lr=0.3, lr_rampup=0.05, lr_rampdown=0.25)
    assert learning_rate(0.0, cfg) == 0.0
    assert learning_rate(0.025, cfg) == pytest.approx(0.15)  # half-way up the linear warm-up
    assert learning_rate(0.05, cfg) == pytest.approx(0.3)
    assert learning_rate(0.5, cfg) == pytest.approx(0.3)
    assert learning_rate(0.875, cfg) == pytest.approx(0.15)  # cos ramp half-way down
    assert learning_rate(0.999, cfg) == pytest.approx(0.3 * (0.5 - 0.5 * math.cos(0.004 * math.pi)))


def test_w_noise_ramps_off_quadratically():
    cfg = ProjectorConfig(w_noise=0.05, noise_ramp=0.75)
    assert w_noise_scale(0.0, cfg, 2.0) == pytest.approx(0.1)
    assert w_noise_scale(0.375, cfg, 2.0) == pytest.approx(0.1 * 0.25)
    assert w_noise_scale(0.75, cfg, 2.0) == 0.0
    assert w_noise_scale(0.9, cfg, 2.0) == 0.0


def test_noise_regularization_values():
    # A constant map correlates perfectly with its shifts: 1 per axis per scale.
    assert float(noise_regularization([torch.ones(1, 1, 4, 4, 4)])) == pytest.approx(3.0)
    # 16^3 is pooled once (16 -> 8) before stopping: two scales.
    assert float(noise_regularization([torch.ones(1, 1, 16, 16, 16)])) == pytest.approx(6.0)
    # Alternating sign along one axis: -1 along it, +1 along the others; squares sum to 3.
    alt = torch.ones(1, 1, 4, 4, 4)
    alt[:, :, 1::2] = -1
    assert float(noise_regularization([alt])) == pytest.approx(3.0)
    # White noise scores close to zero; the sum runs over maps.
    g = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 32, 32, 32, generator=g)
    assert float(noise_regularization([white])) < 1e-3
    both = noise_regularization([white, torch.ones(1, 1, 4, 4, 4)])
    assert float(both) == pytest.approx(float(noise_regularization([white])) + 3.0)


def test_renormalize_noise():
    v = [torch.randn(1, 1, 5, 6, 7) * 3 + 2, torch.rand(1, 1, 4, 4, 4)]
    renormalize_noise_(v)
    for t in v:
        assert abs(float(t.mean())) < 1e-6
        assert float(t.square().mean()) == pytest.approx(1.0, rel=1e-5)


def test_pool_factor_adapts_to_small_volumes():
    assert pool_factor((80, 96, 112)) == 8
    assert pool_factor((20, 24, 28)) == 5
    assert pool_factor((8, 8, 8)) == 2
    assert pool_factor((3, 40, 40)) == 1


def test_reconstruction_loss_matches_manual_computation():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 16, 16, 16, generator=g)
    y = torch.rand(1, 1, 16, 16, 16, generator=g)
    full, pooled = reconstruction_loss(x, y, None, 8)
    assert float(full) == pytest.approx(float(((x - y) ** 2).mean()), rel=1e-6)
    # pool_factor(16) = 4: 4x4x4 blocks
    px = x.reshape(4, 4, 4, 4, 4, 4).mean(dim=(1, 3, 5))
    py = y.reshape(4, 4, 4, 4, 4, 4).mean(dim=(1, 3, 5))
    assert float(pooled) == pytest.approx(float(((px - py) ** 2).mean()), rel=1e-5)
    # A mask of ones changes nothing; a half mask counts only its voxels.
    ones = torch.ones(1, 1, 16, 16, 16)
    f1, p1 = reconstruction_loss(x, y, ones, 8)
    assert float(f1) == pytest.approx(float(full), rel=1e-6) and float(p1) == pytest.approx(float(pooled), rel=1e-5)
    half = torch.zeros(1, 1, 16, 16, 16)
    half[..., :8] = 1
    f2, _ = reconstruction_loss(x, y, half, 8)
    assert float(f2) == pytest.approx(float(((x - y)[..., :8] ** 2).mean()), rel=1e-6)


def test_match_saturation_only_forgives_overshoot_beyond_clipped_targets():
    target = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.5, 0.5])
    synth = torch.tensor([1.7, 0.2, -1.4, 0.3, 1.7, -1.4], requires_grad=True)
    out = match_saturation(synth, target)
    assert out.tolist() == pytest.approx([1.0, 0.2, -1.0, 0.3, 1.7, -1.4])
    out.sum().backward()
    assert synth.grad.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    # the latent of a clipped generated volume is an exact minimum of the loss
    x = torch.linspace(-2, 2, 64).reshape(1, 1, 4, 4, 4)
    full, pooled = reconstruction_loss(match_saturation(x, x.clamp(-1, 1)), x.clamp(-1, 1), None, 8)
    assert float(full) == 0.0 and float(pooled) == 0.0


def test_reconstruction_metrics_known_values():
    from monai.metrics import SSIMMetric

    g = np.random.default_rng(0)
    y = g.random((1, 20, 24, 28)).astype(np.float32)
    m = reconstruction_metrics(y, y)
    assert m["psnr"] == float("inf") and m["ssim"] == pytest.approx(1.0) and m["mae"] == 0.0
    shifted = np.clip(y + 0.1, 0, 2).astype(np.float32)
    m = reconstruction_metrics(shifted, y)
    assert m["mae"] == pytest.approx(0.1, rel=1e-5)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-3)  # MSE 0.01, data range 1
    x = np.clip(y + 0.2 * g.standard_normal(y.shape), 0, 1).astype(np.float32)
    ref = SSIMMetric(spatial_dims=3, data_range=1.0)(torch.from_numpy(x)[None], torch.from_numpy(y)[None])
    assert reconstruction_metrics(x, y)["ssim"] == pytest.approx(float(ref.mean()), rel=1e-5)
    # Errors only outside the mask do not count inside it.
    mask = np.zeros((20, 24, 28), bool)
    mask[:, :, :14] = True
    z = y.copy()
    z[0][~mask] = 0.0
    mm = reconstruction_metrics(z, y, mask)
    assert mm["mae"] == 0.0 and mm["psnr"] == float("inf")
    assert reconstruction_metrics(z, y)["mae"] > 0.1


def test_projector_config_validation():
    with pytest.raises(UserError):
        ProjectorConfig(space="z").validate()
    with pytest.raises(UserError):
        ProjectorConfig(steps=0).validate()
    assert ProjectorConfig(space="w").validate().lr == 0.3
    assert ProjectorConfig(space="w+").validate().lr == 0.1
    assert ProjectorConfig(space="w+", lr=0.3).validate().lr == 0.3


@pytest.fixture(scope="module")
def target(plain_model):
    """A volume the untrained demo model generates from seed 7 with its constant noise, [C, D, H, W] in [0, 1]."""
    return plain_model.generate([7], noise_mode="const")[0]


@pytest.mark.parametrize(("space", "steps", "min_ssim"), [("w+", 50, 0.95), ("w", 60, 0.9)])
def test_generated_volume_projects_back(plain_model, target, space, steps, min_ssim):
    model = plain_model
    before = {k: v.clone() for k, v in model.G.state_dict().items()}
    res = model.project(target, space=space, steps=steps)
    assert res.metrics["ssim"] >= min_ssim, res.metrics
    assert res.metrics["psnr"] > 25.0, res.metrics
    hist = res.history["mse"]
    assert len(hist) == steps and hist[-1] < 0.2 * max(hist[:5])
    assert res.ws.shape == (model.num_ws, model.w_dim)
    spread = float(np.abs(res.ws - res.ws[0]).max())
    assert (spread == 0.0) if space == "w" else (spread > 0.0)
    # The generator is untouched and the reconstruction is what the latent synthesises.
    assert all(torch.equal(before[k], v) for k, v in model.G.state_dict().items())
    again = model.synthesize(res.ws, noise=[torch.from_numpy(n) for n in res.noise])[0]
    np.testing.assert_allclose(again, res.reconstruction, atol=1e-5)
    for n in res.noise:  # renormalised every step
        assert abs(float(n.mean())) < 1e-4 and float(n.var()) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_projection_fits_the_generators_own_noise(model, noise_mode):
    """Issue 18: a generator with noise (strength 0.1 per layer) must get its own output back in W+.

    The target's noise is part of what the projector has to find. With the 2D projector's noise
    penalty (``noise_reg=1e5``, the old default) the penalty alone drives the noise maps and the
    same projection stops at SSIM 0.57 (const and random noise; 0.98 with the default now).
    """
    target = model.generate([7], noise_mode=noise_mode)[0]
    res = model.project(target, space="w+", steps=50)
    assert res.metrics["ssim"] >= 0.95, res.metrics
    assert res.settings["noise_reg"] == 0.0


def test_masked_projection_ignores_outside(plain_model, target):
    model = plain_model
    mask = np.zeros(model.geometry.shape, bool)
    mask[3:17, 4:20, 4:24] = True
    corrupted = target.copy()
    corrupted[0][~mask] = 1.0 - corrupted[0][~mask]
    res = model.project(corrupted, space="w+", steps=50, mask=mask)
    assert res.metrics["ssim"] >= 0.9, res.metrics
    outside = np.abs(res.reconstruction[0] - corrupted[0])[~mask].mean()
    assert outside > 3 * res.metrics["mae"]  # the outside was not fitted


def test_project_volume_rejects_wrong_shapes(model):
    with pytest.raises(UserError, match="does not match"):
        project_volume(model.G, torch.zeros(1, 10, 10, 10), cfg=ProjectorConfig(steps=1))
    with pytest.raises(UserError, match="mask shape"):
        project_volume(
            model.G, torch.zeros(1, 20, 24, 28), torch.ones(4, 4, 4, dtype=torch.bool), ProjectorConfig(steps=1)
        )
    with pytest.raises(UserError, match="empty"):
        project_volume(
            model.G, torch.zeros(1, 20, 24, 28), torch.zeros(20, 24, 28, dtype=torch.bool), ProjectorConfig(steps=1)
        )


def test_perceptual_term(model, target):
    from stylegan3d.infer.projector import DeepbetFeatures
    from stylegan3d.metrics.features3d import find_deepbet_model

    if find_deepbet_model() is None:
        pytest.skip("deepbet not installed")
    feats = DeepbetFeatures()
    x = torch.from_numpy(target)[None]
    ref = feats.features(x)
    assert float(feats.distance(x, ref)) == pytest.approx(0.0, abs=1e-8)
    y = x.flip(2).requires_grad_(True)
    d = feats.distance(y, ref)
    d.backward()
    assert float(d.detach()) > 0 and float(y.grad.abs().sum()) > 0
    res = model.project(target, space="w", steps=3, perceptual=0.1)
    assert len(res.history["perceptual"]) == 3 and res.history["perceptual"][0] > 0

"""MSGAN's mode-seeking term (``train.ms_weight``): the ratio against a float64 computation done
pair by pair, its gradient in closed form, that it is off by default, and its bad-input errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylegan3d.config import TrainConfig, apply_overrides
from stylegan3d.errors import UserError
from stylegan3d.train.loop import Trainer
from stylegan3d.train.loss import StyleGAN2Loss, mode_seeking_ratio

D64 = torch.float64


class FixedG(nn.Module):
    """G_step stand-in returning its parameter as the batch of images."""

    def __init__(self, imgs: torch.Tensor) -> None:
        super().__init__()
        self.img = nn.Parameter(imgs.clone())

    def forward(self, z, c, z_mix, cutoff, noise, update_w_avg=False):
        return self.img * 1.0, None


class ZeroD(nn.Module):
    def forward(self, y, c=None):
        return y.flatten(1).sum(1, keepdim=True) * 0.0


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 2, 3, 4, generator=g, dtype=D64), torch.randn(n, 5, generator=g, dtype=D64)


@pytest.mark.parametrize("n", [2, 5, 6])
def test_ratio_is_mean_image_distance_over_mean_latent_distance_of_the_half_pairs(n):
    img, z = _data(n)
    h = n // 2
    num = sum(float((img[i] - img[i + h]).abs().sum()) for i in range(h)) / (h * img[0].numel())
    den = sum(float((z[i] - z[i + h]).abs().sum()) for i in range(h)) / (h * z.shape[1])
    assert mode_seeking_ratio(img, z).item() == pytest.approx(num / den, rel=1e-12)


def test_ratio_needs_a_pair():
    img, z = _data(1)
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking_ratio(img, z)


def test_g_main_adds_weight_over_ratio_and_its_gradient_pushes_pairs_apart():
    """loss = softplus(-D) + w / (r + 1e-5); d loss / d img_a = -w / (r + eps)^2 * sign(img_a - img_b)
    / (numel * mean|z_a - z_b|): a gradient step moves each pair apart (the ratio grows)."""
    img, z = _data(4, seed=3)
    w = 0.7
    g = FixedG(img)
    off = StyleGAN2Loss(g, ZeroD(), ZeroD(), TrainConfig())
    base, st0 = off.g_main(z, None, None, 0, None)
    assert "loss/ms_ratio" not in st0
    on = StyleGAN2Loss(g, ZeroD(), ZeroD(), TrainConfig(ms_weight=w))
    total, st = on.g_main(z, None, None, 0, None)
    r = mode_seeking_ratio(img, z).item()
    assert st["loss/ms_ratio"].item() == pytest.approx(r, rel=1e-12)
    assert total.item() == pytest.approx(base.item() + w / (r + 1e-5), rel=1e-12)
    total.backward()
    den = (z[:2] - z[2:]).abs().mean().item()
    coef = -w / (r + 1e-5) ** 2 / (2 * img[0].numel() * den)
    expected_a = coef * torch.sign(img[:2] - img[2:])  # ZeroD: the adversarial part has no gradient
    torch.testing.assert_close(g.img.grad[:2], expected_a, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(g.img.grad[2:], -expected_a, rtol=1e-9, atol=1e-15)
    with torch.no_grad():
        stepped = g.img - 0.01 * g.img.grad / g.img.grad.abs().max()
    assert mode_seeking_ratio(stepped, z).item() > r


def test_negative_weight_and_single_sample_batches_are_refused(tiny_cfg, tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="ms_weight must be >= 0"):
        apply_overrides(tiny_cfg, ["train.ms_weight=-1"]).validate()
    cfg = apply_overrides(tiny_cfg, ["train.ms_weight=1", "train.batch=1"])
    with pytest.raises(UserError, match="at least 2 samples per process"):
        Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)


def test_a_training_step_shares_the_noise_within_pairs_and_logs_the_ratio(tiny_cfg, tiny_dataset, tmp_path):
    """With the term on, G's main pass gets noise maps with sample i + N/2 equal to sample i (the
    pairs then differ only through z); with it off, the noise of every sample is its own."""
    seen = []
    for w in (0.5, 0.0):
        cfg = apply_overrides(tiny_cfg, [f"train.ms_weight={w}", "train.pl_weight=0"])
        tr = Trainer(cfg, tiny_dataset, tmp_path / f"run-{w}", progress=False)
        g_step = tr.loss.G_step

        def spy(z, c, z_mix, cutoff, noise, update_w_avg=False, g_step=g_step):
            if update_w_avg:  # the main pass (the D pass does not update w_avg)
                seen.append([n.clone() for n in noise])
            return g_step(z, c, z_mix, cutoff, noise, update_w_avg)

        tr.loss.G_step = spy
        stats = tr.train_step()
        assert ("loss/ms_ratio" in stats) == (w > 0)
        assert stats.get("loss/ms_ratio", 1.0) > 0
    h = tiny_cfg.train.batch // 2
    assert seen[0] and all(torch.equal(n[:h], n[h : 2 * h]) for n in seen[0])
    assert not any(torch.equal(n[:h], n[h : 2 * h]) for n in seen[1])

"""Losses, regularisers, EMA and ADA against the references (3D-StyleGAN / NVlabs stylegan2 TF
``training/loss.py`` and stylegan2-ada-pytorch ``training/loss.py`` + ``training_loop.py``).

Each expected number is an independent float64 computation written in the test (closed-form
gradients of toy networks, the published formulas); the code under test is called once.

Already covered elsewhere, not repeated here: the ADA p rule ``p += sign(r_t - target) * batch *
interval / (ada_kimg * 1000)`` clamped to [0, 1], with r_t the mean sign of the real logits
(tests/train/test_augment.py::test_controller_raises_p_for_positive_and_lowers_for_negative_logits
and ::test_controller_rt_is_the_mean_sign_and_target_is_a_dead_band); Adam at the configured
lr/betas (tests/train/test_train_fidelity.py::test_adam_runs_at_the_configured_lr_and_betas).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stylegan3d.config import TrainConfig, apply_overrides
from stylegan3d.train.loop import Trainer
from stylegan3d.train.loss import StyleGAN2Loss, ema_beta, update_ema

D64 = torch.float64
SHAPE = (3, 4, 5)  # D, H, W (non-cubic)
CHANNELS = 2


def _softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


class ToyG(nn.Module):
    """G_step stand-in with a closed-form Jacobian: ``ws[n, l] = z[n] * s[l]``,
    ``img[n, c, v] = tanh(sum_{l,k} A[l, k, c, v] * ws[n, l, k])``."""

    def __init__(self, num_ws: int = 3, w_dim: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(num_ws, w_dim, CHANNELS, *SHAPE, generator=g, dtype=D64) * 0.3)
        self.s = nn.Parameter(1.0 + 0.1 * torch.arange(num_ws, dtype=D64))

    def forward(self, z, c, z_mix, cutoff, noise, update_w_avg=False):
        ws = z[:, None, :] * self.s[None, :, None]
        return torch.tanh(torch.einsum("lkcdhw,nlk->ncdhw", self.A, ws)), ws


class ToyD(nn.Module):
    """D stand-in: ``D(y) = sum_v (a * y^2 + u * y) + b`` per sample, so ``dD/dy = 2 a y + u``."""

    def __init__(self, seed: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(CHANNELS, *SHAPE, generator=g, dtype=D64) * 0.2)
        self.u = nn.Parameter(torch.randn(CHANNELS, *SHAPE, generator=g, dtype=D64) * 0.2)
        self.b = nn.Parameter(torch.tensor(0.3, dtype=D64))

    def forward(self, y, c=None):
        return ((self.a * y.square() + self.u * y).sum(dim=(1, 2, 3, 4)) + self.b)[:, None]


class SumD(nn.Module):
    """D stand-in whose logit is the sum of the input: lets a test choose the logits exactly."""

    def forward(self, y, c=None):
        return y.flatten(1).sum(1, keepdim=True)


def _cfg(**kw) -> TrainConfig:
    base = dict(r1_gamma=3.0, r1_interval=5, pl_weight=2.0, pl_interval=3, pl_decay=0.01)
    return TrainConfig(**{**base, **kw})


def _volumes(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, CHANNELS, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=D64)


# ------------------------------------------------------------------------------------------------
# Non-saturating logistic loss


def test_non_saturating_logistic_losses():
    """G: softplus(-D(G(z))); D: softplus(D(G(z))) + softplus(-D(x)); batch means, stable for large |logit|."""
    logits = [-40.0, -3.0, -0.25, 0.0, 0.7, 5.0, 35.0]
    imgs = torch.zeros(len(logits), CHANNELS, *SHAPE, dtype=D64)
    imgs[:, 0, 0, 0, 0] = torch.tensor(logits, dtype=D64)

    class FixedG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.img = nn.Parameter(imgs.clone())

        def forward(self, z, c, z_mix, cutoff, noise, update_w_avg=False):
            return self.img * 1.0, None

    g = FixedG()
    loss = StyleGAN2Loss(g, SumD(), SumD(), _cfg())
    n = len(logits)
    g_loss, stats = loss.g_main(None, None, None, 0, None)
    assert g_loss.item() == pytest.approx(sum(_softplus(-v) for v in logits) / n, rel=1e-12)
    g_loss.backward()  # d/dl softplus(-l) = -sigmoid(-l) = -1 / (1 + e^l)
    expected_grad = [-1.0 / (1.0 + math.exp(v)) / n for v in logits]
    assert g.img.grad[:, 0, 0, 0, 0].tolist() == pytest.approx(expected_grad, rel=1e-10, abs=1e-300)
    d_fake, _ = loss.d_fake(imgs, None)
    assert d_fake.item() == pytest.approx(sum(_softplus(v) for v in logits) / n, rel=1e-12)
    d_real, st, real_logits = loss.d_real(imgs, None, r1=False)
    assert d_real.item() == pytest.approx(sum(_softplus(-v) for v in logits) / n, rel=1e-12)
    assert real_logits[:, 0].tolist() == logits
    assert "loss/r1_penalty" not in st


# ------------------------------------------------------------------------------------------------
# R1


def test_r1_is_the_gradient_of_d_on_augmented_reals_wrt_the_unaugmented_reals():
    """penalty_n = |d D(aug(x_n)) / d x_n|^2; loss = mean softplus(-D(aug(x))) + gamma / 2 * interval *
    mean(penalty). The augmentation here is y = 1.5 * flip_W(x) + 0.2, so the chain rule puts a
    factor 1.5 (and the flip) into the gradient; a gradient taken w.r.t. the augmented volume would
    be smaller by 1.5^2 in the penalty. The D-parameter gradient (double backward) is checked too."""
    cfg = _cfg(r1_gamma=3.0, r1_interval=5)
    d = ToyD()
    loss = StyleGAN2Loss(None, d, d, cfg, augment=lambda v: 1.5 * v.flip(-1) + 0.2)
    x = _volumes(4, seed=2)
    total, stats, logits = loss.d_real(x, None, r1=True)
    total.backward()

    a = d.a.detach().clone().requires_grad_(True)
    u = d.u.detach().clone().requires_grad_(True)
    b = d.b.detach().clone().requires_grad_(True)
    y = 1.5 * x.flip(-1) + 0.2
    ref_logits = (a * y.square() + u * y).sum(dim=(1, 2, 3, 4)) + b
    dd_dy = 2 * a * y + u  # closed form
    grad_x = 1.5 * dd_dy.flip(-1)
    penalty = grad_x.square().sum(dim=(1, 2, 3, 4))
    ref_total = torch.nn.functional.softplus(-ref_logits).mean() + penalty.mean() * (3.0 / 2) * 5
    torch.testing.assert_close(logits[:, 0], ref_logits.detach(), rtol=1e-12, atol=0)
    assert stats["loss/r1_penalty"].item() == pytest.approx(penalty.mean().item(), rel=1e-6)  # float32 penalty
    assert total.item() == pytest.approx(ref_total.item(), rel=1e-6)
    ref_grads = torch.autograd.grad(ref_total, [a, u, b])
    for got, ref in zip((d.a.grad, d.u.grad, d.b.grad), ref_grads, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Path length


def _pl_reference(g: ToyG, z: torch.Tensor, pl_noise: torch.Tensor, a_prev: float, decay: float):
    """Closed-form path lengths |J_w^T y| with y = noise / sqrt(D*H*W) (voxels, not channels), the
    running mean a = a_prev + decay * (mean(lengths) - a_prev) (a constant for the gradient), and
    the penalty mean((lengths - a)^2)."""
    A = g.A.detach().clone().requires_grad_(True)
    s = g.s.detach().clone().requires_grad_(True)
    ws = z[:, None, :] * s[None, :, None]
    img = torch.tanh(torch.einsum("lkcdhw,nlk->ncdhw", A, ws))
    y = pl_noise / math.sqrt(math.prod(SHAPE))
    jty = torch.einsum("lkcdhw,ncdhw->nlk", A, (1 - img.square()) * y)  # J^T y, by hand
    lengths = jty.square().sum(2).mean(1).sqrt()
    a = a_prev + decay * (lengths.detach().mean().item() - a_prev)
    return lengths, a, (lengths - a).square().mean(), (A, s)


def test_path_length_penalty_running_mean_and_gradient():
    cfg = _cfg(pl_weight=2.0, pl_interval=3, pl_decay=0.01)
    g = ToyG()
    loss = StyleGAN2Loss(g, None, None, cfg)
    a_prev = 0.0
    for step in range(2):  # the running mean starts at 0 and decays toward the batch means
        z = torch.randn(3, 4, generator=torch.Generator().manual_seed(10 + step), dtype=D64)
        pl_noise = _volumes(3, seed=20 + step)
        g.zero_grad()
        total, stats = loss.g_pl(z, None, None, 0, None, pl_noise)
        total.backward()
        lengths, a, penalty, leaves = _pl_reference(g, z, pl_noise, a_prev, 0.01)
        assert stats["loss/pl_mean"].item() == pytest.approx(a, rel=1e-6)
        assert stats["loss/pl_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)
        ref_total = penalty * 2.0 * 3
        assert total.item() == pytest.approx(ref_total.item(), rel=1e-5)
        ref_grads = torch.autograd.grad(ref_total, leaves)
        torch.testing.assert_close(g.A.grad, ref_grads[0], rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(g.s.grad, ref_grads[1], rtol=1e-4, atol=1e-8)
        a_prev = a
    assert 0.0 < a_prev < lengths.mean().item()


# ------------------------------------------------------------------------------------------------
# G EMA


@pytest.mark.parametrize(
    ("batch", "cur_nimg", "ema_kimg", "rampup"),
    [(32, 0, 10.0, 0.05), (32, 640, 10.0, 0.05), (8, 10**6, 10.0, 0.05), (40, 5000, 10.0, None), (4, 12, 0.01, 0.05)],
)
def test_ema_beta_is_the_half_life_formula_with_rampup(batch, cur_nimg, ema_kimg, rampup):
    """beta = 0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup)."""
    ema_nimg = ema_kimg * 1000 if rampup is None else min(ema_kimg * 1000, cur_nimg * rampup)
    expected = 0.0 if ema_nimg == 0 else 0.5 ** (batch / ema_nimg)
    assert ema_beta(batch, cur_nimg, ema_kimg, rampup) == pytest.approx(expected, rel=1e-12, abs=0)


def test_ema_half_life_is_ema_kimg():
    """Without ramp-up the weight of the old average halves every ema_kimg thousand images."""
    batch, ema_kimg = 40, 10.0
    steps = int(ema_kimg * 1000 / batch)
    assert math.prod(ema_beta(batch, 10**7, ema_kimg, None) for _ in range(steps)) == pytest.approx(0.5, rel=1e-12)


def test_update_ema_lerps_parameters_and_copies_buffers():
    def net(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        m = nn.BatchNorm1d(3).double()
        m.weight.data.normal_()
        m.running_mean.normal_()
        return m

    g, g_ema = net(0), net(1)
    beta = 0.7
    expected_w = g.weight.detach() + beta * (g_ema.weight.detach() - g.weight.detach())
    expected_b = g.bias.detach() + beta * (g_ema.bias.detach() - g.bias.detach())
    update_ema(g_ema, g, beta)
    torch.testing.assert_close(g_ema.weight.detach(), expected_w, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(g_ema.bias.detach(), expected_b, rtol=1e-15, atol=1e-15)
    assert torch.equal(g_ema.running_mean, g.running_mean)


# ------------------------------------------------------------------------------------------------
# The training step wires them as the reference


def test_train_step_pl_batch_shrink_and_ada_update(tiny_cfg, tiny_dataset, tmp_path):
    """Path length on batch // 2 with noise [B/2, C, D, H, W]; R1 on the augmented reals on an R1 step;
    ADA moves p by sign(E[sign(D(aug(real)))] - target) * batch * interval / (ada_kimg * 1000)."""
    cfg = apply_overrides(tiny_cfg, ["train.pl_interval=2", "train.r1_interval=4", "train.aug_p=0.5"])
    tr = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    t = cfg.train
    seen: dict = {}
    g_pl, d_real = tr.loss.g_pl, tr.loss.d_real

    def spy_pl(z, c, z_mix, cutoff, noise, pl_noise):
        seen["pl"] = (z.shape[0], tuple(pl_noise.shape), [tuple(n.shape) for n in noise])
        return g_pl(z, c, z_mix, cutoff, noise, pl_noise)

    def spy_real(real, c, r1):
        out = d_real(real, c, r1)
        seen["real"] = (r1, out[2].clone())
        return out

    tr.loss.g_pl, tr.loss.d_real = spy_pl, spy_real
    assert tr.loss.augment is tr.augment
    p0 = float(tr.augment.p)
    tr.train_step()  # step 0: path length and R1 both due
    bp = t.batch // t.pl_batch_shrink
    assert seen["pl"][0] == bp == 2
    assert seen["pl"][1] == (bp, tr.cfg.model.channels, *tr.cfg.model.resolution)
    assert all(s[0] == bp for s in seen["pl"][2])
    r1, logits = seen["real"]
    assert r1 is True
    rt = torch.sign(logits.double()).mean().item()
    adjust = t.batch * t.ada_interval / (t.ada_kimg * 1000)
    expected = min(max(p0 + (1 if rt > t.ada_target else -1 if rt < t.ada_target else 0) * adjust, 0.0), 1.0)
    assert float(tr.augment.p) == pytest.approx(expected, abs=1e-7)

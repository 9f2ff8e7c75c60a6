"""StyleGAN2 objectives: non-saturating logistic loss, lazy R1 and path-length regularisation.

Formulas (Karras et al. 2020, as in the reference 3D-StyleGAN code):

* G main:  ``softplus(-D(G(z)))``
* G reg:   ``pl_weight * (|J_w^T y| - a)^2`` with ``y ~ N(0, I) / sqrt(voxels)``, ``a`` the running
  mean of the path length (decay ``pl_decay``); evaluated every ``pl_interval`` steps and scaled
  by the interval (lazy regularisation).
* D main:  ``softplus(D(G(z))) + softplus(-D(x))``
* D reg:   ``gamma / 2 * |grad_x D(x)|^2`` every ``r1_interval`` steps, scaled by the interval.

Optional, off by default (``ms_weight = 0``): the mode-seeking term of MSGAN (Mao et al. 2019),
``ms_weight / (mean|G(z1) - G(z2)| / mean|z1 - z2| + 1e-5)`` on the pairs (first half, second
half) of the G batch, whose noise maps are shared within each pair; it rewards samples that
differ as much as their latents do (a diversity experiment of issue 18).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylegan3d.config import TrainConfig


@dataclass
class StepRandom:
    """Randomness of one training step, drawn for the *global* batch and sliced per rank.

    Every rank draws the same global tensors from one generator seeded by (seed, step), then keeps
    ``[rank::world]``; a run on W processes thus sees exactly the latents/noise of a run on one.
    """

    generator: torch.Generator
    rank: int = 0
    world: int = 1

    def randn(self, global_n: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        x = torch.randn(global_n, *shape, generator=self.generator, device=self.generator.device)
        return x[self.rank :: self.world].to(device)

    def uniform(self) -> float:
        return float(torch.rand([], generator=self.generator, device=self.generator.device))

    def randint(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, [], generator=self.generator, device=self.generator.device))


class GeneratorStep(nn.Module):
    """G forward for training: style mixing and explicit noise; returns ``(img, ws)``.

    Wrapped (not subclassed) so it can be handed to DistributedDataParallel as one module.
    """

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        z_mix: torch.Tensor | None,
        cutoff: int,
        noise: list[torch.Tensor],
        update_w_avg: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        if z_mix is not None and cutoff < ws.shape[1]:
            ws_mix = self.G.mapping(z_mix, c)
            ws = torch.cat([ws[:, :cutoff], ws_mix[:, cutoff:]], dim=1)
        img = self.G.synthesis(ws, noise=noise)
        return img, ws


class StyleGAN2Loss:
    """Computes the four loss phases; ``G_step``/``D`` may be DDP-wrapped, ``D_plain`` never is."""

    def __init__(
        self,
        G_step: nn.Module,
        D: nn.Module,
        D_plain: nn.Module,
        cfg: TrainConfig,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        all_reduce_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.G_step, self.D, self.D_plain = G_step, D, D_plain
        self.cfg = cfg
        self.augment = augment
        self.pl_mean = torch.zeros([])
        self.all_reduce_mean = all_reduce_mean or (lambda t: t)

    def _d(self, img: torch.Tensor, c: torch.Tensor | None, plain: bool) -> torch.Tensor:
        if self.augment is not None:
            img = self.augment(img)
        return (self.D_plain if plain else self.D)(img, c)

    def g_main(self, z, c, z_mix, cutoff, noise) -> tuple[torch.Tensor, dict]:
        """Non-saturating G loss (mean over the local batch)."""
        if self.cfg.ms_weight > 0 and noise is not None:
            noise = [share_pair_noise(n) for n in noise]
        img, _ = self.G_step(z, c, z_mix, cutoff, noise, update_w_avg=True)
        logits = self._d(img, c, plain=True)
        loss = F.softplus(-logits).mean()
        stats = {"loss/G": loss.detach(), "scores/fake": logits.detach().mean()}
        if self.cfg.ms_weight > 0:
            ratio = mode_seeking_ratio(img, z)
            loss = loss + self.cfg.ms_weight / (ratio + 1e-5)
            stats["loss/ms_ratio"] = ratio.detach()
        return loss, stats

    def g_pl(self, z, c, z_mix, cutoff, noise, pl_noise) -> tuple[torch.Tensor, dict]:
        """Lazy path-length penalty (already multiplied by weight and interval)."""
        img, ws = self.G_step(z, c, z_mix, cutoff, noise)
        n_vox = math.prod(img.shape[2:])
        pl_noise = pl_noise.to(img.dtype) / math.sqrt(n_vox)
        (grad,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(2).mean(1).sqrt()
        # Deliberate deviation: the running mean is a constant for the gradient. The references
        # (stylegan2 TF, stylegan2-ada-pytorch) lerp toward the batch mean *with* its gradient, which
        # adds -decay * mean(lengths - a) to each (lengths_j - a) term (1% at decay 0.01); detaching
        # keeps the target a statistic and lets every rank use the same all-reduced value exactly.
        mean_now = self.all_reduce_mean(lengths.detach().mean())
        self.pl_mean = self.pl_mean.to(lengths.device).lerp(mean_now, self.cfg.pl_decay)
        penalty = (lengths - self.pl_mean).square()
        loss = penalty.mean() * self.cfg.pl_weight * self.cfg.pl_interval
        # touch the image so every parameter of the wrapped G is part of this graph (DDP)
        loss = loss + img[:, 0, 0, 0, 0].mean() * 0.0
        return loss, {"loss/pl_penalty": penalty.detach().mean(), "loss/pl_mean": self.pl_mean.detach()}

    def d_fake(self, fake: torch.Tensor, c) -> tuple[torch.Tensor, dict]:
        logits = self._d(fake, c, plain=False)
        loss = F.softplus(logits).mean()
        return loss, {"loss/D_fake": loss.detach()}

    def d_real(self, real: torch.Tensor, c, r1: bool) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Real-image D loss, plus the lazy R1 penalty on regularisation steps."""
        real = real.detach().requires_grad_(r1)
        logits = self._d(real, c, plain=False)
        loss = F.softplus(-logits).mean()
        stats = {"loss/D_real": loss.detach(), "scores/real": logits.detach().mean()}
        if r1:
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.float().square().sum(dim=list(range(1, grad.ndim)))
            loss = loss + penalty.mean() * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval
            stats["loss/r1_penalty"] = penalty.detach().mean()
        return loss, stats, logits.detach()


def mode_seeking_ratio(img: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's ratio of image to latent distance over the pairs (i, i + N/2) of a batch:
    ``mean|img_a - img_b| / mean|z_a - z_b|`` (mean absolute differences, a scalar). ``img``
    ``[N, C, D, H, W]``, ``z`` ``[N, z_dim]`` (no gradient through it), N >= 2; an odd last sample
    is left out."""
    h = img.shape[0] // 2
    if h < 1:
        raise ValueError("the mode-seeking term needs at least 2 samples per batch")
    img = img.to(torch.promote_types(img.dtype, torch.float32))  # bf16/fp16 -> fp32, fp64 stays
    num = (img[:h] - img[h : 2 * h]).abs().mean()
    den = (z[:h] - z[h : 2 * h]).abs().mean().to(num.dtype)
    return num / den.detach()


def share_pair_noise(noise: torch.Tensor) -> torch.Tensor:
    """The noise of batch samples ``i + N/2`` replaced by that of ``i``, so that the pairs of the
    mode-seeking term differ only through their latents (otherwise G could meet the term by raising
    its noise strengths rather than by varying with z)."""
    h = noise.shape[0] // 2
    return torch.cat([noise[:h], noise[:h], noise[2 * h :]])


def make_adam(params, lr: float, betas: list[float], eps: float) -> torch.optim.Adam:
    """Adam at the configured ``lr``/``betas``/``eps``.

    The reference scales lr by ``k/(k+1)`` and betas by ``^(k/(k+1))`` because it takes an extra
    optimiser step for the regulariser every ``k`` steps. Here the lazy R1/path-length terms are
    added to the main loss of the same step (already multiplied by ``k``), so there is one step per
    iteration and no correction applies.
    """
    return torch.optim.Adam(params, lr=lr, betas=(betas[0], betas[1]), eps=eps)


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """``G_ema = lerp(G, G_ema, beta)`` for parameters; buffers are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: float | None) -> float:
    """EMA decay per step for a half-life of ``ema_kimg`` thousand images (with optional ramp-up)."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))

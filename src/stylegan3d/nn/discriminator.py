"""Residual 3D discriminator with minibatch standard deviation (StyleGAN2 "resnet" D).

Volume ``[N, channels, D, H, W]`` (and optional labels ``[N, c_dim]``) -> logits ``[N, 1]``.
Conditional models use a projection discriminator: the output is the inner product of
the features with an embedding of the label.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stylegan3d.config import ModelConfig
from stylegan3d.nn.layers import EqualConv, EqualLinear, autocast_dtype, normalize_2nd_moment


class DiscriminatorBlock(nn.Module):
    """conv3x3x3 -> blur + stride-2 conv3x3x3, plus a blurred stride-2 1x1x1 skip; sum / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, taps: list[float], clamp: float | None = None) -> None:
        super().__init__()
        self.conv0 = EqualConv(in_channels, in_channels, 3, activation=True, clamp=clamp)
        self.conv1 = EqualConv(in_channels, out_channels, 3, activation=True, down=2, filter_taps=taps, clamp=clamp)
        self.skip = EqualConv(
            in_channels, out_channels, 1, bias=False, down=2, filter_taps=taps, out_gain=1.0 / math.sqrt(2.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)  # already scaled by 1/sqrt(2) through its weights
        return torch.add(y, self.conv1(self.conv0(x)), alpha=1.0 / math.sqrt(2.0))


class MinibatchStd(nn.Module):
    """Append the across-group std of features as ``num_channels`` extra feature maps."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, *spatial = x.shape
        g = min(self.group_size, n)
        if n % g != 0:  # the reference requires N % G == 0; here the largest group that divides N
            g = math.gcd(n, g)
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, *spatial)  # [G, M, F, c, *S]
        y = (y - y.mean(0)).square().mean(0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2] + list(range(3, 3 + len(spatial))))  # [M, F]
        y = y.reshape(-1, f, *([1] * len(spatial))).repeat(g, 1, *spatial)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class Discriminator(nn.Module):
    """FromRGB -> n_up residual down blocks -> minibatch-std -> conv -> FC(F) -> FC(1)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d
        widths = cfg.stage_widths("d")[::-1]  # highest resolution first
        self.c_dim = cfg.c_dim
        self.resolution = tuple(cfg.resolution)
        self.channels = cfg.channels
        self.fromrgb = EqualConv(cfg.channels, widths[0], 1, activation=True)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(widths[i], widths[i + 1], d.down_filter) for i in range(cfg.n_up)
        )
        c_last = widths[-1]
        self.mbstd = MinibatchStd(d.mbstd_group, d.mbstd_channels) if d.mbstd_channels > 0 else None
        self.conv = EqualConv(c_last + (d.mbstd_channels if self.mbstd else 0), c_last, 3, activation=True)
        n_base = math.prod(cfg.base_shape)
        self.fc = EqualLinear(c_last * n_base, c_last, activation=True)
        cmap = (d.cmap_dim or c_last) if cfg.c_dim > 0 else 0
        self.out = EqualLinear(c_last, cmap if cmap else 1)
        self.cmap_dim = cmap
        if cmap:
            self.embed = EqualLinear(cfg.c_dim, cmap)
        self.channels_last = False

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.resolution or x.shape[1] != self.channels:
            raise ValueError(f"D expects [N, {self.channels}, {self.resolution}], got {list(x.shape)}")
        if (dtype := autocast_dtype(x)) is not None:
            x = x.to(dtype)
        if self.channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.fromrgb(x)
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x).float()
        if self.cmap_dim:
            if c is None:
                raise ValueError("this discriminator is conditional: pass labels c [N, c_dim]")
            cmap = normalize_2nd_moment(self.embed(c.float()).float())
            x = (x * cmap).sum(dim=1, keepdim=True) * (1.0 / math.sqrt(self.cmap_dim))
        return x

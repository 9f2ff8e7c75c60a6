"""Style-based 3D generator: mapping network + synthesis network ("orig" architecture).

Shapes: ``z [N, z_dim]`` -> ``ws [N, num_ws, w_dim]`` -> volume ``[N, channels, D, H, W]``
with intensities nominally in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from stylegan3d.config import ModelConfig
from stylegan3d.nn.layers import SQRT2, EqualLinear, autocast_dtype, lrelu_clamp_, normalize_2nd_moment
from stylegan3d.nn.modulated import ModulatedConv

NOISE_MODES = ("const", "random", "none")
"""Noise modes of the synthesis network: the fixed per-layer maps, fresh random maps, or no noise."""


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w through pixel norm and ``num_layers`` FC layers.

    Tracks the running mean ``w_avg`` (decay ``w_avg_beta``) during training for the
    truncation trick.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        c_dim: int = 0,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = z_dim, w_dim, c_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = EqualLinear(c_dim, w_dim) if c_dim > 0 else None
        dims = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        x = normalize_2nd_moment(z.float())
        if self.embed is not None:
            if c is None:
                raise ValueError("this mapping network is conditional: pass labels c [N, c_dim]")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.float()))], dim=1)
        for layer in self.layers:
            x = layer(x)
        x = x.float()
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            ws = truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)
        return ws


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick: move ``ws [N, L, w_dim]`` toward ``w_avg`` by factor psi (first ``cutoff`` layers)."""
    ws = ws.clone()
    sl = slice(None, cutoff)
    ws[:, sl] = w_avg.lerp(ws[:, sl], psi)
    return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3x3 conv (optionally 2x upsampling) + per-voxel noise + bias + lrelu."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: tuple[int, ...],
        up: int = 1,
        up_taps: list[float] | None = None,
        up_gain: str = "unit",
        clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv(
            in_channels,
            out_channels,
            w_dim,
            3,
            up=up,
            up_taps=up_taps or [1, 3, 3, 1],
            up_gain=up_gain,
            spatial_dims=len(resolution),
        )
        self.resolution = tuple(resolution)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(1, 1, *resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.clamp = clamp

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        noise: torch.Tensor | None = None,
        fused: bool | None = None,
    ) -> torch.Tensor:
        # lrelu(y) * sqrt(2) == lrelu(sqrt(2) * y): the activation gain is folded into the conv's
        # demodulation, noise strength and bias, and the rest runs in place on the fresh conv output.
        x = self.conv(x, w, fused=fused, gain=SQRT2, bias=self.bias * SQRT2)
        if noise is None:
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
            elif noise_mode == "const":
                noise = self.noise_const
        if noise is not None:
            x = x.add_((noise * (self.noise_strength * SQRT2)).to(x.dtype))
        return lrelu_clamp_(x, self.clamp)


class ToRGB(nn.Module):
    """Modulated 1x1x1 conv without demodulation, plus bias: features -> output channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, spatial_dims: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, w_dim, 1, demodulate=False, spatial_dims=spatial_dims)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        return self.conv(x, w, fused=fused, bias=self.bias)


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> volume ``[N, channels, *resolution]``.

    Layer order (one style vector each): base conv, then per upsampling stage an up-conv
    and a conv, then ToRGB; ``num_ws = 2 * n_up + 2``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = cfg.stage_widths("g")
        base = list(cfg.base_shape)
        nd = len(base)
        self.num_ws = cfg.num_ws
        self.w_dim = cfg.w_dim
        self.resolution = tuple(cfg.resolution)
        self.const = nn.Parameter(torch.randn(widths[0], *base))
        g = cfg.g
        layers = [SynthesisLayer(widths[0], widths[0], cfg.w_dim, tuple(base), clamp=g.conv_clamp)]
        res = base
        for s in range(1, cfg.n_up + 1):
            res = [r * 2 for r in res]
            layers.append(
                SynthesisLayer(
                    widths[s - 1],
                    widths[s],
                    cfg.w_dim,
                    tuple(res),
                    up=2,
                    up_taps=g.up_filter,
                    up_gain=g.up_filter_gain,
                    clamp=g.conv_clamp,
                )
            )
            layers.append(SynthesisLayer(widths[s], widths[s], cfg.w_dim, tuple(res), clamp=g.conv_clamp))
        self.layers = nn.ModuleList(layers)
        self.torgb = ToRGB(widths[-1], cfg.channels, cfg.w_dim, spatial_dims=nd)
        self.channels_last = False
        self.fused: bool | None = None

    def noise_shapes(self) -> list[tuple[int, ...]]:
        """Shapes ``[1, 1, *res]`` of the per-layer noise inputs (for projection)."""
        return [tuple(layer.noise_const.shape) for layer in self.layers]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}")
        n = ws.shape[0]
        x = self.const.unsqueeze(0).expand(n, *self.const.shape)
        if (dtype := autocast_dtype(ws)) is not None:
            x = x.to(dtype)
        if self.channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        else:
            x = x.contiguous()
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], noise_mode, None if noise is None else noise[i], fused=self.fused)
        return self.torgb(x, ws[:, -1], fused=self.fused).float().contiguous()


class Generator(nn.Module):
    """Mapping + synthesis. ``G(z, c)`` -> ``[N, channels, D, H, W]`` in about [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.w_dim, self.c_dim = cfg.z_dim, cfg.w_dim, cfg.c_dim
        self.num_ws = cfg.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim,
            cfg.w_dim,
            cfg.num_ws,
            cfg.c_dim,
            cfg.g.mapping_layers,
            cfg.g.mapping_lr_mul,
            cfg.g.w_avg_beta,
        )
        self.synthesis = SynthesisNetwork(cfg)
        if cfg.g.fused_modconv != "auto":
            self.synthesis.fused = cfg.g.fused_modconv == "fused"

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def set_channels_last(self, enabled: bool = True) -> Generator:
        """Run the synthesis in ``channels_last_3d`` memory format (faster with bf16 on CPU)."""
        self.synthesis.channels_last = enabled
        return self


def seeds_to_z(seeds: list[int], z_dim: int) -> torch.Tensor:
    """Latents ``[N, z_dim]`` for integer seeds: ``z = RandomState(seed).randn(z_dim)``.

    The same convention as NVlabs' tools, independent of torch's RNG and device, so a seed
    names the same latent everywhere (generate, metrics, mix, training snapshots).
    """
    import numpy as np

    return torch.from_numpy(np.stack([np.random.RandomState(int(s) % (2**32)).randn(z_dim) for s in seeds])).float()


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map network output in [-1, 1] to stored intensities in [0, 1] (clamped)."""
    return ((x.float() + 1.0) * 0.5).clamp(0.0, 1.0)

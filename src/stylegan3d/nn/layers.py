"""Basic building blocks: equalised-learning-rate layers and separable FIR resampling.

Everything works on ``[N, C, *spatial]`` tensors; the number of spatial dims (2 or 3)
is read from the input, so the maths is N-D clean and 3D first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv_nd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """``F.conv{1,2,3}d`` picked from ``x.ndim``."""
    return _CONV[x.ndim - 2](x, weight, bias, **kwargs)


def conv_transpose_nd(x: torch.Tensor, weight: torch.Tensor, **kwargs) -> torch.Tensor:
    """``F.conv_transpose{1,2,3}d`` picked from ``x.ndim``."""
    return _CONV_T[x.ndim - 2](x, weight, **kwargs)


def lrelu_gain(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """Leaky ReLU(0.2) times sqrt(2): keeps unit second moment for unit-variance input."""
    return F.leaky_relu(x, slope) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: scale each vector to unit root-mean-square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate.

    Weights are stored ~N(0, 1) / lr_mul and scaled by lr_mul / sqrt(in_features) at run
    time, so Adam's per-parameter step sizes are the same for every layer.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, w.to(x.dtype), b.to(x.dtype) if b is not None else None)
        return lrelu_gain(x) if self.activation else x

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, act={self.activation}"


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> torch.Tensor:
    """1-D FIR kernel normalised to sum ``gain`` (e.g. [1, 3, 3, 1] binomial)."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    return k * (gain / k.sum())


def fir_taps(taps: Sequence[float], gain: float = 1.0) -> tuple[float, ...]:
    """The values of :func:`fir_kernel` as Python floats (works while building on the meta device)."""
    total = float(sum(taps))
    return tuple(float(t) * gain / total for t in taps)


def fir_filter(x: torch.Tensor, kernel: torch.Tensor | Sequence[float], pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Depthwise separable FIR filter over every spatial axis of ``[N, C, *spatial]``.

    The same 1-D ``kernel`` (a tensor, or the taps as Python floats) is applied along each axis
    (total DC gain = kernel.sum()**dims), after zero-padding ``pad`` (before, after) voxels on each
    side of each axis.

    On CPU each axis is a sum of shifted slices (:func:`fir_axis`), several times faster than the
    depthwise ``conv3d`` used on other devices (measured in docs/benchmarks.md).
    """
    nd = x.ndim - 2
    if x.device.type == "cpu":
        taps = kernel.tolist() if isinstance(kernel, torch.Tensor) else list(kernel)
        taps = tuple(float(t) for t in reversed(taps))  # true convolution, not correlation
        for axis in range(nd):
            x = _FirAxis.apply(x, taps, 2 + axis, pad[0], pad[1])
        return x
    return fir_filter_depthwise(x, kernel, pad)


def fir_filter_depthwise(
    x: torch.Tensor, kernel: torch.Tensor | Sequence[float], pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """:func:`fir_filter` as zero padding plus one depthwise convolution per axis (its non-CPU form)."""
    nd = x.ndim - 2
    c = x.shape[1]
    if pad[0] or pad[1]:
        x = F.pad(x, [pad[0], pad[1]] * nd)
    k = torch.as_tensor(kernel).to(device=x.device, dtype=x.dtype).flip(0)
    for axis in range(nd):
        shape = [1, 1] + [1] * nd
        shape[2 + axis] = k.numel()
        x = conv_nd(x, k.reshape(shape).expand(c, *shape[1:]), groups=c)
    return x


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 5-D tensor is laid out ``channels_last_3d`` (and not also plainly contiguous)."""
    return x.ndim == 5 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)


def _same_format_empty_like(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    fmt = torch.channels_last_3d if is_channels_last(x) else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)


def fir_axis(x: torch.Tensor, taps: Sequence[float], dim: int, pad0: int, pad1: int) -> torch.Tensor:
    """1-D correlation along ``dim``: ``out[o] = sum_t taps[t] * x[o + t - pad0]`` (zero outside ``x``).

    Output length ``L + pad0 + pad1 - len(taps) + 1``; negative pads crop. Computed as one scaled
    slice plus ``len(taps) - 1`` in-place slice additions (no padded copy, no convolution). No autograd.
    """
    length = x.shape[dim]
    n_out = length + pad0 + pad1 - len(taps) + 1
    shape = list(x.shape)
    shape[dim] = n_out
    spans = [(max(0, pad0 - t), min(n_out, length + pad0 - t)) for t in range(len(taps))]
    live = [t for t, (lo, hi) in enumerate(spans) if hi > lo and taps[t] != 0.0]
    out = _same_format_empty_like(x, shape)
    if not live:
        return out.zero_()
    full = max(live, key=lambda t: spans[t][1] - spans[t][0])  # written, not accumulated: no zero fill
    lo, hi = spans[full]
    torch.mul(x.narrow(dim, lo + full - pad0, hi - lo), taps[full], out=out.narrow(dim, lo, hi - lo))
    out.narrow(dim, 0, lo).zero_()  # only the border slabs that tap does not reach
    out.narrow(dim, hi, n_out - hi).zero_()
    for t in live:
        if t != full:
            lo, hi = spans[t]
            out.narrow(dim, lo, hi - lo).add_(x.narrow(dim, lo + t - pad0, hi - lo), alpha=taps[t])
    return out


class _FirAxis(torch.autograd.Function):
    """:func:`fir_axis` with autograd; the backward is again a ``_FirAxis`` (reversed taps, pads
    ``len - 1 - pad``), so double backward (R1, path length) works."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: tuple[float, ...], dim: int, pad0: int, pad1: int) -> torch.Tensor:
        ctx.taps, ctx.dim, ctx.pads = taps, dim, (pad0, pad1)
        return fir_axis(x, taps, dim, pad0, pad1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        t = len(ctx.taps)
        gx = _FirAxis.apply(grad, ctx.taps[::-1], ctx.dim, t - 1 - ctx.pads[0], t - 1 - ctx.pads[1])
        return gx, None, None, None, None


class Blur(nn.Module):
    """Separable FIR low-pass with padding (used before strided convs in D)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain), persistent=False)
        self.taps = fir_taps(taps, gain)  # Python floats: no tensor read per call (CPU path)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fir_filter(x, self.taps if x.device.type == "cpu" else self.kernel, self.pad)


class EqualConv(nn.Module):
    """N-D convolution with equalised learning rate and optional 2x FIR downsampling.

    ``down=2`` reproduces StyleGAN2's ``conv_downsample``: blur with the low-pass filter
    (padded so the output is exactly half size), then a stride-2 valid convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: bool = False,
        down: int = 1,
        filter_taps: Sequence[float] = (1, 3, 3, 1),
        spatial_dims: int = 3,
        clamp: float | None = None,
        out_gain: float = 1.0,
    ) -> None:
        super().__init__()
        shape = (out_channels, in_channels) + (kernel_size,) * spatial_dims
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**spatial_dims)
        self.activation = activation
        self.down = down
        self.kernel_size = kernel_size
        self.clamp = clamp
        self.out_gain = out_gain  # constant output scale folded into the weights (e.g. 1/sqrt(2) of a residual sum)
        if down > 1:
            p = (len(filter_taps) - down) + (kernel_size - 1)
            self.blur = Blur(filter_taps, pad=((p + 1) // 2, p // 2))
            self.padding = 0
        else:
            self.blur = None
            self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lrelu(y) * sqrt(2) == lrelu(sqrt(2) * y): the gain rides on the weights and bias, the bias
        # is added by the convolution, and the activation runs in place (one pass over the output).
        gain = self.out_gain * (SQRT2 if self.activation else 1.0)
        w = (self.weight * (self.weight_gain * gain)).to(x.dtype)
        b = (self.bias * gain).to(x.dtype) if self.bias is not None else None
        if self.blur is not None:
            x = self.blur(x)
        x = conv_nd(x, w, b, stride=self.down, padding=self.padding)
        return lrelu_clamp_(x, self.clamp) if self.activation else _clamp(x, self.clamp)

    def extra_repr(self) -> str:
        w = self.weight.shape
        return f"in={w[1]}, out={w[0]}, k={self.kernel_size}, down={self.down}, act={self.activation}"


def lrelu_clamp_(x: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """Leaky ReLU(0.2) in place (its sqrt(2) gain the caller already applied), then optional clamp.

    Only for a fresh tensor that autograd has not saved (e.g. a convolution's output). The clamp
    is out of place: the in-place leaky ReLU saves its output for backward, so clamping that
    output in place would invalidate it.
    """
    return _clamp(F.leaky_relu_(x, 0.2), clamp)


def _clamp(x: torch.Tensor, clamp: float | None) -> torch.Tensor:
    return x.clamp(-clamp, clamp) if clamp is not None else x


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The low-precision dtype autocast uses for ``x``'s device, or None when autocast is off."""
    kind = x.device.type
    if kind not in ("cpu", "cuda", "xpu") or not torch.is_autocast_enabled(kind):
        return None
    return torch.get_autocast_dtype(kind)

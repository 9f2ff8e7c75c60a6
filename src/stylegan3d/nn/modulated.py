"""Modulated convolution with weight demodulation (StyleGAN2), in 3D.

For a style vector ``s`` (one scale per input channel) and weight ``w[o, i, k]``::

    w'[o, i, k] = w[o, i, k] * s[i]
    w''[o, i, k] = w'[o, i, k] / sqrt(sum_{i,k} w'[o, i, k]**2 + 1e-8)     (demodulation)

Two numerically equivalent forms are provided:

* **fused** — the batch is folded into the channel axis and each sample's modulated
  kernel is applied by one grouped convolution (``groups=N``);
* **non-fused** — ``x * s`` -> shared convolution -> ``* demod`` per output channel,
  which never materialises per-sample kernels.

Upsampling convs use a stride-2 transposed convolution followed by a separable FIR
low-pass (zero-insertion + filtering), as the reference code does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stylegan3d.nn.layers import (
    EqualLinear,
    conv_nd,
    conv_transpose_nd,
    fir_filter,
    fir_kernel,
    fir_taps,
    is_channels_last,
)


def _keep_format(y: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return y.contiguous(memory_format=torch.channels_last_3d) if channels_last else y


def up_padding(taps: int, kernel_size: int, up: int = 2) -> tuple[int, int]:
    """FIR padding after a stride-``up`` transposed conv so the output is exactly ``up`` x input."""
    p = (taps - up) - (kernel_size - 1)
    return (p + 1) // 2 + up - 1, p // 2 + 1


def demod_coefficients(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample, per-output-channel demodulation factors ``[N, Cout]``.

    ``weight`` is ``[Cout, Cin, *k]``, ``styles`` is ``[N, Cin]``. As in the TF references
    (stylegan2, 3D-StyleGAN) ``weight`` already carries its equalised-lr gain, so ``eps`` is added
    to the sum of squares of the equalised kernel (stylegan2-ada-pytorch adds it to the raw kernel's,
    a ``fan_in`` times smaller relative epsilon; both are negligible for non-degenerate kernels).
    """
    w2 = weight.float().square().flatten(2).sum(2)  # [Cout, Cin]
    return (styles.float().square() @ w2.t() + eps).rsqrt()


def modulated_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: int = 1,
    up_kernel: torch.Tensor | Sequence[float] | None = None,
    fused: bool = True,
    gain: float = 1.0,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply a modulated (and optionally demodulated, 2x upsampling) convolution.

    ``gain * conv(x) + bias`` is computed without extra passes over the output: the gain rides on
    the demodulation factors (or styles), the bias goes into the convolution (fused) or is added in
    the same pass as the demodulation (non-fused) or in place after the FIR (upsampling).

    Args:
        x: input ``[N, Cin, *spatial]``.
        weight: kernel ``[Cout, Cin, *k]`` already multiplied by its equalised-lr gain.
        styles: per-sample input-channel scales ``[N, Cin]``.
        demodulate: normalise each output channel to unit expected variance.
        up: 1 or 2; with 2, stride-2 transposed conv then FIR ``up_kernel`` (1-D taps, tensor or floats).
        fused: grouped-conv form (True) or scale-conv-scale form (False).
        gain: output scale (e.g. the sqrt(2) of a following leaky ReLU, which is positive-homogeneous).
        bias: per-output-channel bias ``[Cout]`` added after the gain.

    Returns:
        ``[N, Cout, *spatial * up]``.
    """
    n, cin = x.shape[:2]
    cout = weight.shape[0]
    k = weight.shape[2]
    nd = x.ndim - 2
    cl = is_channels_last(x)
    if demodulate:
        dcoefs = demod_coefficients(weight, styles) * gain
    else:
        dcoefs = None
        styles = styles * gain if gain != 1.0 else styles
    pad = up_padding(len(up_kernel), k, up) if up > 1 else None
    if k == 1 and up == 1:
        y = _modulated_pointwise(x, weight, styles, dcoefs, cl)
        return y if bias is None else y.add_(_channel_view(bias, y))
    if fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, cin, *([1] * nd)).to(weight.dtype)
        if dcoefs is not None:
            w = w * dcoefs.reshape(n, cout, 1, *([1] * nd)).to(w.dtype)
        xg = _keep_format(x.reshape(1, n * cin, *x.shape[2:]), cl)
        if up > 1:
            wt = w.transpose(1, 2).reshape(n * cin, cout, *w.shape[3:])
            y = conv_transpose_nd(xg, wt.to(x.dtype), stride=up, groups=n)
        else:
            b = bias.to(x.dtype).repeat(n) if bias is not None else None
            y = conv_nd(xg, w.reshape(n * cout, cin, *w.shape[3:]).to(x.dtype), b, padding=k // 2, groups=n)
            bias = None
        y = y.reshape(n, cout, *y.shape[2:])
        y = _keep_format(y, cl)
    else:
        x = x * styles.reshape(n, cin, *([1] * nd)).to(x.dtype)
        if up > 1:
            y = conv_transpose_nd(x, weight.transpose(0, 1).to(x.dtype), stride=up)
        else:
            y = conv_nd(x, weight.to(x.dtype), padding=k // 2)
        if dcoefs is not None:
            scale = dcoefs.reshape(n, cout, *([1] * nd)).to(y.dtype)
            if bias is not None and up == 1:
                y, bias = torch.addcmul(_channel_view(bias, y), y, scale), None
            else:
                y = y * scale
    if up > 1:
        y = fir_filter(y, up_kernel, pad)
    return y if bias is None else y.add_(_channel_view(bias, y))


def _channel_view(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[C]`` -> ``[1, C, 1, ...]`` in ``like``'s dtype, to broadcast over ``[N, C, *spatial]``."""
    return bias.to(like.dtype).reshape([1, -1] + [1] * (like.ndim - 2))


def _modulated_pointwise(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: torch.Tensor | None, cl: bool
) -> torch.Tensor:
    """1x1x1 modulated conv (ToRGB) as one batched matrix product with the per-sample kernels
    ``[N, Cout, Cin]`` (the same maths as both conv forms; 1.3-1.8x faster than a grouped 1x1x1 conv
    on CPU, ``stylegan3d bench --parts kernels``)."""
    n, cin = x.shape[:2]
    cout = weight.shape[0]
    w = weight.reshape(1, cout, cin) * styles.reshape(n, 1, cin).to(weight.dtype)
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, cout, 1).to(w.dtype)
    w = w.to(x.dtype)
    spatial = x.shape[2:]
    if cl:  # [N, *S, Cin] is a contiguous view: multiply from the right, keep channels last
        y = torch.matmul(x.movedim(1, -1).reshape(n, -1, cin), w.transpose(1, 2))
        return y.reshape(n, *spatial, cout).movedim(-1, 1)
    return torch.matmul(w, x.reshape(n, cin, -1)).reshape(n, cout, *spatial)


class ModulatedConv(nn.Module):
    """Modulated conv layer: learned kernel + affine map from w to the style ``s``.

    The affine's bias is initialised to 1 so that styles start near identity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 3,
        demodulate: bool = True,
        up: int = 1,
        up_taps: Sequence[float] = (1, 3, 3, 1),
        up_gain: str = "unit",
        spatial_dims: int = 3,
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        shape = (out_channels, in_channels) + (kernel_size,) * spatial_dims
        self.weight = nn.Parameter(torch.randn(shape))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**spatial_dims)
        self.demodulate = demodulate
        self.up = up
        self.fused: bool | None = None  # None = auto (see forward)
        if up > 1:
            total = float(up**spatial_dims) if up_gain == "unit" else float(up**2)
            self.register_buffer("up_kernel", fir_kernel(up_taps, total ** (1.0 / spatial_dims)), persistent=False)
            self.up_taps: tuple[float, ...] | None = fir_taps(up_taps, total ** (1.0 / spatial_dims))
        else:
            self.up_kernel = None
            self.up_taps = None

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        fused: bool | None = None,
        gain: float = 1.0,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[N, Cin, *S]``, ``w [N, w_dim]`` -> ``gain * modconv(x) + bias``, ``[N, Cout, *S * up]``."""
        styles = self.affine(w.float())
        if fused is None:
            fused = self.fused
        if fused is None:
            # CUDA: the reference's choice (grouped conv except in training). CPU: non-fused, measured
            # in docs/benchmarks.md (equal within noise or faster: G forward up to 1.9x, projection 1.6x,
            # since under autograd the grouped form always computes a per-sample weight gradient).
            fused = x.is_cuda and not self.training
        return modulated_conv(
            x,
            self.weight * self.weight_gain,
            styles,
            demodulate=self.demodulate,
            up=self.up,
            up_kernel=self.up_taps if x.device.type == "cpu" else self.up_kernel,
            fused=fused,
            gain=gain,
            bias=bias,
        )

    def extra_repr(self) -> str:
        w = self.weight.shape
        return f"in={w[1]}, out={w[0]}, k={w[2]}, up={self.up}, demod={self.demodulate}"

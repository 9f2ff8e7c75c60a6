"""The CPU fast paths used by the networks equal the plain convolution formulations.

``fir_filter`` on CPU runs as shifted-slice sums (``_FirAxis``) instead of a depthwise conv, and
1x1x1 modulated convs (ToRGB) run as a batched matrix product: same numbers, forward and backward.
"""

import pytest
import torch
import torch.nn.functional as F

from stylegan3d.nn import fir_filter, fir_kernel, modulated_conv
from stylegan3d.nn.layers import _FirAxis, fir_axis, fir_filter_depthwise


def _depthwise_reference(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-pad, then one depthwise conv3d with the flipped outer-product kernel (true convolution)."""
    c = x.shape[1]
    k3 = kernel[:, None, None] * kernel[None, :, None] * kernel[None, None, :]
    xp = F.pad(x, [pad[0], pad[1]] * 3)
    return F.conv3d(xp, k3.flip([0, 1, 2]).expand(c, 1, *k3.shape).to(x.dtype), groups=c)


@pytest.mark.parametrize("pad", [(0, 0), (1, 1), (1, 2), (2, 1), (3, 3)])
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [0.5, -1, 2, 0.25, 3]])
def test_fir_filter_matches_depthwise_conv(pad, taps):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    k = fir_kernel(taps, 2.0).double()
    torch.testing.assert_close(fir_filter(x, k, pad), _depthwise_reference(x, k, pad))
    # the taps may also be given as Python floats (what the layers pass on CPU)
    torch.testing.assert_close(fir_filter(x, k.tolist(), pad), _depthwise_reference(x, k, pad))
    # the per-axis depthwise form (what other devices run, and the bench's comparison)
    torch.testing.assert_close(fir_filter_depthwise(x, k, pad), _depthwise_reference(x, k, pad))


def test_fir_axis_crops_with_negative_pads():
    x = torch.arange(10.0).reshape(1, 1, 10)
    y = fir_axis(x, (1.0, 1.0), 2, -2, -3)  # out[o] = x[o + 2] + x[o + 3], 10 - 5 - 1 = 4 outputs
    assert y.flatten().tolist() == [5.0, 7.0, 9.0, 11.0]


def test_fir_filter_keeps_channels_last():
    x = torch.randn(2, 4, 5, 6, 7).contiguous(memory_format=torch.channels_last_3d)
    y = fir_filter(x, fir_kernel([1, 3, 3, 1], 2.0), (1, 1))
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(y, _depthwise_reference(x.contiguous(), fir_kernel([1, 3, 3, 1], 2.0), (1, 1)))


def test_fir_axis_gradients_and_double_backward():
    """The backward is the adjoint filter, itself differentiable (R1 and path length need this)."""
    x = torch.randn(1, 2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    taps = (0.3, -1.2, 0.7, 2.0)

    def fn(t):
        return _FirAxis.apply(t, taps, 2, 1, 2)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_fir_filter_backward_matches_conv_backward():
    torch.manual_seed(1)
    k = fir_kernel([1, 3, 3, 1], 2.0).double()
    x1 = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(2, 3, 3, 4, 5, dtype=torch.float64)  # 4 taps, pad (1, 0): each side shrinks by 2
    fir_filter(x1, k, (1, 0)).backward(g)
    _depthwise_reference(x2, k, (1, 0)).backward(g)
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("demod", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_modulated_conv_equals_grouped_conv(demod, channels_last):
    """The 1x1x1 path (batched matmul) == the per-sample modulated kernels applied by conv3d."""
    torch.manual_seed(2)
    x = torch.randn(3, 5, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(2, 5, 1, 1, 1, dtype=torch.float64)
    styles = torch.rand(3, 5, dtype=torch.float64) + 0.5
    xin = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
    for fused in (True, False):
        out = modulated_conv(xin, weight, styles, demod, fused=fused)
        assert out.shape == (3, 2, 4, 5, 6)
        assert out.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
        for n in range(3):
            wn = weight * styles[n].reshape(1, 5, 1, 1, 1)
            if demod:
                wn = wn / (wn.square().sum(dim=[1, 2, 3, 4], keepdim=True) + 1e-8).sqrt()
            torch.testing.assert_close(out[n : n + 1], F.conv3d(x[n : n + 1], wn))


def test_pointwise_modulated_conv_under_bf16_autocast():
    x = torch.randn(2, 8, 3, 4, 5)
    weight, styles = torch.randn(1, 8, 1, 1, 1), torch.rand(2, 8) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = modulated_conv(x.bfloat16(), weight, styles, False)
    ref = modulated_conv(x, weight, styles, False)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)

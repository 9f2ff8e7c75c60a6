"""Network maths against the references (3D-StyleGAN TF code, NVlabs stylegan2 / stylegan2-ada-pytorch).

Every expected number here is computed independently in float64 from the reference formulas
(explicit per-sample kernels, zero insertion, full 3-D FIR kernels, explicit group loops) with
plain torch primitives; none of it calls the stylegan3d code under test.

Already covered elsewhere, not repeated here: the whole generator forward against a numpy port
of the 3D-StyleGAN TF code, 'reference' FIR gain mode, the mapping's lr multiplier on weight and
bias at run time, and the up-conv kernel flip (tests/tfimport/test_tf_import.py
::test_forward_matches_numpy_reference / ::test_forward_check_detects_wrong_flip_conventions);
DC gain 8 of the up FIR and 1 of the down blur (tests/nn/test_networks.py
::test_upsampling_dc_gain_is_one / ::test_downsampling_dc_gain_is_one); separable FIR == 3-D
outer-product kernel (::test_fir_filter_is_separable_convolution).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stylegan3d.nn import EqualConv, EqualLinear, MappingNetwork, MinibatchStd, ModulatedConv
from stylegan3d.nn.generator import SynthesisLayer, ToRGB

D64 = torch.float64


def _lrelu2(x: torch.Tensor) -> torch.Tensor:
    """The reference's fused 'lrelu': leaky ReLU(0.2) times sqrt(2)."""
    return torch.where(x >= 0, x, 0.2 * x) * math.sqrt(2.0)


def _kernel3(taps: list[float], dc_gain: float) -> torch.Tensor:
    """3D-StyleGAN's ``_setup_kernel``: 1-D taps outer-producted over three axes, normalised to
    sum 1, times the DC gain (the reference uses ``factor**2`` = 4 for up, 1 for down)."""
    k = torch.tensor(taps, dtype=D64)
    k3 = k[:, None, None] * k[None, :, None] * k[None, None, :]
    return k3 / k3.sum() * dc_gain


def _fir3(x: torch.Tensor, k3: torch.Tensor, pad0: int, pad1: int) -> torch.Tensor:
    """``upfirdn_3d`` without resampling: zero pad, then true convolution with the full 3-D kernel."""
    c = x.shape[1]
    xp = F.pad(x, [pad0, pad1] * 3)
    return F.conv3d(xp, k3.flip(0, 1, 2).expand(c, 1, *k3.shape).contiguous(), groups=c)


def _up_conv(x: torch.Tensor, weight: torch.Tensor, taps: list[float], dc_gain: float) -> torch.Tensor:
    """2x up-conv written out: insert zeros, full convolution with the 3x3x3 kernel, then the FIR with
    3D-StyleGAN's ``upsample_conv_3d`` padding. (A stride-2 transposed conv == zero insertion + true
    convolution; the kernel-flip convention itself is pinned by the tfimport test.)"""
    n, c, *size = x.shape
    z = torch.zeros(n, c, *[2 * s - 1 for s in size], dtype=x.dtype)
    z[:, :, ::2, ::2, ::2] = x
    k = weight.shape[-1]
    y = F.conv3d(F.pad(z, [k - 1] * 6), weight.flip(2, 3, 4))
    kf = len(taps)
    pad0, pad1 = (kf + 2 - k) // 2, (kf - 2 - k + 3) // 2  # upsample_conv_3d, factor 2
    return _fir3(y, _kernel3(taps, dc_gain), pad0, pad1)


def _modconv_ref(x, w, weight, aff_w, aff_b, demodulate=True, up=False, taps=(1, 3, 3, 1), dc_gain=8.0):
    """``modulated_conv3d_layer`` of the reference, per sample, in float64.

    styles s = w @ (A / sqrt(w_dim)) + b; kernel W / sqrt(Cin * k^3) * s, demodulated per output
    channel by 1 / sqrt(sum over Cin and the k^3 taps of its square + 1e-8).
    """
    cin, k = weight.shape[1], weight.shape[-1]
    styles = w @ (aff_w / math.sqrt(aff_w.shape[1])).t() + aff_b
    out = []
    for n in range(x.shape[0]):
        wn = weight / math.sqrt(cin * k**3) * styles[n].reshape(1, cin, 1, 1, 1)
        if demodulate:
            wn = wn / (wn.square().sum(dim=(1, 2, 3, 4), keepdim=True) + 1e-8).sqrt()
        xn = x[n : n + 1]
        out.append(_up_conv(xn, wn, list(taps), dc_gain) if up else F.conv3d(xn, wn, padding=k // 2))
    return torch.cat(out)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if p.ndim <= 1 else 1.0))


# ------------------------------------------------------------------------------------------------
# Synthesis layers


@pytest.mark.parametrize(
    ("up", "gain_mode", "taps", "dc_gain"),
    [
        (1, "unit", [1, 3, 3, 1], None),
        (2, "unit", [1, 3, 3, 1], 8.0),  # 2**3: zero insertion keeps 1 voxel in 8
        (2, "reference", [1, 3, 3, 1], 4.0),  # 3D-StyleGAN's 2-D factor**2
        (2, "unit", [1, 3, 3, 3, 1], 8.0),
    ],
    ids=["conv", "up-unit", "up-reference", "up-unit-5tap"],
)
def test_synthesis_layer_equals_the_reference_formula(up, gain_mode, taps, dc_gain):
    """modconv (fan-in Cin*k^3, affine gain 1/sqrt(w_dim), demod eps 1e-8) -> (+ noise * strength)
    -> + bias -> lrelu * sqrt(2), with the up-conv's full 3-D FIR kernel normalised to ``dc_gain``."""
    cin, cout, wdim = 3, 4, 5
    layer = SynthesisLayer(cin, cout, wdim, (6, 4, 8) if up == 2 else (3, 2, 4), up=up, up_taps=taps, up_gain=gain_mode)
    layer = layer.double()
    _randomise(layer, seed=up)
    g = torch.Generator().manual_seed(10 + up)
    x = torch.randn(2, cin, 3, 2, 4, generator=g, dtype=D64)
    w = torch.randn(2, wdim, generator=g, dtype=D64)
    noise = torch.randn(2, 1, *layer.resolution, generator=g, dtype=D64)
    conv = layer.conv
    expected = _modconv_ref(
        x,
        w,
        conv.weight.detach(),
        conv.affine.weight.detach(),
        conv.affine.bias.detach(),
        up=up == 2,
        taps=taps,
        dc_gain=dc_gain,
    )
    expected = _lrelu2(expected + noise * layer.noise_strength.detach() + layer.bias.detach().reshape(1, -1, 1, 1, 1))
    for fused in (True, False):
        with torch.no_grad():
            got = layer(x, w, noise=noise, fused=fused)
        assert got.shape == expected.shape == (2, cout, *layer.resolution)
        # styles and demodulation factors are computed in float32 by design
        torch.testing.assert_close(got, expected, rtol=2e-6, atol=2e-6)


def test_torgb_is_a_modulated_1x1x1_conv_without_demodulation():
    """ToRGB: kernel W / sqrt(Cin) (k^3 = 1) times the style, no demodulation, plus bias."""
    cin, wdim = 5, 6
    torgb = ToRGB(cin, 2, wdim).double()
    _randomise(torgb, seed=3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, cin, 2, 3, 4, generator=g, dtype=D64)
    w = torch.randn(3, wdim, generator=g, dtype=D64)
    c = torgb.conv
    expected = _modconv_ref(x, w, c.weight.detach(), c.affine.weight.detach(), c.affine.bias.detach(), demodulate=False)
    expected = expected + torgb.bias.detach().reshape(1, -1, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(torgb(x, w), expected, rtol=2e-6, atol=2e-6)


def test_demodulation_epsilon_is_1e_8_on_the_equalised_kernel():
    """Kernels so small that the epsilon matters: d_o = 1 / sqrt(sum_{i,k} (W_oik / sqrt(Cin k^3) * s_i)^2 + 1e-8).

    With these weights the squared sums are 1e-10, 1e-8 and 1e-6, so an epsilon of another size,
    or one added to the raw (un-equalised) kernel, gives clearly different outputs.
    """
    cin, cout, wdim = 2, 3, 4
    conv = ModulatedConv(cin, cout, wdim, 3).double()
    fan_in = cin * 27
    with torch.no_grad():
        for o, target in enumerate((1e-10, 1e-8, 1e-6)):  # sum of squares of the equalised kernel
            conv.weight[o] = math.sqrt(target)  # each equalised tap: sqrt(target / fan_in)
        conv.affine.weight.zero_()  # styles = bias = 1 exactly
    x = torch.randn(1, cin, 4, 4, 4, generator=torch.Generator().manual_seed(5), dtype=D64)
    with torch.no_grad():
        got = conv(x, torch.zeros(1, wdim, dtype=D64))
    plain = F.conv3d(x, conv.weight.detach() / math.sqrt(fan_in), padding=1)
    for o, target in enumerate((1e-10, 1e-8, 1e-6)):
        expected = plain[:, o] / math.sqrt(target + 1e-8)
        torch.testing.assert_close(got[:, o], expected, rtol=1e-5, atol=0)


def test_initial_values_match_the_reference():
    """Style affine bias 1 (TF: ``apply_bias_act(s) + 1``), noise strength 0, biases 0, const and
    kernels ~N(0, 1) (scaled at run time), mapping weights ~N(0, 1/lr_mul^2) with bias 0."""
    torch.manual_seed(0)
    layer = SynthesisLayer(32, 32, 64, (4, 4, 4))
    torgb = ToRGB(32, 1, 64)
    for conv in (layer.conv, torgb.conv):
        assert torch.equal(conv.affine.bias, torch.ones_like(conv.affine.bias))
        assert conv.affine.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert layer.noise_strength.item() == 0.0
    assert not layer.bias.any() and not torgb.bias.any()
    assert layer.conv.weight.std().item() == pytest.approx(1.0, rel=0.02)  # 27648 samples
    assert layer.conv.weight.mean().item() == pytest.approx(0.0, abs=0.02)
    mapping = MappingNetwork(64, 64, num_ws=2, num_layers=2, lr_mul=0.01)
    for fc in mapping.layers:
        assert fc.weight.std().item() == pytest.approx(100.0, rel=0.05)  # 1 / lr_mul
        assert not fc.bias.any()
    conv = EqualConv(32, 32, 3)
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.02) and not conv.bias.any()


def test_noise_strength_zero_makes_the_layer_independent_of_noise_at_init():
    layer = SynthesisLayer(2, 3, 4, (4, 4, 4)).double()
    x = torch.randn(2, 2, 4, 4, 4, dtype=D64)
    w = torch.randn(2, 4, dtype=D64)
    with torch.no_grad():
        a = layer(x, w, noise=torch.randn(2, 1, 4, 4, 4, dtype=D64))
        b = layer(x, w, noise_mode="none")
    assert torch.equal(a, b)


def test_lr_multiplier_scales_the_adam_step_of_both_weight_and_bias():
    """Equalised lr with lr_mul: the first Adam step moves every *effective* weight by
    lr * lr_mul / sqrt(fan_in) and every effective bias by lr * lr_mul (the reference's
    ``runtime_coef = lrmul / sqrt(fan_in)`` on weights and ``* lrmul`` on biases)."""
    fan_in, lr, lr_mul = 16, 0.1, 0.01
    torch.manual_seed(1)
    fc = EqualLinear(fan_in, 4, lr_mul=lr_mul).double()
    with torch.no_grad():
        fc.bias.normal_()
    x = torch.randn(8, fan_in, dtype=D64)
    r = torch.randn(8, 4, dtype=D64)
    eff_w0 = fc.weight.detach() * (lr_mul / math.sqrt(fan_in))
    eff_b0 = fc.bias.detach() * lr_mul
    # the forward is x @ W_eff^T + b_eff
    torch.testing.assert_close(fc(x), x @ eff_w0.t() + eff_b0, rtol=1e-12, atol=1e-12)
    opt = torch.optim.Adam(fc.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
    (fc(x) * r).sum().backward()
    # first Adam step with beta1 = 0: lr * g / (|g| + eps) on the stored parameter
    step_w = lr * fc.weight.grad.abs() / (fc.weight.grad.abs() + 1e-8)
    step_b = lr * fc.bias.grad.abs() / (fc.bias.grad.abs() + 1e-8)
    opt.step()
    dw = fc.weight.detach() * (lr_mul / math.sqrt(fan_in)) - eff_w0
    db = fc.bias.detach() * lr_mul - eff_b0
    torch.testing.assert_close(dw.abs(), step_w * (lr_mul / math.sqrt(fan_in)), rtol=1e-9, atol=0)
    torch.testing.assert_close(db.abs(), step_b * lr_mul, rtol=1e-9, atol=0)
    assert dw.abs().max().item() == pytest.approx(lr * lr_mul / math.sqrt(fan_in), rel=1e-3)


def test_mapping_network_equals_the_reference_formula():
    """pixel norm (eps 1e-8) then per layer lrelu(x @ (W * lr_mul / sqrt(in))^T + b * lr_mul) * sqrt(2)."""
    mapping = MappingNetwork(6, 5, num_ws=3, num_layers=3, lr_mul=0.01).double()
    _randomise(mapping, seed=7)
    with torch.no_grad():
        for fc in mapping.layers:
            fc.weight.mul_(100.0)
            fc.bias.mul_(100.0)
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(8), dtype=D64)
    x = z / (z.square().mean(1, keepdim=True) + 1e-8).sqrt()
    for fc in mapping.layers:
        wt = fc.weight.detach()
        x = _lrelu2(x @ (wt * (0.01 / math.sqrt(wt.shape[1]))).t() + fc.bias.detach() * 0.01)
    with torch.no_grad():
        ws = mapping(z)
    assert ws.shape == (4, 3, 5)
    # the mapping runs in float32 (inputs are cast), as under autocast
    torch.testing.assert_close(ws.double(), x[:, None].expand(4, 3, 5), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Discriminator


@pytest.mark.parametrize("k", [3, 1], ids=["conv3x3x3", "skip1x1x1"])
def test_downsampling_conv_equals_conv_downsample_3d(k):
    """D's blur + stride-2 conv: 3-D [1,3,3,1] kernel with DC gain 1, 3D-StyleGAN's
    ``conv_downsample_3d`` padding, then a VALID stride-2 conv with W / sqrt(Cin * k^3) (+ lrelu)."""
    cin, cout = 3, 2
    conv = EqualConv(cin, cout, k, bias=k == 3, activation=k == 3, down=2).double()
    _randomise(conv, seed=k)
    x = torch.randn(2, cin, 8, 6, 10, generator=torch.Generator().manual_seed(k), dtype=D64)
    kf = 4
    pad0, pad1 = (kf - 2 + k) // 2, (kf - 2 + k - 1) // 2
    y = _fir3(x, _kernel3([1, 3, 3, 1], 1.0), pad0, pad1)
    y = F.conv3d(y, conv.weight.detach() / math.sqrt(cin * k**3), stride=2)
    if k == 3:
        y = _lrelu2(y + conv.bias.detach().reshape(1, -1, 1, 1, 1))
    with torch.no_grad():
        got = conv(x)
    assert got.shape == (2, cout, 4, 3, 5)
    torch.testing.assert_close(got, y, rtol=1e-12, atol=1e-12)


def test_equal_conv_fan_in_counts_the_k_cubed_taps():
    cin = 5
    conv = EqualConv(cin, 3, 3, activation=True).double()
    _randomise(conv, seed=9)
    x = torch.randn(2, cin, 4, 5, 6, dtype=D64)
    expected = _lrelu2(
        F.conv3d(x, conv.weight.detach() / math.sqrt(cin * 27), padding=1) + conv.bias.detach().reshape(1, -1, 1, 1, 1)
    )
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected, rtol=1e-12, atol=1e-12)


def _mbstd_ref(x: torch.Tensor, group: int, f: int = 1) -> torch.Tensor:
    """The reference minibatch-stddev layer, written as loops: sample n belongs to group
    ``n % (N // G)``; std over the group (population variance + 1e-8), averaged over each channel
    block and every voxel, appended as ``f`` constant feature maps."""
    n, c = x.shape[:2]
    m = n // group
    extra = torch.empty(n, f, *x.shape[2:], dtype=D64)
    for j in range(m):
        members = [j + i * m for i in range(group)]
        xs = x[members].double()  # [G, C, *S]
        std = (xs.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [C, *S]
        for b in range(f):
            value = std[b * (c // f) : (b + 1) * (c // f)].mean()
            for idx in members:
                extra[idx, b] = value
    return torch.cat([x.double(), extra], dim=1)


@pytest.mark.parametrize(("n", "group"), [(8, 4), (4, 4), (2, 2), (1, 1), (12, 4)])
def test_minibatch_stddev_equals_the_reference(n, group):
    """Group size min(4, N), one feature: the reference's exact grouping and statistic."""
    x = torch.randn(n, 6, 3, 4, 5, generator=torch.Generator().manual_seed(n), dtype=D64)
    x[:, 2] *= 3.0  # channels with different spreads
    got = MinibatchStd(group_size=4, num_channels=1)(x)
    assert got.shape == (n, 7, 3, 4, 5)
    assert torch.equal(got[:, :6], x)
    torch.testing.assert_close(got, _mbstd_ref(x, group), rtol=1e-6, atol=1e-7)  # statistic in float32


def test_minibatch_stddev_with_a_batch_the_group_does_not_divide():
    """Deliberate deviation: the reference fails when N is not a multiple of 4 (N > 4); ours uses
    the largest common divisor, e.g. groups of 2 for N = 6."""
    x = torch.randn(6, 4, 2, 3, 2, generator=torch.Generator().manual_seed(6), dtype=D64)
    torch.testing.assert_close(MinibatchStd(4, 1)(x), _mbstd_ref(x, 2), rtol=1e-6, atol=1e-7)


def test_minibatch_stddev_with_two_features_splits_the_channels():
    x = torch.randn(4, 6, 2, 2, 3, generator=torch.Generator().manual_seed(2), dtype=D64)
    x[:, :3] *= 4.0
    torch.testing.assert_close(MinibatchStd(4, 2)(x), _mbstd_ref(x, 4, f=2), rtol=1e-6, atol=1e-7)

"""Maths of the networks: modulation, resampling filters, shapes, gradients, precision."""

import pytest
import torch

from stylegan3d.config import apply_overrides, list_presets, load_preset
from stylegan3d.nn import Discriminator, Generator, count_params, fir_filter, fir_kernel, modulated_conv
from stylegan3d.nn.layers import EqualConv
from stylegan3d.nn.modulated import ModulatedConv, up_padding


@pytest.fixture(scope="module")
def tiny_cfg():
    return apply_overrides(load_preset("demo"), ["width=8", "z_dim=16"])


def test_demodulated_output_has_unit_variance():
    torch.manual_seed(0)
    conv = ModulatedConv(64, 64, w_dim=32, kernel_size=3)
    x = torch.randn(4, 64, 12, 12, 12)
    w = torch.randn(4, 32)
    y = conv(x, w)
    inner = y[:, :, 1:-1, 1:-1, 1:-1]  # borders see zero padding
    assert inner.var().item() == pytest.approx(1.0, rel=0.1)
    # without demodulation the variance follows the (random) styles instead
    conv.demodulate = False
    assert abs(conv(x, w)[:, :, 1:-1, 1:-1, 1:-1].var().item() - 1.0) > 0.1


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demod", [True, False])
def test_fused_equals_nonfused(up, demod):
    torch.manual_seed(1)
    x = torch.randn(3, 6, 5, 6, 7, dtype=torch.float64)
    weight = torch.randn(5, 6, 3, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 6, dtype=torch.float64)
    kern = fir_kernel([1, 3, 3, 1], 2.0).double()
    a = modulated_conv(x, weight, styles, demod, up=up, up_kernel=kern, fused=True)
    b = modulated_conv(x, weight, styles, demod, up=up, up_kernel=kern, fused=False)
    assert a.shape == (3, 5, 5 * up, 6 * up, 7 * up)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_modulated_conv_matches_per_sample_reference():
    """Fused grouped conv == an explicit loop applying each sample's demodulated kernel."""
    torch.manual_seed(2)
    x = torch.randn(2, 4, 6, 6, 6, dtype=torch.float64)
    weight = torch.randn(3, 4, 3, 3, 3, dtype=torch.float64)
    styles = torch.rand(2, 4, dtype=torch.float64) + 0.5
    out = modulated_conv(x, weight, styles, True)
    for n in range(2):
        wn = weight * styles[n].reshape(1, 4, 1, 1, 1)
        wn = wn / (wn.square().sum(dim=[1, 2, 3, 4], keepdim=True) + 1e-8).sqrt()
        ref = torch.nn.functional.conv3d(x[n : n + 1], wn, padding=1)
        torch.testing.assert_close(out[n : n + 1], ref)


def test_upsampling_dc_gain_is_one():
    """A constant volume through zero-insertion + FIR stays constant away from the borders."""
    x = torch.full((1, 1, 8, 8, 8), 3.0, dtype=torch.float64)
    weight = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float64)
    weight[0, 0, 1, 1, 1] = 1.0  # identity kernel isolates the upsampling filter
    kern = fir_kernel([1, 3, 3, 1], 2.0).double()  # per-axis gain 2 -> 3D gain 8
    y = modulated_conv(x, weight, torch.ones(1, 1, dtype=torch.float64), False, up=2, up_kernel=kern)
    assert y.shape == (1, 1, 16, 16, 16)
    inner = y[:, :, 3:-3, 3:-3, 3:-3]
    torch.testing.assert_close(inner, torch.full_like(inner, 3.0))
    # the reference's 2D gain (4 in total) halves the DC level in 3D
    ref = ModulatedConv(1, 1, 4, 3, demodulate=False, up=2, up_gain="reference")
    assert ref.up_kernel.sum().item() ** 3 == pytest.approx(4.0)


def test_synthesis_up_layer_keeps_constant_constant():
    conv = ModulatedConv(1, 1, 4, 3, demodulate=False, up=2)
    assert conv.up_kernel.sum().item() ** 3 == pytest.approx(8.0)


def test_downsampling_dc_gain_is_one():
    conv = EqualConv(1, 1, 3, bias=False, down=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1, 1] = 1.0 / conv.weight_gain
    x = torch.full((1, 1, 16, 16, 16), 2.0)
    y = conv(x)
    assert y.shape == (1, 1, 8, 8, 8)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2, 2:-2], torch.full((1, 1, 4, 4, 4), 2.0))
    skip = EqualConv(1, 1, 1, bias=False, down=2)
    with torch.no_grad():
        skip.weight.fill_(1.0 / skip.weight_gain)
    assert skip(x).shape == (1, 1, 8, 8, 8)
    torch.testing.assert_close(skip(x)[:, :, 1:-1, 1:-1, 1:-1], torch.full((1, 1, 6, 6, 6), 2.0))


def test_fir_filter_is_separable_convolution():
    x = torch.randn(1, 2, 7, 8, 9, dtype=torch.float64)
    k = fir_kernel([1, 3, 3, 1]).double()
    y = fir_filter(x, k, (1, 2))
    k3 = k[:, None, None] * k[None, :, None] * k[None, None, :]
    xp = torch.nn.functional.pad(x, [1, 2] * 3)
    ref = torch.nn.functional.conv3d(xp, k3.flip([0, 1, 2]).expand(2, 1, 4, 4, 4), groups=2)
    torch.testing.assert_close(y, ref)
    assert up_padding(4, 3) == (1, 1)


@pytest.mark.parametrize("name", list_presets())
def test_preset_shapes_and_num_ws(name):
    cfg = load_preset(name)
    with torch.device("meta"):
        g = Generator(cfg.model)
        d = Discriminator(cfg.model)
        z = torch.empty(2, cfg.model.z_dim)
        ws = g.mapping(z)
        x = g.synthesis(ws, noise_mode="none")
        logits = d(x)
    assert ws.shape == (2, cfg.model.num_ws, cfg.model.w_dim)
    assert x.shape == (2, cfg.model.channels, *cfg.model.resolution)
    assert logits.shape == (2, 1)
    expected_ws = {(80, 96, 112): 10, (160, 192, 224): 12}.get(tuple(cfg.model.resolution))
    if expected_ws:
        assert cfg.model.num_ws == expected_ws


@pytest.mark.parametrize(("name", "g_ref", "d_ref"), [("2mm-f96", 2.43e6, 4.22e6), ("2mm-f128", 4.31e6, 7.49e6)])
def test_parameter_counts_match_reference(name, g_ref, d_ref):
    cfg = load_preset(name)
    with torch.device("meta"):
        g, d = Generator(cfg.model), Discriminator(cfg.model)
    assert count_params(g) == pytest.approx(g_ref, rel=0.1)
    assert count_params(d) == pytest.approx(d_ref, rel=0.1)


def test_gradients_finite_through_g_and_d(tiny_cfg):
    torch.manual_seed(0)
    g, d = Generator(tiny_cfg.model), Discriminator(tiny_cfg.model)
    x = g(torch.randn(2, tiny_cfg.model.z_dim))
    d(x).sum().backward()
    for net in (g, d):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
    assert g.synthesis.const.grad.abs().sum() > 0


def test_bf16_autocast_forward_backward(tiny_cfg):
    torch.manual_seed(0)
    g, d = Generator(tiny_cfg.model).set_channels_last(True), Discriminator(tiny_cfg.model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = g(torch.randn(2, tiny_cfg.model.z_dim))
        loss = torch.nn.functional.softplus(-d(x)).mean()
    loss.backward()
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)


def test_truncation_and_style_layers(tiny_cfg):
    torch.manual_seed(0)
    g = Generator(tiny_cfg.model)
    g.mapping.w_avg.normal_()
    z = torch.randn(3, tiny_cfg.model.z_dim)
    ws = g.mapping(z)
    assert torch.equal(ws[:, 0], ws[:, -1])  # one w broadcast to every layer
    wt = g.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(wt, g.mapping.w_avg.expand_as(wt))
    half = g.mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half, (ws + g.mapping.w_avg) / 2)


def test_noise_modes(tiny_cfg):
    torch.manual_seed(0)
    g = Generator(tiny_cfg.model)
    for layer in g.synthesis.layers:
        layer.noise_strength.data.fill_(0.5)
    ws = g.mapping(torch.randn(1, tiny_cfg.model.z_dim))
    const_a, const_b = g.synthesis(ws, "const"), g.synthesis(ws, "const")
    torch.testing.assert_close(const_a, const_b)
    assert not torch.allclose(g.synthesis(ws, "random"), g.synthesis(ws, "random"))
    none = g.synthesis(ws, "none")
    zeros = [torch.zeros(s) for s in g.synthesis.noise_shapes()]
    torch.testing.assert_close(none, g.synthesis(ws, noise=zeros))


def test_conditional_networks(tiny_cfg):
    cfg = apply_overrides(tiny_cfg, ["c_dim=2"])
    g, d = Generator(cfg.model), Discriminator(cfg.model)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = g(torch.randn(2, cfg.model.z_dim), c)
    assert d(x, c).shape == (2, 1)
    with pytest.raises(ValueError, match="conditional"):
        g(torch.randn(2, cfg.model.z_dim))


def test_minibatch_std_reacts_to_batch_diversity(tiny_cfg):
    d = Discriminator(tiny_cfg.model)
    x = torch.randn(4, 8, 5, 6, 7)
    same = d.mbstd(x[:1].expand(4, -1, -1, -1, -1))
    diff = d.mbstd(x)
    assert same.shape == (4, 9, 5, 6, 7)
    assert same[:, -1].abs().max() < 1e-3 < diff[:, -1].mean()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demod", [True, False])
def test_gain_and_bias_folding_equals_explicit_ops(fused, up, demod):
    """``modulated_conv(..., gain, bias)`` == ``gain * modulated_conv(...) + bias`` in every form."""
    torch.manual_seed(4)
    x = torch.randn(3, 6, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(5, 6, 3, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 6, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    kern = fir_kernel([1, 3, 3, 1], 2.0).double()
    plain = modulated_conv(x, weight, styles, demod, up=up, up_kernel=kern, fused=fused)
    folded = modulated_conv(x, weight, styles, demod, up=up, up_kernel=kern, fused=fused, gain=1.7, bias=bias)
    # demodulation factors are computed in float32 (as under autocast), hence the tolerance
    torch.testing.assert_close(folded, 1.7 * plain + bias.reshape(1, 5, 1, 1, 1), rtol=1e-6, atol=1e-6)


def _lrelu2(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.leaky_relu(x, 0.2) * 2**0.5


def test_equal_conv_and_d_block_fold_their_gains():
    """EqualConv's folded gain/bias/in-place activation and the D block's folded residual scale give
    the textbook ``lrelu(conv(x) + b) * sqrt(2)`` and ``(main + skip) / sqrt(2)``."""
    from stylegan3d.nn.discriminator import DiscriminatorBlock

    torch.manual_seed(5)
    block = DiscriminatorBlock(4, 6, [1, 3, 3, 1], clamp=0.5).double()
    for p in block.parameters():
        p.data.normal_()
    x = torch.randn(2, 4, 8, 8, 8, dtype=torch.float64)

    def conv(layer: EqualConv, x: torch.Tensor) -> torch.Tensor:
        w = layer.weight * layer.weight_gain
        if layer.blur is not None:
            x = fir_filter(x, fir_kernel([1, 3, 3, 1]).double(), layer.blur.pad)
        y = torch.nn.functional.conv3d(x, w, stride=layer.down, padding=layer.padding)
        return y + layer.bias.reshape(1, -1, 1, 1, 1) if layer.bias is not None else y

    h = _lrelu2(conv(block.conv0, x)).clamp(-0.5, 0.5)
    h = _lrelu2(conv(block.conv1, h)).clamp(-0.5, 0.5)
    ref = (h + conv(block.skip, x)) / 2**0.5
    torch.testing.assert_close(block(x), ref, rtol=1e-12, atol=1e-12)


def test_synthesis_layer_in_place_ops_keep_double_backward():
    """The in-place noise/bias/activation path still gives exact first and second derivatives."""
    from stylegan3d.nn.generator import SynthesisLayer

    torch.manual_seed(6)
    layer = SynthesisLayer(3, 2, 4, (6, 6, 6), up=2, clamp=None).double()
    layer.noise_strength.data.fill_(0.3)
    layer.bias.data.normal_()
    x = torch.randn(2, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(1, 1, 6, 6, 6, dtype=torch.float64)
    # w -> styles -> demodulation runs in float32 by design: check derivatives w.r.t. x in float64
    assert torch.autograd.gradcheck(lambda x: layer(x, w.detach(), noise=noise), (x,))
    assert torch.autograd.gradgradcheck(lambda x: layer(x, w.detach(), noise=noise), (x,))

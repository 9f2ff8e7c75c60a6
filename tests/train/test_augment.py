"""3D adaptive discriminator augmentation: transforms, probability gating, the ADA controller."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from stylegan3d.config import TrainConfig, apply_overrides, load_preset
from stylegan3d.errors import UserError
from stylegan3d.nn import Discriminator
from stylegan3d.train.augment import AdaController, AugmentPipe, make_augment, resample

ALL_OFF = {"affine": 0.0, "intensity": 0.0, "bias_field": 0.0, "noise": 0.0, "cutout": 0.0}
NO_AFFINE_PARTS = {"rotate_deg": 0.0, "scale_std": 0.0, "aniso_std": 0.0, "translate_std": 0.0}
NO_INTENSITY_PARTS = {"brightness_std": 0.0, "contrast_std": 0.0, "gamma_std": 0.0}


def _only(group: str, keep: str | None = None, **extra) -> dict:
    """Pipe kwargs with one group on (optionally one sub-transform of it) and everything else off."""
    kw = {**ALL_OFF, **extra}
    if group:
        kw[group] = 1.0
    parts = {"affine": NO_AFFINE_PARTS, "intensity": NO_INTENSITY_PARTS}.get(group, {})
    if keep is not None:
        kw.update({k: v for k, v in parts.items() if k != keep})
    return kw


TRANSFORMS = {
    "rotate": _only("affine", "rotate_deg"),
    "scale": _only("affine", "scale_std"),
    "aniso": _only("affine", "aniso_std"),
    "translate": _only("affine", "translate_std"),
    "rot90": _only("", rot90_planes=[(1, 2)]),
    "xflip": _only("", xflip=True),
    "brightness": _only("intensity", "brightness_std"),
    "contrast": _only("intensity", "contrast_std"),
    "gamma": _only("intensity", "gamma_std"),
    "bias_field": _only("bias_field"),
    "noise": _only("noise"),
    "cutout": _only("cutout"),
}


def _volumes(n: int = 3, c: int = 2, shape=(6, 8, 8), seed: int = 0) -> torch.Tensor:
    """Smooth random volumes in (-1, 1), [n, c, *shape]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, c, 3, 4, 4, generator=g)
    return torch.tanh(F.interpolate(coarse, size=shape, mode="trilinear", align_corners=False) * 1.5)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference (torch.testing.assert_close costs seconds on its first call here)."""
    assert a.shape == b.shape
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_each_transform_keeps_shape_dtype_and_gradient(name: str) -> None:
    torch.manual_seed(1)
    pipe = AugmentPipe(p=1.0, **TRANSFORMS[name])
    x = _volumes().requires_grad_()
    out = pipe(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x, atol=1e-3), f"{name} with p=1 left the input unchanged"
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0

    xb = _volumes().bfloat16()
    outb = pipe(xb)
    assert outb.shape == xb.shape and outb.dtype == torch.bfloat16


def test_p_zero_is_exact_identity() -> None:
    pipe = AugmentPipe(p=0.0, xflip=True, rot90_planes=[(0, 1)])
    x = _volumes()
    assert pipe(x) is x
    off = AugmentPipe(p=1.0, **ALL_OFF)
    assert torch.equal(off(x), x)


def test_zero_strength_affine_is_identity() -> None:
    pipe = AugmentPipe(p=1.0, **_only("affine", None, **NO_AFFINE_PARTS))
    x = _volumes(shape=(5, 7, 9))
    assert _max_err(pipe(x), x) < 1e-5


def test_resample_whole_voxel_shift_pads_with_background() -> None:
    x = _volumes(n=2, c=1, shape=(5, 6, 7))
    m = torch.zeros(2, 3, 4)
    m[:, :, :3] = torch.eye(3)
    m[:, 1, 3] = 1.0  # read one voxel further along H
    out = resample(x, m)
    assert _max_err(out[:, :, :, :-1], x[:, :, :, 1:]) < 1e-5
    assert _max_err(out[:, :, :, -1], torch.full_like(out[:, :, :, -1], -1.0)) < 1e-6


def test_resample_rotates_in_voxel_units_on_non_cubic_volumes() -> None:
    # One bright voxel at offset (+0.5, +2.5) from the centre of a 6x8 (D, H) plane: a 90-degree
    # rotation in voxel units moves it to (-2.5, +0.5) or (+2.5, -0.5); a rotation in normalised
    # coordinates would land it elsewhere (stretched by 8/6).
    x = torch.full((1, 1, 6, 8, 5), -1.0)
    x[0, 0, 3, 6, 2] = 1.0
    m = torch.zeros(1, 3, 4)
    m[0, :, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = resample(x, m)
    peak = (out == out.max()).nonzero().tolist()
    assert peak in ([[0, 0, 0, 4, 2]], [[0, 0, 5, 3, 2]])
    assert out.max().item() == pytest.approx(1.0, abs=1e-5)
    assert (out > -1 + 1e-5).sum() == 1


def test_rot90_is_an_exact_quarter_turn_in_the_allowed_plane() -> None:
    torch.manual_seed(2)
    x = _volumes(n=12, c=1, shape=(4, 6, 6))
    out = AugmentPipe(p=1.0, **TRANSFORMS["rot90"])(x)
    turns = []
    for i in range(12):
        errs = [(out[i] - torch.rot90(x[i], k, dims=(2, 3))).abs().max().item() for k in range(4)]
        k = min(range(4), key=errs.__getitem__)
        assert errs[k] < 1e-5
        turns.append(k)
    assert 0 not in turns and len(set(turns)) > 1


def test_xflip_flips_the_left_right_axis_only_when_asked() -> None:
    x = _volumes()
    assert torch.equal(AugmentPipe(p=1.0, **TRANSFORMS["xflip"])(x), x.flip(2))
    assert torch.equal(AugmentPipe(p=1.0, **ALL_OFF)(x), x)


def test_background_stays_background_under_bias_field_and_gamma() -> None:
    torch.manual_seed(3)
    x = _volumes(n=4, c=1)
    x[:, :, :2] = -1.0
    for name in ("bias_field", "gamma"):
        out = AugmentPipe(p=1.0, **TRANSFORMS[name])(x)
        assert torch.equal(out[:, :, :2], x[:, :, :2]), name
        assert (out[:, :, 2:] != x[:, :, 2:]).any(), name


def test_cutout_sets_at_most_a_half_size_box_to_background() -> None:
    torch.manual_seed(4)
    x = _volumes(n=16, c=1, shape=(8, 8, 8)) * 0.5  # strictly above -1 everywhere
    out = AugmentPipe(p=1.0, **TRANSFORMS["cutout"])(x)
    changed = out != x
    assert torch.equal(out[changed], torch.full_like(out[changed], -1.0))
    per_sample = changed.flatten(1).sum(1)
    assert per_sample.max() <= 4**3 and per_sample.min() > 0


def test_each_sample_is_augmented_with_probability_p() -> None:
    torch.manual_seed(5)
    n, p = 400, 0.3
    x = _volumes(n=n, c=1, shape=(2, 2, 2))
    out = AugmentPipe(p=p, **TRANSFORMS["brightness"])(x)
    changed = (out != x).flatten(1).any(1)
    untouched = ~changed
    assert torch.equal(out[untouched], x[untouched])
    sd = math.sqrt(n * p * (1 - p))
    assert abs(changed.sum().item() - n * p) < 4 * sd


def test_brightness_and_contrast_strengths_match_their_distributions() -> None:
    torch.manual_seed(6)
    n = 3000
    x = _volumes(n=n, c=1, shape=(2, 2, 2))
    offset = (AugmentPipe(p=1.0, **TRANSFORMS["brightness"], brightness_std=0.3)(x) - x).flatten(1)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-6)  # one shift per sample
    assert offset[:, 0].std().item() == pytest.approx(0.3, rel=0.08)

    out = AugmentPipe(p=1.0, **TRANSFORMS["contrast"], contrast_std=0.5)(x)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    factor = ((out - mean) / (x - mean)).flatten(1).median(1).values
    assert torch.log2(factor).std().item() == pytest.approx(0.5, rel=0.08)
    assert _max_err(out.mean(dim=(1, 2, 3, 4)), x.mean(dim=(1, 2, 3, 4))) < 1e-5


def test_reproducible_from_torch_manual_seed() -> None:
    pipe = AugmentPipe(p=0.7, rot90_planes=[(1, 2)])
    x = _volumes(n=6)
    torch.manual_seed(7)
    a = pipe(x)
    torch.manual_seed(7)
    b = pipe(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, pipe(x))


def test_autocast_safe() -> None:
    torch.manual_seed(8)
    pipe = AugmentPipe(p=1.0)
    x = _volumes().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pipe(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_p_is_a_buffer_saved_in_state_dict() -> None:
    pipe = AugmentPipe(p=0.25)
    assert pipe.state_dict()["p"].item() == pytest.approx(0.25)
    other = AugmentPipe()
    other.load_state_dict(pipe.state_dict())
    assert other.p.item() == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs",
    [{"p": 1.5}, {"p": -0.1}, {"noise": -1.0}, {"blur_std": 1.0}, {"rot90_planes": [(1, 1)]}, {"bias_grid": 1}],
)
def test_bad_settings_raise_user_error(kwargs: dict) -> None:
    with pytest.raises(UserError):
        AugmentPipe(**kwargs)


def test_controller_raises_p_for_positive_and_lowers_for_negative_logits() -> None:
    pipe = AugmentPipe(p=0.0)
    ctrl = AdaController(pipe, target=0.6, interval=2, ada_kimg=0.1, batch=5)
    step = 5 * 2 / (0.1 * 1000)
    assert ctrl.adjust == pytest.approx(step)
    ctrl.accumulate(torch.tensor([[1.0], [2.0], [0.5], [3.0], [0.1]]))
    assert ctrl.step() is None and pipe.p.item() == 0.0
    ctrl.accumulate(torch.ones(5, 1))
    assert ctrl.step() == pytest.approx(1.0)
    assert pipe.p.item() == pytest.approx(step)
    for _ in range(40):  # keeps rising, clamped at 1
        ctrl.accumulate(torch.ones(5, 1))
        ctrl.step()
    assert pipe.p.item() == 1.0
    ctrl.accumulate(-torch.ones(5, 1))
    ctrl.accumulate(-torch.ones(5, 1))
    ctrl.step()
    assert ctrl.step() == pytest.approx(-1.0)
    assert pipe.p.item() == pytest.approx(1.0 - step)
    for _ in range(40):
        ctrl.accumulate(-torch.ones(5, 1))
        ctrl.step()
    assert pipe.p.item() == 0.0


def test_controller_rt_is_the_mean_sign_and_target_is_a_dead_band() -> None:
    pipe = AugmentPipe(p=0.5)
    ctrl = AdaController(pipe, target=0.5, interval=1, ada_kimg=1.0, batch=10)
    ctrl.accumulate(torch.tensor([1.0, -2.0, 3.0, 4.0]))  # signs: mean 0.5 = target
    assert ctrl.step() == pytest.approx(0.5)
    assert pipe.p.item() == pytest.approx(0.5)
    ctrl.accumulate(torch.tensor([1.0, -2.0, 3.0, -4.0, -1.0]))
    assert ctrl.step() == pytest.approx(-0.2)
    assert pipe.p.item() == pytest.approx(0.49)


def test_controller_state_round_trips_through_json_for_exact_resume() -> None:
    logits = [torch.tensor([1.0, -1.0, 1.0, 1.0]) * (i % 3 - 0.5) for i in range(9)]

    def run(ctrl: AdaController, chunk: list[torch.Tensor]) -> list[float | None]:
        out = []
        for v in chunk:
            ctrl.accumulate(v)
            out.append(ctrl.step())
        return out

    whole = AdaController(AugmentPipe(p=0.3), interval=4, ada_kimg=0.05, batch=4)
    expected = run(whole, logits)
    first = AdaController(AugmentPipe(p=0.3), interval=4, ada_kimg=0.05, batch=4)
    got = run(first, logits[:5])  # stops mid-interval with pending statistics
    state = json.loads(json.dumps(first.state_dict()))
    resumed = AdaController(AugmentPipe(p=0.0), interval=4, ada_kimg=0.05, batch=4)
    resumed.load_state_dict(state)
    got += run(resumed, logits[5:])
    assert got == expected
    assert resumed.pipe.p.item() == whole.pipe.p.item()


def _ddp_worker(rank: int, init_file: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        pipe = AugmentPipe(p=0.5)
        ctrl = AdaController(pipe, target=0.6, interval=1, ada_kimg=1.0, batch=10)
        # rank 0 alone would have r_t = 1 (raise p), rank 1 alone -0.2; together (3 - 1) / 8 = 0.25 (lower p)
        ctrl.accumulate(torch.ones(3) if rank == 0 else torch.tensor([1.0, -1.0, -1.0, -1.0, 1.0]))
        rt = ctrl.step()
        results[rank] = (rt, pipe.p.item())
    finally:
        torch.distributed.destroy_process_group()


def test_controller_all_reduces_statistics_across_ranks(tmp_path) -> None:
    results = mp.Manager().dict()
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "store"), results), nprocs=2, join=True, start_method="fork")
    for rank in (0, 1):
        rt, p = results[rank]
        assert rt == pytest.approx(0.25)
        assert p == pytest.approx(0.49)


def test_make_augment_modes() -> None:
    pipe, ctrl = make_augment(TrainConfig(aug="none", aug_p=0.3))
    assert pipe.p.item() == 0.0 and ctrl is None
    pipe, ctrl = make_augment(TrainConfig(aug="fixed", aug_p=0.2))
    assert pipe.p.item() == pytest.approx(0.2) and ctrl is None
    pipe, ctrl = make_augment(TrainConfig(aug="ada", batch=8, ada_interval=4, ada_kimg=2.0, ada_target=0.7))
    assert pipe.p.item() == 0.0 and not pipe.xflip
    assert ctrl is not None and ctrl.pipe is pipe and ctrl.target == 0.7
    assert ctrl.adjust == pytest.approx(8 * 4 / 2000)


def _ada_run(memorisable: bool, seed: int, steps: int = 30) -> tuple[float, list[float]]:
    """Train a tiny D on ADA-augmented reals vs fakes drawn from the same distribution of smooth
    random volumes. With 4 fixed reals D can only win by memorising them (overfitting); with fresh
    reals each step there is nothing to memorise. Returns the final p and the r_t history."""

    def smooth(n: int) -> torch.Tensor:
        return torch.tanh(F.interpolate(torch.randn(n, 1, 5, 6, 7), size=(20, 24, 28), mode="trilinear") * 1.5)

    torch.manual_seed(seed)
    cfg = apply_overrides(load_preset("demo"), ["width=8"])
    D = Discriminator(cfg.model)
    fixed_reals = smooth(4)
    pipe = AugmentPipe(p=0.0)
    ctrl = AdaController(pipe, target=0.6, interval=1, ada_kimg=0.2, batch=4)
    opt = torch.optim.Adam(D.parameters(), lr=0.005, betas=(0.0, 0.99))
    rts = []
    for _ in range(steps):
        reals = fixed_reals if memorisable else smooth(4)
        real_logits, fake_logits = D(pipe(reals)), D(pipe(smooth(4)))
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ctrl.accumulate(real_logits)
        rts.append(ctrl.step())
    return pipe.p.item(), rts


@pytest.fixture
def one_thread():
    """Tiny convolutions gain nothing from threads, and on a busy 2-core machine OpenMP spin-waits
    made this test 4x slower with 2 threads than with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ada_p_rises_when_d_overfits_a_tiny_dataset(one_thread) -> None:
    p_overfit, rts = _ada_run(memorisable=True, seed=0)
    # reference: p is the clamped running sum of sign(r_t - target) * adjust
    p_ref = 0.0
    for rt in rts:
        p_ref = min(max(p_ref + (1 if rt > 0.6 else -1 if rt < 0.6 else 0) * 4 / 200, 0.0), 1.0)
    assert p_overfit == pytest.approx(p_ref, abs=1e-6)
    assert sum(rts[-10:]) / 10 > 0.6  # D recognises its 4 reals
    assert p_overfit >= 0.1
    p_control, rts_control = _ada_run(memorisable=False, seed=0)
    assert sum(rts_control[-10:]) / 10 < 0.6
    assert p_control < p_overfit / 2

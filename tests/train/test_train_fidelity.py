"""Training hyper-parameters and mechanics that decide whether a StyleGAN2 trains as the reference:
the Adam settings actually used, conv clamping under autograd, DDP gradient-sync skipping."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from stylegan3d.config import apply_overrides
from stylegan3d.nn.layers import EqualConv
from stylegan3d.train.loop import Trainer


def test_adam_runs_at_the_configured_lr_and_betas(tiny_cfg, tiny_dataset, tmp_path):
    """The regularisers are folded into the main step, so no lazy k/(k+1) correction may apply."""
    cfg = apply_overrides(tiny_cfg, ["train.g_lr=0.0025", "train.d_lr=0.0015", "train.betas=[0.0,0.99]"])
    tr = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    for opt, lr in ((tr.opt_G, 0.0025), (tr.opt_D, 0.0015)):
        for group in opt.param_groups:
            assert group["lr"] == lr
            assert tuple(group["betas"]) == (0.0, 0.99)
            assert group["eps"] == cfg.train.eps


def test_training_steps_with_conv_clamp(tiny_cfg, tiny_dataset, tmp_path):
    """conv_clamp (the reference's 256 for low precision) trains: backward through the clamped layers."""
    cfg = apply_overrides(tiny_cfg, ["g.conv_clamp=256", "train.pl_interval=1", "train.r1_interval=1"])
    tr = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    before = [p.detach().clone() for p in tr.G.parameters()]
    for _ in range(2):
        stats = tr.train_step()
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert tr.state.bad_steps_total == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.G.parameters(), strict=True))


def test_clamped_activation_bounds_values_and_blocks_their_gradient():
    torch.manual_seed(0)
    conv = EqualConv(2, 3, 3, activation=True, clamp=0.5)
    x = torch.randn(1, 2, 6, 6, 6, requires_grad=True)
    y = conv(x)
    assert y.abs().max() <= 0.5 and (y.abs() == 0.5).any()
    (g,) = torch.autograd.grad(y.sum(), x)
    ref = EqualConv(2, 3, 3, activation=True)
    ref.load_state_dict(conv.state_dict())
    y_ref = ref(x)
    # where nothing saturates the clamp is the identity: same values as without it
    free = y_ref.abs() < 0.5
    assert torch.equal(y[free], y_ref[free])
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.fixture
def gloo_world_of_one(tmp_path):
    if not dist.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _count_allreduces(module: nn.parallel.DistributedDataParallel) -> list[int]:
    calls = [0]

    def hook(state, bucket):
        calls[0] += 1
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut

    module.register_comm_hook(None, hook)
    return calls


def test_grad_sync_skips_the_allreduce_of_forward_and_backward(gloo_world_of_one):
    """DDP decides at forward time; a no_sync that wraps only the backward still all-reduces."""
    torch.manual_seed(0)
    ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
    calls = _count_allreduces(ddp)
    x = torch.randn(3, 4)

    with Trainer._grad_sync(ddp, sync=False):
        ddp(x).sum().backward()
    assert calls[0] == 0

    loss = ddp(x).sum()  # the old design: forward outside, backward inside no_sync
    with ddp.no_sync():
        loss.backward()
    assert calls[0] > 0, "this is the defect the context must avoid"

    seen = calls[0]
    with Trainer._grad_sync(ddp, sync=True):
        ddp(x).sum().backward()
    assert calls[0] > seen


def test_ema_of_the_first_step_is_the_generator(tiny_cfg, tiny_dataset, tmp_path):
    """Ramp-up uses the images seen before the step (stylegan2-ada-pytorch): after step 0, G_ema == G."""
    tr = Trainer(tiny_cfg, tiny_dataset, tmp_path / "run", progress=False)
    tr.train_step()
    for a, b in zip(tr.G_ema.parameters(), tr.G.parameters(), strict=True):
        assert torch.equal(a, b)
    tr.train_step()  # later steps average
    assert any(not torch.equal(a, b) for a, b in zip(tr.G_ema.parameters(), tr.G.parameters(), strict=True))

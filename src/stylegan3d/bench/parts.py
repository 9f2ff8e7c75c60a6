"""The measured parts: G forward, the training step, a projector step, the peak conv, the loader
and the kernel micro-benchmarks, each on one preset x variant (see :mod:`stylegan3d.bench`)."""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylegan3d.bench.data import RandomVolumes, write_random_dataset
from stylegan3d.bench.measurement import Reference, conv3d_flops, eager, measure
from stylegan3d.bench.settings import BenchSettings, Variant
from stylegan3d.config import Config
from stylegan3d.errors import UserError


def channels_last_used(trainer) -> bool:
    """Whether the trainer's networks run in channels_last_3d memory format."""
    return bool(trainer.G.synthesis.channels_last)


def build_trainer(cfg: Config, v: Variant, device: torch.device, out_dir: Path):
    """A :class:`~stylegan3d.train.loop.Trainer` on random in-memory volumes, with the variant applied."""
    from stylegan3d.train.loop import Trainer

    data = RandomVolumes(cfg, n=max(2 * cfg.train.batch, 4))
    trainer = Trainer(cfg, data, out_dir, device=str(device), progress=False)
    if v.channels_last != "auto":  # the variant's choice over the trainer's (which depends on precision and device)
        trainer.set_channels_last(v.channels_last == "on")
    if v.compile:
        # static shapes: the step's calls differ in batch (PL uses half), and inductor (torch 2.13) fails to
        # lower conv3d backward with symbolic sizes
        for net in (trainer.G.synthesis, trainer.G_ema.synthesis, trainer.D):
            net.compile(dynamic=False)
    return trainer


def _count_nonfused(trainer, v: Variant) -> Callable[[], contextlib.AbstractContextManager] | None:
    """A context that runs G's modulated convs non-fused, for counting FLOPs; None when the variant
    never runs them grouped under autograd.

    ``FlopCounterMode`` (torch 2.13) counts a grouped conv's weight gradient once per group, i.e. N
    times too often in the fused form; both forms do the same arithmetic, so the non-fused count is
    the model's FLOP count for either.
    """
    if not (v.fused == "fused" or (v.fused == "auto" and trainer.device.type == "cuda")):
        return None

    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        nets = (trainer.G.synthesis, trainer.G_ema.synthesis)
        saved = [n.fused for n in nets]
        for n in nets:
            n.fused = False
        try:
            yield
        finally:
            for n, f in zip(nets, saved, strict=True):
                n.fused = f

    return ctx


def bench_g_forward(trainer, settings: BenchSettings, v: Variant, reference: Reference | None = None) -> dict:
    """``G_ema(z)`` with random noise under ``no_grad`` and the training precision."""
    from stylegan3d.train.runtime import autocast_context

    G, dev = trainer.G_ema, trainer.device
    z = torch.randn(settings.batch, G.z_dim, generator=torch.Generator().manual_seed(1)).to(dev)

    def run() -> None:
        with torch.no_grad(), autocast_context(trainer.precision, dev):
            G(z)

    r = measure(run, dev, settings.repeats, settings.warmup, compiled=v.compile, reference=reference)
    r["batch"] = settings.batch
    r["samples_per_s"] = settings.batch / r["seconds"]
    return r


def bench_train_step(trainer, settings: BenchSettings, v: Variant, reference: Reference | None = None) -> dict:
    """Main, PL and R1 steps timed separately, then the amortised step (see the module doc)."""
    t = trainer.cfg.train
    dev = trainer.device
    pl_int, r1_int = t.pl_interval, t.r1_interval
    kinds: dict[str, tuple[bool, bool]] = {"main": (False, False)}
    if t.pl_weight > 0:
        kinds["pl"] = (True, False)
    if t.r1_gamma > 0:
        kinds["r1"] = (False, True)
    parts: dict[str, dict[str, Any]] = {}
    count_in = _count_nonfused(trainer, v)
    if trainer.state.step == 0:  # time from step 1, as earlier reports did (augmentation varies with the step)
        trainer.state.step = 1
    for kind, (pl, r1) in kinds.items():
        with trainer.regularisation(pl=pl, r1=r1):
            if v.compile and kind != "main":
                with eager():  # compiled graphs have no double backward: regularisers run eagerly
                    parts[kind] = measure(
                        trainer.train_step,
                        dev,
                        settings.repeats,
                        settings.warmup,
                        reference=reference,
                        count_in=count_in,
                    )
            else:
                parts[kind] = measure(
                    trainer.train_step,
                    dev,
                    settings.repeats,
                    settings.warmup,
                    compiled=v.compile,
                    reference=reference,
                    count_in=count_in,
                )
    if v.compile:  # the eager main step, so that the regularisers' extra cost is eager minus eager
        with trainer.regularisation(pl=False, r1=False), eager():
            parts["main_eager"] = measure(trainer.train_step, dev, settings.repeats, 1, flops=False)
    base = parts.get("main_eager", parts["main"])
    sec = parts["main"]["seconds"]
    flops = parts["main"]["flops"]
    for kind, interval in (("pl", pl_int), ("r1", r1_int)):
        if kind in parts:
            sec += (parts[kind]["seconds"] - base["seconds"]) / interval
            flops += (parts[kind]["flops"] - parts["main"]["flops"]) / interval
    mem = {
        "peak_bytes": max(p["memory"]["peak_bytes"] for p in parts.values()),
        "increase_bytes": max(p["memory"]["increase_bytes"] for p in parts.values()),
        "method": parts["main"]["memory"]["method"],
    }
    out = {
        "batch": t.batch,
        "pl_interval": pl_int,
        "r1_interval": r1_int,
        "steps": parts,
        "seconds": sec,
        "samples_per_s": t.batch / sec,
        "s_per_kimg": sec * 1000.0 / t.batch,
        "flops": int(flops),
        "flop_per_s": flops / sec,
        "memory": mem,
    }
    if reference is not None:
        ref_times = [x for p in parts.values() for x in p.get("reference_times_s", [])]
        out["reference_flop_per_s"] = reference.flops / statistics.median(ref_times)
        out["peak_fraction"] = out["flop_per_s"] / out["reference_flop_per_s"]
        out["reference_calls"] = sec / statistics.median(ref_times)
    return out


def bench_projection(trainer, settings: BenchSettings, v: Variant, reference: Reference | None = None) -> dict:
    """One projector step on ``G_ema.synthesis`` (W+ latent and noise maps optimised, batch 1), as the
    loop of :func:`stylegan3d.infer.projector.project_volume` does it (without the optional perceptual
    term), here under the variant's precision (the projector itself runs in fp32)."""
    from stylegan3d.infer.projector import (
        match_saturation,
        noise_regularization,
        reconstruction_loss,
        renormalize_noise_,
    )
    from stylegan3d.train.runtime import autocast_context

    G, dev = trainer.G_ema, trainer.device
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        ws0 = G.mapping(torch.randn(1, G.z_dim, generator=gen).to(dev))
    ws = ws0.clone().requires_grad_(True)
    noise = [torch.randn(s, generator=gen).to(dev).requires_grad_(True) for s in G.synthesis.noise_shapes()]
    target = (torch.rand(1, trainer.cfg.model.channels, *trainer.cfg.model.resolution, generator=gen) * 2 - 1).to(dev)
    opt = torch.optim.Adam([ws, *noise], lr=0.01, betas=(0.9, 0.999))

    def step() -> None:
        with autocast_context(trainer.precision, dev):
            synth = G.synthesis(ws, noise=noise)
        synth = match_saturation(synth.float(), target)
        mse, pooled = reconstruction_loss(synth, target, None, 8)
        loss = (mse + pooled + 1e5 * noise_regularization(noise)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        renormalize_noise_(noise)

    count_in = _count_nonfused(trainer, v)
    r = measure(
        step, dev, settings.repeats, settings.warmup, compiled=v.compile, reference=reference, count_in=count_in
    )
    r["batch"] = 1
    return r


def bench_peak_conv(
    cfg: Config, settings: BenchSettings, precision: str, channels_last: bool, device: torch.device
) -> tuple[dict[str, Any], Reference, Reference]:
    """Dense ``conv3d`` F -> F, 3x3x3, at the top resolution (halved until batch x voxels <= peak_voxels).

    Returns its measurement and the forward and forward+backward kernels as references.
    """
    from stylegan3d.train.runtime import autocast_context

    width = max(cfg.model.stage_widths("g"))
    shape = _peak_shape(cfg, settings)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(settings.batch, width, *shape, generator=gen).to(device)
    w = (torch.randn(width, width, 3, 3, 3, generator=gen) / math.sqrt(27 * width)).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    analytic = conv3d_flops(settings.batch, width, width, 3, shape)

    def fwd() -> None:
        with torch.no_grad(), autocast_context(precision, device):
            F.conv3d(x, w, padding=1)

    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

    def fwd_bwd() -> None:
        with autocast_context(precision, device):
            y = F.conv3d(xg, wg, padding=1)
        y.backward(torch.ones_like(y))

    result = {
        "shape": [settings.batch, width, *shape],
        "analytic_forward_flops": analytic,
        "forward": measure(fwd, device, settings.repeats, settings.warmup),
        "forward_backward": measure(fwd_bwd, device, settings.repeats, settings.warmup),
    }
    return result, Reference(fwd, analytic), Reference(fwd_bwd, result["forward_backward"]["flops"])


def bench_loader(cfg: Config, settings: BenchSettings, device: torch.device, tmp: Path) -> dict[str, Any]:
    """Samples/s of reading batches from a prepared dataset the way the training loop does."""
    from stylegan3d.data.dataset import VolumeDataset
    from stylegan3d.train.batches import InfiniteSampler, read_batch

    n = max(2 * settings.batch, 8)
    path = settings.data or write_random_dataset(tmp / "dataset", cfg, n)
    ds = VolumeDataset(path)
    if list(ds.geometry["shape"]) != list(cfg.model.resolution):
        raise UserError(f"--data holds {ds.geometry['shape']} volumes but the preset makes {cfg.model.resolution}")
    sampler = InfiniteSampler(len(ds), 0)

    def batch() -> None:
        read_batch(ds, sampler.take(settings.batch), device)

    r = measure(batch, device, max(settings.repeats, settings.loader_batches), 1, flops=False)
    r.update(dataset=str(settings.data) if settings.data else "temporary random float16 dataset", volumes=len(ds))
    r["samples_per_s"] = settings.batch / r["seconds"]
    return r


def _peak_shape(cfg: Config, settings: BenchSettings) -> list[int]:
    """The top resolution, halved until ``batch x voxels <= peak_voxels`` (the peak conv's spatial shape)."""
    shape = list(cfg.model.resolution)
    while settings.batch * math.prod(shape) > settings.peak_voxels and min(shape) >= 4:
        shape = [s // 2 for s in shape]
    return shape


def bench_kernels(cfg: Config, settings: BenchSettings, device: torch.device) -> dict[str, Any]:
    """Kernel micro-benchmarks behind the networks' choices (see the module doc), at the G's top width."""
    from stylegan3d.nn.layers import fir_filter, fir_filter_depthwise, fir_kernel
    from stylegan3d.nn.modulated import modulated_conv

    width = max(cfg.model.stage_widths("g"))
    shape = _peak_shape(cfg, settings)
    n = settings.batch
    gen = torch.Generator().manual_seed(4)
    x32 = torch.randn(n, width, *shape, generator=gen).to(device)
    w32 = (torch.randn(width, width, 3, 3, 3, generator=gen) / math.sqrt(27 * width)).to(device)
    flops = conv3d_flops(n, width, width, 3, shape)
    out: dict[str, Any] = {"shape": [n, width, *shape], "conv3d": []}

    def seconds(fn: Callable[[], Any]) -> float:
        return measure(fn, device, settings.repeats, settings.warmup, flops=False)["seconds"]

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if device.type == "cuda":
        dtypes["fp16"] = torch.float16
    for name, dtype in dtypes.items():
        for cl in (False, True):
            x, w = x32.to(dtype), w32.to(dtype)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last_3d)

            def conv(x=x, w=w) -> None:
                with torch.no_grad():
                    F.conv3d(x, w, padding=1)

            sec = seconds(conv)
            out["conv3d"].append({"dtype": name, "channels_last": cl, "seconds": sec, "flop_per_s": flops / sec})
    taps = fir_kernel([1, 3, 3, 1], 2.0)
    pad = (2, 1)  # the upsampling layers' padding

    out["fir"] = {
        "depthwise_conv_s": seconds(lambda: fir_filter_depthwise(x32, taps, pad)),
        "used_s": seconds(lambda: fir_filter(x32, taps, pad)),
        "used": "shifted-slice sums" if device.type == "cpu" else "depthwise conv",
    }
    w_rgb = torch.randn(cfg.model.channels, width, 1, 1, 1, generator=gen).to(device)
    styles = torch.randn(n, width, generator=gen).to(device)

    def torgb_matmul() -> None:
        modulated_conv(x32, w_rgb, styles, demodulate=False)

    def torgb_grouped() -> None:
        ww = (w_rgb.unsqueeze(0) * styles.reshape(n, 1, width, 1, 1, 1)).reshape(-1, width, 1, 1, 1)
        F.conv3d(x32.reshape(1, n * width, *shape), ww, groups=n)

    out["torgb"] = {"matmul_s": seconds(torgb_matmul), "grouped_conv_s": seconds(torgb_grouped)}
    return out

"""Speed and memory benchmark of the networks, the training step and the projector.

For each preset and each *variant* (precision, fused/non-fused modulated conv, channels-last,
``torch.compile``, activation checkpointing) one process measures:

* ``g_forward`` — ``G(z)`` under ``no_grad`` (samples/s), on the EMA generator as inference uses it;
* ``train_step`` — :meth:`stylegan3d.train.loop.Trainer.train_step` (G main + lazy PL, D main +
  lazy R1, EMA, ADA). Main-only, PL-only and R1-only steps are timed separately and combined
  into the amortised step time ``t = t_main + (t_pl - t_main) / pl_interval + (t_r1 - t_main) / r1_interval``
  (the same formula for FLOPs), reported as samples/s and s/kimg;
* ``projection`` — one projector step (``G.synthesis(ws, noise)`` -> full + pooled MSE + noise
  regulariser -> backward -> Adam -> noise renormalisation), batch 1;
* ``peak_conv`` — a dense ``conv3d`` (F -> F channels, 3x3x3, same padding) in the same precision and
  memory format: the practical peak FLOP/s that the three measurements above are compared with
  (forward only for ``g_forward``, forward + backward for the others). It is also timed once after
  every timed call of those three, and ``peak_fraction`` divides their FLOP/s by the rate of these
  interleaved reference calls, so that a change of the machine's load hits both sides alike;
  ``reference_calls`` is the time in units of one reference call (load-independent cost, comparable
  between variants that share the reference: same preset, precision and memory format);
* ``loader`` — the prepared dataset read as the training loop reads it (samples/s), compared with
  the training throughput;
* ``kernels`` (not in the default parts) — the choices behind the networks' kernels, on the peak
  conv's shape: dense ``conv3d`` forward in every precision x memory format the device offers (GFLOP/s);
  the separable FIR as shifted-slice sums vs depthwise convs; ToRGB as a batched matmul vs a grouped
  1x1x1 conv (seconds).

Timings: the first call of each measurement (the warm-up) runs under
``torch.utils.flop_counter.FlopCounterMode`` (eagerly) and is not timed; with ``torch.compile`` the
next call compiles and is reported as ``first_call_s``; then ``warmup - 1`` more untimed calls and
``repeats`` timed ones, of which the median is reported. CUDA work is synchronised before each
clock read. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the peak resident set
size (``VmHWM``, reset through ``/proc/self/clear_refs``) on CPU, over the timed calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.errors import UserError

SCHEMA = "stylegan3d-bench/1"
DEFAULT_PARTS = ("g_forward", "train_step", "projection", "loader")
PARTS = (*DEFAULT_PARTS, "kernels")
COMPARE_AXES = {
    "precision": ("fp32", "bf16"),
    "fused": ("fused", "nonfused"),
    "channels_last": ("off", "on"),
    "compile": (False, True),
    "checkpointing": (False, True),
}
_NEVER = 1 << 40  # a regularisation interval that never comes round while timing


@dataclass(frozen=True)
class Variant:
    """One combination of the speed options."""

    precision: str = "auto"
    """``fp32``, ``bf16``, ``fp16`` (CUDA) or ``auto`` (as training picks it)."""
    fused: str = "auto"
    """Modulated conv form: ``fused`` (grouped conv), ``nonfused`` (scale-conv-scale) or ``auto``."""
    channels_last: str = "auto"
    """``on``/``off`` channels_last_3d, or ``auto`` (as training picks it: on with bf16/fp16)."""
    compile: bool = False
    """``torch.compile`` of G.synthesis and D (regularisation passes run eagerly: no double backward)."""
    checkpointing: bool = False
    """Activation checkpointing of synthesis layers and D blocks (``train.checkpointing=true``)."""


@dataclass
class BenchSettings:
    """What to measure and how often."""

    presets: list[str] = field(default_factory=lambda: ["demo"])
    overrides: list[str] = field(default_factory=list)
    batch: int = 2
    device: str = "auto"
    variants: list[Variant] = field(default_factory=lambda: [Variant()])
    parts: list[str] = field(default_factory=lambda: list(DEFAULT_PARTS))
    repeats: int = 3
    warmup: int = 1
    peak_voxels: int = 1 << 18
    """Cap on batch x voxels of the dense peak conv (its spatial size is halved until it fits)."""
    data: Path | None = None
    """Prepared dataset for the loader measurement (default: a temporary one of random volumes)."""
    loader_batches: int = 8
    threads: int | None = None
    """``torch.set_num_threads`` for the run (None: torch's default, one per core)."""

    def validate(self) -> BenchSettings:
        if not self.presets:
            raise UserError("give at least one --preset")
        if self.batch < 1:
            raise UserError("--batch must be >= 1")
        if self.repeats < 1:
            raise UserError("--repeats must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise UserError("--threads must be >= 1")
        if self.warmup < 1:
            raise UserError("--warmup must be >= 1 (the first call counts FLOPs and is never timed)")
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise UserError(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
        for v in self.variants:
            if v.precision not in ("auto", "fp32", "bf16", "fp16"):
                raise UserError(f"precision must be auto, fp32, bf16 or fp16, got {v.precision!r}")
            if v.fused not in ("auto", "fused", "nonfused"):
                raise UserError(f"fused must be auto, fused or nonfused, got {v.fused!r}")
            if v.channels_last not in ("auto", "on", "off"):
                raise UserError(f"channels-last must be auto, on or off, got {v.channels_last!r}")
            if v.compile and not hasattr(torch.compiler, "set_stance"):
                raise UserError("--compile needs torch >= 2.6 (torch.compiler.set_stance)")
        if self.data is not None and not (Path(self.data) / "manifest.json").is_file():
            raise UserError(f"--data {self.data} is not a prepared dataset (no manifest.json)")
        return self


def expand_variants(base: Variant, compare: list[str]) -> list[Variant]:
    """All variants obtained from ``base`` by sweeping each axis named in ``compare`` over two values."""
    unknown = [a for a in compare if a not in COMPARE_AXES]
    if unknown:
        raise UserError(f"cannot compare {unknown}; choose from {', '.join(COMPARE_AXES)}")
    out = [base]
    for axis in dict.fromkeys(compare):
        out = [dataclasses.replace(v, **{axis: value}) for v in out for value in COMPARE_AXES[axis]]
    return out


# ---------------------------------------------------------------------------- measuring tools


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for an unavailable CUDA."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (this torch build or machine has none)")
    if not device.startswith(("cpu", "cuda")):
        raise UserError(f"--device must be cpu, cuda or auto, got {device!r}")
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (CUDA) so that a clock read covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory over a ``with`` block: CUDA max allocated, or CPU peak RSS (reset via clear_refs).

    After the block, :attr:`result` is ``{"peak_bytes", "baseline_bytes", "increase_bytes", "method"}``
    (bytes; on CPU ``peak_bytes`` is the whole process's resident set, ``increase_bytes`` what the
    block added on top of the resident set at its start); the CPU
    fallback without ``/proc/self/clear_refs`` is the process-lifetime ``ru_maxrss``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: dict[str, Any] = {}

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._method = "cuda_max_memory_allocated"
            return self
        self._method = "ru_maxrss (process lifetime)"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
            if _proc_status_bytes("VmHWM") is not None:
                self._method = "peak_rss (VmHWM after clear_refs)"
        except OSError:
            pass
        self._base = _proc_status_bytes("VmRSS") or 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._method.startswith("peak_rss"):
            peak = _proc_status_bytes("VmHWM") or 0
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.result = {
            "peak_bytes": int(peak),
            "baseline_bytes": int(self._base),
            "increase_bytes": int(peak - self._base),
            "method": self._method,
        }


class _GlobalOnly:
    """Stand-in for FlopCounterMode's per-module tracker: every FLOP is counted under "Global".

    The tracker hooks module outputs for backward, which fails inside ``torch.autograd.grad`` on
    leaf inputs (R1, path length); the totals do not need per-module attribution.
    """

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as counted by ``torch.utils.flop_counter.FlopCounterMode``
    (matmuls and convolutions, forward and backward; a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with _eager(), counter:
        fn()
    return int(counter.get_total_flops())


def _eager():
    """Run compiled modules eagerly (FLOP counting, double backward), where torch has the switch."""
    if hasattr(torch.compiler, "set_stance"):
        return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()


@dataclass
class Reference:
    """The practical-peak kernel timed between the calls of a measurement (same load conditions)."""

    fn: Callable[[], Any]
    flops: int


def measure(
    fn: Callable[[], Any],
    device: torch.device,
    repeats: int,
    warmup: int,
    compiled: bool = False,
    flops: bool = True,
    reference: Reference | None = None,
    count_in: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> dict[str, Any]:
    """Time ``fn`` (median of ``repeats``), after a FLOP-counting warm-up call; see the module doc.

    With a ``reference``, it is timed once after each timed call of ``fn`` and ``peak_fraction``
    compares the two FLOP rates measured side by side (the machine's load changes over minutes).
    With ``count_in``, FLOPs are counted in an extra call inside that context (see :func:`_count_nonfused`).
    """
    out: dict[str, Any] = {}
    if flops and count_in is not None:
        with count_in():
            out["flops"] = count_flops(fn)
        fn()
    elif flops:
        out["flops"] = count_flops(fn)
    else:
        fn()
    synchronize(device)
    if compiled:
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        out["first_call_s"] = time.perf_counter() - t0
    for _ in range(warmup - 1):
        fn()
    synchronize(device)
    times, ref_times, mems = [], [], []
    for _ in range(repeats):
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
        mems.append(mem.result)
        if reference is not None:
            t0 = time.perf_counter()
            reference.fn()
            synchronize(device)
            ref_times.append(time.perf_counter() - t0)
    out["times_s"] = times
    out["seconds"] = statistics.median(times)
    out["memory"] = {
        "peak_bytes": max(m["peak_bytes"] for m in mems),
        "baseline_bytes": min(m["baseline_bytes"] for m in mems),
        "increase_bytes": max(m["increase_bytes"] for m in mems),
        "method": mems[0]["method"],
    }
    if "flops" in out:
        out["flop_per_s"] = out["flops"] / out["seconds"]
        if reference is not None:
            out["reference_times_s"] = ref_times
            out["reference_flop_per_s"] = reference.flops / statistics.median(ref_times)
            out["peak_fraction"] = out["flop_per_s"] / out["reference_flop_per_s"]
            out["reference_calls"] = out["seconds"] / statistics.median(ref_times)
    return out


def conv3d_flops(batch: int, c_in: int, c_out: int, kernel: int, out_shape: list[int] | tuple[int, ...]) -> int:
    """Analytic FLOPs of a dense ``conv3d`` forward: 2 x batch x c_in x c_out x k^3 x output voxels."""
    return 2 * batch * c_in * c_out * kernel**3 * math.prod(out_shape)


# ---------------------------------------------------------------------------- environment


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU/GPU description, thread count, load average and library versions (for the JSON)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "memory_bytes": (_meminfo_total() or 0),
        "loadavg": list(os.getloadavg()),
        "device": str(device),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "transparent_hugepage": _read_text("/sys/kernel/mm/transparent_hugepage/enabled"),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(
            gpu=p.name,
            gpu_memory_bytes=p.total_memory,
            gpu_capability=f"{p.major}.{p.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _meminfo_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def versions() -> dict[str, str]:
    """Versions of Python, torch, numpy and stylegan3d."""
    try:
        own = importlib.metadata.version("stylegan3d")
    except importlib.metadata.PackageNotFoundError:
        own = "unknown"
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__, "stylegan3d": own}


# ---------------------------------------------------------------------------- data


class RandomVolumes:
    """In-memory stand-in for a prepared dataset (what ``Trainer`` accepts as ``data``).

    ``n`` random volumes ``[C, D, H, W]`` in [-1, 1]; ``geometry``/``manifest`` describe them.
    """

    def __init__(self, cfg: Config, n: int, seed: int = 0) -> None:
        m = cfg.model
        gen = torch.Generator().manual_seed(seed)
        self.volumes = torch.rand(n, m.channels, *m.resolution, generator=gen) * 2 - 1
        spacing = [float(m.spacing_mm)] * 3
        affine = np.diag(spacing + [1.0]).tolist()
        self.geometry = {"shape": list(m.resolution), "spacing": spacing, "affine": affine, "channels": m.channels}
        self.manifest = {
            "shape": list(m.resolution),
            "spacing": spacing,
            "affine": affine,
            "volumes": [{"name": f"random-{i}", "sha256": f"{i:064x}"} for i in range(n)],
        }
        self.labels = None

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.volumes[i]


def write_random_dataset(path: Path, cfg: Config, n: int, seed: int = 0) -> Path:
    """A prepared dataset (docs/formats.md: float16 ``volumes.npy`` + ``manifest.json``) of random volumes."""
    m = cfg.model
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = np.lib.format.open_memmap(
        path / "volumes.npy", mode="w+", dtype=np.float16, shape=(n, m.channels, *m.resolution)
    )
    for i in range(n):
        arr[i] = rng.random((m.channels, *m.resolution), dtype=np.float32)
    arr.flush()
    del arr
    spacing = [float(m.spacing_mm)] * 3
    manifest = {
        "format": "stylegan3d-dataset",
        "version": 1,
        "shape": list(m.resolution),
        "channels": m.channels,
        "spacing": spacing,
        "dtype": "float16",
        "affine": np.diag(spacing + [1.0]).tolist(),
        "frame": "centre",
        "volumes": [{"index": i, "name": f"random-{i:04d}", "sha256": f"{i:064x}"} for i in range(n)],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


# ---------------------------------------------------------------------------- one preset, one variant


def variant_overrides(v: Variant, batch: int) -> list[str]:
    """Config overrides that realise a variant in the training config (channels-last and compile are
    applied to the built networks by :func:`build_trainer`)."""
    out = [
        f"train.batch={batch}",
        f"train.precision={v.precision}",
        f"train.checkpointing={str(v.checkpointing).lower()}",
    ]
    if v.fused != "auto":
        out.append(f"g.fused_modconv={v.fused}")
    return out


def _channels_last_used(trainer) -> bool:
    return bool(trainer.G.synthesis.channels_last)


@contextlib.contextmanager
def _intervals(trainer, pl: int, r1: int) -> Iterator[None]:
    """Temporarily set the lazy-regularisation intervals, with the step counter off both multiples."""
    t = trainer.cfg.train
    saved = (t.pl_interval, t.r1_interval)
    t.pl_interval, t.r1_interval = pl, r1
    if trainer.state.step % _NEVER == 0:
        trainer.state.step += 1
    try:
        yield
    finally:
        t.pl_interval, t.r1_interval = saved


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
    from stylegan3d.train.loop import autocast_context

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
    kinds: dict[str, tuple[int, int]] = {"main": (_NEVER, _NEVER)}
    if t.pl_weight > 0:
        kinds["pl"] = (1, _NEVER)
    if t.r1_gamma > 0:
        kinds["r1"] = (_NEVER, 1)
    parts: dict[str, dict[str, Any]] = {}
    count_in = _count_nonfused(trainer, v)
    for kind, (pl, r1) in kinds.items():
        with _intervals(trainer, pl, r1):
            if v.compile and kind != "main":
                with _eager():  # compiled graphs have no double backward: regularisers run eagerly
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
        with _intervals(trainer, _NEVER, _NEVER), _eager():
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
    from stylegan3d.train.loop import autocast_context

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
        loss = mse + pooled + 1e5 * noise_regularization(noise)
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
    from stylegan3d.train.loop import autocast_context

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
    from stylegan3d.train.loop import InfiniteSampler, _fetch

    n = max(2 * settings.batch, 8)
    path = settings.data or write_random_dataset(tmp / "dataset", cfg, n)
    ds = VolumeDataset(path)
    if list(ds.geometry["shape"]) != list(cfg.model.resolution):
        raise UserError(f"--data holds {ds.geometry['shape']} volumes but the preset makes {cfg.model.resolution}")
    sampler = InfiniteSampler(len(ds), 0)

    def batch() -> None:
        _fetch(ds, sampler.take(settings.batch), device)

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


def _safe(fn: Callable[[], dict], errors: list[str], what: str) -> dict | None:
    try:
        return fn()
    except UserError:
        raise
    except (RuntimeError, torch.cuda.OutOfMemoryError, MemoryError, NotImplementedError) as e:
        msg = " ".join(str(e).split())[:400]
        errors.append(f"{what}: {type(e).__name__}: {msg}")
        return None


def bench_variant(cfg: Config, v: Variant, settings: BenchSettings, device: torch.device, tmp: Path, cache: dict):
    """All requested parts of one preset x variant; failures (e.g. out of memory) become ``errors``."""
    from stylegan3d.nn import count_params

    run_cfg = apply_overrides(cfg, variant_overrides(v, settings.batch))
    errors: list[str] = []
    res: dict[str, Any] = {"variant": dataclasses.asdict(v), "loadavg": list(os.getloadavg())}
    t0 = time.perf_counter()
    trainer = build_trainer(run_cfg, v, device, tmp / "run")
    res["setup_s"] = time.perf_counter() - t0
    cl = _channels_last_used(trainer)
    res["resolved"] = {
        "precision": trainer.precision,
        "channels_last": cl,
        "fused": {True: "fused", False: "nonfused", None: "auto"}[trainer.G.synthesis.fused],
    }
    res["params"] = {"G": count_params(trainer.G), "D": count_params(trainer.D)}
    key = (trainer.precision, cl)
    if key not in cache:
        peak = _safe(lambda: bench_peak_conv(cfg, settings, trainer.precision, cl, device), errors, "peak_conv")
        cache[key] = peak or (None, None, None)
    res["peak_conv"], ref_fwd, ref_train = cache[key]
    for part, fn, ref in (
        ("g_forward", bench_g_forward, ref_fwd),
        ("train_step", bench_train_step, ref_train),
        ("projection", bench_projection, ref_train),
    ):
        if part in settings.parts:
            res[part] = _safe(lambda fn=fn, ref=ref: fn(trainer, settings, v, ref), errors, part)
    res["errors"] = errors
    return res


def _summarise_variant(res: dict[str, Any]) -> dict[str, Any]:
    """A flat row of the headline numbers of one result (for tables)."""
    row: dict[str, Any] = {**res["resolved"], "compile": res["variant"]["compile"]}
    row["checkpointing"] = res["variant"]["checkpointing"]
    g, t, p = res.get("g_forward"), res.get("train_step"), res.get("projection")
    if g:
        row.update(g_samples_per_s=g["samples_per_s"], g_peak_fraction=g.get("peak_fraction"))
        row["g_mem_gb"] = g["memory"]["peak_bytes"] / 2**30
    if t:
        row.update(train_s_per_kimg=t["s_per_kimg"], train_samples_per_s=t["samples_per_s"])
        row.update(train_peak_fraction=t.get("peak_fraction"), train_mem_gb=t["memory"]["peak_bytes"] / 2**30)
    if p:
        row.update(proj_step_s=p["seconds"], proj_peak_fraction=p.get("peak_fraction"))
    return row


def run_bench(settings: BenchSettings, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready report (schema ``stylegan3d-bench/1``)."""

    settings.validate()
    device = resolve_device(settings.device)
    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _run(settings, device, progress)
    finally:
        torch.set_num_threads(threads)


def _run(settings: BenchSettings, device: torch.device, progress: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfgs = [(name, apply_overrides(load_preset(name), settings.overrides)) for name in settings.presets]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "machine": machine_info(device),
        "versions": versions(),
        "settings": {
            **{k: v for k, v in dataclasses.asdict(settings).items() if k != "variants"},
            "data": str(settings.data) if settings.data else None,
            "flop_counter": "torch.utils.flop_counter.FlopCounterMode",
            "amortised_step": "t_main + (t_pl - t_main) / pl_interval + (t_r1 - t_main) / r1_interval",
        },
        "results": [],
    }
    columns = (TextColumn("bench {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    total = len(cfgs) * len(settings.variants)
    with (
        tempfile.TemporaryDirectory(prefix="stylegan3d-bench-") as tmpdir,
        Progress(*columns, TimeElapsedColumn(), disable=not progress, transient=True) as bar,
    ):
        task = bar.add_task("", total=total)
        for name, cfg in cfgs:
            m = cfg.model
            entry: dict[str, Any] = {
                "preset": name,
                "overrides": list(settings.overrides),
                "resolution": list(m.resolution),
                "voxels": math.prod(m.resolution),
                "g_widths": m.stage_widths("g"),
                "d_widths": m.stage_widths("d"),
                "batch": settings.batch,
                "runs": [],
            }
            cache: dict = {}
            if "kernels" in settings.parts:
                bar.update(task, description=f"{name} kernels")
                entry["kernel_errors"] = []
                entry["kernels"] = _safe(
                    lambda cfg=cfg: bench_kernels(cfg, settings, device), entry["kernel_errors"], "kernels"
                )
            runs = [] if settings.parts == ["kernels"] else settings.variants
            for v in runs:
                bar.update(task, description=f"{name} {v.precision} {v.fused} compile={v.compile}")
                entry["runs"].append(bench_variant(cfg, v, settings, device, Path(tmpdir), cache))
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # the variant's trainer is gone: release its cached blocks
                bar.advance(task)
            if "loader" in settings.parts:
                loader = _safe(lambda cfg=cfg: bench_loader(cfg, settings, device, Path(tmpdir)), [], "loader")
                if loader is not None:
                    best = max(
                        (r["train_step"]["samples_per_s"] for r in entry["runs"] if r.get("train_step")), default=None
                    )
                    if best:
                        loader["ratio_to_fastest_train"] = loader["samples_per_s"] / best
                entry["loader"] = loader
            report["results"].append(entry)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    return report


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per preset x variant with the headline numbers."""
    return [{"preset": e["preset"], **_summarise_variant(r)} for e in report["results"] for r in e["runs"]]

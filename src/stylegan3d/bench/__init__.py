"""Speed and memory benchmark of the networks, the training step and the projector (``stylegan3d bench``).

Modules: :mod:`~stylegan3d.bench.settings` (what to measure), :mod:`~stylegan3d.bench.measurement`
(timing, FLOPs, memory, machine), :mod:`~stylegan3d.bench.data` (random volumes),
:mod:`~stylegan3d.bench.parts` (one function per measured part) and :mod:`~stylegan3d.bench.runner`
(the run and its JSON report).

For each preset and each *variant* (precision, fused/non-fused modulated conv, channels-last,
``torch.compile``, activation checkpointing) one process measures:

* ``g_forward`` — ``G(z)`` under ``no_grad`` (samples/s), on the EMA generator as inference uses it;
* ``train_step`` — :meth:`stylegan3d.train.loop.Trainer.train_step` (G main + lazy PL, D main +
  lazy R1, EMA, ADA). Main-only, PL-only and R1-only steps (forced with
  :meth:`~stylegan3d.train.loop.Trainer.regularisation`) are timed separately and combined
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

from stylegan3d.bench.data import RandomVolumes, write_random_dataset
from stylegan3d.bench.measurement import (
    PeakMemory,
    Reference,
    conv3d_flops,
    count_flops,
    machine_info,
    measure,
    synchronize,
    versions,
)
from stylegan3d.bench.parts import (
    bench_g_forward,
    bench_kernels,
    bench_loader,
    bench_peak_conv,
    bench_projection,
    bench_train_step,
    build_trainer,
)
from stylegan3d.bench.runner import bench_variant, run_bench, summary_rows
from stylegan3d.bench.settings import (
    COMPARE_AXES,
    DEFAULT_PARTS,
    PARTS,
    SCHEMA,
    BenchSettings,
    Variant,
    expand_variants,
    variant_overrides,
)

__all__ = [
    "COMPARE_AXES",
    "DEFAULT_PARTS",
    "PARTS",
    "SCHEMA",
    "BenchSettings",
    "PeakMemory",
    "RandomVolumes",
    "Reference",
    "Variant",
    "bench_g_forward",
    "bench_kernels",
    "bench_loader",
    "bench_peak_conv",
    "bench_projection",
    "bench_train_step",
    "bench_variant",
    "build_trainer",
    "conv3d_flops",
    "count_flops",
    "expand_variants",
    "machine_info",
    "measure",
    "run_bench",
    "summary_rows",
    "synchronize",
    "variant_overrides",
    "versions",
    "write_random_dataset",
]

"""Measuring tools of the bench: timing with a FLOP-counting warm-up, peak memory, the machine."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


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
    with eager(), counter:
        fn()
    return int(counter.get_total_flops())


def eager() -> contextlib.AbstractContextManager:
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

"""The bench run: every preset x variant in one process, failures kept as errors, the JSON report."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stylegan3d.bench.measurement import machine_info, versions
from stylegan3d.bench.parts import (
    bench_g_forward,
    bench_kernels,
    bench_loader,
    bench_peak_conv,
    bench_projection,
    bench_train_step,
    build_trainer,
    channels_last_used,
)
from stylegan3d.bench.settings import SCHEMA, BenchSettings, Variant, variant_overrides
from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.errors import UserError
from stylegan3d.util import one_line, progress_bar, resolve_device


def _safe(fn: Callable[[], dict], errors: list[str], what: str) -> dict | None:
    try:
        return fn()
    except UserError:
        raise
    except (RuntimeError, torch.cuda.OutOfMemoryError, MemoryError, NotImplementedError) as e:
        errors.append(f"{what}: {type(e).__name__}: {one_line(e, 400)}")
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
    cl = channels_last_used(trainer)
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
    from rich.progress import BarColumn, TimeElapsedColumn

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
    columns = ("bench {task.description}", BarColumn(), "{task.completed}/{task.total}", TimeElapsedColumn())
    total = len(cfgs) * len(settings.variants)
    with (
        tempfile.TemporaryDirectory(prefix="stylegan3d-bench-") as tmpdir,
        progress_bar(*columns, enabled=progress, transient=True) as bar,
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

"""Network-size study: train, evaluate and benchmark every point of a grid of config overrides.

A study is the cartesian product of grids such as ``width=8,16,32`` x ``z_dim=32,64`` on top
of a base preset. Each point is trained (in this process with :func:`stylegan3d.train.loop.train`,
or as a ``torchrun`` subprocess), evaluated with :func:`stylegan3d.metrics.evaluate` (same
metrics, generated-sample count and seeds for every point) and benchmarked (timed training
steps, counted FLOPs, peak memory). Results go to ``DIR/study.json``, ``DIR/study.md`` and
``DIR/study.png``.

Layout of a study directory::

    DIR/study.json  study.md  study.png  log.txt
    DIR/runs/<point>/point.json   # the point's settings, written before training
    DIR/runs/<point>/done.json    # results, written atomically after training + eval + bench
    DIR/runs/<point>/{config.json, checkpoints/, latest, log.txt, ...}   # the training run

Re-running the same command skips points with a matching ``done.json`` and resumes an
interrupted point from its run directory's ``latest`` checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_json, atomic_write_text
from stylegan3d.viz import save_figure

FORMAT = "stylegan3d-study"
VERSION = 1


# --------------------------------------------------------------------------------------- grid


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, so ``resolution=[10,12,14],[20,24,28]`` works."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["width=8,16", "z_dim=32,64"]`` -> ``{"width": ["8", "16"], "z_dim": ["32", "64"]}`` (order kept)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item!r} must look like key=v1,v2,... (e.g. width=16,32,64)")
        key, values = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UserError(f"--grid {item!r}: missing key")
        if key in grid:
            raise UserError(f"--grid {key} given twice; list all its values in one --grid")
        vals = _split_top_level(values)
        if not all(vals):
            raise UserError(f"--grid {item!r}: empty value")
        if len(set(vals)) != len(vals):
            raise UserError(f"--grid {item!r}: repeated value")
        grid[key] = vals
    if not grid:
        raise UserError("give at least one --grid key=v1,v2,...")
    return grid


@dataclass
class Point:
    """One configuration of the study: its grid values and a directory-safe name."""

    values: dict[str, str]

    @property
    def name(self) -> str:
        text = "_".join(f"{k}-{v}" for k, v in self.values.items())
        return re.sub(r"[^A-Za-z0-9._-]+", "", text.replace(",", "x"))

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values.items()]


def grid_points(grid: dict[str, list[str]]) -> list[Point]:
    """The cartesian product of the grid, first key varying slowest."""
    keys = list(grid)
    return [Point(dict(zip(keys, combo, strict=True))) for combo in itertools.product(*grid.values())]


def point_config(base: str, overrides: Sequence[str], point: Point, kimg: float | None) -> Config:
    """Base preset + study-wide overrides + the point's grid values (+ ``train.kimg``), validated."""
    extra = [f"train.kimg={kimg}"] if kimg is not None else []
    return apply_overrides(load_preset(base), [*overrides, *point.overrides, *extra])


# --------------------------------------------------------------------------------------- bench


def _release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so that the bench's CPU
    peak resident set reflects the point being measured rather than what earlier points left."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device} requested but CUDA is not available")
    if not device.startswith(("cpu", "cuda")):
        raise UserError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def bench_point(cfg: Config, device: str = "auto", repeats: int = 2) -> dict:
    """Speed and memory of one point's training step with :func:`stylegan3d.bench.bench_train_step`:
    main, path-length and R1 steps timed separately (median of ``repeats`` after a FLOP-counting
    warm-up) and amortised over the lazy intervals; FLOPs counted by ``FlopCounterMode``; peak
    memory over the timed steps. The point's own precision, modulated-conv form, channels-last,
    checkpointing and batch size are kept. Returns s/kimg, images/s, GFLOP per image and peak
    memory (GiB), plus the bench's raw result.
    """
    import torch

    from stylegan3d import bench

    t = cfg.train
    v = bench.Variant(precision=t.precision, fused=cfg.model.g.fused_modconv, checkpointing=t.checkpointing)
    settings = bench.BenchSettings(
        presets=[cfg.name], batch=t.batch, device=device, parts=["train_step"], repeats=repeats, warmup=1
    ).validate()
    dev = bench.resolve_device(device)
    _release_memory()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    errors: list[str] = []
    load = list(os.getloadavg())  # shared machines: timings scale with the load
    with tempfile.TemporaryDirectory(prefix="stylegan3d-study-bench-") as tmp:
        trainer = bench.build_trainer(cfg, v, dev, Path(tmp) / "run")
        precision = trainer.precision
        try:
            step = bench.bench_train_step(trainer, settings, v)
        except (RuntimeError, MemoryError) as e:  # e.g. out of memory: reported in the table, not fatal
            step = None
            errors.append(f"train_step: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
        del trainer
    _release_memory()
    out: dict[str, Any] = {
        "loadavg": load,
        "method": "stylegan3d.bench.bench_train_step (amortised over the lazy regularisation intervals)",
        "device": str(dev),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "batch": t.batch,
        "repeats": repeats,
        "sec_per_kimg": None,
        "img_per_sec": None,
        "gflop_per_img": None,
        "peak_mem_gb": None,
        "mem_increase_gb": None,
        "mem_kind": "",
        "errors": errors,
        "raw": step,
    }
    if step:
        out.update(
            sec_per_kimg=step["s_per_kimg"],
            img_per_sec=step["samples_per_s"],
            gflop_per_img=step["flops"] / t.batch / 1e9,
            peak_mem_gb=step["memory"]["peak_bytes"] / 2**30,
            mem_increase_gb=step["memory"]["increase_bytes"] / 2**30,
            mem_kind=step["memory"]["method"],
        )
    return out


# --------------------------------------------------------------------------------------- training


def torchrun_command(
    data: Path,
    run_dir: Path,
    base: str,
    overrides: Sequence[str],
    kimg: float | None,
    nproc: int,
    resume: bool,
    device: str = "auto",
) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N -m stylegan3d train ...`` for one point
    (spelled ``python -m torch.distributed.run``, the module behind ``torchrun``)."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "stylegan3d", "train", "--data", str(data), "--out", str(run_dir), "--preset", base,
        "--no-progress", "--device", device,
    ]  # fmt: skip
    if kimg is not None:
        cmd += ["--kimg", str(kimg)]
    for o in overrides:
        cmd += ["--set", o]
    if resume:
        cmd += ["--resume", str(run_dir)]
    return cmd


def _train_point(
    cfg: Config,
    data: Path,
    run_dir: Path,
    *,
    launcher: str,
    nproc: int,
    device: str,
    base: str,
    overrides: Sequence[str],
    kimg: float | None,
    progress: bool,
    log: Callable[[str], None],
) -> dict:
    resume = (run_dir / "latest").is_file()
    t0 = time.perf_counter()
    if launcher == "torchrun":
        cmd = torchrun_command(data, run_dir, base, overrides, kimg, nproc, resume, device)
        log("  " + " ".join(cmd))
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            raise UserError(f"training {run_dir.name} failed (torchrun exit status {rc}); see {run_dir / 'log.txt'}")
    else:
        from stylegan3d.train.loop import train

        train(cfg, data, run_dir, resume=run_dir if resume else None, device=device, progress=progress)
    return {"wall_s": time.perf_counter() - t0, "resumed": resume, "launcher": launcher, "nproc": nproc}


# --------------------------------------------------------------------------------------- study


def _manifest(data: Path) -> tuple[dict, str]:
    """The dataset's manifest and its identifying hash."""
    import json

    from stylegan3d.data.dataset import manifest_hash

    try:
        manifest = json.loads((data / "manifest.json").read_text())
        return manifest, manifest_hash(manifest)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"dataset {data}: unreadable manifest.json ({e})") from None


def _param_counts(cfg: Config) -> dict:
    import torch

    from stylegan3d.nn import Discriminator, Generator, count_params

    with torch.device("meta"):
        g, d = Generator(cfg.model), Discriminator(cfg.model)
    return {"G": count_params(g), "D": count_params(d)}


def _read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _environment(device: str) -> dict:
    import torch

    from stylegan3d import __version__
    from stylegan3d.bench import machine_info

    dev = _resolve_device(device)
    info = machine_info(torch.device(dev))
    return {
        "stylegan3d": __version__,
        "torch": torch.__version__,
        "device": dev,
        "device_name": info.get("gpu") or info.get("cpu") or "",
        "cpu_count": info.get("cpu_count"),
        "torch_threads": info.get("torch_threads"),
        "loadavg_start": info.get("loadavg"),
    }


def run_study(
    data: Path,
    base: str,
    grid: dict[str, list[str]],
    out: Path,
    *,
    kimg: float | None = None,
    overrides: Sequence[str] = (),
    metrics: str | Sequence[str] | None = None,
    n: int | None = None,
    seeds: Sequence[int] | None = None,
    eval_seed: int = 0,
    n_boot: int = 100,
    launcher: str = "local",
    nproc: int = 1,
    device: str = "auto",
    bench_repeats: int = 2,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Train, evaluate and bench every point of ``grid`` on ``data``; write ``out/study.{json,md,png}``.

    ``grid``: from :func:`parse_grid`; ``overrides``: ``key=value`` applied to every point;
    ``kimg``: training length of every point (default: the preset's); ``metrics``/``n``/``seeds``:
    passed to :func:`stylegan3d.metrics.evaluate` unchanged for every point (``n`` defaults to
    ``len(seeds)``, seeds to ``0..n-1``); ``launcher``: ``local`` (this process) or ``torchrun``
    (``nproc`` processes per point). Points with a matching ``done.json`` are not recomputed.
    Returns the study document (also written to ``out/study.json``).
    """
    from stylegan3d.metrics.evaluate import evaluate, parse_metrics

    data, out = Path(data), Path(out)
    if not (data / "manifest.json").is_file():
        raise UserError(f"dataset not found: {data} (run `stylegan3d prepare` first)")
    if launcher not in ("local", "torchrun"):
        raise UserError(f"launcher must be local or torchrun, got {launcher!r}")
    if nproc < 1:
        raise UserError(f"nproc must be >= 1, got {nproc}")
    if launcher == "local" and nproc != 1:
        raise UserError("--nproc needs --launcher torchrun")
    if kimg is not None and kimg <= 0:
        raise UserError(f"kimg must be > 0, got {kimg}")
    if bench_repeats < 1:
        raise UserError(f"bench repeats must be >= 1, got {bench_repeats}")
    metric_names = parse_metrics(metrics)
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if n is not None and n != len(seeds):
            raise UserError(f"n={n} but {len(seeds)} seeds given")
        n = len(seeds)
    elif n is not None:
        if n < 2:
            raise UserError(f"n must be >= 2, got {n}")
        seeds = list(range(n))
    eval_device = _resolve_device(device)

    points = grid_points(grid)
    configs = {p.name: point_config(base, overrides, p, kimg) for p in points}  # validates every point first
    if len(configs) != len(points):
        raise UserError("two grid points map to the same directory name; use distinct values")
    manifest, data_sha = _manifest(data)
    for name, cfg in configs.items():  # fail before training anything
        shape, channels = list(manifest.get("shape", [])), int(manifest.get("channels", 1))
        if shape != list(cfg.model.resolution) or channels != cfg.model.channels:
            raise UserError(
                f"dataset {data} holds {channels}x{shape} volumes but point {name} makes "
                f"{cfg.model.channels}x{list(cfg.model.resolution)}; prepare the data with the base preset "
                "or set resolution with --set"
            )
    settings = {
        "data": str(data),
        "data_manifest_sha256": data_sha,
        "base": base,
        "overrides": list(overrides),
        "grid": grid,
        "kimg": kimg,
        "metrics": metric_names,
        "n": n,
        "seeds": seeds,
        "eval_seed": eval_seed,
        "n_boot": n_boot,
        "launcher": launcher,
        "nproc": nproc,
        "device": device,
        "bench_repeats": bench_repeats,
    }
    eval_key = {k: settings[k] for k in ("metrics", "n", "seeds", "eval_seed", "n_boot", "bench_repeats")}
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "log.txt"

    def log(text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        with open(log_file, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)

    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "command": command,
        "settings": settings,
        "environment": _environment(device),
        "points": [],
        "real_vs_real": {},
    }
    log(f"study of {len(points)} point(s) in {out}: {command or ''}".rstrip())
    for i, point in enumerate(points, 1):
        cfg = configs[point.name]
        run_dir = out / "runs" / point.name
        train_key = {"config": cfg.to_dict(), "data_manifest_sha256": data_sha}
        done = _read_json(run_dir / "done.json")
        if done is not None and done.get("train_key") == train_key and done.get("eval_key") == eval_key:
            log(f"[{i}/{len(points)}] {point.label}: done earlier, skipped (delete {run_dir / 'done.json'} to redo)")
            doc["points"].append(done["result"])
            _collect_rvr(doc, done["rvr"])
            continue
        started = _read_json(run_dir / "point.json")
        if started is not None and started.get("train_key") != train_key:
            raise UserError(
                f"{run_dir} was trained with other settings (config or dataset changed); "
                "use another --out or delete that run directory"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "point.json", {"name": point.name, "values": point.values, "train_key": train_key})
        log(f"[{i}/{len(points)}] {point.label}: training to {cfg.train.kimg} kimg in {run_dir}")
        train_info = _train_point(
            cfg, data, run_dir, launcher=launcher, nproc=nproc, device=device, base=base,
            overrides=[*overrides, *point.overrides], kimg=kimg, progress=progress, log=log,
        )  # fmt: skip
        log(f"[{i}/{len(points)}] {point.label}: trained in {train_info['wall_s']:.1f} s; evaluating")
        ev = evaluate(
            run_dir, data, metric_names, n=n, seeds=seeds, real_vs_real=True, seed=eval_seed, n_boot=n_boot,
            device=eval_device, progress=progress,
        )  # fmt: skip
        log(f"[{i}/{len(points)}] {point.label}: evaluated in {ev['timing_s'].get('total', 0):.1f} s; bench")
        bench = bench_point(cfg, device=device, repeats=bench_repeats)
        from stylegan3d.checkpoint import resolve_checkpoint

        meta = resolve_checkpoint(run_dir).meta
        metrics_out = {k: {kk: vv for kk, vv in e.items() if kk != "real_vs_real"} for k, e in ev["metrics"].items()}
        result = {
            "name": point.name,
            "values": point.values,
            "label": point.label,
            "run_dir": str(run_dir.relative_to(out)),
            "params": _param_counts(cfg),
            "kimg": float(meta.kimg or 0.0),
            "step": int(meta.step or 0),
            "train": train_info,
            "bench": bench,
            "metrics": metrics_out,
            "eval": {
                "seeds": ev.get("seeds"),
                "checkpoint_sha256": ev.get("checkpoint_sha256"),
                "timing_s": ev.get("timing_s"),
            },
        }
        rvr = {k: e.get("real_vs_real") for k, e in ev["metrics"].items()}
        atomic_write_json(
            run_dir / "done.json", {"train_key": train_key, "eval_key": eval_key, "result": result, "rvr": rvr}
        )
        doc["points"].append(result)
        _collect_rvr(doc, rvr)
        _write_outputs(doc, out, plot=False)  # tables as points finish; the figure at the end
        log(
            f"[{i}/{len(points)}] {point.label}: G {result['params']['G']:,} D {result['params']['D']:,} params, "
            f"{_fmt(bench['sec_per_kimg'])} s/kimg, peak memory {_fmt(bench['peak_mem_gb'])} GiB"
            + (f"; bench errors: {bench['errors']}" if bench["errors"] else "")
        )
    doc["environment"]["loadavg_end"] = list(os.getloadavg())
    _write_outputs(doc, out)
    log(f"wrote {out / 'study.json'}, {out / 'study.md'}, {out / 'study.png'}")
    return doc


def _collect_rvr(doc: dict, rvr: dict) -> None:
    """Keep the real-vs-real baseline (the same for every point: same data, split and seed)."""
    for k, v in rvr.items():
        if v is not None and k not in doc["real_vs_real"]:
            doc["real_vs_real"][k] = v


def _write_outputs(doc: dict, out: Path, plot: bool = True) -> None:
    atomic_write_json(out / "study.json", doc)
    atomic_write_text(out / "study.md", markdown_report(doc))
    if plot and doc["points"]:
        plot_study(doc, out / "study.png")


# --------------------------------------------------------------------------------------- report


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.2e}"
    return f"{x:.3g}" if ax < 100 else f"{x:.0f}"


def _cell(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci95")
    return f"{_fmt(entry['value'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else _fmt(entry["value"])


def metric_keys(doc: dict) -> list[str]:
    """Metric columns in first-seen order (``prdc`` expands to precision/recall/density/coverage)."""
    keys: list[str] = []
    for p in doc["points"]:
        for k in p["metrics"]:
            if k not in keys:
                keys.append(k)
    return keys


def _si(x: float) -> str:
    """Compact axis label: 43.1k, 2.4M, 0.72."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def markdown_report(doc: dict) -> str:
    """The study as Markdown: command, settings, one row per point and a real-vs-real row."""
    s, env = doc["settings"], doc.get("environment", {})
    keys = metric_keys(doc)
    better = {}
    for p in doc["points"]:
        for k, e in p["metrics"].items():
            better.setdefault(k, e.get("better", ""))
    lines = ["# Network-size study", ""]
    if doc.get("command"):
        lines += ["Command:", "", "```", doc["command"], "```", ""]
    seeds = s.get("seeds")
    grid_text = "; ".join(f"`{k}` = " + ", ".join(v) for k, v in s["grid"].items())
    seed_text = f"{seeds[0]}-{seeds[-1]}" if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)
    lines += [
        f"- data: `{s['data']}` (manifest sha256 `{s['data_manifest_sha256'][:12]}`)",
        f"- base preset: `{s['base']}`; overrides: {', '.join(f'`{o}`' for o in s['overrides']) or 'none'}",
        f"- grid: {grid_text}",
        f"- training length: {s['kimg'] if s['kimg'] is not None else 'preset default'} kimg per point "
        f"({s['launcher']} launcher, {s['nproc']} process(es))",
        f"- metrics: {', '.join(s['metrics'])}; {s['n'] or 'default'} generated volumes per point "
        f"(seeds {seed_text}), evaluation seed {s['eval_seed']}, {s['n_boot']} bootstrap resamples",
        f"- bench: `stylegan3d.bench`, {s['bench_repeats']} timed repeats of each step kind per point on "
        f"{env.get('device', '?')} "
        f"({env.get('device_name', '')}, {env.get('torch_threads', '?')} torch threads, torch {env.get('torch', '?')})",
        "",
    ]
    head = ["config", "G params", "D params", "kimg", "s/kimg", "GFLOP/img", "peak mem GiB"]
    head += [f"{k} ({better[k]})" if better.get(k) else k for k in keys]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in doc["points"]:
        b = p["bench"]
        row = [
            f"`{p['label']}`",
            _params(p["params"]["G"]),
            _params(p["params"]["D"]),
            f"{p['kimg']:.3g}",
            _fmt(b["sec_per_kimg"]),
            _fmt(b["gflop_per_img"]),
            _fmt(b["peak_mem_gb"]),
        ]
        row += [_cell(p["metrics"].get(k)) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    if doc.get("real_vs_real"):
        row = ["real vs real (reference)", "", "", "", "", "", ""]
        row += [_cell(doc["real_vs_real"].get(k)) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Metric cells: value [95% bootstrap CI]. The real-vs-real row is the same metric between two "
        "disjoint halves of the real data (the generated volumes are compared with the first half).",
    ]
    if doc["points"]:
        b = doc["points"][0]["bench"]
        lines += [
            f"s/kimg: training step time from `stylegan3d.bench` (median of the timed repeats; path-length and "
            f"R1 steps amortised over their lazy intervals; batch {b['batch']}, {b['precision']}, "
            f"{b['threads']} torch threads), without checkpoints or snapshots. GFLOP/img: FLOPs of that amortised "
            "step (G and D, forward and backward, counted by torch's FlopCounterMode) per image. "
            f"Peak memory: {b['mem_kind']} over the timed steps.",
        ]
    return "\n".join(lines) + "\n"


def plot_study(doc: dict, path: Path) -> Path:
    """Each metric (rows) against G+D parameters and against training compute (columns), with the
    95% CIs as error bars and the real-vs-real value as a dashed line over its CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    keys = metric_keys(doc)
    pts = doc["points"]
    grid_keys = list(doc["settings"]["grid"])
    group_key = grid_keys[1] if len(grid_keys) > 1 else None
    groups = sorted({p["values"].get(group_key, "") for p in pts}) if group_key else [""]
    xs = {
        "parameters (G + D)": [p["params"]["G"] + p["params"]["D"] for p in pts],
        "training compute (TFLOP: GFLOP/img x images trained)": [
            (p["bench"]["gflop_per_img"] or math.nan) * p["kimg"] for p in pts
        ],
    }
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 2.8 * len(keys) + 0.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, key in enumerate(keys):
        rvr = doc.get("real_vs_real", {}).get(key)
        for c, (xlabel, xv) in enumerate(xs.items()):
            ax = axes[r][c]
            for gi, g in enumerate(groups):
                idx = [i for i, p in enumerate(pts) if not group_key or p["values"].get(group_key) == g]
                idx = [i for i in idx if pts[i]["metrics"].get(key, {}).get("value") is not None]
                if not idx:
                    continue
                idx.sort(key=lambda i: xv[i])
                x = [xv[i] for i in idx]
                y = [pts[i]["metrics"][key]["value"] for i in idx]
                cis = [pts[i]["metrics"][key].get("ci95") or [v, v] for i, v in zip(idx, y, strict=True)]
                err = [[max(v - ci[0], 0) for v, ci in zip(y, cis, strict=True)],
                       [max(ci[1] - v, 0) for v, ci in zip(y, cis, strict=True)]]  # fmt: skip
                label = f"{group_key}={g}" if group_key else None
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colors[gi % len(colors)], label=label)
                for i, xi, yi in zip(idx, x, y, strict=True):
                    name = pts[i]["values"].get(grid_keys[0], pts[i]["label"])
                    ax.annotate(f"{grid_keys[0]}={name}", (xi, yi), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")  # fmt: skip
            if rvr and rvr.get("value") is not None:
                ax.axhline(rvr["value"], color="k", ls="--", lw=1, label="real vs real")
                if rvr.get("ci95"):
                    ax.axhspan(rvr["ci95"][0], rvr["ci95"][1], color="k", alpha=0.08)
            finite = sorted({x for x in xv if math.isfinite(x) and x > 0})
            if finite:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xticks(finite, [_si(x) for x in finite])
            better = next((p["metrics"][key].get("better") for p in pts if key in p["metrics"]), "")
            ax.set_ylabel(f"{key}\n({better})" if better else key, fontsize=8)
            if r == len(keys) - 1:
                ax.set_xlabel(xlabel)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0 and c == 1:
                ax.legend(fontsize=7)
    fig.suptitle(f"Network-size study on {Path(doc['settings']['data']).name} ({doc['settings']['base']})")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return save_figure(path, fig, dpi=110)

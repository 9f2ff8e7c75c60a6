"""Running a study: its settings, and the training, evaluation and bench of each point."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stylegan3d.config import Config
from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_json, atomic_write_text
from stylegan3d.study.grid import Point, grid_points, point_config
from stylegan3d.study.report import fmt, markdown_report, plot_study

FORMAT = "stylegan3d-study"
VERSION = 1


@dataclass
class StudySettings:
    """Everything :func:`run_study` needs (``stylegan3d study`` fills it from its options)."""

    data: Path
    """Prepared dataset every point trains and is evaluated on."""
    base: str
    """Base preset name or JSON config file."""
    grid: dict[str, list[str]]
    """From :func:`~stylegan3d.study.grid.parse_grid`: the keys swept and their values."""
    out: Path
    """Study directory (``study.json``, ``study.md``, ``study.png``, ``runs/``)."""
    kimg: float | None = None
    """Training length of every point (None: the preset's)."""
    overrides: Sequence[str] = ()
    """``key=value`` config overrides applied to every point."""
    metrics: str | Sequence[str] | None = None
    """Metrics of every point, as :func:`stylegan3d.metrics.parse_metrics` reads them."""
    n: int | None = None
    """Generated volumes per point (default ``len(seeds)``, or as :func:`stylegan3d.metrics.evaluate`)."""
    seeds: Sequence[int] | None = None
    """Seeds of the generated volumes (default ``0..n-1``)."""
    eval_seed: int = 0
    """Seed of the real split, pairs and bootstrap."""
    n_boot: int = 100
    """Bootstrap resamples for the 95 % intervals."""
    launcher: str = "local"
    """``local`` (train in this process) or ``torchrun`` (``nproc`` processes per point)."""
    nproc: int = 1
    """Processes per point with the ``torchrun`` launcher."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``: training, metrics and bench."""
    bench_repeats: int = 2
    """Timed repeats of each training-step kind in the per-point bench."""
    command: str | None = None
    """The command line, recorded in ``study.json`` and ``study.md``."""
    progress: bool = True
    """Progress bars while training and evaluating."""

    def resolved(self) -> StudySettings:
        """A checked copy with paths as :class:`~pathlib.Path`, metric names parsed and ``n``/``seeds`` filled
        in from each other (both stay None when neither is given)."""
        from stylegan3d.metrics.evaluate import parse_metrics

        data = Path(self.data)
        if not (data / "manifest.json").is_file():
            raise UserError(f"dataset not found: {data} (run `stylegan3d prepare` first)")
        if self.launcher not in ("local", "torchrun"):
            raise UserError(f"launcher must be local or torchrun, got {self.launcher!r}")
        if self.nproc < 1:
            raise UserError(f"nproc must be >= 1, got {self.nproc}")
        if self.launcher == "local" and self.nproc != 1:
            raise UserError("--nproc needs --launcher torchrun")
        if self.kimg is not None and self.kimg <= 0:
            raise UserError(f"kimg must be > 0, got {self.kimg}")
        if self.bench_repeats < 1:
            raise UserError(f"bench repeats must be >= 1, got {self.bench_repeats}")
        metric_names = parse_metrics(self.metrics)
        n, seeds = self.n, self.seeds
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if n is not None and n != len(seeds):
                raise UserError(f"n={n} but {len(seeds)} seeds given")
            n = len(seeds)
        elif n is not None:
            if n < 2:
                raise UserError(f"n must be >= 2, got {n}")
            seeds = list(range(n))
        return replace(self, data=data, out=Path(self.out), metrics=metric_names, n=n, seeds=seeds)


# --------------------------------------------------------------------------------------- bench


def _release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so that the bench's CPU
    peak resident set reflects the point being measured rather than what earlier points left."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
    from stylegan3d.util import one_line, resolve_device

    t = cfg.train
    v = bench.Variant(precision=t.precision, fused=cfg.model.g.fused_modconv, checkpointing=t.checkpointing)
    settings = bench.BenchSettings(
        presets=[cfg.name], batch=t.batch, device=device, parts=["train_step"], repeats=repeats, warmup=1
    ).validate()
    dev = resolve_device(device)
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
            errors.append(f"train_step: {type(e).__name__}: {one_line(e, 300)}")
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
    s: StudySettings, cfg: Config, run_dir: Path, overrides: Sequence[str], log: Callable[[str], None]
) -> dict:
    """Train (or resume) one point in ``run_dir`` with the study's launcher; returns wall time and how."""
    resume = (run_dir / "latest").is_file()
    t0 = time.perf_counter()
    if s.launcher == "torchrun":
        cmd = torchrun_command(s.data, run_dir, s.base, overrides, s.kimg, s.nproc, resume, s.device)
        log("  " + " ".join(cmd))
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            raise UserError(f"training {run_dir.name} failed (torchrun exit status {rc}); see {run_dir / 'log.txt'}")
    else:
        from stylegan3d.train.loop import train

        train(cfg, s.data, run_dir, resume=run_dir if resume else None, device=s.device, progress=s.progress)
    return {"wall_s": time.perf_counter() - t0, "resumed": resume, "launcher": s.launcher, "nproc": s.nproc}


# --------------------------------------------------------------------------------------- study


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
    from stylegan3d.util import resolve_device

    dev = resolve_device(device)
    info = machine_info(dev)
    return {
        "stylegan3d": __version__,
        "torch": torch.__version__,
        "device": str(dev),
        "device_name": info.get("gpu") or info.get("cpu") or "",
        "cpu_count": info.get("cpu_count"),
        "torch_threads": info.get("torch_threads"),
        "loadavg_start": info.get("loadavg"),
    }


def _point_configs(s: StudySettings) -> tuple[list[Point], dict[str, Config], str]:
    """Every point, its validated config and the dataset's hash; fails before anything is trained when a
    point's geometry does not match the dataset."""
    points = grid_points(s.grid)
    configs = {p.name: point_config(s.base, s.overrides, p, s.kimg) for p in points}  # validates every point first
    if len(configs) != len(points):
        raise UserError("two grid points map to the same directory name; use distinct values")
    from stylegan3d.data.dataset import load_manifest, manifest_hash

    manifest = load_manifest(s.data)
    data_sha = manifest_hash(manifest)
    for name, cfg in configs.items():
        shape, channels = list(manifest.get("shape", [])), int(manifest.get("channels", 1))
        if shape != list(cfg.model.resolution) or channels != cfg.model.channels:
            raise UserError(
                f"dataset {s.data} holds {channels}x{shape} volumes but point {name} makes "
                f"{cfg.model.channels}x{list(cfg.model.resolution)}; prepare the data with the base preset "
                "or set resolution with --set"
            )
    return points, configs, data_sha


def _settings_record(s: StudySettings, data_sha: str) -> dict:
    """The ``settings`` of ``study.json``."""
    return {
        "data": str(s.data),
        "data_manifest_sha256": data_sha,
        "base": s.base,
        "overrides": list(s.overrides),
        "grid": s.grid,
        "kimg": s.kimg,
        "metrics": s.metrics,
        "n": s.n,
        "seeds": s.seeds,
        "eval_seed": s.eval_seed,
        "n_boot": s.n_boot,
        "launcher": s.launcher,
        "nproc": s.nproc,
        "device": s.device,
        "bench_repeats": s.bench_repeats,
    }


def _run_point(
    s: StudySettings, point: Point, cfg: Config, run_dir: Path, log: Callable[[str], None], tag: str
) -> tuple[dict, dict]:
    """Train, evaluate and bench one point (``tag`` starts its log lines); returns its result and its
    real-vs-real entries."""
    from stylegan3d.checkpoint import resolve_checkpoint
    from stylegan3d.metrics.evaluate import EvalSettings, evaluate
    from stylegan3d.util import resolve_device

    log(f"{tag}: training to {cfg.train.kimg} kimg in {run_dir}")
    train_info = _train_point(s, cfg, run_dir, [*s.overrides, *point.overrides], log)
    log(f"{tag}: trained in {train_info['wall_s']:.1f} s; evaluating")
    eval_settings = EvalSettings(
        s.metrics, n=s.n, seeds=s.seeds, real_vs_real=True, seed=s.eval_seed, n_boot=s.n_boot,
        device=str(resolve_device(s.device)), progress=s.progress,
    )  # fmt: skip
    ev = evaluate(run_dir, s.data, eval_settings)
    log(f"{tag}: evaluated in {ev['timing_s'].get('total', 0):.1f} s; bench")
    bench = bench_point(cfg, device=s.device, repeats=s.bench_repeats)
    meta = resolve_checkpoint(run_dir).meta
    metrics_out = {k: {kk: vv for kk, vv in e.items() if kk != "real_vs_real"} for k, e in ev["metrics"].items()}
    result = {
        "name": point.name,
        "values": point.values,
        "label": point.label,
        "run_dir": str(run_dir.relative_to(s.out)),
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
    return result, {k: e.get("real_vs_real") for k, e in ev["metrics"].items()}


def run_study(settings: StudySettings) -> dict:
    """Train, evaluate and bench every point of ``settings.grid``; write ``out/study.{json,md,png}``.

    The metrics, ``n`` and seeds are passed to :func:`stylegan3d.metrics.evaluate` unchanged for every
    point. Points with a matching ``done.json`` are not recomputed; an interrupted point resumes.
    Returns the study document (also written to ``out/study.json``).
    """
    s = settings.resolved()
    points, configs, data_sha = _point_configs(s)
    record = _settings_record(s, data_sha)
    eval_key = {k: record[k] for k in ("metrics", "n", "seeds", "eval_seed", "n_boot", "bench_repeats")}
    out = s.out
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
        "command": s.command,
        "settings": record,
        "environment": _environment(s.device),
        "points": [],
        "real_vs_real": {},
    }
    log(f"study of {len(points)} point(s) in {out}: {s.command or ''}".rstrip())
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
        result, rvr = _run_point(s, point, cfg, run_dir, log, f"[{i}/{len(points)}] {point.label}")
        atomic_write_json(
            run_dir / "done.json", {"train_key": train_key, "eval_key": eval_key, "result": result, "rvr": rvr}
        )
        doc["points"].append(result)
        _collect_rvr(doc, rvr)
        _write_outputs(doc, out, plot=False)  # tables as points finish; the figure at the end
        bench = result["bench"]
        log(
            f"[{i}/{len(points)}] {point.label}: G {result['params']['G']:,} D {result['params']['D']:,} params, "
            f"{fmt(bench['sec_per_kimg'])} s/kimg, peak memory {fmt(bench['peak_mem_gb'])} GiB"
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

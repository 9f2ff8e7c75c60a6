"""``stylegan3d bench``: speed, FLOP/s and peak memory of G forward, the training step and projection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import SET_HELP, app
from stylegan3d.errors import UserError


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_summary(report: dict) -> None:
    """A rich table of the headline numbers, one row per preset x variant."""
    from rich.console import Console
    from rich.table import Table

    from stylegan3d.bench import summary_rows

    table = Table(
        title=f"stylegan3d bench on {report['machine']['device']} (load {report['machine']['loadavg'][0]:.1f})"
    )
    heads = ["preset", "prec", "fused", "CL", "compile", "ckpt", "G fwd img/s", "G %peak", "G mem GB"]
    heads += ["train s/kimg", "train img/s", "train %peak", "train mem GB", "proj s/step", "proj %peak"]
    for h in heads:
        table.add_column(h, justify="right" if h not in ("preset", "prec", "fused") else "left")
    for r in summary_rows(report):
        pct = lambda x: None if x is None else 100 * x  # noqa: E731
        table.add_row(
            r["preset"],
            r["precision"],
            r["fused"],
            "on" if r["channels_last"] else "off",
            "on" if r["compile"] else "off",
            "on" if r["checkpointing"] else "off",
            _fmt(r.get("g_samples_per_s"), ".3g"),
            _fmt(pct(r.get("g_peak_fraction")), ".0f"),
            _fmt(r.get("g_mem_gb"), ".2f"),
            _fmt(r.get("train_s_per_kimg"), ".4g"),
            _fmt(r.get("train_samples_per_s"), ".3g"),
            _fmt(pct(r.get("train_peak_fraction")), ".0f"),
            _fmt(r.get("train_mem_gb"), ".2f"),
            _fmt(r.get("proj_step_s"), ".3g"),
            _fmt(pct(r.get("proj_peak_fraction")), ".0f"),
        )
    console = Console(width=200)
    console.print(table)
    for e in report["results"]:
        loader = e.get("loader")
        if loader:
            ratio = loader.get("ratio_to_fastest_train")
            console.print(
                f"{e['preset']}: loader {loader['samples_per_s']:.3g} samples/s"
                + (f" = {ratio:.3g}x the fastest training step" if ratio else "")
            )
        kern = e.get("kernels")
        if kern:
            convs = ", ".join(
                f"{c['dtype']}{' CL' if c['channels_last'] else ''} {c['flop_per_s'] / 1e9:.3g}" for c in kern["conv3d"]
            )
            console.print(f"{e['preset']}: conv3d {kern['shape']} GFLOP/s: {convs}")
            console.print(
                f"{e['preset']}: FIR {kern['fir']['used']} {kern['fir']['used_s']:.3g} s vs depthwise conv "
                f"{kern['fir']['depthwise_conv_s']:.3g} s; ToRGB matmul {kern['torgb']['matmul_s']:.3g} s vs "
                f"grouped conv {kern['torgb']['grouped_conv_s']:.3g} s"
            )
        for err in e.get("kernel_errors", []):
            console.print(f"{e['preset']} kernels: [red]failed[/red] {err}")
        for run in e["runs"]:
            for err in run["errors"]:
                console.print(f"{e['preset']} {run['variant']}: [red]failed[/red] {err}")


@app.command()
def bench(
    preset: Annotated[list[str] | None, typer.Option(help="Preset(s) to measure (repeatable).")] = None,
    batch: Annotated[int, typer.Option(help="Batch size of G forward, training step and peak conv.")] = 2,
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16 (CUDA).")] = "auto",
    fused: Annotated[str, typer.Option(help="Modulated conv: auto, fused (grouped conv) or nonfused.")] = "auto",
    channels_last: Annotated[
        str, typer.Option("--channels-last", help="channels_last_3d memory format: auto, on or off.")
    ] = "auto",
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile G.synthesis and D (compile time reported apart).")
    ] = False,
    checkpointing: Annotated[bool, typer.Option(help="Activation checkpointing in the training step.")] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Comma list of options to sweep in the same process, each over two values: precision "
            "(fp32, bf16), fused (fused, nonfused), channels_last (off, on), compile, checkpointing (off, on)."
        ),
    ] = None,
    parts: Annotated[
        str,
        typer.Option(
            help="Comma list of g_forward, train_step, projection, loader and kernels (conv3d per precision "
            "and memory format, FIR and ToRGB forms; not in the default)."
        ),
    ] = "g_forward,train_step,projection,loader",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    repeats: Annotated[int, typer.Option(help="Timed calls per measurement (the median is reported).")] = 3,
    warmup: Annotated[int, typer.Option(help="Untimed calls first (>= 1; the first counts FLOPs).")] = 1,
    peak_voxels: Annotated[
        int, typer.Option(help="Cap on batch x voxels of the dense peak conv3d (halves its size until it fits).")
    ] = 1 << 18,
    data: Annotated[Path | None, typer.Option(help="Prepared dataset for the loader measurement.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (torch.set_num_threads); 1 is faster on a busy machine.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON here.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Measure speed (samples/s, s/kimg), FLOP/s vs a dense conv3d, and peak memory per preset."""
    from stylegan3d.bench import BenchSettings, Variant, expand_variants, run_bench
    from stylegan3d.fileio import atomic_write_json

    base = Variant(precision, fused, channels_last, compile_, checkpointing)
    axes = [a.strip().replace("-", "_") for a in (compare or "").split(",") if a.strip()]
    settings = BenchSettings(
        presets=list(preset or ["demo"]),
        overrides=list(set_ or []),
        batch=batch,
        device=device,
        variants=expand_variants(base, axes),
        parts=[p.strip() for p in parts.split(",") if p.strip()],
        repeats=repeats,
        warmup=warmup,
        peak_voxels=peak_voxels,
        data=data,
        threads=threads,
    )
    if json_out is not None and json_out.is_dir():
        raise UserError(f"--json {json_out} is a directory; give a file name")
    report = run_bench(settings, progress=not no_progress)
    if json_out is not None:
        atomic_write_json(json_out, report)
    print_summary(report)

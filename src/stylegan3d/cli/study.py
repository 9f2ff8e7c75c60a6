"""``stylegan3d study``: train, evaluate and benchmark a grid of network sizes (docs/study.md)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import SET_HELP, app, parse_int_list
from stylegan3d.errors import UserError


def command_line(ctx: typer.Context) -> str:
    """The options given on the command line, rebuilt from the parsed values (long option names,
    in declaration order), as ``stylegan3d study ...`` for study.json / study.md."""
    parts = ["stylegan3d", ctx.info_name or "study"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.param_type_name != "option" or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        opt = max(param.opts, key=len)
        if param.is_flag:
            parts.append(opt if value else max(param.secondary_opts or [opt], key=len))
        else:
            for v in value if param.multiple else [value]:
                parts += [opt, str(v)]
    return " ".join(shlex.quote(p) for p in parts)


@app.command()
def study(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Prepared dataset directory (from `stylegan3d prepare`).")],
    out: Annotated[Path, typer.Option(help="Study directory (study.json, study.md, study.png, runs/).")],
    grid: Annotated[
        list[str],
        typer.Option(help="key=v1,v2,... to sweep (repeatable; the cartesian product is trained), e.g. width=16,32."),
    ],
    base: Annotated[str, typer.Option(help="Base preset name or JSON config file.")] = "demo",
    kimg: Annotated[float | None, typer.Option(help="Training length of every point (default: the preset's).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP + " Applies to every point.")] = None,
    metrics: Annotated[
        str, typer.Option(help="Metrics for every point (as `stylegan3d metrics --metrics`).")
    ] = "bmmd2,ms_ssim,fd3d,prdc",
    n: Annotated[int | None, typer.Option(help="Generated volumes per point (default: half the real set).")] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds of the generated volumes, e.g. 0-7 (default 0..n-1).")
    ] = None,
    eval_seed: Annotated[int, typer.Option(help="Seed of the real split, pairs and bootstrap.")] = 0,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.")] = 100,
    launcher: Annotated[
        str, typer.Option(help="local: train in this process; torchrun: one `torchrun` per point.")
    ] = "local",
    nproc: Annotated[int, typer.Option(help="Processes per point with --launcher torchrun (GPUs per point).")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (training, metrics, bench).")] = "auto",
    bench_repeats: Annotated[
        int, typer.Option(help="Timed repeats of each training-step kind in the per-point bench (s/kimg, memory).")
    ] = 2,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads (1 is fastest on busy shared cores).", min=1)
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Plain log lines instead of bars.")] = False,
) -> None:
    """Sweep network size (e.g. filter depth and latent size): quality vs parameters, speed and memory."""
    import os

    import torch

    from stylegan3d.study import StudySettings, parse_grid, run_study

    if not data.is_dir():
        raise UserError(f"dataset not found: {data} (run `stylegan3d prepare` first)")
    if threads is not None:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # torchrun children
    seed_list = parse_int_list(seeds, "seeds") if seeds is not None else None
    settings = StudySettings(
        data, base, parse_grid(grid), out, kimg=kimg, overrides=list(set_ or []), metrics=metrics, n=n,
        seeds=seed_list, eval_seed=eval_seed, n_boot=boot, launcher=launcher, nproc=nproc, device=device,
        bench_repeats=bench_repeats, command=command_line(ctx), progress=not no_progress,
    )  # fmt: skip
    doc = run_study(settings)
    typer.echo(f"study: {out / 'study.md'} ({len(doc['points'])} point(s))")

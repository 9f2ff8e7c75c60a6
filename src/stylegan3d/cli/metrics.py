"""``stylegan3d metrics``: quality metrics of a generator (or a folder of volumes) against a
dataset, each beside the same metric between two halves of the real data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import app, parse_int_list
from stylegan3d.errors import UserError


@app.command()
def metrics(
    data: Annotated[Path, typer.Option("--data", help="Prepared dataset directory (the real volumes).")],
    ckpt: Annotated[
        Path | None,
        typer.Option("--ckpt", "--model", help="Checkpoint, run directory or shipped model name to sample from."),
    ] = None,
    fake: Annotated[
        Path | None, typer.Option("--fake", help="Generated volumes instead of --ckpt: NIfTI folder or dataset dir.")
    ] = None,
    metrics_: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="Comma list of fid_slice, fid_triplanar, fd3d, bmmd2, mmd2_unbiased, ms_ssim, prdc, memorisation; "
            "or 'default' (all but fid_triplanar) or 'all'.",
        ),
    ] = "default",
    n: Annotated[int | None, typer.Option("--n", help="Generated volumes (default: half the real set).")] = None,
    n_real: Annotated[int | None, typer.Option("--n-real", help="Use a random subset of this many reals.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds for --ckpt, e.g. 0-63 (default 0..n-1).")] = None,
    trunc: Annotated[float, typer.Option(help="Truncation psi for --ckpt.")] = 1.0,
    prior: Annotated[
        str | None, typer.Option(help="W prior for --ckpt's seeds: a prior file or a shipped model's name.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full results as JSON here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the table as Markdown here.")] = None,
    real_vs_real: Annotated[
        bool, typer.Option("--real-vs-real/--no-real-vs-real", help="Compute the real-vs-real baseline.")
    ] = True,
    reference: Annotated[
        str, typer.Option(help="Compare generated volumes with one half of the reals ('half') or all ('all').")
    ] = "half",
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals (0: none).")] = 100,
    slices: Annotated[int, typer.Option(help="Slices per plane for fid_triplanar.")] = 3,
    prdc_k: Annotated[int, typer.Option(help="k of the k-NN balls for precision/recall/density/coverage.")] = 5,
    mmd_batch: Annotated[int, typer.Option(help="Batch size of bMMD².")] = 8,
    pairs: Annotated[int, typer.Option(help="Random pairs per set for MS-SSIM.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the real split, pairs and bootstrap.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device for the networks (cpu, cuda, cuda:1).")] = "cpu",
    batch: Annotated[int, typer.Option(help="Volumes per batch.")] = 8,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the real-feature cache.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Slice FID, 3-D FD, (b)MMD², MS-SSIM, precision/recall and memorisation with real-vs-real baselines."""
    from stylegan3d.fileio import atomic_write_json, atomic_write_text
    from stylegan3d.metrics import EvalSettings, evaluate, markdown_table, print_table
    from stylegan3d.util import resolve_device

    if ckpt is not None and fake is not None:
        raise UserError("give either --ckpt or --fake, not both")
    if ckpt is None and fake is None and not real_vs_real:
        raise UserError("nothing to compute: give --ckpt or --fake, or keep --real-vs-real")
    if not data.exists():
        raise UserError(f"dataset not found: {data}")
    if fake is not None and not fake.exists():
        raise UserError(f"--fake not found: {fake}")
    if ckpt is not None:
        from stylegan3d.models import resolve_model_or_path

        ckpt = resolve_model_or_path(ckpt)
    if ckpt is not None and not ckpt.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    dev = resolve_device(device)
    seed_list = parse_int_list(seeds, "seeds") if seeds is not None else None
    if ckpt is None and seed_list is not None:
        raise UserError("--seeds only applies with --ckpt")
    if ckpt is None and prior is not None:
        raise UserError("--prior only applies with --ckpt")
    settings = EvalSettings(
        metrics=metrics_,
        n=n,
        n_real=n_real,
        seeds=seed_list,
        psi=trunc,
        prior=prior,
        real_vs_real=real_vs_real,
        reference=reference,
        seed=seed,
        n_boot=boot,
        slices_per_plane=slices,
        prdc_k=prdc_k,
        mmd_batch=mmd_batch,
        ms_ssim_pairs=pairs,
        device=str(dev),
        batch=batch,
        cache=not no_cache,
        progress=not quiet,
    )
    doc = evaluate(ckpt if ckpt is not None else fake, data, settings)
    print_table(doc)
    if json_path is not None:
        atomic_write_json(json_path, doc)
    if markdown is not None:
        atomic_write_text(markdown, markdown_table(doc))

"""``stylegan3d train``: train a 3D StyleGAN2 on a prepared dataset (one process or torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stylegan3d.cli.app import SET_HELP, app
from stylegan3d.config import Config, apply_overrides, config_diff, load_preset
from stylegan3d.errors import UserError

if TYPE_CHECKING:
    from stylegan3d.checkpoint import Checkpoint


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Prepared dataset directory (from `stylegan3d prepare`).")],
    out: Annotated[Path, typer.Option(help="Run directory (config.json, log.txt, samples/, checkpoints/).")],
    preset: Annotated[
        str | None,
        typer.Option(
            help="Preset name or JSON config file (default: demo). With --resume the checkpoint's config is "
            "continued; a preset (with --set) describing another network is an error."
        ),
    ] = None,
    kimg: Annotated[float | None, typer.Option(help="Total length in thousands of real images shown.")] = None,
    batch: Annotated[int | None, typer.Option(help="Global batch size (split over processes).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Run directory or checkpoint to continue from.")] = None,
    gamma: Annotated[float | None, typer.Option(help="R1 weight.")] = None,
    aug: Annotated[str | None, typer.Option(help="Augmentation: ada, fixed or none.")] = None,
    p: Annotated[float | None, typer.Option(help="Augmentation probability (fixed) or start value (ada).")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16, fp16 (CUDA), fp32 or auto.")] = None,
    snap: Annotated[int | None, typer.Option(help="Checkpoint every N ticks.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    deterministic: Annotated[bool, typer.Option(help="Deterministic algorithms (bitwise resume on CPU).")] = False,
    checkpointing: Annotated[bool, typer.Option(help="Activation checkpointing (less memory).")] = False,
    labels: Annotated[Path | None, typer.Option(help="CSV of labels joined on file name (conditional).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Plain log lines instead of a bar.")] = False,
) -> None:
    """Train (or resume) a 3D StyleGAN2; checkpoints are safetensors + JSON."""
    from stylegan3d.train.loop import train as run_training

    if not data.is_dir():
        raise UserError(f"dataset not found: {data} (run `stylegan3d prepare` first)")
    if resume is None and (out / "latest").exists():
        raise UserError(f"{out} already holds a run; pass --resume {out} to continue it or choose another --out")
    overrides = list(set_ or [])
    for key, value in [
        ("kimg", kimg),
        ("batch", batch),
        ("r1_gamma", gamma),
        ("aug", aug),
        ("aug_p", p),
        ("precision", precision),
        ("snap_ticks", snap),
        ("seed", seed),
    ]:
        if value is not None:
            overrides.append(f"train.{key}={value}")
    if deterministic:
        overrides.append("train.deterministic=true")
    if checkpointing:
        overrides.append("train.checkpointing=true")
    if aug == "fixed" and p is None:
        raise UserError("--aug fixed needs --p PROB")
    found = None
    if resume is not None:
        cfg, found = _resume_config(resume, preset, overrides)
    else:
        cfg = apply_overrides(load_preset(preset or "demo"), overrides)
    last = run_training(cfg, data, out, resume=found, device=device, labels=labels, progress=not no_progress)
    if last is not None:
        typer.echo(f"checkpoint: {last}")


def _resume_config(resume: Path, preset: str | None, overrides: list[str]) -> tuple[Config, Checkpoint]:
    """The checkpoint's config with ``overrides`` (training settings such as kimg may change on resume),
    and the checkpoint, resolved once (the trainer resumes from it without reading it again).

    The network cannot change: an override of a model field, or a ``--preset`` whose network (with
    the same overrides) differs from the checkpoint's, is an error rather than being ignored. A
    matching preset's training settings are not applied; where they differ a warning says so.
    """
    from stylegan3d.checkpoint import describe_diff, resolve_checkpoint

    found = resolve_checkpoint(resume)
    name = found.path.name
    cfg = apply_overrides(found.config, overrides)
    if preset is not None:
        wanted = apply_overrides(load_preset(preset), overrides)
        found.require_network(
            wanted,
            f"--preset {preset} describes another network than checkpoint {name}",
            "a run resumes with its own network: drop --preset (or resume the run it belongs to)",
        )
        diff = config_diff(cfg.train, wanted.train, "train.")
        if diff:
            typer.echo(
                f"warning: --resume continues the checkpoint's training settings; --preset {preset} differs in "
                f"{describe_diff(diff)} (not applied; change them with --set train.KEY=VALUE)",
                err=True,
            )
    found.require_network(
        cfg,
        f"--set changes the network of checkpoint {name}",
        "only training settings (train.*) can change on --resume",
    )
    return cfg, found

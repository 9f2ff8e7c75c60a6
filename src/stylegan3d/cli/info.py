"""``stylegan3d info``: numbers describing a preset or a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from stylegan3d.cli.app import SET_HELP, app, echo_json
from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.errors import UserError


def describe(cfg: Config) -> dict:
    """Summary of a configuration: geometry, latent sizes and parameter counts (built on meta)."""
    from stylegan3d.nn import Discriminator, Generator, count_params

    with torch.device("meta"):
        g, d = Generator(cfg.model), Discriminator(cfg.model)
    m = cfg.model
    return {
        "name": cfg.name,
        "resolution": list(m.resolution),
        "base_shape": list(m.base_shape),
        "spacing_mm": m.spacing_mm,
        "channels": m.channels,
        "z_dim": m.z_dim,
        "w_dim": m.w_dim,
        "c_dim": m.c_dim,
        "num_ws": m.num_ws,
        "g_widths": m.stage_widths("g"),
        "d_widths": m.stage_widths("d"),
        "g_params": count_params(g),
        "d_params": count_params(d),
    }


@app.command()
def info(
    ckpt: Annotated[
        Path | None, typer.Argument(help="Checkpoint (.safetensors or run directory) or a shipped model's name.")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Preset name instead of a checkpoint.")] = None,
    models: Annotated[bool, typer.Option("--models", help="List the trained models shipped in the package.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print configuration, parameter counts and (for checkpoints) training progress."""
    if models:
        if ckpt is not None or preset is not None:
            raise UserError("--models lists the shipped models; give no checkpoint or --preset with it")
        _list_models(as_json)
        return
    if (ckpt is None) == (preset is None):
        raise UserError("give either a checkpoint path, a shipped model's name or --preset NAME (or --models)")
    if preset is not None:
        out = describe(apply_overrides(load_preset(preset), set_))
    else:
        from stylegan3d.checkpoint import resolve_checkpoint

        found = resolve_checkpoint(ckpt)
        meta = found.meta
        out = describe(apply_overrides(found.config, set_))
        out.update(
            checkpoint=str(found.path),
            kimg=meta.kimg,
            step=meta.step,
            version=meta.version,
            origin=meta.extra.get("origin", "stylegan3d"),
            metrics=meta.metrics if meta.metrics is not None else {},
        )
    if as_json:
        echo_json(out)
        return
    width = max(len(k) for k in out)
    for k, v in out.items():
        typer.echo(f"{k:<{width}}  {v}")


def _list_models(as_json: bool) -> None:
    """One line (or JSON record) per shipped model: name, preset, kimg, description, file, W prior."""
    from stylegan3d.checkpoint import read_sidecar
    from stylegan3d.models import list_models, list_priors, model_path

    priors = set(list_priors())
    rows = []
    for name in list_models():
        path = model_path(name)
        meta = read_sidecar(path)
        cfg = Config.from_dict(meta.config)
        rows.append(
            {
                "name": name,
                "preset": cfg.name,
                "resolution": list(cfg.model.resolution),
                "spacing_mm": cfg.model.spacing_mm,
                "kimg": meta.kimg,
                "description": meta.extra.get("description", ""),
                "file": str(path),
                "prior": name in priors,
            }
        )
    if as_json:
        echo_json({"models": rows})
        return
    if not rows:
        typer.echo("no trained models are shipped with this installation")
    for r in rows:
        shape = "x".join(map(str, r["resolution"]))
        head = f"{r['name']:<12}  {r['preset']} {shape} at {r['spacing_mm']:g} mm, {r['kimg']:.1f} kimg"
        prior = "  (ships a W prior: --prior " + r["name"] + ")" if r["prior"] else ""
        typer.echo(f"{head}  {r['description']}{prior}")

"""``stylegan3d import-tf``: convert a 3D-StyleGAN TensorFlow pickle into a safetensors model file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import app, echo_json, require_file
from stylegan3d.errors import UserError


@app.command("import-tf")
def import_tf_cmd(
    src: Annotated[
        Path, typer.Argument(help="Network pickle written by the original 3D-StyleGAN code, e.g. 2mm_f96.pkl.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Model file to write (.safetensors; a .json sidecar goes beside it).")
    ],
    spacing: Annotated[
        float | None,
        typer.Option(help="Voxel size in mm of the written geometry (default: 2 for 80x96x112, 1 for 160x192x224)."),
    ] = None,
    network: Annotated[str, typer.Option(help="Network to import: Gs (EMA weights, default) or G.")] = "Gs",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Import a TF-1 dnnlib generator pickle safely (no code from the file runs) into a model file."""
    from stylegan3d.tf_import import import_tf

    require_file(src, "pickle")
    if network not in ("Gs", "G"):
        raise UserError(f"--network must be Gs or G, got {network!r}")
    result = import_tf(src, out, spacing_mm=spacing, which=network)
    m = result.plan.cfg.model
    summary = {
        "model": str(result.path),
        "origin": result.meta["origin"],
        "network": result.plan.settings["network"],
        "resolution": list(m.resolution),
        "base_shape": list(m.base_shape),
        "spacing_mm": m.spacing_mm,
        "channels": m.channels,
        "z_dim": m.z_dim,
        "w_dim": m.w_dim,
        "num_ws": m.num_ws,
        "g_widths": m.stage_widths("g"),
        "up_filter": m.g.up_filter,
        "mapping_lr_mul": m.g.mapping_lr_mul,
        "g_params": sum(p.numel() for p in result.generator.parameters()),
        "tf_variables": result.meta["tf_import"]["variables"],
        "reference_noise": "const" if result.plan.settings.get("randomize_noise") is False else "random",
    }
    if as_json:
        echo_json(summary)
        return
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        typer.echo(f"{k:<{width}}  {v}")

"""``stylegan3d synth`` (synthetic cohort) and ``stylegan3d prepare`` (scans -> training set)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import app, echo_json, parse_shape
from stylegan3d.errors import UserError

DEFAULT_PRESET = "2mm-f96"


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for sub-000.nii.gz ... and participants.csv.")],
    n: Annotated[int, typer.Option("--n", help="Number of subjects.")],
    seed: Annotated[int, typer.Option(help="Cohort seed; subject i depends only on (seed, i).")] = 0,
    spacing: Annotated[float, typer.Option(help="Voxel size in mm of the written volumes.")] = 2.0,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
) -> None:
    """Write a synthetic T1-weighted brain cohort (NIfTI, MNI affine) from nilearn's MNI152 template."""
    from stylegan3d.data.synth import output_grid, synth_cohort

    t0 = time.perf_counter()
    paths = synth_cohort(out, n, seed=seed, spacing=spacing, workers=workers)
    shape = "x".join(map(str, output_grid(spacing)[0]))
    typer.echo(f"wrote {len(paths)} subjects ({shape} at {spacing:g} mm) to {out} in {time.perf_counter() - t0:.1f} s")


def _parse_spacing(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        raise UserError(f"invalid spacing {text!r}: use one size in mm (2) or three (1,1,2)") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) <= 0:
        raise UserError(f"invalid spacing {text!r}: need one or three positive sizes in mm")
    return values


def _geometry(out: Path, preset: str | None, shape: str | None, spacing: str | None, frame: str | None):
    from stylegan3d.data.dataset import load_manifest
    from stylegan3d.data.spatial import Geometry

    if preset is not None and (shape is not None or spacing is not None):
        raise UserError("give either --preset or --shape/--spacing, not both")
    if (shape is None) != (spacing is None):
        raise UserError("--shape and --spacing go together (e.g. --shape 80,96,112 --spacing 2)")
    if preset is not None:
        return Geometry.from_preset(preset, frame=frame or "centre")
    if shape is not None:
        return Geometry.from_shape(parse_shape(shape), _parse_spacing(spacing or ""), frame=frame or "centre")
    if (out / "manifest.json").exists():  # extending a dataset: keep its geometry
        m = load_manifest(out)
        return Geometry.from_dict({**m, "frame": frame or m.get("frame", "centre")})
    return Geometry.from_preset(DEFAULT_PRESET, frame=frame or "centre")


@app.command()
def prepare(
    sources: Annotated[list[Path], typer.Argument(help="Volume files, folders (recursive) or text files of paths.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder (created or extended).")],
    preset: Annotated[
        str | None, typer.Option(help=f"Take shape/spacing from a preset (default {DEFAULT_PRESET}).")
    ] = None,
    shape: Annotated[str | None, typer.Option(help="Target shape D,H,W (with --spacing).")] = None,
    spacing: Annotated[str | None, typer.Option(help="Target voxel size in mm: 2 or 1,1,2 (with --shape).")] = None,
    frame: Annotated[
        str | None, typer.Option(help="centre: crop around each brain; mni: inputs are MNI-registered, keep the frame.")
    ] = None,
    lower_pct: Annotated[float, typer.Option(help="Percentile of non-zero voxels mapped to 0.")] = 0.5,
    upper_pct: Annotated[float, typer.Option(help="Percentile of non-zero voxels mapped to 1.")] = 99.5,
    mask_threshold: Annotated[
        float | None, typer.Option(help="Zero voxels below this scaled intensity (0-1) as a crude brain mask.")
    ] = None,
    mask_pattern: Annotated[
        str | None, typer.Option(help="Brain mask file per volume, e.g. '{stem}_mask.nii.gz' (next to the volume).")
    ] = None,
    volume_index: Annotated[int | None, typer.Option(help="Volume to take from 4D series.")] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(help="t1: raw T1 scans -> N4, deepbet brain extraction, affine to MNI152 (docs/preprocessing.md)"),
    ] = None,
    skip: Annotated[
        str | None, typer.Option(help="With --preprocess: steps the scans do not need, e.g. n4,brain (or register).")
    ] = None,
    keep_flagged: Annotated[
        bool, typer.Option("--keep-flagged", help="With --preprocess: keep scans whose registration is flagged.")
    ] = False,
    flag_dice: Annotated[
        float | None, typer.Option(help="With --preprocess: flag registrations whose brain-mask Dice is below this.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
    dtype: Annotated[str, typer.Option(help="Storage type of volumes.npy: float16 or float32.")] = "float16",
    preview: Annotated[int, typer.Option(help="Volumes shown in preview.png (0: none).")] = 8,
    strict: Annotated[bool, typer.Option(help="Exit non-zero if any input failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Prepare scans into a memory-mappable training set (volumes.npy + manifest.json)."""
    from stylegan3d.data.prepare import prepare_dataset

    if preprocess is None and (skip is not None or keep_flagged or flag_dice is not None):
        raise UserError("--skip, --keep-flagged and --flag-dice go with --preprocess t1")
    geom = _geometry(out, preset, shape, spacing, frame or ("mni" if preprocess else None))
    report = prepare_dataset(
        sources,
        out,
        geom,
        workers=workers,
        lower_pct=lower_pct,
        upper_pct=upper_pct,
        mask_threshold=mask_threshold,
        mask_pattern=mask_pattern,
        volume_index=volume_index,
        dtype=dtype,
        preview=preview,
        preprocess=preprocess,
        skip=skip,
        keep_flagged=keep_flagged,
        flag_dice=flag_dice,
    )
    if as_json:
        echo_json(report.to_dict())
    else:
        dims = "x".join(map(str, geom.shape))
        sp = "x".join(f"{s:g}" for s in geom.spacing)
        typer.echo(
            f"prepared {len(report.prepared)} new, {len(report.resumed)} resumed, {len(report.unchanged)} unchanged, "
            f"{len(report.duplicates)} duplicate, {len(report.errors)} failed in {report.seconds:.1f} s -> {out} "
            f"({report.total} volumes, {dims} at {sp} mm, {dtype}, frame {geom.frame})"
        )
        if report.ignored:
            typer.echo(f"ignored {report.ignored} non-volume file(s) in source folders")
        for d in report.duplicates:
            typer.echo(f"duplicate: {d['source']} (same content as {d['same_as']})")
        for f in report.flagged:
            what = "kept" if f["kept"] else "left out (--keep-flagged keeps it)"
            typer.echo(f"flagged: {f['source']}: registration Dice {f['dice']:.3f} < {f['threshold']:g}, {what}")
        if preprocess:
            typer.echo(f"QC pictures: {out / 'qc.png'} (one per scan in {out / 'preprocess'})")
        for e in report.errors:
            typer.echo(f"failed: {e['source']}: {e['error']}")
        if report.errors:
            typer.echo(f"details in {out / 'errors.json'}")
    code = report.exit_code(strict)
    if code and report.total == 0:
        typer.echo("error: no usable volume was prepared", err=True)
    elif code:
        typer.echo(f"error: {len(report.errors)} input(s) failed (--strict)", err=True)
    if code:
        sys.exit(code)  # not typer.Exit: main() runs the app with standalone_mode=False, which drops its code

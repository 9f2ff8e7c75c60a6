"""``stylegan3d generate | project | mix | interpolate``: using a trained generator.

Each command is a thin wrapper over :mod:`stylegan3d.infer.api` (parse options, call the API,
print where the results went).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import app, parse_int_list, require_file
from stylegan3d.errors import UserError
from stylegan3d.util import one_line

CKPT_HELP = (
    "Checkpoint: run directory, .safetensors file or its .json sidecar; or the name of a shipped model "
    "(stylegan3d info --models)."
)
DEVICE_HELP = "Device to run on: cpu, cuda, cuda:1, ..."
NOISE_HELP = "Noise inputs: const (the model's fixed maps), random (drawn from each seed) or none."
TRUNC_HELP = "Truncation psi: 1 = none, smaller = closer to the average volume."
PRIOR_HELP = (
    "Draw the seeds' w from a fitted W prior instead of the mapping network: a prior file "
    "(stylegan3d fit-prior) or a shipped model's name (its prior, stylegan3d info --models)."
)


@contextlib.contextmanager
def _notes() -> Iterator[None]:
    """Show warnings raised by the API as one ``note: ...`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = one_line(w.message)
        if text not in seen:
            seen.add(text)
            sys.stderr.write(f"note: {text}\n")


def _out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    return out


def _load(ckpt: Path, device: str, prior: str | None = None):
    from stylegan3d.infer.api import load
    from stylegan3d.models import resolve_model_or_path

    path = resolve_model_or_path(ckpt)
    if not path.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    model = load(path, device)
    model.set_prior(prior)
    return model


def parse_latent_specs(text: str, what: str) -> list[int | Path]:
    """``1,2,5-7,proj/latent.npz`` -> seeds and ``.npz`` latent paths, in order."""
    specs: list[int | Path] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower().endswith(".npz"):
            specs.append(require_file(Path(part), "latent file"))
        else:
            specs.extend(parse_int_list(part, what))
    if not specs:
        raise UserError(f"no {what} given")
    return specs


def _labels(text: str | None) -> list[int] | None:
    return None if text is None else parse_int_list(text, "labels")


def _one_label(text: str | None) -> int | None:
    """``--labels`` of mix/interpolate: one class label, used for every seed (and every z frame)."""
    labels = _labels(text)
    if labels is not None and len(labels) != 1:
        raise UserError(f"--labels takes one class label here (every seed uses it), got {len(labels)}")
    return None if labels is None else labels[0]


ONE_LABEL_HELP = "Class label of a conditional model (one, used for every seed)."
HTML_HELP = "Also write viewer.html: an interactive NiiVue page (multiplanar + 3D) that opens offline."


@app.command()
def generate(
    ckpt: Annotated[Path, typer.Option("--ckpt", "--model", help=CKPT_HELP)],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-7 or 1,5,9.")] = "0-7",
    trunc: Annotated[float, typer.Option(help=TRUNC_HELP)] = 1.0,
    prior: Annotated[str | None, typer.Option(help=PRIOR_HELP)] = None,
    noise: Annotated[str, typer.Option(help=NOISE_HELP)] = "const",
    labels: Annotated[
        str | None, typer.Option(help="Class labels of a conditional model: one, or one per seed (e.g. 0,1,1).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Volumes per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
    html: Annotated[bool, typer.Option("--html", help=HTML_HELP)] = False,
) -> None:
    """Generate one volume per seed: NIfTI (dataset world frame, [0, 1]) + tri-planar PNG, and a contact sheet."""
    seed_list = parse_int_list(seeds)
    with _notes():
        model = _load(ckpt, device, prior)
        paths = model.generate_to_dir(
            seed_list,
            _out_dir(out),
            trunc=trunc,
            noise_mode=noise,
            labels=_labels(labels),
            batch=batch,
            progress=True,
            html=html,
        )
    typer.echo(f"wrote {len(seed_list)} volume(s) ({len(paths)} files) to {out}")


@app.command()
def project(
    ckpt: Annotated[Path, typer.Option("--ckpt", "--model", help=CKPT_HELP)],
    target: Annotated[Path, typer.Option("--target", help="Scan to project (NIfTI, any orientation/spacing).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    space: Annotated[str, typer.Option(help="w: one w for all layers; w+: one w per layer.")] = "w+",
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 1000,
    mask: Annotated[Path | None, typer.Option(help="Brain mask (NIfTI); the loss counts only voxels inside.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: 0.3 in W, 0.1 in W+).")] = None,
    perceptual: Annotated[
        float, typer.Option(help="Weight of the deepbet 3D-feature distance (0 = off; needs deepbet).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the initial noise maps and the w noise.")] = 0,
    labels: Annotated[str | None, typer.Option(help="Class label of a conditional model.")] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
    html: Annotated[bool, typer.Option("--html", help=HTML_HELP)] = False,
    preprocess: Annotated[
        str | None,
        typer.Option(help="t1: a raw T1 scan -> N4, deepbet, affine to MNI152 first; also writes it in native space."),
    ] = None,
    skip: Annotated[str | None, typer.Option(help="With --preprocess: steps to leave out, e.g. n4,brain.")] = None,
) -> None:
    """Project a scan into the latent space; write the reconstruction, latent, pictures and metrics."""
    require_file(target, "target")
    if mask is not None:
        require_file(mask, "mask")
    if skip is not None and preprocess is None:
        raise UserError("--skip goes with --preprocess t1")
    settings = {"seed": seed, "perceptual": perceptual}
    if preprocess is not None:
        settings.update(preprocess=preprocess, skip=skip)
    if lr is not None:
        settings["lr"] = lr
    with _notes():
        model = _load(ckpt, device)
        result = model.project(target, space, steps, mask, _labels(labels), progress=True, **settings)
        result.save(_out_dir(out), spacing=model.geometry.spacing, html=html)
    m = result.metrics
    typer.echo(
        f"projected {target.name} in {space.upper()} ({steps} steps, {result.seconds:.1f} s): "
        f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, MAE {m['mae']:.4f}; wrote {out}"
    )


@app.command()
def mix(
    ckpt: Annotated[Path, typer.Option("--ckpt", "--model", help=CKPT_HELP)],
    rows: Annotated[str, typer.Option(help="Row sources: seeds and/or projected latents, e.g. 1,2,proj/latent.npz.")],
    cols: Annotated[str, typer.Option(help="Column sources (same syntax); they give the listed style layers.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    styles: Annotated[str, typer.Option(help="Style layers taken from the columns (0 = coarsest), e.g. 0-3.")] = "0-3",
    trunc: Annotated[float, typer.Option(help=TRUNC_HELP)] = 1.0,
    prior: Annotated[str | None, typer.Option(help=PRIOR_HELP)] = None,
    noise: Annotated[str, typer.Option(help=NOISE_HELP)] = "const",
    labels: Annotated[str | None, typer.Option(help=ONE_LABEL_HELP)] = None,
    batch: Annotated[int, typer.Option(help="Volumes per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
    html: Annotated[bool, typer.Option("--html", help=HTML_HELP)] = False,
) -> None:
    """Style mixing grid: each row x column volume takes the column's w for the chosen layers."""
    row_specs = parse_latent_specs(rows, "rows")
    col_specs = parse_latent_specs(cols, "cols")
    layers = parse_int_list(styles, "styles")
    label = _one_label(labels)
    with _notes():
        model = _load(ckpt, device, prior)
        paths = model.mix_to_dir(
            row_specs,
            col_specs,
            layers,
            _out_dir(out),
            trunc=trunc,
            noise_mode=noise,
            labels=label,
            batch=batch,
            progress=True,
            html=html,
        )
    typer.echo(f"wrote a {len(row_specs)}x{len(col_specs)} mixing grid ({len(paths)} files) to {out}")


@app.command()
def interpolate(
    ckpt: Annotated[Path, typer.Option("--ckpt", "--model", help=CKPT_HELP)],
    seeds: Annotated[str, typer.Option(help="Keys: two or more seeds and/or projected latents (.npz), e.g. 1,2,3.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    frames: Annotated[int, typer.Option(help="Frames per segment between two keys.")] = 16,
    space: Annotated[str, typer.Option(help="z: spherical interpolation of seeds' z; w: linear in w.")] = "w",
    trunc: Annotated[float, typer.Option(help=TRUNC_HELP)] = 1.0,
    prior: Annotated[str | None, typer.Option(help=PRIOR_HELP)] = None,
    noise: Annotated[str, typer.Option(help=NOISE_HELP)] = "const",
    labels: Annotated[str | None, typer.Option(help=ONE_LABEL_HELP)] = None,
    fps: Annotated[int, typer.Option(help="Frames per second of the GIF.")] = 8,
    batch: Annotated[int, typer.Option(help="Volumes per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
    html: Annotated[bool, typer.Option("--html", help=HTML_HELP)] = False,
) -> None:
    """Interpolate between latents: NIfTI per frame and an animated tri-planar GIF."""
    keys = parse_latent_specs(seeds, "seeds")
    if fps < 1:
        raise UserError("--fps must be >= 1")
    label = _one_label(labels)
    with _notes():
        model = _load(ckpt, device, prior)
        paths = model.interpolate_to_dir(
            keys,
            _out_dir(out),
            frames=frames,
            space=space,
            trunc=trunc,
            noise_mode=noise,
            labels=label,
            batch=batch,
            fps=fps,
            progress=True,
            html=html,
        )
    gif = [p for p in paths if p.suffix == ".gif"]
    extra = "" if gif else " (Pillow missing: frames written as PNG instead of a GIF)"
    typer.echo(f"wrote {len(paths)} files to {out}{extra}")


@app.command("fit-prior")
def fit_prior(
    ckpt: Annotated[Path, typer.Option("--ckpt", "--model", help=CKPT_HELP)],
    data: Annotated[
        Path, typer.Option("--data", help="Volumes on the model grid: a prepared dataset, NIfTI folder or .npy.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Prior file to write (.prior.safetensors by convention).")],
    n: Annotated[int | None, typer.Option("--n", help="Use the first N volumes (default: all).")] = None,
    steps: Annotated[int, typer.Option(help="Projection steps per volume (W space).")] = 200,
    batch: Annotated[int, typer.Option(help="Volumes projected at once (memory grows with it).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the projections' w noise.")] = 0,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
) -> None:
    """Fit a W prior: project real volumes into W and fit a Gaussian to their w (for --prior)."""
    from stylegan3d.metrics.volumes import as_volume_set

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the prior file to write")
    if n is not None and n < 2:
        raise UserError("--n must be >= 2")
    with _notes():
        model = _load(ckpt, device)
        vols = as_volume_set(data, "data")
        if n is not None:
            if n > len(vols):
                raise UserError(f"--n {n} but {data} holds {len(vols)} volumes")
            vols = vols.subset(list(range(n)))
        prior = model.fit_prior(vols, steps=steps, batch=batch, seed=seed, progress=True, source=str(data))
        prior.save(out)
    i = prior.info
    typer.echo(
        f"fitted a W prior to {i['n']} volumes ({i['seconds']:.0f} s; projection MSE "
        f"{i['projection_mse']['mean']:.4f}, {i['effective_dimension']:.1f} effective dimensions); wrote {out}"
    )

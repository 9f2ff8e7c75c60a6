"""End-to-end demo: synthetic cohort -> prepare -> train -> generate -> mix -> project -> metrics -> report.

Everything runs on the embedded data (MNI152-derived synthetic subjects from nilearn), within a
wall-clock budget, and writes ``OUT/report.html``: one self-contained page (pictures inlined).
"""

from __future__ import annotations

import base64
import html
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_json, atomic_write_text
from stylegan3d.viz import save_figure


@dataclass
class DemoConfig:
    """What the demo does; the defaults fit ~10 minutes on 2 CPU cores."""

    minutes: float = 10.0
    """Total wall-clock budget; training gets what the other stages leave (at least 1 minute)."""
    subjects: int = 24
    synth_spacing: float = 4.0
    preset: str = "demo"
    overrides: list[str] = field(default_factory=list)
    samples: int = 8
    project_steps: int = 100
    model: str | None = "demo-8mm"
    """Shipped model (stylegan3d info --models) that generates, mixes, projects and is measured
    after the brief training, when one of that name ships with the preset's grid; None or
    another grid: the model trained here does it all."""
    metrics: str = "bmmd2,ms_ssim,fd3d,prdc,memorisation"
    metrics_n: int = 8
    seed: int = 0
    min_train_seconds: float = 60.0
    preprocess_real: bool = True
    """Bring pycortex's raw head scan into the model's frame first (N4, deepbet, affine to MNI152; ~1 min)."""


def _stage(name: str) -> None:
    sys.stderr.write(f"\n== {name}\n")
    sys.stderr.flush()


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def _loss_curves(stats_file: Path, out: Path) -> Path | None:
    if not stats_file.is_file():
        return None
    rows = [json.loads(line) for line in stats_file.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    from stylegan3d.viz import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    kimg = [r["kimg"] for r in rows]
    for key in ("loss/G", "loss/D_real", "loss/D_fake"):
        if any(key in r for r in rows):
            ax[0].plot(kimg, [r.get(key, np.nan) for r in rows], label=key.split("/")[1])
    ax[0].set_xlabel("kimg")
    ax[0].set_title("losses")
    ax[0].legend()
    for key in ("scores/real", "scores/fake", "aug/p"):
        if any(key in r for r in rows):
            ax[1].plot(kimg, [r.get(key, np.nan) for r in rows], label=key)
    ax[1].set_xlabel("kimg")
    ax[1].set_title("D scores and ADA p")
    ax[1].legend()
    fig.tight_layout()
    return save_figure(out, fig, dpi=90)


def run_demo(out: Path, cfg: DemoConfig | None = None) -> Path:
    """Run every stage into ``out`` and return the path of ``report.html``."""
    from stylegan3d.config import apply_overrides, load_preset
    from stylegan3d.data.dataset import load_manifest
    from stylegan3d.data.prepare import prepare_dataset
    from stylegan3d.data.spatial import Geometry
    from stylegan3d.data.synth import synth_cohort
    from stylegan3d.infer.api import load
    from stylegan3d.metrics.evaluate import EvalSettings, evaluate
    from stylegan3d.train.loop import train
    from stylegan3d.viewer import Page
    from stylegan3d.viewer.build import add_mixing, add_projection, add_samples, write_viewer
    from stylegan3d.viz import grid, save_contact_sheet, save_png, triplanar_strip

    cfg = cfg or DemoConfig()
    if cfg.subjects < 4:
        raise UserError("the demo needs at least 4 training subjects")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    budget = cfg.minutes * 60
    timings: dict[str, float] = {}
    sections: list[str] = []

    def mark(name: str, start: float) -> None:
        timings[name] = round(time.time() - start, 1)

    model_cfg = apply_overrides(load_preset(cfg.preset), cfg.overrides)

    _stage(f"1/7 synthetic cohort: {cfg.subjects} training subjects + 1 held out ({cfg.synth_spacing} mm)")
    t = time.time()
    cohort = out / "cohort"
    files = synth_cohort(cohort, cfg.subjects + 1, seed=cfg.seed, spacing=cfg.synth_spacing)
    held_out = files[-1]
    train_dir = out / "cohort-train"
    train_dir.mkdir(exist_ok=True)
    for f in files[:-1]:
        link = train_dir / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    mark("synth", t)

    _stage("2/7 prepare (RAS, resample, MNI frame, intensity scaling)")
    t = time.time()
    geom = Geometry.from_preset(model_cfg, frame="mni")
    data = out / "dataset"
    prepare_dataset([train_dir], data, geom)
    n_train = len(load_manifest(data)["volumes"])
    if n_train == 0:
        raise UserError("prepare produced no volume")
    mark("prepare", t)

    _stage("3/7 train")
    t = time.time()
    reserve = 0.45 * budget  # generation, mixing, projection, metrics and the report
    train_s = max(cfg.min_train_seconds, budget - (time.time() - t0) - reserve)
    run = out / "run"
    resume = run if (run / "latest").exists() else None
    train(model_cfg, data, run, resume=resume, time_limit_s=train_s)
    mark("train", t)
    trained = load(run)
    shipped = shipped_model(cfg.model, model_cfg)
    model = load(shipped) if shipped is not None else trained
    own_png = None
    if shipped is not None:  # the brief run still shows that training works: its own samples
        own = trained.generate(list(range(cfg.samples)))
        own_png = save_contact_sheet(
            out / "samples-trained-here.png", list(own[:, 0]), ncols=4, spacing=trained.geometry.spacing
        )

    _stage(f"4/7 generate {cfg.samples} samples")
    t = time.time()
    seeds = list(range(cfg.samples))
    vols = model.generate(seeds)
    spacing = model.geometry.spacing
    samples_png = save_contact_sheet(out / "samples.png", list(vols[:, 0]), ncols=4, spacing=spacing)
    for s, v in zip(seeds, vols, strict=True):
        model.save_nifti(v, out / "samples" / f"seed{s:04d}.nii.gz")
    viewer = Page("stylegan3d demo: volumes in 3D")  # interactive NiiVue page beside the report
    add_samples(viewer, [f"seed{s:04d}" for s in seeds], list(vols), model.geometry.affine)
    prior_png = prior_samples(model, cfg.model, seeds, out / "samples-w-prior.png") if shipped is not None else None
    mark("generate", t)

    _stage("5/7 style mixing")
    t = time.time()
    rows, cols = [10, 11, 12], [20, 21, 22]
    coarse = list(range(0, max(1, model.num_ws // 2)))
    mixed = model.mix(model.latents(rows), model.latents(cols), coarse)
    col_vols, row_vols = model.generate(cols), model.generate(rows)
    strip = lambda v: triplanar_strip(v[0], spacing=spacing)  # noqa: E731
    blank = np.zeros_like(strip(col_vols[0]))
    tiles = [[blank] + [strip(v) for v in col_vols]]
    tiles += [[strip(row_vols[r])] + [strip(mixed[r, k]) for k in range(len(cols))] for r in range(len(rows))]
    mix_png = save_png(out / "mixing.png", grid(tiles, gap=4), scale=2)
    row_names, col_names = [f"seed{s}" for s in rows], [f"seed{s}" for s in cols]
    add_mixing(viewer, row_names, list(row_vols), col_names, list(col_vols), mixed, model.geometry.affine)
    mark("mix", t)

    _stage("6/7 projection of unseen scans (W+)")
    t = time.time()
    projections = []
    targets = [("held-out synthetic subject", held_out, None)]
    real_t1 = _pycortex_t1()
    if real_t1 is not None:
        pre = "t1" if cfg.preprocess_real else None
        label = "real T1 (pycortex S1" + (", raw head scan: N4, deepbet, affine to MNI152)" if pre else ")")
        targets.append((label, real_t1, pre))
    for label, target, pre in targets:
        res = model.project(target, space="w+", steps=cfg.project_steps, progress=True, preprocess=pre)
        pdir = out / "projection" / Path(target).name.split(".")[0]
        paths = res.save(pdir)
        projections.append((label, res.metrics, paths, res.seconds))
        add_projection(viewer, res.target, res.reconstruction, res.affine, f"Projection: {label}")
    mark("project", t)

    _stage("7/7 metrics with real-vs-real baselines")
    t = time.time()
    doc = evaluate(shipped or run, data, EvalSettings(cfg.metrics, n=cfg.metrics_n, progress=True))
    atomic_write_json(out / "metrics.json", doc)
    mark("metrics", t)

    curves = _loss_curves(run / "stats.jsonl", out / "loss_curves.png")
    write_viewer(viewer, out / "viewer.html")
    sections.append(
        "<h2>Interactive 3D viewer</h2><p><a href='viewer.html'>viewer.html</a>: the samples, the mixing grid "
        "and the projections in NiiVue (scroll through slices, 3D render, linked crosshairs with world mm); "
        "it opens offline from disk.</p>"
    )
    sections.append(f"<h2>Samples (seeds {seeds[0]}–{seeds[-1]})</h2>{_img(samples_png)}")
    if prior_png is not None:
        sections.append(
            f"<h2>Samples with the fitted W prior (--prior {html.escape(str(cfg.model))})</h2><p>The same seeds, "
            "with w drawn from a Gaussian fitted to the training subjects projected into W instead of the "
            "mapping network: more varied at the same fidelity (docs/quality.md).</p>" + _img(prior_png)
        )
    sections.append(
        "<h2>Style mixing</h2><p>Top row: column sources; left column: row sources. Each cell takes the row's "
        f"latent with the column's coarse styles (layers {coarse[0]}–{coarse[-1]}).</p>{_img(mix_png)}"
    )
    for label, metrics, paths, seconds in projections:
        m = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        pic = paths.get("compare")
        sections.append(
            f"<h2>Projection: {html.escape(label)}</h2><p>{html.escape(m)} ({seconds:.0f} s)</p>"
            + (_img(pic) if pic else "")
        )
    if own_png is not None:
        sections.append(
            f"<h2>Samples of the model trained here ({timings['train']:.0f} s)</h2><p>The sections above use the "
            f"shipped model <b>{html.escape(str(cfg.model))}</b> ({float(model.sidecar.kimg or 0):.1f} kimg, "
            f"docs/quality.md); these are the demo's own brief run.</p>{_img(own_png)}"
        )
    if curves:
        sections.append(f"<h2>Training curves</h2>{_img(curves)}")
    sections.append(f"<h2>Metrics</h2>{_metrics_html(doc)}")
    sections.append(
        f"<h2>Run</h2><pre>{html.escape(json.dumps({'config': asdict(cfg), 'timings_s': timings}, indent=2))}</pre>"
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>stylegan3d demo</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;background:#fafafa}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
        "</style></head><body><h1>stylegan3d demo report</h1>"
        f"<p>Preset <b>{html.escape(model_cfg.name)}</b>, {n_train} training volumes "
        f"{list(model_cfg.model.resolution)} at {model_cfg.model.spacing_mm} mm, trained "
        f"{timings['train']:.0f} s. Total {time.time() - t0:.0f} s.</p>" + "".join(sections) + "</body></html>"
    )
    atomic_write_text(out / "report.html", page)
    atomic_write_json(out / "timings.json", timings)
    return out / "report.html"


def prior_samples(model, name: str | None, seeds: list[int], path: Path) -> Path | None:
    """Contact sheet of ``seeds`` with w from the W prior shipped as ``name`` (None when none ships);
    the model samples through its mapping again afterwards."""
    from stylegan3d.models import list_priors
    from stylegan3d.viz import save_contact_sheet

    if name is None or name not in list_priors():
        return None
    model.set_prior(name)
    try:
        vols = model.generate(seeds)
    finally:
        model.set_prior(None)
    return save_contact_sheet(path, list(vols[:, 0]), ncols=4, spacing=model.geometry.spacing)


def shipped_model(name: str | None, cfg) -> Path | None:
    """The shipped model ``name`` when it exists and has the grid of ``cfg`` (resolution, spacing,
    channels), else None (the demo then uses the model it trained)."""
    from stylegan3d.checkpoint import read_sidecar
    from stylegan3d.config import Config
    from stylegan3d.models import list_models, model_path

    if name is None or name not in list_models():
        return None
    path = model_path(name)
    m = Config.from_dict(read_sidecar(path).config).model
    same = (list(m.resolution), m.spacing_mm, m.channels) == (
        list(cfg.model.resolution),
        cfg.model.spacing_mm,
        cfg.model.channels,
    )
    return path if same else None


def _metrics_html(doc: dict) -> str:
    from stylegan3d.metrics.report import table_rows

    rows = table_rows(doc)
    head = "<tr><th>metric</th><th>generated</th><th>real vs real</th><th>n</th><th>better</th></tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _pycortex_t1() -> Path | None:
    """The real T1 scan pycortex installs (subject S1), if present; never imports ``cortex``."""
    path = Path(sys.prefix) / "share" / "pycortex" / "db" / "S1" / "anatomicals" / "raw.nii.gz"
    return path if path.is_file() else None

"""``stylegan3d demo``: the end-to-end run on the embedded synthetic data, ending in report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import SET_HELP, app


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory (report.html, run/, dataset/, ...).")] = Path("demo-out"),
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for the whole demo.")] = 10.0,
    subjects: Annotated[int, typer.Option(help="Synthetic training subjects.")] = 24,
    project_steps: Annotated[int, typer.Option(help="Projection optimisation steps.")] = 100,
    samples: Annotated[int, typer.Option(help="Generated samples in the report.")] = 8,
    metrics: Annotated[str, typer.Option(help="Metrics to compute (comma-separated).")] = (
        "bmmd2,ms_ssim,fd3d,prdc,memorisation"
    ),
    metrics_n: Annotated[int, typer.Option(help="Generated volumes for the metrics.")] = 8,
    preset: Annotated[str, typer.Option(help="Preset to train.")] = "demo",
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
) -> None:
    """Synthesise a cohort, prepare, train, generate, mix, project, evaluate; write OUT/report.html."""
    from stylegan3d.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        minutes=minutes,
        subjects=subjects,
        project_steps=project_steps,
        samples=samples,
        metrics=metrics,
        metrics_n=metrics_n,
        preset=preset,
        overrides=list(set_ or []),
    )
    report = run_demo(out, cfg)
    typer.echo(f"report: {report}")

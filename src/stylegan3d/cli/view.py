"""``stylegan3d view``: an interactive NiiVue page (offline, self-contained) for NIfTI files or output folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from stylegan3d.cli.app import app
from stylegan3d.errors import UserError


def _default_out(paths: list[Path]) -> Path:
    """``FOLDER/viewer.html`` for one folder, else ``viewer.html`` in the current folder."""
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0] / "viewer.html"
    return Path("viewer.html")


@app.command()
def view(
    paths: Annotated[
        list[Path],
        typer.Argument(help="NIfTI files and/or folders written by generate/project/mix/interpolate/demo."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: FOLDER/viewer.html for a folder, else viewer.html)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")] = False,
) -> None:
    """Write a self-contained NiiVue viewer page (multiplanar + 3D, linked crosshairs) and print its path."""
    from stylegan3d.viewer.build import page_for_paths
    from stylegan3d.viewer.page import write_page

    target = out if out is not None else _default_out(paths)
    if target.exists() and target.is_dir():
        raise UserError(f"--out {target} is a folder; give an .html file path")
    page = page_for_paths(paths, title)
    path = write_page(page, target)
    typer.echo(str(path.resolve()))
    if open_browser:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            sys.stderr.write("note: no web browser found; open the file above by hand\n")

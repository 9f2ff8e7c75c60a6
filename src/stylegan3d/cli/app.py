"""The typer application and small parsing helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from stylegan3d.errors import UserError

app = typer.Typer(
    name="stylegan3d",
    help="Style-based generative modelling of 3D medical volumes (3D-StyleGAN in PyTorch).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SET_HELP = "Config override key=value on top of the preset (repeatable), e.g. g.width=64, z_dim=128, width=32."


def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """Parse ``0-7``, ``1,2,5`` or ``0-3,8`` into a list of ints."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise UserError(f"invalid {what} {text!r}: use a list like 0-7 or 1,2,5") from None
    if not out:
        raise UserError(f"invalid {what} {text!r}: empty")
    return out


def parse_shape(text: str) -> list[int]:
    """Parse ``D,H,W`` (or ``DxHxW``) into three positive ints."""
    parts = text.replace("x", ",").split(",")
    try:
        shape = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"invalid shape {text!r}: use D,H,W such as 80,96,112") from None
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"invalid shape {text!r}: need three positive sizes D,H,W")
    return shape


def require_file(path: Path, what: str = "file") -> Path:
    """Raise a clear error when ``path`` is not an existing file."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if not path.is_file():
        raise UserError(f"{what} is not a file: {path}")
    return path


def echo_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


@app.callback()
def _root() -> None:
    """Style-based generative modelling of 3D medical volumes (3D-StyleGAN in PyTorch)."""

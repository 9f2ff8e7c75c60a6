"""Entry point: registers the subcommands and turns user errors into one stderr line."""

from __future__ import annotations

import sys

import typer

from stylegan3d.cli import bench, data, demo, infer, info, metrics, study, tf_import, train, view  # noqa: F401  (registers commands on import)
from stylegan3d.cli.app import app
from stylegan3d.errors import UserError
from stylegan3d.util import one_line


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print ``error: ...`` on one line and exit with status 2."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: bad option, missing argument, bad value
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(message + "\n")
            sys.exit(0)
        sys.stderr.write(f"error: {one_line(message)}\n")
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    return 0

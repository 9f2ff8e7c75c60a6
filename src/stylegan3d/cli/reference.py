"""Generate the CLI reference (docs/cli.md) from the CLI itself, so it cannot go stale."""

from __future__ import annotations

import os


def cli_reference() -> str:
    """Markdown with the ``--help`` text of every subcommand (fixed 100-column layout)."""
    import typer

    from stylegan3d.cli.main import app

    os.environ["COLUMNS"] = "100"
    os.environ["TERMINAL_WIDTH"] = "100"
    group = typer.main.get_command(app)
    parts = [
        "# Command line reference\n",
        "Generated from the CLI itself by `make docs` (`python -m stylegan3d.cli.reference > docs/cli.md`);",
        "a test fails when this file and the CLI disagree.\n",
    ]
    ctx = group.make_context("stylegan3d", [], resilient_parsing=True)
    parts.append("```text\n" + group.get_help(ctx).rstrip() + "\n```\n")
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
        parts.append(f"## `stylegan3d {name}`\n")
        parts.append("```text\n" + cmd.get_help(sub).rstrip() + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")

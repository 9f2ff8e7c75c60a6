"""Running the CLI in-process: a command that succeeds, or one that fails with one ``error:`` line."""

from __future__ import annotations

import pytest

from stylegan3d.cli.main import main


def run_ok(argv: list[str]) -> None:
    assert main(argv) == 0


def run_err(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one ``error: ...`` line of a command that exits with status 2 (usage or user error)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]

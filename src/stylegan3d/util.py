"""Small helpers shared by every layer: error text on one line, the torch device, progress bars.

Each exists once here so that the CLI's messages and bars look the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stylegan3d.errors import UserError

if TYPE_CHECKING:
    import torch
    from rich.progress import Progress, ProgressColumn


def one_line(error: BaseException | str, limit: int | None = None, with_type: bool = False) -> str:
    """``str(error)`` with every run of whitespace (newlines included) collapsed to one space.

    ``limit``: keep at most this many characters of the text. ``with_type``: prefix the exception's
    class name (``"OSError: text"``, or the bare name when the text is empty).
    """
    text = " ".join(str(error).split())
    if limit is not None:
        text = text[:limit]
    if with_type and isinstance(error, BaseException):
        name = type(error).__name__
        return f"{name}: {text}" if text else name
    return text


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (a name or a
    ``torch.device``) as given.

    A device this machine or torch build lacks, or any other name, is a :class:`UserError` naming it
    (``invalid device ...`` for a name torch or this project does not know).
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif not device.startswith(("cpu", "cuda", "mps")):
        raise UserError(f"invalid device {device!r}: --device must be auto, cpu, cuda, cuda:N or mps")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise UserError(f"invalid device {device!r} ({one_line(e)})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available (this torch build or machine has none)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: MPS is not available")
    return dev


def progress_bar(
    *columns: ProgressColumn | str,
    enabled: bool = True,
    stderr: bool = False,
    transient: bool = False,
) -> Progress:
    """A rich progress bar (use it as a context manager) with ``columns`` (a ``str`` is a text
    column's format); none given: description, bar, done/total, elapsed and remaining time.

    ``enabled=False`` draws nothing (the bar's methods still work); ``stderr`` draws on stderr,
    keeping stdout for results; ``transient`` removes the bar when it ends.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not columns:
        columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    cols = [TextColumn(c) if isinstance(c, str) else c for c in columns]
    console = Console(stderr=True) if stderr else None
    return Progress(*cols, console=console, disable=not enabled, transient=transient)

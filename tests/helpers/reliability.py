"""Helpers of the reliability tests: fault/bad-input counters, tiny models and runs,
pickle payloads, safetensors header surgery and real write faults (RLIMIT_FSIZE).

The counters are printed by ``pytest_terminal_summary`` in tests/reliability/conftest.py, so a run
reports how many faults were injected and how many bad inputs were tried.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import pickle
import resource
import signal
import struct
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.fileio import sha256_file

FAULTS: Counter[str] = Counter()
"""Faults injected, by kind (e.g. ``ENOSPC in checkpoint save``)."""
BAD_INPUTS: Counter[str] = Counter()
"""Bad inputs tried, by family (hypothesis examples included)."""
LOST: list[str] = []
"""Integrity checks that failed (what was lost or corrupted, or code that ran): must stay empty."""
INTACT: Counter[str] = Counter()
"""Integrity checks that passed, by kind."""


@contextlib.contextmanager
def intact(what: str) -> Iterator[None]:
    """Run integrity assertions; a failure is recorded in :data:`LOST` (and re-raised), a pass in :data:`INTACT`."""
    try:
        yield
    except BaseException:
        LOST.append(what)
        raise
    INTACT[what] += 1


KNOWN_BUGS: dict[str, tuple[str, tuple[str, ...], str]] = {}
"""Bugs in modules these tests may not edit, each with a strict-xfail regression test:
``name: (exception type name or '*', message fragments (any), function the traceback must pass through)``.
Property tests tolerate (and count) exactly these so they keep checking everything else; delete an
entry once its xfail test passes."""
KNOWN_HITS: Counter[str] = Counter()


def known_bug(e: BaseException) -> str | None:
    """Name of the known bug that raised ``e`` (counted), or None."""
    frames = {f.name for f in traceback.extract_tb(e.__traceback__)}
    return known_bug_message(f"{type(e).__name__}: {e}", frames)


def known_bug_message(text: str, frames: set[str] | None = None) -> str | None:
    """Name of the known bug an error text (e.g. prepare's ``unexpected OverflowError: ...``) points to."""
    for name, (exc, needles, where) in KNOWN_BUGS.items():
        if where and (frames is None or where not in frames):
            continue
        if (exc == "*" or exc in text) and any(n in text for n in needles):
            KNOWN_HITS[name] += 1
            return name
    return None


SCALES = [
    pytest.param(1, id="quick"),  # no time limit of its own: pytest's hang guard (pyproject) applies
    pytest.param(10, id="soak", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]
"""Hypothesis example-count multipliers: the quick run and a ``slow`` soak with ten times more examples."""

TINY_OVERRIDES = [
    "resolution=[10,12,14]",
    "width=4",
    "z_dim=4",
    "g.mapping_layers=1",
    "train.batch=2",
    "train.tick_kimg=0.002",
    "train.snap_ticks=1",
    "train.ema_kimg=0.01",
    "train.r1_interval=2",
    "train.pl_interval=2",
    "train.aug=none",
    "train.precision=fp32",
    "train.channels_last=false",
]
"""A 10x12x14 network of width 4: a training step takes a few ms, a checkpoint ~40 KB."""


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run the ``stylegan3d`` CLI in this process; returns (exit code, stdout, stderr)."""
    from stylegan3d.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code
    return int(code or 0), out.getvalue(), err.getvalue()


def error_lines(err: str) -> list[str]:
    """Non-empty stderr lines, ``note:`` lines (warnings shown by the CLI) left out."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]


def tiny_config(*extra: str) -> Config:
    return apply_overrides(load_preset("demo"), [*TINY_OVERRIDES, *extra])


def tree_state(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (hidden temp files included)."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def temp_leftovers(root: Path) -> list[str]:
    """Temporary files of :func:`stylegan3d.fileio.atomic_path` (``.<name>.<random>.tmp`` etc.) under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p.is_file())


# ----------------------------------------------------------------------------- pickle payloads


class MarkerPayload:
    """Unpickling this object runs ``open(marker, 'w')``: the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def pickle_payloads(marker: Path) -> dict[str, bytes]:
    """Files whose loading with pickle/torch.load would create ``marker``, keyed by kind.

    Covers every pickle protocol (0 and 1 start with an opcode letter, not the protocol-2+
    ``\\x80`` byte), ``torch.save`` (zip) and the legacy ``torch.save`` format.
    """
    import io

    obj = {"G_ema.w": MarkerPayload(marker)}
    out = {f"pickle-p{p}": pickle.dumps(obj, protocol=p) for p in range(0, pickle.HIGHEST_PROTOCOL + 1)}
    for name, zipfile in (("torch.save", True), ("torch.save-legacy", False)):
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zipfile)
        out[name] = buf.getvalue()
    return out


# ----------------------------------------------------------------------------- safetensors surgery


def read_safetensors_header(path: Path) -> tuple[dict, bytes]:
    """The JSON header of a ``.safetensors`` file and its data bytes."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_safetensors_raw(path: Path, header: dict, data: bytes) -> None:
    """Write ``header`` + ``data`` as a safetensors file and make its sidecar's SHA-256 match,
    so only the safetensors parser / shape checks can catch what was changed."""
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    rehash_sidecar(path)


def rehash_sidecar(path: Path) -> None:
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["sha256"] = sha256_file(path)
    side.write_text(json.dumps(meta))


def tensor_keys(header: dict) -> list[str]:
    return sorted(k for k in header if k != "__metadata__")


# ----------------------------------------------------------------------------- real write faults


@contextlib.contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """Make every write past ``max_bytes`` in one file fail with a real ``EFBIG`` from the kernel
    (RLIMIT_FSIZE with SIGXFSZ ignored), the same error path as a full disk, in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)

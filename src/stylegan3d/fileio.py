"""Atomic, safe file writing and hashing shared by every command that writes outputs.

Writes go to a temporary file in the destination directory, are flushed and fsync'ed,
then renamed over the target, so a crash (or SIGKILL) leaves either the old file or the
new one, never a half-written file. Errors such as ENOSPC or a read-only directory become
one clear :class:`~stylegan3d.errors.UserError` and leave the previous file untouched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stylegan3d.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _describe(e: OSError, path: Path) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device (or disk quota exceeded) while writing {path}"
    if e.errno == errno.EFBIG:
        return f"cannot write {path}: file too large for the file system or the process's file-size limit"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied or read-only file system"
    return f"cannot write {path}: {e.strerror or e}"


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed; an unwritable location becomes one clear UserError."""
    path = Path(path)
    if not path.is_dir():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(_describe(e, path)) from None
    return path


def check_writable(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and prove a file can be created in it (fail early, clearly)."""
    directory = ensure_dir(directory)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(_describe(e, directory)) from None
    return directory


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to a log file; OS errors (disk full, read-only) become one UserError."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        raise UserError(_describe(e, Path(path))) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsync'ed and renamed to ``path``.

    On any error the temporary file is removed and the original ``path`` is left unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise UserError(_describe(e, path)) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual mode
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as e:
        _remove(tmp_path)
        raise UserError(_describe(e, path)) from None
    except BaseException:
        _remove(tmp_path)
        raise


def _remove(path: Path) -> None:
    """Delete a temporary file; a failure here (e.g. the folder became read-only) must not hide the first error."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

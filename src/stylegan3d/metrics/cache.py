"""Feature cache for real datasets: ``.npz`` files without pickle, written atomically.

A cached entry is named ``<kind>-<hash>.npz`` where the hash covers the dataset identity
(manifest hash + selected rows) and the extractor settings; the file also stores that full
identity string, checked on load, so a stale or foreign file is recomputed, never trusted.
Entries go to ``DATASET/.cache/`` and fall back to ``~/.cache/stylegan3d`` when the dataset
directory is read-only.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_path
from stylegan3d.metrics.volumes import VolumeSet

CACHE_VERSION = 1


def _entry_name(kind: str, ident: str) -> str:
    return f"{kind}-{hashlib.sha256(ident.encode()).hexdigest()[:20]}.npz"


def load_entry(vs: VolumeSet, kind: str, settings: str) -> dict[str, np.ndarray] | None:
    """Cached arrays for ``vs`` and extractor ``kind``/``settings``, or ``None`` if absent/stale."""
    data_id = vs.identity()
    if data_id is None:
        return None
    ident = f"v{CACHE_VERSION}|{kind}|{settings}|{data_id}"
    for d in vs.cache_dirs:
        path = d / _entry_name(kind, ident)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["identity"]) != ident:
                    continue
                return {k: z[k] for k in z.files if k != "identity"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue
    return None


def save_entry(vs: VolumeSet, kind: str, settings: str, arrays: dict[str, np.ndarray]) -> Path | None:
    """Write arrays for ``vs`` to the first writable cache directory; returns the path or ``None``."""
    data_id = vs.identity()
    if data_id is None:
        return None
    ident = f"v{CACHE_VERSION}|{kind}|{settings}|{data_id}"
    for d in vs.cache_dirs:
        path = d / _entry_name(kind, ident)
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, identity=np.array(ident), **arrays)
            return path
        except UserError:
            continue
    return None


def cached(
    vs: VolumeSet, kind: str, settings: str, compute: Callable[[], dict[str, np.ndarray]], use_cache: bool = True
) -> dict[str, np.ndarray]:
    """Load the entry or compute it with ``compute()`` and store it (when ``use_cache``)."""
    if use_cache:
        hit = load_entry(vs, kind, settings)
        if hit is not None:
            return hit
    arrays = compute()
    if use_cache:
        save_entry(vs, kind, settings, arrays)
    return arrays

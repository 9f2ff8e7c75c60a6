"""The prepared dataset as a ``torch.utils.data.Dataset``: memory-mapped, no decoding.

``volumes.npy`` ([N, C, D, H, W], intensities in [0, 1]) is opened with ``mmap_mode='r'``
lazily in each process (DataLoader workers open their own map instead of receiving a copy),
and item ``i`` is returned as a float32 tensor ``[C, D, H, W]`` in [-1, 1]. Optional labels
(e.g. age, sex) come from a CSV joined on the volumes' file names, for conditional training.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stylegan3d.errors import UserError
from stylegan3d.fileio import sha256_bytes

FORMAT = "stylegan3d-dataset"
_REQUIRED = ("shape", "spacing", "affine", "volumes")
_KEY_COLUMNS = ("name", "file", "filename", "subject", "participant_id")


def load_manifest(path: str | os.PathLike, *, strict: bool = True) -> dict[str, Any]:
    """Read and check ``manifest.json`` of a dataset folder (or the manifest file itself).

    ``strict=False`` asks only for a JSON object: the metrics read datasets written by hand or by
    older versions (no ``format`` tag, missing fields, records without names); training does not.
    """
    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    if not file.exists():
        raise UserError(f"not a prepared dataset: {file} not found (run `stylegan3d prepare` first)")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {file}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{file} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or (strict and manifest.get("format") != FORMAT):
        raise UserError(f"{file} is not a stylegan3d dataset manifest (format != {FORMAT!r})")
    if not strict:
        return manifest
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise UserError(f"{file} lacks {', '.join(missing)}")
    if len(manifest["shape"]) != 3 or len(manifest["spacing"]) != 3 or np.shape(manifest["affine"]) != (4, 4):
        raise UserError(f"{file}: shape/spacing must have 3 entries and affine must be 4x4")
    for i, v in enumerate(manifest["volumes"]):
        if not isinstance(v, dict) or "sha256" not in v or "name" not in v:
            raise UserError(f"{file}: volume record {i} lacks name/sha256")
    return manifest


def manifest_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 identifying a dataset: canonical JSON of shape, spacing, affine and the volumes' sha256 list.

    A manifest that lacks some of these or holds other types (one read with ``load_manifest(strict=False)``)
    is hashed on what it has, as stored: such a hash only keys the metrics' feature cache.
    """
    try:
        key = {
            "shape": [int(s) for s in manifest["shape"]],
            "spacing": [float(s) for s in manifest["spacing"]],
            "affine": [[float(x) for x in row] for row in manifest["affine"]],
            "volumes": [v["sha256"] for v in manifest["volumes"]],
        }
    except (KeyError, TypeError, ValueError):
        key = {
            "shape": manifest.get("shape"),
            "spacing": manifest.get("spacing"),
            "affine": manifest.get("affine"),
            "volumes": [v.get("sha256") for v in manifest.get("volumes", [])],
        }
    return sha256_bytes(json.dumps(key, sort_keys=True, separators=(",", ":")).encode())


class VolumeDataset(Dataset):
    """Prepared volumes as float32 tensors ``[C, D, H, W]`` in [-1, 1] (``(tensor, label)`` with labels).

    ``labels_csv``: a CSV with a header; one key column (``name``, ``file``, ``filename``,
    ``subject`` or ``participant_id``) matched to the volumes' file names, with or without
    their suffix. ``label_columns`` picks the columns (default: all others). Numeric columns
    give one value each; text columns (e.g. ``sex``) are one-hot encoded over their sorted
    values. ``.labels`` is then a float32 tensor ``[N, L]`` and ``.label_names`` names its columns.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        labels_csv: str | os.PathLike | None = None,
        label_columns: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest = load_manifest(self.path)
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.array_path = self.root / "volumes.npy"
        m = self.manifest
        self.geometry: dict[str, Any] = {
            "shape": [int(s) for s in m["shape"]],
            "spacing": [float(s) for s in m["spacing"]],
            "affine": np.asarray(m["affine"], dtype=np.float64).tolist(),
            "channels": int(m.get("channels", 1)),
        }
        self.names: list[str] = [v["name"] for v in m["volumes"]]
        want = (len(self.names), self.geometry["channels"], *self.geometry["shape"])
        arr = self._open()
        if tuple(arr.shape) != want:
            raise UserError(
                f"{self.array_path} has shape {list(arr.shape)} but the manifest describes {list(want)} "
                "(interrupted prepare? re-run it)"
            )
        self.labels: torch.Tensor | None = None
        self.label_names: list[str] = []
        if labels_csv is not None:
            self.labels, self.label_names = read_labels(labels_csv, self.names, label_columns)

    def _open(self) -> np.ndarray:
        if not self.array_path.is_file():
            raise UserError(f"{self.array_path} not found (incomplete dataset; re-run prepare)")
        try:
            arr = np.load(self.array_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot open {self.array_path}: {e}") from None
        self._array, self._pid = arr, os.getpid()
        return arr

    @property
    def array(self) -> np.ndarray:
        """The memory-mapped ``[N, C, D, H, W]`` array in [0, 1] (opened once per process)."""
        if getattr(self, "_array", None) is None or self._pid != os.getpid():
            return self._open()
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None  # never pickle the memory map (it would copy the whole array)
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} volumes")
        # copy the stored (float16) row, then convert in torch: ~3x faster than numpy's float16 -> float32
        x = torch.from_numpy(np.array(self.array[index])).float().mul_(2.0).sub_(1.0)
        if self.labels is not None:
            return x, self.labels[index]
        return x


def read_labels(
    path: str | os.PathLike, names: list[str], columns: list[str] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Labels ``[N, L]`` for ``names`` from a CSV (see :class:`VolumeDataset`) and the column names."""
    path = Path(path)
    rows = _csv_rows(path)
    header, key, columns = _label_header(path.name, rows[0][1], columns)
    table: dict[str, tuple[int, dict[str, str]]] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise UserError(f"{path.name} line {line}: expected {len(header)} fields, got {len(row)}")
        rec = {h: v.strip() for h, v in zip(header, row, strict=True)}
        k = _strip_suffix(rec[key])
        if k in table:
            raise UserError(f"{path.name} line {line}: {rec[key]!r} repeats line {table[k][0]}")
        table[k] = (line, rec)
    found = []
    for n in names:
        k = _strip_suffix(n)
        if k not in table:
            raise UserError(f"{path.name} has no row for volume {n!r} (key column {key!r})")
        found.append(table[k])
    out_cols: list[np.ndarray] = []
    out_names: list[str] = []
    for c in columns:
        values, col_names = _label_column(path.name, c, [(line, rec[c]) for line, rec in found])
        out_cols.append(values)
        out_names.extend(col_names)
    return torch.from_numpy(np.concatenate(out_cols, axis=1)), out_names


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a labels CSV with their line numbers (the header first)."""
    if not path.is_file():
        raise UserError(f"labels file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM Excel writes
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels file {path}: {e}") from None
    reader = csv.reader(text.splitlines())
    try:
        rows = list(reader)
    except csv.Error as e:
        raise UserError(f"{path.name} line {reader.line_num}: malformed CSV ({e})") from None
    rows_numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows_numbered:
        raise UserError(f"{path.name} is empty: need a header line and one row per volume")
    return rows_numbered


def _label_header(file: str, header: list[str], columns: list[str] | None) -> tuple[list[str], str, list[str]]:
    """The checked header of a labels CSV, its key column and the label columns to read (all but the key
    when ``columns`` is None)."""
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or "" in header:
        raise UserError(f"{file} line 1: column names must be unique and non-empty, got {header}")
    key = next((c for c in header if c.lower() in _KEY_COLUMNS), None)
    if key is None:
        raise UserError(f"{file} line 1: no key column (one of {', '.join(_KEY_COLUMNS)}) to match file names")
    columns = [c for c in header if c != key] if columns is None else list(columns)
    unknown = [c for c in columns if c not in header or c == key]
    if unknown:
        raise UserError(f"{file}: label column(s) {unknown} not in the header {header}")
    if not columns:
        raise UserError(f"{file}: no label columns besides the key column {key!r}")
    return header, key, columns


def _label_column(file: str, column: str, values: list[tuple[int, str]]) -> tuple[np.ndarray, list[str]]:
    """One label column (``(line, value)`` per volume) as ``[N, 1]`` numbers, or one-hot ``[N, K]`` over its
    sorted values when it is text, with the output column names. A column of numbers with a few
    non-numbers is an error naming the first."""
    for line, v in values:
        if v == "":
            raise UserError(f"{file} line {line}, column {column!r}: empty value")
    nums = [_number(v) for _, v in values]
    if all(x is not None for x in nums):
        return np.asarray(nums, dtype=np.float32)[:, None], [column]
    if any(x is not None for x in nums) and sum(x is None for x in nums) <= max(1, len(nums) // 10):
        line, v = next((ln, v) for (ln, v), x in zip(values, nums, strict=True) if x is None)
        raise UserError(f"{file} line {line}, column {column!r}: {v!r} is not a number")
    cats = sorted({v for _, v in values})
    onehot = np.asarray([[v == cat for cat in cats] for _, v in values], dtype=np.float32)
    return onehot, [f"{column}={cat}" for cat in cats]


def _number(v: str) -> float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _strip_suffix(name: str) -> str:
    from stylegan3d.data.io import volume_stem

    return volume_stem(name.strip())

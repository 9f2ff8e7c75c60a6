"""Turn a folder of scans into a training set: reorient, resample, crop/pad, scale, store.

Per volume: :func:`stylegan3d.data.spatial.prepare_array` (reorient to RAS, resample onto the
target grid, scale intensities to [0, 1]).

Per dataset (:func:`prepare_dataset`): sources are hashed and prepared in parallel
processes; each result is stored atomically in ``DATASET/.parts/`` so nothing finished is
lost when a later file fails or the run is killed, then ``volumes.npy`` + ``manifest.json``
are assembled atomically and ``.parts/`` is removed (a killed or failed run keeps it, and the
next run resumes from it). Re-running skips unchanged files (by SHA-256) and appends new ones.
Bad files never stop the job: each gives one line in the report and in ``errors.json``.

The module runs a little over 600 lines because it is one resumable state machine (settings key,
parts, workers, merge, assembly) whose steps share the on-disk layout they maintain.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stylegan3d.data.io import load_volume, volume_stem, volume_suffix
from stylegan3d.data.spatial import Geometry, prepare_array
from stylegan3d.errors import DataError, UserError
from stylegan3d.fileio import atomic_path, atomic_write_json, ensure_dir, sha256_file
from stylegan3d.util import one_line, progress_bar

PREPARE_VERSION = 1
"""Bumped whenever the per-volume algorithm changes, so cached parts are not reused."""

LIST_SUFFIXES = (".txt", ".lst", ".list")
"""A source file with one of these suffixes is a text list of paths (one per line, ``#`` comments)."""

DTYPES = ("float16", "float32")


@dataclass
class PrepareReport:
    """Outcome of :func:`prepare_dataset` (also what ``prepare`` prints)."""

    out: Path
    total: int = 0
    """Volumes in the dataset after this run."""
    prepared: list[str] = field(default_factory=list)
    """Sources prepared in this run (new or changed content)."""
    resumed: list[str] = field(default_factory=list)
    """Sources whose result was already in ``.parts`` (an interrupted earlier run)."""
    unchanged: list[str] = field(default_factory=list)
    """Sources already in the dataset with the same SHA-256 (nothing done)."""
    duplicates: list[dict[str, str]] = field(default_factory=list)
    """Sources whose content equals another source (``{"source", "same_as"}``); not added twice."""
    errors: list[dict[str, str]] = field(default_factory=list)
    """One ``{"source", "error"}`` per bad input."""
    ignored: int = 0
    """Files in source folders without a volume suffix (e.g. README, JSON sidecars)."""
    flagged: list[dict[str, Any]] = field(default_factory=list)
    """``--preprocess``: scans whose registration quality is below the threshold (``{"source", "dice", "kept"}``)."""
    seconds: float = 0.0

    def exit_code(self, strict: bool = False) -> int:
        """0 when the dataset holds at least one volume (and, with ``strict``, nothing failed)."""
        return 0 if self.total > 0 and not (strict and self.errors) else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "total": self.total,
            "prepared": self.prepared,
            "resumed": self.resumed,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "ignored": self.ignored,
            "flagged": self.flagged,
            "seconds": self.seconds,
        }


def expand_sources(sources: Iterable[str | os.PathLike]) -> tuple[list[Path], list[dict[str, str]], int]:
    """Expand files, folders (recursive; files with a volume suffix) and text lists of paths.

    Returns ``(paths, errors, ignored)``: absolute, de-duplicated paths in a stable order,
    one error per missing/unreadable source, and the number of non-volume files skipped in folders.
    """
    paths: list[Path] = []
    errors: list[dict[str, str]] = []
    ignored = 0

    def add(p: Path, from_list: Path | None = None) -> None:
        nonlocal ignored
        if from_list is not None and not p.is_absolute():
            p = from_list.parent / p
        if p.is_dir():
            try:
                found = sorted(q for q in p.rglob("*") if q.is_file() or q.is_symlink())
            except OSError as e:
                errors.append({"source": str(p), "error": f"cannot list folder ({e.strerror or e})"})
                return
            for q in found:
                if volume_suffix(q) is None or q.name.startswith("."):
                    ignored += 1
                elif volume_suffix(q) != ".img":  # Analyze/NIfTI pairs are read through their .hdr
                    paths.append(q)
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            try:
                lines = p.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                errors.append({"source": str(p), "error": f"cannot read path list ({e})"})
                return
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    add(Path(line), from_list=p)
        else:
            paths.append(p)  # missing or unreadable files are reported by the worker

    for s in sources:
        add(Path(s).expanduser())
    seen: set[Path] = set()
    unique = []
    for p in paths:
        q = p.absolute()
        if q not in seen:
            seen.add(q)
            unique.append(q)
    return unique, errors, ignored


def _mask_path(source: Path, pattern: str) -> Path:
    """Mask file of ``source``: ``pattern`` with ``{stem}`` / ``{name}`` filled, relative to its folder."""
    p = Path(pattern.format(stem=volume_stem(source), name=source.name))
    return p if p.is_absolute() else source.parent / p


def _settings(
    geom: Geometry,
    lower_pct: float,
    upper_pct: float,
    mask_threshold: float | None,
    mask_pattern: str | None,
    volume_index: int | None,
    dtype: str,
    preprocess: dict[str, Any] | None = None,
) -> dict[str, Any]:
    settings = {
        "version": PREPARE_VERSION,
        **geom.to_dict(),
        "intensity": {"lower_pct": float(lower_pct), "upper_pct": float(upper_pct)},
        "mask": {"threshold": mask_threshold, "pattern": mask_pattern},
        "volume_index": volume_index,
        "dtype": dtype,
    }
    if preprocess is not None:  # only then: datasets prepared without it keep their settings key
        settings["preprocess"] = preprocess
    return settings


def _settings_key(settings: dict[str, Any]) -> str:
    from stylegan3d.fileio import sha256_bytes

    return sha256_bytes(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())[:12]


def _part_paths(parts: Path, sha: str, key: str) -> tuple[Path, Path]:
    return parts / f"{sha}-{key}.npy", parts / f"{sha}-{key}.json"


def _prepare_one(source_path: str) -> dict[str, Any]:
    """Worker: hash one source, then reuse or compute its prepared volume (stored in ``.parts``)."""
    task = _CTX
    source = Path(source_path)
    result: dict[str, Any] = {"source": str(source)}
    try:
        try:
            sha = sha256_file(source)
        except OSError as e:
            load_volume(source)  # gives the precise one-line reason (missing, directory, ...)
            raise DataError(f"cannot read file ({e.strerror or e})") from None
        result["sha256"] = sha
        if sha in task["known"]:
            result["status"] = "known"
            return result
        s = task["settings"]
        npy, meta = _part_paths(Path(task["parts"]), sha, task["key"])
        if npy.is_file() and meta.is_file():
            result.update(status="resumed", info=json.loads(meta.read_text()))
            return result
        geom = Geometry.from_dict(s)
        if s.get("preprocess"):
            vol, info = _preprocess_one(source, sha, geom, s, Path(task["out"]), task.get("threads", 1))
        else:
            data, affine = load_volume(source, s["volume_index"])
            mask: np.ndarray | float | None = s["mask"]["threshold"]
            if s["mask"]["pattern"]:
                mpath = _mask_path(source, s["mask"]["pattern"])
                try:
                    mask = load_volume(mpath)[0]
                except DataError as e:
                    raise DataError(f"mask {mpath.name}: {e}") from None
            lo_pct, hi_pct = s["intensity"]["lower_pct"], s["intensity"]["upper_pct"]
            vol, info = prepare_array(data, affine, geom, lo_pct, hi_pct, mask)
        with atomic_path(npy, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, vol[None].astype(s["dtype"]))
        atomic_write_json(meta, info)  # written last: a part counts only when its JSON exists
        result.update(status="prepared", info=info)
    except DataError as e:
        result.update(status="error", error=str(e))
        if task["settings"].get("preprocess"):
            result["step"] = getattr(e, "step", "load")
    except MemoryError:
        result.update(status="error", error="out of memory while preparing this volume")
    except UserError as e:  # e.g. a cache file that cannot be written
        result.update(status="error", error=str(e))
    except Exception as e:  # a file that trips a library in an unforeseen way must not stop the job
        result.update(status="error", error=f"unexpected {one_line(e, with_type=True)}")
    return result


def _preprocess_one(
    source: Path, sha: str, geom: Geometry, s: dict[str, Any], out: Path, threads: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """``--preprocess t1`` for one source: the pipeline, then its transform, mask and QC picture in
    ``OUT/preprocess/`` (written only once every step succeeded)."""
    import torch

    from stylegan3d.data.preprocess.pipeline import preprocess_file, save_outputs
    from stylegan3d.data.preprocess.sitkio import set_threads

    torch.set_num_threads(max(1, threads))
    set_threads(threads)
    lo_pct, hi_pct = s["intensity"]["lower_pct"], s["intensity"]["upper_pct"]
    res = preprocess_file(source, geom, s["preprocess"]["skip"], s["volume_index"], lower_pct=lo_pct, upper_pct=hi_pct)
    files = save_outputs(res, out / "preprocess", f"{volume_stem(source)}-{sha[:8]}")
    res.info["preprocess"]["files"] = {k: str(Path(v).relative_to(out)) for k, v in files.items()}
    return res.volume, res.info


def _outcome(future: Any, source: str) -> dict[str, Any]:
    """Result of a worker future; a crashed worker process becomes an error line for its file."""
    try:
        return future.result()
    except Exception as e:
        why = one_line(e) or type(e).__name__
        return {"source": source, "status": "error", "error": f"worker process failed ({why})"}


def _load_existing(out: Path) -> dict[str, Any] | None:
    if not (out / "manifest.json").exists():
        return None
    from stylegan3d.data.dataset import load_manifest

    return load_manifest(out)


def _check_compatible(existing: dict[str, Any], settings: dict[str, Any], out: Path) -> None:
    prev = existing.get("settings")
    if prev is None:
        raise UserError(f"{out} holds a dataset without preparation settings; prepare into a new --out")
    if _settings_key(prev) != _settings_key(settings):
        diffs = [k for k in settings if prev.get(k) != settings[k]]
        shown = ", ".join(f"{k}={prev.get(k)!r}" for k in diffs if k != "affine")
        raise UserError(
            f"{out} was prepared with different settings ({shown or ', '.join(diffs)}); "
            "use the same options or a new --out"
        )


_CTX: dict[str, Any] = {}
"""Per-process job context (settings, parts folder, known hashes), set once per worker."""


def _init_worker(ctx: dict[str, Any]) -> None:
    _CTX.clear()
    _CTX.update(ctx)


def _run_tasks(sources: list[str], ctx: dict[str, Any], workers: int, progress: bool) -> Iterable[dict[str, Any]]:
    """Run :func:`_prepare_one` over ``sources`` in ``workers`` processes, yielding results as they finish.

    Workers are forked: ``spawn``/``forkserver`` workers re-import the caller's ``__main__`` (the CLI
    imports torch: seconds per worker). The libraries the workers use are imported before the fork,
    and all workers start at the first submit, before the progress bar's thread exists. ``ctx`` is
    inherited, not pickled per file.
    """
    from contextlib import nullcontext

    import nibabel.orientations  # noqa: F401  (imported before forking; see above)

    parallel = workers > 1 and len(sources) > 1
    if ctx["settings"].get("preprocess"):  # load the template once, before forking; split the cores
        from stylegan3d.data.preprocess.register import mni_template

        mni_template(2.0)
        ctx = {**ctx, "threads": max(1, (os.cpu_count() or 1) // (min(workers, len(sources)) if parallel else 1))}
    pool = (
        ProcessPoolExecutor(
            min(workers, len(sources)), mp_context=mp.get_context("fork"), initializer=_init_worker, initargs=(ctx,)
        )
        if parallel
        else nullcontext()
    )
    with pool as ex:
        if parallel:
            futures = {ex.submit(_prepare_one, s): s for s in sources}
            done = (_outcome(f, futures[f]) for f in as_completed(futures))
        else:
            _init_worker(ctx)
            done = (_prepare_one(s) for s in sources)
        with progress_bar(enabled=progress, stderr=True) as bar:  # "prepare", n/total, elapsed, remaining
            job = bar.add_task("prepare", total=len(sources))
            for res in done:
                yield res
                bar.advance(job)


def prepare_dataset(
    sources: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    geom: Geometry,
    workers: int | None = None,
    lower_pct: float = 0.5,
    upper_pct: float = 99.5,
    mask_threshold: float | None = None,
    mask_pattern: str | None = None,
    volume_index: int | None = None,
    dtype: str = "float16",
    preview: int = 8,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    preprocess: str | None = None,
    skip: Sequence[str] | str | None = None,
    keep_flagged: bool = False,
    flag_dice: float | None = None,
) -> PrepareReport:
    """Prepare ``sources`` (files, folders, path lists) into the dataset folder ``out``.

    Writes ``volumes.npy`` ([N, 1, D, H, W], ``dtype``), ``manifest.json``, ``errors.json``
    and ``preview.png`` (first ``preview`` volumes). Good files are always kept;
    ``exit_code(strict=True)`` of the report fails on any failed input. An existing dataset is
    extended: unchanged files are skipped by SHA-256, new files appended, and a file whose
    content changed replaces its record in place. Its settings must match.

    ``preprocess="t1"`` runs :mod:`stylegan3d.data.preprocess` on every scan (N4, deepbet, affine to
    MNI152; ``skip`` names steps to leave out) and writes ``preprocess/STEM-SHA.{transform.json,
    mask.nii.gz,qc.png}`` and ``qc.png`` (all QC pictures); scans whose brain-mask Dice with the
    template is below ``flag_dice`` are flagged and left out unless ``keep_flagged``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    _check_options(out, dtype, lower_pct, upper_pct, mask_threshold, mask_pattern)
    pre, flag_dice = _preprocess_options(preprocess, skip, flag_dice, geom, mask_threshold, mask_pattern)
    settings = _settings(geom, lower_pct, upper_pct, mask_threshold, mask_pattern, volume_index, dtype, pre)
    key = _settings_key(settings)
    existing = _load_existing(out)
    if existing is not None:
        _check_compatible(existing, settings, out)
    records: list[dict[str, Any]] = [dict(r) for r in existing["volumes"]] if existing else []
    old_array = _existing_array(out, existing)

    paths, errors, ignored = _scan_paths(sources, out, mask_pattern)
    report = PrepareReport(out=out, errors=list(errors), ignored=ignored)
    parts = ensure_dir(out / ".parts")

    available = {r["sha256"] for r in records if _part_paths(parts, r["sha256"], key)[0].is_file()}
    if old_array is not None:
        available |= {r["sha256"] for r in records}
    ctx = {"settings": settings, "key": key, "parts": str(parts), "known": available, "out": str(out.absolute())}
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    results = {}
    for res in _run_tasks([str(p) for p in paths], ctx, n_workers, progress):
        if pre is not None:
            _flag(res, flag_dice, keep_flagged, report)
        results[res["source"]] = res
        if on_result is not None:
            on_result(res)

    records = _merge(records, [results[str(p)] for p in paths], report)
    for i, r in enumerate(records):
        r["index"] = i

    manifest = _manifest(settings, records)
    changed = existing is None or [r["sha256"] for r in records] != [r["sha256"] for r in existing["volumes"]]
    if records and (changed or old_array is None):
        _assemble(out, records, parts, key, existing, old_array, dtype, geom.shape)
    if records and (changed or existing != manifest):
        atomic_write_json(out / "manifest.json", manifest)
    report.errors.sort(key=lambda e: e["source"])
    atomic_write_json(out / "errors.json", report.errors)
    if records and preview > 0 and (changed or not (out / "preview.png").exists()):
        _preview(out, preview, geom.spacing)
    if pre is not None and (changed or report.flagged or not (out / "qc.png").exists()):
        _qc_sheet(out, records, report.flagged)
    _remove_parts(parts, keep=not records)
    report.total = len(records)
    report.seconds = time.perf_counter() - t0
    return report


def _check_options(
    out: Path, dtype: str, lower_pct: float, upper_pct: float, mask_threshold: float | None, mask_pattern: str | None
) -> None:
    """Refuse options of :func:`prepare_dataset` that cannot work, before anything is read."""
    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if mask_threshold is not None and not 0.0 <= mask_threshold <= 1.0:
        raise UserError(f"mask threshold must be in [0, 1], got {mask_threshold}")
    if not 0.0 <= lower_pct < upper_pct <= 100.0:
        raise UserError(f"need 0 <= lower percentile < upper percentile <= 100, got {lower_pct}, {upper_pct}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if mask_pattern is not None:
        try:
            mask_pattern.format(stem="x", name="x")
        except (KeyError, IndexError, ValueError):
            raise UserError(
                f"invalid mask pattern {mask_pattern!r}: use {{stem}} or {{name}}, e.g. {{stem}}_mask.nii.gz"
            ) from None


def _preprocess_options(
    preprocess: str | None,
    skip: Sequence[str] | str | None,
    flag_dice: float | None,
    geom: Geometry,
    mask_threshold: float | None,
    mask_pattern: str | None,
) -> tuple[dict[str, Any] | None, float | None]:
    """The ``preprocess`` entry of the settings (None without preprocessing) and the Dice below which a
    scan is flagged (its default filled in)."""
    if preprocess is None:
        return None, flag_dice
    from stylegan3d.data.preprocess.pipeline import DEFAULT_FLAG_DICE, parse_skip

    if preprocess != "t1":
        raise UserError(f"unknown preprocessing {preprocess!r}: the pipeline is 't1'")
    if mask_threshold is not None or mask_pattern is not None:
        raise UserError("--preprocess t1 makes its own brain masks: drop --mask-threshold/--mask-pattern")
    if geom.frame != "mni":
        raise UserError("--preprocess t1 registers scans to MNI152: use --frame mni (or leave --frame out)")
    flag_dice = DEFAULT_FLAG_DICE if flag_dice is None else float(flag_dice)
    if not 0.0 <= flag_dice <= 1.0:
        raise UserError(f"flag threshold must be a Dice in [0, 1], got {flag_dice}")
    return {"pipeline": "t1", "skip": list(parse_skip(skip))}, flag_dice


def _scan_paths(
    sources: Iterable[str | os.PathLike], out: Path, mask_pattern: str | None
) -> tuple[list[Path], list[dict[str, str]], int]:
    """:func:`expand_sources` without the masks that ``mask_pattern`` names and without files inside ``out``."""
    paths, errors, ignored = expand_sources(sources)
    if mask_pattern:
        masks = {_mask_path(p, mask_pattern).absolute() for p in paths}
        paths = [p for p in paths if p not in masks]
    out_resolved = out.absolute()
    return [p for p in paths if out_resolved not in p.parents], errors, ignored


def _preview(out: Path, count: int, spacing: Sequence[float]) -> None:
    """``OUT/preview.png``: the first ``count`` volumes of ``volumes.npy``."""
    from stylegan3d.viz import save_contact_sheet

    arr = np.load(out / "volumes.npy", mmap_mode="r")
    save_contact_sheet(
        out / "preview.png", [np.asarray(arr[i, 0], np.float32) for i in range(min(count, len(arr)))], spacing=spacing
    )


def _flag(res: dict[str, Any], threshold: float, keep: bool, report: PrepareReport) -> None:
    """Mark a preprocessed result whose registration Dice is below ``threshold``; drop it unless ``keep``."""
    if res.get("status") not in ("prepared", "resumed") or "preprocess" not in res.get("info", {}):
        return
    pre = res["info"]["preprocess"]
    d = pre["registration"]["dice"]
    pre["flagged"] = bool(d is not None and d < threshold)
    if pre["flagged"]:
        qc = pre.get("files", {}).get("qc")
        report.flagged.append({"source": res["source"], "dice": d, "threshold": threshold, "kept": keep, "qc": qc})
        if not keep:
            res["status"] = "flagged"


def _qc_sheet(out: Path, records: list[dict[str, Any]], flagged: list[dict[str, Any]]) -> None:
    """``OUT/qc.png``: the QC pictures of the dataset's scans and of the flagged ones left out."""
    from stylegan3d.data.preprocess.qc import save_qc_sheet

    pics, titles = [], []
    for r in records:
        pre = r.get("preprocess") or {}
        if pre.get("files", {}).get("qc"):
            d = pre["registration"]["dice"]
            pics.append(out / pre["files"]["qc"])
            titles.append(f"{r['name']}  Dice {d:.3f}" + ("  FLAGGED" if pre.get("flagged") else ""))
    for f in flagged:
        if not f["kept"] and f.get("qc"):
            pics.append(out / f["qc"])
            titles.append(f"{Path(f['source']).name}  Dice {f['dice']:.3f}  FLAGGED (left out)")
    if pics:
        save_qc_sheet(out / "qc.png", pics, titles)


def _remove_parts(parts: Path, keep: bool) -> None:
    """Delete the ``.parts`` resume cache once the dataset holds its results (``volumes.npy`` and the
    manifest are written; appending later reads rows from ``volumes.npy``), including temp files a
    killed run left there. With ``keep`` (nothing was assembled) only an empty folder is removed.
    A cache that cannot be removed is harmless, so errors are ignored."""
    if keep:
        with contextlib.suppress(OSError):
            parts.rmdir()  # fails (and keeps it) when it holds parts
    else:
        shutil.rmtree(parts, ignore_errors=True)


def _merge(records: list[dict[str, Any]], results: list[dict[str, Any]], report: PrepareReport) -> list[dict]:
    """New record list from the existing ``records`` and this run's ``results`` (in source order).

    A known path with new content replaces its record in place; a new path is appended; content
    already held by another record is a duplicate (a changed path that now duplicates another
    file loses its record: the dataset follows the files). Fills the report's lists.
    """
    old_info = {r["sha256"]: {k: r[k] for k in (*_INFO_KEYS, "preprocess") if k in r} for r in records}
    by_source = {r["source"]: i for i, r in enumerate(records)}
    ok = []
    for res in results:
        if res["status"] == "error":
            step = {"step": res["step"]} if "step" in res else {}
            report.errors.append({"source": res["source"], **step, "error": res["error"]})
        elif res["status"] != "flagged":
            ok.append(res)

    def record(res: dict[str, Any]) -> dict[str, Any]:
        (report.resumed if res["status"] == "resumed" else report.prepared).append(res["source"])
        info = res["info"] if "info" in res else old_info[res["sha256"]]  # content known from another record
        return {"name": Path(res["source"]).name, "source": res["source"], "sha256": res["sha256"], **info}

    changed = {by_source[r["source"]]: r for r in ok if r["source"] in by_source}
    changed = {i: r for i, r in changed.items() if records[i]["sha256"] != r["sha256"]}
    held = {r["sha256"]: r["source"] for i, r in enumerate(records) if i not in changed}
    dropped = set()
    for i, res in sorted(changed.items()):
        if res["sha256"] in held:
            report.duplicates.append({"source": res["source"], "same_as": held[res["sha256"]]})
            dropped.add(i)
        else:
            records[i] = record(res)
            held[res["sha256"]] = res["source"]
    records = [r for i, r in enumerate(records) if i not in dropped]
    for res in ok:
        if res["source"] in by_source:
            if by_source[res["source"]] not in changed:
                report.unchanged.append(res["source"])
        elif res["sha256"] in held:
            report.duplicates.append({"source": res["source"], "same_as": held[res["sha256"]]})
        else:
            records.append(record(res))
            held[res["sha256"]] = res["source"]
    return records


_INFO_KEYS = ("orig_shape", "orig_affine", "orig_spacing", "target_affine", "intensity")


def _manifest(settings: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("index", "name", "source", "sha256", *_INFO_KEYS, "preprocess")
    ordered = [{k: r[k] for k in keys if k in r} for r in records]
    return {
        "format": "stylegan3d-dataset",
        "version": 1,
        "shape": settings["shape"],
        "channels": 1,
        "spacing": settings["spacing"],
        "dtype": settings["dtype"],
        "affine": settings["affine"],
        "frame": settings["frame"],
        "intensity": settings["intensity"],
        "settings": settings,
        "volumes": ordered,
    }


def _existing_array(out: Path, existing: dict[str, Any] | None) -> np.ndarray | None:
    """The current ``volumes.npy`` (memory-mapped) when it matches the manifest, else None."""
    if existing is None or not (out / "volumes.npy").is_file():
        return None
    try:
        arr = np.load(out / "volumes.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    want = (len(existing["volumes"]), existing.get("channels", 1), *existing["shape"])
    return arr if tuple(arr.shape) == want else None


def _assemble(
    out: Path,
    records: list[dict[str, Any]],
    parts: Path,
    key: str,
    existing: dict[str, Any] | None,
    old_array: np.ndarray | None,
    dtype: str,
    shape: list[int],
) -> None:
    """Write ``volumes.npy`` atomically from the parts (or rows of the previous array)."""
    old_rows = {r["sha256"]: i for i, r in enumerate(existing["volumes"])} if existing and old_array is not None else {}
    with atomic_path(out / "volumes.npy", suffix=".npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(records), 1, *shape))
        for i, r in enumerate(records):
            npy = _part_paths(parts, r["sha256"], key)[0]
            if npy.is_file():
                arr[i] = np.load(npy, allow_pickle=False)
            elif r["sha256"] in old_rows:
                arr[i] = old_array[old_rows[r["sha256"]]]
            else:
                raise UserError(f"prepared data of {r['source']} is missing from {parts}; re-run prepare")
        arr.flush()
        del arr

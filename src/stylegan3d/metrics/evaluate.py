"""``evaluate``: every requested metric between generated and real volumes, each beside the same
metric between two disjoint halves of the real data (the real-vs-real baseline), with
bootstrap 95 % confidence intervals.

Protocol (``reference="half"``, the default): the real set is split (seeded) into two
disjoint halves A and B of equal size. Generated volumes are compared with half A, and the
baseline is half B compared with half A, so both numbers use the same reference set and, with
the default ``n = |B|`` generated volumes, the same sample sizes (the Fréchet distance and
PRDC depend on sample size, so this matters). ``reference="all"`` compares the generated
volumes with all real volumes instead. Memorisation always searches all real volumes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.metrics import features3d
from stylegan3d.metrics.compare import METRICS, Comparison
from stylegan3d.metrics.volumes import VolumeSet, as_volume_set, generate_volumes

ALL_METRICS = tuple(METRICS)
DEFAULT_METRICS = ("fid_slice", "fd3d", "bmmd2", "mmd2_unbiased", "ms_ssim", "prdc", "memorisation")
ALIASES = {
    "fid": "fid_slice",
    "slice_fid": "fid_slice",
    "triplanar": "fid_triplanar",
    "fid3d": "fd3d",
    "bmmd": "bmmd2",
    "mmd2": "mmd2_unbiased",
    "msssim": "ms_ssim",
    "ms-ssim": "ms_ssim",
    "memorization": "memorisation",
    "precision": "prdc",
    "recall": "prdc",
}
BETTER = {
    "fid_slice": "lower",
    "fid_axial": "lower",
    "fid_coronal": "lower",
    "fid_sagittal": "lower",
    "fid_triplanar": "lower",
    "fd3d": "lower",
    "bmmd2": "lower",
    "mmd2_unbiased": "lower",
    "ms_ssim": "close to real",
    "precision": "higher",
    "recall": "higher",
    "density": "close to 1",
    "coverage": "higher",
    "memorisation": "lower",
}


@dataclass
class EvalSettings:
    """What :func:`evaluate` computes and how (``stylegan3d metrics`` fills it from its options)."""

    metrics: str | Sequence[str] | None = None
    """Metric names, a comma list, ``default`` or ``all`` (:func:`parse_metrics`); None: the default set."""
    n: int | None = None
    """Generated volumes: the first ``n`` given, or for a checkpoint the number to generate
    (default ``|B|`` with ``reference="half"``, else the number of reals)."""
    n_real: int | None = None
    """Use a random (seeded) subset of this many real volumes."""
    seeds: Sequence[int] | None = None
    """Seeds of the volumes generated from a checkpoint (default ``0..n-1``)."""
    psi: float = 1.0
    """Truncation of the volumes generated from a checkpoint."""
    prior: str | None = None
    """W prior (file or shipped name, :mod:`stylegan3d.infer.prior`) the checkpoint's seeds are drawn from."""
    real_vs_real: bool = True
    """Also compute every metric between the two real halves (the baseline)."""
    reference: str = "half"
    """Compare the generated volumes with real half A (``half``) or with all reals (``all``)."""
    seed: int = 0
    """Seed of the real split, the pairs and the bootstrap."""
    n_boot: int = 100
    """Bootstrap resamples for the 95 % intervals (0: none)."""
    slices_per_plane: int = 3
    """Slices per plane for ``fid_triplanar``."""
    prdc_k: int = 5
    """k of the k-NN balls of precision/recall/density/coverage."""
    mmd_batch: int = 8
    """Batch size of bMMD²."""
    ms_ssim_pairs: int = 20
    """Random pairs per set for MS-SSIM."""
    feature_layers: Sequence[str] = features3d.DEFAULT_LAYERS
    """deepbet stages whose features FD-3D and PRDC use."""
    feature_grid: Sequence[int] = features3d.GRID
    """Grid the volumes are resampled to before deepbet."""
    device: str = "cpu"
    """Torch device of the networks."""
    batch: int = 8
    """Volumes per batch."""
    cache: bool = True
    """Read and write the real-feature cache of a prepared dataset."""
    progress: bool = False
    """Progress bars on stderr."""

    def validate(self) -> list[str]:
        """Check the numbers and the reference; returns the parsed metric names."""
        wanted = parse_metrics(self.metrics)
        if self.reference not in ("half", "all"):
            raise UserError(f"reference must be 'half' or 'all', got {self.reference!r}")
        for name, lo in (
            ("n_boot", 0),
            ("slices_per_plane", 1),
            ("prdc_k", 1),
            ("mmd_batch", 1),
            ("ms_ssim_pairs", 1),
            ("batch", 1),
        ):
            v = getattr(self, name)
            if int(v) < lo:
                raise UserError(f"{name} must be >= {lo}, got {v}")
        return wanted


def parse_metrics(metrics: str | Sequence[str] | None) -> list[str]:
    """Metric names from a list or a comma-separated string (``default``, ``all``, aliases)."""
    if metrics is None:
        return list(DEFAULT_METRICS)
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        name = ALIASES.get(name, name.replace("-", "_"))
        if not name:
            continue
        if name == "all":
            wanted: Sequence[str] = ALL_METRICS
        elif name == "default":
            wanted = DEFAULT_METRICS
        else:
            wanted = [name]
        for w in wanted:
            if w not in ALL_METRICS:
                raise UserError(f"unknown metric {raw.strip()!r}: choose from {', '.join(ALL_METRICS)}, default, all")
            if w not in out:
                out.append(w)
    if not out:
        raise UserError("no metric selected")
    return out


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The seeded real-vs-real split: two disjoint sorted row sets A, B of ``n // 2`` rows each."""
    perm = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(perm[:half]), np.sort(perm[half : 2 * half])


def is_checkpoint(obj: Any) -> bool:
    """True for a ``.safetensors`` file or a run directory (``latest`` or ``checkpoints/``)."""
    if not isinstance(obj, str | Path):
        return False
    p = Path(obj)
    return (p.is_file() and p.suffix in (".safetensors", ".json")) or (
        p.is_dir() and ((p / "latest").is_file() or (p / "checkpoints").is_dir())
    )


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr for the metrics' long loops, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn

    from stylegan3d.util import progress_bar

    cols = ("{task.description:<28}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with progress_bar(*cols, stderr=True) as prog:
        yield prog


def evaluate(fake: Any, real: Any, settings: EvalSettings | None = None) -> dict:
    """Compare generated volumes with real ones; returns the JSON-ready metrics document.

    ``fake``: volumes ``[N, C, D, H, W]`` in [0, 1] (array/tensor), a NIfTI folder, a prepared
    dataset, a ``.npy`` file, a checkpoint/run directory (volumes generated for ``settings.seeds``,
    truncation ``settings.psi``) or ``None`` (real-vs-real baseline only).
    ``real``: a prepared dataset directory (features cached there) or any of the above.
    ``settings``: see :class:`EvalSettings` (default: the default metrics and settings).
    Returns ``{"metrics": {name: {value, ci95, n, n_real, real_vs_real: {...}, better}}, "seeds",
    "checkpoint_sha256", "fake", "real", "settings", "timing_s"}``.
    """
    s = settings if settings is not None else EvalSettings()
    wanted = s.validate()
    t_start = time.perf_counter()
    timing: dict[str, float] = {}

    real_vs = as_volume_set(real, "real")
    if s.n_real is not None and s.n_real < len(real_vs):
        if s.n_real < 2:
            raise UserError(f"n_real must be >= 2, got {s.n_real}")
        rows = np.sort(np.random.default_rng([s.seed, 1]).choice(len(real_vs), s.n_real, replace=False))
        real_vs = real_vs.subset(rows)
    n_all = len(real_vs)
    a_rows, b_rows = split_halves(n_all, s.seed)
    half = len(a_rows)
    if s.real_vs_real and half < 2:
        raise UserError(f"the real-vs-real baseline needs at least 4 real volumes, got {n_all}")
    ref_rows = a_rows if s.reference == "half" else np.arange(n_all)
    if s.reference == "half" and half < 2:
        raise UserError(f"reference='half' needs at least 4 real volumes, got {n_all}; use reference='all'")

    fake_info: dict[str, Any] = {"source": None, "n": 0}
    ckpt_sha = None
    seed_list: list[int] | None = None
    with _progress(s.progress) as prog:
        fake_vs: VolumeSet | None = None
        if fake is not None and is_checkpoint(fake):
            count = s.n if s.n is not None else (len(b_rows) if s.reference == "half" else n_all)
            seed_list = [int(x) for x in s.seeds] if s.seeds is not None else list(range(count))
            if s.n is not None and s.seeds is not None and len(seed_list) != s.n:
                raise UserError(f"n={s.n} but {len(seed_list)} seeds given")
            t0 = time.perf_counter()
            fake_vs, found = generate_volumes(
                fake, seed_list, psi=s.psi, prior=s.prior, batch=s.batch, device=s.device, progress=prog
            )
            timing["generate"] = time.perf_counter() - t0
            ckpt_sha = found.sha256
            fake_info.update(
                source=str(found.path), checkpoint_sha256=ckpt_sha, psi=s.psi, prior=s.prior, kimg=found.meta.kimg
            )
        elif fake is not None:
            fake_vs = as_volume_set(fake, "fake")
            if s.n is not None:
                if s.n > len(fake_vs):
                    raise UserError(f"n={s.n} generated volumes requested but {fake_vs.source} holds {len(fake_vs)}")
                fake_vs = fake_vs.subset(np.arange(s.n))
            fake_info["source"] = fake_vs.source
        if fake_vs is not None:
            if fake_vs.shape != real_vs.shape:
                raise UserError(
                    f"generated volumes have shape {list(fake_vs.shape)} (C, D, H, W) but the real data "
                    f"{list(real_vs.shape)}"
                )
            if len(fake_vs) < 2:
                raise UserError("need at least 2 generated volumes")
            fake_info["n"] = len(fake_vs)
        comparison = Comparison(fake_vs, real_vs, a_rows, b_rows, ref_rows, s, prog)
        results: dict[str, dict] = {}
        for name in wanted:
            t0 = time.perf_counter()
            results.update(METRICS[name](comparison))
            timing[name] = time.perf_counter() - t0
    for key, entry in results.items():
        entry["better"] = BETTER.get(key, "")
    timing["total"] = time.perf_counter() - t_start
    real_names = real_vs.names
    return {
        "format": "stylegan3d-metrics",
        "version": 1,
        "metrics": results,
        "seeds": seed_list,
        "checkpoint_sha256": ckpt_sha,
        "fake": fake_info,
        "real": {
            "source": real_vs.source,
            "manifest_sha256": real_vs.key,
            "n": n_all,
            "shape": list(real_vs.shape),
            "half_a": [real_names[i] for i in a_rows],
            "half_b": [real_names[i] for i in b_rows],
        },
        "settings": {
            "metrics": wanted,
            "reference": s.reference,
            "real_vs_real": s.real_vs_real,
            "seed": s.seed,
            "n_boot": s.n_boot,
            "slices_per_plane": s.slices_per_plane,
            "prdc_k": s.prdc_k,
            "mmd_batch": s.mmd_batch,
            "ms_ssim_pairs": s.ms_ssim_pairs,
            "feature_layers": list(s.feature_layers),
            "feature_grid": list(s.feature_grid),
            "device": str(s.device),
        },
        "details": comparison.details,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }

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
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.metrics import features3d, inception
from stylegan3d.metrics.cache import cached
from stylegan3d.metrics.frechet import frechet_distance_features
from stylegan3d.metrics.memorization import memorisation_report
from stylegan3d.metrics.mmd import bmmd2_gram, cross_gram, gram_matrix, mmd2_unbiased_gram
from stylegan3d.metrics.prdc import prdc_terms
from stylegan3d.metrics.ssim import pairwise_ms_ssim, random_pairs
from stylegan3d.metrics.stats import bootstrap_mean, bootstrap_two, shifted_percentile_ci
from stylegan3d.metrics.volumes import VolumeSet, as_volume_set, generate_volumes

ALL_METRICS = ("fid_slice", "fid_triplanar", "fd3d", "bmmd2", "mmd2_unbiased", "ms_ssim", "prdc", "memorisation")
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
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*cols, console=Console(stderr=True)) as prog:
        yield prog


def _rng(seed: int, name: str) -> np.random.Generator:
    """Independent stream per metric, so a metric's CI does not depend on which others run."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _entry(value: float | None, boot: np.ndarray | None, n: int, n_real: int, nonnegative: bool = True) -> dict:
    return {
        "value": None if value is None else float(value),
        "ci95": None if boot is None or value is None else shifted_percentile_ci(boot, value, nonnegative=nonnegative),
        "n": int(n),
        "n_real": int(n_real),
    }


def evaluate(
    fake: Any,
    real: Any,
    metrics: str | Sequence[str] | None = None,
    *,
    n: int | None = None,
    n_real: int | None = None,
    seeds: Sequence[int] | None = None,
    psi: float = 1.0,
    real_vs_real: bool = True,
    reference: str = "half",
    seed: int = 0,
    n_boot: int = 100,
    slices_per_plane: int = 3,
    prdc_k: int = 5,
    mmd_batch: int = 8,
    ms_ssim_pairs: int = 20,
    feature_layers: Sequence[str] = features3d.DEFAULT_LAYERS,
    feature_grid: Sequence[int] = features3d.GRID,
    device: str = "cpu",
    batch: int = 8,
    cache: bool = True,
    progress: bool = False,
) -> dict:
    """Compare generated volumes with real ones; returns the JSON-ready metrics document.

    ``fake``: volumes ``[N, C, D, H, W]`` in [0, 1] (array/tensor), a NIfTI folder, a prepared
    dataset, a ``.npy`` file, a checkpoint/run directory (volumes generated for ``seeds``,
    default ``0..n-1``, truncation ``psi``) or ``None`` (real-vs-real baseline only).
    ``real``: a prepared dataset directory (features cached there) or any of the above.
    ``n``: generated volumes to use: the first ``n`` given volumes (default all), or for a
    checkpoint the number to generate (default ``|B|`` with ``reference="half"``, else the
    number of reals). ``n_real``: use a random subset of this many real volumes.
    Returns ``{"metrics": {name: {value, ci95, n, n_real, real_vs_real: {...}, better}}, "seeds",
    "checkpoint_sha256", "fake", "real", "settings", "timing_s"}``.
    """
    wanted = parse_metrics(metrics)
    if reference not in ("half", "all"):
        raise UserError(f"reference must be 'half' or 'all', got {reference!r}")
    for name, v, lo in (
        ("n_boot", n_boot, 0),
        ("slices_per_plane", slices_per_plane, 1),
        ("prdc_k", prdc_k, 1),
        ("mmd_batch", mmd_batch, 1),
        ("ms_ssim_pairs", ms_ssim_pairs, 1),
        ("batch", batch, 1),
    ):
        if int(v) < lo:
            raise UserError(f"{name} must be >= {lo}, got {v}")
    t_start = time.perf_counter()
    timing: dict[str, float] = {}

    real_vs = as_volume_set(real, "real")
    if n_real is not None and n_real < len(real_vs):
        if n_real < 2:
            raise UserError(f"n_real must be >= 2, got {n_real}")
        rows = np.sort(np.random.default_rng([seed, 1]).choice(len(real_vs), n_real, replace=False))
        real_vs = real_vs.subset(rows)
    n_all = len(real_vs)
    a_rows, b_rows = split_halves(n_all, seed)
    half = len(a_rows)
    if real_vs_real and half < 2:
        raise UserError(f"the real-vs-real baseline needs at least 4 real volumes, got {n_all}")
    ref_rows = a_rows if reference == "half" else np.arange(n_all)
    if reference == "half" and half < 2:
        raise UserError(f"reference='half' needs at least 4 real volumes, got {n_all}; use reference='all'")

    fake_info: dict[str, Any] = {"source": None, "n": 0}
    ckpt_sha = None
    seed_list: list[int] | None = None
    with _progress(progress) as prog:
        fake_vs: VolumeSet | None = None
        if fake is not None and is_checkpoint(fake):
            count = n if n is not None else (len(b_rows) if reference == "half" else n_all)
            seed_list = [int(s) for s in seeds] if seeds is not None else list(range(count))
            if n is not None and seeds is not None and len(seed_list) != n:
                raise UserError(f"n={n} but {len(seed_list)} seeds given")
            t0 = time.perf_counter()
            fake_vs, meta = generate_volumes(fake, seed_list, psi=psi, batch=batch, device=device, progress=prog)
            timing["generate"] = time.perf_counter() - t0
            ckpt_sha = meta.get("sha256")
            fake_info.update(
                source=str(meta.get("resolved_path", fake)), checkpoint_sha256=ckpt_sha, psi=psi, kimg=meta.get("kimg")
            )
        elif fake is not None:
            fake_vs = as_volume_set(fake, "fake")
            if n is not None:
                if n > len(fake_vs):
                    raise UserError(f"n={n} generated volumes requested but {fake_vs.source} holds {len(fake_vs)}")
                fake_vs = fake_vs.subset(np.arange(n))
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
        ctx = _Context(
            fake_vs, real_vs, a_rows, b_rows, ref_rows, real_vs_real, seed, n_boot, device, batch, cache, prog
        )
        results: dict[str, dict] = {}
        details: dict[str, Any] = {}
        for name in wanted:
            t0 = time.perf_counter()
            if name == "fid_slice":
                results.update(ctx.slice_fid("reference", 1))
            elif name == "fid_triplanar":
                results.update(ctx.slice_fid("triplanar", slices_per_plane))
            elif name == "fd3d":
                results["fd3d"] = ctx.fd3d(feature_layers, feature_grid)
            elif name == "prdc":
                results.update(ctx.prdc(prdc_k, feature_layers, feature_grid))
            elif name == "bmmd2":
                results["bmmd2"] = ctx.bmmd2(mmd_batch)
            elif name == "mmd2_unbiased":
                results["mmd2_unbiased"] = ctx.mmd2_unbiased()
            elif name == "ms_ssim":
                results["ms_ssim"] = ctx.ms_ssim(ms_ssim_pairs)
            elif name == "memorisation":
                results["memorisation"], details["memorisation"] = ctx.memorisation()
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
            "reference": reference,
            "real_vs_real": real_vs_real,
            "seed": seed,
            "n_boot": n_boot,
            "slices_per_plane": slices_per_plane,
            "prdc_k": prdc_k,
            "mmd_batch": mmd_batch,
            "ms_ssim_pairs": ms_ssim_pairs,
            "feature_layers": list(feature_layers),
            "feature_grid": list(feature_grid),
            "device": str(device),
        },
        "details": details,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }


class _Context:
    """Shared state of one evaluation: the sets, the split, features and the Gram matrix."""

    def __init__(
        self,
        fake: VolumeSet | None,
        real: VolumeSet,
        a: np.ndarray,
        b: np.ndarray,
        ref: np.ndarray,
        rvr: bool,
        seed: int,
        n_boot: int,
        device: str,
        batch: int,
        use_cache: bool,
        prog: Any,
    ) -> None:
        self.fake, self.real, self.a, self.b, self.ref = fake, real, a, b, ref
        self.rvr, self.seed, self.n_boot = rvr, seed, n_boot
        self.device, self.batch, self.use_cache, self.prog = device, batch, use_cache, prog
        self._features: dict[str, tuple[dict, dict | None]] = {}
        self._gram: np.ndarray | None = None

    # -- features -------------------------------------------------------------------------------
    def _feats(self, kind: str, settings: str, fn: Callable[[VolumeSet, str], dict]) -> tuple[dict, dict | None]:
        key = f"{kind}|{settings}"
        if key not in self._features:
            real = cached(self.real, kind, settings, lambda: fn(self.real, "real"), self.use_cache)
            fake = fn(self.fake, "fake") if self.fake is not None else None
            self._features[key] = (real, fake)
        return self._features[key]

    def _two_set(
        self, name: str, fn: Callable[[np.ndarray, np.ndarray], Any], real_f: np.ndarray, fake_f: np.ndarray | None
    ) -> tuple[Any, np.ndarray | None, Any, np.ndarray | None]:
        """fn on (fake, ref) and on (B, A), each with bootstrap resamples."""
        rng, rng_r = _rng(self.seed, name), _rng(self.seed, name + "|rvr")
        val = boot = rvr = rvr_boot = None
        if fake_f is not None:
            ref_f = real_f[self.ref]
            val = fn(fake_f, ref_f)
            boot = bootstrap_two(lambda i, j: fn(fake_f[i], ref_f[j]), len(fake_f), len(ref_f), self.n_boot, rng)
        if self.rvr:
            fa, fb = real_f[self.a], real_f[self.b]
            rvr = fn(fb, fa)
            rvr_boot = bootstrap_two(lambda i, j: fn(fb[i], fa[j]), len(fb), len(fa), self.n_boot, rng_r)
        return val, boot, rvr, rvr_boot

    def _pack(
        self,
        val: float | None,
        boot: np.ndarray | None,
        rvr: float | None,
        rvr_boot: np.ndarray | None,
        n_fake: int,
        n_ref: int,
        n_b: int,
        n_a: int,
    ) -> dict:
        entry = _entry(val, boot, n_fake, n_ref)
        entry["real_vs_real"] = _entry(rvr, rvr_boot, n_b, n_a) if self.rvr else None
        return entry

    def _sizes(self) -> tuple[int, int, int, int]:
        return (len(self.fake) if self.fake is not None else 0, len(self.ref), len(self.b), len(self.a))

    # -- Fréchet distances ----------------------------------------------------------------------
    def slice_fid(self, mode: str, k: int) -> dict[str, dict]:
        def compute(vs: VolumeSet, label: str) -> dict:
            return inception.volume_features(vs, mode, k, self.device, self.batch, self.prog, label)

        real, fake = self._feats(f"inception-{mode}", f"k={k}", compute)
        planes = ["reference"] if mode == "reference" else list(inception.PLANES)
        dim = inception.FEATURE_DIM
        real_f = np.stack([real[p].reshape(len(self.real), -1, dim) for p in planes], axis=1)  # [N, P, k, d]
        fake_f = None if fake is None else np.stack([fake[p].reshape(len(self.fake), -1, dim) for p in planes], 1)

        def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            per = [
                frechet_distance_features(x[:, p].reshape(-1, dim), y[:, p].reshape(-1, dim))
                for p in range(len(planes))
            ]
            return np.asarray(per + ([float(np.mean(per))] if len(planes) > 1 else []))

        val, boot, rvr, rvr_boot = self._two_set(f"fid_{mode}", fn, real_f, fake_f)
        names = ["fid_slice"] if mode == "reference" else [f"fid_{p}" for p in planes] + ["fid_triplanar"]
        out = {}
        for i, name in enumerate(names):
            out[name] = self._pack(
                None if val is None else val[i],
                None if boot is None else boot[:, i],
                None if rvr is None else rvr[i],
                None if rvr_boot is None else rvr_boot[:, i],
                *self._sizes(),
            )
            out[name]["slices_per_volume"] = int(real_f.shape[2])
        return out

    def _deepbet(self, layers: Sequence[str], grid: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        def compute(vs: VolumeSet, label: str) -> dict:
            f = features3d.volume_features(vs, self.device, max(1, self.batch // 2), layers, grid, self.prog, label)
            return {"features": f}

        settings = f"layers={','.join(layers)}|grid={'x'.join(str(g) for g in grid)}"
        real, fake = self._feats("deepbet", settings, compute)
        return real["features"], None if fake is None else fake["features"]

    def fd3d(self, layers: Sequence[str], grid: Sequence[int]) -> dict:
        real_f, fake_f = self._deepbet(layers, grid)
        val, boot, rvr, rvr_boot = self._two_set("fd3d", frechet_distance_features, real_f, fake_f)
        entry = self._pack(val, boot, rvr, rvr_boot, *self._sizes())
        entry["feature_dim"] = int(real_f.shape[1])
        return entry

    # -- precision / recall / density / coverage ------------------------------------------------
    def prdc(self, k: int, layers: Sequence[str], grid: Sequence[int]) -> dict[str, dict]:
        real_f, fake_f = self._deepbet(layers, grid)
        rng, rng_r = _rng(self.seed, "prdc"), _rng(self.seed, "prdc|rvr")
        n_fake, n_ref, n_b, n_a = self._sizes()
        smallest = min([n_ref, n_a, n_b] + ([n_fake] if fake_f is not None else []))
        k_used = min(k, smallest - 1)
        if k_used < 1:
            raise UserError("precision/recall need at least 2 volumes per set")
        terms = prdc_terms(real_f[self.ref], fake_f, k_used) if fake_f is not None else None
        rvr_terms = prdc_terms(real_f[self.a], real_f[self.b], k_used) if self.rvr else None
        out = {}
        for name in ("precision", "recall", "density", "coverage"):
            t = None if terms is None else terms[name]
            r = None if rvr_terms is None else rvr_terms[name]
            out[name] = self._pack(
                None if t is None else t.mean(),
                None if t is None else bootstrap_mean(t, self.n_boot, rng),
                None if r is None else r.mean(),
                None if r is None else bootstrap_mean(r, self.n_boot, rng_r),
                n_fake,
                n_ref,
                n_b,
                n_a,
            )
            out[name]["k"] = k_used
        return out

    # -- voxel-space metrics (Gram matrix) ------------------------------------------------------
    def gram(self) -> tuple[np.ndarray, int]:
        """Gram matrix over [fake; real] and the offset of the real rows."""
        off = len(self.fake) if self.fake is not None else 0
        if self._gram is None:
            g_rr = cached(
                self.real,
                "gram",
                "float64",
                lambda: {"gram": gram_matrix(self.real, progress=self.prog)},
                self.use_cache,
            )["gram"]
            if self.fake is None:
                self._gram = g_rr
            else:
                cross = cross_gram(self.fake, [self.fake, self.real])  # [M, M + N]
                g = np.empty((off + len(self.real),) * 2)
                g[:off] = cross
                g[off:, :off] = cross[:, off:].T
                g[off:, off:] = g_rr
                self._gram = g
        return self._gram, off

    def bmmd2(self, batch: int) -> dict:
        g, off = self.gram()
        val = boot = rvr = rvr_boot = None
        if self.fake is not None:
            rng = _rng(self.seed, "bmmd2")
            fr, rr = np.arange(off), off + self.ref
            val = bmmd2_gram(g, fr, rr, batch, rng)
            boot = bootstrap_two(
                lambda i, j: bmmd2_gram(g, fr[i], rr[j], batch, rng), len(fr), len(rr), self.n_boot, rng
            )
        if self.rvr:
            rng_r = _rng(self.seed, "bmmd2|rvr")
            br, ar = off + self.b, off + self.a
            rvr = bmmd2_gram(g, br, ar, batch, rng_r)
            rvr_boot = bootstrap_two(
                lambda i, j: bmmd2_gram(g, br[i], ar[j], batch, rng_r), len(br), len(ar), self.n_boot, rng_r
            )
        entry = self._pack(val, boot, rvr, rvr_boot, *self._sizes())
        entry.update(batch=batch, voxels=self.real.voxels)
        return entry

    def mmd2_unbiased(self) -> dict:
        g, off = self.gram()
        fn = lambda x, y: mmd2_unbiased_gram(g, x, y)  # noqa: E731
        val = boot = rvr = rvr_boot = None
        if self.fake is not None:
            fr, rr = np.arange(off), off + self.ref
            val = fn(fr, rr)
            boot = bootstrap_two(
                lambda i, j: fn(fr[i], rr[j]), len(fr), len(rr), self.n_boot, _rng(self.seed, "mmd2_unbiased")
            )
        if self.rvr:
            br, ar = off + self.b, off + self.a
            rvr = fn(br, ar)
            rng_r = _rng(self.seed, "mmd2_unbiased|rvr")
            rvr_boot = bootstrap_two(lambda i, j: fn(br[i], ar[j]), len(br), len(ar), self.n_boot, rng_r)
        n_fake, n_ref, n_b, n_a = self._sizes()
        entry = _entry(val, boot, n_fake, n_ref, nonnegative=False)
        entry["real_vs_real"] = _entry(rvr, rvr_boot, n_b, n_a, nonnegative=False) if self.rvr else None
        entry["voxels"] = self.real.voxels
        return entry

    def memorisation(self) -> tuple[dict, dict]:
        g, off = self.gram()
        rng, rng_r = _rng(self.seed, "memorisation"), _rng(self.seed, "memorisation|rvr")
        vox = self.real.voxels
        names = self.real.names
        entry = _entry(None, None, 0, len(self.real))
        details: dict[str, Any] = {}
        if self.fake is not None:
            rep = memorisation_report(g, np.arange(off), off + np.arange(len(self.real)), vox, self.fake.names, names)
            entry = _entry(rep["closer"].mean(), bootstrap_mean(rep["closer"], self.n_boot, rng), off, len(self.real))
            entry.update(threshold=rep["threshold"], median_distance=float(np.median(rep["distance"])))
            details = {"threshold": rep["threshold"], "samples": rep["samples"]}
        if self.rvr:
            rep = memorisation_report(
                g, off + self.b, off + self.a, vox, [names[i] for i in self.b], [names[i] for i in self.a]
            )
            rvr = _entry(
                rep["closer"].mean(), bootstrap_mean(rep["closer"], self.n_boot, rng_r), len(self.b), len(self.a)
            )
            rvr.update(threshold=rep["threshold"], median_distance=float(np.median(rep["distance"])))
            entry["real_vs_real"] = rvr
        else:
            entry["real_vs_real"] = None
        return entry, details

    # -- diversity ------------------------------------------------------------------------------
    def ms_ssim(self, pairs: int) -> dict:
        rng = _rng(self.seed, "ms_ssim")
        n_fake = len(self.fake) if self.fake is not None else 0
        entry = _entry(None, None, n_fake, len(self.real))
        entry.update(pairs=0, real_vs_real=None)
        if self.fake is not None:
            fp = random_pairs(n_fake, pairs, rng)
            v = pairwise_ms_ssim(self.fake, fp, self.batch, self.prog, "fake")
            entry.update(_entry(v.mean(), bootstrap_mean(v, self.n_boot, rng), n_fake, len(self.real)), pairs=len(fp))
        if self.rvr:
            rng_r = _rng(self.seed, "ms_ssim|rvr")
            rp = random_pairs(len(self.real), pairs, rng_r)
            settings = f"pairs={zlib.crc32(rp.tobytes()):08x}-{len(rp)}"
            r = cached(
                self.real,
                "ms-ssim",
                settings,
                lambda: {"values": pairwise_ms_ssim(self.real, rp, self.batch, self.prog, "real")},
                self.use_cache,
            )["values"]
            rvr = _entry(r.mean(), bootstrap_mean(r, self.n_boot, rng_r), len(self.real), len(self.real))
            entry["real_vs_real"] = dict(rvr, pairs=len(rp))
        entry["definition"] = "mean MS-SSIM of random pairs within the generated set (real_vs_real: real pairs)"
        return entry

"""The shared state of one evaluation (sets, split, cached features and Gram matrix) and one
method per metric; :data:`METRICS` maps each metric name to its method (see
:func:`stylegan3d.metrics.evaluate.evaluate`)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
from stylegan3d.metrics.volumes import VolumeSet

if TYPE_CHECKING:
    from stylegan3d.metrics.evaluate import EvalSettings


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


class Comparison:
    """Shared state of one evaluation: the sets, the split, features and the Gram matrix.

    ``a``/``b``: the real halves; ``ref``: the real rows the generated set is compared with;
    ``details``: per-metric extras for the document's ``details`` (memorisation's samples).
    """

    def __init__(
        self,
        fake: VolumeSet | None,
        real: VolumeSet,
        a: np.ndarray,
        b: np.ndarray,
        ref: np.ndarray,
        settings: EvalSettings,
        prog: Any,
    ) -> None:
        self.fake, self.real, self.a, self.b, self.ref = fake, real, a, b, ref
        self.settings = settings
        self.rvr, self.seed, self.n_boot = settings.real_vs_real, settings.seed, settings.n_boot
        self.device, self.batch, self.use_cache, self.prog = settings.device, settings.batch, settings.cache, prog
        self.details: dict[str, Any] = {}
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
            boot = bootstrap_two(
                lambda i, j: fn(fake_f[i], ref_f[j]), len(fake_f), len(ref_f), self.n_boot, rng, np.shape(val)
            )
        if self.rvr:
            fa, fb = real_f[self.a], real_f[self.b]
            rvr = fn(fb, fa)
            rvr_boot = bootstrap_two(lambda i, j: fn(fb[i], fa[j]), len(fb), len(fa), self.n_boot, rng_r, np.shape(rvr))
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


def _memorisation(c: Comparison) -> dict[str, dict]:
    entry, details = c.memorisation()
    c.details["memorisation"] = details
    return {"memorisation": entry}


METRICS: dict[str, Callable[[Comparison], dict[str, dict]]] = {
    "fid_slice": lambda c: c.slice_fid("reference", 1),
    "fid_triplanar": lambda c: c.slice_fid("triplanar", c.settings.slices_per_plane),
    "fd3d": lambda c: {"fd3d": c.fd3d(c.settings.feature_layers, c.settings.feature_grid)},
    "bmmd2": lambda c: {"bmmd2": c.bmmd2(c.settings.mmd_batch)},
    "mmd2_unbiased": lambda c: {"mmd2_unbiased": c.mmd2_unbiased()},
    "ms_ssim": lambda c: {"ms_ssim": c.ms_ssim(c.settings.ms_ssim_pairs)},
    "prdc": lambda c: c.prdc(c.settings.prdc_k, c.settings.feature_layers, c.settings.feature_grid),
    "memorisation": _memorisation,
}
"""Metric name -> the computation of its result entries (``prdc`` gives four, ``fid_triplanar`` four)."""

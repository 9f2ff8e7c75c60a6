"""A small synthetic brain cohort for the metrics tests, and a writer of it as a prepared dataset.

Subjects are the MNI152 T1 template shipped with nilearn (found on disk without importing
nilearn), each with a random smooth deformation, a small affine, a random intensity gamma,
a smooth bias field and noise, resampled to a coarse grid. Deterministic per seed.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from helpers.data import write_prepared

SHAPE = (20, 24, 28)
SPACING = 8.0
N_SUBJECTS = 16


def _template() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("nilearn")
    root = Path(list(spec.submodule_search_locations)[0])
    img = nib.load(str(root / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return data / data.max(), img.affine


def target_affine(shape=SHAPE, spacing=SPACING) -> np.ndarray:
    """RAS affine of the test grid, centred on the brain (world (0, -18, 18) mm)."""
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = np.array([0.0, -18.0, 18.0]) - spacing * (np.asarray(shape) - 1) / 2.0
    return aff


def make_cohort(n: int, seed: int = 0, shape=SHAPE, spacing=SPACING) -> np.ndarray:
    """``[n, 1, *shape]`` float32 brain-like volumes in [0, 1]."""
    tpl, tpl_aff = _template()
    tpl = ndimage.gaussian_filter(tpl, sigma=spacing / 2.5)  # anti-alias before resampling
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"), 0)
    world = np.einsum("ij,j...->i...", target_affine(shape, spacing)[:3, :3], grid)
    world += target_affine(shape, spacing)[:3, 3].reshape(3, 1, 1, 1)
    inv = np.linalg.inv(tpl_aff)
    out = np.empty((n, 1, *shape), dtype=np.float32)
    for s in range(n):
        angle = rng.normal(0, 0.05, 3)
        rx = np.array([[1, 0, 0], [0, np.cos(angle[0]), -np.sin(angle[0])], [0, np.sin(angle[0]), np.cos(angle[0])]])
        rz = np.array([[np.cos(angle[2]), -np.sin(angle[2]), 0], [np.sin(angle[2]), np.cos(angle[2]), 0], [0, 0, 1]])
        lin = rx @ rz @ np.diag(1.0 + rng.normal(0, 0.05, 3))
        disp = (
            np.stack(
                [ndimage.zoom(rng.normal(0, 1, (3, 4, 4)), np.asarray(shape) / (3, 4, 4), order=3) for _ in range(3)]
            )
            * 6.0
        )  # mm, smooth
        src = np.einsum("ij,j...->i...", lin, world) + rng.normal(0, 3.0, 3).reshape(3, 1, 1, 1) + disp
        vox = np.einsum("ij,j...->i...", inv[:3, :3], src) + inv[:3, 3].reshape(3, 1, 1, 1)
        vol = ndimage.map_coordinates(tpl, vox, order=1, mode="constant")
        gamma = np.exp(rng.normal(0, 0.15))
        bias = 1.0 + 0.1 * ndimage.zoom(rng.normal(0, 1, (2, 2, 2)), np.asarray(shape) / 2, order=1)
        vol = np.clip(vol, 0, 1) ** gamma * bias + rng.normal(0, 0.01, shape) * (vol > 0.05)
        out[s, 0] = np.clip(vol, 0.0, 1.0)
    return out


def write_dataset(root: Path, vols: np.ndarray, names: list[str] | None = None, spacing: float = SPACING) -> Path:
    """A prepared dataset directory per docs/formats.md (volumes.npy float16 + manifest.json) with
    every record as ``prepare`` writes it (content hashes, source, original geometry, intensity)."""
    arr = vols.astype(np.float16)
    names = names or [f"sub-{i:03d}.nii.gz" for i in range(len(vols))]
    aff = target_affine(vols.shape[2:], spacing).tolist()
    records = [
        {
            "source": f"/synthetic/{name}",
            "sha256": hashlib.sha256(arr[i].tobytes()).hexdigest(),
            "orig_shape": list(vols.shape[2:]),
            "orig_affine": aff,
            "orig_spacing": [spacing] * 3,
            "target_affine": aff,
            "intensity": {"lo": 0.0, "hi": 1.0},
        }
        for i, name in enumerate(names)
    ]
    intensity = {"lower_pct": 0.5, "upper_pct": 99.5}
    return write_prepared(
        root, arr, spacing=spacing, affine=aff, names=names, records=records, frame="mni", intensity=intensity
    )


def blur(vols: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each volume (``sigma`` in voxels)."""
    return np.stack([ndimage.gaussian_filter(v, sigma=(0, sigma, sigma, sigma)) for v in vols]).astype(np.float32)


def add_noise(vols: np.ndarray, std: float, seed: int = 1) -> np.ndarray:
    """Gaussian noise of ``std``, clipped back to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(vols + rng.normal(0, std, vols.shape), 0.0, 1.0).astype(np.float32)

"""Reading a viewer page back: its embedded data document and volumes (as nibabel images)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from helpers.data import DEMO_AFFINE


def page_data(page: Path) -> dict:
    """The JSON document embedded in ``<script id='sg3d-data'>``."""
    text = page.read_text(encoding="utf-8")
    m = re.search(r"<script type='application/json' id='sg3d-data'>(.*?)</script>", text, re.S)
    assert m, "no data document in the page"
    return json.loads(m.group(1))


def embedded_images(page: Path) -> list[nib.Nifti1Image]:
    """Every embedded volume, decoded exactly as a NIfTI reader sees it."""
    return [nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(v["b64"]))) for v in page_data(page)["volumes"]]


def world(affine: np.ndarray, ijk) -> np.ndarray:
    """World mm of voxel ``ijk`` (nibabel's convention: affine @ [i, j, k, 1])."""
    return (np.asarray(affine) @ np.array([*ijk, 1.0]))[:3]


def voxel(affine: np.ndarray, mm) -> list[int]:
    """Nearest voxel index of world point ``mm``."""
    return [int(v) for v in np.rint(np.linalg.solve(np.asarray(affine), np.array([*mm, 1.0]))[:3])]


def blob(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth bright blob plus a gradient along every axis (every voxel value differs), float32."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    centre = [n / 2 + rng.uniform(-2, 2) for n in shape]
    r2 = sum(((g - c) / (0.3 * n)) ** 2 for g, c, n in zip(grids, centre, shape, strict=True))
    ramp = sum((k + 1) * g / (n * 10.0) for k, (g, n) in enumerate(zip(grids, shape, strict=True)))
    return (np.exp(-r2) + ramp).astype(np.float32)


# A 4 mm grid stored with flipped and permuted voxel axes (voxel i runs superior->inferior, j
# left->right, k posterior->anterior): NiiVue must reorient it, and its readout must still give
# the file's own voxel index and the world position nibabel gives.
ODD_AFFINE = np.array(
    [
        [0.0, 4.0, 0.0, -60.0],
        [0.0, 0.0, 4.0, -90.0],
        [-4.0, 0.0, 0.0, 70.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
PLAIN_AFFINE = DEMO_AFFINE
"""The demo grid's world frame (plain RAS axes, 8 mm)."""

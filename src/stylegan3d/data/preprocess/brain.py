"""Step 2: brain extraction with deepbet (Fisch et al., 2024), on the CPU.

deepbet's own code does the work (:class:`deepbet.bet.BrainExtraction`: a bounding-box network on
a 128^3 copy, then its LinkNet3d on the box resized to 256^3 — the sizes its network needs —, the
largest connected component, holes filled). Both networks ship inside the deepbet wheel; nothing is
downloaded. Input: a RAS-oriented volume, as deepbet expects (``nibabel.as_closest_canonical``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
import warnings
from typing import Any

import numpy as np

from stylegan3d.data.preprocess import PreprocessError
from stylegan3d.errors import UserError
from stylegan3d.util import one_line

MASK_LITRES = (0.5, 3.0)
"""Brain-mask volumes (litres) outside this range are a failed extraction (adult brains: ~1.0-1.8 L)."""


@functools.lru_cache(maxsize=1)
def _extractor() -> Any:
    """deepbet's BrainExtraction on the CPU (loads its two TorchScript networks once per process)."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            from deepbet.bet import BrainExtraction

            return BrainExtraction(no_gpu=True)
    except ImportError as e:
        raise UserError(f"brain extraction needs deepbet: pip install 'stylegan3d[metrics]' ({e})") from None


def extract_brain(data: np.ndarray, affine: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, dict[str, Any]]:
    """Brain mask of a RAS-oriented T1 volume ``data [X, Y, Z]`` (voxel-to-RAS-mm ``affine``).

    Returns a bool mask ``[X, Y, Z]`` on the same grid and ``info`` with ``seconds`` and
    ``volume_cm3``. Raises :class:`PreprocessError` (step ``brain``) when no brain is found or its
    volume lies outside :data:`MASK_LITRES`.
    """
    import torch

    t0 = time.perf_counter()
    bet = _extractor()
    x = np.nan_to_num(np.asarray(data, dtype=np.float32))
    if min(x.shape) < 8:
        raise PreprocessError("brain", f"volume {list(x.shape)} is too small for brain extraction")
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob = bet.run_model(x.copy())
            mask = bet.postprocess(prob > threshold)
    except (AssertionError, ValueError, IndexError) as e:  # deepbet asserts / empty arg-max when nothing is found
        raise PreprocessError("brain", f"no brain found ({one_line(e) or type(e).__name__})") from None
    mask = np.asarray(mask, dtype=bool)
    voxel_cm3 = abs(float(np.linalg.det(np.asarray(affine)[:3, :3]))) / 1000.0
    volume = float(mask.sum()) * voxel_cm3
    lo, hi = MASK_LITRES
    if not lo * 1000 <= volume <= hi * 1000:
        why = "empty brain mask" if volume == 0 else f"brain mask of {volume:.0f} cm3 is outside {lo:g}-{hi:g} L"
        raise PreprocessError("brain", why)
    return mask, {"seconds": time.perf_counter() - t0, "volume_cm3": volume}

"""How much of the slice-FID gap is global intensity, how much is shape (issue 18)?

    .venv/bin/python runs/intensity.py src/stylegan3d/models/demo-8mm.safetensors [PRIOR [PSI]]

The metrics' protocol (64 generated, seeds 1000-1063, const noise, against half A of the 128
held-out subjects; real vs real = half B vs A), twice: on the volumes as they are, and after each
volume's foreground (> 0.1) is histogram-matched to the pooled foreground of all 128 held-out
subjects, which removes every difference of brightness and contrast between volumes and keeps
where each tissue is. If the generated/real ratio of slice or tri-planar FID falls to about 1
after matching, the gap is intensity; if it stays, it is anatomy.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from diversity import HELDOUT, SEEDS

from stylegan3d.infer.api import load
from stylegan3d.metrics.evaluate import EvalSettings, evaluate

FG = 0.1


def match_foreground(vols: np.ndarray, ref_sorted: np.ndarray) -> np.ndarray:
    """Each volume's foreground voxels mapped by rank onto the quantiles of ``ref_sorted``."""
    out = vols.copy()
    for v in out:
        fg = v > FG
        ranks = np.argsort(np.argsort(v[fg], kind="stable"), kind="stable")
        q = (ranks + 0.5) / ranks.size
        v[fg] = np.quantile(ref_sorted, q, method="linear")
    return out


def fids(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    doc = evaluate(fake, real, EvalSettings(metrics=["fid_slice", "fid_triplanar"], n_boot=0, cache=False))
    out = {}
    for k in ("fid_slice", "fid_triplanar"):
        e = doc["metrics"][k]
        out[k], out[f"{k} real vs real"] = round(e["value"], 1), round(e["real_vs_real"]["value"], 1)
    return out


def main(ckpt: str, prior: str | None = None, psi: float = 1.0) -> None:
    model = load(ckpt)
    if prior:
        model.set_prior(prior)
    fake = np.asarray(model.generate(SEEDS, trunc=psi, noise_mode="const", batch=8)).astype(np.float32)
    real = np.load(HELDOUT).astype(np.float32)
    ref = np.sort(real[real > FG])
    res = {"raw": fids(fake, real), "matched": fids(match_foreground(fake, ref), match_foreground(real, ref))}
    for r in res.values():
        r["slice ratio"] = round(r["fid_slice"] / r["fid_slice real vs real"], 2)
        r["tri ratio"] = round(r["fid_triplanar"] / r["fid_triplanar real vs real"], 2)
    print(json.dumps({"ckpt": ckpt, "prior": prior, "psi": psi, **res}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None, float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)

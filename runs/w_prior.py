"""Is it the mapping or the synthesis that lacks variety? (issue 18, variety study, stop 29)

    .venv/bin/python runs/w_prior.py NAME CKPT [N_PROJECT | mapped]

Projects N training subjects (default 64) into W (one w per subject, the model's constant noise
maps, 300 steps; the library's batched projector), fits a Gaussian to their w, and draws 128 volumes from it for 8
seed sets (the same protocol as runs/variety.py: 128 generated against half A of the held-out
subjects, prdc + fd3d). If these cover the held-out subjects far better than the mapping's own
samples, the synthesis network can make the cohort's variety and the mapping's W distribution is
what is narrow; if not, the synthesis (or what D taught it) is. It also compares the spread of the
projected w with that of mapped w along the principal axes of the mapped w.
``mapped`` is the control: a Gaussian with the mean and covariance of 20,000 mapped w (is it the
fitted spread, or only the Gaussian shape, that changes the samples?).
JSON in runs/eval/NAME/w-prior/ (the projected w of the first run are cached there).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from stylegan3d.infer.api import Model
from stylegan3d.infer.projector import ProjectorConfig, project_volumes
from stylegan3d.metrics.evaluate import EvalSettings, evaluate
from stylegan3d.metrics.volumes import VolumeSet

HERE = Path(__file__).resolve().parent
KEYS = ("recall", "precision", "density", "coverage", "fd3d")


def participation_ratio(cov: np.ndarray) -> float:
    ev = np.clip(np.linalg.eigvalsh(cov), 0, None)
    return float(ev.sum() ** 2 / (ev**2).sum())


def project_batch(model: Model, targets: np.ndarray, steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """W projections of ``targets [N, C, D, H, W]`` in [0, 1] with the model's constant noise maps
    (the library's batched projector, as ``stylegan3d fit-prior`` runs it). Returns (w [N, w_dim],
    final MSE per subject)."""
    cfg = ProjectorConfig(space="w", steps=steps, optimize_noise=False, noise_init="const")
    outs = project_volumes(model.G, torch.from_numpy(targets), cfg=cfg, progress=True)
    err = [float(np.mean((o.reconstruction - t) ** 2)) for o, t in zip(outs, targets, strict=True)]
    return np.stack([o.ws[0].numpy() for o in outs]), np.array(err)


def main(name: str, ckpt: str, source: str) -> None:
    out = HERE / "eval" / name / "w-prior"
    out.mkdir(parents=True, exist_ok=True)
    model = Model.from_checkpoint(ckpt)
    G = model.G
    with torch.no_grad():
        z = torch.randn(20000, G.z_dim, generator=torch.Generator().manual_seed(0))
        w_map = G.mapping(z, None)[:, 0].numpy().astype(np.float64)
    if source == "mapped":  # the control: a Gaussian with the mapping's own mean and covariance
        ws, mse = w_map, np.zeros(1)
    else:
        cache = out / f"projected-{source}.npz"
        if cache.is_file():
            with np.load(cache) as f:
                ws, mse = f["ws"], f["mse"]
        else:
            train = np.load(HERE / "ds8mm-train" / "volumes.npy", mmap_mode="r")
            ws, mse = project_batch(model, np.asarray(train[: int(source)], dtype=np.float32))
            np.savez(cache, ws=ws, mse=mse)
    mu, cov, cov_map = ws.mean(0), np.cov(ws, rowvar=False), np.cov(w_map, rowvar=False)
    ev, vec = np.linalg.eigh(cov_map)
    order = np.argsort(ev)[::-1]
    ev, vec = ev[order], vec[:, order]
    proj_sd = (ws - mu) @ vec
    summary = {
        "source": source,
        "checkpoint": ckpt,
        "projection_mse_mean": float(mse.mean()),
        "mean_offset_over_mapped_spread": float(np.linalg.norm(mu - w_map.mean(0)) / np.sqrt(ev.sum())),
        "participation_ratio": {
            "mapped": participation_ratio(cov_map),
            "fitted": participation_ratio(cov),
        },
        "sd_ratio_fitted_over_mapped_on_mapped_axes": (proj_sd.std(0, ddof=1) / np.sqrt(ev)).round(3).tolist(),
        "total_variance_ratio": float(np.trace(cov) / ev.sum()),
        "sets": [],
    }
    L = np.linalg.cholesky(cov + 1e-6 * np.eye(len(mu)))
    for s in range(2, 10):
        g = np.random.default_rng(s * 1000)
        w = mu + g.standard_normal((128, len(mu))) @ L.T
        ws_all = np.repeat(w[:, None, :], model.num_ws, axis=1).astype(np.float32)
        vols = VolumeSet(model.synthesize(ws_all, "const", batch=16), source="w-prior")
        settings = EvalSettings(metrics="prdc,fd3d", n=128, n_boot=0, real_vs_real=False)
        row = {k: v["value"] for k, v in evaluate(vols, str(HERE / "ds8mm-heldout"), settings)["metrics"].items()}
        if s == 2:  # memorisation against the 336 training subjects (64 generated, as runs/evaluate.sh)
            settings = EvalSettings(metrics="memorisation", n=64, n_boot=0, real_vs_real=False)
            mem = evaluate(vols, str(HERE / "ds8mm-train"), settings)["metrics"]
            summary["memorisation_train_64"] = next(iter(mem.values()))["value"]
        summary["sets"].append(row)
        print(s, row, flush=True)
    for k in KEYS:
        v = np.array([r[k] for r in summary["sets"]])
        summary[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1))}
    (out / f"summary-{source}.json").write_text(json.dumps(summary, indent=1))
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("sets", "sd_ratio_fitted_over_mapped_on_mapped_axes")},
            indent=1,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "64")

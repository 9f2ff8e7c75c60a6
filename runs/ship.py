"""Ship a run's G_ema in the package and make the README's pictures with it (issue 18).

.venv/bin/python runs/ship.py demo-8mm          # -> src/stylegan3d/models/demo-8mm.{safetensors,json}
.venv/bin/python runs/ship.py demo-8mm CKPT     # a chosen checkpoint of the run instead of its latest
.venv/bin/python runs/ship.py demo-8mm --pictures   # only draw docs/images/shipped-*.png of the shipped model
.venv/bin/python runs/ship.py demo-8mm-cifar CKPT --as demo-8mm   # ship run demo-8mm-cifar as model demo-8mm
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DESCRIPTION = {
    "demo-8mm": "8 mm brains (20x24x28), trained on 336 synthetic MNI152-derived subjects; docs/quality.md",
}


def ship(run: str, ckpt: Path | None = None, name: str | None = None) -> Path:
    """Save run ``run``'s G_ema (latest checkpoint, or ``ckpt``) as shipped model ``name`` (default: the run name)."""
    from stylegan3d.checkpoint import load_generator, save_model
    from stylegan3d.models import MODELS_DIR

    name = name or run
    G, found = load_generator(ckpt or HERE / run)
    meta = found.meta
    extra = {
        "kimg": meta.kimg,
        "step": meta.step,
        "dataset": meta.dataset,
        "description": DESCRIPTION[name],
        "trained_from": {
            "checkpoint_sha256": found.sha256,
            "run": f"runs/{run}",
            "file": found.path.name,
            "metrics": meta.metrics,
        },
    }
    return save_model(MODELS_DIR / f"{name}.safetensors", G, meta.config, extra)


def pictures(name: str) -> None:
    """Samples (mapping and shipped W prior), mixing grid and projections of the shipped model, made by the CLI."""
    import nibabel  # noqa: F401  (fail early without the environment)

    tmp = HERE / f"pictures-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    cli = [sys.executable, "-m", "stylegan3d"]
    held_out = HERE / "cohort4mm-heldout" / "sub-400.nii.gz"
    t1 = Path(sys.prefix) / "share" / "pycortex" / "db" / "S1" / "anatomicals" / "raw.nii.gz"
    steps = ["--steps", "1000"]
    gen3 = str(tmp / "gen" / "seed0003.nii.gz")
    jobs = [
        ["generate", "--model", name, "--seeds", "0-7", "--out", str(tmp / "gen")],
        ["generate", "--model", name, "--prior", name, "--seeds", "0-7", "--out", str(tmp / "gen-prior")],
        ["mix", "--model", name, "--rows", "10,11,12", "--cols", "20,21,22", "--out", str(tmp / "mix")],
        ["project", "--model", name, "--target", gen3, *steps, "--out", str(tmp / "proj-gen")],
        ["project", "--model", name, "--target", str(held_out), *steps, "--out", str(tmp / "proj-heldout")],
        ["project", "--model", name, "--target", str(t1), "--preprocess", "t1", *steps, "--out", str(tmp / "proj-t1")],
    ]
    for argv in jobs:
        print("$ stylegan3d", " ".join(argv), flush=True)
        subprocess.run(cli + argv, check=True)
    images = ROOT / "docs" / "images"
    for src, dst in [
        (tmp / "gen" / "contact_sheet.png", f"shipped-{name}-samples.png"),
        (tmp / "gen-prior" / "contact_sheet.png", f"shipped-{name}-samples-prior.png"),
        (next((tmp / "mix").glob("*.png")), f"shipped-{name}-mixing.png"),
        (tmp / "proj-gen" / "compare.png", f"shipped-{name}-projection-generated.png"),
        (tmp / "proj-heldout" / "compare.png", f"shipped-{name}-projection-heldout.png"),
        (tmp / "proj-t1" / "compare.png", f"shipped-{name}-projection-real-t1.png"),
    ]:
        shutil.copyfile(src, images / dst)
        print("wrote", images / dst)
    for d in ("proj-gen", "proj-heldout", "proj-t1"):
        print(d, (tmp / d / "metrics.json").read_text())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Ship a run's G_ema as a package model, or draw its pictures.")
    ap.add_argument("run", help="run folder under runs/")
    ap.add_argument("ckpt", nargs="?", type=Path, help="checkpoint to ship (default: the run's latest)")
    ap.add_argument("--as", dest="name", help="shipped model name (default: the run name)")
    ap.add_argument("--pictures", action="store_true", help="draw the shipped model's pictures instead of shipping")
    args = ap.parse_args()
    if args.pictures:
        pictures(args.name or args.run)
    else:
        print("shipped", ship(args.run, args.ckpt, args.name))

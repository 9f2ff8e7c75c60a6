"""A tour of the Python API on a trained checkpoint (no subprocess, no notebook).

    python examples/api_tour.py demo-out/run --out api-tour

Loads the model, generates volumes for three seeds, projects one of them back into W+,
mixes the coarse styles of two seeds into a third and writes everything as NIfTI + PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import stylegan3d
from stylegan3d.viz import save_contact_sheet


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", type=Path, help="run directory or .safetensors checkpoint")
    parser.add_argument("--out", type=Path, default=Path("api-tour"))
    parser.add_argument("--steps", type=int, default=100, help="projection steps")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = stylegan3d.load(args.ckpt)  # G_ema + geometry from the checkpoint sidecar
    print(f"model: {model.config.name}, {model.num_ws} style layers, {model.geometry.note}")

    vols = model.generate([0, 1, 2], trunc=0.8)  # [3, C, D, H, W] in [0, 1]
    for seed, vol in zip([0, 1, 2], vols, strict=True):
        model.save_nifti(vol, args.out / f"seed{seed}.nii.gz")
    save_contact_sheet(args.out / "generated.png", list(vols[:, 0]), ncols=3, spacing=model.geometry.spacing)

    result = model.project(vols[0, 0], space="w+", steps=args.steps)  # a volume the model can make
    result.save(args.out / "projection")
    print("projection of seed 0:", {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)})

    coarse = list(range(model.num_ws // 2))
    mixed = model.mix(model.latents([2]), model.latents([0, 1]), coarse)  # [1, 2, C, D, H, W]
    for k, vol in enumerate(mixed[0]):
        model.save_nifti(vol, args.out / f"mix-row2-col{k}.nii.gz")
    finite = bool(np.isfinite(mixed).all())
    return {"generated": vols.shape, "projection": result.metrics, "mixed": mixed.shape, "finite": finite}


if __name__ == "__main__":
    main()

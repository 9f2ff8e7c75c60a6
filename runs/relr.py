"""Give a training checkpoint's mapping network another learning-rate multiplier, keeping the
function it computes (issue 18, variety study):

    .venv/bin/python runs/relr.py CKPT 0.1 RUN    # -> RUN/checkpoints/ckpt-<step>.safetensors + RUN/latest

An equalised-lr layer stores its weight as N(0, 1) / lr_mul and multiplies by lr_mul / sqrt(fan_in)
at run time (bias: by lr_mul), so Adam's steps of about lr in parameter units move the run-time
weight lr_mul times as far. Going from ``old`` to ``new``: parameters x old/new (run-time weights
unchanged), Adam's first moment x new/old and second moment x (new/old)^2 (the gradient with respect
to the stored parameter scales by new/old). The script checks that old and new map z to the same w.
After 306 kimg (38k steps) at lr_mul 0.01 the 8-layer mapping's weights were 0.7-1.7 % away from
their initial values (synthesis affines: 84 %): the mapping had hardly trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from stylegan3d.checkpoint import (
    Sidecar,
    load_generator,
    load_tensors,
    resolve_checkpoint,
    save_checkpoint,
)
from stylegan3d.nn import Generator


def main(src: str, new_mul: float, run: str) -> None:
    found = resolve_checkpoint(src)
    tensors = load_tensors(found.path)
    old_mul = found.config.model.g.mapping_lr_mul
    r = old_mul / new_mul
    names = [n for n, _ in Generator(found.config.model).named_parameters()]  # opt_G's parameter order
    for i, n in enumerate(names):
        if not n.startswith("mapping."):
            continue
        for net in ("G", "G_ema"):
            tensors[f"{net}.{n}"] = tensors[f"{net}.{n}"] * r
        tensors[f"opt_G.{i}.exp_avg"] = tensors[f"opt_G.{i}.exp_avg"] / r
        tensors[f"opt_G.{i}.exp_avg_sq"] = tensors[f"opt_G.{i}.exp_avg_sq"] / r**2
    meta = Sidecar.from_dict(found.meta.to_dict())
    meta.config["model"]["g"]["mapping_lr_mul"] = new_mul
    meta.extra["relr_from"] = {"checkpoint": str(found.path), "mapping_lr_mul": old_mul}
    for k in Sidecar._WRITTEN:
        setattr(meta, k, None)
    out = save_checkpoint(Path(run), found.meta.step, tensors, meta, keep=2)
    z = torch.randn(256, found.config.model.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w_old = load_generator(found.path)[0].mapping(z, None)
        w_new = load_generator(out)[0].mapping(z, None)
    err = (w_old - w_new).abs().max().item()
    print(f"wrote {out}: mapping lr_mul {old_mul} -> {new_mul}, max |w_old - w_new| = {err:.2e}")
    if err > 1e-4:
        raise SystemExit("error: the re-parametrised mapping computes another function")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])

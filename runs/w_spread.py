"""How many directions does the generator's W vary along (issue 18)?

    .venv/bin/python runs/w_spread.py CKPT      # a training checkpoint (raw G and G_ema) or a model

20,000 z ~ N(0, I) through the mapping network; eigenvalues of the covariance of w, their total
(the spread of W), the share of the top 5, and the participation ratio (sum e)^2 / sum e^2: the
effective number of directions W varies along (w_dim if all were equal). A freshly initialised
mapping (seed 0) is the baseline: a deep leaky-ReLU MLP starts out low-rank.

Also how far training moved the run-time weights (stored weight x its equalised-lr gain) of the
mapping and of the synthesis' style affines from the run's own initial values (the trainer seeds
train.seed before building G, so they can be rebuilt; the run-time initial weights do not depend on
lr_mul, so this holds across `runs/relr.py`): |w - w0| / |w0| per layer.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from stylegan3d.checkpoint import load_generator, load_module, load_tensors
from stylegan3d.nn import Generator


def spread(g: torch.nn.Module, z: torch.Tensor) -> str:
    """One line: total variance, top-5 share, participation ratio and leading eigenvalues of W."""
    with torch.no_grad():
        w = g.mapping(z, None)
    w = w[:, 0] if w.ndim == 3 else w
    e = np.sort(np.linalg.eigvalsh(np.cov(w.double().numpy().T)))[::-1]
    ratio = e.sum() ** 2 / (e**2).sum()
    return (
        f"total variance {e.sum():8.4f}  top-5 share {e[:5].sum() / e.sum():.2f}  "
        f"participation ratio {ratio:5.1f} of {len(e)}  leading {np.round(e[:6], 3)}"
    )


def drift(g: torch.nn.Module, init: torch.nn.Module) -> str:
    """Relative change of the run-time weights of the mapping layers and the style affines."""
    start = dict(init.named_modules())
    moved: dict[str, list[float]] = {"mapping": [], "affines": []}
    for name, m in g.named_modules():
        if not hasattr(m, "weight_gain") or not (name.startswith("mapping.") or name.endswith(".affine")):
            continue
        w, w0 = m.weight * m.weight_gain, start[name].weight * start[name].weight_gain
        moved["mapping" if name.startswith("mapping.") else "affines"].append(float((w - w0).norm() / w0.norm()))
    return "  ".join(f"{k} moved {100 * min(v):.1f}-{100 * max(v):.1f} % from init" for k, v in moved.items())


def main(path: str) -> None:
    torch.manual_seed(0)
    ema, found = load_generator(path)
    init = Generator(found.config.model).eval()
    z = torch.randn(20000, found.config.model.z_dim)
    print(f"{'init':>6}  {spread(init, z)}")
    tensors = load_tensors(found.path)
    if any(k.startswith("G.") for k in tensors):
        raw = Generator(found.config.model).eval()
        load_module(raw, tensors, "G", found.path)
        print(f"{'raw G':>6}  {spread(raw, z)}")
        torch.manual_seed(found.config.train.seed)  # as the trainer does before building G
        with torch.no_grad():
            print(f"{'':>6}  {drift(raw, Generator(found.config.model))}")
    print(f"{'G_ema':>6}  {spread(ema, z)}  (kimg {found.meta.kimg})")


if __name__ == "__main__":
    main(sys.argv[1])

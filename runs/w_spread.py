"""How many directions does the generator's W vary along (issue 18)?

    .venv/bin/python runs/w_spread.py CKPT      # a training checkpoint (raw G and G_ema) or a model

20,000 z ~ N(0, I) through the mapping network; eigenvalues of the covariance of w, their total
(the spread of W), the share of the top 5, and the participation ratio (sum e)^2 / sum e^2: the
effective number of directions W varies along (w_dim if all were equal). A freshly initialised
mapping (seed 0) is the baseline: a deep leaky-ReLU MLP starts out low-rank.
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
    print(f"{'G_ema':>6}  {spread(ema, z)}  (kimg {found.meta.kimg})")


if __name__ == "__main__":
    main(sys.argv[1])

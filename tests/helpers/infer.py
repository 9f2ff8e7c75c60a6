"""Helpers shared by the inference tests: tiny demo generators and their dataset geometry."""

from __future__ import annotations

import numpy as np
import torch

from helpers.data import DEMO_AFFINE
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.nn import Generator

OVERRIDES = ["width=8"]
DATASET_AFFINE = DEMO_AFFINE


def make_generator(seed: int = 0, noise_strength: float = 0.1, overrides: list[str] | None = None):
    cfg = apply_overrides(load_preset("demo"), overrides or OVERRIDES)
    torch.manual_seed(seed)
    G = Generator(cfg.model).eval()
    with torch.no_grad():
        for layer in G.synthesis.layers:
            layer.noise_strength.fill_(noise_strength)
        z = torch.from_numpy(np.random.RandomState(99).randn(2000, cfg.model.z_dim)).float()
        c = None
        if cfg.model.c_dim:
            c = torch.nn.functional.one_hot(torch.arange(2000) % cfg.model.c_dim, cfg.model.c_dim).float()
        G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))
    return G, cfg


def dataset_dict(cfg) -> dict:
    return {
        "manifest_sha256": "0" * 64,
        "shape": list(cfg.model.resolution),
        "spacing": [8.0, 8.0, 8.0],
        "affine": DATASET_AFFINE.tolist(),
        "channels": 1,
        "frame": "mni",
    }

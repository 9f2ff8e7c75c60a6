"""The tiny network settings of the training, study and CLI tests."""

from __future__ import annotations


def set_args(overrides: list[str]) -> list[str]:
    """``--set`` options of the CLI for config ``overrides`` (``["--set", "width=8", ...]``)."""
    return [a for o in overrides for a in ("--set", o)]


TINY_OVERRIDES = [
    "resolution=[10,12,14]",
    "width=8",
    "z_dim=8",
    "g.mapping_layers=2",
    "train.batch=4",
    "train.tick_kimg=0.008",
    "train.snap_ticks=1",
    "train.ema_kimg=0.01",
    "train.r1_interval=4",
    "train.pl_interval=2",
    "train.aug=ada",
    "train.ada_kimg=0.1",
    "train.ada_interval=1",
    "train.precision=fp32",
]
"""The demo preset shrunk to a 10x12x14 network of width 8 (fits :data:`helpers.data.TINY_SHAPE`)."""
TINY_ARGS = ["--preset", "demo", *set_args(TINY_OVERRIDES)]
""":data:`TINY_OVERRIDES` as command-line options."""
MODEL_OVERRIDES = ["width=4", "z_dim=4", "g.mapping_layers=1"]
"""The demo preset (20x24x28) shrunk to width 4, for model files."""

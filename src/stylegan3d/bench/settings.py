"""What ``stylegan3d bench`` measures: presets, variants of the speed options, parts, repeats."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stylegan3d.errors import UserError

SCHEMA = "stylegan3d-bench/1"
DEFAULT_PARTS = ("g_forward", "train_step", "projection", "loader")
PARTS = (*DEFAULT_PARTS, "kernels")
COMPARE_AXES = {
    "precision": ("fp32", "bf16"),
    "fused": ("fused", "nonfused"),
    "channels_last": ("off", "on"),
    "compile": (False, True),
    "checkpointing": (False, True),
}


@dataclass(frozen=True)
class Variant:
    """One combination of the speed options."""

    precision: str = "auto"
    """``fp32``, ``bf16``, ``fp16`` (CUDA) or ``auto`` (as training picks it)."""
    fused: str = "auto"
    """Modulated conv form: ``fused`` (grouped conv), ``nonfused`` (scale-conv-scale) or ``auto``."""
    channels_last: str = "auto"
    """``on``/``off`` channels_last_3d, or ``auto`` (as training picks it: on with bf16/fp16)."""
    compile: bool = False
    """``torch.compile`` of G.synthesis and D (regularisation passes run eagerly: no double backward)."""
    checkpointing: bool = False
    """Activation checkpointing of synthesis layers and D blocks (``train.checkpointing=true``)."""


@dataclass
class BenchSettings:
    """What to measure and how often."""

    presets: list[str] = field(default_factory=lambda: ["demo"])
    overrides: list[str] = field(default_factory=list)
    batch: int = 2
    device: str = "auto"
    variants: list[Variant] = field(default_factory=lambda: [Variant()])
    parts: list[str] = field(default_factory=lambda: list(DEFAULT_PARTS))
    repeats: int = 3
    warmup: int = 1
    peak_voxels: int = 1 << 18
    """Cap on batch x voxels of the dense peak conv (its spatial size is halved until it fits)."""
    data: Path | None = None
    """Prepared dataset for the loader measurement (default: a temporary one of random volumes)."""
    loader_batches: int = 8
    threads: int | None = None
    """``torch.set_num_threads`` for the run (None: torch's default, one per core)."""

    def validate(self) -> BenchSettings:
        if not self.presets:
            raise UserError("give at least one --preset")
        if self.batch < 1:
            raise UserError("--batch must be >= 1")
        if self.repeats < 1:
            raise UserError("--repeats must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise UserError("--threads must be >= 1")
        if self.warmup < 1:
            raise UserError("--warmup must be >= 1 (the first call counts FLOPs and is never timed)")
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise UserError(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
        for v in self.variants:
            if v.precision not in ("auto", "fp32", "bf16", "fp16"):
                raise UserError(f"precision must be auto, fp32, bf16 or fp16, got {v.precision!r}")
            if v.fused not in ("auto", "fused", "nonfused"):
                raise UserError(f"fused must be auto, fused or nonfused, got {v.fused!r}")
            if v.channels_last not in ("auto", "on", "off"):
                raise UserError(f"channels-last must be auto, on or off, got {v.channels_last!r}")
            if v.compile and not hasattr(torch.compiler, "set_stance"):
                raise UserError("--compile needs torch >= 2.6 (torch.compiler.set_stance)")
        if self.data is not None and not (Path(self.data) / "manifest.json").is_file():
            raise UserError(f"--data {self.data} is not a prepared dataset (no manifest.json)")
        return self


def expand_variants(base: Variant, compare: list[str]) -> list[Variant]:
    """All variants obtained from ``base`` by sweeping each axis named in ``compare`` over two values."""
    unknown = [a for a in compare if a not in COMPARE_AXES]
    if unknown:
        raise UserError(f"cannot compare {unknown}; choose from {', '.join(COMPARE_AXES)}")
    out = [base]
    for axis in dict.fromkeys(compare):
        out = [dataclasses.replace(v, **{axis: value}) for v in out for value in COMPARE_AXES[axis]]
    return out


def variant_overrides(v: Variant, batch: int) -> list[str]:
    """Config overrides that realise a variant in the training config (channels-last and compile are
    applied to the built networks by :func:`build_trainer`)."""
    out = [
        f"train.batch={batch}",
        f"train.precision={v.precision}",
        f"train.checkpointing={str(v.checkpointing).lower()}",
    ]
    if v.fused != "auto":
        out.append(f"g.fused_modconv={v.fused}")
    return out

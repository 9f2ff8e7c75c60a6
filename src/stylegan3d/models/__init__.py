"""Trained generators shipped inside the package: ``NAME.safetensors`` + ``NAME.json`` here.

A shipped model is an ordinary generator-only model file (``G_ema.*`` tensors and the JSON
sidecar that :func:`stylegan3d.checkpoint.save_model` writes), loaded by the same safe
path as any checkpoint (safetensors, no pickle). Wherever a checkpoint path is accepted
(``--ckpt``/``--model``, ``stylegan3d info``, :func:`stylegan3d.infer.api.load`) a shipped
model's bare name works too, e.g. ``stylegan3d generate --model demo-8mm --seeds 0-7``.
How each was trained and how it measures: docs/quality.md.
"""

from __future__ import annotations

from pathlib import Path

from stylegan3d.errors import CheckpointError

MODELS_DIR = Path(__file__).resolve().parent


def list_models() -> list[str]:
    """Names of the shipped models (sorted)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def is_model_name(text: str | Path) -> bool:
    """Whether ``text`` looks like a bare model name (no folder part, no file suffix)."""
    s = str(text)
    return bool(s) and "/" not in s and "\\" not in s and Path(s).suffix not in (".safetensors", ".json")


def model_path(name: str) -> Path:
    """The ``.safetensors`` file of shipped model ``name``; a CheckpointError lists the names otherwise."""
    if is_model_name(name):
        path = MODELS_DIR / f"{name}.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    names = ", ".join(list_models()) or "none"
    raise CheckpointError(
        f"checkpoint not found: no file and no shipped model named {str(name)!r}; shipped models: {names}"
    )


def resolve_model_or_path(path: str | Path) -> Path:
    """``path`` itself when it exists or names a file; else the shipped model of that name."""
    p = Path(path)
    if p.exists() or not is_model_name(path):
        return p
    return model_path(str(path))

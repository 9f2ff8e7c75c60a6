"""Trained generators shipped inside the package: ``NAME.safetensors`` + ``NAME.json`` here.

A shipped model is an ordinary generator-only model file (``G_ema.*`` tensors and the JSON
sidecar that :func:`stylegan3d.checkpoint.save_model` writes), loaded by the same safe
path as any checkpoint (safetensors, no pickle). Wherever a checkpoint path is accepted
(``--ckpt``/``--model``, ``stylegan3d info``, :func:`stylegan3d.infer.api.load`) a shipped
model's bare name works too, e.g. ``stylegan3d generate --model demo-8mm --seeds 0-7``.
A model may ship a fitted W prior beside it, ``NAME.prior.safetensors``
(:mod:`stylegan3d.infer.prior`): ``stylegan3d generate --model NAME --prior NAME``.
How each was trained and how it measures: docs/quality.md.
"""

from __future__ import annotations

from pathlib import Path

from stylegan3d.errors import CheckpointError, UserError

MODELS_DIR = Path(__file__).resolve().parent
PRIOR_SUFFIX = ".prior.safetensors"


def list_models() -> list[str]:
    """Names of the shipped models (sorted)."""
    files = MODELS_DIR.glob("*.safetensors")
    return sorted(p.stem for p in files if p.with_suffix(".json").is_file() and not p.name.endswith(PRIOR_SUFFIX))


def list_priors() -> list[str]:
    """Names of the shipped models that ship a fitted W prior (sorted)."""
    return sorted(p.name[: -len(PRIOR_SUFFIX)] for p in MODELS_DIR.glob(f"*{PRIOR_SUFFIX}"))


def resolve_prior(spec: str | Path) -> Path:
    """A W prior file: ``spec`` itself when it exists or names a file, else the prior shipped with model ``spec``."""
    p = Path(spec)
    if p.exists() or not is_model_name(spec):
        if not p.is_file():
            raise UserError(f"W prior not found: {spec}")
        return p
    path = MODELS_DIR / f"{spec}{PRIOR_SUFFIX}"
    if not path.is_file():
        names = ", ".join(list_priors()) or "none"
        raise UserError(f"W prior not found: no file and no shipped prior named {str(spec)!r}; shipped priors: {names}")
    return path


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

"""Checkpoints: ``safetensors`` tensors + a JSON sidecar. No pickle anywhere.

Layout of a run directory::

    RUN/checkpoints/ckpt-00001234.safetensors   tensors: G.*, D.*, G_ema.*, opt_G.*, opt_D.*, rng.*
    RUN/checkpoints/ckpt-00001234.json          sidecar: version, config, kimg, step, sha256, dataset, state
    RUN/latest                                  name of the newest complete checkpoint (written last)

A model file (e.g. from ``import-tf``) has the same format with only ``G_ema.*`` tensors.
Loading never executes code: tensors come from safetensors, everything else from JSON; the
sidecar's SHA-256 detects truncated or tampered files.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylegan3d.errors import CheckpointError
from stylegan3d.fileio import atomic_path, atomic_write_json, atomic_write_text, sha256_file

FORMAT = "stylegan3d-checkpoint"
FORMAT_VERSION = 1
CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2, zip (torch.save)


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's persistent state as ``{prefix.name: tensor}`` (contiguous CPU copies)."""
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path | str = "") -> None:
    """Load ``prefix.*`` tensors into ``module``; missing/unexpected keys and shape mismatches
    raise :class:`CheckpointError` listing them."""
    own = module.state_dict()
    got = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    bad_shape = sorted(k for k in set(own) & set(got) if tuple(own[k].shape) != tuple(got[k].shape))
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if bad_shape:
            k = bad_shape[0]
            parts.append(
                f"{len(bad_shape)} shape mismatch(es), e.g. {k}: {list(got[k].shape)} vs model {list(own[k].shape)}"
            )
        raise CheckpointError(f"checkpoint {path} does not match the {prefix} network ({'; '.join(parts)})")
    module.load_state_dict(got, strict=True)


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into tensors (per-parameter buffers) and JSON (hyper-parameters)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{pid}.{name}"] = t.detach().cpu().contiguous().clone()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state {prefix} does not match: {e}") from None


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Global RNG states of torch, numpy and python (tensors + JSON parts)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state().clone(),
        "rng.numpy": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "rng.python": torch.tensor(py_state[1], dtype=torch.int64),
    }
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state().clone()
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, gauss_next = meta["python"]
    random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), gauss_next))
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


_saves_in_process = 0


def _fault_kill_in_save() -> None:
    """Fault injection for crash tests: SIGKILL this process inside its N-th checkpoint write
    (after the temporary file is written, before it is renamed) when
    ``STYLEGAN3D_FAULT_KILL_IN_SAVE=N`` is set."""
    global _saves_in_process
    _saves_in_process += 1
    target = os.environ.get("STYLEGAN3D_FAULT_KILL_IN_SAVE")
    if target and int(target) == _saves_in_process:
        os.kill(os.getpid(), signal.SIGKILL)


def save_tensors_file(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Atomically write ``path`` (.safetensors) and its JSON sidecar holding ``meta`` + SHA-256."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        _fault_kill_in_save()
    meta = dict(meta)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, file=path.name, sha256=sha256_file(path))
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(sidecar_path(path), meta)
    return path


def save_checkpoint(run_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 3) -> Path:
    """Write ``RUN/checkpoints/ckpt-<step>.safetensors`` + sidecar, then ``RUN/latest``, then prune
    to the newest ``keep`` checkpoints."""
    ckdir = Path(run_dir) / "checkpoints"
    path = save_tensors_file(ckdir / f"ckpt-{step:08d}.safetensors", tensors, meta)
    atomic_write_text(Path(run_dir) / "latest", f"checkpoints/{path.name}\n")
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
        sidecar_path(old).unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first (by step)."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckdir.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def read_sidecar(path: Path) -> dict:
    """Parse and check the JSON sidecar of a checkpoint file."""
    side = sidecar_path(Path(path))
    if not side.is_file():
        raise CheckpointError(f"checkpoint sidecar missing: {side}")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint sidecar {side} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{side} is not a stylegan3d checkpoint sidecar")
    return meta


def verify_checkpoint(path: Path) -> dict:
    """Check that ``path`` exists, is not a pickle and matches its sidecar's SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(f"{path} looks like a pickle/torch.save file; refusing to load it (use import-tf)")
    meta = read_sidecar(path)
    digest = sha256_file(path)
    if meta.get("sha256") != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt or modified (SHA-256 differs from its sidecar)")
    return meta


def resolve_checkpoint(path: Path | str) -> Path:
    """Turn a run directory, a checkpoint file or its sidecar into a verified checkpoint path.

    For a run directory the ``latest`` pointer is followed; if that file is missing or corrupt,
    older checkpoints are tried newest first (with a warning).
    """
    path = Path(path)
    if path.suffix == ".json" and path.with_suffix(".safetensors").exists():
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        verify_checkpoint(path)
        return path
    candidates = list_checkpoints(path)[::-1]
    latest = path / "latest"
    if latest.is_file():
        target = path / latest.read_text().strip()
        candidates = [target] + [c for c in candidates if c != target]
    if not candidates:
        raise CheckpointError(f"no checkpoint found in {path}")
    errors = []
    for cand in candidates:
        try:
            verify_checkpoint(cand)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"skipped unusable checkpoint(s): {'; '.join(errors)}; using {cand}", stacklevel=2)
        return cand
    raise CheckpointError(f"no valid checkpoint in {path}: {'; '.join(errors)}")


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read all tensors of a verified checkpoint (safetensors only; never unpickles)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot read {path} as safetensors: {e}") from None


def load_generator(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Build the EMA generator stored in a checkpoint/model file (or run directory).

    Returns ``(G_ema in eval mode on device, sidecar dict)``.
    """
    from stylegan3d.config import Config
    from stylegan3d.nn import Generator

    resolved = resolve_checkpoint(path)
    meta = read_sidecar(resolved)
    try:
        cfg = Config.from_dict(meta["config"]).validate()
    except Exception as e:  # noqa: BLE001 - any malformed config is a checkpoint error
        raise CheckpointError(f"checkpoint {resolved} has an invalid config: {e}") from None
    tensors = load_tensors(resolved)
    g = Generator(cfg.model)
    load_module(g, tensors, "G_ema", resolved)
    meta["resolved_path"] = str(resolved)
    return g.eval().requires_grad_(False).to(device), meta


def save_model(path: Path, g: nn.Module, config: dict, extra: dict | None = None) -> Path:
    """Write a generator-only model file (``G_ema.*`` tensors + sidecar)."""
    meta = {"config": config, "kimg": 0, "step": 0, "version": _version()}
    meta.update(extra or {})
    return save_tensors_file(Path(path), module_tensors("G_ema", g), meta)


def _version() -> str:
    from stylegan3d import __version__

    return __version__

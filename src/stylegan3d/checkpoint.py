"""Checkpoints: ``safetensors`` tensors + a JSON sidecar. No pickle anywhere.

Layout of a run directory::

    RUN/checkpoints/ckpt-00001234.safetensors   tensors: G.*, D.*, G_ema.*, opt_G.*, opt_D.*, rng.*
    RUN/checkpoints/ckpt-00001234.json          sidecar: version, config, kimg, step, sha256, dataset, state
    RUN/latest                                  name of the newest complete checkpoint (written last)

A model file (e.g. from ``import-tf``) has the same format with only ``G_ema.*`` tensors.
Loading never executes code: tensors come from safetensors, everything else from JSON; the
sidecar's SHA-256 detects truncated or tampered files.

The sidecar is one :class:`Sidecar` (``to_dict``/``from_dict``; the training state inside it a
:class:`ResumeState`); :func:`resolve_checkpoint` returns one checked :class:`Checkpoint`
(path, sidecar, parsed config), hashed and parsed once.

The module runs to about 590 lines because it is the one owner of the file format: writing,
listing, the safety checks (pickle refusal, SHA-256, header against the config's networks, sidecar
types) and reading must agree on every detail, so they stay side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import time
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from stylegan3d import _faults
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.fileio import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from stylegan3d.util import one_line

if TYPE_CHECKING:
    from stylegan3d.config import Config

FORMAT = "stylegan3d-checkpoint"
FORMAT_VERSION = 1
CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2, zip (torch.save)


@dataclass
class ResumeState:
    """The training state in a checkpoint's sidecar (``state``): counters, data sampler, ADA,
    optimiser hyper-parameters and RNG states (their tensors are in the safetensors file)."""

    cur_nimg: int
    step: int
    tick: int
    sampler: dict[str, Any]
    opt_G: dict[str, Any]
    opt_D: dict[str, Any]
    rng: dict[str, Any]
    bad_steps_total: int = 0
    ada: dict[str, Any] | None = None
    precision: str | None = None
    world_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the key order of every checkpoint written so far)."""
        return {
            "cur_nimg": self.cur_nimg,
            "step": self.step,
            "tick": self.tick,
            "bad_steps_total": self.bad_steps_total,
            "sampler": self.sampler,
            "ada": self.ada,
            "opt_G": self.opt_G,
            "opt_D": self.opt_D,
            "rng": self.rng,
            "precision": self.precision,
            "world_size": self.world_size,
        }

    @classmethod
    def from_dict(cls, d: Any) -> ResumeState:
        """Parse the ``state`` object; a missing or malformed entry raises KeyError/TypeError/ValueError."""
        if not isinstance(d, dict):
            raise TypeError(f"state must be an object, got {type(d).__name__}")
        return cls(
            cur_nimg=int(d["cur_nimg"]),
            step=int(d["step"]),
            tick=int(d["tick"]),
            sampler=d["sampler"],
            opt_G=d["opt_G"],
            opt_D=d["opt_D"],
            rng=d["rng"],
            bad_steps_total=int(d.get("bad_steps_total", 0)),
            ada=d.get("ada"),
            precision=d.get("precision"),
            world_size=d.get("world_size"),
        )


@dataclass
class Sidecar:
    """The JSON sidecar of a checkpoint or model file.

    ``config`` is the run's config as stored (a dict; :class:`Checkpoint` holds it parsed),
    ``dataset`` the training data's geometry and preparation (see :mod:`stylegan3d.infer.geometry`),
    ``metrics`` the last logged training statistics, ``state`` the training state of a full
    checkpoint (:meth:`resume_state`; None in a generator-only model file). ``format``,
    ``format_version``, ``file``, ``sha256`` and ``created`` are filled in when the file is written.
    Any other key (``origin``, ``description``, ``trained_from``, ``tf_import``, ...) is kept in
    ``extra``. The sidecar is not covered by the SHA-256, so values are kept as read and each
    reader checks what it uses; ``to_dict`` writes the same JSON as ever (absent fields are left out).
    """

    config: dict[str, Any]
    version: str | None = None
    kimg: float | None = None
    step: int | None = None
    dataset: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    format: str | None = None
    format_version: int | None = None
    file: str | None = None
    sha256: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _ORDER = ("version", "config", "kimg", "step", "dataset", "metrics", "state")
    _WRITTEN = ("format", "format_version", "file", "sha256", "created")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the fields that are set, then ``extra``, then the file record."""
        out = {k: getattr(self, k) for k in self._ORDER if getattr(self, k) is not None}
        out.update(self.extra)
        out.update({k: getattr(self, k) for k in self._WRITTEN if getattr(self, k) is not None})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sidecar:
        """Split a sidecar's JSON object into the known fields and ``extra`` (values unchecked)."""
        known = set(cls._ORDER) | set(cls._WRITTEN)
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known})

    def resume_state(self) -> ResumeState:
        """The training state (:class:`ResumeState`); KeyError/TypeError/ValueError when missing or malformed."""
        if self.state is None:
            raise KeyError("state")
        return ResumeState.from_dict(self.state)


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint or model file: its ``path`` (``.safetensors``), sidecar ``meta`` and
    parsed ``config`` (see :func:`resolve_checkpoint`)."""

    path: Path
    meta: Sidecar
    config: Config

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the tensors file (checked against the file when it was resolved)."""
        return self.meta.sha256

    def require_network(self, cfg: Config, what: str | None = None, hint: str | None = None) -> None:
        """Raise :class:`CheckpointError` unless ``cfg`` describes this checkpoint's network.

        The one "same network" check (resume, ``train --resume --preset/--set``). The message is one
        sentence: ``what`` (default: the checkpoint was trained with another network config), a colon,
        the differing ``model.*`` fields, then ``hint``.
        """
        from stylegan3d.config import config_diff

        diff = config_diff(self.config.model, cfg.model, "model.")
        if not diff:
            return
        what = what or f"checkpoint {self.path} was trained with another network config ({self.config.name})"
        hint = hint or "resume with the same preset/overrides"
        raise CheckpointError(f"{what}: {describe_diff(diff)}; {hint}")


def describe_diff(diff: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    """``key old -> new`` for the first ``limit`` entries of a :func:`~stylegan3d.config.config_diff`."""
    shown = ", ".join(f"{k} {json.dumps(u)} -> {json.dumps(v)}" for k, u, v in diff[:limit])
    return shown + (f" and {len(diff) - limit} more" if len(diff) > limit else "")


def _safetensors_head(head: bytes) -> bool:
    """Whether the first 9 bytes are a safetensors start: a little-endian u64 header length, then ``{``.

    Needed beside the pickle check: a header length whose low byte is 0x80 (1 file in 256)
    starts with pickle's protocol byte.
    """
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 2**32


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's persistent state as ``{prefix.name: tensor}`` (contiguous CPU copies)."""
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _describe_mismatch(
    own: dict[str, tuple[tuple[int, ...], str]], got: dict[str, tuple[tuple[int, ...], str]]
) -> list[str]:
    """Differences between a network's tensors and a checkpoint's, as ``{name: (shape, dtype)}`` maps."""
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    common = sorted(set(own) & set(got))
    bad_shape = [k for k in common if own[k][0] != got[k][0]]
    bad_dtype = [k for k in common if own[k][0] == got[k][0] and own[k][1] != got[k][1]]
    parts = []
    if missing:
        parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    if bad_shape:
        k = bad_shape[0]
        parts.append(f"{len(bad_shape)} shape mismatch(es), e.g. {k}: {list(got[k][0])} vs model {list(own[k][0])}")
    if bad_dtype:
        k = bad_dtype[0]
        parts.append(f"{len(bad_dtype)} dtype mismatch(es), e.g. {k}: {got[k][1]} vs model {own[k][1]}")
    return parts


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path | str = "") -> None:
    """Load ``prefix.*`` tensors into ``module``; missing/unexpected keys and shape or dtype
    mismatches raise :class:`CheckpointError` listing them (a float tensor stored as an integer
    type would otherwise be converted silently)."""
    own = module.state_dict()
    got = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    parts = _describe_mismatch(
        {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in own.items()},
        {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in got.items()},
    )
    if parts:
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
    """Restore an optimiser from :func:`optimizer_tensors` output; per-parameter buffers must have
    their parameter's shape (or be scalars such as Adam's ``step``), else :class:`CheckpointError`."""
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        pid_text, _, name = key[len(prefix) + 1 :].partition(".")
        if not pid_text.isdigit() or not name or int(pid_text) >= len(params):
            raise CheckpointError(f"optimizer state {prefix}: unexpected tensor {key!r}")
        pid = int(pid_text)
        if value.ndim and tuple(value.shape) != tuple(params[pid].shape):
            raise CheckpointError(
                f"optimizer state {key} has shape {list(value.shape)} but its parameter {list(params[pid].shape)}"
            )
        state.setdefault(pid, {})[name] = value
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, IndexError) as e:
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
    """Restore the RNG states saved by :func:`rng_state`; malformed states raise :class:`CheckpointError`."""
    try:
        torch.set_rng_state(tensors["rng.torch"])
        name, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
        version, gauss_next = meta["python"]
        random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), gauss_next))
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint RNG state is malformed ({type(e).__name__}: {e})") from None


def _os_error(e: Exception) -> OSError:
    """The OSError behind a safetensors I/O failure (its message ends with ``(os error N)``)."""
    m = re.search(r"os error (\d+)", str(e))
    if m:
        code = int(m.group(1))
        return OSError(code, os.strerror(code))
    return OSError(f"safetensors could not write the file ({one_line(e)})")


def save_tensors_file(path: Path, tensors: dict[str, torch.Tensor], meta: Sidecar | dict[str, Any]) -> Path:
    """Atomically write ``path`` (.safetensors) and its JSON sidecar holding ``meta`` + SHA-256.

    Both files are written in full (temporary names) before the tensors file takes its final
    name, so a full disk or a read-only folder raises one :class:`~stylegan3d.errors.UserError`
    and leaves the previous files and no temporary file behind.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    meta = meta.to_dict() if isinstance(meta, Sidecar) else dict(meta)
    is_new = not path.exists()
    try:
        with atomic_path(path) as tmp:
            try:
                save_file(tensors, str(tmp), metadata={"format": FORMAT})
            except SafetensorError as e:  # safetensors reports I/O errors (ENOSPC, EFBIG, EIO) as its own type
                raise _os_error(e) from None
            _faults.kill_in_save()  # no-op unless a crash test sets STYLEGAN3D_FAULT_KILL_IN_SAVE
            meta.update(format=FORMAT, format_version=FORMAT_VERSION, file=path.name, sha256=sha256_file(tmp))
            meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            atomic_write_json(sidecar_path(path), meta)  # in place first: a crash before the rename below
            # leaves a sidecar without tensors, which no listing or loader picks up
    except UserError:
        if is_new:  # the tensors never arrived: drop the sidecar written for them
            with contextlib.suppress(OSError):
                sidecar_path(path).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    run_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: Sidecar | dict[str, Any], keep: int = 3
) -> Path:
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


def read_sidecar(path: Path) -> Sidecar:
    """Parse and check the JSON sidecar of a checkpoint file (its ``config`` must be a valid Config)."""
    return _read_sidecar(Path(path))[0]


def _read_sidecar(path: Path) -> tuple[Sidecar, Config]:
    """The sidecar of ``path`` and its config, parsed and type-checked once."""
    from stylegan3d.config import Config

    side = sidecar_path(Path(path))
    if not side.is_file():
        raise CheckpointError(f"checkpoint sidecar missing: {side}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"checkpoint sidecar {side} is not valid JSON ({e})") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint sidecar {side} ({e.strerror or e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{side} is not a stylegan3d checkpoint sidecar")
    try:
        cfg = Config.from_dict(meta["config"]).validate()
        _check_types(cfg, "config")
    except Exception as e:  # any malformed config (wrong types too) is a checkpoint error
        raise CheckpointError(f"checkpoint sidecar {side} has an invalid config ({type(e).__name__}: {e})") from None
    return Sidecar.from_dict(meta), cfg


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a JSON-loaded ``value`` fits the type ``hint`` of a config field (finite numbers only)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return True


def _check_types(obj: Any, where: str) -> None:
    """Check every field of a config dataclass against its type hint (a sidecar is not covered by
    the SHA-256, so a value of the wrong type must fail here, not deep inside a forward pass)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{where}.{f.name}")
        elif not _type_ok(value, hints[f.name]):
            raise ValueError(f"{where}.{f.name} = {value!r} is not a valid {hints[f.name]}")


_ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}  # fmt: skip
"""torch dtype -> safetensors header dtype name."""


def _check_header(path: Path, cfg: Config) -> None:
    """Parse the safetensors header of ``path`` (without reading tensors) and check that its
    ``G_ema``/``G``/``D`` tensors have the names, shapes and dtypes of the sidecar's networks."""
    from safetensors import SafetensorError, safe_open

    from stylegan3d.nn import Discriminator, Generator

    try:
        with safe_open(str(path), framework="pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({one_line(e)})") from None
    if not any(k.startswith("G_ema.") for k in header):
        raise CheckpointError(f"{path} holds no generator (G_ema.*) tensors")
    try:  # on the meta device: shapes only, no memory; a config with values of the wrong type fails here
        with torch.device("meta"):
            g, d = Generator(cfg.model), Discriminator(cfg.model)
    except Exception as e:  # whatever a malformed config trips is a checkpoint error
        raise CheckpointError(
            f"checkpoint {path}: the networks of its config cannot be built ({one_line(e, 200, with_type=True)})"
        ) from None
    nets = {"G_ema": g, "G": g, "D": d}
    for prefix, net in nets.items():
        if prefix != "G_ema" and not any(k.startswith(prefix + ".") for k in header):
            continue  # a generator-only model file
        own = {k: (tuple(v.shape), _ST_DTYPES.get(v.dtype, str(v.dtype))) for k, v in net.state_dict().items()}
        got = {k[len(prefix) + 1 :]: v for k, v in header.items() if k.startswith(prefix + ".")}
        parts = _describe_mismatch(own, got)
        if parts:
            raise CheckpointError(
                f"checkpoint {path} does not match the {prefix} network of its config ({'; '.join(parts)})"
            )


def verify_checkpoint(path: Path) -> Checkpoint:
    """Check that ``path`` exists, is not a pickle, matches its sidecar's SHA-256 and is a
    safetensors file whose networks match the sidecar's config (each file read once)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        if head.startswith(_PICKLE_MAGIC) and not _safetensors_head(head):
            raise CheckpointError(f"{path} looks like a pickle/torch.save file; refusing to load it (use import-tf)")
        meta, cfg = _read_sidecar(path)
        digest = sha256_file(path)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({e.strerror or e})") from None
    if meta.sha256 != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt or modified (SHA-256 differs from its sidecar)")
    _check_header(path, cfg)
    return Checkpoint(path, meta, cfg)


def resolve_checkpoint(path: Path | str | Checkpoint) -> Checkpoint:
    """Turn a run directory, a checkpoint file or its sidecar into one verified :class:`Checkpoint`
    (a :class:`Checkpoint` is returned as it is).

    For a run directory the ``latest`` pointer is followed; if that file is missing or corrupt,
    older checkpoints are tried newest first (with a warning). A bare name that is not a path
    names a model shipped in the package (:mod:`stylegan3d.models`).
    """
    from stylegan3d.models import resolve_model_or_path

    if isinstance(path, Checkpoint):
        return path
    path = resolve_model_or_path(path)
    if path.suffix == ".json" and path.with_suffix(".safetensors").exists():
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        return verify_checkpoint(path)
    candidates = list_checkpoints(path)[::-1]
    latest = path / "latest"
    errors = []
    if latest.is_file():
        try:
            target = path / latest.read_text(encoding="utf-8").strip()
            candidates = [target] + [c for c in candidates if c != target]
        except (OSError, UnicodeDecodeError, ValueError):
            errors.append(f"{latest} is unreadable")
    if not candidates:
        raise CheckpointError(f"no checkpoint found in {path}")
    for cand in candidates:
        try:
            found = verify_checkpoint(cand)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"skipped unusable checkpoint(s): {'; '.join(errors)}; using {cand}", stacklevel=2)
        return found
    raise CheckpointError(f"no valid checkpoint in {path}: {'; '.join(errors)}")


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read all tensors of a verified checkpoint (safetensors only; never unpickles)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot read {path} as safetensors: {e}") from None


def load_generator(path: Path | str | Checkpoint, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Build the EMA generator stored in a checkpoint/model file (or run directory).

    Returns ``(G_ema in eval mode on device, the resolved Checkpoint)``.
    """
    from stylegan3d.nn import Generator

    found = resolve_checkpoint(path)
    tensors = load_tensors(found.path)
    g = Generator(found.config.model)
    load_module(g, tensors, "G_ema", found.path)
    return g.eval().requires_grad_(False).to(device), found


def save_model(path: Path, g: nn.Module, config: dict, extra: dict | None = None) -> Path:
    """Write a generator-only model file (``G_ema.*`` tensors + sidecar)."""
    meta = Sidecar.from_dict({"config": config, "kimg": 0, "step": 0, "version": version(), **(extra or {})})
    return save_tensors_file(Path(path), module_tensors("G_ema", g), meta)


def version() -> str:
    """The package version recorded in every sidecar."""
    from stylegan3d import __version__

    return __version__

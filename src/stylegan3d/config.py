"""Configuration dataclasses, presets (JSON data) and ``--set key=value`` overrides.

A preset is a JSON file in ``stylegan3d/presets``; it names a :class:`Config`, which holds
the network (:class:`ModelConfig`) and training (:class:`TrainConfig`) settings. Every
command that builds a network accepts overrides such as ``g.width=64`` or ``z_dim=128``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from typing import Any, get_type_hints

from stylegan3d.errors import UserError


@dataclass
class GConfig:
    """Generator (mapping + synthesis) settings."""

    width: int = 96
    """Feature width F of every synthesis stage (the paper's filter depth)."""
    widths: list[int] | None = None
    """Optional per-stage widths (low to high resolution); overrides ``width``."""
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    w_avg_beta: float = 0.995
    fused_modconv: str = "auto"
    """``fused`` (grouped conv), ``nonfused`` (scale-conv-scale) or ``auto`` (CPU: non-fused; CUDA:
    grouped except in training)."""
    up_filter: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])
    up_filter_gain: str = "unit"
    """``unit``: DC gain 1 (2**dims, correct in 3D); ``reference``: the 2D gain 4 of the
    original 3D-StyleGAN code (DC gain 0.5 in 3D)."""
    conv_clamp: float | None = None


@dataclass
class DConfig:
    """Residual discriminator settings."""

    width: int = 96
    widths: list[int] | None = None
    mbstd_group: int = 4
    mbstd_channels: int = 1
    down_filter: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])
    cmap_dim: int | None = None
    """Projection-discriminator embedding size for conditional models (default: width)."""


@dataclass
class ModelConfig:
    """Network geometry shared by G and D."""

    resolution: list[int] = field(default_factory=lambda: [80, 96, 112])
    """Output volume shape [D, H, W] (NIfTI i, j, k axes)."""
    base_shape: list[int] = field(default_factory=lambda: [5, 6, 7])
    """Shape of the learned constant; resolution must be base_shape * 2**n_up."""
    spacing_mm: float = 2.0
    channels: int = 1
    z_dim: int = 96
    w_dim: int = 96
    c_dim: int = 0
    """Label (condition) size; 0 = unconditional."""
    g: GConfig = field(default_factory=GConfig)
    d: DConfig = field(default_factory=DConfig)

    @property
    def n_up(self) -> int:
        """Number of 2x upsampling stages from ``base_shape`` to ``resolution``."""
        ratios = {r / b for r, b in zip(self.resolution, self.base_shape, strict=True)}
        (ratio,) = ratios
        return int(round(math.log2(ratio)))

    @property
    def num_ws(self) -> int:
        """Style vectors used by the synthesis network: 2 per stage - 1, + 1 for ToRGB."""
        return 2 * self.n_up + 2

    def stage_widths(self, which: str = "g") -> list[int]:
        """Feature widths of the n_up + 1 stages, lowest resolution first."""
        sub = self.g if which == "g" else self.d
        if sub.widths is not None:
            return list(sub.widths)
        return [sub.width] * (self.n_up + 1)

    def validate(self) -> None:
        if len(self.resolution) != len(self.base_shape) or len(self.resolution) not in (2, 3):
            raise UserError(f"resolution {self.resolution} and base_shape {self.base_shape} must both be 3D")
        ratios = [r / b for r, b in zip(self.resolution, self.base_shape, strict=True)]
        if len(set(ratios)) != 1 or ratios[0] < 1 or not float(math.log2(ratios[0])).is_integer():
            raise UserError(f"resolution {self.resolution} must be base_shape {self.base_shape} times one power of 2")
        for name in ("z_dim", "w_dim", "channels"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1")
        for which in ("g", "d"):
            ws = self.stage_widths(which)
            if len(ws) != self.n_up + 1 or min(ws) < 1:
                raise UserError(f"{which}.widths must list {self.n_up + 1} positive widths, got {ws}")
        if self.g.fused_modconv not in ("auto", "fused", "nonfused"):
            raise UserError("g.fused_modconv must be auto, fused or nonfused")
        if self.g.up_filter_gain not in ("unit", "reference"):
            raise UserError("g.up_filter_gain must be unit or reference")
        if self.g.mapping_layers < 1:
            raise UserError("g.mapping_layers must be >= 1")


@dataclass
class TrainConfig:
    """Optimisation, regularisation, augmentation and bookkeeping settings."""

    batch: int = 32
    """Global batch size (split over processes)."""
    kimg: float = 6000.0
    g_lr: float = 0.002
    d_lr: float = 0.002
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    eps: float = 1e-8
    r1_gamma: float = 10.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing: float = 0.9
    ms_weight: float = 0.0
    """Weight of MSGAN's mode-seeking term on G (0 = off; needs >= 2 samples per process)."""
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    aug: str = "ada"
    """``ada`` (adaptive p), ``fixed`` (constant p) or ``none``."""
    aug_p: float = 0.0
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0
    """ADA speed: p can move from 0 to 1 in this many kimg (500 as stylegan2-ada-pytorch)."""
    aug_flip: bool = False
    precision: str = "auto"
    """``bf16``, ``fp16`` (CUDA, with grad scaling), ``fp32`` or ``auto`` (bf16 where supported)."""
    channels_last: bool = True
    """channels_last_3d memory format with bf16/fp16, and in fp32 on CPU (faster conv3d)."""
    checkpointing: bool = False
    snap_ticks: int = 10
    tick_kimg: float = 1.0
    keep_ckpts: int = 3
    max_bad_steps: int = 10
    seed: int = 0
    deterministic: bool = False
    workers: int = 2
    """Threads reading the next batch while a step runs (0: read in the training thread)."""

    def validate(self) -> None:
        if self.batch < 1:
            raise UserError("batch must be >= 1")
        if self.kimg <= 0:
            raise UserError("kimg must be > 0")
        if self.aug not in ("ada", "fixed", "none"):
            raise UserError("aug must be ada, fixed or none")
        if not 0.0 <= self.aug_p <= 1.0:
            raise UserError("aug_p must be in [0, 1]")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise UserError("precision must be auto, bf16, fp16 or fp32")
        for name in ("r1_interval", "pl_interval", "snap_ticks", "keep_ckpts", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1")
        if self.workers < 0:
            raise UserError("workers must be >= 0")
        if not 0.0 <= self.style_mixing <= 1.0:
            raise UserError("style_mixing must be in [0, 1]")
        if self.ms_weight < 0:
            raise UserError("ms_weight must be >= 0")


@dataclass
class Config:
    """A complete named configuration: what a preset file holds."""

    name: str = "custom"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return _from_dict(cls, data, "")


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"config {where or 'root'}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise UserError(f"config {where or 'root'}: unknown key(s) {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if is_dataclass(hint):
            value = _from_dict(hint, value, f"{where}{key}.")
        elif float in getattr(hint, "__args__", (hint,)) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # JSON writes 20.0 as 20
        kwargs[key] = value
    return cls(**kwargs)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every field that differs between two configs
    (or two sections of one, e.g. ``a.model`` and ``b.model`` with ``prefix="model."``)."""

    def walk(x: dict, y: dict, where: str) -> list[tuple[str, Any, Any]]:
        out = []
        for key in sorted(x.keys() | y.keys()):
            u, v = x.get(key), y.get(key)
            if isinstance(u, dict) and isinstance(v, dict):
                out += walk(u, v, f"{where}{key}.")
            elif u != v:
                out.append((f"{where}{key}", u, v))
        return out

    return walk(dataclasses.asdict(a), dataclasses.asdict(b), prefix)


ALIASES = {"width": ["model.g.width", "model.d.width"]}
"""Short override keys that set several fields at once (used by the network-size study)."""

_SHORT_ROOTS = ("g.", "d.")


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    files = resources.files("stylegan3d").joinpath("presets").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".json"))


def load_preset(name: str) -> Config:
    """Load a shipped preset by name, or a JSON config file by path."""
    from pathlib import Path

    path = Path(name)
    if name.endswith(".json") and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("stylegan3d").joinpath("presets", f"{name}.json")
        if not res.is_file():
            raise UserError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())}")
        text = res.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"preset {name}: invalid JSON ({e})") from None
    return Config.from_dict(data).validate()


def _resolve_key(key: str) -> str:
    if key.startswith(("model.", "train.", "name", "description")):
        return key
    if key.startswith(_SHORT_ROOTS):
        return "model." + key
    if key in {f.name for f in fields(ModelConfig)}:
        return "model." + key
    if key in {f.name for f in fields(TrainConfig)}:
        return "train." + key
    raise UserError(f"unknown config key {key!r}")


def _coerce(value: str, current: Any, key: str) -> Any:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(current, bool):
        if isinstance(parsed, bool):
            return parsed
        raise UserError(f"{key}: expected true or false, got {value!r}")
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
        raise UserError(f"{key}: expected an integer, got {value!r}")
    if isinstance(current, float):
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            return float(parsed)
        raise UserError(f"{key}: expected a number, got {value!r}")
    if isinstance(current, list):
        if isinstance(parsed, list):
            return parsed
        if isinstance(parsed, str) and "," in parsed:
            return [json.loads(v) for v in parsed.split(",")]
        raise UserError(f"{key}: expected a list such as [1,2,3] or 1,2,3, got {value!r}")
    if isinstance(current, str):
        return str(parsed) if not isinstance(parsed, str) else parsed
    return parsed  # fields that default to None accept any JSON value; validate() checks them


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    """Apply ``key=value`` overrides (``g.width=64``, ``z_dim=128``, ``train.batch=8``,
    alias ``width=64`` sets G and D) and re-validate. Unknown keys and bad values raise."""
    cfg = Config.from_dict(cfg.to_dict())
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        targets = ALIASES.get(key) or [_resolve_key(key)]
        for target in targets:
            *path, leaf = target.split(".")
            obj: Any = cfg
            for part in path:
                if not hasattr(obj, part):
                    raise UserError(f"unknown config key {key!r}")
                obj = getattr(obj, part)
            if not is_dataclass(obj) or leaf not in {f.name for f in fields(obj)}:
                raise UserError(f"unknown config key {key!r}")
            current = getattr(obj, leaf)
            if is_dataclass(current):
                raise UserError(f"{key} is a group; set one of its fields, e.g. {key}.width=64")
            setattr(obj, leaf, _coerce(value, current, key))
    if any(o.split("=", 1)[0].strip() in ("z_dim",) for o in overrides or []) and not any(
        o.split("=", 1)[0].strip() in ("w_dim", "model.w_dim") for o in overrides or []
    ):
        cfg.model.w_dim = cfg.model.z_dim  # the paper ties w_dim to z_dim ("latent size")
    return cfg.validate()

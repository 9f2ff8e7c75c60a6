"""Import the original 3D-StyleGAN generators (TensorFlow 1 / dnnlib pickles) without TensorFlow.

The reference code (Hong et al. 2021, a 3D port of NVlabs' StyleGAN2 TF code) saves
``pickle.dump((G, D, Gs))`` of ``dnnlib.tflib.network.Network`` objects. Unpickling
such a file normally *executes* the network's Python source that is stored inside it.
Here the pickle is read by :class:`stylegan3d.tf_pickle.SafeUnpickler`, which resolves only an
allow-list of globals (numpy array reconstruction and inert stand-ins for the dnnlib classes); any
other global (``os.system``, ``builtins.eval``, ...) is refused before it can be called,
and the stored module source is only *parsed* (``ast``) to read default arguments.
This module maps the variables onto a stylegan3d generator (:func:`plan_import`, :func:`apply_plan`)
and writes the model file; it runs a little over 500 lines because the plan's checks, one function
per layer group, and the mapping table in this docstring belong together.

Layout conversions (TF -> stylegan3d, spatial axes in the same D, H, W order):

==============================  ===========================  =========================================
TF variable                     stylegan3d tensor            conversion
==============================  ===========================  =========================================
mapping ``DenseI/weight``       ``mapping.layers.I.weight``  ``[in, out]`` -> ``[out, in]``
mapping ``DenseI/bias``         ``mapping.layers.I.bias``    as is (both apply ``* lr_mul`` at run time)
``dlatent_avg`` (G_main)        ``mapping.w_avg``            as is
``<base>/Const/const``          ``synthesis.const``          ``[1, C, d, h, w]`` -> ``[C, d, h, w]``
``*/Conv*/weight``              ``...conv.weight``           ``[kd, kh, kw, I, O]`` -> ``[O, I, kd, kh, kw]``
``*/Conv0_up/weight``           ``...conv.weight``           same, after flipping kd and kh (not kw)
``*/mod_weight``                ``...conv.affine.weight``    ``[w_dim, I]`` -> ``[I, w_dim]``
``*/mod_bias``                  ``...conv.affine.bias``      ``+ 1`` (the reference adds 1 at run time)
``*/noise_strength``, ``bias``  same names                   as is
``noiseN``                      ``layers.N.noise_const``     as is (``[1, 1, d, h, w]``)
``lod`` (G_main)                --                           checked to be 0 (no progressive growing)
==============================  ===========================  =========================================

The up-conv flip: the reference ``upsample_conv_3d`` turns the kernel into a
``conv3d_transpose`` filter with ``w[::-1, ::-1]`` -- a 2-D idiom that in 3D flips only
the first two spatial axes -- and swaps in/out channels. Our up-conv is
``conv_transpose3d(x, weight.transpose(0, 1))``, so ``weight[o, i, a, b, c] =
w_tf[K-1-a, K-1-b, c, i, o]``. The equalised-lr run-time gains are identical on both sides
(``1/sqrt(fan_in)``, times ``lrmul`` in the mapping), so raw values carry over. The
reference's up-sampling FIR keeps the 2-D gain 4 and its own taps (``resample_kernel``,
``[1, 3, 3, 3, 1]`` by default in the 3D code): the imported config sets
``g.up_filter`` to those taps and ``g.up_filter_gain = "reference"`` so outputs match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan3d.config import Config, DConfig, GConfig, ModelConfig
from stylegan3d.data.spatial import MNI_CENTRE_MM, grid_affine
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.tf_pickle import TFNetwork, effective_kwargs, find_generator, load_tf_pickle, to_plain

KNOWN_SPACING_MM = {(80, 96, 112): 2.0, (160, 192, 224): 1.0}
"""Default voxel size of the reference's two training grids (MNI 2 mm and 1 mm)."""


# ---------------------------------------------------------------------------------------------
# Variable -> parameter mapping

TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda v: v,
    "dense": lambda v: v.T,
    "conv": lambda v: v.transpose(4, 3, 0, 1, 2),
    "conv_up": lambda v: v[::-1, ::-1].transpose(4, 3, 0, 1, 2),
    "mod_bias": lambda v: v + 1.0,
    "const": lambda v: v[0],
}
"""TF value -> our tensor for each kind of variable (see the module docstring)."""


@dataclass(frozen=True)
class Assignment:
    """One TF variable written into one generator tensor with a named conversion."""

    tf_name: str
    """``<component>/<local TF name>``, e.g. ``synthesis/10x12x14/Conv0_up/weight``."""
    key: str
    """Key in ``Generator.state_dict()``, e.g. ``synthesis.layers.1.conv.weight``."""
    transform: str
    """Key of :data:`TRANSFORMS`."""


_RES_RE = re.compile(r"^(\d+(?:[xX]\d+)+)/([A-Za-z0-9_]+)/([A-Za-z0-9_]+)$")
_NOISE_RE = re.compile(r"^noise(\d+)$")
_DENSE_RE = re.compile(r"^Dense(\d+)/(weight|bias)$")


@dataclass
class _Synthesis:
    stages: list[tuple[int, ...]]
    """Resolutions, base first."""
    layers: dict[tuple[int, ...], dict[str, dict[str, str]]]
    """resolution -> layer scope -> variable -> full local name."""
    noise: dict[int, str]
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    """local name -> value (the synthesis network's variables)."""


def _parse_synthesis(net: TFNetwork) -> _Synthesis:
    layers: dict[tuple[int, ...], dict[str, dict[str, str]]] = {}
    noise: dict[int, str] = {}
    for name in net.variables:
        if m := _NOISE_RE.match(name):
            noise[int(m.group(1))] = name
        elif m := _RES_RE.match(name):
            res = tuple(int(v) for v in re.split("[xX]", m.group(1)))
            layers.setdefault(res, {}).setdefault(m.group(2), {})[m.group(3)] = name
    if not layers:
        raise CheckpointError(f"synthesis network {net.name!r} has no '<D>x<H>x<W>/<layer>/<var>' variables")
    stages = sorted(layers, key=lambda r: (math.prod(r), r))
    if any(len(r) != 3 for r in stages):
        raise CheckpointError(f"only 3D generators can be imported; found resolutions {stages}")
    for prev, cur in zip(stages[:-1], stages[1:], strict=True):
        if any(c != 2 * p for p, c in zip(prev, cur, strict=True)):
            raise CheckpointError(f"synthesis resolutions {stages} do not double from stage to stage")
    return _Synthesis(stages, layers, noise, dict(net.variables))


def _res(res: tuple[int, ...]) -> str:
    return "x".join(map(str, res))


def _arch_from_layers(syn: _Synthesis) -> str:
    scopes = {s for res in syn.stages for s in syn.layers[res]}
    if "Skip" in scopes:
        return "resnet"
    torgb = [res for res in syn.stages if "ToRGB" in syn.layers[res]]
    return "skip" if len(torgb) > 1 else "orig"


@dataclass
class Plan:
    """What an import will do: the model config, every assignment, and the reference settings."""

    cfg: Config
    assignments: list[Assignment]
    checked: dict[str, float]
    """TF variables consumed by a check instead of a copy (e.g. ``main/lod`` must be 0)."""
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)


def plan_import(gen: TFNetwork, name: str = "tf-import", spacing_mm: float = 2.0) -> Plan:
    """Derive the stylegan3d config and the variable -> tensor assignments for a generator.

    Geometry (stage resolutions, widths, latent sizes, channels) is read from the
    variable shapes; architecture and activation settings from the effective build
    kwargs, and the two are cross-checked. Unsupported variants raise CheckpointError.
    """
    mapping, synthesis = gen.components["mapping"], gen.components["synthesis"]
    kw = _build_kwargs(mapping, synthesis)
    syn = _parse_synthesis(synthesis)
    arch = _check_supported(syn, kw)
    geo = _geometry(syn, mapping)
    _cross_check(geo, syn, kw)
    cfg = _plan_config(name, geo, kw, spacing_mm)
    assignments = [*_mapping_assignments(geo.n_dense), *_synthesis_assignments(syn)]
    syn_kw = kw.synthesis
    settings = {
        "network": gen.name,
        "build_funcs": {
            "main": gen.build_func_name,
            "mapping": mapping.build_func_name,
            "synthesis": synthesis.build_func_name,
        },
        "architecture": arch,
        "resample_kernel": syn_kw["resample_kernel"],
        "mapping_lrmul": cfg.model.g.mapping_lr_mul,
        "randomize_noise": syn_kw.get("randomize_noise"),
        "fused_modconv": syn_kw.get("fused_modconv"),
        "dtype": syn_kw.get("dtype"),
        "static_kwargs": to_plain(gen.static_kwargs),
    }
    provenance = {f"synthesis.{k}": w for k, w in kw.synthesis_where.items()}
    provenance.update({f"mapping.{k}": w for k, w in kw.mapping_where.items()})
    return Plan(cfg, assignments, {"main/lod": 0.0}, settings, provenance)


@dataclass
class _BuildKwargs:
    """The effective build arguments of the two sub-networks and where each came from."""

    synthesis: dict[str, Any]
    synthesis_where: dict[str, str]
    mapping: dict[str, Any]
    mapping_where: dict[str, str]

    def given(self, key: str) -> bool:
        """Whether the pickle itself (static kwargs or source) sets ``key``, not our built-in default."""
        return (self.synthesis_where.get(key) or self.mapping_where.get(key)) != "builtin"


def _build_kwargs(mapping: TFNetwork, synthesis: TFNetwork) -> _BuildKwargs:
    syn_keys = ["architecture", "resample_kernel", "nonlinearity", "randomize_noise", "fused_modconv", "dtype"]
    syn_keys += ["resolution", "base_size", "num_channels", "dlatent_size"]
    map_keys = ["mapping_layers", "mapping_lrmul", "mapping_nonlinearity", "normalize_latents", "label_size"]
    map_keys += ["latent_size", "dlatent_size", "mapping_fmaps"]
    return _BuildKwargs(*effective_kwargs(synthesis, syn_keys), *effective_kwargs(mapping, map_keys))


def _check_supported(syn: _Synthesis, kw: _BuildKwargs) -> str:
    """Refuse architectures, activations and filters this generator lacks; returns the architecture."""
    syn_kw, map_kw = kw.synthesis, kw.mapping
    arch = _arch_from_layers(syn)
    if arch != "orig":
        raise CheckpointError(f"the generator uses the {arch!r} synthesis architecture; only 'orig' can be imported")
    if kw.synthesis_where.get("architecture") != "builtin" and syn_kw.get("architecture") != "orig":
        raise CheckpointError(
            f"the pickle's build arguments say architecture={syn_kw.get('architecture')!r} "
            "but its variables have the 'orig' layout"
        )
    for key, want, where in (
        ("nonlinearity", "lrelu", syn_kw),
        ("mapping_nonlinearity", "lrelu", map_kw),
        ("normalize_latents", True, map_kw),
        ("label_size", 0, map_kw),
    ):
        if key in where and where[key] != want:
            raise CheckpointError(f"unsupported generator setting {key}={where[key]!r} (only {want!r} is supported)")
    kernel = syn_kw.get("resample_kernel")
    if not (isinstance(kernel, list) and kernel and all(isinstance(v, int | float) for v in kernel)):
        raise CheckpointError(f"unsupported resample_kernel {kernel!r}: need a 1-D list of taps")
    return arch


@dataclass
class _Geometry:
    """Sizes read from the variable shapes."""

    base: tuple[int, ...]
    stages: list[tuple[int, ...]]
    """Resolutions after the base stage."""
    widths: list[int]
    """Feature maps of the base stage, then of each later stage."""
    channels: int
    w_dim: int
    z_dim: int
    n_dense: int


def _synthesis_var(syn: _Synthesis, res: tuple[int, ...], scope: str, what: str) -> np.ndarray:
    layer = syn.layers[res][scope]
    if what not in layer:
        raise CheckpointError(f"synthesis variable {_res(res)}/{scope}/{what} is missing")
    return syn.variables[layer[what]]


def _geometry(syn: _Synthesis, mapping: TFNetwork) -> _Geometry:
    """Stage sizes, widths, channels and latent sizes; every stage must have its layers."""
    base, stages = syn.stages[0], syn.stages[1:]
    blayers = syn.layers[base]
    if "Const" not in blayers or "Conv" not in blayers:
        raise CheckpointError(f"base stage {_res(base)} lacks Const/const or Conv variables")
    for res in stages:
        if "Conv0_up" not in syn.layers[res] or "Conv1" not in syn.layers[res]:
            raise CheckpointError(f"stage {_res(res)} lacks Conv0_up or Conv1 variables")
    if "ToRGB" not in syn.layers[syn.stages[-1]]:
        raise CheckpointError(f"last stage {_res(syn.stages[-1])} lacks ToRGB variables")
    widths = [int(_synthesis_var(syn, base, "Const", "const").shape[1])]
    widths += [int(_synthesis_var(syn, r, "Conv0_up", "weight").shape[-1]) for r in stages]
    channels = int(_synthesis_var(syn, syn.stages[-1], "ToRGB", "weight").shape[-1])
    w_dim = int(_synthesis_var(syn, base, "Conv", "mod_weight").shape[0])
    dense_ids = {int(m.group(1)) for n in mapping.variables if (m := _DENSE_RE.match(n))}
    n_dense = len(dense_ids)
    weights = [mapping.variables.get(f"Dense{i}/weight") for i in range(n_dense)]
    if n_dense == 0 or dense_ids != set(range(n_dense)) or any(w is None or w.ndim != 2 for w in weights):
        raise CheckpointError(
            f"mapping network needs Dense0..DenseN weight variables, found layers {sorted(dense_ids)}"
        )
    hidden = {int(w.shape[1]) for w in weights}
    if hidden != {w_dim}:
        raise CheckpointError(f"mapping layer widths {sorted(hidden)} differ from dlatent size {w_dim}; not supported")
    return _Geometry(base, stages, widths, channels, w_dim, int(weights[0].shape[0]), n_dense)


def _cross_check(geo: _Geometry, syn: _Synthesis, kw: _BuildKwargs) -> None:
    """The build arguments the pickle sets must agree with the sizes of its variables."""
    syn_kw, map_kw = kw.synthesis, kw.mapping
    checks = [
        ("latent_size", map_kw.get("latent_size"), geo.z_dim),
        ("dlatent_size", map_kw.get("dlatent_size"), geo.w_dim),
        ("mapping_layers", map_kw.get("mapping_layers"), geo.n_dense),
        ("num_channels", syn_kw.get("num_channels"), geo.channels),
        ("base_size", syn_kw.get("base_size"), list(geo.base)),
    ]
    res_kw = syn_kw.get("resolution")
    if isinstance(res_kw, int | float) and res_kw > 0 and min(geo.base) > 0:
        pow2 = int(int(res_kw) / min(geo.base) * 4)  # the reference's resolution_pow2
        checks.append(("resolution (stages)", int(np.log2(max(pow2, 1))) - 2, len(geo.stages)))
    for key, said, found in checks:
        if said is not None and kw.given(key) and said != found:
            raise CheckpointError(f"build argument {key}={said!r} disagrees with the variables ({found!r})")
    if len(syn.noise) != 2 * len(geo.stages) + 1:
        raise CheckpointError(f"expected {2 * len(geo.stages) + 1} noise inputs noise0.., found {len(syn.noise)}")


def _plan_config(name: str, geo: _Geometry, kw: _BuildKwargs, spacing_mm: float) -> Config:
    """The stylegan3d config of the imported generator (validated)."""
    lrmul = kw.mapping.get("mapping_lrmul", 0.01)
    if not (isinstance(lrmul, int | float) and lrmul > 0):
        raise CheckpointError(f"unsupported mapping_lrmul {lrmul!r}")
    uniform = len(set(geo.widths)) == 1
    g = GConfig(
        width=geo.widths[-1],
        widths=None if uniform else geo.widths,
        mapping_layers=geo.n_dense,
        mapping_lr_mul=float(lrmul),
        up_filter=[float(t) for t in kw.synthesis["resample_kernel"]],
        up_filter_gain="reference",
    )
    model = ModelConfig(
        resolution=[b * 2 ** len(geo.stages) for b in geo.base],
        base_shape=list(geo.base),
        spacing_mm=float(spacing_mm),
        channels=geo.channels,
        z_dim=geo.z_dim,
        w_dim=geo.w_dim,
        g=g,
        d=DConfig(width=geo.widths[0]),
    )
    cfg = Config(name=name, description=f"imported from a 3D-StyleGAN TF pickle ({name})", model=model)
    try:
        cfg.validate()
    except UserError as e:
        raise CheckpointError(f"the imported geometry is not a valid stylegan3d model: {e}") from None
    return cfg


def _mapping_assignments(n_dense: int) -> list[Assignment]:
    """The mapping network's dense layers and the W average."""
    a: list[Assignment] = []
    for i in range(n_dense):
        a.append(Assignment(f"mapping/Dense{i}/weight", f"mapping.layers.{i}.weight", "dense"))
        a.append(Assignment(f"mapping/Dense{i}/bias", f"mapping.layers.{i}.bias", "copy"))
    a.append(Assignment("main/dlatent_avg", "mapping.w_avg", "copy"))
    return a


def _conv_assignments(
    syn: _Synthesis, res: tuple[int, ...], scope: str, prefix: str, up: bool = False, torgb: bool = False
) -> list[Assignment]:
    """One modulated conv layer (or ToRGB) of the synthesis network."""
    names = syn.layers[res][scope]
    label = f"{_res(res)}/{scope}"

    def get(k: str) -> str:
        if k not in names:
            raise CheckpointError(f"synthesis variable {label}/{k} is missing (needed for {prefix})")
        return f"synthesis/{names[k]}"

    a = [
        Assignment(get("weight"), f"{prefix}.conv.weight", "conv_up" if up else "conv"),
        Assignment(get("mod_weight"), f"{prefix}.conv.affine.weight", "dense"),
        Assignment(get("mod_bias"), f"{prefix}.conv.affine.bias", "mod_bias"),
        Assignment(get("bias"), f"{prefix}.bias", "copy"),
    ]
    if not torgb:
        a.append(Assignment(get("noise_strength"), f"{prefix}.noise_strength", "copy"))
    return a


def _synthesis_assignments(syn: _Synthesis) -> list[Assignment]:
    """The constant input, every conv layer stage by stage, ToRGB and the noise maps."""
    base, stages = syn.stages[0], syn.stages[1:]
    a = [Assignment(f"synthesis/{syn.layers[base]['Const']['const']}", "synthesis.const", "const")]
    a += _conv_assignments(syn, base, "Conv", "synthesis.layers.0")
    for s, res in enumerate(stages, start=1):
        a += _conv_assignments(syn, res, "Conv0_up", f"synthesis.layers.{2 * s - 1}", up=True)
        a += _conv_assignments(syn, res, "Conv1", f"synthesis.layers.{2 * s}")
    a += _conv_assignments(syn, syn.stages[-1], "ToRGB", "synthesis.torgb", torgb=True)
    for idx, noise_name in sorted(syn.noise.items()):
        a.append(Assignment(f"synthesis/{noise_name}", f"synthesis.layers.{idx}.noise_const", "copy"))
    return a


def _all_variables(gen: TFNetwork) -> dict[str, np.ndarray]:
    out = {f"main/{k}": val for k, val in gen.variables.items()}
    for comp in ("mapping", "synthesis"):
        out.update({f"{comp}/{k}": val for k, val in gen.components[comp].variables.items()})
    for comp_name, comp in gen.components.items():
        if comp_name not in ("mapping", "synthesis"):
            out.update({f"{comp_name}/{k}": val for k, val in comp.variables.items()})
    return out


def _list(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def apply_plan(plan: Plan, gen: TFNetwork) -> torch.nn.Module:
    """Build the generator of ``plan`` and fill every tensor from the TF variables.

    Every TF variable must be used exactly once (copied or checked) and every generator
    tensor set exactly once; otherwise CheckpointError lists the leftovers.
    """
    from stylegan3d.nn import Generator

    variables = _all_variables(gen)
    g = Generator(plan.cfg.model)
    own = g.state_dict()
    new: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for asg in plan.assignments:
        if asg.tf_name not in variables:
            problems.append(f"missing TF variable {asg.tf_name}")
            continue
        if asg.tf_name in used:
            problems.append(f"TF variable {asg.tf_name} used twice")
        if asg.key in new:
            problems.append(f"tensor {asg.key} set twice")
        used.add(asg.tf_name)
        if asg.key not in own:
            problems.append(f"{asg.tf_name} -> unknown tensor {asg.key}")
            continue
        value = np.array(TRANSFORMS[asg.transform](variables[asg.tf_name].astype(np.float32)), order="C")
        if tuple(value.shape) != tuple(own[asg.key].shape):
            problems.append(
                f"{asg.tf_name} {list(variables[asg.tf_name].shape)} -> {asg.key}: "
                f"shape {list(value.shape)} vs model {list(own[asg.key].shape)}"
            )
            continue
        if not np.isfinite(value).all():
            problems.append(f"{asg.tf_name} has non-finite values")
        new[asg.key] = torch.from_numpy(value)
    for tf_name, expected in plan.checked.items():
        if tf_name in variables:
            used.add(tf_name)
            if not np.allclose(variables[tf_name], expected):
                problems.append(f"{tf_name} = {variables[tf_name].tolist()} (expected {expected})")
    unused = sorted(set(variables) - used)
    unset = sorted(set(own) - set(new))
    if unused:
        problems.append(f"unused TF variables: {_list(unused)}")
    if unset:
        problems.append(f"generator tensors not set: {_list(unset)}")
    if problems:
        raise CheckpointError(f"cannot import network {gen.name!r}: {'; '.join(problems)}")
    g.load_state_dict(new, strict=True)
    return g.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Geometry of the written model and the end-to-end entry point


def mni_affine(
    shape: list[int] | tuple[int, ...], spacing_mm: float, centre: tuple[float, ...] = MNI_CENTRE_MM
) -> np.ndarray:
    """4x4 voxel -> RAS mm affine of a ``shape`` grid with isotropic ``spacing_mm`` and voxel
    ``shape // 2`` at ``centre``: by default the MNI grid ``prepare --frame mni`` uses
    (:data:`stylegan3d.data.spatial.MNI_CENTRE_MM`), so imported and trained models share it."""
    return grid_affine(shape, [float(spacing_mm)] * 3, centre)


def default_spacing(shape: list[int] | tuple[int, ...]) -> float:
    """Voxel size (mm) of the reference's training grids; other shapes need an explicit value."""
    key = tuple(int(s) for s in shape)
    if key not in KNOWN_SPACING_MM:
        known = ", ".join(f"{'x'.join(map(str, k))}: {v:g} mm" for k, v in KNOWN_SPACING_MM.items())
        raise UserError(
            f"cannot guess the voxel spacing of a {'x'.join(map(str, key))} model ({known}); pass --spacing MM"
        )
    return KNOWN_SPACING_MM[key]


@dataclass
class ImportResult:
    """Outcome of :func:`import_tf`."""

    path: Path | None
    generator: torch.nn.Module
    plan: Plan
    meta: dict[str, Any]


def convert(obj: Any, name: str, spacing_mm: float | None = None, which: str = "Gs") -> ImportResult:
    """Turn an unpickled dnnlib object into a filled stylegan3d Generator (nothing written)."""
    gen = find_generator(obj, which)
    try:
        plan = plan_import(gen, name=name)
    except (IndexError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"network {gen.name!r} has malformed variables ({type(e).__name__}: {e})") from None
    shape = plan.cfg.model.resolution
    spacing = float(spacing_mm) if spacing_mm is not None else default_spacing(shape)
    if not spacing > 0 or not math.isfinite(spacing):
        raise UserError(f"--spacing must be a positive number of mm, got {spacing_mm}")
    plan.cfg.model.spacing_mm = spacing
    g = apply_plan(plan, gen)
    meta = {
        "origin": f"import-tf:{name}",
        "dataset": {
            "manifest_sha256": None,
            "shape": list(shape),
            "spacing": [spacing] * 3,
            "affine": mni_affine(shape, spacing).tolist(),
            "channels": plan.cfg.model.channels,
            "frame": "mni",
        },
        "tf_import": {
            **plan.settings,
            "provenance": plan.provenance,
            "variables": len(plan.assignments) + len(plan.checked),
            "mapped": [[a.tf_name, a.key, a.transform] for a in plan.assignments],
        },
    }
    return ImportResult(None, g, plan, meta)


def import_tf(src: Path | str, out: Path | str, spacing_mm: float | None = None, which: str = "Gs") -> ImportResult:
    """Convert a 3D-StyleGAN TF pickle ``src`` into a stylegan3d model file ``out`` (.safetensors + .json).

    Args:
        src: ``network-snapshot-*.pkl`` / ``2mm_f96.pkl`` written by the reference code.
        out: destination model file; its sidecar records ``origin = "import-tf:<src name>"``.
        spacing_mm: voxel size of the written geometry (default by shape, see :func:`default_spacing`).
        which: network to import, ``Gs`` (EMA, default) or ``G``.
    """
    from stylegan3d.checkpoint import save_model

    src, out = Path(src), Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"--out must end in .safetensors, got {out}")
    obj = load_tf_pickle(src)
    result = convert(obj, name=src.name, spacing_mm=spacing_mm, which=which)
    result.path = save_model(out, result.generator, result.plan.cfg.to_dict(), result.meta)
    return result

"""Read a TF-1 dnnlib network pickle without TensorFlow and without running any code from it.

:class:`SafeUnpickler` resolves only an allow-list of globals (numpy array reconstruction and inert
stand-ins for the dnnlib classes); any other global (``os.system``, ``builtins.eval``, ...) is
refused before it can be called. The network's stored build-function source is only *parsed*
(:mod:`ast`) for its default arguments (:func:`effective_kwargs`). Used by :mod:`stylegan3d.tf_import`.
"""

from __future__ import annotations

import ast
import importlib
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stylegan3d.errors import CheckpointError, UserError

BUILTIN_DEFAULTS: dict[str, Any] = {
    "architecture": "skip",
    "resample_kernel": [1, 3, 3, 3, 1],
    "nonlinearity": "lrelu",
    "randomize_noise": False,
    "fused_modconv": False,
    "dtype": "float16",
    "mapping_layers": 8,
    "mapping_lrmul": 0.01,
    "mapping_nonlinearity": "lrelu",
    "normalize_latents": True,
    "label_size": 0,
}
"""Defaults of ``G_synthesis_stylegan2_3d_curated_real`` / ``G_mapping_3d`` in the reference
code, used only when the pickle neither sets a value nor carries readable source."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling


class TFNetwork:
    """Inert stand-in for ``dnnlib.tflib.network.Network``: stores the pickled state, runs nothing.

    Attributes mirror the state dict: ``name``, ``static_kwargs``, ``components`` (name ->
    TFNetwork), ``build_module_src`` (text, never executed), ``build_func_name`` and
    ``variables`` (local TF name -> numpy array, in creation order).
    """

    def __init__(self) -> None:
        self.version = 0
        self.name = ""
        self.static_kwargs: dict[str, Any] = {}
        self.components: dict[str, TFNetwork] = {}
        self.build_module_src = ""
        self.build_func_name = ""
        self.variables: OrderedDict[str, np.ndarray] = OrderedDict()

    def __setstate__(self, state: Any) -> None:
        self.__init__()
        if not isinstance(state, dict):
            raise CheckpointError(f"network state is a {type(state).__name__}, expected a dict")
        self.version = state.get("version", 0)
        self.name = str(state.get("name", ""))
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.build_module_src = state.get("build_module_src") or ""
        self.build_func_name = str(state.get("build_func_name", ""))
        for comp_name, comp in self.components.items():
            if not isinstance(comp, TFNetwork):
                raise CheckpointError(f"component {comp_name!r} of network {self.name!r} is not a network")
        for item in state.get("variables") or []:
            if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
                raise CheckpointError(f"network {self.name!r}: malformed variable entry")
            name, value = item
            if not isinstance(value, np.ndarray | np.generic | float | int):
                raise CheckpointError(f"variable {name!r} of network {self.name!r} is not an array")
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiub":
                raise CheckpointError(f"variable {name!r} of network {self.name!r} has dtype {arr.dtype}")
            self.variables[name] = arr

    def __repr__(self) -> str:
        return f"TFNetwork({self.name!r}, func={self.build_func_name!r}, vars={len(self.variables)})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a plain dict with attribute access)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, restricted to latin-1."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise CheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_global(name: str) -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise CheckpointError(f"numpy lacks {name}")


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("dnnlib.tflib.network", "Network"): lambda: TFNetwork,
    ("dnnlib.util", "EasyDict"): lambda: _EasyDict,
    ("dnnlib", "EasyDict"): lambda: _EasyDict,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a dnnlib network pickle needs.

    Anything else raises :class:`CheckpointError` *before* it is imported or called.
    """

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise CheckpointError(
                f"refusing to load global {module}.{name} from the pickle: only dnnlib network pickles "
                "(numpy arrays and dnnlib.tflib.network.Network) are accepted; nothing was executed"
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("refusing a pickle with persistent ids (not a dnnlib network pickle)")


def load_tf_pickle(path: Path | str) -> Any:
    """Read a dnnlib network pickle with :class:`SafeUnpickler` (no code from the file runs).

    Returns the unpickled object, usually a tuple ``(G, D, Gs)`` of :class:`TFNetwork`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pickle not found: {path}")
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # nothing from the file ran: any failure means a malformed/foreign pickle
        raise CheckpointError(f"{path} is not a readable network pickle ({type(e).__name__}: {e})") from None


def find_generator(obj: Any, which: str = "Gs") -> TFNetwork:
    """Pick the generator network ``which`` (``Gs`` = EMA weights, or ``G``) from an unpickled object.

    Accepts the usual ``(G, D, Gs)`` tuple, a dict of networks, or a single network. A
    generator is a network with ``mapping`` and ``synthesis`` components.
    """
    if isinstance(obj, TFNetwork):
        nets = [obj]
    elif isinstance(obj, tuple | list):
        nets = [n for n in obj if isinstance(n, TFNetwork)]
    elif isinstance(obj, dict):
        nets = [n for n in obj.values() if isinstance(n, TFNetwork)]
    else:
        raise CheckpointError(f"the pickle holds a {type(obj).__name__}, not dnnlib networks")
    gens = [n for n in nets if {"mapping", "synthesis"} <= set(n.components)]
    if not gens:
        names = [n.name for n in nets] or ["none"]
        raise CheckpointError(f"no generator (network with mapping + synthesis) in the pickle; networks: {names}")
    named = [n for n in gens if n.name == which]
    if named:
        return named[0]
    if which == "Gs" and isinstance(obj, tuple | list) and len(obj) == 3 and obj[2] in gens:
        return obj[2]
    if len(gens) == 1 and len(nets) == 1:
        return gens[0]
    raise CheckpointError(f"no generator named {which!r} in the pickle; generators: {[n.name for n in gens]}")


# ---------------------------------------------------------------------------------------------
# Build kwargs: static kwargs over the defaults of the stored build function (parsed, not run)


def source_defaults(src: str, func_name: str) -> dict[str, Any] | None:
    """Literal default arguments of ``func_name`` in module source ``src``.

    The source is parsed with :mod:`ast` and never executed; defaults that are not
    literals (e.g. ``dtype=dtypeGlob``) are resolved only when they name a module-level
    literal constant, otherwise skipped. Returns None if the function is not found.
    """
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, TypeError):
        return None
    constants: dict[str, Any] = {}
    func = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                constants.pop(node.targets[0].id, None)
        elif isinstance(node, ast.FunctionDef) and node.name == func_name:
            func = node
    if func is None:
        return None
    out: dict[str, Any] = {}
    params = func.args.args[len(func.args.args) - len(func.args.defaults) :]
    pairs = list(zip(params, func.args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True) if d is not None]
    for arg, default in pairs:
        if isinstance(default, ast.Name) and default.id in constants:
            out[arg.arg] = constants[default.id]
            continue
        try:
            out[arg.arg] = ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return out


def to_plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples in kwargs -> JSON-friendly Python values."""
    if isinstance(value, np.generic):
        return to_plain(value.item())
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def effective_kwargs(net: TFNetwork, keys: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The value of each build argument in ``keys`` as the reference would have used it.

    Order of precedence, as in ``Network.get_output_for``: the network's static kwargs, then
    the default in its stored build-function source, then :data:`BUILTIN_DEFAULTS`.
    Returns ``(values, provenance)`` with provenance ``static_kwargs|source|builtin``.
    """
    src = net.build_module_src if isinstance(net.build_module_src, str) else ""
    defaults = source_defaults(src, net.build_func_name) or {}
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key in keys:
        if key in net.static_kwargs:
            values[key], where[key] = to_plain(net.static_kwargs[key]), "static_kwargs"
        elif key in defaults:
            values[key], where[key] = to_plain(defaults[key]), "source"
        elif key in BUILTIN_DEFAULTS:
            values[key], where[key] = BUILTIN_DEFAULTS[key], "builtin"
    return values, where

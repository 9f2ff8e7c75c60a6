"""Test helpers: write dnnlib-style network pickles and run the reference forward pass in numpy.

The variable names, shapes, scopes and creation order follow the 3D-StyleGAN TF code
(``training/networks3d_stylegan2.py``: ``G_main`` + ``G_mapping_3d`` +
``G_synthesis_stylegan2_3d_curated_real`` with the 'orig' architecture) and the ops follow
its ``upfirdn_3d.upsample_conv_3d`` / ``modulated_conv3d_layer`` definitions. This is an
independent numpy re-implementation (float64, explicit loops/einsums), written from those
facts; it never touches stylegan3d code.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np

SQRT2 = np.sqrt(2.0)


# ------------------------------------------------------------------------------------------
# Writing pickles with the same global names as dnnlib


class Network:
    """Writer-side twin of ``dnnlib.tflib.network.Network``: pickles as that class with a state dict."""

    def __init__(self, state: dict) -> None:
        self._state = state

    def __getstate__(self) -> dict:
        return self._state

    @property
    def vars(self) -> dict[str, np.ndarray]:
        return dict(self._state["variables"])


class EasyDict(dict):
    """Writer-side twin of ``dnnlib.util.EasyDict``."""


def install_fake_dnnlib(monkeypatch) -> None:
    """Make ``pickle`` write our twins under the dnnlib names (restored by monkeypatch)."""
    mods = {name: types.ModuleType(name) for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network", "dnnlib.util")}
    mods["dnnlib.tflib.network"].Network = Network
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["dnnlib"].tflib = mods["dnnlib.tflib"]
    mods["dnnlib"].util = mods["dnnlib.util"]
    mods["dnnlib.tflib"].network = mods["dnnlib.tflib.network"]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(Network, "__module__", "dnnlib.tflib.network")
    monkeypatch.setattr(EasyDict, "__module__", "dnnlib.util")


def module_source(marker: Path) -> str:
    """Stand-in for the pickled ``build_module_src``: the reference signatures (defaults as in the
    3D code) plus a statement that creates ``marker`` if anyone ever executes the text."""
    return f"""
import numpy as np
dtypeGlob = 'float16'
open({str(marker)!r}, 'w').write('the pickled module source was executed')

def G_main(latents_in, labels_in, truncation_psi=0.5, truncation_cutoff=None, dlatent_avg_beta=0.995,
           style_mixing_prob=0.9, is_training=False, mapping_func='G_mapping_3d',
           synthesis_func='G_synthesis_stylegan2_3d_curated_real', **kwargs):
    raise SystemExit('never called')

def G_mapping_3d(latents_in, labels_in, latent_size=96, label_size=0, dlatent_size=96, dlatent_broadcast=None,
                 mapping_layers=8, mapping_fmaps=96, mapping_lrmul=0.01, mapping_nonlinearity='lrelu',
                 normalize_latents=True, dtype=dtypeGlob, **_kwargs):
    raise SystemExit('never called')

def G_synthesis_stylegan2_3d_curated_real(dlatents_in, dlatent_size=96, num_channels=1, resolution=128,
        fmap_base=4 << 10, fmap_decay=1.0, fmap_min=30, fmap_max=30, randomize_noise=False, architecture='skip',
        nonlinearity='lrelu', dtype=dtypeGlob, resample_kernel=[1,3,3,3,1], fused_modconv=False,
        base_size=[4, 4, 4], **_kwargs):
    raise SystemExit('never called')

def D_stylegan2_3d_curated_real(images_in, labels_in, architecture='orig', **_kwargs):
    raise SystemExit('never called')
"""


def nf(stage: int, fmap_base: int, fmap_min: int, fmap_max: int, fmap_decay: float = 1.0) -> int:
    """Feature maps of a stage, as the reference computes them."""
    return int(np.clip(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_min, fmap_max))


def make_kwargs(**over) -> dict:
    """Static kwargs of G as the reference training loop passes them (tiny defaults for tests)."""
    kw = dict(
        num_channels=2,
        resolution=np.int64(8),  # np.min(training_set.shape[1:]) is a numpy scalar in the reference
        label_size=0,
        architecture="orig",
        latent_size=6,
        dlatent_size=6,
        mapping_fmaps=6,
        mapping_layers=3,
        fmap_base=32,
        fmap_min=4,
        fmap_max=8,
        base_size=[2, 3, 4],
    )
    kw.update(over)
    return kw


def geometry(kw: dict) -> tuple[list[int], int]:
    """(base_size, resolution_log2) as the reference synthesis derives them."""
    base = list(kw["base_size"])
    log2 = int(np.log2(int(int(kw["resolution"]) / np.min(base) * 4)))
    return base, log2


def make_generator_vars(kw: dict, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """Random variables ``(main, mapping, synthesis)`` with the reference names/shapes/order."""
    base, log2 = geometry(kw)
    num_layers = log2 * 2 - 2
    dl = kw["dlatent_size"]

    def f(stage: int) -> int:
        return nf(stage, kw["fmap_base"], kw["fmap_min"], kw["fmap_max"])

    def res_shape(res: int) -> list[int]:
        return [b * 2 ** (res - 2) for b in base]

    syn: dict[str, np.ndarray] = {}
    for idx in range(num_layers - 1):
        syn[f"noise{idx}"] = rng.standard_normal([1, 1, *res_shape((idx + 5) // 2)]).astype(np.float32)

    def modconv(scope: str, cin: int, cout: int, k: int, noise: bool) -> None:
        syn[f"{scope}/weight"] = rng.standard_normal([k, k, k, cin, cout]).astype(np.float32)
        syn[f"{scope}/mod_weight"] = rng.standard_normal([dl, cin]).astype(np.float32)
        syn[f"{scope}/mod_bias"] = (0.3 * rng.standard_normal([cin])).astype(np.float32)
        if noise:
            syn[f"{scope}/noise_strength"] = np.float32(0.2 * rng.standard_normal())  # sess.run gives a scalar
        syn[f"{scope}/bias"] = (0.2 * rng.standard_normal([cout])).astype(np.float32)

    bscope = "{}x{}X{}".format(*base)  # the reference spells the base scope with a capital X
    syn[f"{bscope}/Const/const"] = rng.standard_normal([1, f(1), *base]).astype(np.float32)
    modconv(f"{bscope}/Conv", f(1), f(1), 3, True)
    for res in range(3, log2 + 1):
        scope = "x".join(str(v) for v in res_shape(res))
        modconv(f"{scope}/Conv0_up", f(res - 2), f(res - 1), 3, True)
        modconv(f"{scope}/Conv1", f(res - 1), f(res - 1), 3, True)
        if res == log2:
            modconv(f"{scope}/ToRGB", f(res - 1), kw["num_channels"], 1, False)

    mapping: dict[str, np.ndarray] = {}
    lrmul = kw.get("mapping_lrmul", 0.01)
    for i in range(kw["mapping_layers"]):
        fin = kw["latent_size"] if i == 0 else kw["mapping_fmaps"]
        fout = dl if i == kw["mapping_layers"] - 1 else kw["mapping_fmaps"]
        mapping[f"Dense{i}/weight"] = (rng.standard_normal([fin, fout]) / lrmul).astype(np.float32)
        mapping[f"Dense{i}/bias"] = (rng.standard_normal([fout]) / lrmul * 0.1).astype(np.float32)
    main = {"lod": np.float32(0.0), "dlatent_avg": (0.5 * rng.standard_normal([dl])).astype(np.float32)}
    return main, mapping, syn


def make_networks(kw: dict, marker: Path, seed: int = 0) -> tuple[Network, Network, Network]:
    """``(G, D, Gs)`` as the reference training loop pickles them (G and Gs with different values)."""
    src = module_source(marker)
    num_layers = geometry(kw)[1] * 2 - 2

    def state(name: str, func: str, static: dict, variables: dict, components: dict | None = None) -> dict:
        return {
            "version": 4,
            "name": name,
            "static_kwargs": dict(static),
            "components": dict(components or {}),
            "build_module_src": src,
            "build_func_name": func,
            "variables": list(variables.items()),
        }

    def gen(name: str, rng: np.random.Generator) -> Network:
        main, mapping, syn = make_generator_vars(kw, rng)
        suffix = "" if name == "G" else "_1"
        comps = {
            "synthesis": Network(state(f"G_synthesis{suffix}", "G_synthesis_stylegan2_3d_curated_real", kw, syn)),
            "mapping": Network(
                state(f"G_mapping{suffix}", "G_mapping_3d", {**kw, "dlatent_broadcast": num_layers}, mapping)
            ),
        }
        return Network(state(name, "G_main", kw, main, comps))

    rng = np.random.default_rng(seed)
    g = gen("G", rng)
    d_vars = {"FromImage/weight": rng.standard_normal([1, 1, 1, 2, 4]).astype(np.float32)}
    d_kw = {**kw, "extra": EasyDict(mbstd_group_size=4)}  # exercises the EasyDict global
    d = Network(state("D", "D_stylegan2_3d_curated_real", d_kw, d_vars))
    gs = gen("Gs", rng)
    return g, d, gs


def write_pickle(path: Path, obj) -> Path:
    """Pickle as the reference does (``pickle.dump((G, D, Gs), f)``, default protocol 3 in Python 3.6/3.7).

    The numpy reconstruct global is spelled ``numpy.core.multiarray`` as numpy 1.x wrote it.
    """
    data = pickle.dumps(obj, protocol=3)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------
# Reference forward pass in numpy (float64)


def lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, 0.2 * x) * SQRT2


def mapping_forward(
    z: np.ndarray,
    mvars: dict,
    avg: np.ndarray,
    num_layers: int,
    lrmul: float,
    psi: float = 1.0,
    cutoff: int | None = None,
) -> np.ndarray:
    """``G_mapping_3d`` + broadcast + the truncation of ``G_main``: z [N, Z] -> dlatents [N, L, W]."""
    x = z.astype(np.float64)
    x = x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)
    i = 0
    while f"Dense{i}/weight" in mvars:
        w = mvars[f"Dense{i}/weight"].astype(np.float64)
        x = lrelu(x @ (w * (lrmul / np.sqrt(w.shape[0]))) + mvars[f"Dense{i}/bias"] * lrmul)
        i += 1
    x = np.repeat(x[:, None], num_layers, axis=1)
    if psi != 1.0:
        layer_psi = np.where(np.arange(num_layers) < (cutoff if cutoff is not None else num_layers), psi, 1.0)
        x = avg + (x - avg) * layer_psi[None, :, None]
    return x


def conv_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``tf.nn.conv3d(..., padding='SAME')`` (correlation): x [N, I, D, H, W], w [k, k, k, I, O]."""
    k = w.shape[0]
    p = (k - 1) // 2
    xp = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p), (p, p)])
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k, k), axis=(2, 3, 4))
    return np.einsum("nidhwabc,abcio->nodhw", win, w)


def setup_kernel(taps: list[float]) -> np.ndarray:
    k = np.asarray(taps, dtype=np.float64)
    k = np.multiply.outer(np.multiply.outer(k, k), k)
    return k / k.sum()


def upsample_conv(x: np.ndarray, w: np.ndarray, taps: list[float], factor: int = 2) -> np.ndarray:
    """``upsample_conv_3d`` of the reference: x [1, I, D, H, W], w [k, k, k, I, O] -> [1, O, 2D, 2H, 2W]."""
    k = w.shape[0]
    fir = setup_kernel(taps) * (factor**2)  # the reference keeps the 2-D gain factor**2
    # Transpose weights exactly as the reference: reshape to groups, w[::-1, ::-1], swap in/out.
    wt = w.reshape(k, k, k, w.shape[3], 1, w.shape[4])[::-1, ::-1].transpose(0, 1, 2, 5, 4, 3)
    filt = wt.reshape(k, k, k, w.shape[4], w.shape[3])  # conv3d_transpose filter [k, k, k, out, in]
    n, _, d, h, ww = x.shape
    y = np.zeros([n, filt.shape[3], (d - 1) * factor + k, (h - 1) * factor + k, (ww - 1) * factor + k])
    for a in range(k):  # conv3d_transpose = adjoint of a stride-2 VALID correlation
        for b in range(k):
            for c in range(k):
                y[
                    :,
                    :,
                    a : a + factor * (d - 1) + 1 : factor,
                    b : b + factor * (h - 1) + 1 : factor,
                    c : c + factor * (ww - 1) + 1 : factor,
                ] += np.einsum("nidhw,oi->nodhw", x, filt[a, b, c])
    pad0 = (fir.shape[0] + factor - k) // 2
    pad1 = (fir.shape[0] - factor - k + 3) // 2
    y = np.pad(y, [(0, 0), (0, 0), (pad0, pad1), (pad0, pad1), (pad0, pad1)])
    win = np.lib.stride_tricks.sliding_window_view(y, fir.shape, axis=(2, 3, 4))
    return np.einsum("nqdhwabc,abc->nqdhw", win, fir[::-1, ::-1, ::-1])


def modulated_conv(x: np.ndarray, dl: np.ndarray, scope: dict, up: bool, demodulate: bool, taps) -> np.ndarray:
    """``modulated_conv3d_layer`` (non-fused form): x [N, I, ...], dl [N, W]."""
    w = scope["weight"].astype(np.float64)
    k, cin = w.shape[0], w.shape[3]
    w = w / np.sqrt(k**3 * cin)
    mw = scope["mod_weight"].astype(np.float64)
    s = dl @ (mw / np.sqrt(mw.shape[0])) + scope["mod_bias"] + 1.0
    out = []
    for b in range(x.shape[0]):
        ww = w * s[b][None, None, None, :, None]
        if demodulate:
            ww = ww / np.sqrt(np.sum(ww**2, axis=(0, 1, 2, 3)) + 1e-8)[None, None, None, None, :]
        xb = x[b : b + 1]
        out.append(upsample_conv(xb, ww, taps) if up else conv_same(xb, ww))
    return np.concatenate(out)


def synthesis_forward(dlatents: np.ndarray, svars: dict, kw: dict, taps: list[float]) -> np.ndarray:
    """``G_synthesis_stylegan2_3d_curated_real`` (orig, randomize_noise=False): [N, L, W] -> [N, C, D, H, W]."""
    base, log2 = geometry(kw)
    bscope = "{}x{}X{}".format(*base)

    def scope(name: str) -> dict:
        return {k.rsplit("/", 1)[1]: v for k, v in svars.items() if k.rsplit("/", 1)[0] == name}

    def layer(x: np.ndarray, idx: int, name: str, up: bool) -> np.ndarray:
        sc = scope(name)
        x = modulated_conv(x, dlatents[:, idx], sc, up, True, taps)
        x = x + svars[f"noise{idx}"] * sc["noise_strength"]
        return lrelu(x + sc["bias"][None, :, None, None, None])

    n = dlatents.shape[0]
    x = np.repeat(svars[f"{bscope}/Const/const"].astype(np.float64), n, axis=0)
    x = layer(x, 0, f"{bscope}/Conv", False)
    for res in range(3, log2 + 1):
        name = "x".join(str(b * 2 ** (res - 2)) for b in base)
        x = layer(x, res * 2 - 5, f"{name}/Conv0_up", True)
        x = layer(x, res * 2 - 4, f"{name}/Conv1", False)
    sc = scope(f"{name}/ToRGB")
    y = modulated_conv(x, dlatents[:, 2 * log2 - 3], sc, False, False, taps)
    return y + sc["bias"][None, :, None, None, None]

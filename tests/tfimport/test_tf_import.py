"""import-tf: safe unpickling, variable mapping and forward equivalence with the reference (numpy)."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

import helpers.tf_reference as ref
from stylegan3d.checkpoint import load_generator, read_sidecar
from stylegan3d.cli.main import main
from stylegan3d.config import load_preset
from stylegan3d.data.spatial import MNI_CENTRE_MM, Geometry
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.nn import Generator, count_params
from stylegan3d.tf_import import convert, import_tf, load_tf_pickle, mni_affine


@pytest.fixture
def marker(tmp_path):
    """A file that must never appear: created only if code from a pickle runs."""
    path = tmp_path / "CODE_RAN"
    yield path
    assert not path.exists(), "code from the pickle was executed"


@pytest.fixture
def tf_pickle(tmp_path, monkeypatch, marker):
    """Write ``(G, D, Gs)`` for the tiny reference configuration; returns (path, kwargs, nets)."""
    ref.install_fake_dnnlib(monkeypatch)

    def write(name: str = "tiny.pkl", seed: int = 0, edit=None, **kw_over):
        kw = ref.make_kwargs(**kw_over)
        nets = ref.make_networks(kw, marker, seed=seed)
        if edit is not None:
            edit(nets)
        return ref.write_pickle(tmp_path / name, nets), kw, nets

    return write


def _vars(net: ref.Network, comp: str | None = None) -> dict[str, np.ndarray]:
    state = net.__getstate__()
    if comp is not None:
        state = state["components"][comp].__getstate__()
    return dict(state["variables"])


def _reference_output(nets, kw, z: np.ndarray, taps, psi=1.0, cutoff=None) -> np.ndarray:
    gs = nets[2]
    main_vars, mvars, svars = _vars(gs), _vars(gs, "mapping"), _vars(gs, "synthesis")
    num_layers = ref.geometry(kw)[1] * 2 - 2
    dl = ref.mapping_forward(z, mvars, main_vars["dlatent_avg"], num_layers, 0.01, psi, cutoff)
    return ref.synthesis_forward(dl, svars, kw, taps)


def _ours(g: Generator, z: np.ndarray, psi=1.0, cutoff=None, fused=None) -> np.ndarray:
    g.synthesis.fused = fused
    with torch.no_grad():
        ws = g.mapping(torch.from_numpy(z).float(), truncation_psi=psi, truncation_cutoff=cutoff)
        return g.synthesis(ws, noise_mode="const").double().numpy()


def _close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


# --------------------------------------------------------------------------------------------
# Forward equivalence with the reference


@pytest.mark.parametrize(
    ("taps_kw", "taps"),
    [({}, [1, 3, 3, 3, 1]), ({"resample_kernel": [1, 3, 3, 1]}, [1, 3, 3, 1])],
    ids=["source-default-5tap", "static-4tap"],
)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "nonfused"])
def test_forward_matches_numpy_reference(tf_pickle, taps_kw, taps, fused):
    path, kw, nets = tf_pickle(**taps_kw)
    res = convert(load_tf_pickle(path), name=path.name, spacing_mm=2.0)
    g = res.generator
    assert g.cfg.resolution == [8, 12, 16] and g.cfg.base_shape == [2, 3, 4]
    assert g.cfg.stage_widths("g") == [8, 8, 4]  # nf(1..3) with fmap_base 32, min 4, max 8
    assert g.cfg.g.up_filter == [float(t) for t in taps] and g.cfg.g.up_filter_gain == "reference"
    where = res.plan.provenance["synthesis.resample_kernel"]
    assert where == ("static_kwargs" if taps_kw else "source")
    z = np.random.RandomState(1).randn(3, kw["latent_size"])
    expected = _reference_output(nets, kw, z, taps)
    assert expected.shape == (3, 2, 8, 12, 16) and np.abs(expected).max() > 0.1
    _close(_ours(g, z, fused=fused), expected)
    _close(_ours(g, z, psi=0.6, cutoff=3, fused=fused), _reference_output(nets, kw, z, taps, psi=0.6, cutoff=3))


def test_forward_check_detects_wrong_flip_conventions(tf_pickle):
    """The reference flips the up-conv kernel on kd, kh only: a full flip or no flip must not match."""
    path, kw, nets = tf_pickle()
    g = convert(load_tf_pickle(path), name="t", spacing_mm=2.0).generator
    z = np.random.RandomState(2).randn(1, kw["latent_size"])
    expected = _reference_output(nets, kw, z, [1, 3, 3, 3, 1])
    _close(_ours(g, z), expected)
    scale = np.abs(expected).max()
    w = g.synthesis.layers[1].conv.weight
    orig = w.detach().clone()
    for variant in (orig.flip(4), orig.flip(2, 3), orig.flip(2, 3, 4)):  # full flip / no flip / ...
        with torch.no_grad():
            w.copy_(variant)
        assert np.abs(_ours(g, z) - expected).max() > 1e-2 * scale
    with torch.no_grad():
        w.copy_(orig)
        g.synthesis.layers[0].conv.affine.bias.sub_(1.0)  # forgetting the +1 on mod_bias
    assert np.abs(_ours(g, z) - expected).max() > 1e-2 * scale


def test_each_tensor_lands_in_its_parameter(tf_pickle):
    """Per layer, with explicit indices: the intended tensor, transpose and offset."""
    path, kw, nets = tf_pickle()
    g = convert(load_tf_pickle(path), name="t", spacing_mm=2.0).generator
    sd = g.state_dict()
    mv, sv, main_vars = _vars(nets[2], "mapping"), _vars(nets[2], "synthesis"), _vars(nets[2])
    rng = np.random.default_rng(0)
    for i in range(3):
        w = sd[f"mapping.layers.{i}.weight"].numpy()
        for o, j in rng.integers(0, 6, size=(5, 2)):
            assert w[o, j] == mv[f"Dense{i}/weight"][j, o]
        assert np.array_equal(sd[f"mapping.layers.{i}.bias"].numpy(), mv[f"Dense{i}/bias"])
    assert np.array_equal(sd["mapping.w_avg"].numpy(), main_vars["dlatent_avg"])
    assert np.array_equal(sd["synthesis.const"].numpy(), sv["2x3X4/Const/const"][0])
    layers = {0: "2x3X4/Conv", 1: "4x6x8/Conv0_up", 2: "4x6x8/Conv1", 3: "8x12x16/Conv0_up", 4: "8x12x16/Conv1"}
    for idx, scope in layers.items():
        p = f"synthesis.layers.{idx}"
        w, tw = sd[f"{p}.conv.weight"].numpy(), sv[f"{scope}/weight"]
        up = "up" in scope
        for o, i, a, b, c in zip(*(rng.integers(0, n, 12) for n in (w.shape[0], w.shape[1], 3, 3, 3)), strict=True):
            src = tw[2 - a, 2 - b, c, i, o] if up else tw[a, b, c, i, o]
            assert w[o, i, a, b, c] == src, (scope, o, i, a, b, c)
        aw, mw = sd[f"{p}.conv.affine.weight"].numpy(), sv[f"{scope}/mod_weight"]
        assert aw.shape == mw.T.shape and aw[1, 2] == mw[2, 1]
        np.testing.assert_allclose(sd[f"{p}.conv.affine.bias"].numpy(), sv[f"{scope}/mod_bias"] + 1.0, rtol=1e-6)
        assert float(sd[f"{p}.noise_strength"]) == float(sv[f"{scope}/noise_strength"])
        assert np.array_equal(sd[f"{p}.bias"].numpy(), sv[f"{scope}/bias"])
        assert np.array_equal(sd[f"{p}.noise_const"].numpy(), sv[f"noise{idx}"])
    tw = sv["8x12x16/ToRGB/weight"]
    assert np.array_equal(sd["synthesis.torgb.conv.weight"].numpy()[:, :, 0, 0, 0], tw[0, 0, 0].T)
    assert np.array_equal(sd["synthesis.torgb.bias"].numpy(), sv["8x12x16/ToRGB/bias"])


def test_imports_gs_by_default_and_g_on_request(tf_pickle):
    path, _, nets = tf_pickle()
    obj = load_tf_pickle(path)
    const_gs = convert(obj, "t", 2.0).generator.synthesis.const.numpy()
    const_g = convert(obj, "t", 2.0, which="G").generator.synthesis.const.numpy()
    assert np.array_equal(const_gs, _vars(nets[2], "synthesis")["2x3X4/Const/const"][0])
    assert np.array_equal(const_g, _vars(nets[0], "synthesis")["2x3X4/Const/const"][0])
    with pytest.raises(CheckpointError, match="no generator named 'D'"):
        convert(obj, "t", 2.0, which="D")


def test_full_size_2mm_f96_structure_gives_the_preset_geometry(tf_pickle):
    """A pickle with the reference's 2 mm F=96 variable set maps onto exactly the 2mm-f96 preset."""
    kw = dict(resolution=np.int64(80), base_size=[5, 6, 7], num_channels=1, latent_size=96, dlatent_size=96)
    kw.update(mapping_fmaps=96, mapping_layers=8, fmap_base=8 << 10, fmap_min=96, fmap_max=96)
    path, _, nets = tf_pickle(name="2mm_f96.pkl", **kw)
    res = convert(load_tf_pickle(path), name="2mm_f96.pkl")
    preset = load_preset("2mm-f96").model
    m = res.plan.cfg.model
    assert (m.resolution, m.base_shape, m.z_dim, m.w_dim, m.num_ws) == ([80, 96, 112], [5, 6, 7], 96, 96, 10)
    assert m.stage_widths("g") == preset.stage_widths("g") and m.g.widths is None
    n_preset = count_params(Generator(preset))
    assert sum(p.numel() for p in res.generator.parameters()) == n_preset
    n_vars = sum(len(_vars(nets[2], c)) for c in ("mapping", "synthesis")) + len(_vars(nets[2]))
    assert res.meta["tf_import"]["variables"] == n_vars
    assert res.plan.cfg.model.spacing_mm == 2.0 and res.meta["dataset"]["spacing"] == [2.0, 2.0, 2.0]


# --------------------------------------------------------------------------------------------
# Strictness: leftovers and unsupported variants


def _edit_syn(fn):
    def edit(nets):
        st = nets[2].__getstate__()["components"]["synthesis"].__getstate__()
        v = dict(st["variables"])
        fn(v)
        st["variables"] = list(v.items())

    return edit


def test_unused_variable_is_reported(tf_pickle):
    def extra(v):
        v["8x12x16/Conv1/extra_scale"] = np.ones(4, np.float32)

    path, _, _ = tf_pickle(edit=_edit_syn(extra))
    with pytest.raises(CheckpointError, match=r"unused TF variables: synthesis/8x12x16/Conv1/extra_scale"):
        convert(load_tf_pickle(path), "t", 2.0)


def test_missing_variable_is_reported(tf_pickle):
    path, _, _ = tf_pickle(edit=_edit_syn(lambda v: v.pop("4x6x8/Conv1/bias")))
    with pytest.raises(CheckpointError, match=r"synthesis variable 4x6x8/Conv1/bias is missing"):
        convert(load_tf_pickle(path), "t", 2.0)


def test_wrong_shape_is_reported(tf_pickle):
    def bad(v):
        v["4x6x8/Conv1/mod_bias"] = np.zeros(5, np.float32)

    path, _, _ = tf_pickle(edit=_edit_syn(bad))
    with pytest.raises(CheckpointError, match=r"4x6x8/Conv1/mod_bias \[5\].*shape \[5\] vs model \[8\]"):
        convert(load_tf_pickle(path), "t", 2.0)


def test_skip_architecture_is_refused(tf_pickle):
    def skip(v):
        v["2x3X4/ToRGB/weight"] = np.ones([1, 1, 1, 8, 2], np.float32)

    path, _, _ = tf_pickle(edit=_edit_syn(skip))
    with pytest.raises(CheckpointError, match="'skip' synthesis architecture"):
        convert(load_tf_pickle(path), "t", 2.0)


def test_kwargs_contradicting_variables_are_refused(tf_pickle):
    def say_16(nets):  # static kwargs claiming 3 up-sampling stages; the variables have 2
        nets[2].__getstate__()["components"]["synthesis"].__getstate__()["static_kwargs"]["resolution"] = 16

    path, _, _ = tf_pickle(edit=say_16)
    with pytest.raises(CheckpointError, match="resolution"):
        convert(load_tf_pickle(path), "t", 2.0)
    path, _, _ = tf_pickle(name="lab.pkl", label_size=3)
    with pytest.raises(CheckpointError, match="label_size=3"):
        convert(load_tf_pickle(path), "t", 2.0)


# --------------------------------------------------------------------------------------------
# Safety: nothing from the pickle runs


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess.Popen", "nested-in-network"])
def test_code_in_pickle_is_refused_and_never_runs(tmp_path, monkeypatch, marker, kind):
    ref.install_fake_dnnlib(monkeypatch)
    cmd = f"touch {marker}"
    payload = {
        "os.system": _Evil(os.system, cmd),
        "builtins.exec": _Evil(builtins.exec, f"open({str(marker)!r}, 'w').write('x')"),
        "subprocess.Popen": _Evil(subprocess.Popen, ["touch", str(marker)]),
    }.get(kind)
    if kind == "nested-in-network":
        nets = list(ref.make_networks(ref.make_kwargs(), marker))
        nets[2].__getstate__()["variables"].append(("evil", _Evil(os.system, cmd)))
        payload = tuple(nets)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=3))
    with pytest.raises(CheckpointError, match=r"refusing to load global (posix|os|builtins|subprocess)\."):
        load_tf_pickle(path)
    with pytest.raises(SystemExit) as e:
        main(["import-tf", str(path), "--out", str(tmp_path / "m.safetensors")])
    assert e.value.code == 2
    assert not (tmp_path / "m.safetensors").exists()


def test_pickle_module_source_is_only_parsed(tf_pickle, marker):
    path, _, _ = tf_pickle()
    data = path.read_bytes()
    assert b"the pickled module source was executed" in data
    for glob in (b"dnnlib.tflib.network\nNetwork", b"dnnlib.util\nEasyDict", b"numpy.core.multiarray\nscalar"):
        assert b"c" + glob + b"\n" in data  # protocol-3 GLOBAL opcodes with the reference's names
    res = convert(load_tf_pickle(path), "t", 2.0)
    assert res.plan.provenance["synthesis.randomize_noise"] == "source"
    assert res.meta["tf_import"]["randomize_noise"] is False and res.meta["tf_import"]["dtype"] == "float16"
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# CLI and the written model file


def test_cli_writes_a_model_that_loads_and_reports_its_origin(tf_pickle, tmp_path, capsys):
    path, kw, nets = tf_pickle()
    out = tmp_path / "models" / "tiny.safetensors"
    main(["import-tf", str(path), "--out", str(out), "--spacing", "3", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["origin"] == "import-tf:tiny.pkl" and summary["num_ws"] == 6
    assert summary["reference_noise"] == "const"
    meta = read_sidecar(out)
    assert meta.extra["origin"] == "import-tf:tiny.pkl"
    ds = meta.dataset
    assert ds["shape"] == [8, 12, 16] and ds["spacing"] == [3.0, 3.0, 3.0] and ds["channels"] == 2
    aff = np.asarray(ds["affine"])
    centre = aff @ np.array([4.0, 6.0, 8.0, 1.0])  # voxel shape // 2 at the MNI centre prepare uses
    np.testing.assert_allclose(centre[:3], MNI_CENTRE_MM)
    np.testing.assert_array_equal(aff, Geometry.from_shape([8, 12, 16], 3.0, frame="mni").affine)
    np.testing.assert_allclose(np.diag(aff)[:3], [3.0, 3.0, 3.0])
    g, _ = load_generator(out)
    z = np.random.RandomState(4).randn(2, kw["latent_size"])
    _close(_ours(g, z), _reference_output(nets, kw, z, [1, 3, 3, 3, 1]))
    main(["info", str(out), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["origin"] == "import-tf:tiny.pkl" and info["resolution"] == [8, 12, 16]
    assert info["g_params"] == summary["g_params"] == count_params(g.requires_grad_(True))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "pickle not found"),
        ("garbage", "not a readable network pickle"),
        ("nospacing", "cannot guess the voxel spacing of a 8x12x16 model"),
        ("suffix", "--out must end in .safetensors"),
        ("network", "--network must be Gs or G"),
    ],
)
def test_cli_user_errors_are_one_line(tf_pickle, tmp_path, capsys, setup, message):
    path, _, _ = tf_pickle()
    args = [str(path), "--out", str(tmp_path / "m.safetensors")]
    if setup == "missing":
        args[0] = str(tmp_path / "absent.pkl")
    elif setup == "garbage":
        (tmp_path / "g.pkl").write_bytes(b"\x80\x03not really a pickle")
        args[0] = str(tmp_path / "g.pkl")
    elif setup == "suffix":
        args = [str(path), "--out", str(tmp_path / "m.pt"), "--spacing", "2"]
    elif setup == "network":
        args += ["--network", "D", "--spacing", "2"]
    with pytest.raises(SystemExit) as e:
        main(["import-tf", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_known_grids_get_default_spacing_and_mni_affine():
    aff = mni_affine([80, 96, 112], 2.0)
    np.testing.assert_allclose(aff @ [40, 48, 56, 1.0], [0.0, -18.0, 6.0, 1.0])
    np.testing.assert_allclose(aff[:3, 3], [-80.0, -114.0, -106.0])
    np.testing.assert_array_equal(aff, Geometry.from_preset("2mm-f96", frame="mni").affine)  # one MNI grid
    from stylegan3d.tf_import import default_spacing

    assert default_spacing([80, 96, 112]) == 2.0 and default_spacing([160, 192, 224]) == 1.0
    with pytest.raises(UserError, match="pass --spacing"):
        default_spacing([40, 48, 56])


def test_import_tf_function_writes_files(tf_pickle, tmp_path):
    path, _, _ = tf_pickle()
    res = import_tf(path, tmp_path / "m.safetensors", spacing_mm=2.0)
    assert res.path == tmp_path / "m.safetensors" and res.path.is_file()
    assert (tmp_path / "m.json").is_file()
    mapped = read_sidecar(res.path).extra["tf_import"]["mapped"]
    assert ["synthesis/4x6x8/Conv0_up/weight", "synthesis.layers.1.conv.weight", "conv_up"] in mapped


@pytest.mark.parametrize("protocol", [2, 4])
def test_other_pickle_protocols_load_the_same_weights(tf_pickle, tmp_path, protocol):
    """Python 3.8 writes protocol 4 by default; protocol 2 stores bytes through ``_codecs.encode``."""
    path, _, nets = tf_pickle()
    other = tmp_path / f"p{protocol}.pkl"
    other.write_bytes(pickle.dumps(nets, protocol=protocol))
    if protocol == 2:
        assert b"_codecs" in other.read_bytes()
    a = convert(load_tf_pickle(path), "t", 2.0).generator.state_dict()
    b = convert(load_tf_pickle(other), "t", 2.0).generator.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

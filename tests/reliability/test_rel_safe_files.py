"""Safe files: pickles disguised as checkpoints, tampered safetensors headers (with the sidecar's
SHA-256 recomputed so only the parser and the shape/dtype checks can catch them) and ``.npz``
latents holding pickled objects are refused with one clear error, and no code from them runs.

Every payload is first shown to be live: loading it the unsafe way creates the marker file.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import helpers.reliability as rs
from helpers.data import TINY_SHAPE
from stylegan3d import checkpoint as ckpt
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.infer import api

ENTRY_POINTS = ("load_generator", "api.load", "cli info", "cli train --resume")


def assert_one_error_line(code: int, err: str, needle: str) -> None:
    lines = rs.error_lines(err)
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0] and "Traceback" not in err, err


def refuse(entry: str, path: Path, data: Path, out: Path) -> str:
    """Load ``path`` through ``entry``; returns the one-line reason it was refused (fails if it loads)."""
    if entry in ("load_generator", "api.load"):
        with pytest.raises(CheckpointError) as e:
            ckpt.load_generator(path) if entry == "load_generator" else api.load(path)
        assert "\n" not in str(e.value)
        return str(e.value)
    if entry == "cli info":
        code, _, err = rs.run_cli(["info", str(path)])
    else:
        args = ["train", "--data", str(data), "--out", str(out), "--resume", str(path), "--no-progress"]
        code, _, err = rs.run_cli([*args, "--device", "cpu"])
    assert_one_error_line(code, err, path.name)
    return err


@pytest.fixture(scope="module")
def base_ckpt(_trained_run) -> Path:
    """The newest checkpoint of the tiny trained run (G, D, G_ema, optimisers, RNG)."""
    return ckpt.resolve_checkpoint(_trained_run).path


def test_payloads_are_live(tmp_path):
    """Control: each payload really runs code when loaded the unsafe way (else the tests below prove nothing)."""
    for kind, blob in rs.pickle_payloads(tmp_path / "marker").items():
        marker = tmp_path / "marker"
        if kind.startswith("torch.save"):
            torch.load(io.BytesIO(blob), weights_only=False)
        else:
            pickle.loads(blob)
        assert marker.exists(), kind
        marker.unlink()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_pickle_checkpoints_are_refused_and_never_run(entry, base_ckpt, tiny_data, tmp_path):
    marker = tmp_path / "PWNED"
    for kind, blob in rs.pickle_payloads(marker).items():
        path = tmp_path / f"{kind}.safetensors"
        path.write_bytes(blob)
        meta = json.loads(ckpt.sidecar_path(base_ckpt).read_text())
        meta["sha256"] = ckpt.sha256_file(path)  # a valid-looking sidecar: the hash check passes
        ckpt.sidecar_path(path).write_text(json.dumps(meta))
        refuse(entry, path, tiny_data, tmp_path / f"out-{kind}")
        rs.BAD_INPUTS[f"pickle checkpoint ({entry})"] += 1
        with rs.intact("no code from a pickle payload ran"):
            assert not marker.exists(), f"{kind} via {entry}: code from the file ran"


def test_pickle_run_directory_is_refused(base_ckpt, tiny_data, tmp_path):
    """A run directory whose only checkpoint is a pickle: ``--resume RUN`` refuses it, nothing runs."""
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = run / "checkpoints" / "ckpt-00000009.safetensors"
    path.write_bytes(rs.pickle_payloads(marker)["pickle-p0"])
    meta = json.loads(ckpt.sidecar_path(base_ckpt).read_text())
    meta["sha256"] = ckpt.sha256_file(path)
    ckpt.sidecar_path(path).write_text(json.dumps(meta))
    (run / "latest").write_text(f"checkpoints/{path.name}\n")
    before = rs.tree_state(run)
    code, _, err = rs.run_cli(["train", "--data", str(tiny_data), "--out", str(run), "--resume", str(run)])
    assert_one_error_line(code, err, "no valid checkpoint")
    with rs.intact("no code from a pickle payload ran"):
        assert not marker.exists()
    assert rs.tree_state(run) == before  # refused before anything was written into the run
    rs.BAD_INPUTS["pickle checkpoint (run dir)"] += 1


def _target(header: dict) -> str:
    """A float32 G_ema tensor whose shape has distinct sizes (so a permutation changes it)."""
    return next(
        k
        for k in rs.tensor_keys(header)
        if k.startswith("G_ema.") and header[k]["dtype"] == "F32" and len(set(header[k]["shape"])) > 1
    )


def _tamper(kind: str, header: dict, data: bytes) -> tuple[dict, bytes]:
    h = copy.deepcopy(header)
    k = _target(h)
    a, b = h[k]["data_offsets"]
    if kind == "dtype F32->I32 (same size)":
        h[k]["dtype"] = "I32"
    elif kind == "dtype F32->F16":
        h[k]["dtype"] = "F16"
    elif kind == "dtype unknown":
        h[k]["dtype"] = "Q7"
    elif kind == "shape reversed (same numel)":
        h[k]["shape"] = h[k]["shape"][::-1]
    elif kind == "shape flattened (same numel)":
        h[k]["shape"] = [int(np.prod(h[k]["shape"]))]
    elif kind == "shape grown":
        h[k]["shape"][0] += 1
    elif kind == "offsets shifted":
        h[k]["data_offsets"] = [a + 4, b + 4]
    elif kind == "offsets overlap":
        other = next(o for o in rs.tensor_keys(h) if o != k)
        h[k]["data_offsets"] = h[other]["data_offsets"]
    elif kind == "key renamed":
        h["G_ema.evil"] = h.pop(k)
    elif kind == "key dropped":
        del h[k]
    elif kind == "metadata not strings":
        h["__metadata__"] = {"format": 5}
    elif kind == "data truncated":
        data = data[:-16]
    elif kind == "data appended":
        data = data + b"\0" * 16
    else:
        raise AssertionError(kind)
    return h, data


TAMPER_KINDS = [
    "dtype F32->I32 (same size)",
    "dtype F32->F16",
    "dtype unknown",
    "shape reversed (same numel)",
    "shape flattened (same numel)",
    "shape grown",
    "offsets shifted",
    "offsets overlap",
    "key renamed",
    "key dropped",
    "metadata not strings",
    "data truncated",
    "data appended",
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_tampered_safetensors_headers_are_refused(entry, base_ckpt, tiny_data, tmp_path):
    header, data = rs.read_safetensors_header(base_ckpt)
    for kind in TAMPER_KINDS:
        path = tmp_path / f"t-{TAMPER_KINDS.index(kind)}.safetensors"
        shutil.copy(ckpt.sidecar_path(base_ckpt), ckpt.sidecar_path(path))
        rs.write_safetensors_raw(path, *_tamper(kind, header, data))
        assert ckpt.read_sidecar(path).sha256 == ckpt.sha256_file(path)  # the hash check alone passes
        why = refuse(entry, path, tiny_data, tmp_path / f"out-{TAMPER_KINDS.index(kind)}")
        rs.BAD_INPUTS[f"tampered safetensors header ({entry})"] += 1
        assert "safetensors" in why or "does not match" in why or "no generator" in why, (kind, why)


def test_raw_header_garbage_is_refused(base_ckpt, tmp_path):
    """Header length prefix beyond the file, zero, or pointing into non-JSON bytes."""
    raw = base_ckpt.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    variants = {
        "length 2**62": struct.pack("<Q", 2**62) + raw[8:],
        "length 0": struct.pack("<Q", 0) + raw[8:],
        "length past end": struct.pack("<Q", len(raw)) + raw[8:],
        "header bytes garbage": raw[:8] + bytes(range(256)) * (n // 256) + b"\xff" * (n % 256) + raw[8 + n :],
        "only 4 bytes": raw[:4],
    }
    for kind, blob in variants.items():
        path = tmp_path / "g.safetensors"
        path.write_bytes(blob)
        shutil.copy(ckpt.sidecar_path(base_ckpt), ckpt.sidecar_path(path))
        rs.rehash_sidecar(path)
        with pytest.raises(CheckpointError, match="safetensors"):
            ckpt.load_generator(path)
        code, _, err = rs.run_cli(["info", str(path)])
        assert_one_error_line(code, err, path.name)
        rs.BAD_INPUTS[f"safetensors raw header: {kind}"] += 1


def _json_values():
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=12,
    )


def _mutate(meta: dict, path: list[str], value) -> dict:
    """``meta`` with the item at ``path`` replaced by ``value`` (or deleted when value is ``...``)."""
    out = copy.deepcopy(meta)
    obj = out
    for key in path[:-1]:
        obj = obj[key]
    if value is ...:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return out


def _paths(obj, prefix=()) -> list[tuple[str, ...]]:
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found.append((*prefix, k))
            found.extend(_paths(v, (*prefix, k)))
    return found


@pytest.mark.parametrize("scale", rs.SCALES)
def test_sidecar_fuzz_only_checkpoint_errors(scale, base_ckpt, tmp_path_factory):
    """The sidecar is not covered by the SHA-256: random edits of any field (config, dataset geometry,
    state ...) give a CheckpointError/UserError from load_generator, api.load and `info`, or a model
    that still loads and runs."""
    d = tmp_path_factory.mktemp("sidecar-fuzz")
    path = d / "m.safetensors"
    shutil.copy(base_ckpt, path)
    good = json.loads(ckpt.sidecar_path(base_ckpt).read_text())
    paths = _paths(good)

    @settings(max_examples=25 * scale, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(where=st.sampled_from(paths), value=st.just(...) | _json_values())
    def check(where, value):
        meta = _mutate(good, list(where), value)
        ckpt.sidecar_path(path).write_text(json.dumps(meta))
        rs.BAD_INPUTS["sidecar field edits (hypothesis)"] += 1
        try:
            g, _ = ckpt.load_generator(path)
        except UserError as e:
            assert "\n" not in str(e)
        else:  # accepted: the edit left a buildable model (e.g. kimg, metrics, a float setting)
            assert g(torch.zeros(1, g.z_dim), noise_mode="const").shape == (1, 1, *TINY_SHAPE)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = api.load(path)
        except UserError as e:
            assert "\n" not in str(e)
        except Exception as e:
            if rs.known_bug(e) is None:
                raise
        else:  # the world frame read from the sidecar is usable
            assert model.geometry.affine.shape == (4, 4) and np.isfinite(model.geometry.affine).all()
        code, _, err = rs.run_cli(["info", str(path)])
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 2:
            assert_one_error_line(code, err, "")

    check()


@pytest.fixture(scope="module")
def demo_model(model_file) -> api.Model:
    return api.load(model_file)


def _object_npz(path: Path, marker: Path, where: str) -> Path:
    """A latent .npz whose ``where`` array is a pickled object array (unpickling creates ``marker``)."""
    arrays = {"format": np.array("stylegan3d-latent"), "space": np.array("w+"), "ws": np.zeros((8, 4), np.float32)}
    arrays[where] = np.array([rs.MarkerPayload(marker)], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_object_array_npz_is_live(tmp_path):
    marker = tmp_path / "marker"
    path = _object_npz(tmp_path / "x.npz", marker, "ws")
    with np.load(path, allow_pickle=True) as z:
        z["ws"]
    assert marker.exists()


@pytest.mark.parametrize("where", ["ws", "noise_0", "model_sha256"])
def test_pickled_latents_are_refused(where, demo_model, model_file, tmp_path):
    marker = tmp_path / "PWNED"
    lat = _object_npz(tmp_path / "latent.npz", marker, where)
    renamed = tmp_path / "pickle.npz"
    renamed.write_bytes(rs.pickle_payloads(marker)["pickle-p4"])
    for bad in (lat, renamed):
        with pytest.raises(UserError):
            demo_model.load_latent(bad)
        for args in (
            ["mix", "--ckpt", str(model_file), "--rows", "1", "--cols", str(bad), "--styles", "0-1"],
            ["interpolate", "--ckpt", str(model_file), "--seeds", f"1,{bad}", "--frames", "2"],
        ):
            out = tmp_path / f"out-{args[0]}"
            code, _, err = rs.run_cli([*args, "--out", str(out)])
            assert_one_error_line(code, err, bad.name)
            assert not out.exists() or not any(out.iterdir())  # refused before any output
        rs.BAD_INPUTS["pickled latent .npz (api, mix, interpolate)"] += 3
        with rs.intact("no code from a pickle payload ran"):
            assert not marker.exists()


STATE_EDITS_CHECKPOINT = {
    "opt_G param groups garbage": lambda m: m["state"].__setitem__("opt_G", {"param_groups": [{"lr": "x"}]}),
    "rng numpy state garbage": lambda m: m["state"]["rng"].__setitem__("numpy", [1, 2]),
}
STATE_EDITS_LOOP = {
    "state missing": lambda m: m.pop("state"),
    "state not an object": lambda m: m.__setitem__("state", 5),
    "sampler missing": lambda m: m["state"].pop("sampler"),
    "sampler epoch a string": lambda m: m["state"].__setitem__("sampler", {"epoch": "x", "pos": 0}),
    "step a string": lambda m: m["state"].__setitem__("step", "abc"),
    "opt_G missing": lambda m: m["state"].pop("opt_G"),
    "dataset not an object": lambda m: m.__setitem__("dataset", "x"),
}


def _resume_with_edited_sidecar(base: Path, tmp: Path, edit, data: Path) -> None:
    from stylegan3d.train.loop import Trainer

    path = tmp / base.name
    shutil.copy(base, path)
    meta = json.loads(ckpt.sidecar_path(base).read_text())
    edit(meta)
    ckpt.sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as e:
        Trainer(rs.tiny_config("train.kimg=0.008"), data, tmp / "out", resume=path, device="cpu", progress=False)
    assert "\n" not in str(e.value)


def test_resume_with_malformed_optimizer_or_rng_state(base_ckpt, tiny_data, tmp_path):
    for i, (kind, edit) in enumerate(STATE_EDITS_CHECKPOINT.items()):
        (tmp_path / str(i)).mkdir()
        _resume_with_edited_sidecar(base_ckpt, tmp_path / str(i), edit, tiny_data)
        rs.BAD_INPUTS[f"resume: sidecar training state edited ({kind})"] += 1


def test_resume_with_malformed_training_state(base_ckpt, tiny_data, tmp_path):
    for i, (kind, edit) in enumerate(STATE_EDITS_LOOP.items()):
        (tmp_path / str(i)).mkdir()
        rs.BAD_INPUTS[f"resume: sidecar training state edited ({kind})"] += 1
        _resume_with_edited_sidecar(base_ckpt, tmp_path / str(i), edit, tiny_data)


@pytest.mark.parametrize(
    "edit",
    [
        ("affine", {}),
        ("affine", [[1, 2], [3]]),
        ("affine", "eye"),
        ("shape", "abc"),
        ("shape", ["a", "b", "c"]),
        ("shape", [20.5, 24, 28]),
        ("spacing", [8, "x", 8]),
        ("spacing", [8, -8, 8]),
        ("frame", ["mni"]),
        ("frame", "talairach"),
        ("intensity", 3),
        ("intensity", {"lower_pct": "low"}),
        ("intensity", {"lower_pct": 90, "upper_pct": 10}),
        ("mask_threshold", [0.1]),
        ("mask_threshold", 2.0),
        (None, 5),
        (None, [1, 2]),
    ],
    ids=lambda e: f"{e[0] or 'dataset'}={json.dumps(e[1])}",
)
def test_api_load_with_malformed_dataset_geometry(edit, base_ckpt, tmp_path):
    path = tmp_path / base_ckpt.name
    shutil.copy(base_ckpt, path)
    meta = json.loads(ckpt.sidecar_path(base_ckpt).read_text())
    key, value = edit
    if key is None:
        meta["dataset"] = value
    else:
        meta["dataset"][key] = value
    ckpt.sidecar_path(path).write_text(json.dumps(meta))
    rs.BAD_INPUTS["api.load: malformed dataset geometry in the sidecar"] += 1
    with pytest.raises(CheckpointError, match="checkpoint dataset") as e:
        api.load(path)
    assert "\n" not in str(e.value)

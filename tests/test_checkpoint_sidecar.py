"""The sidecar dataclasses write the JSON every checkpoint and shipped model already has."""

import json
from pathlib import Path

import pytest

from stylegan3d import checkpoint as ckpt
from stylegan3d.errors import CheckpointError

MODELS = Path(ckpt.__file__).parent / "models"


@pytest.mark.parametrize("side", sorted(MODELS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_sidecar_round_trips(side):
    raw = json.loads(side.read_text())
    meta = ckpt.Sidecar.from_dict(raw)
    assert meta.to_dict() == raw
    assert meta.sha256 == raw["sha256"] and meta.config == raw["config"]


def test_resume_state_round_trips_and_rejects_garbage():
    state = {
        "cur_nimg": 8, "step": 2, "tick": 1, "bad_steps_total": 0, "sampler": {"epoch": 0, "pos": 8}, "ada": None,
        "opt_G": {"param_groups": []}, "opt_D": {"param_groups": []}, "rng": {}, "precision": "fp32", "world_size": 1,
    }  # fmt: skip
    meta = ckpt.Sidecar(config={}, state=state)
    assert meta.resume_state().to_dict() == state
    assert list(meta.to_dict()) == ["config", "state"]  # fields that are not set are not written
    for bad in (None, 5, {**state, "step": "abc"}, {k: v for k, v in state.items() if k != "sampler"}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            ckpt.Sidecar(config={}, state=bad).resume_state()


def test_checkpoint_is_resolved_once(tmp_path, monkeypatch):
    from stylegan3d.config import load_preset
    from stylegan3d.nn import Generator

    cfg = load_preset("demo")
    path = ckpt.save_model(tmp_path / "m.safetensors", Generator(cfg.model), cfg.to_dict(), {"origin": "test"})
    hashed = []
    real = ckpt.sha256_file
    monkeypatch.setattr(ckpt, "sha256_file", lambda p: hashed.append(p) or real(p))
    found = ckpt.resolve_checkpoint(path)
    assert hashed == [path] and found.path == path and found.config.model == cfg.model
    assert ckpt.resolve_checkpoint(found) is found and hashed == [path]  # a Checkpoint is not checked again
    assert found.meta.extra == {"origin": "test"} and found.meta.step == 0
    found.require_network(cfg)
    other = load_preset("2mm-f96")
    with pytest.raises(CheckpointError, match="another network config.*model.resolution"):
        found.require_network(other)

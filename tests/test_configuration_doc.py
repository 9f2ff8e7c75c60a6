"""docs/configuration.md lists every configuration field with its current default, and every
shipped preset with its geometry and parameter counts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from stylegan3d.cli.info import describe
from stylegan3d.config import Config, DConfig, GConfig, ModelConfig, TrainConfig, list_presets, load_preset

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _rows() -> dict[str, list[str]]:
    """Table rows keyed by their first cell (without backticks)."""
    rows = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _fields() -> dict[str, object]:
    out = {}
    for cls, prefix in ((ModelConfig, "model."), (GConfig, "model.g."), (DConfig, "model.d."), (TrainConfig, "train.")):
        inst = cls()
        for f in dataclasses.fields(cls):
            value = getattr(inst, f.name)
            if not dataclasses.is_dataclass(value):
                out[prefix + f.name] = value
    return out


def test_every_field_is_documented_with_its_default() -> None:
    rows = _rows()
    fields = _fields()
    assert len(fields) > 40
    missing = [k for k in fields if k not in rows]
    assert not missing, f"fields missing from docs/configuration.md: {missing}"
    wrong = {k: (rows[k][0], json.dumps(v)) for k, v in fields.items() if rows[k][0] != f"`{json.dumps(v)}`"}
    assert not wrong, f"documented default differs from the dataclass (doc, code): {wrong}"
    assert all(len(rows[k]) == 2 and len(rows[k][1]) > 10 for k in fields)  # a meaning for each
    stale = [k for k in rows if k.startswith(("model.", "train.")) and k not in fields]
    assert not stale, f"documented fields that no longer exist: {stale}"
    text = DOC.read_text()
    assert all(f"`{f.name}`" in text for f in dataclasses.fields(Config) if f.name not in ("model", "train"))


def test_every_preset_is_documented() -> None:
    rows = _rows()
    assert sorted(k for k in rows if k in list_presets()) == list_presets()
    for name in list_presets():
        cfg = load_preset(name)
        info = describe(cfg)
        cells = rows[name]
        assert cells[0] == "x".join(str(s) for s in cfg.model.resolution)
        assert cells[1] == f"{cfg.model.spacing_mm:g} mm"
        assert cells[2] == f"{cfg.model.g.width} / {cfg.model.d.width}"
        assert cells[3] == str(cfg.model.z_dim) and cfg.model.w_dim == cfg.model.z_dim
        assert cells[4] == str(info["num_ws"])
        assert cells[5] == f"{info['g_params'] / 1e6:.2f} M" and cells[6] == f"{info['d_params'] / 1e6:.2f} M"
        assert cells[7] == str(cfg.train.batch) and cells[8] == f"{cfg.train.kimg:g}"


def test_override_syntax_examples_in_the_doc_are_valid() -> None:
    from stylegan3d.config import apply_overrides

    sets = re.findall(r"--preset (\S+) ((?:--set \S+ ?)+)", DOC.read_text())
    assert len(sets) >= 3
    for preset, args in sets:
        if preset.endswith(".json"):
            continue
        overrides = args.split("--set")[1:]
        cfg = apply_overrides(load_preset(preset), [o.strip() for o in overrides])
        assert cfg.validate() is cfg
    cfg = apply_overrides(load_preset("2mm-f96"), ["g.width=64", "z_dim=128", "d.width=64"])
    assert (cfg.model.g.width, cfg.model.d.width, cfg.model.z_dim, cfg.model.w_dim) == (64, 64, 128, 128)

"""User errors: every subcommand given a missing path, a wrong option value or an incompatible
checkpoint prints exactly one ``error:`` line on stderr and exits non-zero (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.train import MODEL_OVERRIDES
from stylegan3d.checkpoint import save_model
from stylegan3d.cli.main import main
from stylegan3d.config import apply_overrides, load_preset
from stylegan3d.nn import Generator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-errors")
    cfg = apply_overrides(load_preset("demo"), MODEL_OVERRIDES)
    torch.manual_seed(0)
    model = save_model(d / "model.safetensors", Generator(cfg.model), cfg.to_dict())
    pkl = d / "weights.pt"
    torch.save({"x": torch.zeros(1)}, pkl)
    pkl.with_suffix(".json").write_text(model.with_suffix(".json").read_text())
    text = d / "notes.txt"
    text.write_text("not a volume\n")
    return {"dir": d, "model": model, "pickle": pkl, "text": text}


def cases(f: dict[str, Path]) -> list[tuple[str, list[str]]]:
    missing = str(f["dir"] / "missing")
    m = str(f["model"])
    out = str(f["dir"] / "out")
    return [
        ("info missing ckpt", ["info", missing]),
        ("info unknown preset", ["info", "--preset", "nope"]),
        ("info bad override", ["info", "--preset", "demo", "--set", "g.width=abc"]),
        ("info unknown key", ["info", "--preset", "demo", "--set", "bogus=1"]),
        ("info pickle ckpt", ["info", str(f["pickle"])]),
        ("unknown option", ["info", "--bogus"]),
        ("synth bad n", ["synth", "--out", out, "--n", "0"]),
        ("synth bad spacing", ["synth", "--out", out, "--n", "1", "--spacing", "-2"]),
        ("prepare missing src", ["prepare", missing, "--out", out, "--preset", "demo"]),
        ("prepare bad shape", ["prepare", str(f["text"]), "--out", out, "--shape", "1,2", "--spacing", "2"]),
        ("train missing data", ["train", "--data", missing, "--out", out]),
        ("train bad preset", ["train", "--data", str(f["dir"]), "--out", out, "--preset", "nope"]),
        ("generate missing ckpt", ["generate", "--ckpt", missing, "--seeds", "0-1", "--out", out]),
        ("generate bad seeds", ["generate", "--ckpt", m, "--seeds", "a-b", "--out", out]),
        ("generate bad noise", ["generate", "--ckpt", m, "--seeds", "0", "--noise", "loud", "--out", out]),
        ("generate pickle ckpt", ["generate", "--ckpt", str(f["pickle"]), "--seeds", "0", "--out", out]),
        ("generate missing prior", ["generate", "--ckpt", m, "--seeds", "0", "--prior", "nosuch", "--out", out]),
        ("generate model as prior", ["generate", "--ckpt", m, "--seeds", "0", "--prior", m, "--out", out]),
        ("fit-prior missing data", ["fit-prior", "--ckpt", m, "--data", missing, "--out", out]),
        ("fit-prior text data", ["fit-prior", "--ckpt", m, "--data", str(f["text"]), "--out", out]),
        ("fit-prior out is a folder", ["fit-prior", "--ckpt", m, "--data", str(f["dir"]), "--out", str(f["dir"])]),
        ("project missing target", ["project", "--ckpt", m, "--target", missing, "--out", out]),
        ("project text target", ["project", "--ckpt", m, "--target", str(f["text"]), "--out", out]),
        ("project bad space", ["project", "--ckpt", m, "--target", str(f["text"]), "--space", "q", "--out", out]),
        ("mix bad styles", ["mix", "--ckpt", m, "--rows", "1", "--cols", "2", "--styles", "0-99", "--out", out]),
        ("interpolate one seed", ["interpolate", "--ckpt", m, "--seeds", "1", "--out", out]),
        ("metrics missing data", ["metrics", "--ckpt", m, "--data", missing]),
        ("metrics unknown metric", ["metrics", "--ckpt", m, "--data", str(f["dir"]), "--metrics", "nope"]),
        ("import-tf missing", ["import-tf", missing, "--out", out + ".safetensors"]),
        ("import-tf not pickle", ["import-tf", str(f["text"]), "--out", out + ".safetensors"]),
        ("demo bad subjects", ["demo", "--out", out, "--subjects", "1"]),
    ]


def test_every_user_error_is_one_line(files, capsys):
    failures = []
    for name, argv in cases(files):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        code = exc.value.code
        # prepare processes many files: a progress bar and per-file report may precede the final line
        lines = err[-1:] if name.startswith("prepare") else err
        if not code or len(lines) != 1 or not lines[0].startswith("error: ") or any("Traceback" in e for e in err):
            failures.append((name, code, err[-3:]))
    assert not failures, failures


def test_console_script_reports_error_without_traceback(files):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stylegan3d",
            "generate",
            "--ckpt",
            str(files["dir"] / "x"),
            "--seeds",
            "0",
            "--out",
            str(files["dir"] / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: checkpoint not found") and proc.stderr.count("\n") == 1


def test_cli_reference_doc_is_current():
    from stylegan3d.cli.reference import cli_reference

    doc = (ROOT / "docs" / "cli.md").read_text()
    assert doc == cli_reference(), "docs/cli.md is stale: run `make docs`"

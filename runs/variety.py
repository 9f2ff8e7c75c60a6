"""Variety of a checkpoint beyond one seed set (issue 18): recall of 128 generated volumes against
half A of the held-out subjects, repeated over several disjoint seed sets.

    .venv/bin/python runs/variety.py NAME CKPT [SETS]   # CKPT: a training checkpoint or a shipped model name
    PRIOR=demo-8mm .venv/bin/python runs/variety.py ...   # seeds drawn from a W prior (file or shipped name)
    TRUNC=0.9 .venv/bin/python runs/variety.py ...        # truncation psi (toward the prior's mean with PRIOR)
    .venv/bin/python runs/variety.py --table NAME...    # mean and SD per evaluated checkpoint

Seed set s is seeds 1000·s … 1000·s + 127 for s = 2 … SETS + 1 (s = 2 is what `evaluate.sh` uses).
One seed set moves 128-sample recall by ±0.1 around its mean (the shipped model: 0.16 with seeds
2000–2127, 0.31 with 3000–3127), so comparisons of variety use the mean over sets. JSON per set in
runs/eval/NAME/variety/ (committed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = HERE.parent / ".venv" / "bin"
KEYS = ("recall", "precision", "density", "coverage", "fd3d")


def kimg_of(ckpt: str) -> str:
    """The checkpoint's (or shipped model's) kimg as the file names write it (``0345.00``)."""
    from stylegan3d.models import resolve_model_or_path

    sidecar = resolve_model_or_path(ckpt).with_suffix(".json")
    return f"{json.loads(sidecar.read_text())['kimg']:07.2f}"


def measure(name: str, ckpt: str, sets: int) -> None:
    out = HERE / "eval" / name / "variety"
    out.mkdir(parents=True, exist_ok=True)
    source = ["--ckpt", ckpt] if Path(ckpt).is_file() else ["--model", ckpt]
    data = "ds4mm-heldout" if name.startswith("4mm") else "ds8mm-heldout"
    label = kimg_of(ckpt)
    prior = os.environ.get("PRIOR")
    if prior:
        source += ["--prior", prior]
        label += f"-prior-{Path(prior).name.removesuffix('.prior.safetensors')}"
    trunc = os.environ.get("TRUNC")
    if trunc:
        source += ["--trunc", trunc]
        label += f"-psi{trunc}"
    for s in range(2, sets + 2):
        path = out / f"kimg-{label}-seeds{s * 1000}.json"
        if path.is_file():
            continue
        seeds = f"{s * 1000}-{s * 1000 + 127}"
        cmd = [str(BIN / "stylegan3d"), "metrics", *source, "--data", str(HERE / data)]
        cmd += ["--metrics", "prdc,fd3d", "--n", "128", "--seeds", seeds, "--boot", "0"]
        cmd += ["--no-real-vs-real", "--json", str(path), "--quiet"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"wrote {path.relative_to(HERE)}", flush=True)


def table(names: list[str]) -> None:
    print("| run | kimg | sets | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 3) + "|")
    for name in names:
        groups: dict[str, list[dict]] = {}
        for path in sorted((HERE / "eval" / name / "variety").glob("kimg-*-seeds*.json")):
            label = path.name.split("-seeds")[0].removeprefix("kimg-")
            groups.setdefault(label, []).append(json.loads(path.read_text())["metrics"])
        for label, rows in groups.items():
            cells = []
            for key in KEYS:
                v = np.array([r[key]["value"] for r in rows])
                cells.append(f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}")
            print(f"| `{name}` | {label} | {len(rows)} | " + " | ".join(cells) + " |")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--table"]:
        table(argv[1:])
    elif len(argv) in (2, 3):
        measure(argv[0], argv[1], int(argv[2]) if len(argv) == 3 else 8)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

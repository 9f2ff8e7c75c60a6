"""Learning curves of a long run (issue 18): metrics of runs/eval/NAME/kimg-*.json against kimg,
each with its real-vs-real value, plus the training losses and ADA p from the run's stats.jsonl.

    .venv/bin/python runs/curves.py demo-8mm   # -> docs/images/quality-curves-demo-8mm.png + a table
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from stylegan3d import viz

HERE = Path(__file__).resolve().parent
PANELS = [  # metric key, title, better
    ("fd3d", "3-D Fréchet distance (deepbet)", "lower"),
    ("fid_slice", "slice FID (reference mode)", "lower"),
    ("fid_triplanar", "tri-planar FID", "lower"),
    ("bmmd2", "bMMD²", "lower"),
    ("ms_ssim", "MS-SSIM within set", "close to real"),
    ("precision", "precision", "higher"),
    ("recall", "recall", "higher"),
]


def load_evals(name: str) -> list[tuple[float, dict, dict | None]]:
    """``(kimg, metrics, train-memorisation metrics or None)`` per evaluated checkpoint, by kimg."""
    rows = []
    for path in sorted((HERE / "eval" / name).glob("kimg-*.json")):
        m = re.fullmatch(r"kimg-([\d.]+)\.json", path.name)
        if not m:
            continue
        mem = path.with_name(path.stem + "-memorisation-train.json")
        rows.append(
            (
                float(m.group(1)),
                json.loads(path.read_text())["metrics"],
                json.loads(mem.read_text())["metrics"] if mem.is_file() else None,
            )
        )
    return sorted(rows, key=lambda r: r[0])


def value(entry: dict | None, rvr: bool = False) -> float:
    if entry is None:
        return float("nan")
    e = entry.get("real_vs_real") if rvr else entry
    return float("nan") if not e or e.get("value") is None else float(e["value"])


def table(rows: list[tuple[float, dict, dict | None]]) -> str:
    """Markdown: one row per evaluated kimg, real-vs-real (of the last evaluation) as the last row."""
    keys = [k for k, _, _ in PANELS] + ["memorisation"]
    head = "| kimg | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n"
    lines = []
    for kimg, m, mem in rows:
        cells = [f"{value(m.get(k)):.4g}" for k in keys[:-1]]
        cells.append(f"{value(mem.get('memorisation')):.3g}" if mem else "-")
        lines.append(f"| {kimg:g} | " + " | ".join(cells) + " |")
    last = rows[-1][1]
    rvr = [f"{value(last.get(k), rvr=True):.4g}" for k in keys[:-1]] + [f"{value(last.get('memorisation'), True):.3g}"]
    lines.append("| real vs real | " + " | ".join(rvr) + " |")
    return head + "\n".join(lines) + "\n"


def plot(name: str, rows: list[tuple[float, dict, dict | None]], out: Path) -> Path:
    import matplotlib.pyplot as plt

    # the whole history is eval/NAME/stats.jsonl (`train.sh NAME --save` merges the run folder's rows into
    # it; the run folder alone starts where its last resume did)
    stats_file = HERE / "eval" / name / "stats.jsonl"
    stats = [json.loads(line) for line in stats_file.read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    kimg = np.array([r[0] for r in rows])
    for ax, (key, title, better) in zip(axes.flat, PANELS, strict=False):
        vals = np.array([value(r[1].get(key)) for r in rows])
        lo_hi = np.array([(r[1].get(key) or {}).get("ci95") or [np.nan, np.nan] for r in rows], dtype=float)
        ax.plot(kimg, vals, "o-", label="generated")
        ax.fill_between(kimg, lo_hi[:, 0], lo_hi[:, 1], alpha=0.2)
        rvr = [value(r[1].get(key), rvr=True) for r in rows]
        ax.axhline(np.nanmean(rvr), color="k", ls="--", label="real vs real")
        ax.set_title(f"{title} ({better})")
        ax.set_xlabel("kimg")
    ax = axes.flat[-1]
    sk = np.array([s["kimg"] for s in stats])
    for key in ("loss/G", "loss/D_real", "loss/D_fake", "aug/p"):
        if key in stats[0]:
            ax.plot(sk, [s.get(key, np.nan) for s in stats], label=key.split("/")[-1], lw=0.8)
    ax.set_title("training losses and ADA p")
    ax.set_xlabel("kimg")
    ax.legend(fontsize=8)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{name}: metrics on held-out synthetic subjects (64 generated vs 64 real; 95% bootstrap CI)")
    fig.tight_layout()
    viz.save_figure(out, fig)
    return out


def main(name: str) -> None:
    rows = load_evals(name)
    if not rows:
        raise SystemExit(f"error: no evaluations in {HERE / 'eval' / name}")
    out = plot(name, rows, HERE.parent / "docs" / "images" / f"quality-curves-{name}.png")
    print(table(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-8mm")

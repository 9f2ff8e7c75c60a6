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
    """``(kimg, metrics, extra metrics or None)`` per evaluated checkpoint, by kimg; the extras are
    memorisation against the training subjects and the recall of 128 generated volumes."""
    rows = []
    for path in sorted((HERE / "eval" / name).glob("kimg-*.json")):
        m = re.fullmatch(r"kimg-([\d.]+)\.json", path.name)
        if not m:
            continue
        extra = {}
        for suffix, key, as_key in (
            ("-memorisation-train", "memorisation", "memorisation"),
            ("-gen128-vs-halfA", "recall", "recall@128"),
        ):
            f = path.with_name(path.stem + suffix + ".json")
            if f.is_file():
                extra[as_key] = json.loads(f.read_text())["metrics"][key]
        rows.append((float(m.group(1)), json.loads(path.read_text())["metrics"], extra or None))
    return sorted(rows, key=lambda r: r[0])


def value(entry: dict | None, rvr: bool = False) -> float:
    if entry is None:
        return float("nan")
    e = entry.get("real_vs_real") if rvr else entry
    return float("nan") if not e or e.get("value") is None else float(e["value"])


def table(rows: list[tuple[float, dict, dict | None]], real128: Path | None) -> str:
    """Markdown: one row per evaluated kimg, real-vs-real (of the last evaluation) as the last row."""
    keys = [k for k, _, _ in PANELS]
    extras = ["recall@128", "memorisation"]
    head = "| kimg | " + " | ".join(keys + extras) + " |\n|" + "---|" * (len(keys) + len(extras) + 1) + "\n"
    lines = []
    for kimg, m, extra in rows:
        cells = [f"{value(m.get(k)):.4g}" for k in keys]
        cells += [f"{value(extra.get(k)):.3g}" if extra and k in extra else "-" for k in extras]
        lines.append(f"| {kimg:g} | " + " | ".join(cells) + " |")
    last = rows[-1][1]
    # real vs real of recall@128: 128 real training subjects against the same half A
    reals128 = real128 and json.loads(real128.read_text())["metrics"]["recall"]
    rvr = [f"{value(last.get(k), rvr=True):.4g}" for k in keys]
    rvr += [f"{value(reals128):.3g}" if reals128 else "-", f"{value(last.get('memorisation'), True):.3g}"]
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
        if key == "recall":
            r128 = [(r[0], value(r[2]["recall@128"])) for r in rows if r[2] and "recall@128" in r[2]]
            if r128:
                ax.plot(*zip(*r128, strict=True), "s", color="C3", label="128 generated")
                ax.legend(fontsize=8)
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
    # the 8 mm runs share one cohort, so one real baseline of recall@128 (measured at 8 mm only)
    real128 = HERE / "eval" / "demo-8mm" / "n128" / "train128-vs-halfA.json"
    print(table(rows, real128 if name.startswith("demo-8mm") else None))
    out = plot(name, rows, HERE.parent / "docs" / "images" / f"quality-curves-{name}.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-8mm")

"""The study's outputs: ``study.md`` (one row per point and a real-vs-real row) and ``study.png``."""

from __future__ import annotations

import math
from pathlib import Path

from stylegan3d.viz import pyplot, save_figure


def fmt(x: float | None) -> str:
    """A number for tables and logs: 3 significant digits, exponent form when very large or small, ``-`` for none."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.2e}"
    return f"{x:.3g}" if ax < 100 else f"{x:.0f}"


def _cell(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci95")
    return f"{fmt(entry['value'])} [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else fmt(entry["value"])


def metric_keys(doc: dict) -> list[str]:
    """Metric columns in first-seen order (``prdc`` expands to precision/recall/density/coverage)."""
    keys: list[str] = []
    for p in doc["points"]:
        for k in p["metrics"]:
            if k not in keys:
                keys.append(k)
    return keys


def _si(x: float) -> str:
    """Compact axis label: 43.1k, 2.4M, 0.72."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def markdown_report(doc: dict) -> str:
    """The study as Markdown: command, settings, one row per point and a real-vs-real row."""
    s, env = doc["settings"], doc.get("environment", {})
    keys = metric_keys(doc)
    better = {}
    for p in doc["points"]:
        for k, e in p["metrics"].items():
            better.setdefault(k, e.get("better", ""))
    lines = ["# Network-size study", ""]
    if doc.get("command"):
        lines += ["Command:", "", "```", doc["command"], "```", ""]
    seeds = s.get("seeds")
    grid_text = "; ".join(f"`{k}` = " + ", ".join(v) for k, v in s["grid"].items())
    seed_text = f"{seeds[0]}-{seeds[-1]}" if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)
    lines += [
        f"- data: `{s['data']}` (manifest sha256 `{s['data_manifest_sha256'][:12]}`)",
        f"- base preset: `{s['base']}`; overrides: {', '.join(f'`{o}`' for o in s['overrides']) or 'none'}",
        f"- grid: {grid_text}",
        f"- training length: {s['kimg'] if s['kimg'] is not None else 'preset default'} kimg per point "
        f"({s['launcher']} launcher, {s['nproc']} process(es))",
        f"- metrics: {', '.join(s['metrics'])}; {s['n'] or 'default'} generated volumes per point "
        f"(seeds {seed_text}), evaluation seed {s['eval_seed']}, {s['n_boot']} bootstrap resamples",
        f"- bench: `stylegan3d.bench`, {s['bench_repeats']} timed repeats of each step kind per point on "
        f"{env.get('device', '?')} "
        f"({env.get('device_name', '')}, {env.get('torch_threads', '?')} torch threads, torch {env.get('torch', '?')})",
        "",
    ]
    head = ["config", "G params", "D params", "kimg", "s/kimg", "GFLOP/img", "peak mem GiB"]
    head += [f"{k} ({better[k]})" if better.get(k) else k for k in keys]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in doc["points"]:
        b = p["bench"]
        row = [
            f"`{p['label']}`",
            _params(p["params"]["G"]),
            _params(p["params"]["D"]),
            f"{p['kimg']:.3g}",
            fmt(b["sec_per_kimg"]),
            fmt(b["gflop_per_img"]),
            fmt(b["peak_mem_gb"]),
        ]
        row += [_cell(p["metrics"].get(k)) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    if doc.get("real_vs_real"):
        row = ["real vs real (reference)", "", "", "", "", "", ""]
        row += [_cell(doc["real_vs_real"].get(k)) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Metric cells: value [95% bootstrap CI]. The real-vs-real row is the same metric between two "
        "disjoint halves of the real data (the generated volumes are compared with the first half).",
    ]
    if doc["points"]:
        b = doc["points"][0]["bench"]
        lines += [
            f"s/kimg: training step time from `stylegan3d.bench` (median of the timed repeats; path-length and "
            f"R1 steps amortised over their lazy intervals; batch {b['batch']}, {b['precision']}, "
            f"{b['threads']} torch threads), without checkpoints or snapshots. GFLOP/img: FLOPs of that amortised "
            "step (G and D, forward and backward, counted by torch's FlopCounterMode) per image. "
            f"Peak memory: {b['mem_kind']} over the timed steps.",
        ]
    return "\n".join(lines) + "\n"


def plot_study(doc: dict, path: Path) -> Path:
    """Each metric (rows) against G+D parameters and against training compute (columns), with the
    95% CIs as error bars and the real-vs-real value as a dashed line over its CI band."""
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    keys = metric_keys(doc)
    pts = doc["points"]
    grid_keys = list(doc["settings"]["grid"])
    group_key = grid_keys[1] if len(grid_keys) > 1 else None
    groups = sorted({p["values"].get(group_key, "") for p in pts}) if group_key else [""]
    xs = {
        "parameters (G + D)": [p["params"]["G"] + p["params"]["D"] for p in pts],
        "training compute (TFLOP: GFLOP/img x images trained)": [
            (p["bench"]["gflop_per_img"] or math.nan) * p["kimg"] for p in pts
        ],
    }
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 2.8 * len(keys) + 0.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, key in enumerate(keys):
        rvr = doc.get("real_vs_real", {}).get(key)
        for c, (xlabel, xv) in enumerate(xs.items()):
            ax = axes[r][c]
            for gi, g in enumerate(groups):
                idx = [i for i, p in enumerate(pts) if not group_key or p["values"].get(group_key) == g]
                idx = [i for i in idx if pts[i]["metrics"].get(key, {}).get("value") is not None]
                if not idx:
                    continue
                idx.sort(key=lambda i: xv[i])
                x = [xv[i] for i in idx]
                y = [pts[i]["metrics"][key]["value"] for i in idx]
                cis = [pts[i]["metrics"][key].get("ci95") or [v, v] for i, v in zip(idx, y, strict=True)]
                err = [[max(v - ci[0], 0) for v, ci in zip(y, cis, strict=True)],
                       [max(ci[1] - v, 0) for v, ci in zip(y, cis, strict=True)]]  # fmt: skip
                label = f"{group_key}={g}" if group_key else None
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colors[gi % len(colors)], label=label)
                for i, xi, yi in zip(idx, x, y, strict=True):
                    name = pts[i]["values"].get(grid_keys[0], pts[i]["label"])
                    ax.annotate(f"{grid_keys[0]}={name}", (xi, yi), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")  # fmt: skip
            if rvr and rvr.get("value") is not None:
                ax.axhline(rvr["value"], color="k", ls="--", lw=1, label="real vs real")
                if rvr.get("ci95"):
                    ax.axhspan(rvr["ci95"][0], rvr["ci95"][1], color="k", alpha=0.08)
            finite = sorted({x for x in xv if math.isfinite(x) and x > 0})
            if finite:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xticks(finite, [_si(x) for x in finite])
            better = next((p["metrics"][key].get("better") for p in pts if key in p["metrics"]), "")
            ax.set_ylabel(f"{key}\n({better})" if better else key, fontsize=8)
            if r == len(keys) - 1:
                ax.set_xlabel(xlabel)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0 and c == 1:
                ax.legend(fontsize=7)
    fig.suptitle(f"Network-size study on {Path(doc['settings']['data']).name} ({doc['settings']['base']})")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return save_figure(path, fig, dpi=110)

"""Post-hoc EMA study of a long run (issue 18): is the generator's EMA half-life right?

    python runs/ema_study.py collect demo-8mm            # keep running beside training: saves the raw G
                                                          # of every new checkpoint to runs/snaps/NAME/
    python runs/ema_study.py sample CKPT OUT --use G      # 64 volumes (seeds 1000-1063) of the raw G
    python runs/ema_study.py sample CKPT OUT --use G_ema  # ... of the stored EMA generator
    python runs/ema_study.py sample CKPT OUT --half-life 2.5 --snaps runs/snaps/demo-8mm
                                                          # ... of an EMA rebuilt from the raw-G snapshots
    stylegan3d metrics --fake OUT --data ds8mm-heldout --metrics all --n 64 --boot 20 --json X.json

The rebuilt EMA weights the snapshot taken at kimg t by 0.5 ** ((T - t) / half_life) (T: the
checkpoint's kimg), normalised: the per-step EMA of training sampled once per checkpoint (1 kimg).
Snapshots are files of their own because a run keeps only its last two checkpoints.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import torch
from diversity import SEEDS
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def collect(name: str, every_s: float = 20.0) -> None:
    """Copy the ``G.*`` tensors of each new checkpoint of run ``name`` to ``runs/snaps/name/``."""
    root = Path(__file__).parent
    dest = root / "snaps" / name
    dest.mkdir(parents=True, exist_ok=True)
    while True:
        for f in sorted(glob.glob(str(root / name / "checkpoints" / "ckpt-*.safetensors"))):
            try:
                kimg = json.loads(Path(f).with_suffix(".json").read_text())["kimg"]
                out = dest / f"G-{kimg:07.2f}.safetensors"
                if out.exists():
                    continue
                with safe_open(f, "pt") as s:
                    tensors = {k: s.get_tensor(k) for k in s.keys() if k.startswith("G.")}
                save_file(tensors, str(out) + ".tmp")
                os.replace(str(out) + ".tmp", out)
            except (OSError, ValueError, KeyError) as e:  # rotated away while read: the next round
                print(f"skipped {f}: {e}", flush=True)
        time.sleep(every_s)


def posthoc_ema(snaps: Path, kimg: float, half_life: float) -> dict[str, torch.Tensor]:
    """Exponentially weighted average of the raw-G snapshots taken at or before ``kimg``."""
    found = [(float(p.stem.split("-")[1]), p) for p in snaps.glob("G-*.safetensors")]
    found = [(t, p) for t, p in found if t <= kimg + 1e-6]
    if not found:
        raise SystemExit(f"error: no snapshot at or before kimg {kimg} in {snaps}")
    acc: dict[str, torch.Tensor] = {}
    total = 0.0
    for t, p in found:
        w = 0.5 ** ((kimg - t) / half_life)
        for k, v in load_file(p).items():
            acc[k] = acc.get(k, 0) + w * v.double()
        total += w
    oldest = min(t for t, _ in found)
    print(
        f"kimg {kimg}: {len(found)} snapshots from kimg {oldest}, weight of the oldest "
        f"{0.5 ** ((kimg - oldest) / half_life) / total:.3g}"
    )
    return {k: (v / total).float() for k, v in acc.items()}


def sample(ckpt: str, out: str, use: str, half_life: float | None, snaps: str | None, seeds: list[int] = SEEDS) -> None:
    """Write one volume per seed (default the metrics' 64) of the chosen weights as NIfTI (for ``metrics --fake``)."""
    from stylegan3d.checkpoint import load_module, load_tensors
    from stylegan3d.infer.api import Model

    m = Model.from_checkpoint(ckpt)
    if half_life is not None:
        if snaps is None:
            raise SystemExit("error: --half-life needs --snaps")
        load_module(m.G, posthoc_ema(Path(snaps), float(m.sidecar.kimg), half_life), "G", ckpt)
    elif use == "G":
        load_module(m.G, load_tensors(Path(ckpt)), "G", ckpt)
    m.write_volumes(m.generate(seeds), [f"seed{s:04d}" for s in seeds], out, contact_sheet=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("name")
    s = sub.add_parser("sample")
    s.add_argument("ckpt")
    s.add_argument("out")
    s.add_argument("--use", choices=["G", "G_ema"], default="G_ema")
    s.add_argument("--half-life", type=float, default=None, help="kimg; rebuild the EMA from --snaps")
    s.add_argument("--snaps", default=None)
    s.add_argument("--seeds", default=None, help="e.g. 2000-2127 (default: the metrics' 1000-1063)")
    a = ap.parse_args()
    if a.cmd == "collect":
        collect(a.name)
    else:
        from stylegan3d.cli.app import parse_int_list

        sample(a.ckpt, a.out, a.use, a.half_life, a.snaps, parse_int_list(a.seeds) if a.seeds else SEEDS)


if __name__ == "__main__":
    main()

"""Bring one raw T1 scan into the model's frame and time each step (default: pycortex's S1 head scan).

    python examples/preprocess_t1.py [SCAN] [--out DIR] [--threads 2]

Writes DIR/prepared.nii.gz (MNI grid of the 2mm presets), the transform, the brain mask and the QC
picture, and prints the seconds per step (the figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    default = Path(sys.prefix) / "share" / "pycortex" / "db" / "S1" / "anatomicals" / "raw.nii.gz"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan", nargs="?", type=Path, default=default)
    ap.add_argument("--out", type=Path, default=Path("preprocess-out"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="2mm-f96")
    args = ap.parse_args()

    import torch

    from stylegan3d.data.io import write_nifti
    from stylegan3d.data.preprocess.pipeline import preprocess_file, save_outputs
    from stylegan3d.data.preprocess.register import mni_template
    from stylegan3d.data.preprocess.sitkio import set_threads
    from stylegan3d.data.spatial import Geometry

    torch.set_num_threads(args.threads)
    set_threads(args.threads)
    t0 = time.perf_counter()
    mni_template(2.0)
    t_template = time.perf_counter() - t0
    geom = Geometry.from_preset(args.preset, frame="mni")
    t0 = time.perf_counter()
    res = preprocess_file(args.scan, geom)
    total = time.perf_counter() - t0
    files = save_outputs(res, args.out, "scan")
    write_nifti(res.volume, geom.affine, args.out / "prepared.nii.gz")
    pre = res.info["preprocess"]
    summary = {
        "scan": str(args.scan),
        "shape": res.info["orig_shape"],
        "threads": args.threads,
        "seconds": {"template (once per process)": round(t_template, 2), **pre["seconds"], "total": round(total, 2)},
        "mask_cm3": pre["mask_cm3"],
        "dice": pre["registration"]["dice"],
        "metric": pre["registration"]["metric"],
        "files": files,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

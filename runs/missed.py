"""Which real subjects does the generator miss (issue 18)? Recall per subject, against their traits.

    .venv/bin/python runs/missed.py src/stylegan3d/models/demo-8mm.safetensors [BLUR]

Recall (k = 5, deepbet features, as in the metrics) asks of each real volume whether it falls in
the k-nearest-neighbour ball of some generated one. Here it is kept per subject for the 128 held-out
subjects, against 128 generated volumes (seeds 2000-2127) and, as the baseline, against 128
training subjects; then the synthetic cohort's own parameters (participants.csv: age, ventricle
scale, atrophy, head scale) of the subjects the generator misses are set beside those it covers.
BLUR (voxels, default 0): a Gaussian applied to all three sets first, which removes voxel noise
and keeps anatomy, to tell a lack of anatomical variety from a lack of noise texture.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from diversity import HELDOUT, TRAIN, generated
from scipy.ndimage import gaussian_filter

from stylegan3d.metrics.features3d import volume_features
from stylegan3d.metrics.prdc import prdc_terms
from stylegan3d.metrics.volumes import as_volume_set

PARTICIPANTS = HELDOUT.parent.parent / "cohort4mm" / "participants.csv"
TRAITS = ("age", "ventricle", "atrophy", "head_scale")


def main(ckpt: str, blur: float = 0.0, n: int = 128) -> None:
    held = np.load(HELDOUT)[:, 0].astype(np.float32)
    train = np.load(TRAIN)[:n, 0].astype(np.float32)
    gen = generated(ckpt, range(2000, 2000 + n))
    sets = [gaussian_filter(v, (0, blur, blur, blur)) if blur else v for v in (held, train, gen)]
    f_held, f_train, f_gen = (volume_features(as_volume_set(v)) for v in sets)
    rows = {r["name"]: r for r in csv.DictReader(PARTICIPANTS.open())}
    traits = np.array([[float(rows[f"sub-{i:03d}.nii.gz"][t]) for t in TRAITS] for i in range(336, 336 + len(held))])
    hit = prdc_terms(f_held, f_gen, 5)["recall"].astype(bool)
    baseline = prdc_terms(f_held, f_train, 5)["recall"]
    print(f"recall of the {len(held)} held-out subjects by {n} generated: {hit.mean():.3f}")
    print(f"recall of the {len(held)} held-out subjects by {n} training subjects: {baseline.mean():.3f}")
    print(f"{'trait':>11}  {'all mean':>9}  {'covered':>9}  {'missed':>9}  {'missed - covered (in SD)':>24}")
    for j, t in enumerate(TRAITS):
        x = traits[:, j]
        cov, mis = x[hit], x[~hit]
        gap = (mis.mean() - cov.mean()) / x.std()
        print(f"{t:>11}  {x.mean():9.3f}  {cov.mean():9.3f}  {mis.mean():9.3f}  {gap:24.2f}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)

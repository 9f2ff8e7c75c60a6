import json
from pathlib import Path

import numpy as np
import pytest

from helpers.cohort import add_noise, blur
from stylegan3d.errors import UserError
from stylegan3d.metrics import ALL_METRICS, DEFAULT_METRICS, EvalSettings, evaluate, parse_metrics, split_halves

FAST = ["fid_slice", "fd3d", "bmmd2", "mmd2_unbiased", "ms_ssim", "prdc", "memorisation"]
HIGHER_IS_WORSE = ["fid_slice", "fd3d", "bmmd2", "mmd2_unbiased"]
LOWER_IS_WORSE = ["precision", "recall", "density", "coverage"]


def test_parse_metrics():
    assert parse_metrics(None) == list(DEFAULT_METRICS)
    assert parse_metrics("all") == list(ALL_METRICS)
    assert parse_metrics("fid, MS-SSIM,memorization,fid_slice") == ["fid_slice", "ms_ssim", "memorisation"]
    with pytest.raises(UserError, match="unknown metric"):
        parse_metrics("fid,kid")


def test_split_is_disjoint_equal_and_seeded():
    a, b = split_halves(17, seed=3)
    assert len(a) == len(b) == 8 and not set(a) & set(b)
    assert np.array_equal(split_halves(17, seed=3)[0], a) and not np.array_equal(split_halves(17, seed=4)[0], a)


@pytest.mark.parametrize("degradation", ["blur", "noise"])
def test_every_metric_detects_a_degraded_copy(dataset_dir: Path, cohort: np.ndarray, degradation: str):
    """Generated = degraded copies of real half B; baseline = real half B itself, both against half A."""
    a, b = split_halves(len(cohort), seed=0)
    fake = blur(cohort[b], 1.0) if degradation == "blur" else add_noise(cohort[b], 0.1)
    doc = evaluate(fake, dataset_dir, EvalSettings(FAST, prdc_k=3, n_boot=30, seed=0))
    m = doc["metrics"]
    json.dumps(doc)  # plain JSON types only
    assert doc["real"]["half_b"] == [f"sub-{i:03d}.nii.gz" for i in b]
    for name in HIGHER_IS_WORSE:
        assert m[name]["value"] > m[name]["real_vs_real"]["value"], name
    for name in LOWER_IS_WORSE:
        assert m[name]["value"] < m[name]["real_vs_real"]["value"], name
    for name in ["fid_slice", *LOWER_IS_WORSE]:  # clearly outside the baseline's interval
        lo, hi = m[name]["real_vs_real"]["ci95"]
        assert not lo <= m[name]["value"] <= hi, name
    # Diversity: blurring makes volumes alike (MS-SSIM up), noise makes them differ (down).
    rvr_lo, rvr_hi = m["ms_ssim"]["real_vs_real"]["ci95"]
    assert m["ms_ssim"]["value"] > rvr_hi if degradation == "blur" else m["ms_ssim"]["value"] < rvr_lo
    # Degraded copies of training volumes are flagged as memorised; real half B is not.
    assert m["memorisation"]["value"] == 1.0 and m["memorisation"]["real_vs_real"]["value"] <= 0.25
    samples = doc["details"]["memorisation"]["samples"]
    assert [s["nearest"] for s in samples] == doc["real"]["half_b"]
    for entry in m.values():
        lo, hi = entry["ci95"]
        assert lo <= entry["value"] <= hi and entry["n"] > 0
        assert entry["real_vs_real"]["ci95"][0] <= entry["real_vs_real"]["value"] <= entry["real_vs_real"]["ci95"][1]
    assert m["fd3d"]["n"] == m["fd3d"]["n_real"] == m["fd3d"]["real_vs_real"]["n"] == 8


def test_baseline_only_and_reference_all(dataset_dir: Path, cohort: np.ndarray):
    names = ["fd3d", "bmmd2", "mmd2_unbiased", "memorisation"]
    base = evaluate(None, dataset_dir, EvalSettings(names, n_boot=10))
    for entry in base["metrics"].values():
        assert entry["value"] is None and entry["real_vs_real"]["value"] is not None
    # The baseline (value and interval) does not depend on the generated set.
    with_fake = evaluate(cohort[:8], dataset_dir, EvalSettings(names, n_boot=10))
    for name in names:
        assert with_fake["metrics"][name]["real_vs_real"] == base["metrics"][name]["real_vs_real"]
    doc = evaluate(cohort[:6], dataset_dir, EvalSettings(["bmmd2"], reference="all", real_vs_real=False, n_boot=10))
    entry = doc["metrics"]["bmmd2"]
    assert entry["n"] == 6 and entry["n_real"] == 16 and entry["real_vs_real"] is None
    # Same numbers through the two entry points: a directory and the array itself.
    again = evaluate(cohort[:6], cohort, EvalSettings(["bmmd2"], reference="all", real_vs_real=False, n_boot=10))
    assert again["metrics"]["bmmd2"]["value"] == pytest.approx(entry["value"], rel=1e-6)


def test_triplanar_fid_reports_each_plane_and_their_mean(cohort: np.ndarray):
    doc = evaluate(
        blur(cohort[4:6], 1.0),
        cohort[:2],
        EvalSettings("fid_triplanar", slices_per_plane=1, reference="all", real_vs_real=False),
    )
    m = doc["metrics"]
    planes = [m[f"fid_{p}"]["value"] for p in ("axial", "coronal", "sagittal")]
    assert all(v > 0 for v in planes) and m["fid_triplanar"]["value"] == pytest.approx(np.mean(planes))
    assert m["fid_axial"]["slices_per_volume"] == 1 and m["fid_axial"]["n"] == 2


def test_no_bootstrap_gives_the_same_values_without_intervals(cohort: np.ndarray):
    """``--boot 0`` (documented as "no intervals") must work for vector-valued metrics too."""
    names = ["fid_triplanar", "fd3d", "bmmd2", "prdc"]
    kw = dict(slices_per_plane=1, mmd_batch=2)
    with_ci = evaluate(blur(cohort[:6], 1.0), cohort[6:], EvalSettings(names, n_boot=3, **kw))["metrics"]
    no_ci = evaluate(blur(cohort[:6], 1.0), cohort[6:], EvalSettings(names, n_boot=0, **kw))["metrics"]
    assert set(no_ci) == set(with_ci)
    for name, entry in no_ci.items():
        assert entry["ci95"] is None and entry["real_vs_real"]["ci95"] is None, name
        assert with_ci[name]["ci95"] is not None, name
        assert entry["value"] == pytest.approx(with_ci[name]["value"]), name


def test_user_errors(dataset_dir: Path, cohort: np.ndarray):
    with pytest.raises(UserError, match="shape"):
        evaluate(cohort[:4, :, :10], dataset_dir, EvalSettings(["bmmd2"]))
    with pytest.raises(UserError, match="holds 4"):
        evaluate(cohort[:4], dataset_dir, EvalSettings(["bmmd2"], n=5))
    with pytest.raises(UserError, match="at least 4 real"):
        evaluate(cohort[:4], cohort[:3], EvalSettings(["bmmd2"]))
    with pytest.raises(UserError, match="reference"):
        evaluate(cohort[:4], dataset_dir, EvalSettings(["bmmd2"], reference="some"))

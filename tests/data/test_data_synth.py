"""Synthetic cohort: deterministic per seed, prefix-stable, MNI affine, real anatomical variability."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from helpers.data import COHORT_SEED
from stylegan3d.data.synth import (
    VENTRICLE_CENTRE_MM,
    output_grid,
    subject_seed,
    synth_array,
    synth_cohort,
    synth_subject,
)
from stylegan3d.errors import UserError


def test_subject_is_deterministic_and_seeds_differ():
    a, aff, va = synth_array(11, spacing=8.0)
    b, _, vb = synth_array(11, spacing=8.0)
    c, _, _ = synth_array(12, spacing=8.0)
    np.testing.assert_array_equal(a, b)
    assert va == vb
    brain = (a > 0) | (c > 0)
    diff = np.abs(a.astype(np.float32) / a.max() - c.astype(np.float32) / c.max())[brain]
    assert diff.mean() > 0.05  # two subjects differ visibly (shape, contrast, noise)


def test_image_has_mni_affine_and_header(cohort):
    img = nib.load(cohort[0])
    shape, aff = output_grid(8.0)
    assert img.shape == shape == (25, 30, 24)
    np.testing.assert_array_equal(img.affine, aff)
    assert int(img.header["sform_code"]) == 4 and int(img.header["qform_code"]) == 4
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert img.get_data_dtype() == np.int16
    data = np.asarray(img.dataobj)
    brain = data > 0
    assert 0.1 < brain.mean() < 0.6  # a skull-stripped brain inside the field of view
    centre = (aff @ np.append(np.argwhere(brain).mean(0), 1))[:3]
    assert np.all(np.abs(centre - [0, -18, 6]) < 15)  # near the middle of the MNI brain
    assert isinstance(synth_subject(COHORT_SEED, spacing=8.0), nib.Nifti1Image)


def test_cohort_is_a_prefix_of_a_larger_cohort(tmp_path, cohort):
    small = synth_cohort(tmp_path / "c2", 2, seed=COHORT_SEED, spacing=8.0, workers=2, progress=False)
    assert [p.name for p in small] == ["sub-000.nii.gz", "sub-001.nii.gz"]
    for p in small:  # byte-identical files (deterministic gzip), with two worker processes
        assert p.read_bytes() == (cohort[0].parent / p.name).read_bytes()
    assert subject_seed(COHORT_SEED, 1) != subject_seed(COHORT_SEED + 1, 1)
    assert subject_seed(COHORT_SEED, 1) != subject_seed(COHORT_SEED, 2)


def test_participants_csv_matches_the_volumes(cohort):
    rows = list(csv.DictReader((cohort[0].parent / "participants.csv").open()))
    assert [r["name"] for r in rows] == [p.name for p in cohort]
    for i, r in enumerate(rows):
        v = synth_array(subject_seed(COHORT_SEED, i), spacing=8.0)[2]
        assert float(r["age"]) == v["age"] and r["sex"] == v["sex"] and int(r["seed"]) == subject_seed(COHORT_SEED, i)


def test_ventricle_enlargement_and_atrophy_darken_the_brain():
    """Larger ventricles / more atrophy = more dark CSF voxels near the ventricles / in the brain."""
    fixed = {"noise": 0.0, "bias": 0.0, "deform_mm": 0.0, "gain": 1000.0, "rotation_deg": [0] * 3, "shift_mm": [0] * 3}
    base = synth_array(7, spacing=4.0, ventricle=1.0, atrophy=0.0, **fixed)[0].astype(np.float32)
    big = synth_array(7, spacing=4.0, ventricle=1.8, atrophy=0.0, **fixed)[0].astype(np.float32)
    old = synth_array(7, spacing=4.0, ventricle=1.0, atrophy=0.4, **fixed)[0].astype(np.float32)
    _, aff = output_grid(4.0)
    idx = np.indices(base.shape).reshape(3, -1)
    world = (aff[:3, :3] @ idx + aff[:3, 3:]).reshape(3, *base.shape)
    near = np.sqrt(((world - np.asarray(VENTRICLE_CENTRE_MM)[:, None, None, None]) ** 2).sum(0)) < 25
    wm_level = np.percentile(base[base > 0], 95)
    dark = lambda v, region: int(((v > 0) & (v < 0.45 * wm_level) & region).sum())  # noqa: E731
    assert dark(big, near) > 1.25 * dark(base, near)
    assert dark(old, old > 0) > 1.25 * dark(base, base > 0)
    assert old[old > 0].mean() < 0.95 * base[base > 0].mean()
    np.testing.assert_array_equal(base > 0, old > 0)  # atrophy changes tissue, not the brain outline


def test_cohort_halves_differ_by_a_finite_nonzero_amount(cohort):
    vols = [np.asarray(nib.load(p).dataobj, np.float32) for p in cohort]
    vols = [v / np.percentile(v[v > 0], 99) for v in vols]
    a, b = np.mean(vols[:2], axis=0), np.mean(vols[2:], axis=0)
    mmd = float(((a - b) ** 2).mean())  # linear-kernel MMD between the halves (bMMD^2 with one batch each)
    assert np.isfinite(mmd) and mmd > 1e-4


def test_bad_arguments():
    with pytest.raises(UserError, match="unknown variation"):
        synth_array(0, spacing=8.0, wobble=1)
    with pytest.raises(UserError, match="spacing"):
        synth_array(0, spacing=0.1)
    with pytest.raises(UserError, match="--n"):
        synth_cohort("/tmp/never", 0)

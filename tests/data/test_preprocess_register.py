"""Affine registration to MNI152 (stylegan3d.data.preprocess.register): known transforms are recovered."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.preprocess import bbox_corners_mm, moved_template
from stylegan3d.data.preprocess import PreprocessError
from stylegan3d.data.preprocess.register import Registration, dice, mni_template, register_affine, to_grid, to_native


def _landmark_error(reg: Registration, true: np.ndarray, spacing: float) -> np.ndarray:
    _, mask, aff = mni_template(spacing)
    corners = bbox_corners_mm(mask, aff)
    return np.linalg.norm((corners @ reg.mni_to_native.T - corners @ true.T)[:, :3], axis=1)


def _check_recovered(seed: int, spacing: float) -> None:
    scan, mask, aff, true = moved_template(seed, spacing)
    reg = register_affine(scan, aff, mask, spacing=spacing, seed=seed)
    err = _landmark_error(reg, true, spacing)
    assert err.mean() <= 1.5, (seed, err)
    assert reg.dice >= 0.95
    assert reg.metric < -0.3  # Mattes MI of a good fit (negative)


@pytest.mark.parametrize("seed", [0, 1])
def test_known_affine_is_recovered_at_4mm(seed):
    """Rotation up to 15 deg, translation up to 20 mm, scaling up to 10 %: bbox corners within 1.5 mm."""
    _check_recovered(seed, 4.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6])
def test_known_affine_is_recovered_at_2mm(seed):
    _check_recovered(seed, 2.0)


def test_to_grid_and_to_native_are_inverse():
    """A scan carried onto an MNI grid and back lies on itself (smooth brain: correlation near 1)."""
    scan, mask, aff, true = moved_template(7, 4.0)
    _, tmask, taff = mni_template(4.0)
    on_grid = to_grid(scan, aff, true, taff, tmask.shape)
    assert dice(on_grid > 0.05, tmask) > 0.95  # the true transform puts the brain on the template's
    back = to_native(on_grid, taff, true, aff, scan.shape)
    r = np.corrcoef(back[mask], scan[mask])[0, 1]
    assert r > 0.95


def test_registration_serialises():
    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    reg = Registration(m, -0.6, dice=0.9, seconds=1.0, iterations=[3, 4])
    d = reg.to_dict()
    assert np.allclose(np.asarray(d["native_to_mni"]) @ np.asarray(d["mni_to_native"]), np.eye(4))
    again = Registration.from_dict(d)
    assert np.array_equal(again.mni_to_native, m) and again.dice == 0.9


def test_empty_brain_is_a_register_error():
    _, _, aff = mni_template(4.0)
    with pytest.raises(PreprocessError, match="register: the brain is empty") as e:
        register_affine(np.zeros((40, 40, 40), np.float32), aff)
    assert e.value.step == "register"

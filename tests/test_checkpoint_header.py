"""The pickle guard of checkpoint loading refuses pickles and zips, never a valid safetensors file."""

from __future__ import annotations

import pickle

import pytest
import safetensors.torch
import torch

from stylegan3d.checkpoint import _safetensors_head, save_tensors_file, verify_checkpoint
from stylegan3d.errors import CheckpointError


def _file_with_header_low_byte(tmp_path, low: int):
    """A real checkpoint whose safetensors header length ends in byte ``low`` (tensor name padded)."""
    for pad in range(300):
        tensors = {"x": torch.ones(3), "y" * (pad + 1): torch.zeros(1)}
        path = save_tensors_file(tmp_path / f"c{pad}.safetensors", tensors, {})
        if path.read_bytes()[0] == low:
            return path
        path.unlink()
        path.with_suffix(".json").unlink()
    raise AssertionError("no padding gave the wanted header length")


def test_valid_file_whose_header_length_starts_with_the_pickle_byte_passes_the_guard(tmp_path):
    path = _file_with_header_low_byte(tmp_path, 0x80)
    assert path.read_bytes()[:1] == b"\x80" and _safetensors_head(path.read_bytes()[:9])
    with pytest.raises(CheckpointError) as e:  # not a stylegan3d sidecar (no config), but not "a pickle"
        verify_checkpoint(path)
    assert "pickle" not in str(e.value) and "sidecar" in str(e.value)
    assert torch.equal(safetensors.torch.load_file(path)["x"], torch.ones(3))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickles_are_still_refused(tmp_path, protocol):
    good = save_tensors_file(tmp_path / "c.safetensors", {"x": torch.ones(3)}, {})
    good.write_bytes(pickle.dumps({"x": [1.0] * 3}, protocol=protocol))
    assert not _safetensors_head(good.read_bytes()[:9])
    with pytest.raises(CheckpointError, match="pickle"):
        verify_checkpoint(good)

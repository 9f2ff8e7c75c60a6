"""VolumeDataset: memory-mapped items in [-1, 1], manifest checks and hash, CSV labels."""

from __future__ import annotations

import csv
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.data import DEMO_SHAPE
from stylegan3d.data.dataset import VolumeDataset, load_manifest, manifest_hash
from stylegan3d.errors import UserError


def test_items_are_float_tensors_in_minus_one_one(dataset):
    ds = VolumeDataset(dataset)
    arr = np.load(dataset / "volumes.npy")
    assert len(ds) == 4 and ds.names == [f"sub-00{i}.nii.gz" for i in range(4)]
    assert ds.geometry["shape"] == DEMO_SHAPE and ds.geometry["spacing"] == [8.0] * 3 and ds.geometry["channels"] == 1
    np.testing.assert_array_equal(ds.geometry["affine"], ds.manifest["affine"])
    for i in (0, 3, -1):
        x = ds[i]
        assert x.dtype == torch.float32 and x.shape == (1, *DEMO_SHAPE)
        assert x.min() == -1.0 and x.max() == 1.0
        np.testing.assert_allclose(x.numpy(), arr[i].astype(np.float32) * 2 - 1, atol=1e-6)
    with pytest.raises(IndexError):
        ds[4]
    assert ds.labels is None
    assert len(pickle.dumps(ds)) < arr.nbytes / 4  # workers get a path, not a copy of the array


def test_dataloader_with_workers(dataset):
    loader = DataLoader(VolumeDataset(dataset), batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(2, 1, *DEMO_SHAPE)] * 2
    np.testing.assert_array_equal(batches[1][0].numpy(), VolumeDataset(dataset)[2].numpy())


def test_manifest_hash_identifies_the_content(dataset):
    m = load_manifest(dataset)
    h = manifest_hash(m)
    assert len(h) == 64 and h == manifest_hash(json.loads(json.dumps(m)))
    assert manifest_hash({**m, "source_note": "paths and extra keys do not matter"}) == h
    changed = json.loads(json.dumps(m))
    changed["volumes"][0]["sha256"] = "0" * 64
    assert manifest_hash(changed) != h
    reordered = {**m, "volumes": m["volumes"][::-1]}
    assert manifest_hash(reordered) != h


def test_missing_or_invalid_dataset(tmp_path, dataset):
    with pytest.raises(UserError, match="not a prepared dataset"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a stylegan3d dataset"):
        VolumeDataset(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    np.save(copy / "volumes.npy", np.zeros((3, 1, *DEMO_SHAPE), np.float16))  # an interrupted write
    with pytest.raises(UserError, match="re-run"):
        VolumeDataset(copy)


def _labels(dataset, tmp_path, text: str, **kw):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return VolumeDataset(dataset, labels_csv=path, **kw)


def test_labels_from_participants_csv(dataset, cohort):
    csv_path = cohort[0].parent / "participants.csv"
    rows = list(csv.DictReader(csv_path.open()))
    ds = VolumeDataset(dataset, labels_csv=csv_path, label_columns=["age", "sex"])
    assert ds.label_names[0] == "age" and set(ds.label_names[1:]) <= {"sex=F", "sex=M"}
    assert ds.labels.shape == (4, len(ds.label_names)) and ds.labels.dtype == torch.float32
    np.testing.assert_allclose(ds.labels[:, 0].numpy(), [float(r["age"]) for r in rows])
    np.testing.assert_array_equal(ds.labels[:, 1:].sum(1).numpy(), np.ones(4))  # one-hot sex
    x, y = ds[2]
    assert x.shape == (1, *DEMO_SHAPE) and torch.equal(y, ds.labels[2])


def test_malformed_labels_name_the_problem(dataset, tmp_path):
    names = [f"sub-00{i}" for i in range(4)]
    good = "name,age\n" + "".join(f"{n},{20 + i}\n" for i, n in enumerate(names))
    ds = _labels(dataset, tmp_path, good)  # names match with or without the .nii.gz suffix
    np.testing.assert_array_equal(ds.labels[:, 0].numpy(), [20, 21, 22, 23])
    cases = {
        "name,age\nsub-000,20\nsub-001\nsub-002,3\nsub-003,4\n": "line 3: expected 2 fields, got 1",
        "name,age\n" + "".join(f"{n},{a}\n" for n, a in zip(names, ["20", "x", "3", "4"], strict=True)): (
            "line 3, column 'age': 'x' is not a number"
        ),
        "name,age\n" + "".join(f"{n},{a}\n" for n, a in zip(names, ["20", "", "3", "4"], strict=True)): (
            "line 3, column 'age': empty value"
        ),
        "name,age\nsub-000,1\nsub-001,2\nsub-002,3\n": "no row for volume 'sub-003.nii.gz'",
        "id,age\nsub-000,1\n": "no key column",
        "name,age\nsub-000,1\nsub-000.nii.gz,2\n": "line 3: 'sub-000.nii.gz' repeats line 2",
        "name,age,age\nsub-000,1,1\n": "line 1: column names must be unique",
        "": "is empty",
        'name,age\n"sub-000,1\n': "expected 2 fields",
    }
    for text, message in cases.items():
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _labels(dataset, tmp_path, text)
    with pytest.raises(UserError, match=r"label column\(s\) \['weight'\] not in the header"):
        _labels(dataset, tmp_path, good, label_columns=["weight"])
    with pytest.raises(UserError, match="labels file not found"):
        VolumeDataset(dataset, labels_csv=tmp_path / "nope.csv")

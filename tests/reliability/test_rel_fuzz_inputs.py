"""Bad input fuzzing: random NIfTI headers, flipped header bytes, truncated files, garbage with
volume suffixes, odd ``.npz`` arrays and malformed label CSVs.

Properties: only the project's own errors (DataError for volumes, UserError for labels) with a
one-line message; never a hang; never a wrong silent result: a volume that loads is finite
float32 with the shape the header declares, the affine nibabel reads, the values nibabel reads,
and a valid (finite, invertible, non-zero voxel size) affine.

Hypothesis runs deterministically (``derandomize``) with modest example counts; set
``STYLEGAN3D_FUZZ_SCALE=10`` for a longer soak (or run the ``slow`` variants).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import helpers.reliability as rs
from helpers.data import write_tiny_dataset
from stylegan3d.data.io import load_volume
from stylegan3d.errors import DataError, UserError

SCALE = int(os.environ.get("STYLEGAN3D_FUZZ_SCALE", "1"))


def fuzz_settings(n: int):
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


NIFTI_CODES = {  # NIfTI datatype code -> (numpy dtype, bitpix); real-valued scalars load, others must not
    2: (np.uint8, 8), 4: (np.int16, 16), 8: (np.int32, 32), 16: (np.float32, 32), 32: (np.complex64, 64),
    64: (np.float64, 64), 128: (np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]), 24), 256: (np.int8, 8),
    512: (np.uint16, 16), 768: (np.uint32, 32), 1024: (np.int64, 64), 1280: (np.uint64, 64),
    1536: (np.longdouble, 128), 1792: (np.complex128, 128),
    2304: (np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")]), 32),
}  # fmt: skip
INVALID_CODES = [0, 1, 3, 17, 255, 2048, 4096, -5, 32767]
"""Unknown, DT_BINARY (1 bit), float16-like guesses and nonsense: never a valid real-valued type."""

WEIRD = [0.0, -0.0, 1.0, -1.0, 2.0, -2.5, 1e-9, 1e-30, 1e30, 3e38, np.nan, np.inf, -np.inf]
weird_floats = st.sampled_from(WEIRD) | st.floats(-50, 50, allow_nan=False, width=32)


def _expected_shape(img) -> tuple[int, ...]:
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def check_load(path: Path, family: str) -> str:
    """Load ``path``; assert it is refused with a one-line DataError or loads correctly.

    Correct: finite float32, 3D with every axis >= 2, shape/affine/values as nibabel (or numpy
    for .npz) reads them, affine finite with non-zero voxel sizes and invertible. Returns
    ``"ok"``, ``"DataError"`` or the name of a known bug that was hit.
    """
    rs.BAD_INPUTS[family] += 1
    try:
        data, affine = load_volume(path)
    except DataError as e:
        msg = str(e)
        assert msg and "\n" not in msg, repr(msg)
        return "DataError"
    except Exception as e:
        bug = rs.known_bug(e)
        if bug is None:
            raise AssertionError(f"{family}: {path.name} raised {type(e).__name__}: {e}") from e
        return bug
    assert data.dtype == np.float32 and data.ndim == 3 and min(data.shape) >= 2, data.shape
    assert np.isfinite(data).all()
    assert affine.shape == (4, 4) and affine.dtype == np.float64 and np.isfinite(affine).all()
    assert np.linalg.norm(affine[:3, :3], axis=0).min() > 0 and abs(np.linalg.det(affine[:3, :3])) > 0
    if path.name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            key = next(k for k in ("data", "image", "volume", "arr_0") if k in z.files)
            assert z[key].dtype.kind in "biuf"
            ref = np.asarray(z[key]).astype(np.float64)
            ref_aff = np.asarray(z["affine"], dtype=np.float64)
        ref = ref.reshape(data.shape)
    else:
        img = nib.load(str(path))
        assert data.shape == _expected_shape(img), (data.shape, img.shape)
        assert img.get_data_dtype().kind in "biuf" and img.get_data_dtype().fields is None
        ref_aff = img.affine
        ref = np.asarray(img.dataobj, dtype=np.float64).reshape(data.shape)
    np.testing.assert_array_equal(affine, ref_aff)
    np.testing.assert_allclose(data, ref, rtol=2e-6, atol=1e-37)
    return "ok"


# ----------------------------------------------------------------------------- structured headers


@st.composite
def nifti_files(draw) -> tuple[str, bytes]:
    """A NIfTI-1 file from drawn header fields. Each field is sane or, with probability 1/4, odd:
    dims (0-8 axes, sizes 0-5), datatype (complex, RGB, int8, uint16, float128, invalid codes ...),
    pixdim incl. 0/negative/NaN/Inf, sform/qform codes and matrices (singular, rank 1, NaN, huge),
    scaling, vox_offset, and a payload that is exact, truncated or over-long."""

    def odd() -> bool:
        return draw(st.integers(0, 3)) == 0

    hdr = nib.Nifti1Header()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if odd():
        ndim, dims = draw(st.integers(0, 8)), draw(st.lists(st.integers(-3, 5), min_size=7, max_size=7))
    else:
        ndim, dims = 3, [*draw(st.lists(st.integers(2, 5), min_size=3, max_size=3)), 1, 1, 1, 1]
    hdr["dim"] = [ndim, *dims]
    code = draw(st.sampled_from(sorted(NIFTI_CODES) + INVALID_CODES)) if odd() else 16
    dtype, bitpix = NIFTI_CODES.get(code, (np.uint8, draw(st.sampled_from([8, 16, 32]))))
    hdr["datatype"], hdr["bitpix"] = code, bitpix
    zooms = draw(st.lists(weird_floats, min_size=7, max_size=7)) if odd() else [2.0] * 7
    hdr["pixdim"] = [draw(st.sampled_from([1.0, -1.0, 0.0, np.nan])) if odd() else 1.0, *zooms]
    hdr["vox_offset"] = draw(st.sampled_from([0.0, 348.0, 356.0, 1e6, -16.0])) if odd() else 352.0
    if odd():
        hdr["scl_slope"], hdr["scl_inter"] = draw(weird_floats), draw(weird_floats)
    hdr["sform_code"] = draw(st.sampled_from([0, 1, 2, 4, 5, -1])) if odd() else 2
    hdr["qform_code"] = draw(st.sampled_from([0, 1, 3, 9])) if odd() else 0
    kind = draw(st.sampled_from(["random", "singular-col", "rank1", "nan", "huge"])) if odd() else "diag"
    aff = np.diag([*rng.uniform(0.5, 3, 3), 1.0])
    if kind == "random":
        aff[:3, :3] = rng.normal(size=(3, 3)) * 2
    elif kind == "singular-col":
        aff[:3, rng.integers(3)] = 0.0
    elif kind == "rank1":
        aff[:3, :3] = np.outer(rng.normal(size=3), rng.normal(size=3))
    elif kind == "nan":
        aff[rng.integers(3), rng.integers(4)] = np.nan
    elif kind == "huge":
        aff[:3, :3] *= 1e30
    aff[:3, 3] = rng.uniform(-100, 100, 3)
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = aff[0], aff[1], aff[2]
    if odd():
        hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = (draw(weird_floats) for _ in range(3))
    n_vox = int(np.prod([max(d, 0) for d in dims[: min(ndim, 7)]])) if ndim > 0 else 1
    nbytes = n_vox * bitpix // 8
    if not odd() and code in NIFTI_CODES and np.dtype(dtype).fields is None:
        values = rng.uniform(-1000, 1000, n_vox)
        if np.dtype(dtype).kind in "ui":
            info = np.iinfo(dtype)
            values = np.clip(values, info.min, info.max)
        payload = values.astype(dtype).tobytes()
    else:  # random bits: NaN/Inf patterns for floats, anything for the rest
        payload = rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    if odd():
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, max(0, len(payload) - 1)))]
        else:
            payload += b"\x7f" * draw(st.integers(1, 64))
    raw = hdr.binaryblock + b"\x00" * 4 + payload
    gz = draw(st.booleans())
    return ("f.nii.gz", gzip.compress(raw, 1)) if gz else ("f.nii", raw)


@pytest.mark.parametrize("scale", rs.SCALES)
def test_load_volume_random_headers(scale, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-hdr")
    outcomes: dict[str, int] = {}

    @fuzz_settings(150 * scale)
    @given(nifti_files())
    def check(case):
        name, blob = case
        path = d / name
        path.write_bytes(blob)
        r = check_load(path, "NIfTI random header fields (hypothesis)")
        outcomes[r] = outcomes.get(r, 0) + 1

    check()
    assert outcomes.get("ok", 0) >= 5 and outcomes.get("DataError", 0) >= 50, outcomes  # both sides exercised


def _claimed_bytes(block: bytes) -> int:
    """Largest data size a (possibly corrupt) header could make a reader allocate: dims in the byte
    order nibabel guesses (dim[0] in 1..7 little-endian, else big-endian), 16 bytes per voxel."""
    little = np.frombuffer(block[40:56], dtype="<i2")
    order = "<" if 1 <= little[0] <= 7 or not little.any() else ">"
    n = 1
    for s in np.frombuffer(block[40:56], dtype=f"{order}i2")[1:8]:
        n *= max(int(s), 1)
    return n * 16


@pytest.mark.parametrize("scale", rs.SCALES)
def test_load_volume_header_byte_flips(scale, tmp_path_factory):
    """1-8 random bytes of a valid header replaced (sizeof_hdr, dims, datatype, offsets, codes ...)."""
    d = tmp_path_factory.mktemp("fuzz-flip")
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image((rng.random((6, 7, 8)) * 100).astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    buf = io.BytesIO()
    img.to_file_map({"image": nib.FileHolder(fileobj=buf), "header": nib.FileHolder(fileobj=buf)})
    raw = buf.getvalue()

    @fuzz_settings(150 * scale)
    @given(
        flips=st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), min_size=1, max_size=8),
        gz=st.booleans(),
    )
    def check(flips, gz):
        b = bytearray(raw)
        for pos, val in flips:
            b[pos] = val
        assume(_claimed_bytes(bytes(b[:348])) < 64 << 20)  # huge claims: see test_huge_header_claim
        path = d / ("f.nii.gz" if gz else "f.nii")
        path.write_bytes(gzip.compress(bytes(b), 1) if gz else bytes(b))
        check_load(path, "NIfTI header byte flips (hypothesis)")

    check()


def _valid_files(d: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    vol = (rng.random((5, 6, 7)) * 50).astype(np.float32)
    aff = np.diag([1.5, 1.5, 1.5, 1.0])
    files = {}
    for name, img in (
        ("v.nii.gz", nib.Nifti1Image(vol, aff)),
        ("v.nii", nib.Nifti1Image(vol.astype(np.int16), aff)),
        ("v.mgz", nib.MGHImage(vol, aff)),
    ):
        nib.save(img, str(d / name))
        files[name] = (d / name).read_bytes()
    with open(d / "v.npz", "wb") as f:
        np.savez_compressed(f, data=vol, affine=aff)
    files["v.npz"] = (d / "v.npz").read_bytes()
    return files


@pytest.mark.parametrize("scale", rs.SCALES)
def test_load_volume_truncations_and_garbage(scale, tmp_path_factory):
    """Random prefixes of valid .nii.gz/.nii/.mgz/.npz files, and random bytes under every volume suffix."""
    d = tmp_path_factory.mktemp("fuzz-garbage")
    valid = _valid_files(d)
    suffixes = [".nii", ".nii.gz", ".mgz", ".mgh", ".npz", ".hdr"]

    @fuzz_settings(150 * scale)
    @given(
        mode=st.sampled_from(["prefix", "garbage", "gzip-garbage", "magic-prefix"]),
        which=st.sampled_from(sorted(valid)),
        frac=st.floats(0, 1),
        junk=st.binary(max_size=600),
        suffix=st.sampled_from(suffixes),
    )
    def check(mode, which, frac, junk, suffix):
        if mode == "prefix":  # a download or copy cut short
            blob, name = valid[which][: int(len(valid[which]) * frac)], "t-" + which
        elif mode == "garbage":
            blob, name = junk, "g" + suffix
        elif mode == "gzip-garbage":  # valid gzip stream of junk
            blob, name = gzip.compress(junk), "z" + suffix
        else:  # the right magic bytes followed by junk
            blob, name = valid[which][:16] + junk, "m-" + which
        path = d / "case" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blob)
        r = check_load(path, "truncated files / garbage bytes (hypothesis)")
        if mode == "prefix" and frac == 1.0:
            assert r == "ok"

    check()


HUGE_CLAIM = r"""
import resource, sys, gzip, numpy as np, nibabel as nib
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a 16 GiB allocation fails fast, nothing else
from stylegan3d.data.io import load_volume
from stylegan3d.errors import DataError
hdr = nib.Nifti1Header()
hdr.set_data_shape((2048, 2048, 1024))
hdr.set_data_dtype(np.float32)
hdr["vox_offset"] = 352
blob = hdr.binaryblock + b"\0" * 4 + np.ones(1000, np.float32).tobytes()
for name, data in (("huge.nii.gz", gzip.compress(blob)), ("huge.nii", blob)):
    path = sys.argv[1] + "/" + name
    open(path, "wb").write(data)
    try:
        load_volume(path)
        print(name, "loaded")
    except DataError as e:
        print(name, "DataError", str(e))
    except BaseException as e:
        print(name, "OTHER", type(e).__name__, e)
"""


def test_huge_header_claim_is_a_data_error(tmp_path):
    """Run in a child with a 3 GiB address-space limit, so the test can never eat the machine's memory."""
    rs.BAD_INPUTS["header claiming 16 GiB of voxels"] += 2
    out = subprocess.run([sys.executable, "-c", HUGE_CLAIM, str(tmp_path)], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stderr[-2000:]
    for line in lines:
        assert " DataError " in line, line


@pytest.mark.parametrize("field", ["negative dim[1]", "vox_offset 1e19"])
def test_memmap_overflow_is_a_data_error(field, tmp_path):
    img = nib.Nifti1Image(np.ones((6, 7, 8), np.float32), np.eye(4))
    raw = bytearray(img.header.binaryblock + b"\0" * 4 + np.ones(6 * 7 * 8, np.float32).tobytes())
    if field.startswith("negative"):
        raw[42:44] = np.int16(-3578).tobytes()
    else:
        raw[108:112] = np.float32(1e19).tobytes()
    path = tmp_path / "bad.nii"
    path.write_bytes(bytes(raw))
    rs.BAD_INPUTS[f".nii header with {field}"] += 1
    with pytest.raises(DataError):
        load_volume(path)


def test_truncated_npz_is_a_data_error(tmp_path):
    path = tmp_path / "v.npz"
    np.savez(path, data=np.ones((4, 5, 6), np.float32), affine=np.eye(4))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    rs.BAD_INPUTS["truncated .npz"] += 1
    with pytest.raises(DataError):
        load_volume(path)


# ----------------------------------------------------------------------------- npz


@st.composite
def npz_files(draw) -> bytes:
    """``.npz`` volumes with random data dtypes (float16, bool, complex, int8, uint16, strings ...),
    shapes (0-5 axes) and affines (wrong shape, NaN, singular, integer, missing)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=5)))
    dtype = draw(st.sampled_from(["float16", "float32", "float64", "bool", "int8", "uint16", "int64", "complex64",
                                  "U3", "S2", "datetime64[s]", "V4"]))  # fmt: skip
    values = rng.uniform(-100, 100, shape)
    if draw(st.booleans()) and values.size:
        values.flat[rng.integers(values.size)] = draw(st.sampled_from([np.nan, np.inf, 1e300]))
    with np.errstate(all="ignore"):
        data = values.astype(dtype) if dtype[0] not in "UVSd" else np.zeros(shape, dtype)
    aff_kind = draw(st.sampled_from(["ok", "ok", "3x3", "nan", "singular", "int", "missing", "string"]))
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    arrays = {draw(st.sampled_from(["data", "data", "image", "volume", "arr_0", "other"])): data}
    if aff_kind == "3x3":
        aff = aff[:3, :3]
    elif aff_kind == "nan":
        aff[0, 3] = np.nan
    elif aff_kind == "singular":
        aff[:, 1] = 0
    elif aff_kind == "int":
        aff = aff.astype(np.int64)
    elif aff_kind == "string":
        aff = np.array("eye(4)")
    if aff_kind != "missing":
        arrays["affine"] = aff
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("scale", rs.SCALES)
def test_load_volume_random_npz(scale, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-npz")

    @fuzz_settings(80 * scale)
    @given(npz_files())
    def check(blob):
        path = d / "v.npz"
        path.write_bytes(blob)
        check_load(path, ".npz random dtypes/shapes/affines (hypothesis)")

    check()


# ----------------------------------------------------------------------------- prepare_dataset


@pytest.mark.parametrize("scale", rs.SCALES)
def test_prepare_dataset_with_random_bad_files(scale, cohort10, tmp_path_factory):
    """A folder of one good scan plus two fuzzed files: prepare never raises, keeps the good scan,
    reports every other file on one line (never 'unexpected ...' from an unforeseen exception),
    and what it stores is finite and in [0, 1]."""
    from stylegan3d.data.prepare import prepare_dataset
    from stylegan3d.data.spatial import Geometry

    geom = Geometry.from_preset("demo", frame="mni")
    good = cohort10[0]
    root = tmp_path_factory.mktemp("fuzz-prepare")
    counter = [0]

    @fuzz_settings(20 * scale)
    @given(cases=st.lists(nifti_files(), min_size=2, max_size=2))
    def check(cases):
        counter[0] += 1
        src = root / f"src{counter[0]}"
        src.mkdir()
        (src / "good.nii.gz").write_bytes(good.read_bytes())
        for i, (name, blob) in enumerate(cases):
            (src / f"bad{i}-{name}").write_bytes(blob)
        out = root / f"ds{counter[0]}"
        report = prepare_dataset([src], out, geom, workers=1, progress=False, preview=0)
        rs.BAD_INPUTS["prepare_dataset with fuzzed files (hypothesis)"] += 2
        by_source = {e["source"]: e["error"] for e in report.errors}
        assert str(src / "good.nii.gz") in report.prepared
        assert len(report.prepared) + len(report.errors) + len(report.duplicates) == 3
        for source, msg in by_source.items():
            assert msg and "\n" not in msg
            if msg.startswith(("unexpected ", "worker process failed")):
                assert rs.known_bug_message(msg), f"{Path(source).name}: {msg}"
        arr = np.load(out / "volumes.npy")
        assert arr.shape[0] == report.total == len(report.prepared)
        assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1

    check()


# ----------------------------------------------------------------------------- label CSVs

NAMES = [f"sub-{i:03d}" for i in range(4)]


def _csv(rows: list[str]) -> str:
    return "\n".join(rows) + "\n"


GOOD_CSV = _csv(["name,age,sex", *(f"{n}.nii.gz,{30 + i},{'FM'[i % 2]}" for i, n in enumerate(NAMES))])

BAD_CSVS = {
    "empty file": b"",
    "only blank lines": b"\n\n  \n",
    "header only": b"name,age\n",
    "missing key column": _csv(["age,sex", *("40,F" for _ in NAMES)]).encode(),
    "missing rows": _csv(["name,age", *(f"{n},{i}" for i, n in enumerate(NAMES[:3]))]).encode(),
    "non-numeric garbage in a numeric column": _csv(
        ["name,age", *(f"{n},{'abc' if i == 2 else 30 + i}" for i, n in enumerate(NAMES))]
    ).encode(),
    "NaN in a numeric column": _csv(
        ["name,age", *(f"{n},{'nan' if i == 1 else i}" for i, n in enumerate(NAMES))]
    ).encode(),
    "duplicated names": _csv(["name,age", *(f"{n},{i}" for i, n in enumerate(NAMES)), f"{NAMES[0]}.nii.gz,9"]).encode(),
    "ragged row": _csv(["name,age", *(f"{n},{i}" for i, n in enumerate(NAMES)), "sub-009,1,2"]).encode(),
    "empty value": _csv(["name,age", *(f"{n},{'' if i == 0 else i}" for i, n in enumerate(NAMES))]).encode(),
    "duplicate header": _csv(["name,age,age", *(f"{n},{i},{i}" for i, n in enumerate(NAMES))]).encode(),
    "no label columns": _csv(["name", *NAMES]).encode(),
    "latin-1 bytes": _csv(["name,ville", *(f"{n},Besançon" for n in NAMES)]).encode("latin-1"),
    "UTF-16 (Excel 'Unicode text')": GOOD_CSV.encode("utf-16"),
    "NUL bytes": GOOD_CSV.replace("30", "3\x000").encode(),
    "semicolon separated": GOOD_CSV.replace(",", ";").encode(),
    "binary garbage": bytes(range(256)) * 4,
    "field over the csv size limit": _csv(["name,age", *(f"{n},{'9' * 200_000}" for n in NAMES)]).encode(),
    "unterminated quote": _csv(["name,age", *(f"{n},{i}" for i, n in enumerate(NAMES)), '"sub-005,3']).encode(),
}


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("labels") / "ds", n=4, vary_brightness=False)


def test_good_label_csv_loads(labelled_data, tmp_path):
    from stylegan3d.data.dataset import VolumeDataset

    path = tmp_path / "labels.csv"
    path.write_text(GOOD_CSV)
    ds = VolumeDataset(labelled_data, labels_csv=path)
    assert ds.label_names == ["age", "sex=F", "sex=M"]
    np.testing.assert_array_equal(ds.labels.numpy(), [[30, 1, 0], [31, 0, 1], [32, 1, 0], [33, 0, 1]])


@pytest.mark.parametrize("kind", sorted(BAD_CSVS))
def test_malformed_label_csv_is_a_user_error(kind, labelled_data, tmp_path):
    from stylegan3d.data.dataset import VolumeDataset

    path = tmp_path / "labels.csv"
    path.write_bytes(BAD_CSVS[kind])
    rs.BAD_INPUTS["malformed label CSV (table)"] += 1
    with pytest.raises(UserError) as e:
        VolumeDataset(labelled_data, labels_csv=path)
    assert str(e.value) and "\n" not in str(e.value)


def test_label_csv_with_utf8_bom_loads(labelled_data, tmp_path):
    from stylegan3d.data.dataset import VolumeDataset

    path = tmp_path / "labels.csv"
    path.write_bytes(GOOD_CSV.encode("utf-8-sig"))
    rs.BAD_INPUTS["label CSV with a UTF-8 BOM"] += 1
    ds = VolumeDataset(labelled_data, labels_csv=path)
    assert ds.label_names == ["age", "sex=F", "sex=M"]


@pytest.mark.parametrize("scale", rs.SCALES)
def test_label_csv_fuzz(scale, labelled_data, tmp_path_factory):
    """Random CSV text built from the characters that break parsers (quotes, separators, CR, NUL,
    BOM, non-ASCII) around the real names: a UserError or labels [4, L] that are finite."""
    from stylegan3d.data.dataset import VolumeDataset

    tokens = st.sampled_from([*NAMES, *(n + ".nii.gz" for n in NAMES), "name", "subject", "age", "sex",
                              "1", "-2.5", "1e3", "nan", "inf", "F", "M", "", " ", ",", ";", '"', "\n", "\r\n",
                              "\x00", "\ufeff", "é", "\t"])  # fmt: skip

    d = tmp_path_factory.mktemp("fuzz-csv")

    @fuzz_settings(120 * scale)
    @given(st.lists(tokens, max_size=60), st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    def check(parts, encoding):
        text = "".join(parts)
        try:
            blob = text.encode(encoding)
        except UnicodeEncodeError:
            blob = text.encode("utf-8")
        path = d / "labels.csv"
        path.write_bytes(blob)
        rs.BAD_INPUTS["label CSV random text (hypothesis)"] += 1
        try:
            ds = VolumeDataset(labelled_data, labels_csv=path)
        except UserError as e:
            assert str(e) and "\n" not in str(e)
            return
        assert ds.labels.shape[0] == 4 and ds.labels.shape[1] == len(ds.label_names) >= 1
        assert ds.labels.dtype.is_floating_point and bool(ds.labels.isfinite().all())

    check()

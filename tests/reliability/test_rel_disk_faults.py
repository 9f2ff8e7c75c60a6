"""Disk full, file-size limits and unwritable outputs: one clear UserError, the previous file or
checkpoint intact (hash verifies, it loads and resumes), no temporary file left behind.

Real faults come from the kernel (RLIMIT_FSIZE gives EFBIG on the write that crosses the
limit; a path under a regular file gives ENOTDIR; an existing folder as target gives EISDIR).
ENOSPC, EROFS and EACCES cannot be produced portably by a test (root ignores permission bits),
so they are injected at the system-call wrappers the code uses; the ``slow`` variant produces the
real ENOSPC and EROFS with a tiny tmpfs in a private mount namespace (``unshare -rm``) when available.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers.reliability as rs
from helpers.train import set_args
from stylegan3d import checkpoint as ckpt
from stylegan3d import fileio
from stylegan3d.errors import UserError
from stylegan3d.train.loop import Trainer

REASONS = {
    errno.ENOSPC: "no space left",
    errno.EROFS: "read-only",
    errno.EACCES: "permission denied",
    errno.EFBIG: "file too large",
    errno.ENOTDIR: "Not a directory",
    errno.EISDIR: "Is a directory",
}


def fail_nth(monkeypatch, module, name: str, err: int, n: int = 1, only_under: Path | None = None) -> list[int]:
    """Make the ``n``-th call of ``module.name`` (optionally only for paths under ``only_under``) raise ``err``."""
    real = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        target = kwargs.get("dir", args[0] if args else None)
        if only_under is None or (isinstance(target, str | os.PathLike) and Path(target).is_relative_to(only_under)):
            calls[0] += 1
            if calls[0] == n:
                raise OSError(err, os.strerror(err))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def partial_write_then(err: int):
    """A ``Path.write_bytes`` that writes half the data, then fails like a full disk."""

    def write_bytes(self, data):
        with open(self, "wb") as f:
            f.write(bytes(data)[: len(data) // 2])
        raise OSError(err, os.strerror(err))

    return write_bytes


WRITERS = {
    "bytes": lambda p: fileio.atomic_write_bytes(p, b"\x00new" * 5000),
    "text": lambda p: fileio.atomic_write_text(p, "new ✓\n" * 4000),
    "json": lambda p: fileio.atomic_write_json(p, {"new": np.arange(3000)}),
}


def _fault_cases():
    return [
        ("ENOSPC while writing", errno.ENOSPC),
        ("ENOSPC at fsync", errno.ENOSPC),
        ("EROFS creating the temp file", errno.EROFS),
        ("EACCES at rename", errno.EACCES),
        ("EFBIG real (RLIMIT_FSIZE)", errno.EFBIG),
    ]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("case,err", _fault_cases(), ids=[c for c, _ in _fault_cases()])
def test_atomic_write_fault_keeps_old_file(writer, case, err, tmp_path, monkeypatch):
    target = tmp_path / "out" / "result.dat"
    target.parent.mkdir()
    target.write_bytes(b"old content")
    with contextlib.ExitStack() as stack:
        if case == "ENOSPC while writing":
            monkeypatch.setattr(Path, "write_bytes", partial_write_then(err))
        elif case == "ENOSPC at fsync":
            fail_nth(monkeypatch, os, "fsync", err)
        elif case == "EROFS creating the temp file":
            fail_nth(monkeypatch, tempfile, "mkstemp", err)
        elif case == "EACCES at rename":
            fail_nth(monkeypatch, os, "replace", err)
        else:
            stack.enter_context(rs.file_size_limit(1000))
        with pytest.raises(UserError) as e:
            WRITERS[writer](target)
    rs.FAULTS[f"atomic write: {case}"] += 1
    msg = str(e.value)
    assert "\n" not in msg and str(target) in msg and REASONS[err] in msg, msg
    with rs.intact("atomic write: old file unchanged, no temp file"):
        assert target.read_bytes() == b"old content"
        assert sorted(p.name for p in target.parent.iterdir()) == ["result.dat"]


def test_atomic_write_real_path_errors(tmp_path):
    """Target under a regular file (ENOTDIR) and target that is a folder (EISDIR): real kernel errors."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "keep").write_text("keep")
    for target, err in ((blocker / "sub" / "out.json", errno.ENOTDIR), (folder, errno.EISDIR)):
        with pytest.raises(UserError) as e:
            fileio.atomic_write_json(target, {"a": 1})
        rs.FAULTS[f"atomic write: {errno.errorcode[err]} real"] += 1
        assert "\n" not in str(e.value) and REASONS[err] in str(e.value), str(e.value)
    assert blocker.read_text() == "x" and sorted(p.name for p in folder.iterdir()) == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]


# ----------------------------------------------------------------------------- checkpoints


def _assert_run_intact(run: Path, before: dict[str, str], expect_latest: Path) -> None:
    """Nothing in ``run/checkpoints`` or ``run/latest`` changed; the newest checkpoint verifies and loads."""
    with rs.intact("run: previous checkpoint unchanged, verifies and loads; no temp files"):
        ck = {k: v for k, v in rs.tree_state(run).items() if k.startswith("checkpoints/") or k == "latest"}
        assert ck == {k: v for k, v in before.items() if k.startswith("checkpoints/") or k == "latest"}
        assert rs.temp_leftovers(run) == []
        assert ckpt.resolve_checkpoint(run).path == expect_latest
        ckpt.verify_checkpoint(expect_latest)
        g, found = ckpt.load_generator(run)
        assert found.sha256 == ckpt.sha256_file(expect_latest)
        assert torch.isfinite(g(torch.zeros(1, g.z_dim), noise_mode="const")).all()


SAVE_FAULTS = [
    "EFBIG real in the tensors file (RLIMIT_FSIZE)",
    "ENOSPC in safetensors (its own error type)",
    "ENOSPC writing the sidecar",
    "EIO at fsync of the tensors file",
    "EROFS at rename of the tensors file",
    "EROFS creating temp files (read-only folder)",
]


@pytest.fixture(scope="module")
def stepped_trainer(_trained_run, tiny_data, tmp_path_factory) -> Trainer:
    """A tiny Trainer resumed from the trained run and advanced one step (its next save is step 3).
    Each test points its ``out`` at a private copy of the run."""
    run = Path(shutil.copytree(_trained_run, tmp_path_factory.mktemp("stepped") / "run"))
    trainer = Trainer(rs.tiny_config("train.kimg=0.008"), tiny_data, run, resume=run, device="cpu", progress=False)
    trainer.train_step()
    return trainer


@pytest.mark.parametrize("fault", SAVE_FAULTS)
def test_checkpoint_save_fault_keeps_previous_checkpoint(fault, stepped_trainer, tiny_run, monkeypatch):
    """The checkpoint write of a tiny Trainer fails: UserError, the previous checkpoint untouched and
    loadable, no temp or orphan files; after the fault clears the same trainer saves fine."""
    trainer = stepped_trainer
    trainer.out = tiny_run
    prev = ckpt.resolve_checkpoint(tiny_run).path
    before = rs.tree_state(tiny_run)
    ckdir = tiny_run / "checkpoints"
    with contextlib.ExitStack() as stack:
        if fault.startswith("EFBIG"):
            stack.enter_context(rs.file_size_limit(64 * 1024))  # the tensors file is ~150 KB, its sidecar ~5 KB
        elif fault.startswith("ENOSPC in safetensors"):
            import safetensors.torch

            real = safetensors.torch.save_file

            def full_disk(tensors, filename, metadata=None):
                real(dict(list(tensors.items())[:3]), filename, metadata)  # part of the data reached the disk
                from safetensors import SafetensorError

                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

            monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
        elif fault.startswith("ENOSPC writing the sidecar"):
            monkeypatch.setattr(Path, "write_bytes", partial_write_then(errno.ENOSPC))
        elif fault.startswith("EIO at fsync"):
            fail_nth(monkeypatch, os, "fsync", errno.EIO, n=3)  # 1: sidecar, 2: its folder, 3: tensors
        elif fault.startswith("EROFS at rename"):
            fail_nth(monkeypatch, os, "replace", errno.EROFS, n=2)  # 1: sidecar, 2: tensors
        else:
            fail_nth(monkeypatch, tempfile, "mkstemp", errno.EROFS, only_under=ckdir)
        with pytest.raises(UserError) as e:
            trainer.save()
    monkeypatch.undo()
    rs.FAULTS[f"checkpoint save: {fault}"] += 1
    assert "\n" not in str(e.value) and "ckpt-00000003" in str(e.value), str(e.value)
    _assert_run_intact(tiny_run, before, prev)
    new = trainer.save()  # the fault is gone: the next save works
    assert ckpt.resolve_checkpoint(tiny_run).path == new and new.name == "ckpt-00000003.safetensors"
    assert ckpt.load_tensors(new).keys() == ckpt.load_tensors(prev).keys()


def test_checkpoint_fault_writing_latest(stepped_trainer, tiny_run, tiny_data, monkeypatch):
    """The pointer ``latest`` cannot be written: UserError; the new checkpoint is complete and valid,
    ``latest`` still names the previous one, and training resumes from the new one."""
    trainer = stepped_trainer
    trainer.out = tiny_run
    prev = ckpt.resolve_checkpoint(tiny_run).path
    fail_nth(monkeypatch, tempfile, "mkstemp", errno.ENOSPC, n=3)  # 1: tensors, 2: sidecar, 3: latest
    with pytest.raises(UserError, match="latest"):
        trainer.save()
    monkeypatch.undo()
    rs.FAULTS["checkpoint save: ENOSPC writing latest"] += 1
    assert rs.temp_leftovers(tiny_run) == []
    assert ckpt.resolve_checkpoint(tiny_run).path == prev
    new = tiny_run / "checkpoints" / "ckpt-00000003.safetensors"
    ckpt.verify_checkpoint(new)
    resumed = Trainer(rs.tiny_config("train.kimg=0.008"), tiny_data, tiny_run, resume=new, device="cpu", progress=False)
    assert resumed.state.step == 3
    for k, v in resumed.G_ema.state_dict().items():
        assert torch.equal(v, trainer.G_ema.state_dict()[k]), k


def test_cli_train_resume_disk_full(tiny_run, tiny_data):
    """``stylegan3d train --resume RUN`` with a file-size limit below a checkpoint: one ``error:``
    line, exit 2, the previous checkpoint intact, no temp files; afterwards the same command works."""
    prev = ckpt.resolve_checkpoint(tiny_run).path
    before = rs.tree_state(tiny_run)
    args = ["train", "--data", str(tiny_data), "--out", str(tiny_run), "--resume", str(tiny_run)]
    args += ["--kimg", "0.006", "--no-progress", "--device", "cpu"]
    with rs.file_size_limit(64 * 1024):
        code, _, err = rs.run_cli(args)
    rs.FAULTS["cli train --resume: EFBIG real at checkpoint"] += 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "ckpt-00000003" in lines[0] and "file too large" in lines[0]
    _assert_run_intact(tiny_run, before, prev)
    code, out, err = rs.run_cli(args)
    assert code == 0, err
    assert ckpt.resolve_checkpoint(tiny_run).meta.step == 3


def _read_only(monkeypatch, root: Path) -> None:
    """Simulate a read-only mount at ``root``: every create/open-for-write/mkdir below it fails with EROFS."""
    import builtins

    def guard(path) -> None:
        if isinstance(path, str | os.PathLike) and Path(os.path.abspath(path)).is_relative_to(root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            guard(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            guard(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        guard(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_cli_train_resume_read_only_run_dir(tiny_run, tiny_data, monkeypatch):
    before = rs.tree_state(tiny_run)
    prev = ckpt.resolve_checkpoint(tiny_run).path
    _read_only(monkeypatch, tiny_run)
    args = ["train", "--data", str(tiny_data), "--out", str(tiny_run), "--resume", str(tiny_run)]
    code, _, err = rs.run_cli([*args, "--kimg", "0.006", "--no-progress", "--device", "cpu"])
    monkeypatch.undo()
    rs.FAULTS["cli train --resume: EROFS run directory"] += 1
    assert rs.tree_state(tiny_run) == before
    _assert_run_intact(tiny_run, before, prev)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "read-only" in lines[0], err


def test_cli_train_out_under_a_file(tiny_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    sets = set_args(rs.TINY_OVERRIDES)
    args = ["train", "--data", str(tiny_data), "--out", str(blocker / "run"), *sets, "--kimg", "0.002"]
    code, _, err = rs.run_cli([*args, "--no-progress", "--device", "cpu"])
    rs.FAULTS["cli train: --out under a regular file (ENOTDIR)"] += 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err


# ----------------------------------------------------------------------------- prepare


def test_prepare_disk_full_then_rerun(cohort10, clean_prepared, tmp_path):
    """The volumes.npy write hits the size limit: one UserError, no volumes.npy/manifest and no temp
    file; the finished per-volume parts are kept, so a re-run resumes all ten and equals a clean run."""
    from stylegan3d.data.prepare import prepare_dataset
    from stylegan3d.data.spatial import Geometry

    geom = Geometry.from_preset("demo", frame="mni")
    out = tmp_path / "ds"
    with rs.file_size_limit(60 * 1024), pytest.raises(UserError) as e:  # a part is ~13 KB, volumes.npy ~130 KB
        prepare_dataset(cohort10, out, geom, workers=1, progress=False, preview=0)
    rs.FAULTS["prepare: EFBIG real writing volumes.npy"] += 1
    assert "\n" not in str(e.value) and "volumes.npy" in str(e.value) and "file too large" in str(e.value)
    assert not (out / "volumes.npy").exists() and not (out / "manifest.json").exists()
    assert rs.temp_leftovers(out) == []
    assert len(list((out / ".parts").glob("*.json"))) == 10  # every finished volume was kept
    report = prepare_dataset(cohort10, out, geom, workers=1, progress=False, preview=0)
    with rs.intact("prepare: dataset after a fault equals a clean run (bitwise)"):
        assert len(report.resumed) == 10 and not report.prepared and not report.errors
        a = np.load(out / "volumes.npy")
        b = np.load(clean_prepared / "volumes.npy")
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_prepare_out_under_a_file(cohort10, tmp_path):
    from stylegan3d.data.prepare import prepare_dataset
    from stylegan3d.data.spatial import Geometry

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rs.FAULTS["prepare: --out under a regular file (ENOTDIR)"] += 1
    with pytest.raises(UserError):
        prepare_dataset(cohort10[:1], blocker / "ds", Geometry.from_preset("demo"), workers=1, progress=False)


# ----------------------------------------------------------------------------- real mounts (slow)

MOUNT_SCRIPT = r"""
set -u
mnt="$1"; run="$2"; data="$3"; res="$4"; size_kb="$5"; mode="$6"
mount -t tmpfs -o size=${size_kb}k tmpfs "$mnt" || exit 90
cp -a "$run" "$mnt/run"
if [ "$mode" = ro ]; then mount -o remount,ro "$mnt" || exit 91; fi
"$PY" -m stylegan3d train --data "$data" --out "$mnt/run" --resume "$mnt/run" --kimg 0.006 --no-progress \
    --device cpu > "$res/stdout" 2> "$res/stderr"
echo $? > "$res/rc"
"$PY" - "$mnt/run" "$res" <<'PYEOF'
import json, sys
from pathlib import Path
from stylegan3d import checkpoint as ckpt
run, res = Path(sys.argv[1]), Path(sys.argv[2])
latest = ckpt.resolve_checkpoint(run).path
g, found = ckpt.load_generator(run)
files = {str(p.relative_to(run)): ckpt.sha256_file(p) for p in sorted(run.rglob("*")) if p.is_file()}
(res / "after.json").write_text(json.dumps({"latest": latest.name, "step": found.meta.step, "files": files}))
PYEOF
"""


def _mount_namespace_available() -> bool:
    import subprocess

    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "ro"])
def test_cli_train_resume_on_real_full_or_read_only_mount(mode, tiny_run, tiny_data, tmp_path):
    """The real thing, in a private mount namespace (``unshare -rm``): the run lives on a tmpfs just
    big enough for what it holds (ENOSPC on the next checkpoint) or remounted read-only (EROFS)."""
    import subprocess
    import sys

    if not _mount_namespace_available():
        pytest.skip("unshare -rm (user + mount namespaces) is not available here")
    before = rs.tree_state(tiny_run)
    prev = ckpt.resolve_checkpoint(tiny_run).path
    used_kb = sum(p.stat().st_size for p in tiny_run.rglob("*") if p.is_file()) // 1024
    mnt, res = tmp_path / "mnt", tmp_path / "res"
    mnt.mkdir()
    res.mkdir()
    env = dict(os.environ, PY=sys.executable)
    cmd = ["unshare", "-rm", "bash", "-c", MOUNT_SCRIPT, "bash", str(mnt), str(tiny_run), str(tiny_data), str(res),
           str(used_kb + 100), mode]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rs.FAULTS[f"cli train --resume: real {'ENOSPC (tmpfs)' if mode == 'full' else 'EROFS (ro mount)'}"] += 1
    after = json.loads((res / "after.json").read_text())
    assert after["latest"] == prev.name and after["step"] == ckpt.read_sidecar(prev).step
    ck = {k: v for k, v in before.items() if k.startswith("checkpoints/") or k == "latest"}
    assert {k: v for k, v in after["files"].items() if k.startswith("checkpoints/") or k == "latest"} == ck
    assert not [k for k in after["files"] if Path(k).name.startswith(".")]  # no temp files
    err = (res / "stderr").read_text()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert (res / "rc").read_text().strip() == "2" and len(lines) == 1 and lines[0].startswith("error: "), err
    assert ("no space left" if mode == "full" else "read-only") in lines[0]


# ----------------------------------------------------------------------------- damaged run directories

DAMAGE = {
    "latest holds binary garbage": lambda run, new: (run / "latest").write_bytes(bytes(range(128, 256))),
    "latest zero-filled (power loss)": lambda run, new: (run / "latest").write_bytes(b"\0" * 38),
    "latest points outside the run": lambda run, new: (run / "latest").write_text("../../../etc/passwd\n"),
    "newest checkpoint zero-filled": lambda run, new: new.write_bytes(b"\0" * new.stat().st_size),
    "newest checkpoint truncated": lambda run, new: new.write_bytes(new.read_bytes()[:1000]),
    "newest sidecar missing": lambda run, new: ckpt.sidecar_path(new).unlink(),
    "newest sidecar zero-filled": lambda run, new: ckpt.sidecar_path(new).write_bytes(b"\0" * 100),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_run_falls_back_to_last_good_checkpoint(damage, tiny_run):
    """After a crash or power loss: an unreadable ``latest`` or a damaged newest checkpoint is skipped
    with a warning naming it, and the newest intact checkpoint is used."""
    old, new = ckpt.list_checkpoints(tiny_run)
    DAMAGE[damage](tiny_run, new)
    rs.FAULTS[f"damaged run: {damage}"] += 1
    expect = new if damage.startswith("latest") else old
    with pytest.warns(UserWarning, match="skipped unusable checkpoint"):
        got = ckpt.resolve_checkpoint(tiny_run).path
    with rs.intact("damaged run: the newest intact checkpoint is found and loads"):
        assert got == expect
        g, found = ckpt.load_generator(expect)
        assert found.meta.step == int(expect.stem.split("-")[1])

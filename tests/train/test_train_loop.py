"""Training loop: losses decrease sensibly, exact resume, crash safety, NaN handling, DDP equivalence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stylegan3d import checkpoint as ckpt
from stylegan3d.config import apply_overrides
from stylegan3d.train.loop import Trainer, TrainingDiverged, train

STEPS_KIMG = 0.004  # one step of batch 4


def _final(run: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_tensors(ckpt.resolve_checkpoint(run).path)


def _assert_same(a: dict, b: dict, prefix: str = "G_ema.", atol: float = 0.0) -> None:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys and keys == [k for k in b if k.startswith(prefix)]
    for k in keys:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-3, msg=k)


def _cli(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-m", "stylegan3d", "train", *args]


def test_checkpoint_contents_and_sidecar(tiny_cfg, tiny_dataset, tmp_path):
    cfg = apply_overrides(tiny_cfg, ["train.kimg=0.008"])
    last = train(cfg, tiny_dataset, tmp_path / "run", progress=False)
    meta = ckpt.read_sidecar(last)
    tensors = ckpt.load_tensors(last)
    assert meta.step == 2 and meta.kimg == pytest.approx(0.008)
    assert meta.sha256 == ckpt.sha256_file(last)
    assert meta.dataset["shape"] == [10, 12, 14] and len(meta.dataset["manifest_sha256"]) == 64
    assert meta.config["train"]["kimg"] == pytest.approx(0.008)
    for prefix in ("G.", "D.", "G_ema.", "opt_G.", "opt_D.", "augment.", "rng.torch", "rng.numpy", "state.pl_mean"):
        assert any(k.startswith(prefix) for k in tensors), prefix
    assert {"sampler", "ada", "opt_G", "rng", "cur_nimg"} <= set(meta.state)
    run = tmp_path / "run"
    assert (run / "config.json").is_file() and (run / "log.txt").read_text().count("tick ") >= 1
    assert list((run / "samples").glob("fakes-*.png")) and list((run / "tensorboard").iterdir())
    g, _ = ckpt.load_generator(run)
    assert g(torch.zeros(1, 8), noise_mode="const").shape == (1, 1, 10, 12, 14)


def test_resume_is_bitwise_identical(tiny_cfg, tiny_dataset, tmp_path):
    cfg = apply_overrides(tiny_cfg, ["train.kimg=0.024", "train.deterministic=true"])
    train(cfg, tiny_dataset, tmp_path / "straight", progress=False)
    half = apply_overrides(cfg, ["train.kimg=0.012"])
    train(half, tiny_dataset, tmp_path / "split", progress=False)
    train(cfg, tiny_dataset, tmp_path / "split", resume=tmp_path / "split", progress=False)
    a, b = _final(tmp_path / "straight"), _final(tmp_path / "split")
    for prefix in ("G_ema.", "G.", "D.", "opt_G.", "augment."):
        _assert_same(a, b, prefix)


def test_nan_steps_are_skipped_then_training_stops(tiny_cfg, tiny_dataset, tmp_path, monkeypatch):
    cfg = apply_overrides(tiny_cfg, ["train.kimg=0.04", "train.max_bad_steps=3"])
    monkeypatch.setenv("STYLEGAN3D_FAULT_NAN_STEPS", "2")
    trainer = Trainer(cfg, tiny_dataset, tmp_path / "one", progress=False)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    trainer.train_step()
    trainer.train_step()
    g_before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    trainer.train_step()  # step 2: NaN loss -> skipped, G unchanged, counted
    assert trainer.state.bad_steps_total == 1
    for k, v in trainer.G.state_dict().items():
        if "w_avg" not in k:
            assert torch.equal(v, g_before[k]), k
    assert any(not torch.equal(v, before[k]) for k, v in g_before.items())
    trainer.train_step()
    assert trainer.state.bad_steps_consecutive == 0
    assert "non-finite" in (tmp_path / "one" / "log.txt").read_text()

    monkeypatch.setenv("STYLEGAN3D_FAULT_NAN_STEPS", "3,4,5,6,7")
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite"):
        train(cfg, tiny_dataset, tmp_path / "two", progress=False)
    good = ckpt.resolve_checkpoint(tmp_path / "two")  # snapshots before the NaNs are intact
    assert good.meta.step <= 5  # written before the stop; skipped steps left G intact
    for t in ckpt.load_tensors(good.path).values():
        assert torch.isfinite(t.float()).all()


def test_cli_kill_during_checkpoint_write_then_resume(tiny_dataset, tmp_path):
    """SIGKILL inside the 2nd checkpoint write; --resume continues and ends where a clean run ends."""
    from helpers.train import TINY_ARGS

    env = dict(os.environ, STYLEGAN3D_FAULT_KILL_IN_SAVE="2")
    args = [*TINY_ARGS, "--data", str(tiny_dataset), "--kimg", "0.016", "--deterministic", "--no-progress"]
    run = tmp_path / "run"
    proc = subprocess.run(_cli(*args, "--out", str(run)), env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["ckpt-00000002.safetensors"]  # the 1st snapshot
    assert list((run / "checkpoints").glob(".ckpt-*"))  # the half-written temp file is all that is left
    resumed = subprocess.run(_cli(*args, "--out", str(run), "--resume", str(run)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(_cli(*args, "--out", str(tmp_path / "clean")), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    _assert_same(_final(run), _final(tmp_path / "clean"))


GATED_TRAIN = """
import sys, threading
from stylegan3d.train.loop import Trainer
gate, real = int(sys.argv[1]), Trainer.train_step
def gated(self):
    if self.state.step >= gate:
        threading.Event().wait()  # held here until the test's SIGKILL
    return real(self)
Trainer.train_step = gated
from stylegan3d.cli.main import main
sys.argv = ["stylegan3d", *sys.argv[2:]]
sys.exit(main(sys.argv[1:]))
"""
"""The real ``train`` CLI, except that it never starts a step once ``argv[1]`` steps are done: a run
killed on progress can then never end before the kill, however fast the machine is."""


def _new_stat_rows(stats: Path, offset: int) -> list[dict]:
    """Complete rows of ``stats.jsonl`` appended after byte ``offset``."""
    import json

    if not stats.exists():
        return []
    with open(stats, "rb") as f:
        f.seek(offset)
        text = f.read().decode()
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _kill_at_step(cmd: list[str], stats: Path, step: int) -> tuple[subprocess.Popen, int]:
    """Start ``cmd``; SIGKILL it as soon as it has logged ``step`` (its tick row in stats.jsonl).
    Returns the killed process and the highest step it had logged. No clock involved: the poll only
    waits for progress, and fails if the process ends first."""
    offset = stats.stat().st_size if stats.exists() else 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        seen = [r["step"] for r in _new_stat_rows(stats, offset)]
        if seen and max(seen) >= step:
            break
        assert proc.poll() is None, f"train ended before step {step}: {proc.stderr.read().decode()[-3000:]}"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return proc, max(r["step"] for r in _new_stat_rows(stats, offset))


def test_cli_kill_at_random_moments(tiny_dataset, tmp_path):
    """SIGKILL, three times, at a random step between two checkpoints (chosen from the run's progress,
    not from a clock); each --resume continues from the last checkpoint; the end equals a clean run bitwise."""
    import random

    from helpers.train import TINY_ARGS

    snap, total = 4, 16  # one tick per step; a checkpoint every 4 steps; 16 steps of batch 4
    args = [
        *TINY_ARGS,
        "--data",
        str(tiny_dataset),
        "--kimg",
        str(total * STEPS_KIMG),
        "--deterministic",
        "--no-progress",
        "--set",
        f"train.tick_kimg={STEPS_KIMG}",
        "--set",
        f"train.snap_ticks={snap}",
    ]
    run, rng = tmp_path / "run", random.Random(17)
    resumed_from, kills = 0, []
    for _ in range(3):
        # past the next checkpoint (resumed_from + snap), then killed before the one after it: the kill
        # lands in step target+1 (or its tick and log writes), and the gate stops the run short of the next
        # checkpoint whatever the machine's speed
        target = rng.randint(resumed_from + snap + 1, resumed_from + 2 * snap - 2)
        gate = target + 1
        resume = ["--resume", str(run)] if resumed_from else []
        cmd = [sys.executable, "-c", GATED_TRAIN, str(gate), "train", *args, "--out", str(run), *resume]
        proc, logged = _kill_at_step(cmd, run / "stats.jsonl", target)
        assert proc.returncode == -signal.SIGKILL
        newest = ckpt.resolve_checkpoint(run).meta.step
        assert newest == resumed_from + snap, (target, logged, newest)  # killed between two checkpoints
        assert target <= logged <= gate and logged > newest  # work since the last checkpoint was lost
        kills.append((target, logged))
        resumed_from = newest
    assert len(kills) == 3

    final = subprocess.run(_cli(*args, "--out", str(run), "--resume", str(run)), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    clean = subprocess.run(_cli(*args, "--out", str(tmp_path / "clean")), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    a, b = _final(run), _final(tmp_path / "clean")
    assert ckpt.resolve_checkpoint(run).meta.step == total
    for prefix in ("G_ema.", "G.", "D.", "opt_G.", "opt_D.", "augment."):
        _assert_same(a, b, prefix)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]
)
def test_auto_precision_follows_the_cpu_and_explicit_precision_wins(monkeypatch, avx512_bf16, amx, expected):
    """``auto`` picks bf16 on AVX512-BF16 or AMX CPUs and fp32 elsewhere; a test (or user) that needs one
    precision sets it, and gets it on any CPU."""
    from stylegan3d.train.loop import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_step_in_either_precision_on_any_cpu(tiny_cfg, tiny_dataset, tmp_path, precision):
    import math

    trainer = Trainer(
        apply_overrides(tiny_cfg, [f"train.precision={precision}"]), tiny_dataset, tmp_path, progress=False
    )
    assert trainer.precision == precision
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    stats = trainer.train_step()
    assert stats and all(math.isfinite(v) for v in stats.values())
    after = trainer.G.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point())  # master weights
    assert any(not torch.equal(v, before[k]) for k, v in after.items())


def test_corrupt_latest_checkpoint_falls_back_with_warning(tiny_cfg, tiny_dataset, tmp_path):
    cfg = apply_overrides(tiny_cfg, ["train.kimg=0.016"])
    train(cfg, tiny_dataset, tmp_path / "run", progress=False)
    newest = ckpt.list_checkpoints(tmp_path / "run")[-1]
    with open(newest, "r+b") as f:
        f.truncate(newest.stat().st_size // 2)
    with pytest.warns(UserWarning, match="corrupt"):
        chosen = ckpt.resolve_checkpoint(tmp_path / "run").path
    assert chosen != newest and chosen.exists()


def test_resume_with_other_network_is_refused(tiny_cfg, tiny_dataset, tmp_path):
    from stylegan3d.errors import CheckpointError

    train(apply_overrides(tiny_cfg, ["train.kimg=0.004"]), tiny_dataset, tmp_path / "run", progress=False)
    other = apply_overrides(tiny_cfg, ["train.kimg=0.008", "width=4"])
    with pytest.raises(CheckpointError, match="another network"):
        Trainer(other, tiny_dataset, tmp_path / "run", resume=tmp_path / "run", progress=False)


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_ddp_two_processes_match_one(tiny_dataset, tmp_path):
    """torchrun with 2 gloo processes == one process with the same global batch (aug off)."""
    from helpers.train import TINY_ARGS

    # minibatch-std groups must not straddle processes: group size <= per-process batch (2 here)
    args = [
        *TINY_ARGS,
        "--data",
        str(tiny_dataset),
        "--kimg",
        "0.012",
        "--aug",
        "none",
        "--no-progress",
        "--set",
        "d.mbstd_group=2",
    ]
    one = subprocess.run(_cli(*args, "--out", str(tmp_path / "one")), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "stylegan3d",
        "train",
        *args,
        "--out",
        str(tmp_path / "two"),
    ]
    two = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _final(tmp_path / "one"), _final(tmp_path / "two")
    assert ckpt.resolve_checkpoint(tmp_path / "two").meta.resume_state().world_size == 2
    _assert_same(a, b, "G.", atol=1e-4)
    _assert_same(a, b, "D.", atol=1e-4)


def test_checkpoint_records_dataset_preparation_and_projection_uses_it(tiny_cfg, tmp_path):
    """frame, intensity percentiles and mask threshold of the manifest reach the sidecar; a scan given
    to ``project`` is then prepared in that frame with those settings; without them, today's defaults."""
    import json

    import nibabel as nib
    import numpy as np

    from helpers.data import write_tiny_dataset
    from stylegan3d.data.spatial import Geometry, prepare_array
    from stylegan3d.infer import api

    data = write_tiny_dataset(tmp_path / "ds")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["intensity"] = {"lower_pct": 2.0, "upper_pct": 98.0}
    manifest["settings"] = {"mask": {"threshold": 0.2, "pattern": None}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    last = train(apply_overrides(tiny_cfg, ["train.kimg=0.004"]), data, tmp_path / "run", progress=False)
    meta = ckpt.read_sidecar(last)
    assert meta.dataset["frame"] == "mni" and meta.dataset["mask_threshold"] == 0.2
    assert meta.dataset["intensity"] == {"lower_pct": 2.0, "upper_pct": 98.0}

    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in (40, 48, 56)], indexing="ij"))
    scan = 100.0 + 900.0 * np.exp(-(((grid - np.array([14, 30, 20])[:, None, None, None]) / 9.0) ** 2).sum(0))
    scan_affine = np.diag([4.0, 4.0, 4.0, 1.0])
    scan_affine[:3, 3] = [-70.0, -90.0, -100.0]
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan.astype(np.float32), scan_affine), str(path))
    dataset_affine = np.asarray(manifest["affine"])

    model = api.load(last)
    g = model.geometry
    assert (g.frame, g.lower_pct, g.upper_pct, g.mask_threshold) == ("mni", 2.0, 98.0, 0.2)
    vol, _, affine, _ = model.prepare_target(path)
    np.testing.assert_array_equal(affine, dataset_affine)  # the MNI grid, not one centred on this scan
    mni = Geometry([10, 12, 14], [16.0] * 3, dataset_affine, "mni")
    want, _ = prepare_array(scan, scan_affine, mni, 2.0, 98.0, 0.2)
    np.testing.assert_array_equal(vol[0], want)

    for key in ("frame", "intensity", "mask_threshold"):  # a checkpoint from before these were recorded
        del meta.dataset[key]
    ckpt.sidecar_path(last).write_text(json.dumps(meta.to_dict()))
    old = api.load(last)
    g = old.geometry
    assert (g.frame, g.lower_pct, g.upper_pct, g.mask_threshold) == ("centre", 0.5, 99.5, None)
    vol, _, affine, _ = old.prepare_target(path)
    assert not np.allclose(affine, dataset_affine)  # centred on the scan's foreground, as before
    want, _ = prepare_array(scan, scan_affine, Geometry([10, 12, 14], [16.0] * 3, dataset_affine, "centre"))
    np.testing.assert_array_equal(vol[0], want)


def test_sampler_peek_does_not_advance():
    from stylegan3d.train.loop import InfiniteSampler

    s = InfiniteSampler(5, seed=3)
    s.take(3)
    state = s.state_dict()
    ahead = s.peek(4)  # crosses into the next epoch
    assert s.state_dict() == state and s.take(4) == ahead


def test_workers_read_ahead_in_threads_with_identical_batches_and_resume(tiny_cfg, tiny_dataset, tmp_path, monkeypatch):
    """train.workers threads read the next batch during a step; the batches, the final weights and
    an exact resume are bitwise the same as reading in the training thread (workers=0)."""
    import threading

    from stylegan3d.data.dataset import VolumeDataset
    from stylegan3d.train import batches as batch_reading

    readers: list[str] = []
    getitem, collate = VolumeDataset.__getitem__, batch_reading._collate

    def spy_getitem(self, i):
        readers.append(threading.current_thread().name)
        return getitem(self, i)

    batches: list[torch.Tensor] = []

    def spy_collate(items, labelled, device):
        out = collate(items, labelled, device)
        batches.append(out[0].clone())
        return out

    monkeypatch.setattr(VolumeDataset, "__getitem__", spy_getitem)
    monkeypatch.setattr(batch_reading, "_collate", spy_collate)
    base = apply_overrides(tiny_cfg, ["train.kimg=0.024", "train.deterministic=true"])  # 6 steps over 8 volumes
    train(apply_overrides(base, ["train.workers=0"]), tiny_dataset, tmp_path / "plain", progress=False)
    plain, batches[:] = list(batches), []
    assert set(readers) == {threading.current_thread().name}
    readers.clear()
    threaded = apply_overrides(base, ["train.workers=2"])
    train(apply_overrides(threaded, ["train.kimg=0.012"]), tiny_dataset, tmp_path / "split", progress=False)
    train(threaded, tiny_dataset, tmp_path / "split", resume=tmp_path / "split", progress=False)
    assert sum(r.startswith("stylegan3d-data") for r in readers) >= 4 * 4  # steps 2-3 and 5-6 were read ahead
    assert not [t for t in threading.enumerate() if t.name.startswith("stylegan3d-data")]  # closed after run()
    assert len(batches) == len(plain) == 6
    assert all(torch.equal(a, b) for a, b in zip(plain, batches, strict=True))
    a, b = _final(tmp_path / "plain"), _final(tmp_path / "split")
    for prefix in ("G_ema.", "G.", "D.", "opt_G.", "opt_D.", "augment."):
        _assert_same(a, b, prefix)

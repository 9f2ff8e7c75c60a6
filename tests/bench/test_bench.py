"""``stylegan3d bench``: JSON schema, consistent numbers, FLOP counts against analytic ones, errors."""

import json
import math
import os
import statistics

import pytest
import torch
import torch.nn.functional as F

from stylegan3d.bench import (
    SCHEMA,
    PeakMemory,
    Variant,
    conv3d_flops,
    count_flops,
    expand_variants,
)
from stylegan3d.cli.main import main

TINY = ["--preset", "demo", "--set", "width=8", "--set", "resolution=[10,12,14]"]
TINY += ["--set", "z_dim=8", "--set", "g.mapping_layers=2"]
BATCH = 2


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = ["bench", *TINY, "--batch", str(BATCH), "--precision", "fp32", "--compare", "fused"]
    main(args + ["--repeats", "2", "--threads", "1", "--no-progress", "--json", str(out)])
    return json.loads(out.read_text())


def _numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield path, obj


def test_report_schema_and_environment(report):
    assert report["schema"] == SCHEMA
    m = report["machine"]
    assert m["device"] == "cpu" and m["torch_threads"] == 1
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert len(m["loadavg"]) == 3 and len(m["loadavg_end"]) == 3
    assert m["thp_mem_alloc"] == os.environ.get("THP_MEM_ALLOC_ENABLE")  # stylegan3d sets "1" unless given
    assert report["versions"]["torch"] == torch.__version__
    assert report["settings"]["flop_counter"] == "torch.utils.flop_counter.FlopCounterMode"
    (entry,) = report["results"]
    assert entry["preset"] == "demo" and entry["resolution"] == [10, 12, 14] and entry["voxels"] == 1680
    assert [r["resolved"]["fused"] for r in entry["runs"]] == ["fused", "nonfused"]
    for run in entry["runs"]:
        assert run["errors"] == []
        assert run["resolved"]["precision"] == "fp32"
        for part in ("g_forward", "train_step", "projection", "peak_conv"):
            assert run[part] is not None, part
        assert run["params"]["G"] > 0 and run["params"]["D"] > 0


def test_all_numbers_finite_and_positive(report):
    for run in report["results"][0]["runs"]:
        values = dict(_numbers({k: run[k] for k in ("g_forward", "train_step", "projection", "peak_conv")}))
        assert values
        for path, v in values.items():
            assert math.isfinite(v), path
            if "increase_bytes" not in path:  # RSS may not grow when memory is reused
                assert v > 0, path


def test_peak_conv_flops_are_analytic(report):
    run = report["results"][0]["runs"][0]
    pc = run["peak_conv"]
    shape = pc["shape"]
    assert shape == [BATCH, 8, 10, 12, 14]  # small enough: not halved
    analytic = conv3d_flops(BATCH, 8, 8, 3, shape[2:])
    assert pc["analytic_forward_flops"] == analytic == pc["forward"]["flops"]
    assert pc["forward_backward"]["flops"] == 3 * analytic  # + grad input + grad weight
    fwd = pc["forward"]
    assert fwd["flop_per_s"] == pytest.approx(fwd["flops"] / fwd["seconds"])
    assert fwd["seconds"] == pytest.approx(statistics.median(fwd["times_s"]))


def test_g_forward_flops_match_analytic_count(report):
    """Every matmul and conv of the tiny generator (batch 2, F=8, w=8, 2 mapping layers)."""
    n, f, w, v0, v1 = BATCH, 8, 8, 5 * 6 * 7, 10 * 12 * 14
    mapping = 2 * (2 * n * w * w)
    affines = 4 * (2 * n * w * f)  # three modulated 3x3x3 convs + ToRGB
    demod = 3 * (2 * n * f * f)  # styles^2 @ sum(w^2) of the demodulated convs
    convs = conv3d_flops(n, f, f, 3, [v0]) + conv3d_flops(n, f, f, 3, [v0]) + conv3d_flops(n, f, f, 3, [v1])
    torgb = 2 * n * f * 1 * v1  # the up conv is transposed: counted per input voxel (v0) above
    expected = mapping + affines + demod + convs + torgb
    fused, nonfused = report["results"][0]["runs"]
    assert fused["g_forward"]["flops"] == expected
    assert nonfused["g_forward"]["flops"] == expected  # the two forms do the same arithmetic


def test_train_step_amortisation_and_derived_numbers(report):
    for run in report["results"][0]["runs"]:
        t = run["train_step"]
        steps = t["steps"]
        assert set(steps) == {"main", "pl", "r1"}
        main_s, pl_s, r1_s = (steps[k]["seconds"] for k in ("main", "pl", "r1"))
        assert t["seconds"] == pytest.approx(main_s + (pl_s - main_s) / t["pl_interval"] + (r1_s - main_s) / 16)
        assert t["pl_interval"] == 4 and t["r1_interval"] == 16  # the preset's lazy intervals
        assert t["samples_per_s"] == pytest.approx(BATCH / t["seconds"])
        assert t["s_per_kimg"] == pytest.approx(1000 * t["seconds"] / BATCH)
        # a training step does more arithmetic than G forward; each regulariser adds to the main step
        assert steps["main"]["flops"] > 3 * run["g_forward"]["flops"]
        assert steps["pl"]["flops"] > steps["main"]["flops"] and steps["r1"]["flops"] > steps["main"]["flops"]
        assert t["flop_per_s"] == pytest.approx(t["flops"] / t["seconds"])
        # the reference conv is timed after every timed call; the fraction compares the two rates
        ref_flops = run["peak_conv"]["forward_backward"]["flops"]
        ref_times = [x for s in steps.values() for x in s["reference_times_s"]]
        assert len(ref_times) == 3 * 2
        assert t["reference_flop_per_s"] == pytest.approx(ref_flops / statistics.median(ref_times))
        assert t["peak_fraction"] == pytest.approx(t["flop_per_s"] / t["reference_flop_per_s"])
        assert t["reference_calls"] == pytest.approx(t["seconds"] / statistics.median(ref_times))
        g = run["g_forward"]
        g_ref = run["peak_conv"]["analytic_forward_flops"] / statistics.median(g["reference_times_s"])
        assert g["peak_fraction"] == pytest.approx(g["flop_per_s"] / g_ref)
        assert run["projection"]["batch"] == 1 and run["projection"]["flops"] > 0
        assert t["memory"]["peak_bytes"] >= steps["main"]["memory"]["peak_bytes"]


def test_loader_measured_against_training(report):
    entry = report["results"][0]
    loader = entry["loader"]
    assert loader["volumes"] >= 2 * BATCH and loader["samples_per_s"] > 0
    fastest = max(r["train_step"]["samples_per_s"] for r in entry["runs"])
    assert loader["ratio_to_fastest_train"] == pytest.approx(loader["samples_per_s"] / fastest)


def test_count_flops_single_layers():
    x = torch.randn(2, 4, 5, 6, 7)
    assert count_flops(lambda: F.conv3d(x, torch.randn(3, 4, 3, 3, 3), padding=1)) == conv3d_flops(2, 4, 3, 3, [210])
    # grouped conv (the fused modulated conv): each group sees Cin / groups inputs
    xg = x.reshape(1, 8, 5, 6, 7)
    assert count_flops(lambda: F.conv3d(xg, torch.randn(6, 4, 3, 3, 3), groups=2)) == 2 * 6 * 4 * 27 * (3 * 4 * 5)
    # transposed stride-2 conv: every input voxel scatters a Cout x 3^3 block
    y = count_flops(lambda: F.conv_transpose3d(x, torch.randn(4, 3, 3, 3, 3), stride=2))
    assert y == 2 * 2 * 4 * 3 * 27 * 210
    # forward + backward of a conv: 3x the forward (grad input and grad weight)
    xr, wr = x.clone().requires_grad_(True), torch.randn(3, 4, 3, 3, 3, requires_grad=True)
    assert count_flops(lambda: F.conv3d(xr, wr, padding=1).sum().backward()) == 3 * conv3d_flops(2, 4, 3, 3, [210])


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        big = torch.ones(64 * 2**20)  # 256 MiB, every page written
        del big
    r = mem.result
    assert r["method"].startswith("peak_rss")
    assert r["increase_bytes"] >= 200 * 2**20
    assert r["peak_bytes"] >= r["baseline_bytes"] + r["increase_bytes"] - 1


def test_expand_variants():
    vs = expand_variants(Variant(precision="fp32"), ["precision", "fused", "fused"])
    assert len(vs) == 4 and len(set(vs)) == 4
    assert {(v.precision, v.fused) for v in vs} == {(p, f) for p in ("fp32", "bf16") for f in ("fused", "nonfused")}
    assert all(v.compile is False for v in vs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "speed"], "cannot compare"),
        (["--parts", "g_forward,magic"], "unknown part"),
        (["--warmup", "0"], "--warmup must be >= 1"),
        (["--preset", "nope"], "unknown preset"),
        (["--fused", "sometimes"], "fused must be"),
        (["--set", "width=abc"], "expected an integer"),
    ],
)
def test_bad_input_is_one_error_line(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *TINY, "--no-progress", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda(capsys):
    with pytest.raises(SystemExit):
        main(["bench", *TINY, "--device", "cuda", "--no-progress"])
    assert "no CUDA device" in capsys.readouterr().err


def test_channels_last_variant_is_applied_in_fp32(tmp_path):
    """The trainer keeps fp32 contiguous; the bench's channels-last variant must still take effect."""
    out = tmp_path / "cl.json"
    args = ["bench", *TINY, "--precision", "fp32", "--compare", "channels_last", "--parts", "g_forward"]
    main(args + ["--repeats", "1", "--threads", "1", "--no-progress", "--json", str(out)])
    runs = json.loads(out.read_text())["results"][0]["runs"]
    assert [r["resolved"]["channels_last"] for r in runs] == [False, True]
    assert runs[0]["g_forward"]["flops"] == runs[1]["g_forward"]["flops"] > 0
    assert "train_step" not in runs[0] and "loader" not in json.loads(out.read_text())["results"][0]


def test_kernels_part_measures_every_precision_and_form(tmp_path, capsys):
    """``--parts kernels`` alone: conv3d per dtype x memory format on the peak conv's shape, the FIR and
    ToRGB forms, no per-variant runs; GFLOP/s follow from the analytic FLOPs and the median time."""
    out = tmp_path / "k.json"
    args = ["bench", *TINY, "--batch", "1", "--parts", "kernels", "--repeats", "1", "--threads", "1"]
    main(args + ["--no-progress", "--json", str(out)])
    entry = json.loads(out.read_text())["results"][0]
    assert entry["runs"] == [] and entry["kernel_errors"] == []
    k = entry["kernels"]
    assert k["shape"] == [1, 8, 10, 12, 14]
    assert [(c["dtype"], c["channels_last"]) for c in k["conv3d"]] == [
        ("fp32", False),
        ("fp32", True),
        ("bf16", False),
        ("bf16", True),
    ]
    flops = conv3d_flops(1, 8, 8, 3, [10, 12, 14])
    for c in k["conv3d"]:
        assert c["flop_per_s"] == pytest.approx(flops / c["seconds"])
    assert min(k["fir"]["used_s"], k["fir"]["depthwise_conv_s"], *k["torgb"].values()) > 0
    assert "conv3d [1, 8, 10, 12, 14] GFLOP/s: fp32" in capsys.readouterr().out


def test_fused_and_nonfused_count_the_same_flops(report):
    """Both modconv forms do the same arithmetic; torch's counter over-counts grouped-conv weight
    gradients (once per group), so the bench counts the fused form's FLOPs on the non-fused form."""
    fused, nonfused = report["results"][0]["runs"]
    assert fused["resolved"]["fused"] == "fused" and nonfused["resolved"]["fused"] == "nonfused"
    for kind in ("main", "pl", "r1"):  # (augmentation's 4x4 matrix products vary with the step: tens of FLOPs)
        f, nf = (r["train_step"]["steps"][kind]["flops"] for r in (fused, nonfused))
        assert f == pytest.approx(nf, rel=1e-6)
    assert fused["projection"]["flops"] == nonfused["projection"]["flops"]


def test_flop_counter_overcounts_grouped_weight_gradients():
    """The torch behaviour the bench works around (if torch fixes it, the workaround is harmless)."""
    n, c = 4, 3
    x = torch.randn(1, n * c, 5, 5, 5)
    w = torch.randn(n * c, c, 3, 3, 3, requires_grad=True)
    fwd = conv3d_flops(n, c, c, 3, [5, 5, 5])
    counted = count_flops(lambda: F.conv3d(x, w, padding=1, groups=n).sum().backward())
    assert counted in (2 * fwd, (1 + n) * fwd)

"""Smoke tests of ``benchmarks/``: every case builds and runs once, the baseline renders what
voxrender renders, the report writes its files. Nothing is timed for speed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import report
from benchmarks.baseline import BaselineVolumeRenderer, baseline_emission_absorption
from benchmarks.cases import (
    BACKENDS,
    COMPONENTS,
    CONFIGS,
    CaseUnavailable,
    bytes_lower_bound,
    make_case,
    touched_voxel_count,
)


def _build(config, backend, component, dtype=torch.float32):
    try:
        # "eager": dynamo traces the callable without code generation (inductor on the CPU
        # compiles C++ for seconds per case; see test_compiled_fit_step_inductor).
        return make_case(config, backend, "cpu", dtype, component, compile_backend="eager")
    except CaseUnavailable as e:
        pytest.skip(e.reason)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_case_runs_once(backend, component):
    case = _build("tiny", backend, component)
    out = case()
    tensors = [out] if isinstance(out, torch.Tensor) else [getattr(out, "lengths", None), *out]
    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    assert tensors, f"{backend}/{component} returned no tensor: {type(out)}"
    for t in tensors:
        assert torch.isfinite(t).all()
    cfg = CONFIGS["tiny"]
    if component == "render_fwd":
        assert out.shape == (cfg.batch, cfg.image_size, cfg.image_size, cfg.channels)
    if component == "grid_sampling_fwd_bwd":  # the volume gradients, not all zero
        assert out[0].shape == (1, *(cfg.volume_size,) * 3) and out[0].abs().sum() > 0
    if component == "fit_step":
        model = case.inputs["model"]
        assert (model.log_densities != -4.0).any()  # Adam moved the parameters


def test_case_callable_is_repeatable():
    case = _build("tiny", "voxrender", "render_fwd")
    torch.testing.assert_close(case(), case(), rtol=0, atol=0)


def test_make_case_unknown_config():
    with pytest.raises(ValueError, match=r"config_name: expected one of .*got 'huge'"):
        make_case("huge", "voxrender")


def test_make_case_unknown_backend():
    with pytest.raises(ValueError, match=r"backend: expected one of .*got 'mitsuba'"):
        make_case("tiny", "mitsuba")


def test_make_case_unknown_component():
    with pytest.raises(ValueError, match=r"component: expected one of .*got 'shading'"):
        make_case("tiny", "voxrender", component="shading")


def test_make_case_bad_dtype():
    with pytest.raises(TypeError, match=r"dtype: expected torch\.float32 or torch\.float64"):
        make_case("tiny", "voxrender", dtype=torch.float16)


def test_baseline_has_no_raysampling_case():
    with pytest.raises(CaseUnavailable, match="voxrender's raysampler"):
        make_case("tiny", "baseline", component="raysampling")


@pytest.mark.slow
def test_compiled_fit_step_inductor():
    try:
        case = make_case("tiny", "voxrender-compiled", "cpu", component="fit_step")
    except CaseUnavailable as e:
        pytest.skip(e.reason)
    assert torch.isfinite(case())


# --------------------------------------------------------------------------------------------
# The baseline renders what voxrender renders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-12)], ids=["f32", "f64"]
)
@pytest.mark.parametrize("variant", ["baseline", "baseline-concat"])
def test_baseline_images_equal_voxrender(variant, dtype, atol):
    ours = _build("small", "voxrender", "render_fwd", dtype)()
    theirs = _build("small", variant, "render_fwd", dtype)()
    assert ours.abs().max() > 0.05  # something is rendered
    torch.testing.assert_close(theirs, ours, atol=atol, rtol=0)


@pytest.mark.parametrize("variant", ["baseline", "baseline-concat"])
def test_baseline_volume_gradients_equal_voxrender(variant):
    ours = _build("small", "voxrender", "grid_sampling_fwd_bwd", torch.float64)()
    theirs = _build("small", variant, "grid_sampling_fwd_bwd", torch.float64)()
    for a, b in zip(theirs, ours, strict=True):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_baseline_fit_step_equals_voxrender():
    losses = []
    for backend in ("voxrender", "baseline"):
        case = _build("tiny", backend, "fit_step", torch.float64)
        losses.append([case().item() for _ in range(3)])  # the third loss sees two Adam steps
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), atol=1e-10, rtol=0)
    assert losses[0][2] < losses[0][0]


def test_baseline_raymarcher_analytic():
    d = torch.tensor([[0.5, 0.5, 1.0]])[..., None]  # (1, P=3, 1)
    f = torch.tensor([[1.0, 2.0, 4.0]])[..., None]  # (1, 3, 1)
    out = baseline_emission_absorption(d, f, eps=0.0)
    # weights 0.5, 0.25, 0.25; opacity 1 - 0.5 * 0.5 * 0 = 1.
    torch.testing.assert_close(out, torch.tensor([[0.5 + 0.5 + 1.0, 1.0]]))


def test_baseline_density_bounds_warn():
    with pytest.warns(UserWarning, match="outside"):
        baseline_emission_absorption(torch.full((1, 2, 1), 1.5), torch.ones(1, 2, 3))


def test_baseline_renderer_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant: expected one of"):
        BaselineVolumeRenderer(raysampler=None, variant="fused")


# --------------------------------------------------------------------------------------------
# The physical-limit model and the measurement helpers
# --------------------------------------------------------------------------------------------


def test_bytes_lower_bound_raymarching_tiny():
    terms = bytes_lower_bound("tiny", "raymarching_fwd", torch.float32)
    # 2 * 8 * 8 rays * 8 points = 1024 samples of 4 channels read, 128 pixels of 4 written.
    assert terms == {"samples_read": 1024 * 4 * 4, "pixels_write": 128 * 4 * 4, "total": 18432}


def test_bytes_lower_bound_fit_step_counts_adam_and_touched_voxels():
    full = bytes_lower_bound("small", "fit_step", torch.float64)
    params = 4 * 32**3
    assert full["adam_read_param_grad_moments"] == 4 * params * 8
    assert full["total"] == sum(v for k, v in full.items() if k != "total")
    fewer = bytes_lower_bound("small", "fit_step", torch.float64, touched_voxels=10)
    assert full["total"] - fewer["total"] == 4 * (32**3 - 10) * 8


def test_touched_voxel_count_tiny():
    n = touched_voxel_count("tiny")
    assert 0.5 * 8**3 < n < 8**3  # the views see most of the cube, not its far corners


def test_summarize_quartiles():
    s = report.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q25"], s["q75"], s["iqr"], s["min"], s["max"]) == (3, 2, 4, 2, 1, 5)


def test_peak_memory_sees_a_64_mib_temporary():
    def allocate():
        x = torch.ones(16 * 2**20)  # 64 MiB, written so that its pages are resident
        return float(x[-1])

    mem = report.peak_memory(allocate, torch.device("cpu"), before_build=0)
    assert 60 * 2**20 < mem["peak_working_bytes"] < 200 * 2**20, mem


def test_hardware_slug():
    env = {"device_type": "cpu", "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cpu_threads": 2}
    assert report.hardware_slug(env) == "intel-xeon-2t"
    assert (
        report.hardware_slug({"device_type": "cuda", "device_name": "NVIDIA H200"}) == "nvidia-h200"
    )


def test_write_atomic_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.md"
    report.write_atomic(target, "hello\n")
    report.write_atomic(target, "again\n")
    assert target.read_text() == "again\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.md"]


# --------------------------------------------------------------------------------------------
# The report end to end
# --------------------------------------------------------------------------------------------

RECORD_KEYS = {
    "config", "component", "backend", "device", "dtype", "status", "reason", "n_rays",
    "n_samples", "time_s", "memory", "reference_backend", "speedup_vs_reference",
    "steps_per_s", "rays_per_s", "samples_per_s",
    "memory_working_vs_reference", "physical_limit", "env", "measured_code",
}  # fmt: skip
ENV_KEYS = {"git_commit", "git_dirty", "torch_version", "python_version", "device_name", "date",
            "cpu_model", "cpu_threads", "source_hash", "code_changed_during_run"}  # fmt: skip


def _read_report(out: Path) -> tuple[dict, str]:
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 and files[0].startswith("cpu-"), files
    assert files[0].endswith(".json") and files[1] == files[0][:-5] + ".md"
    return json.loads((out / files[0]).read_text()), (out / files[1]).read_text()


def test_report_tiny_in_process(tmp_path):
    argv = ["--device", "cpu", "--configs", "tiny", "--backends", "voxrender,baseline,pytorch3d",
            "--components", "fit_step,raymarching_fwd_bwd", "--repeats", "2", "--min-time", "0",
            "--isolate", "no", "--out", str(tmp_path)]  # fmt: skip
    assert report.main(argv) == 0
    doc, md = _read_report(tmp_path)
    records = doc["records"]
    assert len(records) == 6
    for r in records:
        assert RECORD_KEYS <= set(r), RECORD_KEYS - set(r)
        assert ENV_KEYS <= set(r["env"])
    by = {(r["component"], r["backend"]): r for r in records}
    for component in ("fit_step", "raymarching_fwd_bwd"):
        ours, base = by[component, "voxrender"], by[component, "baseline"]
        assert ours["status"] == base["status"] == "ok"
        # ratios are taken against PyTorch3D where it ran (the live oracle), else the baseline
        ref = by[component, "pytorch3d"] if by[component, "pytorch3d"]["status"] == "ok" else base
        assert ours["reference_backend"] == ref["backend"]
        t = ours["time_s"]
        assert t["repeats"] == 2 and t["q25"] <= t["median"] <= t["q75"] and t["median"] > 0
        assert ours["speedup_vs_reference"] == pytest.approx(ref["time_s"]["median"] / t["median"])
        assert ours["rays_per_s"] == pytest.approx(128 / t["median"])
        assert ours["memory"]["peak_total_bytes"] >= ours["memory"]["peak_working_bytes"] >= 0
        p3d = by[component, "pytorch3d"]
        if p3d["status"] != "ok":
            assert p3d["status"] == "skipped" and "pytorch3d" in p3d["reason"]
    assert "| fit_step | voxrender |" in md and "## `tiny`" in md


def test_report_isolated_worker():
    spec = {"config": "tiny", "backend": "voxrender", "component": "raymarching_fwd",
            "device": "cpu", "dtype": "float32", "repeats": 1, "warmup": 1, "min_time": 0,
            "threads": 1}  # fmt: skip
    result = report._run_isolated(spec, timeout=120)  # python -m benchmarks.report --worker
    assert result["status"] == "ok", result["reason"]
    assert result["memory"]["method"] in ("VmHWM after clear_refs", "ru_maxrss")
    assert result["time_s"]["repeats"] == 1 and result["time_s"]["median"] > 0


def test_report_isolated_worker_error_is_recorded():
    spec = {"config": "tiny", "backend": "voxrender", "component": "shading", "device": "cpu",
            "dtype": "float32"}  # fmt: skip
    result = report._run_isolated(spec, timeout=120)
    assert result["status"] == "error"
    assert result["reason"].startswith("exit 1: ValueError: component: expected one of")


def test_report_rejects_unknown_config(capsys):
    with pytest.raises(SystemExit) as e:
        report.main(["--configs", "tiny,huge"])
    assert e.value.code == 2
    assert "--configs: expected a comma-separated list" in capsys.readouterr().err

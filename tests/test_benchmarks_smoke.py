"""Smoke tests of ``benchmarks/``.

Every case builds and runs once, the baseline renders what
voxrender renders, the report writes its files. Nothing is timed for speed here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check, report
from benchmarks.baseline import BaselineVolumeRenderer, baseline_emission_absorption
from benchmarks.cases import (
    BACKENDS,
    COMPONENTS,
    CONFIGS,
    CaseUnavailable,
    backend_used,
    bytes_lower_bound,
    make_case,
    touched_voxel_count,
)


def _pytorch3d_modules() -> set[str]:
    return {k for k in sys.modules if k == "pytorch3d" or k.startswith("pytorch3d.")}


@pytest.fixture(autouse=True)
def _no_pytorch3d_left_behind():
    """Undo the ``pytorch3d`` cases' import of PyTorch3D.

    They import PyTorch3D (``reference.oracle``) into this process: take it out of ``sys.modules`` afterwards, as tests that need it absent (``voxrender.compat``)
    expect.
    """
    before = _pytorch3d_modules()
    yield
    for name in _pytorch3d_modules() - before:
        del sys.modules[name]


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
    if "triton" in backend and component == "fit_step":
        # On CPU tensors Triton runs in triton's interpreter: seconds per tiny fit step (its
        # kernels are tested in tests/test_triton.py; render_fwd checks these cases' plumbing).
        pytest.skip("Triton's interpreter is too slow for a fit step here")
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
        p3d = by[component, "pytorch3d"]
        if p3d["status"] != "ok":
            assert p3d["status"] == "skipped" and "pytorch3d" in p3d["reason"]
        ref = p3d if p3d["status"] == "ok" else base  # PyTorch3D itself when it ran
        assert ours["reference_backend"] == ref["backend"]
        t = ours["time_s"]
        assert t["repeats"] == 2 and t["q25"] <= t["median"] <= t["q75"] and t["median"] > 0
        assert ours["speedup_vs_reference"] == pytest.approx(ref["time_s"]["median"] / t["median"])
        assert ours["rays_per_s"] == pytest.approx(128 / t["median"])
        assert ours["memory"]["peak_total_bytes"] >= ours["memory"]["peak_working_bytes"] >= 0
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


def test_pytorch3d_backend_uses_the_oracle():
    from reference.oracle import import_pytorch3d

    module, _ = import_pytorch3d()
    if module is None:
        with pytest.raises(CaseUnavailable, match="pytorch3d is not importable"):
            make_case("tiny", "pytorch3d", component="render_fwd")
    else:  # a live column wherever the oracle imports (an install, or ../shared/pytorch3d)
        assert make_case("tiny", "pytorch3d", component="render_fwd")().shape == (2, 8, 8, 4)


def test_report_bandwidth_given_on_the_cpu(tmp_path):
    argv = ["--device", "cpu", "--configs", "tiny", "--backends", "baseline", "--components",
            "render_fwd", "--repeats", "1", "--min-time", "0", "--isolate", "no",
            "--bandwidth", "4.8", "--out", str(tmp_path)]  # fmt: skip
    assert report.main(argv) == 0
    doc, md = _read_report(tmp_path)
    (record,) = doc["records"]
    limit = record["physical_limit"]
    assert doc["bandwidth"]["bytes_per_s"] == 4.8e12 and limit["bandwidth_source"].startswith(
        "given"
    )
    assert limit["time_lower_bound_s"] == pytest.approx(
        limit["bytes_lower_bound"]["total"] / 4.8e12
    )
    assert limit["times_bound"] == pytest.approx(1 / limit["achieved_fraction"])
    assert "4.8 TB/s (given (--bandwidth); measured copy not measured)" in md


# --------------------------------------------------------------------------------------------
# Forced renderer backends (voxrender-reference, voxrender-triton) and the GPU check
# --------------------------------------------------------------------------------------------


class _Choice:
    def __init__(self, name, reasons):
        self.name, self.reasons = name, reasons


def _backend_aware_renderer(monkeypatch) -> bool:
    """voxrender.VolumeRenderer as the backend dispatch has it; a stand-in before it lands.

    Returns:
        Whether the stand-in is used (False: the installed voxrender takes a backend).
    """
    import inspect

    import voxrender

    plain = voxrender.VolumeRenderer
    if "backend" in inspect.signature(plain.__init__).parameters:
        return False

    class Renderer(plain):
        def __init__(self, raysampler, raymarcher, sample_mode="bilinear", *, chunk_size=None,
                     backend=None):  # fmt: skip
            if backend not in (None, "auto", "reference", "cpu", "triton"):
                raise ValueError(f"backend: got {backend!r}")
            super().__init__(raysampler, raymarcher, sample_mode, chunk_size=chunk_size)
            self._forced, self._last = backend, None

        @property
        def last_backend(self):
            return self._last

        def forward(self, cameras, volumes, **kwargs):
            if self._forced == "triton":
                raise ValueError("backend='triton': the Triton kernels run on CUDA tensors")
            self._last = _Choice(self._forced, {"triton": "not CUDA tensors"})
            return super().forward(cameras, volumes, **kwargs)

    monkeypatch.setattr(voxrender, "VolumeRenderer", Renderer)
    return True


def test_forced_backends_unavailable_without_the_backend_argument():
    import inspect

    import voxrender

    if "backend" in inspect.signature(voxrender.VolumeRenderer.__init__).parameters:
        pytest.skip("this voxrender's renderers take a backend")
    for backend in ("voxrender-reference", "voxrender-triton-compiled"):
        with pytest.raises(CaseUnavailable, match=r"unavailable: .*takes no backend argument"):
            make_case("tiny", backend, component="fit_step")


def test_forced_backend_cases(monkeypatch):
    monkeypatch.delenv("VOXRENDER_BACKEND", raising=False)
    _backend_aware_renderer(monkeypatch)
    case = make_case("tiny", "voxrender-reference", component="fit_step")
    assert torch.isfinite(case())
    used = backend_used(case)
    assert used["name"] == "reference" and "triton" in used["reasons"]
    if not os.environ.get("TRITON_INTERPRET"):  # else Triton runs on CPU tensors (interpreted)
        with pytest.raises(CaseUnavailable, match=r"backend='triton' is not eligible here: .*CUDA"):
            make_case("tiny", "voxrender-triton", component="render_fwd")
    with pytest.raises(CaseUnavailable, match="does not go through a renderer"):
        make_case("tiny", "voxrender-reference", component="raymarching_fwd")
    result = report.measure_case({"config": "tiny", "backend": "voxrender-reference",
                                  "component": "render_fwd", "device": "cpu",
                                  "dtype": "float32", "repeats": 1, "min_time": 0})  # fmt: skip
    assert result["status"] == "ok" and result["backend_used"]["name"] == "reference"


def test_gpu_check_bench_worker_records_errors_and_goes_on(capsys):
    bad = {"config": "tiny", "backend": "voxrender", "component": "fit_step", "device": "cpu",
           "dtype": "float16"}  # fmt: skip
    good = {"config": "tiny", "backend": "baseline", "component": "render_fwd", "device": "cpu",
            "dtype": "float32", "repeats": 1, "min_time": 0}  # fmt: skip
    gpu_check._bench_worker([bad, good])
    lines = [
        x for x in capsys.readouterr().out.splitlines() if x.startswith(gpu_check.RESULT_MARKER)
    ]
    first, second = (json.loads(x[len(gpu_check.RESULT_MARKER) :])["result"] for x in lines)
    assert first["status"] == "error" and "float16" in first["reason"]
    assert second["status"] == "ok" and second["time_s"]["median"] > 0


def test_gpu_check_kills_a_hanging_phase(tmp_path):
    import sys
    import time

    t0 = time.monotonic()
    cmd = [sys.executable, "-c", "import subprocess, sys, time; "
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
           "time.sleep(120)"]  # fmt: skip
    run = gpu_check.run_limited(cmd, 3, dict(__import__("os").environ), tmp_path / "log")
    assert run["timed_out"] and run["returncode"] is None
    assert time.monotonic() - t0 < 60


def test_gpu_check_dry_run_rehearsal(tmp_path):
    """Python -m benchmarks.gpu_check --device cpu --dry-run, cut to a few processes."""
    argv = ["--device", "cpu", "--dry-run", "--out", str(tmp_path), "--backends",
            "voxrender-reference,pytorch3d", "--components", "fit_step"]  # fmt: skip
    assert gpu_check.main(argv) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    stem = files[0][: -len(".json")]
    assert stem.startswith("gpu-check-dry-run-") and f"{stem}.md" in files
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    md = (tmp_path / f"{stem}.md").read_text()
    assert doc["dry_run"] and doc["wall_s"] < doc["budget_s"]
    assert doc["tests"]["status"] == "passed" and doc["tests"]["counts"]["passed"] >= 1
    parity = {row["backend"]: row for row in doc["parity"]["rows"]}
    assert parity["voxrender-triton"]["status"] in ("ok", "unavailable")
    if parity["pytorch3d"]["status"] == "ok":
        assert parity["pytorch3d"]["max_abs_image_error"] < 1e-4
    by = {(r["backend"], r["component"]): r for r in doc["records"]}
    # voxrender-reference, or voxrender itself where the renderers take no backend yet
    ours = by["voxrender-reference", "fit_step"]
    if ours["status"] != "ok":
        assert "takes no backend argument" in ours["reason"]
        ours = by["voxrender", "fit_step"]
    assert ours["status"] == "ok" and ours["physical_limit"]["times_bound"] > 0
    if by["pytorch3d", "fit_step"]["status"] == "ok":  # the targets row: ratios to PyTorch3D
        (row,) = [r for r in doc["targets"] if r["backend"] == ours["backend"]]
        assert row["speedup"] > 0 and row["meets"]["speedup"] in (True, False)
    assert doc["versions"]["triton_version"] is None or "." in doc["versions"]["triton_version"]
    assert "## Tests" in md and "## Parity on the device" in md and "| fit_step | " in md
    assert "## Fit step (`tiny`) against the targets" in md


def test_bounded_backend_renders_what_voxrender_renders():
    # voxrender-bounded: chunk_size rays at a time, samples recomputed; same images
    bounded, plain = (
        _build("tiny", "voxrender-bounded", "render_fwd"),
        _build("tiny", "voxrender", "render_fwd"),
    )
    torch.testing.assert_close(bounded(), plain())
    with pytest.raises(CaseUnavailable, match="does not go through a renderer"):
        make_case("tiny", "voxrender-bounded", component="raymarching_fwd")

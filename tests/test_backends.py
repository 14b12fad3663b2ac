"""Backend dispatch (voxrender/backends.py): which backend runs, why the others did not.

Tests read ``renderer.last_backend`` (a ``voxrender.BackendChoice``); nothing is monkeypatched to
find out which path ran. Triton tests that need its kernels run them in triton's interpreter on
CPU tensors (``TRITON_INTERPRET=1``, set by conftest.py) and skip, saying why, without triton.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import voxrender.backends as backends
from voxrender import (
    BackendChoice,
    EmissionAbsorptionRaymarcher,
    FoVPerspectiveCameras,
    ImplicitRenderer,
    NDCMultinomialRaysampler,
    VolumeRenderer,
    Volumes,
    VolumeSampler,
    look_at_view_transform,
    triton_render,
)

TRITON_CPU = triton_render.device_ineligible(torch.device("cpu"))
needs_triton_cpu = pytest.mark.skipif(
    TRITON_CPU is not None, reason=f"Triton kernels cannot run on CPU tensors: {TRITON_CPU}"
)


def _setup(sample_mode="bilinear", **renderer_kwargs):
    R, T = look_at_view_transform(dist=2.5, azim=torch.tensor([0.0]))
    cams = FoVPerspectiveCameras(R=R, T=T)
    g = torch.Generator().manual_seed(0)
    vols = Volumes(
        densities=torch.rand(1, 1, 3, 3, 3, generator=g).requires_grad_(),
        features=torch.rand(1, 3, 3, 3, 3, generator=g).requires_grad_(),
        voxel_size=0.5,
    )
    raysampler = NDCMultinomialRaysampler(
        image_width=2, image_height=2, n_pts_per_ray=3, min_depth=1.0, max_depth=4.0
    )
    renderer = VolumeRenderer(
        raysampler, EmissionAbsorptionRaymarcher(), sample_mode, **renderer_kwargs
    )
    return cams, vols, renderer


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)


def test_auto_on_cpu_takes_the_fused_cpu_path_and_says_why_not_the_others():
    cams, vols, renderer = _setup()
    assert renderer.last_backend is None
    renderer(cameras=cams, volumes=vols)
    choice = renderer.last_backend
    assert isinstance(choice, BackendChoice)
    assert choice.name == "cpu"
    assert set(choice.reasons) == {"reference", "triton"}
    assert "CPU" in choice.reasons["triton"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.name = "triton"


def test_densities_outside_the_unit_interval_take_the_reference_path_and_warn_per_sample():
    cams, vols, renderer = _setup()
    with torch.no_grad():
        vols.densities().add_(4.0)  # samples near the box border blend with zero padding
    with pytest.warns(UserWarning, match="outside of valid range"):
        renderer(cameras=cams, volumes=vols)
    choice = renderer.last_backend
    assert choice.name == "reference"
    assert "[0, 1]" in choice.reasons["cpu"]
    forced = VolumeRenderer(
        renderer.renderer.raysampler, EmissionAbsorptionRaymarcher(), backend="cpu"
    )
    with pytest.raises(ValueError, match=r"'cpu' cannot render these inputs.*\[0, 1\]"):
        forced(cameras=cams, volumes=vols)


def test_auto_takes_the_reference_path_when_no_fused_backend_applies():
    cams, vols, renderer = _setup(sample_mode="nearest")
    renderer(cameras=cams, volumes=vols)
    choice = renderer.last_backend
    assert choice.name == "reference"
    assert "nearest" in choice.reasons["cpu"]
    assert "CPU" in choice.reasons["triton"]  # auto does not consider triton on CPU tensors


def test_auto_never_errors_where_the_general_path_works():
    # a volumetric function that is not a VolumeSampler: only the reference path renders it
    cams, vols, _ = _setup()
    sampler = VolumeSampler(vols)
    renderer = ImplicitRenderer(_setup()[2].renderer.raysampler, EmissionAbsorptionRaymarcher())

    def function(**kwargs):
        return sampler(kwargs["ray_bundle"])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on the CPU
        renderer(cameras=cams, volumetric_function=function)
    assert renderer.last_backend.name == "reference"
    assert "not a voxrender VolumeSampler" in renderer.last_backend.reasons["cpu"]


def test_forced_reference_and_cpu():
    cams, vols, renderer = _setup(backend="reference")
    want = renderer(cameras=cams, volumes=vols)[0]
    assert renderer.last_backend == BackendChoice(
        "reference", {"cpu": renderer.last_backend.reasons["cpu"],
                      "triton": renderer.last_backend.reasons["triton"]}
    )  # fmt: skip
    assert "requested" in renderer.last_backend.reasons["cpu"]
    cams, vols, renderer = _setup(backend="cpu")
    got = renderer(cameras=cams, volumes=vols)[0]
    assert renderer.last_backend.name == "cpu"
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_forcing_an_ineligible_backend_raises_with_the_reason(backend):
    cams, vols, renderer = _setup(sample_mode="nearest", backend=backend)
    with pytest.raises(ValueError, match=f"backend: '{backend}' cannot render.*nearest"):
        renderer(cameras=cams, volumes=vols)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_forcing_a_backend_on_a_function_it_cannot_render_raises(backend):
    cams, vols, renderer = _setup()
    sampler = VolumeSampler(vols)
    renderer = ImplicitRenderer(
        renderer.renderer.raysampler, EmissionAbsorptionRaymarcher(), backend=backend
    )
    with pytest.raises(ValueError, match=r"VolumeSampler|triton"):
        renderer(cameras=cams, volumetric_function=lambda **kw: sampler(kw["ray_bundle"]))


@pytest.mark.parametrize("bad", ["gpu", "", 3, "Triton"])
def test_bad_backend_argument(bad):
    with pytest.raises(ValueError, match="backend: expected one of auto, reference, cpu, triton"):
        _setup(backend=bad)


def test_environment_variable(monkeypatch):
    cams, vols, renderer = _setup()
    monkeypatch.setenv(backends.ENV_VAR, "reference")  # read at every render
    renderer(cameras=cams, volumes=vols)
    assert renderer.last_backend.name == "reference"
    monkeypatch.setenv(backends.ENV_VAR, "cpu")
    renderer(cameras=cams, volumes=vols)
    assert renderer.last_backend.name == "cpu"
    monkeypatch.setenv(backends.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="environment variable VOXRENDER_BACKEND: expected one"):
        renderer(cameras=cams, volumes=vols)
    cams, vols, forced = _setup(backend="reference")  # the argument wins over the variable
    forced(cameras=cams, volumes=vols)
    assert forced.last_backend.name == "reference"


@pytest.fixture
def deterministic():
    saved = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(saved)


@needs_triton_cpu
def test_deterministic_mode_refuses_triton_and_says_why(deterministic):
    cams, vols, renderer = _setup(backend="triton")
    with pytest.raises(ValueError, match=r"deterministic algorithms are enabled.*atomics"):
        renderer(cameras=cams, volumes=vols)
    backends._warned.clear()
    with pytest.warns(RuntimeWarning, match="deterministic"):
        choice, _ = backends.choose("auto", torch.device("cuda"), lambda: "unused")
    assert choice.name == "reference"
    assert "deterministic" in choice.reasons["triton"]


@needs_triton_cpu
def test_forced_triton_on_cpu_tensors_runs_in_the_interpreter():
    cams, vols, renderer = _setup(backend="triton")
    got = renderer(cameras=cams, volumes=vols)[0]
    assert renderer.last_backend.name == "triton"
    assert set(renderer.last_backend.reasons) == {"cpu", "reference"}
    cams, vols, reference = _setup(backend="reference")
    torch.testing.assert_close(got, reference(cameras=cams, volumes=vols)[0])


@pytest.mark.skipif(
    TRITON_CPU is None, reason="the Triton kernels run on CPU tensors in this process"
)
def test_forced_triton_on_cpu_without_the_interpreter_raises():
    cams, vols, renderer = _setup(backend="triton")
    with pytest.raises(ValueError, match="triton"):
        renderer(cameras=cams, volumes=vols)


@needs_triton_cpu
def test_auto_on_cuda_warns_once_with_the_reason_and_takes_the_reference_path():
    # choose() on a CUDA device needs no GPU to decide: with TRITON_INTERPRET=1 auto refuses
    # the (slow) interpreter on CUDA tensors, warns once, and takes the general path
    backends._warned.clear()
    with pytest.warns(RuntimeWarning, match="interpreter"):
        choice, inputs = backends.choose("auto", torch.device("cuda"), lambda: "unused")
    assert choice.name == "reference" and inputs is None
    assert "interpreter" in choice.reasons["triton"]
    assert "CPU tensors" in choice.reasons["cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backends.choose("auto", torch.device("cuda"), lambda: "unused")  # no second warning


def test_auto_on_other_devices_takes_the_reference_path_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        choice, _ = backends.choose("auto", torch.device("meta"), lambda: "unused")
    assert choice.name == "reference"
    assert "meta" in choice.reasons["cpu"]


@needs_triton_cpu
def test_self_check_passes_on_the_interpreter():
    backends._self_checks.pop("cpu", None)
    assert backends.self_check("cpu") is None
    assert backends._self_checks["cpu"] is None  # once per device: cached


@needs_triton_cpu
def test_self_check_and_warning_under_compile_fullgraph():
    # under torch.compile both run eagerly while tracing (their results are constants)
    torch._dynamo.reset()
    backends._warned.clear()
    backends._self_checks.pop("cpu", None)

    def f(x):
        choice, _ = backends.choose("auto", torch.device("cuda"), lambda: "unused")
        failed = backends.self_check("cpu") is not None
        return x + (1.0 if choice.name == "reference" else 2.0) + (5.0 if failed else 0.0)

    with pytest.warns(RuntimeWarning, match="interpreter"):
        out = torch.compile(f, fullgraph=True, backend="eager")(torch.zeros(1))
    assert out.tolist() == [1.0]
    assert backends._self_checks["cpu"] is None

"""pytest-benchmark plumbing: options choosing the matrix, and a fixture that builds cases.

Run with ``python -m pytest benchmarks --benchmark-only``; options (defaults in brackets):
``--bench-configs`` [small,tutorial], ``--bench-backends`` [voxrender,voxrender-compiled,
baseline,pytorch3d], ``--bench-device`` [auto], ``--bench-dtype`` [float32],
``--bench-rounds`` [5]. Unavailable cases (PyTorch3D missing, compile failure) are skipped with
the reason.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.cases import BACKENDS, CONFIGS, DEFAULT_BACKENDS, CaseUnavailable, make_case

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def pytest_addoption(parser):
    """The ``--bench-*`` options: configs, backends, device."""
    group = parser.getgroup("voxrender benchmarks")
    group.addoption("--bench-configs", default="small,tutorial", help="comma-separated configs")
    group.addoption(
        "--bench-backends", default=",".join(DEFAULT_BACKENDS), help="comma-separated backends"
    )
    group.addoption("--bench-device", default="auto", help="auto, cpu or cuda")
    group.addoption("--bench-dtype", default="float32", choices=tuple(DTYPES))
    group.addoption("--bench-rounds", type=int, default=5, help="timed rounds per case")


def _csv(config, name: str, choices) -> list[str]:
    items = [x.strip() for x in config.getoption(name).split(",") if x.strip()]
    bad = [x for x in items if x not in choices]
    if bad:
        raise pytest.UsageError(f"{name}: expected values among {', '.join(choices)}, got {bad}")
    return items


def pytest_generate_tests(metafunc):
    """Parametrize ``config_name`` and ``backend`` from the options."""
    if "config_name" in metafunc.fixturenames:
        metafunc.parametrize("config_name", _csv(metafunc.config, "--bench-configs", CONFIGS))
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _csv(metafunc.config, "--bench-backends", BACKENDS))


@pytest.fixture
def bench_device(request) -> torch.device:
    """The device the benchmarks run on (``--bench-device``; ``auto``: CUDA when available)."""
    name = request.config.getoption("--bench-device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@pytest.fixture
def run_case(request, benchmark, bench_device):
    """``run_case(config_name, backend, component)``: build the case (skip if unavailable), time it."""
    dtype = DTYPES[request.config.getoption("--bench-dtype")]
    rounds = request.config.getoption("--bench-rounds")

    def run(config_name: str, backend: str, component: str):
        try:
            case = make_case(config_name, backend, bench_device, dtype, component)
        except CaseUnavailable as e:
            pytest.skip(e.reason)
        benchmark.group = f"{config_name}/{component}"
        benchmark.extra_info.update(
            config=config_name,
            backend=backend,
            component=component,
            device=str(bench_device),
            dtype=str(dtype),
            n_rays=case.n_rays,
            n_samples=case.n_samples,
        )
        if bench_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(bench_device)
        out = benchmark.pedantic(case, rounds=rounds, warmup_rounds=1, iterations=1)
        if bench_device.type == "cuda":
            benchmark.extra_info["cuda_max_memory_allocated"] = torch.cuda.max_memory_allocated(
                bench_device
            )
        return out

    return run

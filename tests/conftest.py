import os

import torch
from hypothesis import HealthCheck, settings

# Without a GPU, voxrender's Triton kernels run in triton's interpreter on CPU tensors
# (tests/test_triton.py): the variable must be set before the kernels are first imported, which
# voxrender does lazily. It changes nothing else (the fused CPU and general paths ignore it).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: CI fails only for a change in the code
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --------------------------------------------------------------------------------------------
# The device the suite runs on
#
# Devices (kornia-style): ``python -m pytest --device cpu|cuda|auto|cpu,cuda`` (or the environment
# variable ``VOXRENDER_TEST_DEVICE``; the option wins). ``auto``, the default, is today's
# behaviour: the CPU, plus CUDA when it is available. The choice sets ``helpers.DEVICES``, which
# every device-parametrized test uses (``@pytest.mark.parametrize("device", DEVICES)``), and:
#
# - tests marked ``cuda`` (``tests/helpers.py: needs_cuda``) run only when CUDA is selected;
# - with the CPU not selected (``--device cuda``), a test that is neither device-parametrized nor
#   marked ``cuda`` runs on the CPU only, so it is skipped, and its skip reason says why: a
#   ``@pytest.mark.cpu_only("why")`` marker, else :data:`CPU_ONLY_REASONS` for its module, else
#   :data:`CPU_ONLY_DEFAULT`.

import re  # noqa: E402  (after the settings above; kept below them for easy merges)

import helpers  # noqa: E402
import pytest  # noqa: E402

# Why the tests of a module run on the CPU only (first matching path fragment wins).
CPU_ONLY_REASONS = {
    "test_fused.py": "the fused path is the CPU backend (MKL sparse products, worker threads)",
    "test_benchmarks_smoke.py": "benchmark machinery on CPU cases (peak memory read from RSS); "
    "on a GPU, python -m benchmarks.gpu_check runs the benchmarks",
    "test_reference_": "the fitting tool's runs and files on the CPU (its --device cuda is "
    "the same code with tensors on CUDA)",
    "test_readme.py": "the README's example as written (CPU tensors)",
    "test_compat.py": "module aliasing and imports: no tensors on a device",
    "test_meta.py": "meta tensors have no device to choose (the CUDA check in it runs)",
    "test_devices.py": "checks the suite's device selection itself, in CPU subprocesses",
}
CPU_ONLY_DEFAULT = (
    "not device-parametrized: argument checks and host-side logic on CPU tensors, "
    "the same on every device"
)


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        action="store",
        default=None,
        metavar="DEVICES",
        help="devices for device-parametrized tests: auto (the CPU, plus CUDA when available; "
        "the default), cpu, cuda, or a comma list such as cpu,cuda "
        "(env VOXRENDER_TEST_DEVICE)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_only(reason): runs on the CPU only, and says why")
    value = config.getoption("--device") or os.environ.get(helpers.DEVICE_ENV) or "auto"
    try:
        devices = helpers.selected_devices(value)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    helpers.DEVICES[:] = devices  # in place: test modules import the list itself
    os.environ[helpers.DEVICE_ENV] = ",".join(devices)  # subprocesses see the same choice


def pytest_report_header(config):
    return f"voxrender test devices: {', '.join(helpers.DEVICES)}"


def _cpu_only_reason(item) -> str:
    marker = item.get_closest_marker("cpu_only")
    if marker is not None and (marker.args or marker.kwargs.get("reason")):
        return marker.args[0] if marker.args else marker.kwargs["reason"]
    path = item.nodeid.split("::")[0]
    for fragment, reason in CPU_ONLY_REASONS.items():
        if fragment in path:
            return reason
    return CPU_ONLY_DEFAULT


def _needs_cuda(item) -> bool:
    """Marked ``cuda``, or skipped without CUDA with a reason saying "needs/requires CUDA"."""
    if item.get_closest_marker("cuda") is not None:
        return True
    return any(
        re.search(r"\b(needs|requires) cuda\b", str(m.kwargs.get("reason", "")), re.IGNORECASE)
        for m in item.iter_markers("skipif")
    )


def pytest_collection_modifyitems(config, items):
    devices = helpers.DEVICES
    for item in items:
        params = getattr(item, "callspec", None)
        on_device = params is not None and "device" in params.params
        if _needs_cuda(item):
            if "cuda" not in devices:
                why = "CUDA is not available" if not helpers.cuda_available() else "not selected"
                item.add_marker(pytest.mark.skip(reason=f"needs CUDA ({why}; --device cuda)"))
        elif not on_device and "cpu" not in devices:
            item.add_marker(pytest.mark.skip(reason=f"CPU-only: {_cpu_only_reason(item)}"))

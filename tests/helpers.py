"""Shared test helpers: one ``assert_close`` with a per-dtype tolerance table, fixture loading.

Fixture format: ``tests/fixtures/pytorch3d/README.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import voxrender
from reference.record_fixtures import API_NAMES, run_calls
from reference.record_fixtures import cotangent_loss as cotangent_loss  # the fixtures' loss

FIXTURES = Path(__file__).parent / "fixtures" / "pytorch3d"

# voxrender's objects under the PyTorch3D names the fixture recorder calls.
VOXRENDER_API = SimpleNamespace(
    **{name: getattr(voxrender, name) for names in API_NAMES.values() for name in names}
)

# (atol, rtol) per dtype, for values ("out") and gradients ("grad"). float32 is the fixtures'
# own rule (their README); float64 is what double precision owes us.
TOLERANCES = {
    torch.float32: {"out": (2e-5, 1e-4), "grad": (2e-5, 1e-3)},
    torch.float64: {"out": (1e-10, 1e-8), "grad": (1e-9, 1e-7)},
    torch.float16: {"out": (1e-3, 1e-2), "grad": (1e-3, 1e-2)},
    torch.bfloat16: {"out": (1e-2, 5e-2), "grad": (1e-2, 5e-2)},
}

DEVICE_ENV = "VOXRENDER_TEST_DEVICE"


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    return torch.cuda.is_available()


def selected_devices(value: str | None = None) -> list[str]:
    """The devices the suite runs on.

    ``"auto"`` (the CPU, plus CUDA when available), ``"cpu"``,
    ``"cuda"`` or a comma list; ``None`` reads ``VOXRENDER_TEST_DEVICE`` (default ``auto``).

    Raises:
        ValueError: an unknown device, or CUDA asked for where it is not available.
    """
    value = (value if value is not None else os.environ.get(DEVICE_ENV, "")).strip() or "auto"
    if value == "auto":
        return ["cpu"] + (["cuda"] if cuda_available() else [])
    devices = list(dict.fromkeys(d.strip() for d in value.split(",") if d.strip()))
    bad = [d for d in devices if d not in ("cpu", "cuda")]
    if bad or not devices:
        raise ValueError(
            f"--device / {DEVICE_ENV}: expected auto, cpu, cuda or a comma list of cpu and "
            f"cuda, got {value!r}"
        )
    if "cuda" in devices and not cuda_available():
        raise ValueError(
            f"--device / {DEVICE_ENV}: cuda was asked for, but CUDA is not available "
            f"(torch {torch.__version__})"
        )
    return devices


# Devices of the device-parametrized tests; tests/conftest.py sets it from --device (in place).
try:
    DEVICES = selected_devices()
except ValueError:  # reported by tests/conftest.py as a usage error
    DEVICES = selected_devices("auto")
# Marks a test that needs CUDA: tests/conftest.py skips it unless CUDA is selected and present.
needs_cuda = pytest.mark.cuda
DTYPES = [torch.float32, torch.float64]


def assert_close(actual, expected, *, kind: str = "out", dtype=None, atol=None, rtol=None, msg=""):
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise.

    Tolerances come from :data:`TOLERANCES` by ``dtype`` (default: ``actual``'s) and ``kind``
    ("out" or "grad"); integer and boolean tensors must match exactly. ``expected`` may be a numpy
    array or a tensor and is moved to ``actual``'s device and dtype.
    """
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(
        np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected
    )
    expected = expected.to(device=actual.device)
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{msg} shape mismatch: got {tuple(actual.shape)}, want {tuple(expected.shape)}"
    )
    if not actual.is_floating_point():
        assert torch.equal(actual, expected.to(actual.dtype)), f"{msg} integer values differ"
        return
    expected = expected.to(actual.dtype)
    a, r = TOLERANCES[dtype or actual.dtype][kind]
    atol = a if atol is None else atol
    rtol = r if rtol is None else rtol
    torch.testing.assert_close(
        actual, expected, atol=atol, rtol=rtol, equal_nan=False, msg=lambda m: f"{msg}\n{m}"
    )


def manifest() -> list[dict]:
    """All fixture cases listed in the manifest."""
    return json.loads((FIXTURES / "manifest.json").read_text())["cases"]


def case_names(kind: str) -> list[str]:
    """Names of the fixture cases of one kind (for ``pytest.mark.parametrize``)."""
    return [c["name"] for c in manifest() if c["kind"] == kind]


def load_case(
    name: str,
) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Load one fixture case.

    Returns:
        ``(config, inputs, outputs, grads)``: the case's config and three dicts of tensors keyed
        by the name after the ``in/``, ``out/`` or ``grad/`` prefix.
    """
    case = next(c for c in manifest() if c["name"] == name)
    data = np.load(FIXTURES / case["file"])
    groups: dict[str, dict[str, torch.Tensor]] = {"in": {}, "out": {}, "grad": {}}
    for key in data.files:
        prefix, _, rest = key.partition("/")
        groups[prefix][rest] = torch.from_numpy(np.array(data[key]))
    return case["config"], groups["in"], groups["out"], groups["grad"]


def run_case(
    name: str, inputs: dict[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Fixture case ``name``'s calls run with voxrender's objects: ``(outputs, grads)``.

    The calls are the recorder's (:func:`reference.record_fixtures.run_calls`, the one
    definition of every case), so the tests check exactly what was recorded. ``inputs`` defaults
    to the case's own; pass them moved to another device or dtype to run the case there.
    """
    case = next(c for c in manifest() if c["name"] == name)
    if inputs is None:
        inputs = load_case(name)[1]
    return run_calls(VOXRENDER_API, case, inputs)

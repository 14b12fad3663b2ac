"""The suite's device selection (tests/conftest.py, tests/helpers.py: --device, VOXRENDER_TEST_DEVICE)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import helpers
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_auto_is_cpu_plus_cuda_when_available(monkeypatch):
    monkeypatch.setattr(helpers, "cuda_available", lambda: False)
    assert helpers.selected_devices("auto") == ["cpu"]
    monkeypatch.setattr(helpers, "cuda_available", lambda: True)
    assert helpers.selected_devices("auto") == ["cpu", "cuda"]
    assert helpers.selected_devices(" cuda , cpu,cuda") == ["cuda", "cpu"]


def test_environment_variable_is_the_default(monkeypatch):
    monkeypatch.setenv(helpers.DEVICE_ENV, "cpu")
    monkeypatch.setattr(helpers, "cuda_available", lambda: True)
    assert helpers.selected_devices() == ["cpu"]
    monkeypatch.setenv(helpers.DEVICE_ENV, "")
    assert helpers.selected_devices() == ["cpu", "cuda"]


def test_bad_device_names_the_option():
    with pytest.raises(ValueError, match=r"--device / VOXRENDER_TEST_DEVICE: expected auto.*'gpu'"):
        helpers.selected_devices("gpu")


def test_cuda_asked_for_without_cuda(monkeypatch):
    monkeypatch.setattr(helpers, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="cuda was asked for, but CUDA is not available"):
        helpers.selected_devices("cuda")


def test_this_run_parametrizes_over_the_selected_devices():
    assert helpers.DEVICES == helpers.selected_devices(os.environ[helpers.DEVICE_ENV])


def _pytest(tmp_path, *args, fake_cuda: bool = False):
    """Run pytest on this suite in a subprocess, optionally pretending CUDA is available."""
    plugin = tmp_path / "fake_cuda_plugin.py"
    plugin.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT / "tests")!r})
            import helpers
            if {fake_cuda!r}:
                helpers.cuda_available = lambda: True
            """
        )
    )
    env = {k: val for k, val in os.environ.items() if k != helpers.DEVICE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    cmd = [sys.executable, "-m", "pytest", "-p", "fake_cuda_plugin", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*cmd, "-q", "-rs", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_device_cuda_skips_cpu_only_tests_saying_why(tmp_path):
    proc = _pytest(
        tmp_path,
        "--device",
        "cuda",
        "tests/test_readme.py",
        "tests/test_so3.py::test_empty_batch",
        "tests/test_meta.py::test_volumes_constructor_on_meta",
        fake_cuda=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "3 skipped" in out, out
    assert "CPU-only: the README's example as written (CPU tensors)" in out
    assert "CPU-only: not device-parametrized" in out


def test_device_cpu_skips_cuda_tests(tmp_path):
    proc = _pytest(
        tmp_path,
        "--device",
        "cpu",
        "tests/test_meta.py::test_render_does_not_synchronize_on_cuda",
        "tests/test_so3.py::test_empty_batch",
        fake_cuda=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert "needs CUDA (not selected; --device cuda)" in out

"""A pytest plugin for ``benchmarks.gpu_check``: past a deadline, the remaining tests are skipped.

``VOXRENDER_TEST_DEADLINE`` (seconds since the epoch) is set by the GPU check, which loads this
with ``-p benchmarks._pytest_deadline``; the session then ends on its own, its JUnit report
written, before the phase's hard timeout would kill it.
"""

from __future__ import annotations

import os
import time

import pytest

SKIP_REASON = "gpu_check: the tests' time cap was reached"


def pytest_runtest_setup(item):
    deadline = float(os.environ.get("VOXRENDER_TEST_DEADLINE", "inf"))
    if time.time() > deadline:
        pytest.skip(SKIP_REASON)

"""pytest-benchmark suite: the renderer's pieces (ray sampling, volume sampling, raymarching, render).

``python -m pytest benchmarks --benchmark-only`` (options in ``benchmarks/conftest.py``).
"""

import pytest

from benchmarks import cases

COMPONENTS = [c for c in cases.COMPONENTS if c != "fit_step"]  # the fit step: test_bench_fit


@pytest.mark.parametrize("component", COMPONENTS)
def test_component(run_case, config_name, backend, component):
    run_case(config_name, backend, component)

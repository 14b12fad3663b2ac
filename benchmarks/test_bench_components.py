"""pytest-benchmark suite: the renderer's pieces (ray sampling, volume sampling, raymarching, render).

``python -m pytest benchmarks --benchmark-only`` (options in ``benchmarks/conftest.py``).
"""

import pytest

COMPONENTS = [
    "raysampling",
    "grid_sampling_fwd",
    "grid_sampling_fwd_bwd",
    "raymarching_fwd",
    "raymarching_fwd_bwd",
    "render_fwd",
]


@pytest.mark.parametrize("component", COMPONENTS)
def test_component(run_case, config_name, backend, component):
    run_case(config_name, backend, component)

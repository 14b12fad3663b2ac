"""The parity generators and checks, exercised against voxrender alone (runs everywhere).

Each family of generated cases runs through voxrender in float32 (on every device) and through
voxrender in float64 on the CPU, compared with the same :func:`assert_parity` the live PyTorch3D
suite uses. Random raysamplers (whose draws depend on the dtype) are checked by invariants.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import parity_cases as pc
import pytest
import torch
from helpers import DEVICES
from hypothesis import given

from reference.oracle import find_pytorch3d

REFERENCE = pc.voxrender_impl(torch.float64, "cpu")
# A real PyTorch3D installed on sys.path; the runnable copy beside the project (the live
# oracle) does not count: the skip test below points the oracle elsewhere.
REAL_PYTORCH3D = find_pytorch3d()[0] == "installed"


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.camera_cases())
def test_cameras_float32_against_float64(device, case):
    ours = pc.run_cameras(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_cameras(REFERENCE, case), case["kind"])
    assert set(ours[1]) >= {"R", "T", "points", "xy_depth"}


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.raysampler_cases(random=False))
def test_deterministic_raysamplers_float32_against_float64(device, case):
    ours = pc.run_raysampler(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_raysampler(REFERENCE, case), case["sampler"])


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.raysampler_cases(random=None))
def test_random_raysamplers_are_seeded_and_project_back(device, case):
    impl = pc.voxrender_impl(torch.float32, device)
    first, grads = pc.run_raysampler(impl, case)
    again, _ = pc.run_raysampler(impl, case)
    for key, value in first.items():
        assert torch.equal(value, again[key]), key  # the seed decides every draw
    leaves = {k: impl.tensor(v) for k, v in case["arrays"].items()}
    cams = pc.make_cameras(
        impl, case, {k: v for k, v in leaves.items() if k not in ("points", "xy_depth")}
    )
    points = (
        first["origins"][..., None, :]
        + first["directions"][..., None, :] * first["lengths"][..., None]
    )
    flat = points.reshape(case["n"], -1, 3)
    xy = cams.transform_points_ndc(flat)[..., :2].reshape(*points.shape[:-1], 2)
    torch.testing.assert_close(xy, first["xys"][..., None, :].expand_as(xy), atol=1e-4, rtol=1e-4)
    lengths = first["lengths"]
    init = case["init"]
    assert (lengths >= init["min_depth"] - 1e-5).all() and (
        lengths <= init["max_depth"] + 1e-5
    ).all()
    assert (lengths.diff(dim=-1) >= 0).all()
    assert set(grads) >= {"R", "T"}


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.volume_cases())
def test_volume_sampler_float32_against_float64(device, case):
    ours = pc.run_volume_sampler(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_volume_sampler(REFERENCE, case), case["sample_mode"])


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.raymarcher_cases())
def test_raymarchers_float32_against_float64(device, case):
    ours = pc.run_raymarcher(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_raymarcher(REFERENCE, case), case["marcher"])


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.render_cases())
def test_render_float32_against_float64(device, case):
    ours = pc.run_render(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_render(REFERENCE, case), case["kind"])
    assert set(ours[1]) >= {"log_densities", "log_colors", "R", "T"}


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.so3_cases())
def test_so3_float32_against_float64(device, case):
    ours = pc.run_so3(pc.voxrender_impl(torch.float32, device), case)
    pc.assert_parity(ours, pc.run_so3(REFERENCE, case))


def test_assert_parity_catches_a_difference():
    want = ({"x": torch.ones(3)}, {"p": torch.ones(2)})
    pc.assert_parity(({"x": torch.ones(3) + 1e-6}, {"p": torch.ones(2)}), want)
    with pytest.raises(AssertionError, match="out/x"):
        pc.assert_parity(({"x": torch.ones(3) * 1.01}, {"p": torch.ones(2)}), want)
    with pytest.raises(AssertionError, match="grad/p"):
        pc.assert_parity(({"x": torch.ones(3)}, {"p": torch.ones(2) * 1.01}), want)
    with pytest.raises(AssertionError, match="keys differ"):
        pc.assert_parity(({"x": torch.ones(3)}, {}), want)


@pytest.mark.skipif(REAL_PYTORCH3D, reason="a real PyTorch3D is installed: the suite runs")
@pytest.mark.parametrize("module", ["test_pytorch3d_parity.py", "test_differential_geometry.py"])
def test_live_parity_suite_skips_cleanly_with_the_reason(module, tmp_path):
    """Without PyTorch3D the live modules skip at collection and say why.

    Without: no install, and the oracle's copy pointed at an empty folder.
    """
    here = Path(__file__).parent
    env = dict(os.environ, VOXRENDER_PYTORCH3D_PATH=str(tmp_path / "no-pytorch3d"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(here / module),
            "-rs",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=here.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # 5: pytest's 'no tests ran' (the module skipped itself at collection); not an error
    assert result.returncode in (0, 5), result.stdout + result.stderr
    assert "pytorch3d is not importable: not installed, and no runnable copy at" in result.stdout
    assert "1 skipped" in result.stdout

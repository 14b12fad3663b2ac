"""Live parity: voxrender against a real PyTorch3D on generated cases (outputs and gradients).

Skipped as a whole, with the reason, where PyTorch3D is not importable. Every test runs on
every device (CPU, and CUDA when present), voxrender and PyTorch3D both in float32 on it, and
pushes the same random cotangent through both. The generators and checks are shared with
``test_parity_generators.py``, which runs them against voxrender alone.
"""

from __future__ import annotations

import parity_cases as pc
import pytest
import torch
from helpers import DEVICES
from hypothesis import given

PYTORCH3D, REASON = pc.import_pytorch3d()
if PYTORCH3D is None:
    pytest.skip(REASON, allow_module_level=True)


def _pair(device: str) -> tuple[pc.Impl, pc.Impl]:
    return (
        pc.voxrender_impl(torch.float32, device),
        pc.Impl("pytorch3d", PYTORCH3D, torch.float32, device),
    )


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.camera_cases())
def test_cameras(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(pc.run_cameras(ours, case), pc.run_cameras(theirs, case), case["kind"])


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.raysampler_cases())
def test_raysamplers(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(
        pc.run_raysampler(ours, case), pc.run_raysampler(theirs, case), case["sampler"]
    )


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.volume_cases())
def test_volume_sampler(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(pc.run_volume_sampler(ours, case), pc.run_volume_sampler(theirs, case))


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.raymarcher_cases())
def test_raymarchers(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(
        pc.run_raymarcher(ours, case), pc.run_raymarcher(theirs, case), case["marcher"]
    )


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.render_cases())
def test_render(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(pc.run_render(ours, case), pc.run_render(theirs, case), case["kind"])


@pytest.mark.parametrize("device", DEVICES)
@given(case=pc.so3_cases())
def test_so3(device, case):
    ours, theirs = _pair(device)
    pc.assert_parity(pc.run_so3(ours, case), pc.run_so3(theirs, case))

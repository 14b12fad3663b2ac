"""Cameras the camera tests share: random FoV batches, one batch of every kind, hypothesis setups."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from voxrender import FoVPerspectiveCameras, so3_exp_map
from voxrender.cameras import FoVOrthographicCameras, OrthographicCameras, PerspectiveCameras


def fov_cameras(n=3, dtype=torch.float32, device="cpu", seed=0, **kwargs) -> FoVPerspectiveCameras:
    g = torch.Generator().manual_seed(seed)
    R = so3_exp_map(torch.randn(n, 3, generator=g, dtype=torch.float64))
    T = torch.randn(n, 3, generator=g, dtype=torch.float64) + torch.tensor(
        [0.0, 0.0, 6.0], dtype=torch.float64
    )
    return FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype), device=device, **kwargs)


angles = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)


@st.composite
def camera_setups(draw):
    log_rot = [draw(angles) for _ in range(3)]
    offset = [draw(st.floats(-2.0, 2.0)) for _ in range(3)]
    fov = draw(st.floats(20.0, 120.0))
    znear = draw(st.floats(0.1, 2.0))
    zfar = znear + draw(st.floats(0.5, 50.0))
    aspect = draw(st.floats(0.5, 2.0))
    seed = draw(st.integers(0, 2**16))
    return log_rot, offset, fov, znear, zfar, aspect, seed


def setup_cameras(setup, dtype=torch.float64):
    log_rot, offset, fov, znear, zfar, aspect, _ = setup
    R = so3_exp_map(torch.tensor([log_rot], dtype=torch.float64)).to(dtype)
    T = torch.tensor([offset], dtype=dtype)
    return FoVPerspectiveCameras(R=R, T=T, fov=fov, znear=znear, zfar=zfar, aspect_ratio=aspect)


KINDS = ("fov", "fov_ortho", "persp_ndc", "persp_screen", "ortho_ndc", "ortho_screen")


def extrinsics(n, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    R = so3_exp_map(0.4 * torch.randn(n, 3, generator=g, dtype=torch.float64))
    T = 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    T[:, 2] += 5.0
    return R.to(dtype), T.to(dtype)


def make_camera(kind, n=2, dtype=torch.float64, device="cpu", seed=0, image_size=(12, 16)):
    """A batch of ``n`` cameras of one kind looking roughly at the world origin."""
    R, T = extrinsics(n, dtype, seed)
    f = torch.linspace(1.5, 2.5, n, dtype=dtype)[:, None]
    h, w = image_size
    short = min(h, w) / 2
    if kind == "fov":
        return FoVPerspectiveCameras(
            R=R, T=T, fov=torch.linspace(40, 70, n, dtype=dtype), device=device
        )
    if kind == "fov_ortho":
        return FoVOrthographicCameras(
            R=R,
            T=T,
            min_x=-1.5,
            max_x=2.0,
            min_y=-1.0,
            max_y=1.2,
            scale_xyz=((1.0, 1.1, 0.9),),
            device=device,
        )
    if kind == "persp_ndc":
        return PerspectiveCameras(
            focal_length=f, principal_point=((0.1, -0.05),), R=R, T=T, device=device
        )
    if kind == "persp_screen":
        return PerspectiveCameras(
            focal_length=f * short,
            principal_point=((w / 2 + 1.0, h / 2 - 0.5),),
            R=R,
            T=T,
            device=device,
            in_ndc=False,
            image_size=(h, w),
        )
    if kind == "ortho_ndc":
        return OrthographicCameras(
            focal_length=f / 3, principal_point=((0.1, 0.2),), R=R, T=T, device=device
        )
    if kind == "ortho_screen":
        return OrthographicCameras(
            focal_length=f * short / 3,
            principal_point=((w / 2 - 2.0, h / 2 + 1.0),),
            R=R,
            T=T,
            device=device,
            in_ndc=False,
            image_size=[[h, w]] * n,
        )
    raise AssertionError(kind)


def ndc_xy(cams, n_points=9, seed=1):
    """NDC ``x, y`` inside the view (``(N, P, 2)``) and view depths in ``[3, 7]``."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(len(cams), n_points, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8).to(
        cams.dtype
    )
    depth = (3 + 4 * torch.rand(len(cams), n_points, 1, generator=g, dtype=torch.float64)).to(
        cams.dtype
    )
    return xy, depth


@st.composite
def any_camera(draw):
    kind = draw(st.sampled_from(KINDS))
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    seed = draw(st.integers(0, 2**16))
    return kind, n, (h, w), seed

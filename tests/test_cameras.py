"""Tests for voxrender.cameras: FoVPerspectiveCameras, the camera batch, and the look-at helpers."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close, case_names, load_case
from hypothesis import given
from hypothesis import strategies as st

from voxrender import (
    CamerasBase,
    FoVPerspectiveCameras,
    Transform3d,
    camera_position_from_spherical_angles,
    get_world_to_view_transform,
    look_at_rotation,
    look_at_view_transform,
    so3_exp_map,
)
from voxrender.cameras import (
    FoVOrthographicCameras,
    OrthographicCameras,
    PerspectiveCameras,
    get_ndc_to_screen_transform,
    get_screen_to_ndc_transform,
)

needs_cuda = pytest.mark.cuda  # run when CUDA is selected and present (conftest.py)


def _cameras(n=3, dtype=torch.float32, device="cpu", seed=0, **kwargs) -> FoVPerspectiveCameras:
    g = torch.Generator().manual_seed(seed)
    R = so3_exp_map(torch.randn(n, 3, generator=g, dtype=torch.float64))
    T = torch.randn(n, 3, generator=g, dtype=torch.float64) + torch.tensor(
        [0.0, 0.0, 6.0], dtype=torch.float64
    )
    return FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype), device=device, **kwargs)


def _fixture_calls(cams, inputs) -> dict[str, torch.Tensor]:
    """Exactly the calls the fixtures' README lists for kind ``cameras_fov``."""
    points = inputs["points"]
    return {
        "projection_matrix": cams.get_projection_transform().get_matrix(),
        "world_to_view_matrix": cams.get_world_to_view_transform().get_matrix(),
        "full_projection_matrix": cams.get_full_projection_transform().get_matrix(),
        "transform_points": cams.transform_points(points),
        "unproject_world": cams.unproject_points(inputs["xy_depth"], world_coordinates=True),
        "unproject_view": cams.unproject_points(inputs["xy_depth"], world_coordinates=False),
        "unproject_scaled": cams.unproject_points(
            inputs["xy_scaled_depth"], scaled_depth_input=True
        ),
        "camera_center": cams.get_camera_center(),
        "getitem_transform_points": cams[[2, 0]].transform_points(points[[2, 0]]),
    }


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", case_names("cameras_fov"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_fixture_cameras_fov(name, dtype):
    config, inputs, outputs, _ = load_case(name)
    inputs = {k: v.to(dtype) for k, v in inputs.items()}
    cams = FoVPerspectiveCameras(
        R=inputs["camera.R"], T=inputs["camera.T"], **config["camera_kwargs"]
    )
    got = _fixture_calls(cams, inputs)
    assert set(got) == set(outputs)
    for key, value in got.items():
        assert value.dtype == dtype, key
        # float64 results are judged by the float32 tolerance: the fixtures are float32.
        assert_close(value, outputs[key], dtype=torch.float32, msg=f"{name}/{key}")


@pytest.mark.parametrize("name", case_names("look_at"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_fixture_look_at(name, dtype):
    config, inputs, outputs, _ = load_case(name)
    inputs = {k: v.to(dtype) for k, v in inputs.items()}
    R, T = look_at_view_transform(degrees=config["degrees"], **inputs)
    position = camera_position_from_spherical_angles(
        inputs["dist"], inputs["elev"], inputs["azim"], degrees=config["degrees"]
    )
    for key, value in {"R": R, "T": T, "camera_position": position}.items():
        assert value.dtype == dtype
        if dtype == torch.float64 and name == "look_at_3":
            # Straight above the target: the float32 fixture's rotation is fixed by how float32
            # rounds cos(90 deg); only check it is still a rotation looking down.
            continue
        assert_close(value, outputs[key], dtype=torch.float32, msg=f"{name}/{key}")


def test_look_at_up_exactly_along_view_gives_a_rotation():
    # PyTorch3D returns a zero x axis here; we fall back to a fixed world axis.
    for position, up in (([[0.0, 5.0, 0.0]], ((0, 1, 0),)), ([[5.0, 0.0, 0.0]], ((1, 0, 0),))):
        R = look_at_rotation(torch.tensor(position), up=up)[0]
        assert_close(R @ R.T, torch.eye(3), atol=1e-6)
        assert_close(torch.linalg.det(R), torch.tensor(1.0))
        assert_close(R[:, 2], -torch.tensor(position[0]) / 5.0)


def test_look_at_straight_down_is_still_a_rotation():
    R, T = look_at_view_transform(dist=torch.tensor(2.0, dtype=torch.float64), elev=90.0, azim=0.0)
    assert_close(R[0] @ R[0].T, torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert_close(R[0][:, 2], torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64), atol=1e-9)
    assert_close(T, torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64), atol=1e-9)


# --------------------------------------------------------------------------- smoke and batch


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_attributes_dtype_device(device, dtype):
    cams = _cameras(3, dtype, device, fov=[50.0, 60.0, 70.0])
    assert len(cams) == 3 and cams.R.shape == (3, 3, 3) and cams.T.shape == (3, 3)
    for name in ("znear", "zfar", "aspect_ratio", "fov"):
        value = getattr(cams, name)
        assert value.shape == (3,) and value.dtype == dtype and value.device.type == device
    assert cams.R.dtype == dtype and cams.device.type == device and cams.degrees is True
    assert cams.is_perspective() and cams.in_ndc() and cams.get_image_size() is None
    assert cams.get_znear() is cams.znear
    points = torch.randn(3, 5, 3, dtype=dtype, device=device)
    for out in (
        cams.transform_points(points),
        cams.unproject_points(points, world_coordinates=True, from_ndc=True),
        cams.transform_points_ndc(points),
    ):
        assert out.shape == (3, 5, 3) and out.dtype == dtype and out.device.type == device
    center = cams.get_camera_center()
    assert center.shape == (3, 3) and center.dtype == dtype
    assert cams.get_ndc_camera_transform().get_matrix().dtype == dtype


def test_defaults_match_pytorch3d():
    cams = FoVPerspectiveCameras()
    assert len(cams) == 1 and cams.dtype == torch.float32 and cams.device == torch.device("cpu")
    assert torch.equal(cams.R, torch.eye(3)[None]) and torch.equal(cams.T, torch.zeros(1, 3))
    assert cams.znear.tolist() == [1.0] and cams.zfar.tolist() == [100.0]
    assert cams.fov.tolist() == [60.0] and cams.aspect_ratio.tolist() == [1.0]
    assert cams.K is None and isinstance(cams, CamerasBase)


def test_dtype_follows_tensors_not_defaults():
    cams = FoVPerspectiveCameras(fov=torch.tensor([45.0], dtype=torch.float64))
    assert cams.dtype == torch.float64 and cams.R.dtype == torch.float64
    mixed = FoVPerspectiveCameras(R=torch.eye(3)[None], T=torch.zeros(1, 3, dtype=torch.float64))
    assert mixed.R.dtype == torch.float64


def test_batch_sizes_broadcast():
    cams = FoVPerspectiveCameras(
        R=torch.eye(3)[None], T=torch.randn(4, 3), znear=[0.5, 1.0, 1.5, 2.0]
    )
    assert len(cams) == 4 and cams.R.shape == (4, 3, 3) and cams.fov.shape == (4,)
    assert cams.get_projection_transform().get_matrix().shape == (4, 4, 4)


def test_single_points_through_batch():
    cams = _cameras(3)
    p = torch.randn(5, 3)
    assert cams.transform_points(p).shape == (3, 5, 3)
    assert cams.unproject_points(torch.rand(5, 3) + 1).shape == (3, 5, 3)
    one = _cameras(1)
    assert one.transform_points(p).shape == (5, 3)
    assert one.unproject_points(p + torch.tensor([0.0, 0.0, 3.0])).shape == (5, 3)


@pytest.mark.parametrize(
    "index",
    [1, -1, [2, 0], torch.tensor([2, 0]), torch.tensor([True, False, True])],
    ids=["int", "negative", "list", "long", "bool"],
)
def test_getitem_selects_cameras(index):
    cams = _cameras(3, fov=[40.0, 50.0, 60.0], znear=[0.5, 1.0, 2.0])
    sub = cams[index]
    rows = [index] if isinstance(index, int) else index
    assert isinstance(sub, FoVPerspectiveCameras) and sub.degrees == cams.degrees
    for name in ("R", "T", "fov", "znear", "zfar", "aspect_ratio"):
        assert torch.equal(getattr(sub, name), getattr(cams, name)[rows]), name


def test_getitem_keeps_K_and_gradients():
    K = FoVPerspectiveCameras(fov=[40.0, 50.0]).compute_projection_matrix(
        1.0, 10.0, [40.0, 50.0], 1.0, True
    )
    R = torch.eye(3).repeat(2, 1, 1).requires_grad_(True)
    cams = FoVPerspectiveCameras(R=R, K=K)
    sub = cams[1]
    assert torch.equal(sub.K, K[1:])
    sub.transform_points(torch.randn(4, 3)).sum().backward()
    assert R.grad is not None and R.grad[0].abs().sum() == 0 and R.grad[1].abs().sum() > 0


def test_clone_and_to():
    cams = _cameras(2)
    copy = cams.clone()
    assert (
        copy is not cams and torch.equal(copy.R, cams.R) and copy.R.data_ptr() != cams.R.data_ptr()
    )
    assert cams.to("cpu") is cams and cams.cpu() is cams


@needs_cuda
def test_cuda_round_trip():
    cams = _cameras(2)
    points = torch.randn(2, 5, 3)
    expected = cams.transform_points(points)
    moved = cams.clone().cuda()
    assert moved.device.type == "cuda" and moved.R.is_cuda and moved.fov.is_cuda
    assert_close(moved.transform_points(points.cuda()).cpu(), expected)
    on_gpu = FoVPerspectiveCameras(R=cams.R, T=cams.T, device="cuda")
    assert on_gpu.R.is_cuda


# --------------------------------------------------------------------------- analytic cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_projection_of_frustum_corners(dtype):
    cams = FoVPerspectiveCameras(
        znear=0.5, zfar=8.0, fov=70.0, aspect_ratio=1.5, T=torch.zeros(1, 3, dtype=dtype)
    )
    half = math.tan(math.radians(35.0))
    for z in (0.5, 2.0, 8.0):
        corner = torch.tensor([[half * 1.5 * z, half * z, z]], dtype=dtype)
        ndc = cams.transform_points(corner)[0]
        z_ndc = 8.0 / 7.5 * (1 - 0.5 / z)
        assert_close(ndc, torch.tensor([1.0, 1.0, z_ndc], dtype=dtype))


def test_radians_equal_degrees():
    a = FoVPerspectiveCameras(fov=50.0)
    b = FoVPerspectiveCameras(fov=math.radians(50.0), degrees=False)
    assert_close(
        a.get_projection_transform().get_matrix(), b.get_projection_transform().get_matrix()
    )


def test_camera_center_maps_to_view_origin():
    cams = _cameras(4)
    center = cams.get_camera_center()
    view = cams.get_world_to_view_transform().transform_points(center[:, None])
    assert_close(view, torch.zeros(4, 1, 3), atol=1e-5)


def test_kwargs_override_projection_fields():
    cams = _cameras(2)
    override = cams.get_projection_transform(fov=30.0, znear=0.2, zfar=4.0).get_matrix()
    fresh = (
        FoVPerspectiveCameras(fov=30.0, znear=0.2, zfar=4.0).get_projection_transform().get_matrix()
    )
    assert_close(override, fresh.expand(2, 4, 4))
    points = torch.randn(2, 3, 3)
    assert_close(
        cams.transform_points(points, fov=30.0),
        _cameras(2, fov=30.0).transform_points(points),
    )


def test_kwargs_R_T_replace_extrinsics_like_pytorch3d():
    cams = _cameras(2)
    R, T = torch.eye(3)[None], torch.tensor([[1.0, 2.0, 3.0]])
    center = cams.get_camera_center(R=R, T=T)
    assert_close(center, -T.expand(2, 3))
    assert torch.equal(cams.R, R.expand(2, 3, 3)) and torch.equal(cams.T, T.expand(2, 3))


def test_K_replaces_fov_matrix():
    cams = _cameras(2, fov=40.0, znear=0.3, zfar=9.0)
    K = cams.compute_projection_matrix(0.3, 9.0, 40.0, 1.0, True)
    with_K = FoVPerspectiveCameras(R=cams.R, T=cams.T, K=K, fov=90.0)
    assert K.shape == (2, 4, 4)  # scalar fields broadcast to len(cameras), like PyTorch3D
    assert_close(with_K.get_projection_transform().get_matrix(), K.transpose(1, 2))
    points = torch.randn(2, 6, 3)
    assert_close(with_K.transform_points(points), cams.transform_points(points))
    xy_depth = torch.cat((torch.rand(2, 6, 2) - 0.5, torch.rand(2, 6, 1) + 1), dim=-1)
    assert_close(with_K.unproject_points(xy_depth), cams.unproject_points(xy_depth), atol=1e-5)


def test_from_ndc_is_accepted_and_ignored():
    cams = _cameras(2)
    xy_depth = torch.cat((torch.rand(2, 6, 2) - 0.5, torch.rand(2, 6, 1) + 1), dim=-1)
    assert torch.equal(
        cams.unproject_points(xy_depth, world_coordinates=True, from_ndc=True),
        cams.unproject_points(xy_depth, world_coordinates=True),
    )


def test_get_world_to_view_transform_function():
    R = so3_exp_map(torch.randn(3, 3))
    T = torch.randn(1, 3)
    t = get_world_to_view_transform(R=R, T=T)
    assert isinstance(t, Transform3d) and len(t) == 3
    p = torch.randn(3, 4, 3)
    assert_close(t.transform_points(p), p @ R + T[:, None])
    assert torch.equal(get_world_to_view_transform().get_matrix(), torch.eye(4)[None])
    assert get_world_to_view_transform(R=R.double()).dtype == torch.float64


# --------------------------------------------------------------------------- look-at


def test_look_at_camera_sees_target_at_the_centre():
    at = torch.tensor([[0.3, -0.2, 0.5]])
    R, T = look_at_view_transform(
        dist=[2.0, 3.0, 4.0], elev=[10.0, -30.0, 60.0], azim=[0.0, 120.0, -45.0], at=at
    )
    cams = FoVPerspectiveCameras(R=R, T=T)
    ndc = cams.transform_points(at.expand(3, 3)[:, None])[:, 0]
    assert_close(ndc[:, :2], torch.zeros(3, 2), atol=1e-5)
    assert (ndc[:, 2] > 0).all()
    assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-5)
    assert_close(torch.linalg.det(R), torch.ones(3))


def test_look_at_eye_form_matches_spherical_form():
    R1, T1 = look_at_view_transform(dist=2.5, elev=20.0, azim=35.0)
    eye = camera_position_from_spherical_angles(2.5, 20.0, 35.0)
    R2, T2 = look_at_view_transform(eye=eye)
    assert_close(R1, R2) and assert_close(T1, T2)
    assert_close(look_at_rotation(eye), R1)
    cams = FoVPerspectiveCameras(R=R1, T=T1)
    assert_close(cams.get_camera_center(), eye, atol=1e-5)


def test_spherical_angles_analytic():
    pos = camera_position_from_spherical_angles([1.0, 2.0], [0.0, 90.0], [90.0, 0.0])
    assert_close(pos, torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), atol=1e-6)
    rad = camera_position_from_spherical_angles(2.0, math.pi / 6, math.pi / 3, degrees=False)
    expected = 2.0 * torch.tensor(
        [[math.cos(math.pi / 6) * math.sin(math.pi / 3), 0.5, math.cos(math.pi / 6) * 0.5]]
    )
    assert_close(rad, expected)


def test_look_at_gradients_flow():
    dist = torch.tensor(2.0, requires_grad=True)
    elev = torch.tensor([10.0, 20.0], requires_grad=True)
    azim = torch.tensor([30.0], requires_grad=True)
    R, T = look_at_view_transform(dist, elev, azim)
    (R.sum() + T.sum()).backward()
    for t in (dist, elev, azim):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


# --------------------------------------------------------------------------- gradients


def test_gradcheck_transform_points():
    def f(R, T, fov, znear, zfar, points):
        cams = FoVPerspectiveCameras(R=R, T=T, fov=fov, znear=znear, zfar=zfar)
        return cams.transform_points(points)

    d = torch.float64
    args = (
        so3_exp_map(torch.randn(2, 3, dtype=d)),
        torch.randn(2, 3, dtype=d) + torch.tensor([0.0, 0.0, 5.0], dtype=d),
        torch.tensor([50.0, 70.0], dtype=d),
        torch.tensor([0.5], dtype=d),
        torch.tensor([20.0, 30.0], dtype=d),
        torch.randn(2, 4, 3, dtype=d),
    )
    assert torch.autograd.gradcheck(f, tuple(a.requires_grad_(True) for a in args))


@pytest.mark.parametrize("world", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
def test_gradcheck_unproject_points(world, scaled):
    def f(R, T, fov, znear, xy_depth):
        cams = FoVPerspectiveCameras(R=R, T=T, fov=fov, znear=znear, zfar=20.0)
        return cams.unproject_points(xy_depth, world_coordinates=world, scaled_depth_input=scaled)

    d = torch.float64
    depth = torch.rand(2, 4, 1, dtype=d) * (0.8 if scaled else 5.0) + (0.1 if scaled else 1.0)
    args = (
        so3_exp_map(torch.randn(2, 3, dtype=d)),
        torch.randn(2, 3, dtype=d),
        torch.tensor([45.0, 80.0], dtype=d),
        torch.tensor([0.5, 0.7], dtype=d),
        torch.cat((torch.rand(2, 4, 2, dtype=d) * 2 - 1, depth), dim=-1),
    )
    assert torch.autograd.gradcheck(f, tuple(a.requires_grad_(True) for a in args))


def test_gradient_reaches_every_tensor_field():
    fields = {
        "R": so3_exp_map(torch.randn(2, 3)),
        "T": torch.randn(2, 3) + torch.tensor([0.0, 0.0, 5.0]),
        "fov": torch.tensor([50.0, 60.0]),
        "znear": torch.tensor([0.5, 1.0]),
        "zfar": torch.tensor([10.0, 20.0]),
        "aspect_ratio": torch.tensor([1.0, 1.5]),
    }
    for t in fields.values():
        t.requires_grad_(True)
    cams = FoVPerspectiveCameras(**fields)
    out = (
        cams.transform_points(torch.randn(2, 5, 3)).sum()
        + cams.unproject_points(torch.rand(2, 5, 3) + 1).sum()
    )
    out.backward()
    for name, t in fields.items():
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- properties


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


def _setup_cameras(setup, dtype=torch.float64):
    log_rot, offset, fov, znear, zfar, aspect, _ = setup
    R = so3_exp_map(torch.tensor([log_rot], dtype=torch.float64)).to(dtype)
    T = torch.tensor([offset], dtype=dtype)
    return FoVPerspectiveCameras(R=R, T=T, fov=fov, znear=znear, zfar=zfar, aspect_ratio=aspect)


@given(setup=camera_setups())
def test_unproject_inverts_transform_points(setup):
    cams = _setup_cameras(setup)
    znear, zfar, seed = setup[3], setup[4], setup[6]
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(1, 8, 2, generator=g, dtype=torch.float64) * 2 - 1
    depth = znear + (zfar - znear) * torch.rand(1, 8, 1, generator=g, dtype=torch.float64)
    world = cams.unproject_points(torch.cat((xy, depth), dim=-1), world_coordinates=True)
    ndc = cams.transform_points(world)
    assert_close(ndc[..., :2], xy, atol=1e-9)
    view = cams.get_world_to_view_transform().transform_points(world)
    assert_close(view[..., 2:], depth, atol=1e-9)
    # And back: world points in front of the camera survive the round trip.
    again = cams.unproject_points(torch.cat((ndc[..., :2], view[..., 2:]), dim=-1))
    assert_close(again, world, atol=1e-8)
    scaled = cams.unproject_points(ndc, scaled_depth_input=True)
    assert_close(scaled, world, atol=1e-6 * max(1.0, zfar))


@given(setup=camera_setups(), pick=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_indexing_commutes_with_transforming(setup, pick):
    seed = setup[6]
    g = torch.Generator().manual_seed(seed)
    R = so3_exp_map(torch.randn(4, 3, generator=g, dtype=torch.float64))
    T = torch.randn(4, 3, generator=g, dtype=torch.float64)
    fov = torch.rand(4, generator=g, dtype=torch.float64) * 100 + 20
    cams = FoVPerspectiveCameras(R=R, T=T, fov=fov, znear=setup[3], zfar=setup[4])
    points = torch.randn(4, 6, 3, generator=g, dtype=torch.float64)
    assert_close(cams[pick].transform_points(points[pick]), cams.transform_points(points)[pick])
    xy_depth = torch.rand(4, 6, 3, generator=g, dtype=torch.float64) + 1
    assert_close(cams[pick].unproject_points(xy_depth[pick]), cams.unproject_points(xy_depth)[pick])
    assert_close(cams[pick].get_camera_center(), cams.get_camera_center()[pick])


# --------------------------------------------------------------------------- bad input


def test_R_wrong_rank():
    with pytest.raises(ValueError, match=r"R: expected shape \(N, 3, 3\), got shape \(3, 3\)"):
        FoVPerspectiveCameras(R=torch.eye(3))


def test_R_wrong_trailing_size():
    with pytest.raises(ValueError, match=r"R: expected shape \(N, 3, 3\), got shape \(2, 3, 4\)"):
        FoVPerspectiveCameras(R=torch.zeros(2, 3, 4))


def test_T_wrong_shape():
    with pytest.raises(ValueError, match=r"T: expected shape \(N, 3\), got shape \(2, 4\)"):
        FoVPerspectiveCameras(T=torch.zeros(2, 4))


def test_K_wrong_shape():
    with pytest.raises(ValueError, match=r"K: expected shape \(N, 4, 4\), got shape \(3, 3\)"):
        FoVPerspectiveCameras(K=torch.eye(3))


def test_R_as_nested_list_is_accepted():
    cameras = FoVPerspectiveCameras(R=[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    assert cameras.R.dtype == torch.float32 and cameras.R.shape == (1, 3, 3)


def test_R_not_a_tensor():
    with pytest.raises(ValueError, match=r"R: expected a tensor of shape \(N, 3, 3\), got float"):
        FoVPerspectiveCameras(R=1.0)


def test_R_integer_is_cast():
    cameras = FoVPerspectiveCameras(R=torch.eye(3, dtype=torch.long)[None])
    assert cameras.R.dtype == torch.float32


def test_T_integer_is_cast():
    cameras = FoVPerspectiveCameras(T=torch.tensor([[0, 0, 3]], dtype=torch.int32))
    assert_close(cameras.get_camera_center(), torch.tensor([[0.0, 0.0, -3.0]]))


def test_batch_sizes_do_not_broadcast():
    with pytest.raises(
        ValueError,
        match=r"batch sizes do not broadcast: expected each to be 1 or 4, got .*fov=4, R=2, T=3",
    ):
        FoVPerspectiveCameras(R=torch.eye(3).repeat(2, 1, 1), T=torch.zeros(3, 3), fov=[50.0] * 4)


def test_fov_zero_is_a_placeholder_checked_where_used():
    cameras = FoVPerspectiveCameras(znear=5.0, zfar=100.0, fov=0.0)
    with pytest.raises(
        ValueError, match=r"fov: expected a field of view with tan\(fov / 2\) != 0, got 0"
    ):
        cameras.get_projection_transform()
    expected = FoVPerspectiveCameras(znear=5.0, zfar=100.0, fov=60.0).get_projection_transform()
    assert_close(cameras.get_projection_transform(fov=60.0).get_matrix(), expected.get_matrix())


def test_fov_negative_is_computed_like_pytorch3d():
    matrix = (
        FoVPerspectiveCameras(fov=torch.tensor([-60.0])).get_projection_transform().get_matrix()
    )
    assert matrix[0, 0, 0] < 0 and torch.isfinite(matrix).all()


def test_fov_zero_in_radians_is_refused_where_used():
    with pytest.raises(ValueError, match=r"fov: expected a field of view with .* got 0 radians"):
        FoVPerspectiveCameras(fov=0.0, degrees=False).transform_points(torch.ones(1, 3))


def test_fov_not_a_number():
    with pytest.raises(
        TypeError, match="fov: expected a float, a list of floats or a tensor, got str"
    ):
        FoVPerspectiveCameras(fov="60")


def test_znear_zero_is_refused_where_used():
    cameras = FoVPerspectiveCameras(znear=0.0)
    with pytest.raises(ValueError, match="znear: expected non-zero values, got 0"):
        cameras.get_projection_transform()


def test_aspect_ratio_zero_is_refused_where_used():
    with pytest.raises(ValueError, match="aspect_ratio: expected non-zero values, got 0"):
        FoVPerspectiveCameras(aspect_ratio=0.0).get_full_projection_transform()


def test_znear_above_zfar_is_computed_like_pytorch3d():
    matrix = FoVPerspectiveCameras(znear=[1.0, 5.0], zfar=2.0).get_projection_transform()
    assert torch.isfinite(matrix.get_matrix()).all()


def test_znear_equal_zfar_is_refused_where_used():
    cameras = FoVPerspectiveCameras(znear=torch.tensor(1.0), zfar=torch.tensor([1.0]))
    with pytest.raises(ValueError, match="zfar: expected values != znear, got 1"):
        cameras.get_projection_transform()


def test_override_fov_checked():
    with pytest.raises(ValueError, match=r"fov: expected a field of view .* got 0 degrees"):
        FoVPerspectiveCameras().get_projection_transform(fov=torch.tensor([0.0]))


def test_override_batch_size():
    with pytest.raises(
        ValueError, match=r"fov: expected a batch size of 1 or 2 \(len\(cameras\)\), got 3"
    ):
        _cameras(2).get_projection_transform(fov=[30.0, 40.0, 50.0])


def test_degrees_not_bool():
    with pytest.raises(ValueError, match=r"degrees: expected a bool \(or 0 / 1\), got str"):
        FoVPerspectiveCameras(degrees="yes")


def test_degrees_as_0_or_1():
    assert FoVPerspectiveCameras(degrees=0).degrees is False


def test_points_wrong_trailing_size():
    with pytest.raises(
        ValueError, match=r"points: expected shape \(P, 3\) or \(N, P, 3\), got shape \(2, 5, 2\)"
    ):
        _cameras(2).transform_points(torch.zeros(2, 5, 2))


def test_points_of_another_float_dtype_promote():
    out = _cameras(2).transform_points(torch.zeros(2, 5, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_xy_depth_wrong_shape():
    with pytest.raises(
        ValueError, match=r"xy_depth: expected shape \(P, 3\) or \(N, P, 3\), got shape \(2, 5, 4\)"
    ):
        _cameras(2).unproject_points(torch.ones(2, 5, 4))


def test_xy_depth_batch_does_not_broadcast():
    with pytest.raises(
        ValueError,
        match=r"batch sizes do not broadcast: .*xy_depth\.shape\[0\]=3, len\(cameras\)=2",
    ):
        _cameras(2).unproject_points(torch.ones(3, 5, 3))


def test_xy_depth_integer_is_cast():
    out = _cameras(2).unproject_points(torch.ones(2, 5, 3, dtype=torch.long))
    assert_close(out, _cameras(2).unproject_points(torch.ones(2, 5, 3)))


def test_index_out_of_range_int():
    with pytest.raises(
        IndexError, match=r"index: expected indices in \[-3, 3\) for 3 cameras, got 3"
    ):
        _cameras(3)[3]


def test_index_out_of_range_list():
    with pytest.raises(
        IndexError, match=r"index: expected indices in \[-3, 3\) for 3 cameras, got -4"
    ):
        _cameras(3)[[0, -4]]


def test_index_out_of_range_long_tensor():
    with pytest.raises(IndexError, match="for 3 cameras, got 7"):
        _cameras(3)[torch.tensor([1, 7])]


def test_index_bool_mask_wrong_length():
    with pytest.raises(
        ValueError, match=r"index: expected a Bool mask of shape \(3,\), got shape \(2,\)"
    ):
        _cameras(3)[torch.tensor([True, False])]


def test_index_wrong_type():
    with pytest.raises(
        ValueError, match=r"Invalid index type, expected int, List.int. or Bool/LongTensor"
    ):
        _cameras(3)[1.5]
    with pytest.raises(ValueError, match="Invalid index type"):
        _cameras(3)[0:2]
    with pytest.raises(IndexError, match="Index True is out of bounds for select cameras"):
        _cameras(3)[True]


def test_look_at_wrong_vector_shape():
    with pytest.raises(
        ValueError, match=r"at: expected shape \(3,\) or \(N, 3\), got shape \(1, 2\)"
    ):
        look_at_view_transform(at=((0.0, 0.0),))


def test_look_at_batch_sizes_do_not_broadcast():
    with pytest.raises(
        ValueError,
        match="batch sizes do not broadcast: expected each to be 1 or 3, got dist=2, elev=3",
    ):
        look_at_view_transform(dist=[1.0, 2.0], elev=[0.0, 1.0, 2.0])


def test_look_at_bad_scalar():
    with pytest.raises(
        TypeError, match="azim: expected a float, a list of floats or a tensor, got str"
    ):
        look_at_view_transform(azim="north")


def test_look_at_bad_vector_type():
    with pytest.raises(
        ValueError, match=r"up: expected a tensor of shape \(3,\) or \(N, 3\), got str"
    ):
        look_at_rotation(torch.ones(1, 3), up="y")


def test_spherical_degrees_not_bool():
    with pytest.raises(ValueError, match="degrees: expected a bool"):
        camera_position_from_spherical_angles(1.0, 0.0, 0.0, degrees=2)
    radians = camera_position_from_spherical_angles(1.0, 0.5, 0.0, degrees=0)
    assert_close(radians, camera_position_from_spherical_angles(1.0, 0.5, 0.0, degrees=False))


def test_world_to_view_batch_mismatch():
    with pytest.raises(
        ValueError, match="batch sizes do not broadcast: expected each to be 1 or 3, got R=2, T=3"
    ):
        get_world_to_view_transform(R=torch.eye(3).repeat(2, 1, 1), T=torch.zeros(3, 3))


# =============================================================================================
# PerspectiveCameras, OrthographicCameras, FoVOrthographicCameras, screen <-> NDC
# =============================================================================================

KINDS = ("fov", "fov_ortho", "persp_ndc", "persp_screen", "ortho_ndc", "ortho_screen")


def _extrinsics(n, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    R = so3_exp_map(0.4 * torch.randn(n, 3, generator=g, dtype=torch.float64))
    T = 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    T[:, 2] += 5.0
    return R.to(dtype), T.to(dtype)


def _make(kind, n=2, dtype=torch.float64, device="cpu", seed=0, image_size=(12, 16)):
    """A batch of ``n`` cameras of one kind looking roughly at the world origin."""
    R, T = _extrinsics(n, dtype, seed)
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


def _ndc_xy(cams, n_points=9, seed=1):
    """NDC ``x, y`` inside the view (``(N, P, 2)``) and view depths in ``[3, 7]``."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(len(cams), n_points, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8).to(
        cams.dtype
    )
    depth = (3 + 4 * torch.rand(len(cams), n_points, 1, generator=g, dtype=torch.float64)).to(
        cams.dtype
    )
    return xy, depth


# --------------------------------------------------------------------------- smoke


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_new_kinds_smoke(kind, dtype, device):
    cams = _make(kind, 3, dtype, device)
    assert len(cams) == 3 and cams.dtype == dtype and cams.device.type == device
    assert isinstance(cams, CamerasBase)
    assert cams.is_perspective() == (kind in ("fov", "persp_ndc", "persp_screen"))
    assert cams.in_ndc() == (not kind.endswith("screen"))
    points = torch.randn(3, 5, 3, dtype=dtype, device=device)
    for out in (
        cams.transform_points(points),
        cams.transform_points_ndc(points),
        cams.transform_points_screen(points, image_size=(12, 16)),
        cams.unproject_points(points + 4, world_coordinates=True, from_ndc=True),
        cams.unproject_points(points + 4, world_coordinates=False),
    ):
        assert out.shape == (3, 5, 3) and out.dtype == dtype and out.device.type == device
    for matrix in (
        cams.get_projection_transform().get_matrix(),
        cams.get_full_projection_transform().get_matrix(),
        cams.get_ndc_camera_transform().get_matrix(),
    ):
        assert matrix.shape[-2:] == (4, 4) and matrix.dtype == dtype
    assert cams.get_camera_center().shape == (3, 3)


def test_perspective_defaults_match_pytorch3d():
    cams = PerspectiveCameras()
    assert len(cams) == 1 and cams.dtype == torch.float32 and cams.in_ndc()
    assert cams.focal_length.tolist() == [[1.0, 1.0]]
    assert cams.principal_point.tolist() == [[0.0, 0.0]]
    assert cams.image_size is None and cams.get_image_size() is None and cams.K is None
    assert cams.get_znear() is None
    matrix = cams.get_projection_transform().get_matrix()[0]
    expected = torch.tensor(
        [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0], [0, 0, 1.0, 0]]
    )  # K^T of [[f, 0, px, 0], [0, f, py, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert torch.equal(matrix, expected)


def test_orthographic_defaults_match_pytorch3d():
    cams = OrthographicCameras()
    assert torch.equal(cams.get_projection_transform().get_matrix()[0], torch.eye(4))
    fov = FoVOrthographicCameras()
    assert fov.znear.tolist() == [1.0] and fov.zfar.tolist() == [100.0]
    assert fov.max_x.tolist() == [1.0] and fov.min_y.tolist() == [-1.0]
    assert fov.scale_xyz.tolist() == [[1.0, 1.0, 1.0]]
    assert not fov.is_perspective() and fov.in_ndc()


def test_focal_length_forms():
    for value, want in (
        (2.0, [[2.0, 2.0]]),
        ([2.0, 3.0], [[2.0, 2.0], [3.0, 3.0]]),
        (((2.0,),), [[2.0, 2.0]]),
        (((2.0, 3.0),), [[2.0, 3.0]]),
        (torch.tensor(2.0), [[2.0, 2.0]]),
        (torch.tensor([[2.0], [4.0]]), [[2.0, 2.0], [4.0, 4.0]]),
        (torch.tensor([[2, 3]]), [[2.0, 3.0]]),
    ):
        assert PerspectiveCameras(focal_length=value).focal_length.tolist() == want, value


def test_image_size_is_dtype_neutral_and_one_pair_means_every_camera():
    R, T = _extrinsics(3, torch.float64, 0)
    cams = PerspectiveCameras(
        R=R, T=T, in_ndc=False, image_size=torch.tensor([10, 20]), focal_length=5.0
    )
    assert cams.dtype == torch.float64 and len(cams) == 3
    assert cams.image_size.tolist() == [[10.0, 20.0]] * 3
    assert cams.image_size.dtype == torch.float64
    float_size = PerspectiveCameras(image_size=torch.tensor([[10.0, 20.0]], dtype=torch.float64))
    assert float_size.dtype == torch.float32


@pytest.mark.parametrize("kind", KINDS)
def test_getitem_clone_to_keep_every_field(kind):
    cams = _make(kind, 3)
    for sub, rows in ((cams[[2, 0]], [2, 0]), (cams[1], [1]), (cams.clone(), [0, 1, 2])):
        assert type(sub) is type(cams) and sub.in_ndc() == cams.in_ndc() and len(sub) == len(rows)
        for name in cams._FIELDS:
            value = getattr(cams, name)
            if value is None:
                assert getattr(sub, name) is None
            else:
                assert torch.equal(getattr(sub, name), value[rows]), name
        points = torch.randn(len(rows), 4, 3, dtype=torch.float64)
        assert_close(
            sub.transform_points_ndc(points),
            cams.transform_points_ndc(
                torch.zeros(3, 4, 3, dtype=torch.float64).index_copy(0, torch.tensor(rows), points)
            )[rows],
        )
    assert cams.to("cpu") is cams


def test_getitem_keeps_focal_length_gradients():
    focal = torch.tensor([[2.0], [3.0]], requires_grad=True)
    cams = PerspectiveCameras(focal_length=focal, T=torch.tensor([[0.0, 0.0, 5.0]]))
    cams[1].transform_points(torch.randn(4, 3)).sum().backward()
    assert focal.grad[0] == 0 and focal.grad[1] != 0


@needs_cuda
@pytest.mark.parametrize("kind", KINDS)
def test_new_kinds_cuda_round_trip(kind):
    cams = _make(kind, 2, torch.float32)
    points = torch.randn(2, 5, 3)
    expected = cams.transform_points_ndc(points)
    moved = cams.clone().cuda()
    assert moved.R.is_cuda and all(v.is_cuda for v in moved._tensor_fields().values())
    assert_close(moved.transform_points_ndc(points.cuda()).cpu(), expected)


# --------------------------------------------------------------------------- analytic cases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["persp_ndc", "ortho_ndc", "persp_screen", "ortho_screen"])
def test_point_on_the_optical_axis_lands_on_the_principal_point(kind, dtype):
    cams = _make(kind, 2, dtype)
    on_axis = torch.tensor([[0.0, 0.0, 4.0]], dtype=dtype)  # view space
    world = cams.get_world_to_view_transform().inverse().transform_points(on_axis)  # (2, 1, 3)
    projected = cams.transform_points(world)[:, 0, :2]
    assert_close(projected, cams.principal_point)
    assert_close(cams.get_principal_point(), cams.principal_point)
    if not cams.in_ndc():  # in image coordinates too
        screen = cams.transform_points_screen(world)[:, 0, :2]
        assert_close(screen, cams.principal_point)


@pytest.mark.parametrize("dtype", DTYPES)
def test_perspective_projection_formula_and_focal_scaling(dtype):
    view = torch.tensor([[[0.4, -0.3, 2.0], [-1.0, 0.5, 4.0]]], dtype=dtype)
    cams = PerspectiveCameras(focal_length=((2.0, 3.0),), principal_point=((0.1, 0.2),))
    cams = PerspectiveCameras(
        focal_length=torch.tensor([[2.0, 3.0]], dtype=dtype),
        principal_point=torch.tensor([[0.1, 0.2]], dtype=dtype),
    )
    out = cams.transform_points(view)
    x, y, z = view.unbind(-1)
    expected = torch.stack((2.0 * x / z + 0.1, 3.0 * y / z + 0.2, 1 / z), dim=-1)
    assert_close(out, expected)
    doubled = cams.transform_points(view, focal_length=torch.tensor([[4.0, 6.0]], dtype=dtype))
    assert_close(doubled[..., :2] - cams.principal_point, 2 * (out[..., :2] - cams.principal_point))


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthographic_projection_formula_and_depth_independence(dtype):
    cams = OrthographicCameras(
        focal_length=torch.tensor([[0.5, 0.25]], dtype=dtype), principal_point=((0.1, -0.1),)
    )
    xy = torch.tensor([0.8, -0.4], dtype=dtype)
    view = torch.stack([torch.cat((xy, torch.tensor([z], dtype=dtype))) for z in (0.5, 2.0, 9.0)])
    out = cams.transform_points(view)
    assert_close(out[:, :2], torch.tensor([[0.5, -0.2]], dtype=dtype).expand(3, 2))
    assert_close(out[:, 2], view[:, 2])


@pytest.mark.parametrize("kind", ["fov_ortho", "ortho_ndc", "ortho_screen"])
def test_orthographic_kinds_ignore_depth(kind):
    cams = _make(kind, 2)
    xy, _ = _ndc_xy(cams)
    near = cams.unproject_points(
        torch.cat((xy, torch.full_like(xy[..., :1], 2.0)), -1), from_ndc=True
    )
    far = cams.unproject_points(
        torch.cat((xy, torch.full_like(xy[..., :1], 7.0)), -1), from_ndc=True
    )
    assert_close(cams.transform_points_ndc(near)[..., :2], cams.transform_points_ndc(far)[..., :2])
    direction = cams.get_world_to_view_transform().get_matrix()[:, :3, 2]  # view z in world
    step = far - near  # (N, P, 3): parallel rays, all along the view axis
    assert_close(step, 5.0 * direction[:, None, :].expand_as(step))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fov_orthographic_maps_the_box_to_ndc(dtype):
    cams = FoVOrthographicCameras(
        znear=0.5,
        zfar=4.5,
        min_x=-1.0,
        max_x=3.0,
        min_y=-2.0,
        max_y=0.0,
        T=torch.zeros(1, 3, dtype=dtype),
    )
    corners = torch.tensor([[-1.0, -2.0, 0.5], [3.0, 0.0, 4.5], [1.0, -1.0, 2.5]], dtype=dtype)
    expected = torch.tensor([[-1.0, -1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.5]], dtype=dtype)
    assert_close(cams.transform_points(corners), expected)
    scaled = cams.transform_points(corners, scale_xyz=((2.0, 1.0, 1.0),))
    # sx scales x, not the offset
    assert_close(scaled[:, 0], torch.tensor([-1.5, 2.5, 0.5], dtype=dtype))
    K = cams.compute_projection_matrix(0.5, 4.5, 3.0, -1.0, 0.0, -2.0, ((1.0, 1.0, 1.0),))
    assert_close(K.transpose(1, 2), cams.get_projection_transform().get_matrix())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("height", "width"), [(10, 10), (10, 20), (30, 12)])
def test_screen_ndc_conversions(height, width, dtype):
    cams = PerspectiveCameras(R=torch.eye(3, dtype=dtype)[None])
    s = min(height, width) / 2
    to_screen = get_ndc_to_screen_transform(cams, with_xyflip=True, image_size=(height, width))
    ndc = torch.tensor(
        [[0.0, 0.0, 0.3], [1.0, 1.0, 0.5], [width / (2 * s), height / (2 * s), 1.0]], dtype=dtype
    )
    # NDC +X left / +Y up -> image +X right / +Y down, origin top left; the short side spans [-1, 1]
    expected = torch.tensor(
        [[width / 2, height / 2, 0.3], [width / 2 - s, height / 2 - s, 0.5], [0.0, 0.0, 1.0]],
        dtype=dtype,
    )
    assert_close(to_screen.transform_points(ndc), expected)
    back = get_screen_to_ndc_transform(cams, with_xyflip=True, image_size=(height, width))
    assert_close(back.transform_points(expected), ndc)
    unflipped = get_ndc_to_screen_transform(cams, image_size=[[height, width]])
    assert_close(unflipped.transform_points(ndc)[:, :2], -expected[:, :2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("height", "width"), [(16, 16), (12, 20), (24, 10)])
@pytest.mark.parametrize("orthographic", [False, True])
def test_screen_camera_equals_its_ndc_counterpart(height, width, orthographic, dtype):
    """Pixels -> NDC: ``f_ndc = f / s`` and ``p_ndc = (size / 2 - p) / s``, ``s = min(H, W) / 2``."""
    kind = OrthographicCameras if orthographic else PerspectiveCameras
    R, T = _extrinsics(2, dtype, 3)
    s = min(height, width) / 2
    focal = torch.tensor([[14.0, 11.0], [9.0, 9.0]], dtype=dtype)
    principal = torch.tensor([[width / 2 + 1.5, height / 2 - 2.0], [3.0, 4.0]], dtype=dtype)
    screen = kind(
        focal_length=focal,
        principal_point=principal,
        R=R,
        T=T,
        in_ndc=False,
        image_size=(height, width),
    )
    size_xy = torch.tensor([width, height], dtype=dtype)
    ndc = kind(focal_length=focal / s, principal_point=(size_xy / 2 - principal) / s, R=R, T=T)
    points = torch.randn(2, 7, 3, dtype=dtype)
    assert_close(screen.transform_points_ndc(points), ndc.transform_points(points))
    assert_close(
        screen.transform_points_screen(points),
        ndc.transform_points_screen(points, image_size=(height, width)),
    )
    xy, depth = _ndc_xy(ndc)
    xy_depth = torch.cat((xy, depth), -1)
    assert_close(screen.unproject_points(xy_depth, from_ndc=True), ndc.unproject_points(xy_depth))


def test_screen_points_of_a_fov_camera_need_an_image_size():
    cams = _make("fov", 1)
    points = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=torch.float64)
    screen = cams.transform_points_screen(points, image_size=(10, 20))
    ndc = cams.transform_points(points)
    assert_close(screen[..., :2], torch.stack((10 - 5 * ndc[..., 0], 5 - 5 * ndc[..., 1]), -1))
    with pytest.raises(ValueError, match="image_size: expected the image \\(height, width\\)"):
        cams.transform_points_screen(points)


def test_principal_point_read_from_K():
    K = (
        PerspectiveCameras(focal_length=3.0, principal_point=((0.25, -0.5),))
        .get_projection_transform()
        .get_matrix()
        .transpose(1, 2)
    )
    cams = PerspectiveCameras(K=K)
    assert_close(cams.get_principal_point(), torch.tensor([[0.25, -0.5]]))
    ortho = OrthographicCameras(
        K=torch.eye(4)[None]
        .clone()
        .index_put_((torch.tensor([0]), torch.tensor([0]), torch.tensor([3])), torch.tensor([0.7]))
    )
    assert_close(ortho.get_principal_point(), torch.tensor([[0.7, 0.0]]))


def test_projection_kwargs_override_fields():
    cams = PerspectiveCameras(focal_length=2.0)
    default = cams.get_projection_transform().get_matrix()
    other = cams.get_projection_transform(
        focal_length=4.0, principal_point=((0.5, 0.5),)
    ).get_matrix()
    assert other[0, 0, 0] == 4.0 and other[0, 2, 0] == 0.5 and default[0, 0, 0] == 2.0
    assert cams.focal_length.tolist() == [[2.0, 2.0]]  # unlike R and T, not stored


# --------------------------------------------------------------------------- properties


@st.composite
def any_camera(draw):
    kind = draw(st.sampled_from(KINDS))
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    seed = draw(st.integers(0, 2**16))
    return kind, n, (h, w), seed


@given(setup=any_camera(), world=st.booleans())
def test_unproject_inverts_transform_points_for_every_kind(setup, world):
    kind, n, size, seed = setup
    cams = _make(kind, n, seed=seed, image_size=size)
    xy, depth = _ndc_xy(cams, seed=seed)
    xy_depth = torch.cat((xy, depth), dim=-1)
    points = cams.unproject_points(xy_depth, world_coordinates=world, from_ndc=True)
    view = points if not world else cams.get_world_to_view_transform().transform_points(points)
    assert_close(view[..., 2:], depth, atol=1e-9)
    to_ndc = cams.get_projection_transform().compose(cams.get_ndc_camera_transform())
    if world:
        to_ndc = cams.get_world_to_view_transform().compose(to_ndc)
    assert_close(to_ndc.transform_points(points)[..., :2], xy, atol=1e-9)
    # in the camera's own space (screen units for screen cameras), without from_ndc
    native = (
        cams.transform_points(points)
        if world
        else cams.get_projection_transform().transform_points(points)
    )
    again = cams.unproject_points(torch.cat((native[..., :2], depth), -1), world_coordinates=world)
    assert_close(again, points, atol=1e-8)


@given(setup=any_camera(), pick=st.lists(st.integers(0, 2), min_size=1, max_size=3))
def test_indexing_commutes_with_projecting_for_every_kind(setup, pick):
    kind, _, size, seed = setup
    cams = _make(kind, 3, seed=seed, image_size=size)
    points = torch.randn(
        3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    assert_close(
        cams[pick].transform_points_ndc(points[pick]), cams.transform_points_ndc(points)[pick]
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("width", "height"), [(8, 8), (10, 6), (5, 9)])
def test_raysampler_rays_project_back_to_their_pixels(kind, width, height):
    from voxrender import MonteCarloRaysampler, NDCMultinomialRaysampler

    cams = _make(kind, 2, torch.float32, image_size=(height, width))
    for sampler in (
        NDCMultinomialRaysampler(
            image_width=width, image_height=height, n_pts_per_ray=4, min_depth=2.0, max_depth=6.0
        ),
        MonteCarloRaysampler(
            -0.9, 0.9, -0.8, 0.8, n_rays_per_image=11, n_pts_per_ray=3, min_depth=2.0, max_depth=6.0
        ),
    ):
        bundle = sampler(cams)
        points = (
            bundle.origins[..., None, :]
            + bundle.directions[..., None, :] * bundle.lengths[..., None]
        )
        flat = points.reshape(2, -1, 3)
        xy = cams.transform_points_ndc(flat)[..., :2].reshape(*points.shape[:-1], 2)
        assert_close(xy, bundle.xys[..., None, :].expand_as(xy), atol=1e-5)
        depth = cams.get_world_to_view_transform().transform_points(flat)[..., 2]
        assert_close(depth.reshape(bundle.lengths.shape), bundle.lengths, atol=1e-5)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("orthographic", [False, True])
@pytest.mark.parametrize("in_ndc", [True, False])
def test_gradcheck_focal_R_T(orthographic, in_ndc):
    kind = OrthographicCameras if orthographic else PerspectiveCameras
    d = torch.float64
    focal = torch.tensor([[2.0, 2.5], [1.5, 1.0]], dtype=d, requires_grad=True)
    principal = torch.tensor([[0.1, -0.2]], dtype=d, requires_grad=True)
    log_rot = torch.tensor([[0.1, 0.2, -0.3], [0.0, -0.4, 0.2]], dtype=d, requires_grad=True)
    T = torch.tensor([[0.1, 0.0, 5.0], [0.0, -0.2, 4.0]], dtype=d, requires_grad=True)
    points = torch.randn(2, 4, 3, dtype=d, requires_grad=True)
    xy_depth = torch.cat((torch.rand(2, 4, 2, dtype=d) - 0.5, torch.rand(2, 4, 1, dtype=d) + 3), -1)
    xy_depth.requires_grad_(True)
    extra = {} if in_ndc else {"in_ndc": False, "image_size": (9, 13)}

    def fn(focal, principal, log_rot, T, points, xy_depth):
        cams = kind(
            focal_length=focal, principal_point=principal, R=so3_exp_map(log_rot), T=T, **extra
        )
        return (
            cams.transform_points(points),
            cams.transform_points_ndc(points),
            cams.unproject_points(xy_depth, from_ndc=True),
        )

    assert torch.autograd.gradcheck(fn, (focal, principal, log_rot, T, points, xy_depth))


def test_gradcheck_fov_orthographic_fields():
    d = torch.float64
    args = [
        torch.tensor([0.5], dtype=d),  # znear
        torch.tensor([9.0], dtype=d),  # zfar
        torch.tensor([1.5], dtype=d),  # max_x
        torch.tensor([-1.0], dtype=d),  # min_x
        torch.tensor([[1.1, 0.9, 1.2]], dtype=d),  # scale_xyz
        torch.tensor([[0.2, 0.1, 3.0]], dtype=d),  # T
        torch.randn(1, 5, 3, dtype=d),  # points
    ]
    for a in args:
        a.requires_grad_(True)
    xy_depth = torch.rand(1, 5, 3, dtype=d) + torch.tensor([-0.5, -0.5, 4.0], dtype=d)

    def fn(znear, zfar, max_x, min_x, scale_xyz, T, points):
        cams = FoVOrthographicCameras(
            znear=znear, zfar=zfar, max_x=max_x, min_x=min_x, scale_xyz=scale_xyz, T=T
        )
        return cams.transform_points(points), cams.unproject_points(xy_depth)

    assert torch.autograd.gradcheck(fn, tuple(args))


def test_gradcheck_screen_ndc_transform_image_size():
    cams = PerspectiveCameras(R=torch.eye(3, dtype=torch.float64)[None])
    size = torch.tensor([[12.0, 18.0]], dtype=torch.float64, requires_grad=True)
    points = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)

    def fn(size, points):
        return get_ndc_to_screen_transform(cams, True, size).transform_points(points)

    assert torch.autograd.gradcheck(fn, (size, points))


# --------------------------------------------------------------------------- bad input


def test_focal_length_zero_projects_but_does_not_unproject():
    cameras = PerspectiveCameras(focal_length=[1.0, 0.0])
    assert torch.isfinite(cameras.transform_points(torch.ones(1, 3) + 1)).all()
    with pytest.raises(ValueError, match="focal_length: expected non-zero values to unproject"):
        cameras.unproject_points(torch.ones(2, 1, 3))


def test_focal_length_zero_override():
    with pytest.raises(torch.linalg.LinAlgError, match="focal_length: expected non-zero values"):
        OrthographicCameras().unproject_points(torch.ones(1, 3), focal_length=0.0)


def test_focal_length_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"focal_length: expected shape \(\), \(N,\), \(N, 1\) or \(N, 2\), got shape \(2, 3\)",
    ):
        PerspectiveCameras(focal_length=torch.ones(2, 3))


def test_focal_length_not_a_number():
    with pytest.raises(
        TypeError, match=r"focal_length: expected a number or a tensor of shape .*, got str"
    ):
        PerspectiveCameras(focal_length="wide")


def test_focal_length_bool():
    with pytest.raises(
        TypeError, match=r"focal_length: expected a number or a tensor .*, got bool True"
    ):
        OrthographicCameras(focal_length=True)


def test_focal_length_bool_tensor():
    with pytest.raises(
        TypeError, match=r"focal_length: expected a real tensor, got dtype torch.bool"
    ):
        PerspectiveCameras(focal_length=torch.tensor([True]))


def test_principal_point_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"principal_point: expected shape \(2,\), \(N, 2\) or \(N, 2, 1\), got shape \(1, 3\)",
    ):
        PerspectiveCameras(principal_point=((0.0, 0.0, 0.0),))


def test_principal_point_n_2_1():
    cameras = PerspectiveCameras(principal_point=torch.tensor([[[0.5], [0.25]]]))
    assert_close(cameras.principal_point, torch.tensor([[0.5, 0.25]]))


def test_principal_point_ragged():
    with pytest.raises(TypeError, match="principal_point: expected a pair or a tensor of shape"):
        PerspectiveCameras(principal_point=((0.0, 0.0), (1.0,)))


def test_image_size_below_one():
    with pytest.raises(
        ValueError, match=r"image_size: expected \(height, width\) values >= 1, got 0"
    ):
        PerspectiveCameras(in_ndc=False, image_size=((0, 10),))


def test_image_size_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"image_size: expected shape \(2,\), \(N, 2\) or \(N, 2, 1\), got shape \(3,\)",
    ):
        OrthographicCameras(image_size=(10, 20, 30))


def test_in_ndc_as_0_or_1():
    assert PerspectiveCameras(in_ndc=0).in_ndc() is False
    with pytest.raises(TypeError, match=r"in_ndc: expected a bool \(or 0 / 1\), got int 2"):
        PerspectiveCameras(in_ndc=2)


def test_screen_camera_without_image_size():
    cams = PerspectiveCameras(focal_length=10.0, principal_point=((5.0, 5.0),), in_ndc=False)
    cams.transform_points(torch.ones(1, 3))  # screen-space projection needs no image size
    with pytest.raises(
        ValueError, match=r"image_size: expected the image \(height, width\).*got None"
    ):
        cams.unproject_points(torch.ones(1, 3), from_ndc=True)


def test_batch_sizes_do_not_broadcast_for_focal_cameras():
    with pytest.raises(
        ValueError,
        match=r"batch sizes do not broadcast: expected each to be 1 or 3, got .*focal_length=2, principal_point=3",
    ):
        PerspectiveCameras(focal_length=[1.0, 2.0], principal_point=torch.zeros(3, 2))


def test_K_wrong_shape_for_perspective():
    with pytest.raises(ValueError, match=r"K: expected shape \(N, 4, 4\), got shape \(3, 3\)"):
        PerspectiveCameras(K=torch.eye(3))


def test_unproject_from_ndc_not_bool():
    with pytest.raises(TypeError, match=r"from_ndc: expected a bool \(or 0 / 1\), got str 'yes'"):
        PerspectiveCameras().unproject_points(torch.ones(1, 3), from_ndc="yes")


def test_unproject_xy_depth_of_another_float_dtype_promotes():
    out = OrthographicCameras().unproject_points(torch.ones(1, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_fov_orthographic_zfar_equal_znear_refused_where_used():
    cameras = FoVOrthographicCameras(znear=2.0, zfar=2.0)
    with pytest.raises(ValueError, match="zfar: expected values != znear, got 2"):
        cameras.get_projection_transform()


def test_fov_orthographic_reversed_box_is_computed_like_pytorch3d():
    matrix = FoVOrthographicCameras(max_x=-1.0, min_x=1.0).get_projection_transform().get_matrix()
    assert matrix[0, 0, 0] == -1.0


def test_fov_orthographic_max_y_equal_min_y_override():
    with pytest.raises(ValueError, match="max_y: expected values != min_y, got -1"):
        FoVOrthographicCameras().get_projection_transform(max_y=-1.0)


def test_fov_orthographic_scale_zero_projects():
    cameras = FoVOrthographicCameras(scale_xyz=((1.0, 0.0, 1.0),))
    assert cameras.transform_points(torch.ones(1, 3))[0, 1] == 0.0


def test_fov_orthographic_scale_wrong_shape():
    with pytest.raises(
        ValueError, match=r"scale_xyz: expected shape \(3,\) or \(N, 3\), got shape \(1, 2\)"
    ):
        FoVOrthographicCameras(scale_xyz=((1.0, 1.0),))


def test_fov_orthographic_scaled_depth_not_bool():
    with pytest.raises(
        ValueError, match=r"scaled_depth_input: expected a bool .or 0 / 1., got NoneType"
    ):
        FoVOrthographicCameras().unproject_points(torch.ones(1, 3), scaled_depth_input=None)


def test_ndc_to_screen_image_size_batch_mismatch():
    with pytest.raises(
        ValueError, match=r"image_size: expected a batch size of 1 or 2 \(len\(cameras\)\), got 3"
    ):
        get_ndc_to_screen_transform(_make("fov", 2), image_size=[[4, 4]] * 3)


def test_ndc_to_screen_flip_as_0_or_1():
    cameras = _make("fov", 1)
    flipped = get_screen_to_ndc_transform(cameras, with_xyflip=1, image_size=(4, 4))
    expected = get_screen_to_ndc_transform(cameras, with_xyflip=True, image_size=(4, 4))
    assert_close(flipped.get_matrix(), expected.get_matrix())


def test_ndc_to_screen_needs_cameras():
    with pytest.raises(TypeError, match="cameras: expected a CamerasBase, got str"):
        get_ndc_to_screen_transform("camera", image_size=(4, 4))

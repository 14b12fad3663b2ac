"""CamerasBase on every camera kind (:mod:`voxrender.cameras.base`).

Batch and fields, extrinsics, generic projections and unprojections, indexing, screen <-> NDC
maps.
"""

from __future__ import annotations

import pytest
import torch
from camera_cases import (
    KINDS,
    any_camera,
    camera_setups,
    fov_cameras,
    make_camera,
    ndc_xy,
    setup_cameras,
)
from helpers import DEVICES, DTYPES, assert_close, needs_cuda
from hypothesis import given
from hypothesis import strategies as st

from voxrender import (
    CamerasBase,
    FoVPerspectiveCameras,
    so3_exp_map,
)
from voxrender.cameras import (
    OrthographicCameras,
    PerspectiveCameras,
    get_ndc_to_screen_transform,
    get_screen_to_ndc_transform,
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_attributes_dtype_device(device, dtype):
    cams = fov_cameras(3, dtype, device, fov=[50.0, 60.0, 70.0])
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
    cams = fov_cameras(3)
    p = torch.randn(5, 3)
    assert cams.transform_points(p).shape == (3, 5, 3)
    assert cams.unproject_points(torch.rand(5, 3) + 1).shape == (3, 5, 3)
    one = fov_cameras(1)
    assert one.transform_points(p).shape == (5, 3)
    assert one.unproject_points(p + torch.tensor([0.0, 0.0, 3.0])).shape == (5, 3)


@pytest.mark.parametrize(
    "index",
    [1, -1, [2, 0], torch.tensor([2, 0]), torch.tensor([True, False, True])],
    ids=["int", "negative", "list", "long", "bool"],
)
def test_getitem_selects_cameras(index):
    cams = fov_cameras(3, fov=[40.0, 50.0, 60.0], znear=[0.5, 1.0, 2.0])
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
    cams = fov_cameras(2)
    copy = cams.clone()
    assert (
        copy is not cams and torch.equal(copy.R, cams.R) and copy.R.data_ptr() != cams.R.data_ptr()
    )
    assert cams.to("cpu") is cams and cams.cpu() is cams


@needs_cuda
def test_cuda_round_trip():
    cams = fov_cameras(2)
    points = torch.randn(2, 5, 3)
    expected = cams.transform_points(points)
    moved = cams.clone().cuda()
    assert moved.device.type == "cuda" and moved.R.is_cuda and moved.fov.is_cuda
    assert_close(moved.transform_points(points.cuda()).cpu(), expected)
    on_gpu = FoVPerspectiveCameras(R=cams.R, T=cams.T, device="cuda")
    assert on_gpu.R.is_cuda


def test_camera_center_maps_to_view_origin():
    cams = fov_cameras(4)
    center = cams.get_camera_center()
    view = cams.get_world_to_view_transform().transform_points(center[:, None])
    assert_close(view, torch.zeros(4, 1, 3), atol=1e-5)


def test_kwargs_R_T_replace_extrinsics_like_pytorch3d():
    cams = fov_cameras(2)
    R, T = torch.eye(3)[None], torch.tensor([[1.0, 2.0, 3.0]])
    center = cams.get_camera_center(R=R, T=T)
    assert_close(center, -T.expand(2, 3))
    assert torch.equal(cams.R, R.expand(2, 3, 3)) and torch.equal(cams.T, T.expand(2, 3))


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


@given(setup=camera_setups())
def test_unproject_inverts_transform_points(setup):
    cams = setup_cameras(setup)
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


def test_R_wrong_rank():
    with pytest.raises(ValueError, match=r"R: expected shape \(N, 3, 3\), got shape \(3, 3\)"):
        FoVPerspectiveCameras(R=torch.eye(3))


def test_R_wrong_trailing_size():
    with pytest.raises(ValueError, match=r"R: expected shape \(N, 3, 3\), got shape \(2, 3, 4\)"):
        FoVPerspectiveCameras(R=torch.zeros(2, 3, 4))


def test_T_wrong_shape():
    with pytest.raises(ValueError, match=r"T: expected shape \(N, 3\), got shape \(2, 4\)"):
        FoVPerspectiveCameras(T=torch.zeros(2, 4))


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


def test_override_batch_size():
    with pytest.raises(
        ValueError, match=r"fov: expected a batch size of 1 or 2 \(len\(cameras\)\), got 3"
    ):
        fov_cameras(2).get_projection_transform(fov=[30.0, 40.0, 50.0])


def test_points_wrong_trailing_size():
    with pytest.raises(
        ValueError, match=r"points: expected shape \(P, 3\) or \(N, P, 3\), got shape \(2, 5, 2\)"
    ):
        fov_cameras(2).transform_points(torch.zeros(2, 5, 2))


def test_points_of_another_float_dtype_promote():
    out = fov_cameras(2).transform_points(torch.zeros(2, 5, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_xy_depth_wrong_shape():
    with pytest.raises(
        ValueError, match=r"xy_depth: expected shape \(P, 3\) or \(N, P, 3\), got shape \(2, 5, 4\)"
    ):
        fov_cameras(2).unproject_points(torch.ones(2, 5, 4))


def test_xy_depth_batch_does_not_broadcast():
    with pytest.raises(
        ValueError,
        match=r"batch sizes do not broadcast: .*xy_depth\.shape\[0\]=3, len\(cameras\)=2",
    ):
        fov_cameras(2).unproject_points(torch.ones(3, 5, 3))


def test_xy_depth_integer_is_cast():
    out = fov_cameras(2).unproject_points(torch.ones(2, 5, 3, dtype=torch.long))
    assert_close(out, fov_cameras(2).unproject_points(torch.ones(2, 5, 3)))


def test_index_out_of_range_int():
    with pytest.raises(
        IndexError, match=r"index: expected indices in \[-3, 3\) for 3 cameras, got 3"
    ):
        fov_cameras(3)[3]


def test_index_out_of_range_list():
    with pytest.raises(
        IndexError, match=r"index: expected indices in \[-3, 3\) for 3 cameras, got -4"
    ):
        fov_cameras(3)[[0, -4]]


def test_index_out_of_range_long_tensor():
    with pytest.raises(IndexError, match="for 3 cameras, got 7"):
        fov_cameras(3)[torch.tensor([1, 7])]


def test_index_bool_mask_wrong_length():
    with pytest.raises(
        ValueError, match=r"index: expected a Bool mask of shape \(3,\), got shape \(2,\)"
    ):
        fov_cameras(3)[torch.tensor([True, False])]


def test_index_wrong_type():
    with pytest.raises(
        ValueError, match=r"Invalid index type, expected int, List.int. or Bool/LongTensor"
    ):
        fov_cameras(3)[1.5]
    with pytest.raises(ValueError, match="Invalid index type"):
        fov_cameras(3)[0:2]
    with pytest.raises(IndexError, match="Index True is out of bounds for select cameras"):
        fov_cameras(3)[True]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_smoke(kind, dtype, device):
    cams = make_camera(kind, 3, dtype, device)
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


@pytest.mark.parametrize("kind", KINDS)
def test_getitem_clone_to_keep_every_field(kind):
    cams = make_camera(kind, 3)
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


@needs_cuda
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_cuda_round_trip(kind):
    cams = make_camera(kind, 2, torch.float32)
    points = torch.randn(2, 5, 3)
    expected = cams.transform_points_ndc(points)
    moved = cams.clone().cuda()
    assert moved.R.is_cuda and all(v.is_cuda for v in moved._tensor_fields().values())
    assert_close(moved.transform_points_ndc(points.cuda()).cpu(), expected)


@pytest.mark.parametrize("kind", ["fov_ortho", "ortho_ndc", "ortho_screen"])
def test_orthographic_kinds_ignore_depth(kind):
    cams = make_camera(kind, 2)
    xy, _ = ndc_xy(cams)
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


@given(setup=any_camera(), world=st.booleans())
def test_unproject_inverts_transform_points_for_every_kind(setup, world):
    kind, n, size, seed = setup
    cams = make_camera(kind, n, seed=seed, image_size=size)
    xy, depth = ndc_xy(cams, seed=seed)
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
    cams = make_camera(kind, 3, seed=seed, image_size=size)
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

    cams = make_camera(kind, 2, torch.float32, image_size=(height, width))
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


def test_gradcheck_screen_ndc_transform_image_size():
    cams = PerspectiveCameras(R=torch.eye(3, dtype=torch.float64)[None])
    size = torch.tensor([[12.0, 18.0]], dtype=torch.float64, requires_grad=True)
    points = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)

    def fn(size, points):
        return get_ndc_to_screen_transform(cams, True, size).transform_points(points)

    assert torch.autograd.gradcheck(fn, (size, points))


def test_unproject_from_ndc_not_bool():
    with pytest.raises(TypeError, match=r"from_ndc: expected a bool \(or 0 / 1\), got str 'yes'"):
        PerspectiveCameras().unproject_points(torch.ones(1, 3), from_ndc="yes")


def test_unproject_xy_depth_of_another_float_dtype_promotes():
    out = OrthographicCameras().unproject_points(torch.ones(1, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_ndc_to_screen_image_size_batch_mismatch():
    with pytest.raises(
        ValueError, match=r"image_size: expected a batch size of 1 or 2 \(len\(cameras\)\), got 3"
    ):
        get_ndc_to_screen_transform(make_camera("fov", 2), image_size=[[4, 4]] * 3)


def test_ndc_to_screen_flip_as_0_or_1():
    cameras = make_camera("fov", 1)
    flipped = get_screen_to_ndc_transform(cameras, with_xyflip=1, image_size=(4, 4))
    expected = get_screen_to_ndc_transform(cameras, with_xyflip=True, image_size=(4, 4))
    assert_close(flipped.get_matrix(), expected.get_matrix())


def test_ndc_to_screen_needs_cameras():
    with pytest.raises(TypeError, match="cameras: expected a CamerasBase, got str"):
        get_ndc_to_screen_transform("camera", image_size=(4, 4))

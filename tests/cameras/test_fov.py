"""FoVPerspectiveCameras and FoVOrthographicCameras (:mod:`voxrender.cameras.fov`).

FoVPerspectiveCameras also against the recorded PyTorch3D fixtures.
"""

from __future__ import annotations

import math

import pytest
import torch
from camera_cases import (
    fov_cameras,
    make_camera,
)
from helpers import DTYPES, assert_close, case_names, load_case, run_case

from voxrender import (
    CamerasBase,
    FoVPerspectiveCameras,
)
from voxrender.cameras import (
    FoVOrthographicCameras,
)


@pytest.mark.parametrize("name", case_names("cameras_fov"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_fixture_cameras_fov(name, dtype):
    _, inputs, outputs, _ = load_case(name)
    got, _ = run_case(name, {k: v.to(dtype) for k, v in inputs.items()})  # the recorder's calls
    assert set(got) == set(outputs)
    for key, value in got.items():
        assert value.dtype == dtype, key
        # float64 results are judged by the float32 tolerance: the fixtures are float32.
        assert_close(value, outputs[key], dtype=torch.float32, msg=f"{name}/{key}")


def test_defaults_match_pytorch3d():
    cams = FoVPerspectiveCameras()
    assert len(cams) == 1 and cams.dtype == torch.float32 and cams.device == torch.device("cpu")
    assert torch.equal(cams.R, torch.eye(3)[None]) and torch.equal(cams.T, torch.zeros(1, 3))
    assert cams.znear.tolist() == [1.0] and cams.zfar.tolist() == [100.0]
    assert cams.fov.tolist() == [60.0] and cams.aspect_ratio.tolist() == [1.0]
    assert cams.K is None and isinstance(cams, CamerasBase)


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


def test_kwargs_override_projection_fields():
    cams = fov_cameras(2)
    override = cams.get_projection_transform(fov=30.0, znear=0.2, zfar=4.0).get_matrix()
    fresh = (
        FoVPerspectiveCameras(fov=30.0, znear=0.2, zfar=4.0).get_projection_transform().get_matrix()
    )
    assert_close(override, fresh.expand(2, 4, 4))
    points = torch.randn(2, 3, 3)
    assert_close(
        cams.transform_points(points, fov=30.0),
        fov_cameras(2, fov=30.0).transform_points(points),
    )


def test_K_replaces_fov_matrix():
    cams = fov_cameras(2, fov=40.0, znear=0.3, zfar=9.0)
    K = cams.compute_projection_matrix(0.3, 9.0, 40.0, 1.0, True)
    with_K = FoVPerspectiveCameras(R=cams.R, T=cams.T, K=K, fov=90.0)
    assert K.shape == (2, 4, 4)  # scalar fields broadcast to len(cameras), like PyTorch3D
    assert_close(with_K.get_projection_transform().get_matrix(), K.transpose(1, 2))
    points = torch.randn(2, 6, 3)
    assert_close(with_K.transform_points(points), cams.transform_points(points))
    xy_depth = torch.cat((torch.rand(2, 6, 2) - 0.5, torch.rand(2, 6, 1) + 1), dim=-1)
    assert_close(with_K.unproject_points(xy_depth), cams.unproject_points(xy_depth), atol=1e-5)


def test_from_ndc_is_accepted_and_ignored():
    cams = fov_cameras(2)
    xy_depth = torch.cat((torch.rand(2, 6, 2) - 0.5, torch.rand(2, 6, 1) + 1), dim=-1)
    assert torch.equal(
        cams.unproject_points(xy_depth, world_coordinates=True, from_ndc=True),
        cams.unproject_points(xy_depth, world_coordinates=True),
    )


def test_K_wrong_shape():
    with pytest.raises(ValueError, match=r"K: expected shape \(N, 4, 4\), got shape \(3, 3\)"):
        FoVPerspectiveCameras(K=torch.eye(3))


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


def test_degrees_not_bool():
    with pytest.raises(ValueError, match=r"degrees: expected a bool \(or 0 / 1\), got str"):
        FoVPerspectiveCameras(degrees="yes")


def test_degrees_as_0_or_1():
    assert FoVPerspectiveCameras(degrees=0).degrees is False


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


def test_screen_points_of_a_fov_camera_need_an_image_size():
    cams = make_camera("fov", 1)
    points = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=torch.float64)
    screen = cams.transform_points_screen(points, image_size=(10, 20))
    ndc = cams.transform_points(points)
    assert_close(screen[..., :2], torch.stack((10 - 5 * ndc[..., 0], 5 - 5 * ndc[..., 1]), -1))
    with pytest.raises(ValueError, match="image_size: expected the image \\(height, width\\)"):
        cams.transform_points_screen(points)


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

"""PerspectiveCameras and OrthographicCameras (:mod:`voxrender.cameras.focal`).

In NDC and in screen space.
"""

from __future__ import annotations

import pytest
import torch
from camera_cases import (
    extrinsics,
    make_camera,
    ndc_xy,
)
from helpers import DTYPES, assert_close

from voxrender import (
    so3_exp_map,
)
from voxrender.cameras import (
    FoVOrthographicCameras,
    OrthographicCameras,
    PerspectiveCameras,
)


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
    R, T = extrinsics(3, torch.float64, 0)
    cams = PerspectiveCameras(
        R=R, T=T, in_ndc=False, image_size=torch.tensor([10, 20]), focal_length=5.0
    )
    assert cams.dtype == torch.float64 and len(cams) == 3
    assert cams.image_size.tolist() == [[10.0, 20.0]] * 3
    assert cams.image_size.dtype == torch.float64
    float_size = PerspectiveCameras(image_size=torch.tensor([[10.0, 20.0]], dtype=torch.float64))
    assert float_size.dtype == torch.float32


def test_getitem_keeps_focal_length_gradients():
    focal = torch.tensor([[2.0], [3.0]], requires_grad=True)
    cams = PerspectiveCameras(focal_length=focal, T=torch.tensor([[0.0, 0.0, 5.0]]))
    cams[1].transform_points(torch.randn(4, 3)).sum().backward()
    assert focal.grad[0] == 0 and focal.grad[1] != 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["persp_ndc", "ortho_ndc", "persp_screen", "ortho_screen"])
def test_point_on_the_optical_axis_lands_on_the_principal_point(kind, dtype):
    cams = make_camera(kind, 2, dtype)
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("height", "width"), [(16, 16), (12, 20), (24, 10)])
@pytest.mark.parametrize("orthographic", [False, True])
def test_screen_camera_equals_its_ndc_counterpart(height, width, orthographic, dtype):
    """Pixels -> NDC: ``f_ndc = f / s`` and ``p_ndc = (size / 2 - p) / s``, ``s = min(H, W) / 2``."""
    kind = OrthographicCameras if orthographic else PerspectiveCameras
    R, T = extrinsics(2, dtype, 3)
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
    xy, depth = ndc_xy(ndc)
    xy_depth = torch.cat((xy, depth), -1)
    assert_close(screen.unproject_points(xy_depth, from_ndc=True), ndc.unproject_points(xy_depth))


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

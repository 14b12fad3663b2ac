"""Tests for voxrender.transforms: Transform3d and the Translate / Scale / Rotate builders."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close
from hypothesis import given
from hypothesis import strategies as st

from voxrender import Rotate, Scale, Transform3d, Translate, so3_exp_map


def _rotations(n: int, dtype=torch.float32, device="cpu", seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return so3_exp_map(torch.randn(n, 3, generator=g, dtype=torch.float64)).to(dtype).to(device)


def _hom(points: torch.Tensor) -> torch.Tensor:
    return torch.cat((points, torch.ones_like(points[..., :1])), dim=-1)


# --------------------------------------------------------------------------- smoke and shapes


def test_identity_defaults():
    t = Transform3d()
    assert len(t) == 1 and t.dtype == torch.float32 and t.device == torch.device("cpu")
    assert torch.equal(t.get_matrix(), torch.eye(4)[None])
    p = torch.randn(5, 3)
    assert torch.equal(t.transform_points(p), p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_device_follow_inputs(device, dtype):
    t = Transform3d(dtype=dtype, device=device)
    assert t.get_matrix().dtype == dtype and t.device.type == device
    m = torch.randn(2, 4, 4, dtype=dtype, device=device)
    t = Transform3d(matrix=m)
    assert t.dtype == dtype and t.device.type == device and len(t) == 2
    assert Translate(torch.randn(3, 3, dtype=dtype, device=device)).dtype == dtype
    assert Scale(torch.ones(2, dtype=dtype, device=device), 1.0, 2.0).dtype == dtype
    R = _rotations(2, dtype, device)
    rot = Rotate(R)
    assert rot.dtype == dtype and rot.device.type == device
    out = rot.transform_points(torch.randn(2, 5, 3, dtype=dtype, device=device))
    assert out.dtype == dtype and out.device.type == device


def test_matrix_2d_is_batched():
    m = torch.randn(4, 4)
    t = Transform3d(matrix=m)
    assert t.get_matrix().shape == (1, 4, 4)
    assert torch.equal(t.get_matrix()[0], m)


@pytest.mark.parametrize(
    ("points_shape", "n", "out_shape"),
    [
        ((7, 3), 1, (7, 3)),
        ((7, 3), 4, (4, 7, 3)),
        ((1, 7, 3), 4, (4, 7, 3)),
        ((4, 7, 3), 1, (4, 7, 3)),
        ((4, 7, 3), 4, (4, 7, 3)),
        ((1, 7, 3), 1, (1, 7, 3)),
    ],
)
def test_transform_points_shapes(points_shape, n, out_shape):
    t = Translate(torch.randn(n, 3))
    assert t.transform_points(torch.randn(points_shape)).shape == out_shape
    assert t.transform_normals(torch.randn(points_shape)).shape == out_shape


# --------------------------------------------------------------------------- analytic cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_translate_forms(dtype):
    xyz = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=dtype)
    expected = torch.eye(4, dtype=dtype).repeat(2, 1, 1)
    expected[:, 3, :3] = xyz
    assert_close(Translate(xyz).get_matrix(), expected)
    assert_close(Translate(xyz[:, 0], xyz[:, 1], xyz[:, 2]).get_matrix(), expected)
    one = Translate(1.0, torch.tensor([2.0, 5.0], dtype=dtype), 3.0)
    assert_close(one.get_matrix()[0], expected[0])
    assert one.get_matrix()[1, 3, :3].tolist() == [1.0, 5.0, 3.0]


def test_scale_forms():
    assert torch.equal(Scale(2.0).get_matrix()[0], torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    assert torch.equal(
        Scale(1.0, 2.0, 3.0).get_matrix()[0], torch.diag(torch.tensor([1.0, 2.0, 3.0, 1.0]))
    )
    s = Scale(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    p = torch.ones(2, 1, 3)
    assert s.transform_points(p)[:, 0].tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_rotate_is_row_vector_product():
    R = _rotations(3)
    p = torch.randn(3, 5, 3)
    assert_close(Rotate(R).transform_points(p), p @ R)
    assert Rotate(R[0]).get_matrix().shape == (1, 4, 4)


def test_rotate_warns_for_non_rotation():
    with pytest.warns(UserWarning, match="R: expected valid rotation matrices"):
        Rotate(2 * torch.eye(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_compose_order_and_matrix(dtype):
    t1 = Scale(2.0, dtype=dtype)
    t2 = Translate(1.0, 2.0, 3.0, dtype=dtype)
    t3 = Rotate(_rotations(1, dtype))
    p = torch.randn(6, 3, dtype=dtype)
    composed = t1.compose(t2, t3)
    assert_close(
        composed.transform_points(p),
        t3.transform_points(t2.transform_points(t1.transform_points(p))),
    )
    assert_close(composed.get_matrix(), t1.get_matrix() @ t2.get_matrix() @ t3.get_matrix())
    assert_close(t1.compose(t2).compose(t3).get_matrix(), composed.get_matrix())


def test_builder_methods():
    t = Transform3d().scale(0.5).translate(1.0, 2.0, 3.0).rotate(torch.eye(3))
    p = torch.randn(4, 3)
    assert_close(t.transform_points(p), 0.5 * p + torch.tensor([1.0, 2.0, 3.0]))


def test_compose_broadcasts_batches():
    t1 = Translate(torch.randn(1, 3))
    tn = Scale(torch.rand(4, 3) + 0.5)
    assert len(t1.compose(tn)) == 4 and len(tn.compose(t1)) == 4
    p = torch.randn(4, 5, 3)
    assert_close(t1.compose(tn).transform_points(p), tn.transform_points(t1.transform_points(p)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_closed_form_matches_numerical(dtype):
    t = Scale(torch.rand(3, 3, dtype=dtype) + 0.5).compose(
        Rotate(_rotations(3, dtype)), Translate(torch.randn(3, 3, dtype=dtype))
    )
    closed = t.inverse().get_matrix()
    numerical = t.inverse(invert_composed=True).get_matrix()
    assert_close(closed, numerical, atol=1e-5 if dtype == torch.float32 else None)
    assert_close(
        closed, torch.linalg.inv(t.get_matrix()), atol=1e-5 if dtype == torch.float32 else None
    )
    # The inverse of the inverse is the transform again.
    assert_close(t.inverse().inverse().get_matrix(), t.get_matrix())


def test_inverse_of_generic_matrix():
    m = torch.randn(2, 4, 4, dtype=torch.float64) + 4 * torch.eye(4, dtype=torch.float64)
    t = Transform3d(matrix=m)
    assert_close(t.inverse().get_matrix() @ m, torch.eye(4, dtype=torch.float64).expand(2, 4, 4))


def test_projective_divide_and_eps():
    m = torch.eye(4)
    m[2, 3] = 1.0  # w = z + 1
    t = Transform3d(matrix=m)
    p = torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, -1.0], [1.0, 2.0, -3.0], [2.0, 4.0, -1.0 + 1e-4]])
    assert_close(t.transform_points(p)[0], torch.tensor([0.5, 1.0, 0.5]))
    out = t.transform_points(p, eps=0.1)
    assert_close(out[0], torch.tensor([0.5, 1.0, 0.5]))  # |w| = 2 > eps: untouched
    assert_close(out[1], torch.tensor([10.0, 20.0, -10.0]))  # w = 0 counts as +eps
    assert_close(out[2], torch.tensor([-0.5, -1.0, 1.5]))  # w = -2 keeps its sign
    assert_close(out[3], torch.tensor([20.0, 40.0, -10.0]), rtol=1e-3)  # small positive w -> +eps
    assert torch.isinf(t.transform_points(p)[1]).all()


def test_transform_normals_stay_perpendicular():
    t = Scale(1.0, 4.0, 0.5).compose(Rotate(_rotations(1)), Translate(1.0, -2.0, 0.5))
    tangent = torch.randn(10, 3)
    normal = torch.linalg.cross(tangent, torch.randn(10, 3))
    origin = torch.zeros(1, 3)
    moved_tangent = t.transform_points(tangent) - t.transform_points(origin)
    moved_normal = t.transform_normals(normal)
    assert (moved_tangent * moved_normal).sum(-1).abs().max() < 1e-4


@pytest.mark.parametrize(
    "index",
    [1, [2, 0], slice(1, 3), torch.tensor([3, 1]), torch.tensor([True, False, True, False])],
    ids=["int", "list", "slice", "long", "bool"],
)
def test_getitem(index):
    m = torch.randn(4, 4, 4)
    t = Transform3d(matrix=m)
    expected = m[[index]] if isinstance(index, int) else m[index]
    assert torch.equal(t[index].get_matrix(), expected)


def test_clone_to_cpu():
    t = Translate(torch.randn(2, 3))
    c = t.clone()
    assert torch.equal(c.get_matrix(), t.get_matrix())
    assert c.get_matrix().data_ptr() != t.get_matrix().data_ptr()
    assert t.to("cpu") is t and t.cpu() is t
    assert t.to("cpu", copy=True) is not t
    d = t.to("cpu", dtype=torch.float64)
    assert d.dtype == torch.float64 and d.get_matrix().dtype == torch.float64
    assert_close(d.inverse().get_matrix(), t.inverse().get_matrix().double())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip():
    t = Translate(torch.randn(2, 3)).compose(Rotate(_rotations(2)))
    g = t.cuda()
    assert g.device.type == "cuda" and g.get_matrix().is_cuda
    assert g.inverse().get_matrix().is_cuda
    assert_close(g.cpu().get_matrix(), t.get_matrix())


def test_stack():
    a, b = Translate(torch.randn(2, 3)), Scale(torch.rand(3, 3))
    s = a.stack(b)
    assert len(s) == 5
    assert torch.equal(s.get_matrix(), torch.cat([a.get_matrix(), b.get_matrix()]))


# --------------------------------------------------------------------------- gradients


def test_gradcheck_transform_points():
    def f(rot_log, offset, factors, points):
        t = Scale(factors).compose(Rotate(so3_exp_map(rot_log)), Translate(offset))
        return t.transform_points(points), t.inverse().transform_points(points)

    args = (
        torch.randn(2, 3, dtype=torch.float64),
        torch.randn(2, 3, dtype=torch.float64),
        torch.rand(2, 3, dtype=torch.float64) + 0.5,
        torch.randn(2, 4, 3, dtype=torch.float64),
    )
    assert torch.autograd.gradcheck(f, tuple(a.requires_grad_(True) for a in args))


def test_gradcheck_projective_with_eps():
    def f(matrix, points):
        return Transform3d(matrix=matrix).transform_points(points, eps=1e-2)

    m = torch.eye(4, dtype=torch.float64) + 0.1 * torch.randn(1, 4, 4, dtype=torch.float64)
    p = torch.randn(5, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(f, (m.requires_grad_(True), p.requires_grad_(True)))


# --------------------------------------------------------------------------- properties


floats = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)


@given(
    log_rot=st.lists(floats, min_size=3, max_size=3),
    offset=st.lists(floats, min_size=3, max_size=3),
    factors=st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3),
)
def test_inverse_round_trip(log_rot, offset, factors):
    t = Scale(*factors, dtype=torch.float64).compose(
        Rotate(so3_exp_map(torch.tensor([log_rot], dtype=torch.float64))),
        Translate(*offset, dtype=torch.float64),
    )
    p = torch.linspace(-2, 2, 12, dtype=torch.float64).reshape(4, 3)
    assert_close(t.inverse().transform_points(t.transform_points(p)), p, atol=1e-9)
    assert_close(t.transform_points(p), (_hom(p) @ t.get_matrix()[0])[:, :3])


# --------------------------------------------------------------------------- bad input


def test_matrix_wrong_shape():
    with pytest.raises(
        ValueError, match=r"matrix: expected shape \(4, 4\) or \(N, 4, 4\), got shape \(3, 3\)"
    ):
        Transform3d(matrix=torch.eye(3))


def test_matrix_wrong_rank():
    with pytest.raises(ValueError, match=r"matrix: expected shape .* got shape \(1, 1, 4, 4\)"):
        Transform3d(matrix=torch.eye(4)[None, None])


def test_matrix_integer():
    with pytest.raises(
        TypeError, match=r"matrix: expected a floating-point tensor, got dtype torch\.int64"
    ):
        Transform3d(matrix=torch.eye(4, dtype=torch.long))


def test_dtype_not_floating():
    with pytest.raises(
        TypeError, match=r"dtype: expected a floating-point torch\.dtype, got torch\.int32"
    ):
        Transform3d(dtype=torch.int32)


def test_points_wrong_trailing_size():
    with pytest.raises(
        ValueError, match=r"points: expected shape \(P, 3\) or \(N, P, 3\), got shape \(5, 2\)"
    ):
        Transform3d().transform_points(torch.zeros(5, 2))


def test_points_wrong_rank():
    with pytest.raises(
        ValueError,
        match=r"points: expected shape \(P, 3\) or \(N, P, 3\), got shape \(1, 2, 5, 3\)",
    ):
        Transform3d().transform_points(torch.zeros(1, 2, 5, 3))


def test_points_of_another_float_dtype_promote():
    out = Translate(1.0, 2.0, 3.0).transform_points(torch.zeros(5, 3, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert_close(out, torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64).expand(5, 3))


def test_points_integer_are_cast():
    out = Translate(1.0, 2.0, 3.0).transform_points(torch.zeros(5, 3, dtype=torch.long))
    assert out.dtype == torch.float32
    with pytest.raises(TypeError, match=r"points: expected a real tensor, got dtype torch\.bool"):
        Transform3d().transform_points(torch.zeros(5, 3, dtype=torch.bool))


def test_points_batch_does_not_broadcast():
    with pytest.raises(
        ValueError,
        match=r"batch sizes do not broadcast: expected each to be 1 or 3, got points\.shape\[0\]=2, len\(transform\)=3",
    ):
        Translate(torch.zeros(3, 3)).transform_points(torch.zeros(2, 5, 3))


def test_negative_eps():
    with pytest.raises(ValueError, match=r"eps: expected a number >= 0, got -0\.5"):
        Transform3d().transform_points(torch.zeros(5, 3), eps=-0.5)


def test_compose_with_non_transform():
    with pytest.raises(
        ValueError,
        match=r"Only possible to compose Transform3d objects.*others\[0\]: expected a Transform3d, got tensor of shape \(4, 4\)",
    ):
        Transform3d().compose(torch.eye(4))


def test_compose_mixed_dtypes_promote():
    composed = Scale(1.0).compose(Rotate(torch.eye(3, dtype=torch.float64)))
    assert composed.dtype == torch.float64
    assert_close(composed.get_matrix(), torch.eye(4, dtype=torch.float64)[None])


def test_compose_batches_do_not_broadcast():
    with pytest.raises(ValueError, match=r"expected batch sizes that broadcast .* got 2 and 3"):
        Translate(torch.zeros(2, 3)).compose(Translate(torch.zeros(3, 3)))


def test_translate_tensor_with_y():
    with pytest.raises(
        ValueError, match=r"Translate: expected y and z to be None when x is an \(N, 3\) tensor"
    ):
        Translate(torch.zeros(2, 3), 1.0, 1.0)


def test_translate_missing_z():
    with pytest.raises(TypeError, match="Translate: expected x, y and z"):
        Translate(1.0, 2.0)


def test_translate_wrong_trailing_size():
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got shape \(2, 4\)"):
        Translate(torch.zeros(2, 4))


def test_translate_batches_do_not_broadcast():
    with pytest.raises(
        ValueError,
        match="batch sizes do not broadcast: expected each to be 1 or 3, got x=2, y=3, z=1",
    ):
        Translate(torch.zeros(2), torch.zeros(3), 0.0)


def test_translate_bad_coordinate_type():
    with pytest.raises(TypeError, match="y: expected a number or a tensor, got str"):
        Translate(1.0, "2", 3.0)


def test_scale_coordinate_wrong_rank():
    with pytest.raises(
        ValueError, match=r"x: expected shape \(\) or \(N,\), got shape \(2, 2, 2\)"
    ):
        Scale(torch.ones(2, 2, 2))


def test_rotate_wrong_shape():
    with pytest.raises(
        ValueError, match=r"R: expected shape \(3, 3\) or \(N, 3, 3\), got shape \(2, 4, 4\)"
    ):
        Rotate(torch.zeros(2, 4, 4))


def test_rotate_integer_is_cast():
    assert Rotate(torch.eye(3, dtype=torch.long)).dtype == torch.float32


def test_getitem_out_of_range():
    with pytest.raises(IndexError, match=r"index: expected indices in \[-2, 2\), got 5"):
        Translate(torch.zeros(2, 3))[5]


def test_getitem_bad_type():
    with pytest.raises(TypeError, match="index: expected an int, a list of ints"):
        Translate(torch.zeros(2, 3))["0"]


def test_rotation_angle_sanity():
    # A quarter turn about z maps +x to +y for column vectors; Rotate uses row vectors.
    R = so3_exp_map(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    out = Rotate(R).transform_points(torch.tensor([[1.0, 0.0, 0.0]]))
    assert_close(out, torch.tensor([[0.0, -1.0, 0.0]]), atol=1e-6)

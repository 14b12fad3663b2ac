"""Tests for voxrender.ray_bundle: the bundle containers and ray-point evaluation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close
from hypothesis import given
from hypothesis import strategies as st

from voxrender import (
    HeterogeneousRayBundle,
    RayBundle,
    ray_bundle_to_ray_points,
    ray_bundle_variables_to_ray_points,
)


def _random_rays(shape, n_pts, *, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(*shape, 3, generator=g, dtype=dtype).to(device)
    directions = torch.randn(*shape, 3, generator=g, dtype=dtype).to(device)
    lengths = torch.rand(*shape, n_pts, generator=g, dtype=dtype).to(device)
    return origins, directions, lengths


# ----------------------------------------------------------------------------- containers


def test_ray_bundle_is_a_named_tuple():
    o, d, lengths = _random_rays((2, 3), 4)
    xys = torch.zeros(2, 3, 2)
    bundle = RayBundle(o, d, lengths, xys)
    assert bundle._fields == ("origins", "directions", "lengths", "xys")
    origins, directions, got_lengths, got_xys = bundle
    assert origins is o and directions is d and got_lengths is lengths and got_xys is xys
    assert bundle._replace(xys=None).xys is None


def test_heterogeneous_ray_bundle_is_a_dataclass_with_optional_camera_fields():
    o, d, lengths = _random_rays((5, 1), 2)
    bundle = HeterogeneousRayBundle(o, d, lengths, torch.zeros(5, 1, 2))
    assert dataclasses.is_dataclass(bundle)
    assert bundle.camera_ids is None and bundle.camera_counts is None
    names = [f.name for f in dataclasses.fields(HeterogeneousRayBundle)]
    assert names == ["origins", "directions", "lengths", "xys", "camera_ids", "camera_counts"]
    ids, counts = torch.tensor([0, 2]), torch.tensor([3, 2])
    bundle = HeterogeneousRayBundle(o, d, lengths, None, camera_ids=ids, camera_counts=counts)
    assert bundle.camera_ids is ids and bundle.camera_counts is counts


# ----------------------------------------------------------------------------- ray points


def test_ray_points_analytic():
    origins = torch.tensor([[1.0, 2.0, 3.0]])
    directions = torch.tensor([[0.0, 0.5, -2.0]])
    lengths = torch.tensor([[0.0, 1.0, 4.0]])
    expected = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 2.5, 1.0], [1.0, 4.0, -5.0]]])
    assert_close(ray_bundle_variables_to_ray_points(origins, directions, lengths), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (2, 5), (2, 4, 3), (1, 2, 3, 2)])
def test_ray_points_shape_dtype_device(shape, dtype, device):
    o, d, lengths = _random_rays(shape, 6, dtype=dtype, device=device)
    points = ray_bundle_variables_to_ray_points(o, d, lengths)
    assert points.shape == (*shape, 6, 3)
    assert points.dtype == dtype and points.device.type == torch.device(device).type
    # one point checked by hand
    idx = (0,) * len(shape)
    assert_close(points[idx][5], o[idx] + lengths[idx][5] * d[idx])


def test_ray_points_broadcast_leading_dimensions():
    o = torch.randn(2, 1, 3)
    d = torch.randn(1, 4, 3)
    lengths = torch.rand(2, 4, 5)
    points = ray_bundle_variables_to_ray_points(o, d, lengths)
    assert points.shape == (2, 4, 5, 3)
    assert_close(points[1, 3, 2], o[1, 0] + lengths[1, 3, 2] * d[0, 3])


def test_bundle_to_ray_points_matches_variables():
    o, d, lengths = _random_rays((3, 4), 5)
    expected = ray_bundle_variables_to_ray_points(o, d, lengths)
    assert_close(ray_bundle_to_ray_points(RayBundle(o, d, lengths, None)), expected)
    hetero = HeterogeneousRayBundle(o, d, lengths, None, torch.tensor([0]), torch.tensor([3]))
    assert_close(ray_bundle_to_ray_points(hetero), expected)


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    n_pts=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_ray_points_lie_on_their_rays(shape, n_pts, seed):
    o, d, lengths = _random_rays(tuple(shape), n_pts, dtype=torch.float64, seed=seed)
    points = ray_bundle_variables_to_ray_points(o, d, lengths)  # (..., P, 3)
    offsets = points - o[..., None, :]
    # every offset is parallel to the direction, with the sampled length as its coefficient
    cross = torch.linalg.cross(offsets, d[..., None, :].expand_as(offsets), dim=-1)
    assert_close(cross, torch.zeros_like(cross))
    coeff = (offsets * d[..., None, :]).sum(-1) / (d * d).sum(-1, keepdim=True)
    assert_close(coeff, lengths)


def test_ray_points_gradcheck():
    o, d, lengths = _random_rays((2, 2), 3, dtype=torch.float64)
    inputs = tuple(t.clone().requires_grad_(True) for t in (o, d, lengths))
    assert torch.autograd.gradcheck(ray_bundle_variables_to_ray_points, inputs)


# ----------------------------------------------------------------------------- bad input


def test_bad_origins_not_a_tensor():
    _, d, lengths = _random_rays((2,), 3)
    with pytest.raises(TypeError, match=r"rays_origins: expected a torch\.Tensor"):
        ray_bundle_variables_to_ray_points([[0.0, 0.0, 0.0]] * 2, d, lengths)


def test_integer_and_mixed_dtype_inputs_promote_like_pytorch3d():
    o, d, _ = _random_rays((2,), 3)
    ints = torch.tensor([[1, 2, 3], [0, 1, 2]])
    out = ray_bundle_variables_to_ray_points(o, d, ints)
    assert out.dtype == torch.float32
    assert_close(out, ray_bundle_variables_to_ray_points(o, d, ints.float()))
    out64 = ray_bundle_variables_to_ray_points(o, d, ints.double())
    assert out64.dtype == torch.float64
    assert_close(out64.float(), out)


def test_bad_bool_lengths():
    o, d, _ = _random_rays((2,), 3)
    with pytest.raises(ValueError, match="rays_lengths: expected a real") as info:
        ray_bundle_variables_to_ray_points(o, d, torch.ones(2, 3, dtype=torch.bool))
    assert isinstance(info.value, TypeError)


def test_bad_origins_last_dimension():
    _, d, lengths = _random_rays((2,), 3)
    with pytest.raises(ValueError, match=r"rays_origins: expected shape \(\.\.\., 3\)"):
        ray_bundle_variables_to_ray_points(torch.zeros(2, 2), d, lengths)


def test_bad_directions_last_dimension():
    o, _, lengths = _random_rays((2,), 3)
    with pytest.raises(ValueError, match=r"rays_directions: expected shape \(\.\.\., 3\)"):
        ray_bundle_variables_to_ray_points(o, torch.zeros(2, 4), lengths)


def test_bad_scalar_lengths():
    o, d, _ = _random_rays((2,), 3)
    with pytest.raises(ValueError, match="rays_lengths: expected shape"):
        ray_bundle_variables_to_ray_points(o, d, torch.tensor(1.0))


def test_bad_leading_dimensions_do_not_broadcast():
    o, d, _ = _random_rays((2, 3), 4)
    with pytest.raises(ValueError, match="rays_origins, rays_directions, rays_lengths: expected"):
        ray_bundle_variables_to_ray_points(o, d, torch.rand(2, 5, 4))


def test_bad_device_mismatch():
    o, d, lengths = _random_rays((2,), 3)
    with pytest.raises(ValueError, match="rays_lengths: expected a tensor on device cpu"):
        ray_bundle_variables_to_ray_points(o, d, lengths.to("meta"))


def test_bad_bundle_object():
    with pytest.raises(TypeError, match="ray_bundle: expected a RayBundle"):
        ray_bundle_to_ray_points((torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 2)))

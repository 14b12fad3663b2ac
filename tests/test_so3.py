"""Tests for voxrender.so3: exponential / logarithm maps of SO(3), hat and hat_inv."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close, cotangent_loss, load_case
from hypothesis import given
from hypothesis import strategies as st

from voxrender import hat, hat_inv, so3_exp_map, so3_log_map


def _rot_z(angle: float, dtype=torch.float64) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)


vectors = st.lists(
    st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False), min_size=3, max_size=3
)


def _axis_angle(direction: list[float], angle: float) -> torch.Tensor | None:
    d = torch.tensor(direction, dtype=torch.float64)
    if d.norm() < 1e-3:
        return None
    return (d / d.norm() * angle)[None]  # (1, 3)


# --------------------------------------------------------------------------- smoke and shapes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shapes_dtype_device(device, dtype):
    v = torch.randn(4, 3, dtype=dtype, device=device)
    R = so3_exp_map(v)
    assert R.shape == (4, 3, 3) and R.dtype == dtype and R.device.type == device
    log = so3_log_map(R)
    assert log.shape == (4, 3) and log.dtype == dtype and log.device.type == device
    h = hat(v)
    assert h.shape == (4, 3, 3) and h.dtype == dtype
    assert hat_inv(h).shape == (4, 3)


def test_empty_batch():
    assert so3_exp_map(torch.zeros(0, 3)).shape == (0, 3, 3)
    assert so3_log_map(torch.zeros(0, 3, 3)).shape == (0, 3)


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("dtype", DTYPES)
def test_fixture_so3_exp_map(dtype):
    config, inputs, outputs, grads = load_case("so3_exp_map")
    log_rot = inputs["log_rot"].to(dtype).requires_grad_(True)
    R = so3_exp_map(log_rot)
    assert R.dtype == dtype
    # The fixtures are float32-accurate: judge float64 results by the float32 tolerances.
    assert_close(R, outputs["R"], dtype=torch.float32)
    # Cotangents are drawn in float32 (the fixtures' dtype): cast the output for the loss.
    cotangent_loss({"R": R.to(torch.float32)}, config["cot_seed"]).backward()
    assert_close(log_rot.grad, grads["log_rot"], kind="grad", dtype=torch.float32)


# --------------------------------------------------------------------------- analytic cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_hat_is_cross_product(dtype):
    v, x = torch.randn(5, 3, dtype=dtype), torch.randn(5, 3, dtype=dtype)
    assert_close((hat(v) @ x[..., None])[..., 0], torch.linalg.cross(v, x))
    assert_close(hat(v), -hat(v).transpose(1, 2))
    assert_close(hat_inv(hat(v)), v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_rotation_about_z(dtype):
    for angle in (0.3, -1.2, 2.5, math.pi):
        R = so3_exp_map(torch.tensor([[0.0, 0.0, angle]], dtype=dtype))
        assert_close(R[0], _rot_z(angle, dtype))


def test_exp_at_zero_is_identity_with_hat_derivative():
    v = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    R = so3_exp_map(v)
    assert torch.equal(R[0], torch.eye(3, dtype=torch.float64))
    jac = torch.autograd.functional.jacobian(lambda x: so3_exp_map(x)[0], v)[..., 0, :]  # (3, 3, 3)
    for i in range(3):
        e = torch.zeros(1, 3, dtype=torch.float64)
        e[0, i] = 1
        assert_close(jac[..., i], hat(e)[0])


def test_exp_small_angles_float32_accurate():
    v64 = torch.randn(64, 3, dtype=torch.float64)
    v64 = (
        v64
        / v64.norm(dim=1, keepdim=True)
        * torch.logspace(-7, -1, 64, dtype=torch.float64)[:, None]
    )
    R32 = so3_exp_map(v64.float())
    R64 = so3_exp_map(v64)
    assert (R32.double() - R64).abs().max() < 1e-6
    # And the float64 map agrees with the series-free formula where that one is accurate.
    big = v64[-10:]
    t = big.norm(dim=1)[:, None, None]
    K = hat(big)
    direct = (
        torch.eye(3, dtype=torch.float64) + torch.sin(t) / t * K + (1 - torch.cos(t)) / t**2 * K @ K
    )
    assert_close(R64[-10:], direct)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_of_rotation_about_z(dtype):
    for angle in (1e-6, 0.02, 0.7, 2.0, 3.0):
        log = so3_log_map(_rot_z(angle, dtype)[None])
        assert_close(
            log,
            torch.tensor([[0.0, 0.0, angle]], dtype=dtype),
            atol=1e-6 if dtype == torch.float32 else None,
        )


def test_log_identity_is_zero():
    assert torch.equal(so3_log_map(torch.eye(3)[None]), torch.zeros(1, 3))


def test_log_near_pi_gives_the_rotation_back():
    for angle in (math.pi - 1e-3, math.pi - 1e-7, math.pi):
        axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
        v = (axis / axis.norm() * angle)[None]
        R = so3_exp_map(v)
        log = so3_log_map(R)
        assert_close(log.norm(dim=1), torch.tensor([angle], dtype=torch.float64), atol=1e-7)
        assert_close(so3_exp_map(log), R, atol=1e-9)


# --------------------------------------------------------------------------- gradients


def test_gradcheck_exp_map():
    v = torch.cat(
        [torch.randn(4, 3, dtype=torch.float64), 1e-3 * torch.randn(2, 3, dtype=torch.float64)]
    )
    assert torch.autograd.gradcheck(so3_exp_map, (v.requires_grad_(True),))
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(so3_exp_map, (zero,))


def test_gradcheck_log_map():
    v = torch.cat(
        [
            torch.randn(3, 3, dtype=torch.float64),
            1e-3 * torch.randn(1, 3, dtype=torch.float64),
            torch.tensor([[0.0, 2.9, 0.0]], dtype=torch.float64),  # inside the near-pi branch
        ]
    )
    R = so3_exp_map(v).requires_grad_(True)
    assert torch.autograd.gradcheck(so3_log_map, (R,))
    eye = torch.eye(3, dtype=torch.float64)[None].requires_grad_(True)
    assert torch.autograd.gradcheck(so3_log_map, (eye,))


def test_log_map_gradient_finite_at_pi():
    R = so3_exp_map(torch.tensor([[0.0, 0.0, math.pi]], dtype=torch.float64)).requires_grad_(True)
    so3_log_map(R).sum().backward()
    assert torch.isfinite(R.grad).all()


# --------------------------------------------------------------------------- properties


@given(direction=vectors, angle=st.floats(0.0, 6.0))
def test_exp_is_a_rotation(direction, angle):
    v = _axis_angle(direction, angle)
    if v is None:
        return
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        R = so3_exp_map(v.to(dtype))[0].double()
        assert (R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max() < tol
        assert abs(torch.linalg.det(R) - 1) < tol


@given(direction=vectors, angle=st.floats(0.0, math.pi - 0.05))
def test_log_inverts_exp_away_from_pi(direction, angle):
    v = _axis_angle(direction, angle)
    if v is None:
        return
    assert_close(so3_log_map(so3_exp_map(v)), v)
    v32 = v.float()
    assert_close(so3_log_map(so3_exp_map(v32)), v32, atol=1e-5)


# --------------------------------------------------------------------------- bad input


def test_exp_wrong_trailing_size():
    with pytest.raises(ValueError, match=r"log_rot: expected shape \(N, 3\), got shape \(2, 4\)"):
        so3_exp_map(torch.zeros(2, 4))


def test_exp_wrong_rank():
    with pytest.raises(ValueError, match=r"log_rot: expected shape \(N, 3\), got shape \(3,\)"):
        so3_exp_map(torch.zeros(3))


def test_exp_integer_tensor():
    with pytest.raises(
        TypeError, match=r"log_rot: expected a floating-point tensor, got dtype torch\.int64"
    ):
        so3_exp_map(torch.zeros(2, 3, dtype=torch.long))


def test_exp_not_a_tensor():
    with pytest.raises(TypeError, match=r"log_rot: expected a torch\.Tensor, got list"):
        so3_exp_map([[0.0, 0.0, 1.0]])


def test_exp_negative_eps():
    with pytest.raises(ValueError, match=r"eps: expected a number >= 0, got -1\.0"):
        so3_exp_map(torch.zeros(1, 3), eps=-1.0)


def test_log_wrong_shape():
    with pytest.raises(ValueError, match=r"R: expected shape \(N, 3, 3\), got shape \(3, 3\)"):
        so3_log_map(torch.eye(3))


def test_log_integer_tensor():
    with pytest.raises(TypeError, match="R: expected a floating-point tensor"):
        so3_log_map(torch.eye(3, dtype=torch.int32)[None])


def test_hat_wrong_shape():
    with pytest.raises(ValueError, match=r"v: expected shape \(N, 3\), got shape \(2, 2\)"):
        hat(torch.zeros(2, 2))


def test_hat_inv_wrong_shape():
    with pytest.raises(ValueError, match=r"h: expected shape \(N, 3, 3\), got shape \(1, 3, 4\)"):
        hat_inv(torch.zeros(1, 3, 4))


def test_hat_inv_not_skew_symmetric():
    with pytest.raises(
        ValueError,
        match=r"One of input matrices is not skew-symmetric.*got \|h \+ h\^T\| up to 2",
    ):
        hat_inv(torch.eye(3)[None])

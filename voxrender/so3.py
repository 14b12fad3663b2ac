"""Rotations as 3-vectors: the exponential and logarithm maps of SO(3) and the hat operator.

A rotation by angle ``theta`` about the unit axis ``a`` is written as the 3-vector
``log_rot = theta * a`` (its norm is the angle, its direction the axis). Matrices act on column
vectors here (``R @ x``), as in PyTorch3D's ``so3`` module.

The exponential map is exact to rounding: small angles use series expansions instead of
``sin(x) / x`` style divisions, so values *and* gradients stay finite and accurate at and near
the identity. The logarithm goes through the best-conditioned quaternion of ``R`` (accurate over
the whole range, angle ``pi`` included, where the sign of the axis is a free choice), the same
formula as PyTorch3D's: its gradients w.r.t. ``R`` are PyTorch3D's for any ``R``, also one that
is not exactly a rotation.

Dimensions:
    ``N``: rotations in the batch.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_positive_number, check_shape_worded

__all__ = ["hat", "hat_inv", "so3_exp_map", "so3_log_map"]

# Below this squared angle (or squared sine of the angle) the maps switch to series expansions;
# with the terms kept, the truncation error is far below float64 rounding.
_SERIES_BELOW = 1e-3
# Largest allowed ``|h + h^T|`` entry for ``hat_inv`` (PyTorch3D's tolerance).
_SKEW_TOL = 1e-5
# PyTorch3D's wording for a wrong shape of a batch of 3x3 matrices (code may match on it).
_BATCH_3X3 = "Input has to be a batch of 3x3 Tensors."


def _check_eps(value: object, name: str) -> None:
    check_positive_number(value, name, allow_zero=True)


def hat(v: torch.Tensor) -> torch.Tensor:
    """3-vectors -> the skew-symmetric matrices of their cross products.

    ``hat(v) @ x == cross(v, x)``; for ``v = (x, y, z)`` the matrix is
    ``[[0, -z, y], [z, 0, -x], [-y, x, 0]]``.

    Args:
        v: vectors ``(N, 3)``.

    Returns:
        Skew-symmetric matrices ``(N, 3, 3)``.
    """
    check_floating(v, "v")
    check_shape_worded(
        v, "v", "Input vectors have to be 3-dimensional.", ndim=2, last=(3,), spec="(N, 3)"
    )
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(v.shape[0], 3, 3)


def hat_inv(h: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrices -> the 3-vectors they cross with (the inverse of :func:`hat`).

    Args:
        h: skew-symmetric matrices ``(N, 3, 3)``. A matrix farther than ``1e-5`` from
            skew-symmetric raises ``ValueError`` (one host read, as in PyTorch3D; skipped while
            compiling).

    Returns:
        Vectors ``(N, 3)``.
    """
    check_floating(h, "h")
    check_shape_worded(h, "h", _BATCH_3X3, ndim=3, last=(3, 3), spec="(N, 3, 3)")
    if h.numel() and not torch.compiler.is_compiling():
        # One host read, as in PyTorch3D (hat_inv is not a hot path); never a device assertion.
        asymmetry = float((h + h.transpose(-1, -2)).detach().abs().amax())
        if asymmetry > _SKEW_TOL:
            raise ValueError(
                f"One of input matrices is not skew-symmetric. (h: expected skew-symmetric "
                f"matrices, |h + h^T| <= {_SKEW_TOL:g}, got |h + h^T| up to {asymmetry:.3g})"
            )
    return torch.stack((h[:, 2, 1], h[:, 0, 2], h[:, 1, 0]), dim=-1)


def _sin_over_angle(sq: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``sin(t) / t`` from ``t**2`` (series) and ``t`` (direct, used where ``t**2`` is large)."""
    series = 1 - sq / 6 * (1 - sq / 20 * (1 - sq / 42 * (1 - sq / 72)))
    return torch.where(sq < _SERIES_BELOW, series, torch.sin(angle) / angle)


def _one_minus_cos_over_sq(sq: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``(1 - cos(t)) / t**2``, computed as ``0.5 * (sin(t/2) / (t/2))**2`` (no cancellation)."""
    series = 0.5 * (1 - sq / 12 * (1 - sq / 30 * (1 - sq / 56 * (1 - sq / 90))))
    half = 0.5 * angle
    direct = 0.5 * (torch.sin(half) / half) ** 2
    return torch.where(sq < _SERIES_BELOW, series, direct)


def so3_exp_map(log_rot: torch.Tensor, eps: float = 0.0001) -> torch.Tensor:
    """Axis-angle 3-vectors -> rotation matrices (Rodrigues' formula).

    ``R = I + sin(t)/t * K + (1 - cos(t))/t**2 * K @ K`` with ``K = hat(log_rot)`` and
    ``t = |log_rot|``. Exact at and near ``log_rot = 0`` (values and gradients).

    Args:
        log_rot: axis-angle vectors ``(N, 3)``; the norm is the angle in radians.
        eps: accepted for PyTorch3D compatibility; like PyTorch3D >= 0.7.8, the result does not
            depend on it (no clamping is needed).

    Returns:
        Rotation matrices ``(N, 3, 3)``, acting on column vectors.
    """
    check_floating(log_rot, "log_rot")
    check_shape_worded(
        log_rot, "log_rot", "Input tensor shape has to be Nx3.", ndim=2, last=(3,), spec="(N, 3)"
    )
    _check_eps(eps, "eps")
    sq = (log_rot * log_rot).sum(-1)  # (N,)
    # A stand-in angle where the series is used keeps the unused branch finite (and its
    # gradient, which torch.where multiplies by zero, free of NaN).
    angle = torch.sqrt(torch.where(sq < _SERIES_BELOW, torch.ones_like(sq), sq))  # (N,)
    a = _sin_over_angle(sq, angle)[:, None, None]
    b = _one_minus_cos_over_sq(sq, angle)[:, None, None]
    skew = hat(log_rot)  # (N, 3, 3)
    eye = torch.eye(3, dtype=log_rot.dtype, device=log_rot.device)
    return eye + a * skew + b * torch.bmm(skew, skew)


def _sqrt_positive(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient where ``x <= 0``."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def _matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(N, 3, 3)`` -> unit quaternions ``(N, 4)`` (real part first, >= 0).

    Each of the four components ``|q_i|`` follows from the diagonal; the quaternion is read off
    the row of ``q q^T`` (from the off-diagonal sums and differences) whose ``|q_i|`` is largest,
    the best conditioned one. The same formula as PyTorch3D's, so the gradients w.r.t. any
    ``R`` (also one not exactly orthonormal) are PyTorch3D's.
    """
    m = R.reshape(-1, 9).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    q_abs = _sqrt_positive(
        torch.stack(
            (
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ),
            dim=-1,
        )
    )  # (N, 4)
    a, b, c = m21 - m12, m02 - m20, m10 - m01  # 4 q_r q_(i, j, k)
    d, e, f = m10 + m01, m02 + m20, m12 + m21  # 4 q_i q_j, 4 q_i q_k, 4 q_j q_k
    sq = q_abs * q_abs
    outer = torch.stack(
        (
            torch.stack((sq[:, 0], a, b, c), -1),
            torch.stack((a, sq[:, 1], d, e), -1),
            torch.stack((b, d, sq[:, 2], f), -1),
            torch.stack((c, e, f, sq[:, 3]), -1),
        ),
        dim=-2,
    )  # (N, 4, 4): row i is 4 q_i q
    floor = q_abs.new_tensor(0.1)  # rows with a small |q_i| are never picked
    candidates = outer / (2.0 * q_abs[..., None].max(floor))  # (N, 4, 4)
    pick = q_abs.argmax(dim=-1)[:, None, None].expand(-1, 1, 4)  # (N, 1, 4)
    q = torch.gather(candidates, 1, pick)[:, 0]  # (N, 4)
    return torch.where(q[:, :1] < 0, -q, q)


def _quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(N, 4)`` (real part first) -> axis-angle vectors ``(N, 3)``."""
    sin_half = torch.norm(q[:, 1:], p=2, dim=-1, keepdim=True)  # (N, 1)
    half = torch.atan2(sin_half, q[:, :1])  # (N, 1), in [0, pi/2] for q_r >= 0
    return q[:, 1:] / (0.5 * torch.sinc(half / torch.pi))


def so3_log_map(R: torch.Tensor, eps: float = 0.0001, cos_bound: float = 1e-4) -> torch.Tensor:
    """Rotation matrices -> axis-angle 3-vectors (the inverse of :func:`so3_exp_map`).

    Through the best-conditioned unit quaternion of ``R`` (PyTorch3D's formula, hence its
    gradients also off the rotation group); the result has norm in ``[0, pi]``.

    Args:
        R: rotation matrices ``(N, 3, 3)``, acting on column vectors.
        eps: accepted for PyTorch3D compatibility; unused (as in PyTorch3D >= 0.7.8).
        cos_bound: accepted for PyTorch3D compatibility; unused (as in PyTorch3D >= 0.7.8).

    Returns:
        Axis-angle vectors ``(N, 3)``.
    """
    check_floating(R, "R")
    check_shape_worded(R, "R", _BATCH_3X3, ndim=3, last=(3, 3), spec="(N, 3, 3)")
    _check_eps(eps, "eps")
    _check_eps(cos_bound, "cos_bound")
    return _quaternion_to_axis_angle(_matrix_to_quaternion(R))

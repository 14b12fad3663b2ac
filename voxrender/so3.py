"""Rotations as 3-vectors: the exponential and logarithm maps of SO(3) and the hat operator.

A rotation by angle ``theta`` about the unit axis ``a`` is written as the 3-vector
``log_rot = theta * a`` (its norm is the angle, its direction the axis). Matrices act on column
vectors here (``R @ x``), as in PyTorch3D's ``so3`` module.

Both maps are exact to rounding: small angles use series expansions instead of ``sin(x) / x``
style divisions, so values *and* gradients stay finite and accurate at and near the identity.
The logarithm also handles angles near ``pi`` through the symmetric part of ``R``; at exactly
``pi`` the sign of the axis is a free choice (PyTorch3D makes one too).

Dimensions:
    ``N``: rotations in the batch.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_positive_number, check_shape

__all__ = ["hat", "hat_inv", "so3_exp_map", "so3_log_map"]

# Below this squared angle (or squared sine of the angle) the maps switch to series expansions;
# with the terms kept, the truncation error is far below float64 rounding.
_SERIES_BELOW = 1e-3
# Above ``pi - acos(0.9)``, about 154 degrees, the logarithm reads the axis off the symmetric part
# of ``R`` instead of its (vanishing) skew part.
_NEAR_PI_COS = -0.9
# Largest allowed ``|h + h^T|`` entry for ``hat_inv`` (PyTorch3D's tolerance).
_SKEW_TOL = 1e-5


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
    check_shape(v, "v", ndim=2, last=(3,), spec="(N, 3)")
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(v.shape[0], 3, 3)


def hat_inv(h: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrices -> the 3-vectors they cross with (the inverse of :func:`hat`).

    Args:
        h: skew-symmetric matrices ``(N, 3, 3)``. On the CPU a matrix farther than ``1e-5`` from
            skew-symmetric raises ``ValueError``; on an accelerator the same check is queued on
            the device (no host sync) and fails at the next synchronisation.

    Returns:
        Vectors ``(N, 3)``.
    """
    check_floating(h, "h")
    check_shape(h, "h", ndim=3, last=(3, 3), spec="(N, 3, 3)")
    asymmetry = (h + h.transpose(-1, -2)).abs().amax() if h.numel() else h.new_zeros(())
    if h.device.type == "cpu" and not torch.compiler.is_compiling():
        if asymmetry > _SKEW_TOL:
            raise ValueError(
                f"h: expected skew-symmetric matrices (|h + h^T| <= {_SKEW_TOL:g}), "
                f"got |h + h^T| up to {float(asymmetry):.3g}"
            )
    else:
        torch._assert_async(asymmetry <= _SKEW_TOL, "h: expected skew-symmetric matrices")
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
    check_shape(log_rot, "log_rot", ndim=2, last=(3,), spec="(N, 3)")
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


def _angle_over_sin(sin_sq: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """``t / sin(t)`` for angles ``t`` in ``[0, pi)`` away from ``pi``, from ``sin(t)**2`` and ``cos(t)``.

    Small angles use the series of ``asin(s) / s`` in ``s = sin(t)``; the others
    ``atan2(sin, cos) / sin`` with a stand-in ``sin`` on the series rows (finite, unused).
    """
    series_rows = sin_sq < _SERIES_BELOW
    s = sin_sq
    series = 1 + s * (1 / 6 + s * (3 / 40 + s * (5 / 112 + s * (35 / 1152))))
    sin = torch.sqrt(torch.where(series_rows, torch.ones_like(sin_sq), sin_sq))
    return torch.where(series_rows, series, torch.atan2(sin, cos) / sin)


def _axis_from_symmetric_part(
    rot: torch.Tensor, cos: torch.Tensor, skew_vec: torch.Tensor
) -> torch.Tensor:
    """Unit rotation axes ``(N, 3)`` from ``(R + R^T)/2 - cos * I = (1 - cos) * a a^T``.

    Well conditioned for angles near ``pi``, where the skew part of ``R`` vanishes. The sign is
    chosen to agree with the skew part (``sin(t) * a``), which is positive for ``t < pi``.
    """
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    outer = 0.5 * (rot + rot.transpose(-1, -2)) - cos[:, None, None] * eye  # (N, 3, 3)
    pick = torch.diagonal(outer, dim1=-2, dim2=-1).argmax(-1)  # (N,) largest |a_i|
    column = torch.gather(outer, 2, pick[:, None, None].expand(-1, 3, 1))[..., 0]  # (N, 3)
    axis = torch.nn.functional.normalize(column, dim=-1, eps=1e-12)
    flip = (axis * skew_vec).sum(-1, keepdim=True) < 0
    return torch.where(flip, -axis, axis)


def so3_log_map(R: torch.Tensor, eps: float = 0.0001, cos_bound: float = 1e-4) -> torch.Tensor:
    """Rotation matrices -> axis-angle 3-vectors (the inverse of :func:`so3_exp_map`).

    The angle is ``atan2(sin, cos)`` with ``sin`` from the skew part and ``cos`` from the trace
    of ``R``, so it is accurate over the whole range; the result has norm in ``[0, pi]``.
    Differentiable everywhere except at angle ``pi`` (where the logarithm itself is not).

    Args:
        R: rotation matrices ``(N, 3, 3)``, acting on column vectors.
        eps: accepted for PyTorch3D compatibility; unused (as in PyTorch3D >= 0.7.8).
        cos_bound: accepted for PyTorch3D compatibility; unused (as in PyTorch3D >= 0.7.8).

    Returns:
        Axis-angle vectors ``(N, 3)``.
    """
    check_floating(R, "R")
    check_shape(R, "R", ndim=3, last=(3, 3), spec="(N, 3, 3)")
    _check_eps(eps, "eps")
    _check_eps(cos_bound, "cos_bound")
    skew_vec = 0.5 * torch.stack(
        (R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]), dim=-1
    )  # (N, 3) = sin(t) * axis
    cos = 0.5 * (R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2] - 1)  # (N,)
    sin_sq = (skew_vec * skew_vec).sum(-1)  # (N,)
    near_pi = cos < _NEAR_PI_COS  # (N,)
    # Rows near pi get stand-in values in the general branch and vice versa: every branch stays
    # finite (values and gradients), so torch.where can pick without NaN leaking into gradients.
    one = torch.ones_like(sin_sq)
    general = _angle_over_sin(torch.where(near_pi, one, sin_sq), cos)[:, None] * skew_vec
    tiny = torch.finfo(R.dtype).tiny ** 0.5
    angle = torch.atan2(torch.sqrt(sin_sq.clamp(min=tiny)), cos)  # (N,)
    at_pi = angle[:, None] * _axis_from_symmetric_part(R, cos, skew_vec)  # (N, 3)
    return torch.where(near_pi[:, None], at_pi, general)

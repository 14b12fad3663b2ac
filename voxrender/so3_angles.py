"""Rotation angles of SO(3) matrices, and the linearly extrapolated ``acos`` they use.

PyTorch3D's ``so3_rotation_angle``, ``so3_relative_angle`` (``pytorch3d.transforms.so3``) and
``acos_linear_extrapolation`` (``pytorch3d.transforms.math``), with the same values and
gradients. The angle of a rotation ``R`` is ``acos((trace(R) - 1) / 2)``; ``acos`` has an
infinite slope at ``+-1`` (angles 0 and ``pi``), so by default it is continued linearly beyond
``+-(1 - cos_bound)``: finite gradients everywhere, and a value within ``O(cos_bound)`` of the
true angle.

Dimensions:
    ``N``: rotations in the batch.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_floating, check_positive_number, describe

__all__ = ["acos_linear_extrapolation", "so3_relative_angle", "so3_rotation_angle"]

_DEFAULT_BOUND = 1.0 - 1e-4


def _check_bounds(bounds: object) -> tuple[float, float]:
    ok = (
        isinstance(bounds, (tuple, list))
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    )
    if not ok:
        raise TypeError(f"bounds: expected a pair of floats (lower, upper), got {describe(bounds)}")
    lower, upper = float(bounds[0]), float(bounds[1])
    if lower > upper:
        raise ValueError(
            "lower bound has to be smaller or equal to upper bound. "
            f"bounds: expected lower <= upper, got {bounds!r}"
        )
    if lower <= -1.0 or upper >= 1.0:
        raise ValueError(
            "Both lower bound and upper bound have to be within (-1, 1). "
            f"bounds: expected values in (-1, 1), got {bounds!r}"
        )
    return lower, upper


def _acos_tangent(x: torch.Tensor, x0: float) -> torch.Tensor:
    """The tangent line of ``acos`` at ``x0``, evaluated at ``x``."""
    return (x - x0) * (-1.0 / math.sqrt(1.0 - x0 * x0)) + math.acos(x0)


def acos_linear_extrapolation(
    x: torch.Tensor, bounds: tuple[float, float] = (-_DEFAULT_BOUND, _DEFAULT_BOUND)
) -> torch.Tensor:
    """``acos(x)`` inside ``bounds``, its tangent line at the nearer bound outside them.

    Args:
        x: any shape ``(...)``; values outside ``[-1, 1]`` are fine (extrapolated).
        bounds: ``(lower, upper)`` with ``-1 < lower <= upper < 1``.

    Returns:
        ``(...)``, the same shape as ``x``.

    Raises:
        ValueError: bounds out of order or outside ``(-1, 1)``.
    """
    check_floating(x, "x")
    lower, upper = _check_bounds(bounds)
    above = x >= upper
    below = x <= lower
    inside = ~(above | below)
    # acos is evaluated on a stand-in value outside: finite, and its gradient is dropped.
    safe = torch.where(inside, x, torch.zeros_like(x))
    out = torch.where(inside, torch.acos(safe), _acos_tangent(x, upper))
    return torch.where(below, _acos_tangent(x, lower), out)


def _check_rotations(R: object, name: str) -> torch.Tensor:
    check_floating(R, name)
    if R.ndim != 3 or R.shape[1:] != (3, 3):
        raise ValueError(
            f"Input has to be a batch of 3x3 Tensors. {name}: expected shape (N, 3, 3), "
            f"got shape {tuple(R.shape)}"
        )
    return R


def _check_cos_angle(cos_angle: object) -> bool:
    if not isinstance(cos_angle, (bool, int)) or cos_angle not in (0, 1):
        raise TypeError(f"cos_angle: expected a bool, got {describe(cos_angle)}")
    return bool(cos_angle)


def so3_rotation_angle(
    R: torch.Tensor, eps: float = 1e-4, cos_angle: bool = False, cos_bound: float = 1e-4
) -> torch.Tensor:
    """Rotation angles ``acos((trace(R) - 1) / 2)`` of rotation matrices.

    Reads the traces on the host to check them (as PyTorch3D does); skipped while compiling.

    Args:
        R: rotation matrices ``(N, 3, 3)``.
        eps: tolerance of the trace check: traces must lie in ``[-1 - eps, 3 + eps]``.
        cos_angle: return the cosines of the angles instead of the angles.
        cos_bound: ``acos`` is extrapolated linearly beyond ``+-(1 - cos_bound)`` (finite
            gradients at angles 0 and ``pi``); ``0`` uses the plain ``acos``.

    Returns:
        Angles in radians (or their cosines) ``(N,)``.

    Raises:
        ValueError: ``R`` is not ``(N, 3, 3)``, or a trace is out of range.
    """
    _check_rotations(R, "R")
    eps = check_positive_number(eps, "eps", allow_zero=True)
    cos_angle = _check_cos_angle(cos_angle)
    cos_bound = check_positive_number(cos_bound, "cos_bound", allow_zero=True)
    trace = R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2]  # (N,)
    if not torch.compiler.is_compiling() and trace.numel():
        with torch.no_grad():
            bad = (trace < -1.0 - eps) | (trace > 3.0 + eps)
            if bool(bad.any()):
                worst = trace[bad][0]
                raise ValueError(
                    "A matrix has trace outside valid range [-1-eps,3+eps]. R: expected "
                    f"rotation matrices (trace in [{-1 - eps:g}, {3 + eps:g}]), "
                    f"got a trace of {float(worst):g}"
                )
    cos = 0.5 * (trace - 1.0)  # (N,)
    if cos_angle:
        return cos
    if cos_bound > 0.0:
        bound = 1.0 - cos_bound
        return acos_linear_extrapolation(cos, (-bound, bound))
    return torch.acos(cos)


def so3_relative_angle(
    R1: torch.Tensor,
    R2: torch.Tensor,
    cos_angle: bool = False,
    cos_bound: float = 1e-4,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Angles of the relative rotations ``R1 @ R2^T`` (the geodesic distance on SO(3)).

    Args:
        R1: rotation matrices ``(N, 3, 3)``.
        R2: rotation matrices ``(N, 3, 3)``.
        cos_angle: return the cosines of the angles instead.
        cos_bound: as in :func:`so3_rotation_angle`.
        eps: as in :func:`so3_rotation_angle`.

    Returns:
        Angles in radians (or their cosines) ``(N,)``.

    Raises:
        ValueError: a wrong shape, batch sizes that differ, or a trace out of range.
    """
    _check_rotations(R1, "R1")
    _check_rotations(R2, "R2")
    if R1.shape[0] != R2.shape[0]:
        raise ValueError(
            f"R2: expected the batch size of R1 ({R1.shape[0]}), got shape {tuple(R2.shape)}"
        )
    return so3_rotation_angle(
        torch.bmm(R1, R2.transpose(1, 2)), cos_angle=cos_angle, cos_bound=cos_bound, eps=eps
    )

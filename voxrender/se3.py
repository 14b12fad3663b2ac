"""Rigid motions as 6-vectors: the exponential and logarithm maps of SE(3).

PyTorch3D's ``se3_exp_map`` / ``se3_log_map`` (``pytorch3d.transforms.se3``), same conventions,
values and gradients. A rigid motion is the ``4 x 4`` matrix, in PyTorch3D's row-vector layout
(``[x, 1] @ M``)::

    M = [[R^T, 0],
         [t,   1]]

with ``R`` a rotation acting on column vectors and ``t`` a translation. Its logarithm is the
6-vector ``[v | w]``: ``w`` the axis-angle vector of ``R`` and ``v = V(w)^-1 t`` with

    V(w) = I + (1 - cos a) / a^2 hat(w) + (a - sin a) / a^3 hat(w)^2,    a = |w|.

As in PyTorch3D, ``a`` is computed as ``sqrt(max(|w|^2, eps))``: for tiny rotations the
coefficients are those of the angle ``sqrt(eps)`` (the singular limit is smoothed, not exact).

Dimensions:
    ``N``: motions in the batch.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_positive_number
from .rotation_conversions import axis_angle_to_matrix, matrix_to_axis_angle
from .so3 import hat

__all__ = ["se3_exp_map", "se3_log_map"]


def _v_matrix(log_rotation: torch.Tensor, eps: float) -> torch.Tensor:
    """``V(w)`` ``(N, 3, 3)`` from axis-angle vectors ``(N, 3)``, the angle clamped by ``eps``."""
    angle = torch.clamp((log_rotation * log_rotation).sum(-1), eps).sqrt()  # (N,)
    skew = hat(log_rotation)  # (N, 3, 3)
    first = ((1 - torch.cos(angle)) / angle**2)[:, None, None]
    second = ((angle - torch.sin(angle)) / angle**3)[:, None, None]
    eye = torch.eye(3, dtype=log_rotation.dtype, device=log_rotation.device)
    return eye + first * skew + second * torch.bmm(skew, skew)


def se3_exp_map(log_transform: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """6-vectors ``[v | w]`` -> rigid-motion matrices (row-vector layout).

    Args:
        log_transform: ``(N, 6)``: log-translation ``v`` then axis-angle rotation ``w``.
        eps: lower clamp of the squared rotation angle in ``V`` (see the module docstring).

    Returns:
        Matrices ``(N, 4, 4)`` ``[[R^T, 0], [V v, 1]]``.

    Raises:
        ValueError: ``log_transform`` is not ``(N, 6)``.
    """
    check_floating(log_transform, "log_transform")
    if log_transform.ndim != 2 or log_transform.shape[1] != 6:
        raise ValueError(
            "Expected input to be of shape (N, 6). log_transform: expected shape (N, 6), "
            f"got shape {tuple(log_transform.shape)}"
        )
    eps = check_positive_number(eps, "eps", allow_zero=True)
    v, w = log_transform[:, :3], log_transform[:, 3:]
    rot = axis_angle_to_matrix(w)  # (N, 3, 3), column-vector convention
    t = torch.bmm(_v_matrix(w, eps), v[:, :, None])  # (N, 3, 1)
    top = torch.cat((rot, t), dim=2)  # (N, 3, 4)
    bottom = torch.zeros_like(top[:, :1])  # (N, 1, 4)
    bottom[:, 0, 3] = 1.0
    return torch.cat((top, bottom), dim=1).transpose(1, 2)  # (N, 4, 4)


def se3_log_map(
    transform: torch.Tensor, eps: float = 1e-4, cos_bound: float = 1e-4
) -> torch.Tensor:
    """Rigid-motion matrices (row-vector layout) -> 6-vectors ``[v | w]``.

    The rotation part goes through :func:`~voxrender.matrix_to_axis_angle` (as PyTorch3D's
    ``so3_log_map`` does); ``v`` solves ``V(w) v = t``. Checks on the host that the last column
    is zero (as PyTorch3D does).

    Args:
        transform: ``(N, 4, 4)`` matrices ``[[R^T, 0], [t, 1]]``.
        eps: lower clamp of the squared rotation angle in ``V``.
        cos_bound: accepted for PyTorch3D compatibility; unused (as in PyTorch3D 0.7.9).

    Returns:
        ``(N, 6)``: log-translation then axis-angle rotation.

    Raises:
        ValueError: ``transform`` is not ``(N, 4, 4)`` or its last column is not zero.
    """
    check_floating(transform, "transform")
    if transform.ndim != 3 or transform.shape[1:] != (4, 4):
        raise ValueError(
            "Input tensor shape has to be (N, 4, 4). transform: expected shape (N, 4, 4), "
            f"got shape {tuple(transform.shape)}"
        )
    eps = check_positive_number(eps, "eps", allow_zero=True)
    check_positive_number(cos_bound, "cos_bound", allow_zero=True)
    column = transform[:, :3, 3]
    if not torch.compiler.is_compiling() and not torch.allclose(column, torch.zeros_like(column)):
        raise ValueError(
            "All elements of `transform[:, :3, 3]` should be 0. transform: expected a zero last "
            f"column (row-vector layout), got values up to {float(column.abs().max()):.3g}"
        )
    w = matrix_to_axis_angle(transform[:, :3, :3].transpose(1, 2))  # (N, 3)
    t = transform[:, 3, :3]  # (N, 3)
    v = torch.linalg.solve(_v_matrix(w, eps), t[:, :, None])[:, :, 0]
    return torch.cat((v, w), dim=1)

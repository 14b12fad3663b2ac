"""The world -> view transform of cameras: ``p_view = p_world @ R + T`` (row vectors).

See :mod:`voxrender.cameras` for the coordinate systems.

Dimensions:
    ``N``: cameras in the batch.
"""

from __future__ import annotations

import torch

from .._checks import (
    broadcast_batch_sizes,
    check_floating,
    check_same_device,
    check_shape_worded,
)
from .._transform_helpers import affine_matrix
from ..transforms import Transform3d
from ._helpers import DEFAULT_R, DEFAULT_T

__all__ = [
    "get_world_to_view_transform",
    "world_to_view",
]


def world_to_view(R: torch.Tensor, T: torch.Tensor) -> Transform3d:
    """``p -> p @ R + T`` as ``Rotate(R).compose(Translate(T))`` (no validation).

    As in PyTorch3D, the rotation is the composition's first factor, so :meth:`inverse` (and the
    camera centre, the unprojection) inverts ``R`` numerically: gradients w.r.t. ``R`` are
    PyTorch3D's also where ``R`` is not exactly orthonormal.
    """
    n = max(R.shape[0], T.shape[0])
    zero = T.new_zeros(1, 3)
    eye = torch.eye(3, dtype=T.dtype, device=T.device)[None]
    rotation = affine_matrix(R, zero).expand(n, 4, 4)  # (N, 4, 4)
    translation = affine_matrix(eye, T).expand(n, 4, 4)
    matrix = affine_matrix(R, T)  # (N, 4, 4)
    inverse_translation = lambda: affine_matrix(eye, -T).expand(n, 4, 4)  # noqa: E731
    return Transform3d._composed(matrix, ((rotation, None), (translation, inverse_translation)))


def get_world_to_view_transform(
    R: torch.Tensor = DEFAULT_R, T: torch.Tensor = DEFAULT_T
) -> Transform3d:
    """World -> view transform: rotate by ``R``, then translate by ``T`` (``p @ R + T``).

    Args:
        R: rotations ``(N, 3, 3)``.
        T: translations ``(N, 3)``; batch sizes 1 and ``N`` broadcast.

    Returns:
        A Transform3d of ``N`` transforms.
    """
    if R is DEFAULT_R and isinstance(T, torch.Tensor) and T.is_floating_point():
        R = DEFAULT_R.to(device=T.device, dtype=T.dtype)
    check_floating(R, "R")
    check_shape_worded(
        R,
        "R",
        f"Expected R to have shape (N, 3, 3); got {R.shape!r}",
        ndim=3,
        last=(3, 3),
        spec="(N, 3, 3)",
    )
    if T is DEFAULT_T:
        T = DEFAULT_T.to(device=R.device, dtype=R.dtype)
    check_floating(T, "T")
    check_shape_worded(
        T,
        "T",
        f"Expected T to have shape (N, 3); got {T.shape!r}",
        ndim=2,
        last=(3,),
        spec="(N, 3)",
    )
    if T.dtype != R.dtype:
        raise TypeError(f"T: expected dtype {R.dtype} (R's), got {T.dtype}")
    check_same_device("T", T, R.device)
    broadcast_batch_sizes({"R": R.shape[0], "T": T.shape[0]})
    return world_to_view(R, T)

"""``RotateAxisAngle``: a :class:`~voxrender.Rotate` about one coordinate axis by given angles.

PyTorch3D's ``pytorch3d.transforms.RotateAxisAngle``: the same constructor, the same matrices
(row-vector convention, ``p -> p @ R^T`` with ``R`` the column-vector rotation about the axis, so
a positive angle turns anticlockwise seen from the axis' tip, right hand).

Dimensions:
    ``N``: transforms in the batch (one per angle).
"""

from __future__ import annotations

import math

import torch

from ._checks import describe
from ._transform_helpers import check_float_dtype, coordinate, make_device
from .rotation_conversions import _elementary_rotation
from .transforms import Rotate

__all__ = ["RotateAxisAngle"]


class RotateAxisAngle(Rotate):
    """Rotations about the ``X``, ``Y`` or ``Z`` axis.

    Args:
        angle: a number, a 0-d tensor or a tensor ``(N,)`` of angles (one transform each).
        axis: ``"X"``, ``"Y"`` or ``"Z"`` (any case); every angle turns about this axis.
        degrees: whether the angles are in degrees (default) or radians.
        dtype: floating dtype of the matrices (default float32, as in PyTorch3D: a float64
            ``angle`` is converted).
        device: device (default: ``angle``'s if a tensor, else the CPU).

    Raises:
        ValueError: an unknown axis or an ``angle`` with more than one dimension.
    """

    def __init__(
        self,
        angle: float | torch.Tensor,
        axis: str = "X",
        degrees: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(axis, str):
            raise TypeError(f"axis: expected one of 'X', 'Y', 'Z', got {describe(axis)}")
        axis = axis.upper()
        if axis not in ("X", "Y", "Z"):
            raise ValueError(
                f"Expected axis to be one of ['X', 'Y', 'Z']; got {axis}. axis: expected one "
                f"of 'X', 'Y', 'Z' (any case), got {axis!r}"
            )
        if not isinstance(degrees, (bool, int)) or degrees not in (0, 1):
            raise TypeError(f"degrees: expected a bool, got {describe(degrees)}")
        check_float_dtype(dtype)
        if isinstance(angle, torch.Tensor) and angle.ndim > 1:
            raise ValueError(
                f"Expected tensor of shape (N,); got {tuple(angle.shape)!r} (in RotateAxisAngle). "
                f"angle: expected a number or a tensor of shape () or (N,), got shape "
                f"{tuple(angle.shape)}"
            )
        if device is None:
            device = angle.device if isinstance(angle, torch.Tensor) else "cpu"
        device = make_device(device)
        angle = coordinate(angle, "angle", dtype, device)  # (N,)
        if degrees:
            angle = angle / 180.0 * math.pi
        matrices = _elementary_rotation(axis, angle).transpose(1, 2)  # (N, 3, 3), row vectors
        super().__init__(matrices, dtype=dtype, device=device)

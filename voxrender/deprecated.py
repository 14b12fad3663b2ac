"""PyTorch3D's deprecated names, kept for old scripts: each warns and returns the modern object.

As in PyTorch3D 0.7.9 these are functions (not classes) that emit a
``PendingDeprecationWarning`` and build the modern camera, so ``isinstance`` checks must use
the modern class:

- ``OpenGLPerspectiveCameras`` -> :class:`~voxrender.FoVPerspectiveCameras`;
- ``OpenGLOrthographicCameras`` -> :class:`~voxrender.FoVOrthographicCameras` (``top``,
  ``bottom``, ``left``, ``right`` become ``max_y``, ``min_y``, ``min_x``, ``max_x``);
- ``SfMPerspectiveCameras`` -> :class:`~voxrender.PerspectiveCameras`;
- ``SfMOrthographicCameras`` -> :class:`~voxrender.OrthographicCameras`;
- ``so3_exponential_map`` -> :func:`~voxrender.so3_exp_map`.

Dimensions:
    ``N``: cameras (or rotations) in a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .cameras._helpers import DEFAULT_R, DEFAULT_T
from .cameras.focal import OrthographicCameras, PerspectiveCameras
from .cameras.fov import FoVOrthographicCameras, FoVPerspectiveCameras
from .so3 import so3_exp_map

__all__ = [
    "OpenGLOrthographicCameras",
    "OpenGLPerspectiveCameras",
    "SfMOrthographicCameras",
    "SfMPerspectiveCameras",
    "so3_exponential_map",
]

_Float = float | Sequence[float] | torch.Tensor


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated, Use {new} instead. {old} will be removed in future releases.",
        PendingDeprecationWarning,
        stacklevel=3,
    )


def OpenGLPerspectiveCameras(
    znear: _Float = 1.0,
    zfar: _Float = 100.0,
    aspect_ratio: _Float = 1.0,
    fov: _Float = 60.0,
    degrees: bool = True,
    R: torch.Tensor = DEFAULT_R,
    T: torch.Tensor = DEFAULT_T,
    device: torch.device | str = "cpu",
) -> FoVPerspectiveCameras:
    """Deprecated: warns, then returns ``FoVPerspectiveCameras`` with the same arguments.

    Args:
        znear, zfar, aspect_ratio, fov, degrees, R, T, device: as for
            :class:`~voxrender.FoVPerspectiveCameras` (``R`` ``(N, 3, 3)``, ``T`` ``(N, 3)``).

    Returns:
        A :class:`~voxrender.FoVPerspectiveCameras`.
    """
    _warn("OpenGLPerspectiveCameras", "FoVPerspectiveCameras")
    return FoVPerspectiveCameras(
        znear=znear,
        zfar=zfar,
        aspect_ratio=aspect_ratio,
        fov=fov,
        degrees=degrees,
        R=R,
        T=T,
        device=device,
    )


def OpenGLOrthographicCameras(
    znear: _Float = 1.0,
    zfar: _Float = 100.0,
    top: _Float = 1.0,
    bottom: _Float = -1.0,
    left: _Float = -1.0,
    right: _Float = 1.0,
    scale_xyz: Sequence | torch.Tensor = ((1.0, 1.0, 1.0),),
    R: torch.Tensor = DEFAULT_R,
    T: torch.Tensor = DEFAULT_T,
    device: torch.device | str = "cpu",
) -> FoVOrthographicCameras:
    """Deprecated: warns, then returns ``FoVOrthographicCameras``.

    Args:
        znear, zfar: clipping depths.
        top, bottom, left, right: the view box, passed as ``max_y``, ``min_y``, ``min_x`` and
            ``max_x``.
        scale_xyz: ``(N, 3)`` scales.
        R, T, device: as for :class:`~voxrender.FoVOrthographicCameras`.

    Returns:
        A :class:`~voxrender.FoVOrthographicCameras`.
    """
    _warn("OpenGLOrthographicCameras", "FoVOrthographicCameras")
    return FoVOrthographicCameras(
        znear=znear,
        zfar=zfar,
        max_y=top,
        min_y=bottom,
        max_x=right,
        min_x=left,
        scale_xyz=scale_xyz,
        R=R,
        T=T,
        device=device,
    )


def SfMPerspectiveCameras(
    focal_length: _Float = 1.0,
    principal_point: Sequence | torch.Tensor = ((0.0, 0.0),),
    R: torch.Tensor = DEFAULT_R,
    T: torch.Tensor = DEFAULT_T,
    device: torch.device | str = "cpu",
) -> PerspectiveCameras:
    """Deprecated: warns, then returns ``PerspectiveCameras`` (in NDC) with the same arguments.

    Args:
        focal_length, principal_point, R, T, device: as for
            :class:`~voxrender.PerspectiveCameras`.

    Returns:
        A :class:`~voxrender.PerspectiveCameras`.
    """
    _warn("SfMPerspectiveCameras", "PerspectiveCameras")
    return PerspectiveCameras(
        focal_length=focal_length, principal_point=principal_point, R=R, T=T, device=device
    )


def SfMOrthographicCameras(
    focal_length: _Float = 1.0,
    principal_point: Sequence | torch.Tensor = ((0.0, 0.0),),
    R: torch.Tensor = DEFAULT_R,
    T: torch.Tensor = DEFAULT_T,
    device: torch.device | str = "cpu",
) -> OrthographicCameras:
    """Deprecated: warns, then returns ``OrthographicCameras`` (in NDC) with the same arguments.

    Args:
        focal_length, principal_point, R, T, device: as for
            :class:`~voxrender.OrthographicCameras`.

    Returns:
        An :class:`~voxrender.OrthographicCameras`.
    """
    _warn("SfMOrthographicCameras", "OrthographicCameras")
    return OrthographicCameras(
        focal_length=focal_length, principal_point=principal_point, R=R, T=T, device=device
    )


def so3_exponential_map(log_rot: torch.Tensor, eps: float = 0.0001) -> torch.Tensor:
    """Deprecated: warns, then returns :func:`~voxrender.so3_exp_map` ``(N, 3, 3)`` of ``(N, 3)``."""
    _warn("so3_exponential_map", "so3_exp_map")
    return so3_exp_map(log_rot, eps)

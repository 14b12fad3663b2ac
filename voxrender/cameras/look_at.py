"""Look-at helpers: camera positions on spheres, and the ``R, T`` of cameras looking at a point.

The rotations are world -> view (``p @ R + T``) with the camera's x, y, z axes as columns; see
:mod:`voxrender.cameras` for the coordinate systems.

Dimensions:
    ``N``: cameras in the batch.
"""

from __future__ import annotations

import math

import torch

from .._checks import broadcast_batch_sizes
from .._transform_helpers import make_device
from ._helpers import (
    BatchFloat,
    check_bool,
    expand,
    scalar_field,
    user_dtype,
    vector_field,
)

__all__ = [
    "camera_position_from_spherical_angles",
    "look_at_rotation",
    "look_at_view_transform",
]


# ---------------------------------------------------------------------------------------------
# Look-at helpers
# ---------------------------------------------------------------------------------------------


def _worded_vector(value: object, name: str, dtype, device) -> torch.Tensor:
    """:func:`vector_field` with PyTorch3D's wording leading its shape errors."""
    try:
        return vector_field(value, name, dtype, device)
    except ValueError as e:
        raise type(e)(f"Expected arg {name} to have shape (N, 3) ({e})") from None


def _broadcast_inputs(
    scalars: dict[str, object], vectors: dict[str, object], device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Scalars -> ``(N,)``, 3-vectors -> ``(N, 3)``, in a common dtype on ``device``."""
    device = make_device(device)
    dtype = user_dtype([*scalars.values(), *vectors.values()])
    s = {k: scalar_field(v, k, dtype, device) for k, v in scalars.items()}
    v = {k: _worded_vector(x, k, dtype, device) for k, x in vectors.items()}
    sizes = {k: t.shape[0] for k, t in (*s.items(), *v.items())}
    n = broadcast_batch_sizes(sizes)
    return {k: expand(t, n) for k, t in s.items()}, {k: expand(t, n) for k, t in v.items()}


def _spherical_to_position(dist, elev, azim, degrees: bool) -> torch.Tensor:  # (N, 3)
    if degrees:
        elev = math.pi / 180.0 * elev
        azim = math.pi / 180.0 * azim
    x = dist * torch.cos(elev) * torch.sin(azim)
    y = dist * torch.sin(elev)
    z = dist * torch.cos(elev) * torch.cos(azim)
    return torch.stack((x, y, z), dim=1)


def camera_position_from_spherical_angles(
    distance: BatchFloat,
    elevation: BatchFloat,
    azimuth: BatchFloat,
    degrees: bool = True,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Points on spheres around the origin: ``(d cos(e) sin(a), d sin(e), d cos(e) cos(a))``.

    Args:
        distance: radii (a float, a list or a tensor ``()`` / ``(N,)``).
        elevation: angles above the XZ plane, like ``distance``.
        azimuth: angles about +Y from +Z, like ``distance``.
        degrees: whether the angles are in degrees.
        device: output device (tensors given are moved there).

    Returns:
        Positions ``(N, 3)``.
    """
    check_bool(degrees, "degrees")
    s, _ = _broadcast_inputs(
        {"distance": distance, "elevation": elevation, "azimuth": azimuth}, {}, device
    )
    return _spherical_to_position(s["distance"], s["elevation"], s["azimuth"], degrees)


def _normalize(v: torch.Tensor) -> torch.Tensor:
    """``v / max(|v|, 1e-5)`` along the last dimension (PyTorch3D's look-at normalisation)."""
    return torch.nn.functional.normalize(v, dim=1, eps=1e-5)


def _check_distinct(position: torch.Tensor, at: torch.Tensor, name: str) -> None:
    """Refuse a camera at the point it looks at.

    It has no viewing direction (PyTorch3D returns a matrix that is not a rotation). Checked
    where readable without a host sync (CPU, not compiling).
    """
    if position.device.type != "cpu" or torch.compiler.is_compiling():
        return
    with torch.no_grad():
        distance = (at - position).norm(dim=1)  # (N,)
        close = distance < 1e-5
        if bool(close.any()):
            i = int(close.nonzero()[0, 0])
            raise ValueError(
                f"{name}: expected the camera away from `at` (|at - camera position| >= 1e-5), "
                f"got distance {float(distance[i]):g} for camera {i}"
            )


def _look_at_rotation(position: torch.Tensor, at: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    z_axis = _normalize(at - position)  # (N, 3)
    side = torch.cross(up, z_axis, dim=1)  # (N, 3)
    length = side.norm(dim=1, keepdim=True)  # (N, 1)
    # PyTorch3D's x axis wherever |up x z| >= 1e-5. Below that (``up`` nearly parallel to the
    # viewing direction) PyTorch3D's result is not always a rotation; there the direction of
    # ``up x z`` is normalised exactly instead (what PyTorch3D's own fallback computes when it
    # triggers), and where it vanishes altogether a fixed world axis orthogonalised against z.
    tiny = torch.finfo(side.dtype).tiny
    exact = side / torch.where(length > tiny, length, torch.ones_like(length))
    helper = torch.zeros_like(z_axis)
    near_x = z_axis[:, :1].abs() > 0.9  # (N, 1)
    helper[:, 0] = 1.0
    helper = torch.where(near_x, helper.roll(2, dims=1), helper)  # (1, 0, 0) or (0, 0, 1)
    fixed = _normalize(helper - (helper * z_axis).sum(1, keepdim=True) * z_axis)
    x_axis = torch.where(length >= 1e-5, _normalize(side), torch.where(length > tiny, exact, fixed))
    y_axis = _normalize(torch.cross(z_axis, x_axis, dim=1))
    return torch.stack((x_axis, y_axis, z_axis), dim=2)  # columns are the camera axes


def look_at_rotation(
    camera_position, at=((0, 0, 0),), up=((0, 1, 0),), device: torch.device | str = "cpu"
) -> torch.Tensor:
    """World -> view rotations of cameras at ``camera_position`` looking at ``at``.

    Args:
        camera_position: ``(N, 3)`` (tensor or nested sequence; ``(3,)`` means one camera).
        at: points looked at, ``(N, 3)`` or ``(1, 3)``.
        up: up directions, ``(N, 3)`` or ``(1, 3)``.
        device: output device (tensors given are moved there).

    Returns:
        Rotations ``(N, 3, 3)`` whose columns are the camera's x, y, z axes in world space.
    """
    _, v = _broadcast_inputs({}, {"camera_position": camera_position, "at": at, "up": up}, device)
    _check_distinct(v["camera_position"], v["at"], "camera_position")
    return _look_at_rotation(v["camera_position"], v["at"], v["up"])


def look_at_view_transform(
    dist: BatchFloat = 1.0,
    elev: BatchFloat = 0.0,
    azim: BatchFloat = 0.0,
    degrees: bool = True,
    eye=None,
    at=((0, 0, 0),),
    up=((0, 1, 0),),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``R, T`` of cameras looking at ``at``, placed by spherical angles around it or at ``eye``.

    Args:
        dist: distances from ``at`` (a float, a list or a tensor ``()`` / ``(N,)``).
        elev: elevations, like ``dist``.
        azim: azimuths, like ``dist``.
        degrees: whether the angles are in degrees.
        eye: camera positions ``(N, 3)``; when given, ``dist``, ``elev`` and ``azim`` are ignored.
        at: points looked at, ``(N, 3)`` or ``(1, 3)``.
        up: up directions, ``(N, 3)`` or ``(1, 3)``.
        device: output device (tensors given are moved there).

    Returns:
        ``R`` ``(N, 3, 3)`` and ``T`` ``(N, 3)`` for :class:`FoVPerspectiveCameras`.
    """
    check_bool(degrees, "degrees")
    if eye is not None:
        _, v = _broadcast_inputs({}, {"eye": eye, "at": at, "up": up}, device)
        position = v["eye"]
    else:
        s, v = _broadcast_inputs(
            {"dist": dist, "elev": elev, "azim": azim}, {"at": at, "up": up}, device
        )
        position = _spherical_to_position(s["dist"], s["elev"], s["azim"], degrees) + v["at"]
    _check_distinct(position, v["at"], "eye" if eye is not None else "dist")
    R = _look_at_rotation(position, v["at"], v["up"])
    T = -torch.matmul(R.transpose(1, 2), position[:, :, None])[:, :, 0]
    return R, T

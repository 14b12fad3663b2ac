"""Camera helpers of ``pytorch3d.renderer.camera_utils``: batch joining, turning on the spot.

- :func:`join_cameras_as_batch`: one camera batch from several of the same kind.
- :func:`rotate_on_spot`: new ``R, T`` for cameras turned in place.
- :func:`camera_to_eye_at_up`: ``eye``, ``at`` and ``up`` of a world -> view transform (the
  inverse of :func:`~voxrender.look_at_view_transform`).

Conventions as in :mod:`voxrender.cameras`: world -> view is ``p_view = p_world @ R + T``.

Dimensions:
    ``N``: cameras (or rotations) in a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import check_floating, describe
from ..transforms import Transform3d
from .base import CamerasBase

__all__ = ["camera_to_eye_at_up", "join_cameras_as_batch", "rotate_on_spot"]


def join_cameras_as_batch(cameras_list: Sequence[CamerasBase]) -> CamerasBase:
    """Concatenate camera batches of one kind into one batch (fields joined along the batch).

    Args:
        cameras_list: a non-empty sequence of cameras of the same class, on the same device and
            with the same batch-wide settings (``degrees``, ``in_ndc``). A field must be set in
            all of them or in none (e.g. ``K``, ``image_size``).

    Returns:
        Cameras of that class with ``sum(len(c) for c in cameras_list)`` cameras; tensors are
        concatenated (gradients flow back to every input).

    Raises:
        ValueError: an empty list, a non-camera, mixed classes or devices, a field set in only
            some cameras, or batch-wide settings that differ.
    """
    if not isinstance(cameras_list, (list, tuple)) or len(cameras_list) == 0:
        raise ValueError(
            f"cameras_list: expected a non-empty list of cameras, got {describe(cameras_list)}"
        )
    for i, cam in enumerate(cameras_list):
        if not isinstance(cam, CamerasBase):
            raise ValueError(
                "cameras in cameras_list must inherit from CamerasBase. "
                f"cameras_list[{i}]: expected cameras, got {describe(cam)}"
            )
    first = cameras_list[0]
    for i, cam in enumerate(cameras_list[1:], start=1):
        if type(cam) is not type(first):
            raise ValueError(
                "All cameras must be of the same type. "
                f"cameras_list[{i}]: expected {type(first).__name__}, got {type(cam).__name__}"
            )
        if cam.device != first.device:
            raise ValueError(
                "All cameras in the batch must be on the same device. "
                f"cameras_list[{i}]: expected device {first.device}, got {cam.device}"
            )
    kwargs: dict[str, object] = {"device": first.device}
    for name in first._SHARED_FIELDS:
        values = [getattr(cam, name) for cam in cameras_list]
        if any(v != values[0] for v in values):
            raise ValueError(
                f"Attribute {name} is not constant across inputs. {name.lstrip('_')}: "
                f"expected one value for all cameras, got {values}"
            )
        kwargs[name.lstrip("_")] = values[0]
    for name in first._FIELDS:
        values = [getattr(cam, name) for cam in cameras_list]
        present = [v is not None for v in values]
        if not any(present):
            continue
        if not all(present):
            raise ValueError(
                f"Attribute {name} is inconsistently present. {name}: expected it set in all "
                f"cameras or in none, got it set in {sum(present)} of {len(values)}"
            )
        kwargs[name] = torch.cat(values, dim=0)
    return type(first)(**kwargs)


def _batched(x: object, name: str, ndim: int, spec: str) -> torch.Tensor:
    check_floating(x, name)
    if x.ndim == ndim - 1:
        x = x[None]
    if x.ndim != ndim or x.shape[1:] != (3,) * (ndim - 1):
        raise ValueError(
            f"Invalid {name}. {name}: expected shape {spec}, got shape {tuple(x.shape)}"
        )
    return x


def rotate_on_spot(
    R: torch.Tensor, T: torch.Tensor, rotation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn cameras in place: the new world -> view rotation is ``R @ rotation^T``.

    The camera centre ``C = -T @ R^T`` is kept, so ``T_new = C_world`` mapped by the new
    rotation: ``T_new = R_new^T @ (R @ T)`` (column form). Seen from the camera, ``rotation``
    (a column-vector rotation, e.g. from :func:`~voxrender.axis_angle_to_matrix`) about view
    ``+Y`` turns the view to the right.

    Args:
        R: ``(3, 3)`` or ``(N, 3, 3)`` world -> view rotations.
        T: ``(3,)`` or ``(N, 3)`` translations (the same ``N`` as ``R``).
        rotation: ``(3, 3)`` or ``(n, 3, 3)``; ``n`` and ``N`` are equal or one of them is 1.

    Returns:
        ``(R_new, T_new)``: ``(max(N, n), 3, 3)`` and ``(max(N, n), 3)``.

    Raises:
        ValueError: a wrong shape, or batch sizes that do not broadcast.
    """
    R = _batched(R, "R", 3, "(3, 3) or (N, 3, 3)")
    T = _batched(T, "T", 2, "(3,) or (N, 3)")
    rotation = _batched(rotation, "rotation", 3, "(3, 3) or (n, 3, 3)")
    if R.shape[0] != T.shape[0]:
        raise ValueError(
            f"T: expected the batch size of R ({R.shape[0]}), got shape {tuple(T.shape)}"
        )
    if rotation.shape[0] != R.shape[0] and 1 not in (rotation.shape[0], R.shape[0]):
        raise ValueError(
            f"rotation: expected a batch size of 1 or {R.shape[0]} (that of R), "
            f"got shape {tuple(rotation.shape)}"
        )
    new_R = R @ rotation.transpose(1, 2)  # (max(N, n), 3, 3)
    view_of_origin = torch.bmm(R, T[:, :, None])  # (N, 3, 1)
    new_T = torch.matmul(new_R.transpose(1, 2), view_of_origin)[:, :, 0]
    return new_R, new_T


def camera_to_eye_at_up(
    world_to_view_transform: Transform3d,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera positions, looked-at points and up vectors of world -> view transforms.

    Feeding the result to :func:`~voxrender.look_at_view_transform` gives back the same
    world -> view transform (for a rigid one).

    Args:
        world_to_view_transform: a :class:`~voxrender.Transform3d` of ``N`` cameras.

    Returns:
        ``(eye, at, up)``, each ``(N, 3)`` in world coordinates: the camera centre, the point one
        unit in front of it (view ``+Z``) and the view's ``+Y`` direction.
    """
    if not isinstance(world_to_view_transform, Transform3d):
        raise TypeError(
            "world_to_view_transform: expected a Transform3d, got "
            f"{describe(world_to_view_transform)}"
        )
    view_to_world = world_to_view_transform.inverse()
    matrix = view_to_world.get_matrix()
    view_points = torch.tensor(
        [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=matrix.dtype
    ).to(matrix.device)  # eye, at, eye + up in view space
    world = view_to_world.transform_points(view_points).reshape(-1, 3, 3)  # (N, 3, 3)
    eye, at, eye_plus_up = world.unbind(1)
    return eye, at, eye_plus_up - eye

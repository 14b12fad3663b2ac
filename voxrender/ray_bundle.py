"""Ray bundles: origins, directions and sample lengths of a batch of rays, and their 3D points.

A ray bundle parametrises the points ``origin + length * direction`` of many rays at once.
Directions need not be unit vectors: a length is measured in units of its ray's direction, so
for the raysamplers of :mod:`voxrender.raysampling` (whose directions step one unit of camera
depth) a length is the depth of the point in front of the camera.

Dimensions:
    ``...``: any leading (batch, spatial) dimensions, the same for every field of one bundle.
    ``P``: points per ray (``n_pts_per_ray``).
    ``M``: unique cameras drawn by a raysampler with ``n_rays_total``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from ._checks import ArgumentTypeError, check_same_device, check_shape, describe

__all__ = [
    "HeterogeneousRayBundle",
    "RayBundle",
    "ray_bundle_to_ray_points",
    "ray_bundle_variables_to_ray_points",
]


class RayBundle(NamedTuple):
    """A batch of rays and the lengths at which each ray is sampled.

    Attributes:
        origins: ray origins in world coordinates, ``(..., 3)``.
        directions: ray directions in world coordinates, ``(..., 3)``; not necessarily unit
            length (a length counts multiples of the direction).
        lengths: where each ray is sampled, ``(..., P)``.
        xys: the image-plane location each ray was emitted from, ``(..., 2)``.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    lengths: torch.Tensor
    xys: torch.Tensor


@dataclasses.dataclass
class HeterogeneousRayBundle:
    """A ray bundle whose rays come from a varying number of rays per camera.

    Returned by the raysamplers when ``n_rays_total`` is set: the rays of all cameras are packed
    along the first dimension, camera by camera in the order of ``camera_ids``.

    Attributes:
        origins: ray origins in world coordinates, ``(..., 3)``.
        directions: ray directions in world coordinates, ``(..., 3)``.
        lengths: where each ray is sampled, ``(..., P)``.
        xys: the image-plane location each ray was emitted from, ``(..., 2)``.
        camera_ids: the distinct cameras that were drawn, ``(M,)`` (no particular order is
            promised; the raysamplers return them sorted).
        camera_counts: how many rays came from each camera of ``camera_ids``, ``(M,)``; they
            sum to the number of rays.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    lengths: torch.Tensor
    xys: torch.Tensor
    camera_ids: torch.LongTensor | None = None
    camera_counts: torch.LongTensor | None = None


def ray_bundle_variables_to_ray_points(
    rays_origins: torch.Tensor,
    rays_directions: torch.Tensor,
    rays_lengths: torch.Tensor,
) -> torch.Tensor:
    """Points ``origin + length * direction`` along each ray.

    Args:
        rays_origins: ray origins, ``(..., 3)``.
        rays_directions: ray directions, ``(..., 3)``; their norm scales the lengths.
        rays_lengths: sample lengths, ``(..., P)``.

    The leading dimensions ``...`` of the three tensors must broadcast together.

    Returns:
        The ray points, ``(..., P, 3)``.

    The points take the promoted dtype of the three (integer tensors are accepted, as in
    PyTorch3D: float32 origins with float64 lengths give float64 points).

    Raises:
        ValueError: an input that is not a real tensor (also a ``TypeError``), a wrong trailing
            size, leading dimensions that do not broadcast, or inputs on different devices.
    """
    _check_ray_variables(rays_origins, rays_directions, rays_lengths)
    # (..., 1, 3) + (..., P, 1) * (..., 1, 3) -> (..., P, 3)
    return rays_origins[..., None, :] + rays_lengths[..., :, None] * rays_directions[..., None, :]


def ray_bundle_to_ray_points(ray_bundle: RayBundle | HeterogeneousRayBundle) -> torch.Tensor:
    """Points along the rays of a bundle: ``origins + lengths * directions``.

    Args:
        ray_bundle: a :class:`RayBundle` or :class:`HeterogeneousRayBundle` (any object with
            ``origins (..., 3)``, ``directions (..., 3)`` and ``lengths (..., P)`` works).

    Returns:
        The ray points, ``(..., P, 3)``.
    """
    for field in ("origins", "directions", "lengths"):
        if not hasattr(ray_bundle, field):
            raise ArgumentTypeError(
                f"ray_bundle: expected a RayBundle or HeterogeneousRayBundle with a {field!r} "
                f"field, got {describe(ray_bundle)}"
            )
    return ray_bundle_variables_to_ray_points(
        ray_bundle.origins, ray_bundle.directions, ray_bundle.lengths
    )


def _check_real_tensor(value: object, name: str) -> torch.Tensor:
    """A real (floating-point or integer) tensor; bool and complex ones are refused."""
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    if value.dtype == torch.bool or value.is_complex():
        raise ArgumentTypeError(
            f"{name}: expected a real (floating-point or integer) tensor, got dtype {value.dtype}"
        )
    return value


def _check_ray_variables(
    origins: torch.Tensor, directions: torch.Tensor, lengths: torch.Tensor
) -> None:
    """Validate the three bundle tensors (shapes and devices only: no host-device sync).

    Dtypes may differ and may be integer: the points take the promoted dtype, as in PyTorch3D.
    """
    _check_real_tensor(origins, "rays_origins")
    _check_real_tensor(directions, "rays_directions")
    _check_real_tensor(lengths, "rays_lengths")
    check_shape(origins, "rays_origins", min_ndim=1, last=(3,), spec="(..., 3)")
    check_shape(directions, "rays_directions", min_ndim=1, last=(3,), spec="(..., 3)")
    check_shape(lengths, "rays_lengths", min_ndim=1, spec="(..., P)")
    for name, value in (("rays_directions", directions), ("rays_lengths", lengths)):
        check_same_device(name, value, origins.device)
    try:
        torch.broadcast_shapes(origins.shape[:-1], directions.shape[:-1], lengths.shape[:-1])
    except RuntimeError:
        raise ValueError(
            "rays_origins, rays_directions, rays_lengths: expected leading dimensions (...) that "
            f"broadcast together, got shapes {tuple(origins.shape)}, {tuple(directions.shape)}, "
            f"{tuple(lengths.shape)}"
        ) from None

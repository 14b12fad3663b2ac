"""The module-private helper of ``pytorch3d.renderer.implicit.utils`` that scripts import.

``pytorch3d.renderer.implicit.utils`` holds ``RayBundle``, ``HeterogeneousRayBundle``,
``ray_bundle_to_ray_points`` and ``ray_bundle_variables_to_ray_points`` (all in
:mod:`voxrender.ray_bundle`) and ``_validate_ray_bundle_variables``, here.

Dimensions:
    ``...``: leading (batch, spatial) dimensions, at least two, shared by the three tensors.
    ``P``: points per ray.
"""

from __future__ import annotations

import torch

from ._checks import check_tensor

__all__ = ["_validate_ray_bundle_variables"]


def _validate_ray_bundle_variables(
    rays_origins: torch.Tensor, rays_directions: torch.Tensor, rays_lengths: torch.Tensor
) -> None:
    """Check the shapes of a ray bundle's tensors, as PyTorch3D's namesake does (shapes only).

    Args:
        rays_origins: ``(..., 3)``.
        rays_directions: ``(..., 3)``.
        rays_lengths: ``(..., P)``.

    The three must have the same number of dimensions (at least 3) and the same ``...``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: the shapes break the rule above.
    """
    named = {
        "rays_origins": rays_origins,
        "rays_directions": rays_directions,
        "rays_lengths": rays_lengths,
    }
    for name, value in named.items():
        check_tensor(value, name)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in named.items())
    ndim = rays_origins.ndim
    if rays_directions.ndim != ndim or rays_lengths.ndim != ndim:
        raise ValueError(
            "rays_origins, rays_directions and rays_lengths have to have the same number of "
            f"dimensions. Got shapes {shapes}"
        )
    if ndim <= 2:
        raise ValueError(
            "rays_origins, rays_directions and rays_lengths have to have at least 3 dimensions. "
            f"Got shapes {shapes}"
        )
    leading = rays_origins.shape[:-1]
    if rays_directions.shape[:-1] != leading or rays_lengths.shape[:-1] != leading:
        raise ValueError(
            "The shapes of rays_origins, rays_directions and rays_lengths may differ only in "
            f"the last dimension. Got shapes {shapes}"
        )
    if rays_origins.shape[-1] != 3 or rays_directions.shape[-1] != 3:
        raise ValueError(
            "The size of the last dimension of rays_origins/rays_directions has to be 3. "
            f"Got shapes {shapes}"
        )

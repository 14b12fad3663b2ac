"""Rays in a volume's frames: world -> the volumes' local coordinates -> voxel-index lines.

Both renderers use it: the general path (:mod:`voxrender.renderer`) maps the rays to local
coordinates, the fused CPU path (:mod:`voxrender.fused`) goes on to lines ``u = a + t * b`` in the
voxel units of the margined voxel table (:mod:`voxrender.voxel_table`).
"""

from __future__ import annotations

import torch

from .voxel_table import PAD

__all__ = ["rays_to_local", "rays_to_voxel_lines"]


def rays_to_local(origins: torch.Tensor, directions: torch.Tensor, volumes):
    """World rays ``(B, ..., 3)`` -> the volumes' local coordinates, origins and directions.

    The world-to-local map of a volume is affine, so a ray maps through its origin and
    ``origin + direction``: one call of ``volumes.world_to_local_coords`` on ``(B, 2R, 3)``.

    Returns:
        ``origins_local (B, ..., 3)`` and ``directions_local (B, ..., 3)``.
    """
    batch = origins.shape[0]
    both = torch.stack((origins, origins + directions), dim=-2).reshape(batch, -1, 3)  # (B, 2R, 3)
    local = volumes.world_to_local_coords(both).reshape(*origins.shape[:-1], 2, 3)
    origins_local = local[..., 0, :]
    return origins_local, local[..., 1, :] - origins_local


def rays_to_voxel_lines(
    origins_local: torch.Tensor, directions_local: torch.Tensor, grid, align_corners: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays in normalised local coordinates -> ``u = a + t * b`` in margined voxel units.

    Args:
        origins_local, directions_local: ``(R, 3)``, ``(x, y, z)`` along ``(W, H, D)``.
        grid: ``(D, H, W)``.
        align_corners: the volumes' convention.

    Returns:
        ``a (3, R)`` and ``b (3, R)``, rows ``x, y, z``.
    """
    sizes = torch.tensor(grid[::-1], dtype=origins_local.dtype, device=origins_local.device)
    if align_corners:  # u = (x + 1) / 2 * (S - 1)
        scale, shift = (sizes - 1) / 2, (sizes - 1) / 2
    else:  # u = ((x + 1) * S - 1) / 2
        scale, shift = sizes / 2, (sizes - 1) / 2
    a = origins_local * scale + (shift + PAD[0])  # (R, 3)
    b = directions_local * scale  # (R, 3)
    return a.t().contiguous(), b.t().contiguous()

"""The tutorial's volumetric model and losses.

Dimension letters: ``V`` voxels per side, ``B`` views in a batch, ``H, W`` image size.
"""

from __future__ import annotations

import torch

from .backends import Backend

__all__ = ["VolumeModel", "fit_errors", "huber", "squared_error_sum"]

INIT_LOG_DENSITY = -4.0  # sigmoid(-4) ~ 0.018: a faint fog everywhere
INIT_LOG_COLOR = 0.0  # sigmoid(0) = 0.5: neutral grey


class VolumeModel(torch.nn.Module):
    """A ``V^3`` grid of densities and colours, stored as logits, rendered by a ``VolumeRenderer``.

    Args:
        backend: the library providing ``Volumes`` and the renderer pieces.
        volume_size: ``V``.
        extent: side of the cube (centred at the origin) the grid spans; the voxel size is
            ``extent / V`` and the raysampler's ``max_depth`` is ``extent``, as in the tutorial.
        image_size: ``(H, W)`` of the renders.
        n_pts_per_ray: points per ray.
        min_depth: the raysampler's ``min_depth``.
    """

    def __init__(
        self,
        backend: Backend,
        volume_size: int,
        extent: float,
        image_size: tuple[int, int],
        n_pts_per_ray: int,
        min_depth: float,
    ):
        super().__init__()
        shape = (volume_size,) * 3
        self.log_densities = torch.nn.Parameter(
            torch.full((1, *shape), INIT_LOG_DENSITY)
        )  # (1, V, V, V)
        self.log_colors = torch.nn.Parameter(
            torch.full((3, *shape), INIT_LOG_COLOR)
        )  # (3, V, V, V)
        self.voxel_size = extent / volume_size
        self.extent = extent
        self._volumes_cls = backend.Volumes
        raysampler = backend.NDCMultinomialRaysampler(
            image_width=image_size[1],
            image_height=image_size[0],
            n_pts_per_ray=n_pts_per_ray,
            min_depth=min_depth,
            max_depth=extent,
        )
        self.renderer = backend.VolumeRenderer(
            raysampler=raysampler, raymarcher=backend.EmissionAbsorptionRaymarcher()
        )

    def forward(self, cameras) -> torch.Tensor:
        """Render the volume from a batch of ``B`` cameras. Returns ``(B, H, W, 4)``: RGB, opacity."""
        batch = cameras.R.shape[0]
        densities = torch.sigmoid(self.log_densities)
        colors = torch.sigmoid(self.log_colors)
        volumes = self._volumes_cls(
            densities=densities[None].expand(batch, *densities.shape),  # (B, 1, V, V, V)
            features=colors[None].expand(batch, *colors.shape),  # (B, 3, V, V, V)
            voxel_size=self.voxel_size,
        )
        return self.renderer(cameras=cameras, volumes=volumes)[0]

    def fitted_volume(self) -> dict:
        """The volume after the sigmoid, on the CPU: what ``volume.pt`` holds."""
        return {
            "densities": torch.sigmoid(self.log_densities).detach().cpu(),  # (1, V, V, V)
            "colors": torch.sigmoid(self.log_colors).detach().cpu(),  # (3, V, V, V)
            "voxel_size": self.voxel_size,
            "extent": self.extent,
            "volume_size": self.log_densities.shape[-1],
        }


def huber(x: torch.Tensor, y: torch.Tensor, scaling: float = 0.1) -> torch.Tensor:
    """The tutorial's smooth-L1 error, elementwise: ``(sqrt(max(1 + (x-y)^2/s^2, 1e-4)) - 1) * s``."""
    diff_sq = (x - y) ** 2
    return ((1 + diff_sq / (scaling**2)).clamp(1e-4).sqrt() - 1) * float(scaling)


def fit_errors(
    rendered: torch.Tensor, target_images: torch.Tensor, target_silhouettes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's colour and silhouette errors (scalars).

    Args:
        rendered: ``(B, H, W, 4)`` renders, RGB then opacity.
        target_images: ``(B, H, W, 3)``.
        target_silhouettes: ``(B, H, W)``.

    Returns:
        ``color_err``, ``sil_err``: mean absolute huber errors.
    """
    rgb, alpha = rendered.split([3, 1], dim=-1)
    sil_err = huber(alpha[..., 0], target_silhouettes).abs().mean()
    color_err = huber(rgb, target_images).abs().mean()
    return color_err, sil_err


def squared_error_sum(rendered_rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per view ``sum((clamp(rendered_rgb, 0, 1) - target)^2)`` in float64, ``(B, H, W, 3) -> (B,)``.

    Per view, so that a total over many batches (``math.fsum`` of these) does not depend on
    how the views were batched.
    """
    squared = (rendered_rgb.clamp(0.0, 1.0) - target) ** 2
    return squared.flatten(1).sum(dim=1, dtype=torch.float64)

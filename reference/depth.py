"""Depth images of a fitted volume: ``depth.png`` in the run folder.

Uses voxrender's opt-in expected depth (``EmissionAbsorptionRaymarcher(return_depth=True,
normalize_depth=True)``, a voxrender extension PyTorch3D does not have): per pixel the mean
depth of what the ray sees, ``sum_i w_i t_i / sum_i w_i``, in camera depth units. With
``--backend pytorch3d`` no depth image is written.

The PNG is one row of up to :data:`MAX_VIEWS` views (the held-out views when there are any,
else the training views): depth coloured with matplotlib's ``viridis`` from near (dark) to far
(yellow) over the depths seen in those views, blended by the rendered opacity onto white.

Dimension letters: ``N`` views, ``H, W`` image size.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from matplotlib import colormaps

from .data import Views, make_cameras
from .plots import save_mosaic

__all__ = ["MAX_VIEWS", "depth_colors", "render_depths", "save_depth_images"]

MAX_VIEWS = 4


def render_depths(model, backend, views: Views, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean depth and opacity of ``views`` rendered from ``model``'s volume, on the CPU.

    Args:
        model: a :class:`~reference.model.VolumeModel` built on voxrender.
        backend: its :class:`~reference.backends.Backend` (voxrender's).
        views: the views whose cameras render.
        batch: views per render.

    Returns:
        ``depth (N, H, W)`` (0 where a ray sees nothing) and ``opacity (N, H, W)``.
    """
    raymarcher = backend.EmissionAbsorptionRaymarcher(return_depth=True, normalize_depth=True)
    renderer = backend.VolumeRenderer(
        raysampler=model.renderer.renderer.raysampler, raymarcher=raymarcher
    )
    densities = torch.sigmoid(model.log_densities)  # (1, V, V, V)
    colors = torch.sigmoid(model.log_colors)  # (3, V, V, V)
    keys = ("R", "T", "fov", "znear", "zfar", "aspect_ratio")
    depths, opacities = [], []
    with torch.no_grad():
        for start in range(0, len(views), batch):
            cams = {k: getattr(views, k)[start : start + batch] for k in keys}
            n = cams["R"].shape[0]
            volumes = backend.Volumes(
                densities=densities[None].expand(n, *densities.shape),  # (n, 1, V, V, V)
                features=colors[None].expand(n, *colors.shape),  # (n, 3, V, V, V)
                voxel_size=model.voxel_size,
            )
            images, _ = renderer(cameras=make_cameras(backend, **cams), volumes=volumes)
            opacities.append(images[..., 3].cpu())  # (n, H, W)
            depths.append(images[..., 4].cpu())  # (n, H, W)
    return torch.cat(depths), torch.cat(opacities)


def depth_colors(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """``viridis`` colours of ``depth (N, H, W)``, faded to white by the opacity: ``(N, H, W, 3)``.

    The colours span the depths seen where ``opacity (N, H, W)`` exceeds 0.5 (all pixels if none);
    they are blended by the opacity onto white.
    """
    seen = depth[opacity > 0.5] if np.any(opacity > 0.5) else depth.reshape(-1)
    near, far = float(seen.min()), float(seen.max())
    scaled = np.clip((depth - near) / (far - near), 0.0, 1.0) if far > near else 0.0 * depth
    rgb = colormaps["viridis"](scaled)[..., :3]  # (N, H, W, 3)
    alpha = np.clip(opacity, 0.0, 1.0)[..., None]
    return rgb * alpha + (1.0 - alpha)


def save_depth_images(
    path: str | os.PathLike, model, backend, heldout: Views | None, train: Views, batch: int
) -> bool:
    """Write ``path``: a PNG of the depth of up to :data:`MAX_VIEWS` views (held-out ones if given).

    Returns False (nothing written) when the backend has no depth output (PyTorch3D).
    """
    if backend.name != "voxrender":
        return False
    views = heldout if heldout is not None else train
    first = Views(**{k: (None if v is None else v[:MAX_VIEWS]) for k, v in vars(views).items()})
    depth, opacity = render_depths(model, backend, first, batch)
    frames = depth_colors(depth.numpy(), opacity.numpy())
    save_mosaic(path, frames, 1, frames.shape[0])
    return True

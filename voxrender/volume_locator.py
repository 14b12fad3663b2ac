"""``VolumeLocator``: where the voxels of a batch of grids sit, in local and world coordinates.

PyTorch3D's ``pytorch3d.structures.volumes.VolumeLocator``, and what ``Volumes.locator`` returns.
It holds the grid sizes and the local <-> world map of :class:`~voxrender.Volumes` without the
voxel values::

    world = local * (size_xyz - 1) / 2 * voxel_size - volume_translation

(``local`` spans ``[-1, 1]`` across each grid, ``x`` along the width axis; see
:mod:`voxrender.volumes`). Every method computes exactly what the same-named method of
:class:`~voxrender.Volumes` computes: a locator is a thin view of a ``Volumes`` (its own, or,
when constructed directly, one whose voxel values are an expanded zero, no memory).
``Volumes.locator`` shares its volumes' state: ``_set_local_to_world_transform`` on it moves
the volumes too, as in PyTorch3D.

Dimensions:
    ``B``: grids in the batch.
    ``D, H, W``: depth, height and width of the largest grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import describe
from ._transform_helpers import make_device
from .transforms import Transform3d
from .volumes import Volumes, _as_xyz_param

__all__ = ["VolumeLocator"]


def _grid_sizes_tensor(grid_sizes: object, batch_size: int, device: torch.device) -> torch.Tensor:
    """``grid_sizes`` in any PyTorch3D form -> a ``(B, 3)`` long tensor of ``(D, H, W)`` rows."""
    if isinstance(grid_sizes, torch.Tensor):
        if grid_sizes.ndim != 2 or grid_sizes.shape[1] != 3:
            raise ValueError(
                "`grid_sizes` has to be a 2-dim tensor of shape: (minibatch, 3). grid_sizes: "
                f"expected shape ({batch_size}, 3), got shape {tuple(grid_sizes.shape)}"
            )
        if grid_sizes.is_floating_point() or grid_sizes.is_complex():
            raise ValueError(
                f"grid_sizes: expected an integer tensor, got dtype {grid_sizes.dtype}"
            )
        rows = grid_sizes.to(device=device, dtype=torch.long)
    elif isinstance(grid_sizes, (list, tuple)) and len(grid_sizes) > 0:
        first = grid_sizes[0]
        if isinstance(first, (list, tuple, torch.Tensor)):
            if len(grid_sizes) != batch_size:
                raise ValueError(
                    "x should have a batch size of 'batch_size'. grid_sizes: expected one "
                    f"(D, H, W) per grid ({batch_size}), got {len(grid_sizes)}"
                )
            if any(len(g) != 3 for g in grid_sizes):
                raise ValueError(
                    "`grid_sizes` has to be a list of 3-dim tensors of shape: (height, width, "
                    f"depth). grid_sizes: expected (D, H, W) triples, got {grid_sizes!r}"
                )
            values = [[int(s) for s in g] for g in grid_sizes]
        elif isinstance(first, int) and not isinstance(first, bool):
            if len(grid_sizes) != 3 or not all(isinstance(s, int) for s in grid_sizes):
                raise ValueError(
                    f"grid_sizes: expected one (D, H, W) triple of ints, got {grid_sizes!r}"
                )
            values = [list(grid_sizes)] * batch_size
        else:
            raise ValueError(
                "`grid_sizes` can be a list/tuple of int or torch.Tensor. grid_sizes: expected "
                f"ints or (D, H, W) triples, got items of type {type(first).__name__}"
            )
        rows = torch.tensor(values, dtype=torch.long).reshape(-1, 3).to(device)
    else:
        raise ValueError(
            "grid_sizes must be either a list of tensors with shape (H, W, D), tensor with shape "
            "(batch_size, H, W, D) or a tuple of (H, W, D). grid_sizes: expected one of these, "
            f"got {describe(grid_sizes)}"
        )
    if rows.shape[0] != batch_size:
        raise ValueError(
            f"grid_sizes: expected {batch_size} rows (batch_size), got {rows.shape[0]}"
        )
    return rows


class VolumeLocator:
    """Grid sizes and placement of ``B`` voxel grids (PyTorch3D's ``VolumeLocator``).

    Args:
        batch_size: number of grids ``B``.
        grid_sizes: ``(D, H, W)`` for every grid; a list of ``B`` such triples (lists, tuples or
            tensors); or a ``(B, 3)`` integer tensor.
        device: where the locator's tensors live.
        voxel_size: a number, 3 numbers, or a tensor ``()``, ``(1,)``, ``(3,)``, ``(1, 3)``,
            ``(B, 1)`` or ``(B, 3)`` (world size of one voxel, ``xyz``).
        volume_translation: the grid centres sit at ``-volume_translation``; 3 numbers or a
            tensor ``(3,)``, ``(1, 3)`` or ``(B, 3)``.
        align_corners: whether the corner voxel centres sit at local ``-1`` / ``1``.

    Computations are in float32 (as in PyTorch3D), unless the locator belongs to a
    :class:`~voxrender.Volumes` (``Volumes.locator``), which computes in its own dtype.
    """

    def __init__(
        self,
        batch_size: int,
        grid_sizes: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
        device: torch.device | str,
        voxel_size: float | Sequence[float] | torch.Tensor = 1.0,
        volume_translation: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
        align_corners: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size: expected an int >= 0, got {describe(batch_size)}")
        if not isinstance(align_corners, (bool, int)) or align_corners not in (0, 1):
            raise TypeError(f"align_corners: expected a bool, got {describe(align_corners)}")
        device = make_device(device)
        sizes = _grid_sizes_tensor(grid_sizes, batch_size, device)  # (B, 3)
        resolution = tuple(int(s) for s in sizes.cpu().amax(0)) if batch_size else (0, 0, 0)
        # The voxel values are never read: one zero, expanded (no memory).
        densities = torch.zeros((), device=device).expand(batch_size, 1, *resolution)
        volumes = object.__new__(Volumes)
        volumes._set_state(
            densities=densities,
            features=None,
            grid_sizes=sizes,
            voxel_size=torch.ones(1, 3, device=device),
            translation=torch.zeros(1, 3, device=device),
            align_corners=bool(align_corners),
        )
        self._volumes = volumes
        self._set_local_to_world_transform(voxel_size, volume_translation)

    @classmethod
    def _of(cls, volumes: Volumes) -> VolumeLocator:
        """The locator of ``volumes``, sharing its state (what ``Volumes.locator`` returns)."""
        locator = object.__new__(cls)
        locator._volumes = volumes
        return locator

    # ------------------------------------------------------------------ PyTorch3D's attributes

    @property
    def device(self) -> torch.device:
        """The device of the volumes it locates."""
        return self._volumes.device

    @property
    def _batch_size(self) -> int:
        return len(self._volumes)

    @property
    def _grid_sizes(self) -> torch.Tensor:
        return self._volumes.get_grid_sizes()

    @property
    def _resolution(self) -> tuple[int, int, int]:
        return tuple(self._volumes.densities().shape[2:])

    @property
    def _align_corners(self) -> bool:
        return self._volumes.get_align_corners()

    @property
    def _local_to_world_transform(self) -> Transform3d:
        return self.get_local_to_world_coords_transform()

    def __len__(self) -> int:
        return len(self._volumes)

    def _set_local_to_world_transform(
        self,
        voxel_size: float | Sequence[float] | torch.Tensor = 1.0,
        volume_translation: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
    ) -> None:
        """Place the grids anew (in place; moves the owning ``Volumes`` too)."""
        v = self._volumes
        batch, dtype, device = len(v), v.densities().dtype, v.device
        params = {}
        for name, value in (("voxel_size", voxel_size), ("volume_translation", volume_translation)):
            # malformed forms raise ValueError (ArgumentTypeError: also a TypeError), as PyTorch3D
            params[name] = _as_xyz_param(
                value, name, batch, dtype, device, voxel_size=name == "voxel_size"
            )
        v._set_state(
            densities=v.densities(),
            features=v.features(),
            grid_sizes=v.get_grid_sizes(),
            voxel_size=params["voxel_size"],
            translation=params["volume_translation"],
            align_corners=v.get_align_corners(),
        )

    # ------------------------------------------------------------------ coordinates

    def get_grid_sizes(self) -> torch.Tensor:
        """Each grid's size ``(B, 3)`` (long), rows ``(D_i, H_i, W_i)``."""
        return self._volumes.get_grid_sizes()

    def get_coord_grid(self, world_coordinates: bool = True) -> torch.Tensor:
        """Coordinates of every voxel centre ``(B, D, H, W, 3)``, world or local."""
        return self._volumes.get_coord_grid(world_coordinates)

    def get_local_to_world_coords_transform(self) -> Transform3d:
        """The local -> world map as a ``Transform3d`` (matrix ``(B, 4, 4)``)."""
        return self._volumes.get_local_to_world_coords_transform()

    def get_world_to_local_coords_transform(self) -> Transform3d:
        """The world -> local map as a ``Transform3d`` (matrix ``(B, 4, 4)``)."""
        return self._volumes.get_world_to_local_coords_transform()

    def world_to_local_coords(self, points_3d_world: torch.Tensor) -> torch.Tensor:
        """World points ``(B, ..., 3)`` -> local coordinates ``(B, ..., 3)``."""
        return self._volumes.world_to_local_coords(points_3d_world)

    def local_to_world_coords(self, points_3d_local: torch.Tensor) -> torch.Tensor:
        """Local coordinates ``(B, ..., 3)`` -> world points ``(B, ..., 3)``."""
        return self._volumes.local_to_world_coords(points_3d_local)

    # ------------------------------------------------------------------ copies

    def clone(self) -> VolumeLocator:
        """A deep copy (tensors cloned), detached from any owning ``Volumes``."""
        return VolumeLocator._of(self._volumes.clone())

    def to(self, device: torch.device | str, copy: bool = False) -> VolumeLocator:
        """This locator on ``device``: ``self`` if already there and not ``copy``, else a copy."""
        moved = self._volumes.to(device, copy=copy)
        return self if moved is self._volumes else VolumeLocator._of(moved)

    def cpu(self) -> VolumeLocator:
        """``self.to("cpu")``."""
        return self.to("cpu")

    def cuda(self) -> VolumeLocator:
        """``self.to("cuda")``."""
        return self.to("cuda")

    def __repr__(self) -> str:
        return (
            f"VolumeLocator(batch={len(self)}, resolution={self._resolution}, "
            f"device={self.device}, align_corners={self._align_corners})"
        )

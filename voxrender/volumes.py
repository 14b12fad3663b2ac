"""A batch of voxel grids placed in the world: PyTorch3D's ``Volumes``.

A :class:`Volumes` holds per-voxel ``densities`` (and optional ``features``) of ``B`` grids, the
size of each grid, and the affine map between the grid's *local* coordinates (the ``[-1, 1]``
range that ``torch.nn.functional.grid_sample`` reads) and the *world*:

    world = local * scale - volume_translation,    scale = (size_xyz - 1) / 2 * voxel_size

so ``volume_translation`` is the world offset of the grid centre with a **minus** sign, as in
PyTorch3D. ``size_xyz`` is the grid size in ``(W, H, D)`` order: a point's ``x`` runs along the
last (width) axis of the tensor, ``z`` along the depth axis. ``align_corners`` only changes where
:meth:`Volumes.get_coord_grid` puts the voxel centres (and how the renderer calls
``grid_sample``); the local <-> world map is the same either way, as in PyTorch3D.

Grids of different sizes are zero-padded into one ``(B, C, D, H, W)`` tensor; each grid's own size
is kept and used for its local <-> world map.

Dimension letters:

- ``B``: number of volumes in the batch.
- ``C``: channels (``C_d`` for densities, ``C_f`` for features).
- ``D, H, W``: padded depth, height and width of the grids (the largest in the batch).
- ``...``: any number of point dimensions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ._checks import (
    ArgumentTypeError,
    IndexOutOfRangeError,
    IndexTypeError,
    check_shape,
    describe,
)
from .transforms import Transform3d

__all__ = ["Volumes"]

_GridSizes = list[tuple[int, int, int]]


def _small_tensor(values, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tiny constant tensor on ``device`` without stalling the device's queue.

    A blocking host-to-device copy synchronises the stream; a non-blocking one from pageable
    memory is staged at once and is safe.
    """
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_floating(value: object, name: str) -> torch.Tensor:
    """A floating-point tensor (a ``ValueError`` and a ``TypeError`` otherwise)."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ArgumentTypeError(f"{name}: expected a floating-point tensor, got {describe(value)}")
    return value


def _pad_volume_list(x: Sequence[torch.Tensor], name: str) -> tuple[torch.Tensor, _GridSizes]:
    """Zero-pad a list of ``(C, D_i, H_i, W_i)`` grids into one ``(B, C, D, H, W)`` tensor."""
    if len(x) == 0:
        raise ValueError(
            f"{name}: expected a non-empty list of (C, D, H, W) tensors, got an empty list"
        )
    for i, item in enumerate(x):
        _check_floating(item, f"{name}[{i}]")
        check_shape(item, f"{name}[{i}]", ndim=4, spec="(C, D, H, W)")
    first = x[0]
    for i, item in enumerate(x[1:], start=1):
        if item.shape[0] != first.shape[0]:
            raise ValueError(
                f"{name}: expected every grid to have the same number of channels, got "
                f"{first.shape[0]} in {name}[0] and {item.shape[0]} in {name}[{i}]"
            )
        if item.dtype != first.dtype or item.device != first.device:
            raise ValueError(
                f"{name}: expected every grid to share one dtype and device, got {first.dtype} on "
                f"{first.device} in {name}[0] and {item.dtype} on {item.device} in {name}[{i}]"
            )
    sizes = [tuple(item.shape[1:]) for item in x]
    padded_size = tuple(max(s[k] for s in sizes) for k in range(3))
    out = first.new_zeros((len(x), first.shape[0], *padded_size))  # (B, C, D, H, W)
    for i, item in enumerate(x):
        out[i, :, : item.shape[1], : item.shape[2], : item.shape[3]] = item
    return out, sizes


def _as_padded(x: object, name: str) -> tuple[torch.Tensor, _GridSizes]:
    """Densities or features (a 5D tensor or a list of 4D ones) -> padded tensor, grid sizes.

    A 5D tensor is kept as it is (an expanded view stays a view).
    """
    if isinstance(x, torch.Tensor):
        _check_floating(x, name)
        check_shape(x, name, ndim=5, spec="(B, C, D, H, W)")
        return x, [tuple(x.shape[2:])] * x.shape[0]
    if isinstance(x, (list, tuple)):
        return _pad_volume_list(x, name)
    raise ArgumentTypeError(
        f"{name} must be either a list or a tensor with shape (batch_size, {name}_dim, H, W, D). "
        f"{name}: expected a (B, C, D, H, W) tensor or a list of (C, D, H, W) tensors, got "
        f"{describe(x)}"
    )


def _check_finite(value: torch.Tensor | float, name: str) -> None:
    """Sizes and offsets must be finite; tensor values are read only on the CPU.

    A voxel size may be negative (a mirrored grid) or zero (a flat one) as in PyTorch3D; a zero
    one makes the world -> local map singular, refused where that map is used.
    """
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu" or torch.compiler.is_compiling():
            return
        with torch.no_grad():
            ok = bool(torch.isfinite(value).all())
        if not ok:
            raise ValueError(f"{name}: expected finite values, got {value.detach().tolist()}")
    elif not math.isfinite(value):
        raise ValueError(f"{name}: expected finite values, got {value!r}")


_VOXEL_SIZE_FORMS = (
    "voxel_size has to be either a 3-tuple of scalars, or a scalar, or a torch.Tensor of shape "
    "(3,) or (1,) or (minibatch, 3) or (minibatch, 1)."
)
_TRANSLATION_FORMS = (
    "`volume_translation` has to be either a 3-tuple of scalars, or a Tensor of shape (1,3) or "
    "(minibatch, 3) or (3,)`."
)


def _as_xyz_param(
    value: object,
    name: str,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    voxel_size: bool,
) -> torch.Tensor:
    """``voxel_size`` or ``volume_translation`` in a PyTorch3D form -> ``(1, 3)`` or ``(B, 3)``.

    Accepted, as PyTorch3D accepts them: 3 numbers; a tensor of shape ``(3,)``, ``(1, 3)`` or
    ``(B, 3)``; for ``voxel_size`` also a number, a one-element tensor of any shape and
    ``(B, 1)``. Tensors are converted to ``dtype`` and moved to ``device`` (both
    differentiable) and broadcast with ``expand`` (no copy).
    """
    forms = _VOXEL_SIZE_FORMS if voxel_size else _TRANSLATION_FORMS
    if _is_number(value):
        if not voxel_size:
            raise ValueError(f"{forms} {name}: expected 3 numbers or a tensor, got {value!r}")
        _check_finite(value, name)
        return torch.full((1, 3), float(value), dtype=dtype, device=device)
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise ValueError(f"{forms} {name}: got a sequence of length {len(value)}")
        if not all(_is_number(v) for v in value):
            raise ArgumentTypeError(f"{forms} {name}: got {describe(value)}")
        for v in value:
            _check_finite(v, name)
        return _small_tensor([[float(v) for v in value]], dtype, device)
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{forms} {name}: got {describe(value)}")
    if value.dtype == torch.bool or value.is_complex():
        raise ArgumentTypeError(f"{forms} {name}: got a tensor of dtype {value.dtype}")
    if voxel_size and value.numel() == 1:
        x = value.reshape(1, 1)
    elif value.ndim == 1 and value.shape[0] == 3:
        x = value.reshape(1, 3)
    elif value.ndim == 2 and value.shape[1] == 3 and value.shape[0] in (1, batch_size):
        x = value  # (1, 3) or (B, 3)
    elif voxel_size and value.ndim == 2 and value.shape == (batch_size, 1):
        x = value  # (B, 1)
    else:
        raise ValueError(f"{forms} {name}: got shape {tuple(value.shape)} for {batch_size} volumes")
    x = x.to(device=device, dtype=dtype)
    _check_finite(x, name)  # after the move: values on the CPU are read for free
    return x.expand(x.shape[0], 3)  # (1, 3) or (B, 3)


def _move_keep_expanded(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t.to(device)`` that moves one copy of each stride-0 (expanded) dimension, not all."""
    if t.device == device:
        return t
    compact = t
    for dim in range(t.ndim):
        if t.stride(dim) == 0 and t.shape[dim] > 1:
            compact = compact.narrow(dim, 0, 1)
    return compact.to(device).expand(t.shape)


def _normalize_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class Volumes:
    """A batch of ``B`` voxel grids with their placement in the world (PyTorch3D's ``Volumes``).

    Args:
        densities: ``(B, C_d, D, H, W)`` tensor, or a list of ``B`` tensors ``(C_d, D_i, H_i,
            W_i)`` of possibly different sizes (zero-padded into one tensor). A 5D tensor is kept
            as it is: an expanded view (``t[None].expand(B, ...)``) is not copied.
        features: optional ``(B, C_f, D, H, W)`` tensor or list of ``(C_f, D_i, H_i, W_i)``
            tensors with the same batch and grid sizes, dtype and device as ``densities``.
        voxel_size: world size of one voxel: a number, 3 numbers ``(x, y, z)``, or a tensor of
            shape ``()``, ``(1,)``, ``(3,)``, ``(1, 1)``, ``(1, 3)``, ``(B, 1)`` or ``(B, 3)``.
            Must be > 0.
        volume_translation: the grid centre sits at ``-volume_translation`` in the world. Same
            forms as ``voxel_size``.
        align_corners: whether the corner voxel centres sit at local ``-1`` and ``1`` (``True``)
            or half a voxel inside (``False``), as in ``grid_sample``.

    Tensors ``voxel_size`` and ``volume_translation`` keep their autograd history: gradients flow
    to them through the coordinate conversions.
    """

    def __init__(
        self,
        densities: torch.Tensor | Sequence[torch.Tensor],
        features: torch.Tensor | Sequence[torch.Tensor] | None = None,
        voxel_size: float | Sequence[float] | torch.Tensor = 1.0,
        volume_translation: float | Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
        align_corners: bool = True,
    ) -> None:
        if not isinstance(align_corners, numbers.Integral):  # PyTorch3D only tests its truth
            raise ArgumentTypeError(
                f"align_corners: expected a bool (or an int flag), got {describe(align_corners)}"
            )
        align_corners = bool(align_corners)
        densities_, sizes = _as_padded(densities, "densities")
        features_ = None
        if features is not None:
            features_ = self._check_features(features, densities_, sizes)
        batch, dtype, device = densities_.shape[0], densities_.dtype, densities_.device
        self._set_state(
            densities=densities_,
            features=features_,
            grid_sizes=_small_tensor(sizes, torch.long, device).reshape(batch, 3),
            voxel_size=_as_xyz_param(
                voxel_size, "voxel_size", batch, dtype, device, voxel_size=True
            ),
            translation=_as_xyz_param(
                volume_translation, "volume_translation", batch, dtype, device, voxel_size=False
            ),
            align_corners=align_corners,
        )

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _check_features(
        features: object, densities: torch.Tensor, sizes: _GridSizes
    ) -> torch.Tensor:
        features_, feature_sizes = _as_padded(features, "features")
        if features_.shape[0] != densities.shape[0] or feature_sizes != sizes:
            raise ValueError(
                f"features: expected the batch size and grid sizes of densities "
                f"({densities.shape[0]} grids of sizes {sizes}), got {features_.shape[0]} grids of "
                f"sizes {feature_sizes}"
            )
        if features_.shape[2:] != densities.shape[2:]:
            raise ValueError(
                f"features: expected padded grid size {tuple(densities.shape[2:])} like densities, "
                f"got {tuple(features_.shape[2:])}"
            )
        if features_.dtype != densities.dtype or features_.device != densities.device:
            raise ValueError(
                f"features: expected dtype {densities.dtype} on {densities.device} like densities, "
                f"got dtype {features_.dtype} on {features_.device}"
            )
        return features_

    def _set_state(
        self,
        *,
        densities: torch.Tensor,
        features: torch.Tensor | None,
        grid_sizes: torch.Tensor,
        voxel_size: torch.Tensor,
        translation: torch.Tensor,
        align_corners: bool,
    ) -> None:
        self._densities = densities  # (B, C_d, D, H, W)
        self._features = features  # (B, C_f, D, H, W) or None
        self._grid_sizes = grid_sizes  # (B, 3) long, (D_i, H_i, W_i)
        self._voxel_size = voxel_size  # (1 or B, 3), xyz
        self._translation = translation  # (1 or B, 3), xyz
        self._align_corners = align_corners
        self.device = densities.device
        # Half the grid extent in voxels, xyz: constant, so kept out of any autograd graph.
        self._half_extent = (grid_sizes.flip(-1).to(densities.dtype) - 1) * 0.5  # (B, 3)

    def _replace(self, **changes) -> Volumes:
        """A new ``Volumes`` with some of this one's state replaced (no validation, no copy)."""
        state = {
            "densities": self._densities,
            "features": self._features,
            "grid_sizes": self._grid_sizes,
            "voxel_size": self._voxel_size,
            "translation": self._translation,
            "align_corners": self._align_corners,
        }
        state.update(changes)
        new = object.__new__(type(self))
        new._set_state(**state)
        return new

    # ------------------------------------------------------------------ data access

    def __len__(self) -> int:
        return self._densities.shape[0]

    def isempty(self) -> bool:
        """Whether the batch holds no volume."""
        return len(self) == 0

    def densities(self) -> torch.Tensor:
        """The padded densities ``(B, C_d, D, H, W)``, exactly the tensor given (no copy)."""
        return self._densities

    def features(self) -> torch.Tensor | None:
        """The padded features ``(B, C_f, D, H, W)``, or ``None``."""
        return self._features

    def densities_list(self) -> list[torch.Tensor]:
        """Each volume's densities cropped to its own grid size: ``B`` tensors ``(C_d, D_i, H_i, W_i)``."""
        return self._unpad(self._densities)

    def features_list(self) -> list[torch.Tensor] | None:
        """Each volume's features cropped to its own grid size, or ``None`` without features."""
        return None if self._features is None else self._unpad(self._features)

    def _unpad(self, x: torch.Tensor) -> list[torch.Tensor]:
        sizes = self._grid_sizes.tolist()  # reads the sizes on the host
        return [x[i, :, :d, :h, :w] for i, (d, h, w) in enumerate(sizes)]

    def get_grid_sizes(self) -> torch.Tensor:
        """Each volume's own grid size ``(B, 3)`` (long), rows ``(D_i, H_i, W_i)``."""
        return self._grid_sizes

    def get_align_corners(self) -> bool:
        """Whether the corner voxel centres sit at local ``-1`` / ``1``."""
        return self._align_corners

    # ------------------------------------------------------------------ coordinates

    def _scale_shift(self, n_point_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-volume ``scale`` and ``volume_translation`` shaped to broadcast over points.

        Returns:
            Two tensors ``(1 or B, 1, ..., 1, 3)`` with ``n_point_dims`` ones.
        """
        scale = self._half_extent * self._voxel_size  # (B, 3)
        shape = (1,) * n_point_dims + (3,)
        return scale.reshape(scale.shape[0], *shape), self._translation.reshape(-1, *shape)

    def _check_points(self, points: object, name: str) -> torch.Tensor:
        """Points ``(B, ..., 3)``: a real tensor; integer ones take the volumes' dtype."""
        if not isinstance(points, torch.Tensor):
            raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {describe(points)}")
        if points.dtype == torch.bool or points.is_complex():
            raise ArgumentTypeError(
                f"{name}: expected a real (floating-point or integer) tensor, got dtype {points.dtype}"
            )
        check_shape(points, name, min_ndim=2, last=(3,), spec="(B, ..., 3)")
        if points.device != self.device:
            raise ValueError(
                f"{name}: expected a tensor on {self.device}, got one on {points.device}"
            )
        if len(self) != 1 and points.shape[0] != len(self):
            raise ValueError(
                f"{name}: expected a batch of {len(self)} (one per volume), got shape {tuple(points.shape)}"
            )
        if not points.is_floating_point():
            points = points.to(self._densities.dtype)
        return points

    def _check_invertible(self, name: str) -> None:
        """Refuse the world -> local map of a flat volume.

        Flat: a spatial size of 1 or a zero voxel size (PyTorch3D fails inverting a singular
        matrix there). Read on the CPU only; on an
        accelerator such a volume gives inf / NaN local coordinates instead (no sync).
        """
        if self.device.type != "cpu" or torch.compiler.is_compiling():
            return
        scale = self._half_extent * self._voxel_size.detach()  # (B, 3)
        if not bool((scale != 0).all()):
            raise ValueError(
                f"{name}: the world -> local map of these volumes is singular (a volume with a "
                "spatial size of 1 or a zero voxel_size), so world points have no local "
                f"coordinates; got grid sizes {self._grid_sizes.tolist()} and voxel sizes "
                f"{self._voxel_size.detach().tolist()}"
            )

    def world_to_local_coords(self, points_3d_world: torch.Tensor) -> torch.Tensor:
        """World points -> each volume's local coordinates (``[-1, 1]`` across its grid).

        Args:
            points_3d_world: ``(B, ..., 3)`` points, or ``(N, ..., 3)`` when ``B == 1``.

        Returns:
            ``(B, ..., 3)`` local coordinates ``(world + volume_translation) / scale``.
        """
        points = self._check_points(points_3d_world, "points_3d_world")
        self._check_invertible("points_3d_world")
        scale, shift = self._scale_shift(points.ndim - 2)
        return (points + shift) / scale

    def local_to_world_coords(self, points_3d_local: torch.Tensor) -> torch.Tensor:
        """Local volume coordinates -> world points.

        Args:
            points_3d_local: ``(B, ..., 3)`` points, or ``(N, ..., 3)`` when ``B == 1``.

        Returns:
            ``(B, ..., 3)`` world points ``local * scale - volume_translation``.
        """
        points = self._check_points(points_3d_local, "points_3d_local")
        scale, shift = self._scale_shift(points.ndim - 2)
        return points * scale - shift

    def _local_coord_grid(self) -> torch.Tensor:
        """Local coordinates of every voxel centre of the padded grid ``(B, D, H, W, 3)``."""
        dtype, device = self._densities.dtype, self.device
        padded = self._densities.shape[2:]  # (D, H, W)
        axes = []
        for n in padded:
            inset = 0.0 if self._align_corners else 1.0 / n
            axes.append(torch.linspace(-1.0 + inset, 1.0 - inset, n, dtype=dtype, device=device))
        z, y, x = torch.meshgrid(axes, indexing="ij")
        grid = torch.stack((x, y, z), dim=-1)  # (D, H, W, 3)
        # A grid smaller than the padded one is stretched so that its own voxels get its own
        # local coordinates (PyTorch3D's rule; exactly the identity for a full-size grid).
        padded_xyz = _small_tensor(padded[::-1], dtype, device)  # (3,)
        ratio = (padded_xyz - 1) / (self._grid_sizes.flip(-1).to(dtype) - 1)  # (B, 3)
        ratio = ratio[:, None, None, None, :]  # (B, 1, 1, 1, 3)
        return grid * ratio + (ratio - 1)  # (B, D, H, W, 3)

    def get_coord_grid(self, world_coordinates: bool = True) -> torch.Tensor:
        """Coordinates of every voxel centre.

        Args:
            world_coordinates: world coordinates if ``True``, else local ones.

        Returns:
            ``(B, D, H, W, 3)`` coordinates, ``x`` along ``W`` and ``z`` along ``D``.
        """
        if self.device.type == "cpu" and bool((self._grid_sizes < 2).any()):
            raise ValueError(
                "get_coord_grid: a volume with a spatial size of 1 has no local coordinate along "
                f"that axis (PyTorch3D returns NaN there); got grid sizes {self._grid_sizes.tolist()}"
            )
        grid = self._local_coord_grid()
        return self.local_to_world_coords(grid) if world_coordinates else grid

    def _local_to_world_matrix(self) -> torch.Tensor:
        """``(B, 4, 4)`` local -> world matrix, row-vector convention ``[p, 1] @ M``."""
        scale, shift = self._scale_shift(0)  # (1 or B, 3)
        batch = len(self)
        return _scale_shift_matrix(scale.expand(batch, 3), -shift.expand(batch, 3))

    def get_local_to_world_coords_transform(self) -> Transform3d:
        """The local -> world map as a ``Transform3d`` (matrix ``(B, 4, 4)``)."""
        matrix = self._local_to_world_matrix()
        return Transform3d(matrix=matrix, device=matrix.device, dtype=matrix.dtype)

    def get_world_to_local_coords_transform(self) -> Transform3d:
        """The world -> local map as a ``Transform3d`` (the exact inverse, no matrix inversion)."""
        self._check_invertible("get_world_to_local_coords_transform")
        scale, shift = self._scale_shift(0)  # (1 or B, 3)
        batch = len(self)
        inv_scale = (1.0 / scale).expand(batch, 3)
        matrix = _scale_shift_matrix(inv_scale, shift.expand(batch, 3) * inv_scale)
        return Transform3d(matrix=matrix, device=matrix.device, dtype=matrix.dtype)

    # ------------------------------------------------------------------ batch operations

    def _check_index(self, index: object) -> object:
        """Validate ``index`` and turn it into something that selects along the batch dim.

        As in PyTorch3D a bool counts as the int 0 or 1, and an index of another type (a float,
        a float or multi-dimensional tensor, ...) raises ``IndexError``.
        """
        n = len(self)
        if isinstance(index, numbers.Integral) and not isinstance(index, torch.Tensor):
            index = int(index)
            if not -n <= index < n:
                raise IndexOutOfRangeError(
                    f"index {index} is out of bounds for dimension 0 with size {n}: expected an "
                    f"integer in [{-n}, {n}), got {index}"
                )
            return slice(index, index + 1 if index != -1 else None)
        if isinstance(index, slice):
            return index
        if isinstance(index, (list, tuple)):
            return _check_list_index(index, n)
        if isinstance(index, torch.Tensor):
            return _check_tensor_index(index, n)
        raise IndexTypeError(
            f"index: expected an int, slice, list or 1D tensor, got {describe(index)}"
        )

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> Volumes:
        """Select volumes along the batch: ``vol[1]``, ``vol[[2, 0]]``, ``vol[1:]``, ``vol[mask]``.

        An int keeps the batch dimension (a batch of one). Slices return views; other indices
        gather (as tensor indexing does). Out-of-range indices raise ``IndexError``.
        """
        idx = self._check_index(index)

        def select(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if isinstance(idx, torch.Tensor) and idx.device != t.device:
                return t[idx.to(t.device)]
            return t[idx]

        def select_param(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == 1 else select(t)

        return self._replace(
            densities=select(self._densities),
            features=select(self._features),
            grid_sizes=select(self._grid_sizes),
            voxel_size=select_param(self._voxel_size),
            translation=select_param(self._translation),
        )

    def update_padded(
        self, new_densities: torch.Tensor, new_features: torch.Tensor | None = None
    ) -> Volumes:
        """A ``Volumes`` with new padded densities (and features), same grids and placement.

        Args:
            new_densities: ``(B, C_d', D, H, W)``, the same batch and padded size as now.
            new_features: ``(B, C_f', D, H, W)`` or ``None`` (the result then has no features).

        Returns:
            A new ``Volumes``; this one is unchanged.
        """
        expected = (len(self), *self._densities.shape[2:])
        for name, value in (("new_densities", new_densities), ("new_features", new_features)):
            if value is None:
                continue
            _check_floating(value, name)
            check_shape(value, name, ndim=5, spec="(B, C, D, H, W)")
            got = (value.shape[0], *value.shape[2:])
            if got != expected:
                raise ValueError(
                    f"{name}: expected shape ({expected[0]}, C, {expected[1]}, {expected[2]}, "
                    f"{expected[3]}), got shape {tuple(value.shape)}"
                )
            if value.device != self.device or value.dtype != self._densities.dtype:
                raise ValueError(
                    f"{name}: expected dtype {self._densities.dtype} on {self.device}, got dtype "
                    f"{value.dtype} on {value.device}"
                )
        return self._replace(densities=new_densities, features=new_features)

    def clone(self) -> Volumes:
        """A deep copy: every tensor cloned (differentiably)."""

        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()

        return self._replace(
            densities=copy(self._densities),
            features=copy(self._features),
            grid_sizes=copy(self._grid_sizes),
            voxel_size=copy(self._voxel_size),
            translation=copy(self._translation),
        )

    def to(self, device: torch.device | str, copy: bool = False) -> Volumes:
        """This batch on ``device``: ``self`` if already there and not ``copy``, else a copy.

        Expanded (stride-0) batch dimensions stay expanded on the new device.
        """
        device = _normalize_device(device)
        if device == _normalize_device(self.device):
            return self.clone() if copy else self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else _move_keep_expanded(t, device)

        return self._replace(
            densities=move(self._densities),
            features=move(self._features),
            grid_sizes=move(self._grid_sizes),
            voxel_size=move(self._voxel_size),
            translation=move(self._translation),
        )

    def cpu(self) -> Volumes:
        """This batch on the CPU."""
        return self.to("cpu")

    def cuda(self) -> Volumes:
        """This batch on the current CUDA device."""
        return self.to("cuda")

    @property
    def locator(self):
        """The :class:`~voxrender.VolumeLocator` of this batch (PyTorch3D's ``Volumes.locator``).

        A view sharing this batch's grid sizes and placement (no copy): its coordinate methods
        return what this batch's do, and ``locator._set_local_to_world_transform(...)`` moves
        this batch.
        """
        from .volume_locator import VolumeLocator  # imports this module

        return VolumeLocator._of(self)

    def __repr__(self) -> str:
        feats = None if self._features is None else tuple(self._features.shape)
        return (
            f"Volumes(batch={len(self)}, densities={tuple(self._densities.shape)}, features={feats}, "
            f"dtype={self._densities.dtype}, device={self.device}, align_corners={self._align_corners})"
        )


def _scale_shift_matrix(scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``(N, 4, 4)`` row-vector matrix of ``p -> p * scale + shift`` from ``(N, 3)`` scale, shift."""
    n = scale.shape[0]
    top = torch.cat([torch.diag_embed(scale), scale.new_zeros(n, 3, 1)], dim=-1)  # (N, 3, 4)
    bottom = torch.cat([shift, shift.new_ones(n, 1)], dim=-1)  # (N, 4)
    return torch.cat([top, bottom[:, None, :]], dim=1)  # (N, 4, 4)


def _check_list_index(index: list | tuple, n: int) -> torch.Tensor:
    """``Volumes._check_index`` for a list or tuple: a boolean mask or in-range ints."""
    if len(index) > 0 and all(isinstance(i, bool) for i in index):
        if len(index) != n:
            raise IndexOutOfRangeError(
                f"index: expected a boolean mask of length {n}, got length {len(index)}"
            )
        return torch.tensor(index, dtype=torch.bool)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
        raise IndexTypeError(f"index: expected a list of ints, got {describe(index)}")
    bad = [i for i in index if not -n <= i < n]
    if bad:
        raise IndexOutOfRangeError(f"index: expected integers in [{-n}, {n}), got {bad}")
    return torch.tensor(index, dtype=torch.long)


def _check_tensor_index(index: torch.Tensor, n: int) -> torch.Tensor:
    """``Volumes._check_index`` for a tensor: 1D, a boolean mask or integers in range."""
    if index.ndim != 1:
        raise IndexOutOfRangeError(f"index: expected a 1D tensor, got shape {tuple(index.shape)}")
    if index.dtype == torch.bool:
        if index.shape[0] != n:
            raise IndexOutOfRangeError(
                f"index: expected a boolean mask of length {n}, got length {index.shape[0]}"
            )
        return index
    if index.is_floating_point() or index.is_complex():
        raise IndexTypeError(
            f"index: expected an integer or boolean tensor, got dtype {index.dtype}"
        )
    if index.device.type == "cpu" and index.numel() > 0:
        lo, hi = int(index.min()), int(index.max())
        if lo < -n or hi >= n:
            raise IndexOutOfRangeError(
                f"index: expected integers in [{-n}, {n}), got values in [{lo}, {hi}]"
            )
    return index

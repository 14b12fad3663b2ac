"""Cameras defined in NDC by a field of view or a view-space box (OpenGL-style).

:class:`FoVPerspectiveCameras` (a frustum given by ``fov``, ``aspect_ratio``, ``znear``,
``zfar``) and :class:`FoVOrthographicCameras` (a box ``min_x .. max_x``, ``min_y .. max_y``,
``znear .. zfar``). Both map view space to PyTorch3D's NDC with ``z`` in ``[0, 1]`` from
``znear`` to ``zfar``; see :mod:`voxrender.cameras` for the coordinate systems.

Dimensions:
    ``N``: cameras in the batch.
    ``P``: points per camera.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from ..transforms import Transform3d
from ._helpers import (
    DEFAULT_R,
    DEFAULT_T,
    BatchFloat,
    axis_affine,
    check_bool,
    column_matrix_transform,
    first_bad,
    host_values,
    required,
    sparse_matrix,
    vector_field,
)
from .base import CamerasBase

__all__ = [
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
]


def _check_distinct(values: dict, low: str, high: str) -> None:
    """Raise ``ValueError`` where the host-readable ``values[high]`` equals ``values[low]``."""
    lo, hi = values[low], values[high]
    if lo is None or hi is None:  # not readable without a host sync: unchecked
        return
    lo, hi = torch.broadcast_tensors(lo, hi)
    if not bool((hi != lo).all()):
        raise ValueError(f"{high}: expected values != {low}, got {first_bad(hi, hi != lo):g}")


class _NDCCameras(CamerasBase):
    """Shared shell of the cameras defined in NDC: ``in_ndc`` and ``unproject_points``.

    The cameras: :class:`FoVPerspectiveCameras` and :class:`FoVOrthographicCameras`.

    A subclass sets ``_ndc_depth`` (view depth -> NDC ``z`` from the projection matrix's entries
    ``[2, 2]`` and ``[3, 2]``) and ``_CHECK_UNPROJECT_FLAGS`` (whether ``world_coordinates`` and
    ``scaled_depth_input`` must be bools).
    """

    _CHECK_UNPROJECT_FLAGS: ClassVar[bool] = True

    @staticmethod
    def _ndc_depth(f1: torch.Tensor, f2: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def in_ndc(self) -> bool:
        return True

    def unproject_points(
        self,
        xy_depth: torch.Tensor,
        world_coordinates: bool = True,
        scaled_depth_input: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        """NDC ``x, y`` plus depth -> world (or view) points; inverts :meth:`transform_points`.

        Args:
            xy_depth: ``(P, 3)`` or ``(N, P, 3)``: NDC ``x, y`` and the depth (the view-space
                ``z``, or with ``scaled_depth_input`` the NDC ``z``, in ``[0, 1]`` between
                ``znear`` and ``zfar``).
            world_coordinates: return world points (True) or view points (False).
            scaled_depth_input: whether the depth is already the NDC ``z``.
            **kwargs: field overrides (used for the whole unprojection, where PyTorch3D uses
                them only to scale the depth); ``from_ndc`` is accepted and ignored (these
                cameras are defined in NDC).

        Returns:
            Points ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` input).
        """
        kwargs.pop("from_ndc", None)
        if self._CHECK_UNPROJECT_FLAGS:
            check_bool(world_coordinates, "world_coordinates")
            check_bool(scaled_depth_input, "scaled_depth_input")
        xy_depth = self._check_xy_depth(xy_depth)
        projection = self.get_projection_transform(**kwargs)
        to_ndc = projection
        if world_coordinates:
            to_ndc = self.get_world_to_view_transform(**kwargs).compose(projection)
        if not scaled_depth_input:
            matrix = projection.get_matrix()  # (N, 4, 4)
            if xy_depth.ndim == 2 and len(matrix) > 1:
                xy_depth = xy_depth[None]  # (1, P, 3)
            shape = (-1,) + (1,) * (xy_depth.ndim - 1)
            f1 = matrix[:, 2, 2].reshape(shape)  # (N, 1, 1)
            f2 = matrix[:, 3, 2].reshape(shape)
            sdepth = self._ndc_depth(f1, f2, xy_depth[..., 2:3])  # (N, P, 1)
            xy = xy_depth[..., :2].expand(*sdepth.shape[:-1], 2)
            xy_depth = torch.cat((xy, sdepth), dim=-1)  # (N, P, 3)
        return to_ndc.inverse().transform_points(xy_depth)


class FoVPerspectiveCameras(_NDCCameras):
    """Perspective cameras given by a field of view (OpenGL-style frustum, PyTorch3D's NDC).

    The projection maps view points to NDC with ``x_ndc = x / (tan(fov/2) * aspect_ratio * z)``,
    ``y_ndc = y / (tan(fov/2) * z)`` and ``z_ndc = zfar / (zfar - znear) * (1 - znear / z)``
    (0 at ``znear``, 1 at ``zfar``).

    Args:
        znear: near plane distance(s): a float, a list or a tensor ``()`` / ``(N,)`` / ``(N, 1)``.
        zfar: far plane distance(s), like ``znear``.
        aspect_ratio: pixel aspect ratio(s) ``> 0`` (1 for square pixels), like ``znear``.
        fov: vertical field(s) of view (degrees or radians), like ``znear``.
        degrees: whether ``fov`` is in degrees.
        R: rotations ``(N, 3, 3)`` (world -> view: ``p @ R + T``).
        T: translations ``(N, 3)``.
        K: optional projection matrices ``(N, 4, 4)`` (column-vector convention, like
            PyTorch3D's); when given they replace the matrices built from the fields above.
        device: where the cameras live; tensors given are moved there.

    Values are checked where they are used (after per-call overrides), not at construction,
    and only for what would make the projection non-finite (see ``_projection_fields``); values
    of accelerator tensors are not read (no host sync). Per-camera values may also be ``(N, 1)``
    tensors; integer tensors and nested lists are cast.
    """

    _FIELDS = ("K", "znear", "zfar", "aspect_ratio", "fov", "R", "T")
    # world_coordinates / scaled_depth_input are not type-checked for these cameras (unlike
    # FoVOrthographicCameras); kept as it was.
    _CHECK_UNPROJECT_FLAGS = False
    _SHARED_FIELDS = ("degrees",)
    _FIELD_SHAPES: ClassVar[dict[str, tuple[int, ...]]] = {
        "K": (4, 4),
        "znear": (),
        "zfar": (),
        "aspect_ratio": (),
        "fov": (),
        "R": (3, 3),
        "T": (3,),
    }

    K: torch.Tensor | None
    znear: torch.Tensor
    zfar: torch.Tensor
    aspect_ratio: torch.Tensor
    fov: torch.Tensor

    def __init__(
        self,
        znear: BatchFloat = 1.0,
        zfar: BatchFloat = 100.0,
        aspect_ratio: BatchFloat = 1.0,
        fov: BatchFloat = 60.0,
        degrees: bool = True,
        R: torch.Tensor = DEFAULT_R,
        T: torch.Tensor = DEFAULT_T,
        K: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.degrees = check_bool(degrees, "degrees")
        self._init_fields(
            device, K=K, znear=znear, zfar=zfar, aspect_ratio=aspect_ratio, fov=fov, R=R, T=T
        )

    def _projection_fields(self, kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """``znear, zfar, fov, aspect_ratio`` after the per-call overrides, checked where used.

        Like PyTorch3D, construction takes any value (a placeholder ``fov=0.0`` included); a
        value that would make the projection non-finite (``fov`` with ``tan(fov / 2) == 0``,
        ``aspect_ratio == 0``, ``znear == 0``, ``zfar == znear``; PyTorch3D returns inf/NaN
        there) raises ``ValueError`` here, where readable without a host sync (Python numbers,
        CPU tensors).
        """
        owner = type(self).__name__
        names = ("znear", "zfar", "fov", "aspect_ratio")
        fields = [required(self._override(k, kwargs), k, owner) for k in names]
        values = {k: host_values(v, v) for k, v in zip(names, fields, strict=True)}
        for name in ("znear", "aspect_ratio"):
            v = values[name]
            if v is not None and not bool((v != 0).all()):
                raise ValueError(f"{name}: expected non-zero values, got 0")
        fov = values["fov"]
        if fov is not None:
            degrees = check_bool(kwargs.get("degrees", self.degrees), "degrees")
            half = fov * (math.pi / 360 if degrees else 0.5)
            ok = torch.tan(half) != 0
            if not bool(ok.all()):
                raise ValueError(
                    f"fov: expected a field of view with tan(fov / 2) != 0, "
                    f"got {first_bad(fov, ok):g} {'degrees' if degrees else 'radians'}"
                )
        _check_distinct(values, "znear", "zfar")
        return tuple(fields)

    def is_perspective(self) -> bool:
        """True: a perspective projection."""
        return True

    @staticmethod
    def _ndc_depth(f1: torch.Tensor, f2: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``z_ndc = f1 + f2 / depth`` (the perspective depth map)."""
        return (f1 * depth + f2) / depth

    def compute_projection_matrix(
        self, znear, zfar, fov, aspect_ratio, degrees: bool
    ) -> torch.Tensor:
        """Column-vector projection matrices ``K`` ``(N, 4, 4)`` (PyTorch3D's method).

        Args:
            znear, zfar, fov, aspect_ratio: floats, lists or tensors ``()`` / ``(N,)``; batch
                sizes 1 and ``len(self)`` broadcast to ``len(self)``.
            degrees: whether ``fov`` is in degrees.
        """
        degrees = check_bool(degrees, "degrees")
        given = {"znear": znear, "zfar": zfar, "fov": fov, "aspect_ratio": aspect_ratio}
        fields = self._projection_fields({**given, "degrees": degrees})
        return _fov_projection(*fields, degrees)[0].transpose(1, 2)

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> NDC transform (row-vector matrices ``(N, 4, 4)``, i.e. ``K^T``).

        Args:
            **kwargs: ``znear``, ``zfar``, ``fov``, ``aspect_ratio``, ``degrees`` or ``K``
                override the camera's fields for this call (other keys are ignored).
        """
        K = self._override("K", kwargs)
        if K is not None:
            return column_matrix_transform(K)
        degrees = check_bool(kwargs.get("degrees", self.degrees), "degrees")
        matrix, inverse = _fov_projection(*self._projection_fields(kwargs), degrees)
        return Transform3d._with_inverse(matrix, inverse)


def _fov_projection(znear, zfar, fov, aspect_ratio, degrees: bool):
    """Row-vector FoV projection matrices ``(N, 4, 4)`` and a closed-form inverse builder."""
    znear, zfar, fov, aspect_ratio = torch.broadcast_tensors(znear, zfar, fov, aspect_ratio)
    if degrees:
        fov = (math.pi / 180) * fov
    tan_half = torch.tan(fov / 2)  # (N,)
    depth_range = zfar - znear
    f1 = zfar / depth_range  # z_ndc = f1 + f2 / z
    f2 = -(zfar * znear) / depth_range
    one = torch.ones_like(fov)
    matrix = sparse_matrix(
        {
            (0, 0): 1 / (tan_half * aspect_ratio),
            (1, 1): 1 / tan_half,
            (2, 2): f1,
            (2, 3): one,
            (3, 2): f2,
        },
        fov,
    )

    def inverse() -> torch.Tensor:
        return sparse_matrix(
            {
                (0, 0): tan_half * aspect_ratio,
                (1, 1): tan_half,
                (2, 3): -depth_range / (zfar * znear),
                (3, 2): one,
                (3, 3): 1 / znear,
            },
            fov,
        )

    return matrix, inverse


# ---------------------------------------------------------------------------------------------
# Orthographic cameras given by the box they see
# ---------------------------------------------------------------------------------------------


def _fov_orthographic_axes(znear, zfar, max_x, min_x, max_y, min_y, scale_xyz):
    """Per-axis scale and shift ``(N, 3)`` of the view -> NDC map of FoVOrthographicCameras."""
    znear, zfar, max_x, min_x, max_y, min_y = torch.broadcast_tensors(
        znear, zfar, max_x, min_x, max_y, min_y
    )
    width, height, depth = max_x - min_x, max_y - min_y, zfar - znear
    scale = torch.stack((2 / width, 2 / height, 1 / depth), dim=1) * scale_xyz  # (N, 3)
    shift = torch.stack(
        (-(max_x + min_x) / width, -(max_y + min_y) / height, -znear / depth), dim=1
    )  # (N, 3)
    return scale, shift


class FoVOrthographicCameras(_NDCCameras):
    """Orthographic cameras that map a view-space box to NDC (OpenGL-style, PyTorch3D's NDC).

    ``x_ndc = (2 sx x - (max_x + min_x)) / (max_x - min_x)`` (likewise for y) and
    ``z_ndc = (sz z - znear) / (zfar - znear)``: with unit scales ``min_x .. max_x`` maps to
    ``-1 .. 1`` and ``z`` from ``znear`` to ``zfar`` to ``0 .. 1``. The scales act on the view
    coordinates only, not on the offsets (as in PyTorch3D).

    Args:
        znear: near plane(s): a float, a list or a tensor ``()`` / ``(N,)``.
        zfar: far plane(s) ``> znear``, like ``znear``.
        max_y, min_y: the box's y extent (``max_y > min_y``), like ``znear``.
        max_x, min_x: the box's x extent (``max_x > min_x``), like ``znear``.
        scale_xyz: non-zero per-axis scale factors ``(N, 3)`` (or one triple).
        R: rotations ``(N, 3, 3)`` (world -> view: ``p @ R + T``).
        T: translations ``(N, 3)``.
        K: optional projection matrices ``(N, 4, 4)`` (column-vector convention); when given
            they replace the matrices built from the fields above.
        device: where the cameras live; tensors given are moved there.

    Values are checked where they are used, after per-call overrides (no host sync).
    """

    _FIELDS = ("K", "znear", "zfar", "R", "T", "max_y", "min_y", "max_x", "min_x", "scale_xyz")
    _FIELD_SHAPES: ClassVar[dict[str, tuple[int, ...]]] = {
        "K": (4, 4),
        "znear": (),
        "zfar": (),
        "R": (3, 3),
        "T": (3,),
        "max_y": (),
        "min_y": (),
        "max_x": (),
        "min_x": (),
        "scale_xyz": (3,),
    }
    _CONVERTERS: ClassVar[dict[str, Callable[..., torch.Tensor]]] = {"scale_xyz": vector_field}

    K: torch.Tensor | None
    znear: torch.Tensor
    zfar: torch.Tensor
    max_y: torch.Tensor
    min_y: torch.Tensor
    max_x: torch.Tensor
    min_x: torch.Tensor
    scale_xyz: torch.Tensor

    def __init__(
        self,
        znear: BatchFloat = 1.0,
        zfar: BatchFloat = 100.0,
        max_y: BatchFloat = 1.0,
        min_y: BatchFloat = -1.0,
        max_x: BatchFloat = 1.0,
        min_x: BatchFloat = -1.0,
        scale_xyz: Sequence | torch.Tensor = ((1.0, 1.0, 1.0),),
        R: torch.Tensor = DEFAULT_R,
        T: torch.Tensor = DEFAULT_T,
        K: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self._init_fields(
            device,
            K=K,
            znear=znear,
            zfar=zfar,
            max_y=max_y,
            min_y=min_y,
            max_x=max_x,
            min_x=min_x,
            scale_xyz=scale_xyz,
            R=R,
            T=T,
        )

    _AXES: ClassVar[tuple[str, ...]] = (
        "znear",
        "zfar",
        "max_x",
        "min_x",
        "max_y",
        "min_y",
        "scale_xyz",
    )

    def _projection_fields(self, kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """The box and scales after the per-call overrides, checked where used.

        Like PyTorch3D, construction takes any value; an empty extent (``max_x == min_x``,
        ``max_y == min_y`` or ``zfar == znear``, where PyTorch3D divides by zero) raises
        ``ValueError`` here, where readable without a host sync.
        """
        owner = type(self).__name__
        fields = [required(self._override(k, kwargs), k, owner) for k in self._AXES]
        values = {k: host_values(v, v) for k, v in zip(self._AXES, fields, strict=True)}
        for low, high in (("znear", "zfar"), ("min_x", "max_x"), ("min_y", "max_y")):
            _check_distinct(values, low, high)
        return tuple(fields)

    def is_perspective(self) -> bool:
        """False: an orthographic projection."""
        return False

    @staticmethod
    def _ndc_depth(scale: torch.Tensor, shift: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``z_ndc = scale * depth + shift`` (the orthographic depth map)."""
        return scale * depth + shift

    def compute_projection_matrix(
        self, znear, zfar, max_x, min_x, max_y, min_y, scale_xyz
    ) -> torch.Tensor:
        """Column-vector projection matrices ``K`` ``(N, 4, 4)`` (PyTorch3D's method).

        Args:
            znear, zfar, max_x, min_x, max_y, min_y: floats, lists or tensors ``()`` / ``(N,)``.
            scale_xyz: ``(3,)`` or ``(N, 3)``.
        """
        given = (znear, zfar, max_x, min_x, max_y, min_y, scale_xyz)
        fields = self._projection_fields(dict(zip(self._AXES, given, strict=True)))
        scale, shift = _fov_orthographic_axes(*fields)
        return axis_affine(scale, shift).get_matrix().transpose(1, 2)

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> NDC transform (row-vector matrices ``(N, 4, 4)``).

        Args:
            **kwargs: ``znear``, ``zfar``, ``max_x``, ``min_x``, ``max_y``, ``min_y``,
                ``scale_xyz`` or ``K`` override the camera's fields for this call.
        """
        K = self._override("K", kwargs)
        if K is not None:
            return column_matrix_transform(K)
        scale, shift = _fov_orthographic_axes(*self._projection_fields(kwargs))
        return axis_affine(scale, shift)

"""Cameras given by focal length and principal point, in NDC or in screen space (pixels).

:class:`PerspectiveCameras` (pinhole) and :class:`OrthographicCameras`; with
``in_ndc=False`` their ``get_ndc_camera_transform`` maps screen units to PyTorch3D's NDC using
``image_size``. See :mod:`voxrender.cameras` for the coordinate systems.

Dimensions:
    ``N``: cameras in the batch.
    ``P``: points per camera.
    ``H, W``: image height and width in pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from ..transforms import SingularTransformError, Transform3d
from ._helpers import (
    DEFAULT_R,
    DEFAULT_T,
    axis_affine,
    check_bool,
    check_image_size_values,
    column_matrix_transform,
    focal_length_field,
    host_values,
    required,
    sparse_matrix,
    xy_field,
)
from .base import CamerasBase, image_size_for

__all__ = [
    "OrthographicCameras",
    "PerspectiveCameras",
]


# ---------------------------------------------------------------------------------------------
# Cameras given by focal length and principal point (NDC or screen space)
# ---------------------------------------------------------------------------------------------


def _focal_projection(
    focal: torch.Tensor, principal: torch.Tensor, orthographic: bool
) -> Transform3d:
    """View -> camera space of :class:`PerspectiveCameras` or :class:`OrthographicCameras`.

    Perspective: ``(x, y, z) -> (fx x / z + px, fy y / z + py, 1 / z)``.
    Orthographic: ``(x, y, z) -> (fx x + px, fy y + py, z)``.

    Args:
        focal: ``(N, 2)`` as ``(fx, fy)``.
        principal: ``(N, 2)`` as ``(px, py)``.
    """
    focal, principal = torch.broadcast_tensors(focal, principal)
    fx, fy = focal.unbind(1)  # (N,) each
    px, py = principal.unbind(1)
    one, zero = torch.ones_like(fx), torch.zeros_like(fx)
    if orthographic:
        return axis_affine(torch.stack((fx, fy, one), 1), torch.stack((px, py, zero), 1))
    # Row-vector form: [x, y, z, 1] @ M = [fx x + px z, fy y + py z, 1, z].
    matrix = sparse_matrix(
        {(0, 0): fx, (1, 1): fy, (2, 0): px, (2, 1): py, (2, 3): one, (3, 2): one}, fx
    )

    def inverse() -> torch.Tensor:
        return sparse_matrix(
            {
                (0, 0): 1 / fx,
                (1, 1): 1 / fy,
                (3, 0): -px / fx,
                (3, 1): -py / fy,
                (2, 3): one,
                (3, 2): one,
            },
            fx,
        )

    return Transform3d._with_inverse(matrix, inverse)


def _check_invertible(projection: Transform3d) -> None:
    """Refuse a zero focal length, which makes the projection singular.

    PyTorch3D's unprojection fails in
    ``torch.inverse``; here :class:`SingularTransformError` (a ``ValueError`` and
    ``torch.linalg.LinAlgError``), where readable without a host sync.
    """
    matrix = projection.get_matrix()
    diagonal = host_values(matrix, matrix[:, [0, 1], [0, 1]])
    if diagonal is not None and not bool((matrix[:, [0, 1], [0, 1]] != 0).all()):
        raise SingularTransformError(
            "focal_length: expected non-zero values to unproject points, got 0"
        )


class _FocalCameras(CamerasBase):
    """Shared shell of :class:`PerspectiveCameras` and :class:`OrthographicCameras`."""

    _ORTHOGRAPHIC: ClassVar[bool] = False
    _FIELDS = ("K", "R", "T", "focal_length", "principal_point", "image_size")
    _SHARED_FIELDS = ("_in_ndc",)
    _FIELD_SHAPES: ClassVar[dict[str, tuple[int, ...]]] = {
        "K": (4, 4),
        "R": (3, 3),
        "T": (3,),
        "focal_length": (2,),
        "principal_point": (2,),
        "image_size": (2,),
    }
    _DTYPE_NEUTRAL = ("image_size",)
    _CONVERTERS: ClassVar[dict[str, Callable[..., torch.Tensor]]] = {
        "focal_length": focal_length_field,
        "principal_point": xy_field,
        "image_size": xy_field,
    }

    K: torch.Tensor | None
    focal_length: torch.Tensor
    principal_point: torch.Tensor
    image_size: torch.Tensor | None

    def __init__(
        self,
        focal_length: float | Sequence | torch.Tensor = 1.0,
        principal_point: Sequence | torch.Tensor = ((0.0, 0.0),),
        R: torch.Tensor = DEFAULT_R,
        T: torch.Tensor = DEFAULT_T,
        K: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        in_ndc: bool = True,
        image_size: Sequence | torch.Tensor | None = None,
    ) -> None:
        self._in_ndc = check_bool(in_ndc, "in_ndc")
        if focal_length is None:  # PyTorch3D fails here too (with an AttributeError)
            raise ValueError(
                "focal_length: expected a number or a tensor of shape (), (N,), (N, 1) or "
                "(N, 2), got None"
            )
        self._init_fields(
            device,
            K=K,
            R=R,
            T=T,
            focal_length=focal_length,
            principal_point=principal_point,
            image_size=image_size,
        )

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """Image sizes must be >= 1 pixel (PyTorch3D's check, at construction)."""
        if "image_size" in fields:
            check_image_size_values(*fields["image_size"])

    def in_ndc(self) -> bool:
        return self._in_ndc

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> camera space (NDC, or screen units when ``in_ndc=False``).

        Args:
            **kwargs: ``focal_length``, ``principal_point`` or ``K`` override the camera's
                fields for this call (other keys are ignored).
        """
        K = self._override("K", kwargs)
        if K is not None:
            return column_matrix_transform(K)
        owner = type(self).__name__
        focal = required(self._override("focal_length", kwargs), "focal_length", owner)
        principal = required(self._override("principal_point", kwargs), "principal_point", owner)
        return _focal_projection(focal, principal, self._ORTHOGRAPHIC)

    def get_principal_point(self, **kwargs: Any) -> torch.Tensor:
        """The principal points ``(N, 2)`` read off the projection (so also from a ``K``)."""
        matrix = self.get_projection_transform(**kwargs).get_matrix()  # (N, 4, 4)
        return matrix[:, 3, :2] if self._ORTHOGRAPHIC else matrix[:, 2, :2]

    def get_ndc_camera_transform(self, **kwargs: Any) -> Transform3d:
        """Camera space -> PyTorch3D NDC: the identity in NDC, else pixels -> NDC.

        A screen-space principal point is given in image coordinates (+X right, +Y down) while
        projected points keep PyTorch3D's axes (+X left, +Y up), so with ``s = min(H, W) / 2``:
        ``x_ndc = (x - 2 px + W / 2) / s`` and ``y_ndc = (y - 2 py + H / 2) / s``; depth is kept.

        Args:
            **kwargs: field overrides, and ``image_size`` ``(H, W)`` or ``(N, 2)``.
        """
        if self._in_ndc:
            return Transform3d(dtype=self.dtype, device=self.device)
        size = image_size_for(self, kwargs.get("image_size", self.image_size))  # (N, 2)
        principal = self.get_principal_point(**kwargs)  # (N, 2)
        half_short = size.min(dim=1).values / 2  # (N,)
        offset = size.flip(1) / 2 - 2 * principal  # (N, 2): (W/2 - 2 px, H/2 - 2 py)
        one, zero = torch.ones_like(half_short), torch.zeros_like(half_short)
        inv = 1 / half_short
        scale = torch.stack((inv, inv, one), dim=1)  # (N, 3)
        shift = torch.cat((offset * inv[:, None], zero[:, None]), dim=1)  # (N, 3)
        return axis_affine(scale, shift)

    def unproject_points(
        self,
        xy_depth: torch.Tensor,
        world_coordinates: bool = True,
        from_ndc: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Camera-space ``x, y`` plus view depth -> world (or view) points.

        Args:
            xy_depth: ``(P, 3)`` or ``(N, P, 3)``: ``x, y`` in the camera's space (NDC, or
                screen units when ``in_ndc=False``) and the view-space depth ``z``.
            world_coordinates: return world points (True) or view points (False).
            from_ndc: the ``x, y`` are in PyTorch3D NDC even for a screen-space camera (what
                the raysamplers pass).
            **kwargs: field overrides (``image_size`` too).

        Returns:
            Points ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` input).
        """
        check_bool(world_coordinates, "world_coordinates")
        check_bool(from_ndc, "from_ndc")
        xy_depth = self._check_xy_depth(xy_depth)
        to_camera = self.get_projection_transform(**kwargs)
        if self._override("K", kwargs) is None:
            _check_invertible(to_camera)
        if world_coordinates:
            to_camera = self.get_world_to_view_transform(**kwargs).compose(to_camera)
        if from_ndc and not self._in_ndc:
            to_camera = to_camera.compose(self.get_ndc_camera_transform(**kwargs))
        if not self._ORTHOGRAPHIC:
            # the projection's third coordinate is 1 / depth
            xy_depth = torch.cat((xy_depth[..., :2], 1.0 / xy_depth[..., 2:3]), dim=-1)
        return to_camera.inverse().transform_points(xy_depth)


class PerspectiveCameras(_FocalCameras):
    """Pinhole cameras given by focal length and principal point (multi-view geometry style).

    The projection is ``x' = fx * x / z + px``, ``y' = fy * y / z + py``, and the third
    coordinate is ``1 / z``. With ``in_ndc=True`` (default) the parameters and the projected
    points are in PyTorch3D NDC. With ``in_ndc=False`` they are in pixels: the principal point
    in image coordinates (+X right, +Y down), and ``image_size`` is needed wherever points go to
    NDC (the raysamplers, :meth:`transform_points_ndc`); see :meth:`get_ndc_camera_transform`.

    Args:
        focal_length: a number, ``(N,)``, ``(N, 1)`` (square pixels) or ``(N, 2)`` as
            ``(fx, fy)``; non-zero. Stored as ``(N, 2)``.
        principal_point: ``(N, 2)`` (or one pair) as ``(px, py)``.
        R: rotations ``(N, 3, 3)`` (world -> view: ``p @ R + T``).
        T: translations ``(N, 3)``.
        K: optional projection matrices ``(N, 4, 4)`` (column-vector convention); when given
            they replace the matrices built from focal length and principal point.
        device: where the cameras live; tensors given are moved there.
        in_ndc: whether the parameters are in NDC (True) or screen space (False).
        image_size: ``(N, 2)`` (or one pair) as (height, width), values ``>= 1``; one pair
            means one size for every camera (PyTorch3D would read ``(H, W)`` as two cameras).
    """

    def is_perspective(self) -> bool:
        """True: a perspective projection."""
        return True


class OrthographicCameras(_FocalCameras):
    """Orthographic cameras given by focal length (scale) and principal point.

    The projection is ``x' = fx * x + px``, ``y' = fy * y + py``, ``z' = z``: depth does not
    change where a point lands. ``in_ndc`` and ``image_size`` work as in
    :class:`PerspectiveCameras`, and so do the arguments.
    """

    _ORTHOGRAPHIC = True

    def is_perspective(self) -> bool:
        """False: an orthographic projection."""
        return False

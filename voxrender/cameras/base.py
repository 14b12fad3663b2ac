"""The base of all cameras and the NDC <-> screen (pixel) maps every camera uses.

The base: batch handling, per-camera fields, extrinsics, generic projections.

Subclasses (:mod:`voxrender.cameras.fov`, :mod:`voxrender.cameras.focal`) add the projection;
see :mod:`voxrender.cameras` for the coordinate systems.

Dimensions:
    ``N``: cameras in the batch.
    ``P``: points per camera.
    ``H, W``: image height and width in pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from .._checks import (
    ArgumentTypeError,
    IndexOutOfRangeError,
    broadcast_batch_sizes,
    check_same_device,
    check_shape,
    describe,
)
from .._transform_helpers import make_device
from ..transforms import Transform3d
from ._helpers import (
    DEFAULT_R,
    DEFAULT_T,
    axis_affine,
    check_bool,
    check_image_size_values,
    expand,
    host_values,
    matrix_field,
    required,
    scalar_field,
    user_dtype,
    xy_field,
)
from .world_view import world_to_view

__all__ = [
    "CamerasBase",
    "get_ndc_to_screen_transform",
    "get_screen_to_ndc_transform",
    "image_size_for",
]


# ---------------------------------------------------------------------------------------------
# Cameras
# ---------------------------------------------------------------------------------------------


class CamerasBase:
    """Base of all cameras: batch handling, extrinsics, and the generic world -> camera maps.

    A subclass lists its per-camera fields in ``_FIELDS`` (with their trailing shapes in
    ``_FIELD_SHAPES``; ``()`` for a float per camera), its batch-wide fields in
    ``_SHARED_FIELDS``, and implements ``get_projection_transform``, ``unproject_points``,
    ``is_perspective`` and ``in_ndc``. Its ``__init__`` calls :meth:`_init_fields` and may check
    values in :meth:`_check_values`. Screen-space cameras also override
    ``get_ndc_camera_transform``.
    """

    _FIELDS: ClassVar[tuple[str, ...]] = ("R", "T")
    _SHARED_FIELDS: ClassVar[tuple[str, ...]] = ()
    _FIELD_SHAPES: ClassVar[dict[str, tuple[int, ...]]] = {"R": (3, 3), "T": (3,)}
    _DEFAULTS: ClassVar[tuple[torch.Tensor, ...]] = (DEFAULT_R, DEFAULT_T)
    # Fields whose dtype never decides the cameras' dtype (e.g. integer-valued image sizes).
    _DTYPE_NEUTRAL: ClassVar[tuple[str, ...]] = ()
    # Fields with more forms than the default: name -> converter(value, name, dtype, device).
    _CONVERTERS: ClassVar[dict[str, Callable[..., torch.Tensor]]] = {}

    R: torch.Tensor
    T: torch.Tensor

    # ------------------------------------------------------------------ fields

    def _init_fields(self, device: torch.device | str, **values: Any) -> None:
        """Check, convert, broadcast and set the per-camera fields; sets ``device``, ``dtype``, ``_N``."""
        device = make_device(device)
        deciding = [v for k, v in values.items() if k not in self._DTYPE_NEUTRAL]
        dtype = user_dtype(deciding, self._DEFAULTS)
        converted: dict[str, torch.Tensor] = {}
        for name, value in values.items():
            if value is None:
                continue
            converted[name] = self._convert_field(name, value, dtype, device)
        n = broadcast_batch_sizes({k: v.shape[0] for k, v in converted.items()})
        self.device = device
        self.dtype = dtype
        self._N = n
        for name in values:
            setattr(self, name, expand(converted[name], n) if name in converted else None)
        self._check_values({name: (values[name], getattr(self, name)) for name in converted})

    def _convert_field(
        self, name: str, value: object, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """One field as given -> a checked tensor ``(n, *trailing)`` (``n`` is 1 or ``N``).

        Matrix-like fields must be tensors ``(N, *trailing)``; per-camera floats may be numbers,
        lists or tensors. Fields with more forms are converted by ``_CONVERTERS``.
        """
        convert = self._CONVERTERS.get(name)
        if convert is not None:
            return convert(value, name, dtype, device)
        trailing = self._FIELD_SHAPES[name]
        if trailing:
            return matrix_field(value, name, trailing, dtype, device)
        return scalar_field(value, name, dtype, device)

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """Check field values where that needs no device sync (override in subclasses).

        Args:
            fields: name -> (value as given, converted tensor) for the fields just set or
                overridden; others are read from ``self``.
        """

    def _host_field_values(
        self, fields: dict[str, tuple[Any, torch.Tensor]], names: Sequence[str]
    ) -> dict[str, torch.Tensor | None]:
        """The values of ``names`` (from ``fields``, else ``self``) readable without a sync."""
        values = {}
        for name in names:
            given, converted = fields.get(name, (getattr(self, name), getattr(self, name)))
            values[name] = host_values(given, converted)
        return values

    def _override(self, name: str, kwargs: dict[str, Any]) -> Any:
        """Field ``name`` from ``kwargs`` (checked and converted like at construction) or self."""
        if name not in kwargs:
            return getattr(self, name)
        value = kwargs[name]
        if name not in self._FIELD_SHAPES or value is None:
            return value
        out = self._convert_field(name, value, self.dtype, self.device)
        if name not in ("R", "T", "K"):
            self._check_values({name: (value, out)})
        if out.shape[0] not in (1, self._N):
            raise ValueError(
                f"{name}: expected a batch size of 1 or {self._N} (len(cameras)), "
                f"got {out.shape[0]}"
            )
        return expand(out, self._N)

    # ------------------------------------------------------------------ batch

    def __len__(self) -> int:
        return self._N

    def __getitem__(self, index: int | list[int] | torch.Tensor) -> CamerasBase:
        """A new camera batch with the selected cameras (tensors indexed, graph kept).

        Args:
            index: an int, a list of ints, or a 1-D Long or Bool tensor (a Bool mask must have
                ``len(self)`` entries). Negative indices count from the end.
        """
        n = self._N
        valid = isinstance(index, (int, list)) or (
            isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.int64)
        )
        if not valid or (
            isinstance(index, list)
            and not all(isinstance(i, int) and not isinstance(i, bool) for i in index)
        ):
            raise ArgumentTypeError(
                "Invalid index type, expected int, List[int] or Bool/LongTensor; got "
                f"{type(index)!r} (index: expected an int, a list of ints or a 1-D Long/Bool "
                f"tensor, got {describe(index)})"
            )
        if isinstance(index, bool):
            raise IndexOutOfRangeError(
                f"Index {index} is out of bounds for select cameras (index: expected an int, "
                f"a list of ints or a Long/Bool tensor, got bool {index})"
            )
        if isinstance(index, int):
            index = [index]
        if isinstance(index, list):
            bad = [i for i in index if not -n <= i < n]
            if bad:
                raise IndexOutOfRangeError(
                    f"Index {bad[0]} is out of bounds for select cameras (index: expected "
                    f"indices in [{-n}, {n}) for {n} cameras, got {bad[0]})"
                )
        elif index.dtype == torch.bool:
            if index.shape != (n,):
                raise ValueError(
                    f"Boolean index of shape {index.shape} does not match cameras (index: "
                    f"expected a Bool mask of shape ({n},), got shape {tuple(index.shape)})"
                )
        else:
            check_shape(index, "index", ndim=1, spec="(M,)")
            if index.device.type == "cpu" and index.numel():
                bad = index[(index < -n) | (index >= n)]
                if bad.numel():
                    raise IndexOutOfRangeError(
                        f"Index {int(bad[0])} is out of bounds for select cameras (index: "
                        f"expected indices in [{-n}, {n}) for {n} cameras, got {int(bad[0])})"
                    )
        kwargs = self._shared_kwargs()
        for name in self._FIELDS:
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value[index]
        return type(self)(device=self.device, **kwargs)

    def _tensor_fields(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, n) for n in self._FIELDS if getattr(self, n) is not None}

    def _shared_kwargs(self) -> dict[str, Any]:
        """The batch-wide fields as constructor arguments (``_in_ndc`` -> ``in_ndc``)."""
        return {name.lstrip("_"): getattr(self, name) for name in self._SHARED_FIELDS}

    def clone(self) -> CamerasBase:
        """A copy with cloned tensors (still attached to the autograd graph)."""
        kwargs = self._shared_kwargs()
        kwargs.update({k: v.clone() for k, v in self._tensor_fields().items()})
        return type(self)(device=self.device, **kwargs)

    def to(self, device: torch.device | str) -> CamerasBase:
        """Move every field to ``device`` *in place* and return ``self`` (as PyTorch3D does)."""
        device = make_device(device)
        for name, value in self._tensor_fields().items():
            setattr(self, name, value.to(device))
        self.device = device
        return self

    def cpu(self) -> CamerasBase:
        """``self.to("cpu")``."""
        return self.to("cpu")

    def cuda(self) -> CamerasBase:
        """``self.to("cuda")``."""
        return self.to("cuda")

    # ------------------------------------------------------------------ queries

    def is_perspective(self) -> bool:
        """Whether the projection is perspective (else orthographic)."""
        raise NotImplementedError(f"{type(self).__name__} must implement is_perspective")

    def in_ndc(self) -> bool:
        """Whether the cameras are defined in NDC (else in screen space)."""
        raise NotImplementedError(f"{type(self).__name__} must implement in_ndc")

    def get_znear(self) -> torch.Tensor | None:
        """The near clipping planes ``(N,)``, or None for cameras without one."""
        return getattr(self, "znear", None)

    def get_image_size(self) -> torch.Tensor | None:
        """The image sizes ``(N, 2)`` as (height, width), or None (NDC cameras have none)."""
        return getattr(self, "image_size", None)

    # ------------------------------------------------------------------ transforms

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> camera (NDC or screen) transform; ``kwargs`` override fields."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_projection_transform")

    def unproject_points(self, xy_depth: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Camera (NDC or screen) coordinates plus depth -> world or view points."""
        raise NotImplementedError(f"{type(self).__name__} must implement unproject_points")

    def get_world_to_view_transform(self, **kwargs: Any) -> Transform3d:
        """World -> view transform ``p @ R + T``.

        ``R`` ``(N, 3, 3)`` and ``T`` ``(N, 3)`` in ``kwargs`` override the camera's and, as in
        PyTorch3D, replace them on the camera.
        """
        self.R = self._override("R", kwargs)
        self.T = self._override("T", kwargs)
        owner = type(self).__name__
        return world_to_view(required(self.R, "R", owner), required(self.T, "T", owner))

    def get_full_projection_transform(self, **kwargs: Any) -> Transform3d:
        """World -> camera (NDC or screen) transform; ``kwargs`` override fields."""
        world_to_view = self.get_world_to_view_transform(**kwargs)
        return world_to_view.compose(self.get_projection_transform(**kwargs))

    def transform_points(
        self, points: torch.Tensor, eps: float | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Project world points to camera space (NDC for NDC cameras).

        Args:
            points: ``(P, 3)`` or ``(N, P, 3)``.
            eps: optional clamp of the homogeneous divisor, see
                :meth:`voxrender.Transform3d.transform_points`.
            **kwargs: field overrides.

        Returns:
            ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` points).
        """
        return self.get_full_projection_transform(**kwargs).transform_points(points, eps=eps)

    def get_ndc_camera_transform(self, **kwargs: Any) -> Transform3d:
        """Camera space -> PyTorch3D NDC; the identity for cameras defined in NDC.

        For a camera defined in screen space this generic version only rescales pixels to NDC
        (:func:`get_screen_to_ndc_transform` without the xy flip, ``image_size`` from ``kwargs``
        or the camera); cameras with a principal point override it.
        """
        if self.in_ndc():
            return Transform3d(dtype=self.dtype, device=self.device)
        image_size = kwargs.get("image_size", self.get_image_size())
        return get_screen_to_ndc_transform(self, with_xyflip=False, image_size=image_size)

    def transform_points_ndc(
        self, points: torch.Tensor, eps: float | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Project world points to PyTorch3D's NDC space (``(P, 3)`` or ``(N, P, 3)``)."""
        transform = self.get_full_projection_transform(**kwargs)
        if not self.in_ndc():
            transform = transform.compose(self.get_ndc_camera_transform(**kwargs))
        return transform.transform_points(points, eps=eps)

    def transform_points_screen(
        self,
        points: torch.Tensor,
        eps: float | None = None,
        with_xyflip: bool = True,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Project world points to screen space (pixels, ``z`` as in NDC).

        Args:
            points: ``(P, 3)`` or ``(N, P, 3)``.
            eps: optional clamp of the homogeneous divisor.
            with_xyflip: flip x and y so that +X points right and +Y down, origin at the top
                left image corner (the image convention); without it the axes stay PyTorch3D's.
            **kwargs: field overrides; ``image_size`` ``(H, W)`` or ``(N, 2)`` is required here
                unless the camera has one.

        Returns:
            ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` points).
        """
        check_bool(with_xyflip, "with_xyflip")
        points_ndc = self.transform_points_ndc(points, eps=eps, **kwargs)
        image_size = kwargs.get("image_size", self.get_image_size())
        to_screen = get_ndc_to_screen_transform(
            self, with_xyflip=with_xyflip, image_size=image_size
        )
        return to_screen.transform_points(points_ndc, eps=eps)

    def _check_xy_depth(self, xy_depth: torch.Tensor) -> torch.Tensor:
        """Shape, device and batch of an ``unproject_points`` input.

        Integer input is cast to the cameras' dtype (another float dtype promotes in the computation).
        """
        if not isinstance(xy_depth, torch.Tensor):
            raise ArgumentTypeError(
                f"xy_depth: expected a tensor of shape (P, 3) or (N, P, 3), got {describe(xy_depth)}"
            )
        if not xy_depth.is_floating_point():
            if xy_depth.dtype == torch.bool or xy_depth.is_complex():
                raise ArgumentTypeError(
                    f"xy_depth: expected a real tensor, got dtype {xy_depth.dtype}"
                )
            xy_depth = xy_depth.to(self.dtype)
        check_shape(xy_depth, "xy_depth", ndim=(2, 3), last=(3,), spec="(P, 3) or (N, P, 3)")
        check_same_device("xy_depth", xy_depth, self.device)
        if xy_depth.ndim == 3:
            broadcast_batch_sizes({"xy_depth.shape[0]": xy_depth.shape[0], "len(cameras)": self._N})
        return xy_depth

    def get_camera_center(self, **kwargs: Any) -> torch.Tensor:
        """Camera centres in world coordinates ``(N, 3)``: ``-T @ inverse(R)``.

        Read off the inverted world -> view transform, as in PyTorch3D (so the gradient w.r.t.
        ``R`` is PyTorch3D's also for an ``R`` that is not exactly orthonormal). ``R`` or ``T``
        in ``kwargs`` override (and, as in PyTorch3D, replace) the camera's.
        """
        world_to_view = self.get_world_to_view_transform(**kwargs)
        return world_to_view.inverse().get_matrix()[:, 3, :3]


# ---------------------------------------------------------------------------------------------
# NDC <-> screen
# ---------------------------------------------------------------------------------------------


def image_size_for(cameras: CamerasBase, image_size: object) -> torch.Tensor:
    """The image sizes ``(N, 2)`` (height, width) for ``cameras``, checked and broadcast."""
    if image_size is None:
        raise ValueError(
            "image_size: expected the image (height, width), a pair or a tensor (N, 2), to "
            "convert between NDC and screen space (give it to the camera or to this call), "
            "got None"
        )
    size = xy_field(image_size, "image_size", cameras.dtype, cameras.device)
    check_image_size_values(image_size, size)
    if size.shape[0] not in (1, len(cameras)):
        raise ValueError(
            f"image_size: expected a batch size of 1 or {len(cameras)} (len(cameras)), "
            f"got {size.shape[0]}"
        )
    return expand(size, len(cameras))


def get_ndc_to_screen_transform(
    cameras: CamerasBase, with_xyflip: bool = False, image_size: object = None
) -> Transform3d:
    """PyTorch3D NDC -> screen (pixel) coordinates, ``z`` unchanged.

    NDC spans ``[-1, 1]`` along the image's shorter side, so with ``s = min(H, W) / 2``:
    ``x -> s * x - W / 2`` and ``y -> s * y - H / 2``. With ``with_xyflip`` both are negated,
    giving image coordinates (+X right, +Y down, origin at the top left corner, ``W x H``).

    Args:
        cameras: the cameras (their batch size, dtype and device are used).
        with_xyflip: negate x and y after scaling.
        image_size: ``(H, W)`` or ``(N, 2)`` (required).

    Returns:
        A Transform3d of ``len(cameras)`` transforms.
    """
    if not isinstance(cameras, CamerasBase):
        raise TypeError(f"cameras: expected a CamerasBase, got {describe(cameras)}")
    check_bool(with_xyflip, "with_xyflip")
    size = image_size_for(cameras, image_size)  # (N, 2)
    height, width = size.unbind(1)  # (N,) each
    half_short = size.min(dim=1).values / 2  # (N,)
    sign = -1.0 if with_xyflip else 1.0
    one, zero = torch.ones_like(height), torch.zeros_like(height)
    scale = torch.stack((sign * half_short, sign * half_short, one), dim=1)  # (N, 3)
    shift = torch.stack((-sign * width / 2, -sign * height / 2, zero), dim=1)  # (N, 3)
    return axis_affine(scale, shift)


def get_screen_to_ndc_transform(
    cameras: CamerasBase, with_xyflip: bool = False, image_size: object = None
) -> Transform3d:
    """Screen (pixel) coordinates -> PyTorch3D NDC: the inverse of :func:`get_ndc_to_screen_transform`."""
    return get_ndc_to_screen_transform(cameras, with_xyflip, image_size).inverse()

"""Cameras in PyTorch3D's conventions: the four camera kinds, screen <-> NDC maps, look-at helpers.

Coordinate systems (as in PyTorch3D): *world*; *view* (camera at the origin, +X left, +Y up,
+Z pointing from the camera into the scene); *NDC* (after the projection: +X left, +Y up,
``x, y`` in ``[-1, 1]`` along the image's shorter side and ``[-u, u]``, ``u >= 1``, along the
longer one; for FoV cameras ``z`` in ``[0, 1]`` from ``znear`` to ``zfar``); *screen* (pixels of
an ``H x W`` image). World -> view is ``p_view = p_world @ R + T`` (row vectors), so a camera at
world position ``C`` has ``T = -C @ R``. All transforms are :class:`~voxrender.Transform3d`
(row-vector matrices).

Camera kinds: :class:`FoVPerspectiveCameras` and :class:`FoVOrthographicCameras` (defined in
NDC by a field of view or a box), :class:`PerspectiveCameras` and :class:`OrthographicCameras`
(focal length and principal point, in NDC or, with ``in_ndc=False``, in screen space; their
``get_ndc_camera_transform`` maps screen units to NDC using ``image_size``).

Every per-camera field (``R``, ``T``, ``K``, ``znear``, ``focal_length``, ...) is stored as a
tensor with the batch size ``N`` first: batch sizes 1 and ``N`` broadcast at construction,
anything else raises. Fields given as tensors keep their autograd graph (they are only moved,
cast to the common dtype and expanded), so gradients flow back to them. The camera's dtype is
the promoted dtype of the floating tensors given (the default dtype when only Python numbers are
given; ``image_size`` never decides it).

Dimensions:
    ``N``: cameras in the batch.
    ``P``: points per camera.
    ``H, W``: image height and width in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ._checks import (
    as_batched_param,
    broadcast_batch_sizes,
    check_floating,
    check_same_device,
    check_shape,
    describe,
)
from .transforms import Transform3d, _affine_matrix, _make_device, _numerical_inverse

__all__ = [
    "CamerasBase",
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "OrthographicCameras",
    "PerspectiveCameras",
    "camera_position_from_spherical_angles",
    "get_ndc_to_screen_transform",
    "get_screen_to_ndc_transform",
    "get_world_to_view_transform",
    "look_at_rotation",
    "look_at_view_transform",
]

# Defaults (identity extrinsics), as in PyTorch3D. Recognised by identity: they never decide
# the dtype or device of a camera.
_R = torch.eye(3)[None]  # (1, 3, 3)
_T = torch.zeros(1, 3)  # (1, 3)

_BatchFloat = float | Sequence[float] | torch.Tensor


# ---------------------------------------------------------------------------------------------
# Field conversion shared by all cameras
# ---------------------------------------------------------------------------------------------


def _user_dtype(values: Sequence[object], defaults: Sequence[object] = ()) -> torch.dtype:
    """Promoted dtype of the floating tensors among ``values`` (defaults excluded)."""
    dtype = None
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if any(value is d for d in defaults):
                continue
            dtype = value.dtype if dtype is None else torch.promote_types(dtype, value.dtype)
    return torch.get_default_dtype() if dtype is None else dtype


def _matrix_field(
    value: object, name: str, trailing: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A floating tensor ``(N, *trailing)``, checked, cast and moved (graph kept)."""
    spec = "(N, " + ", ".join(map(str, trailing)) + ")"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {spec}, got {describe(value)}")
    check_shape(value, name, ndim=len(trailing) + 1, last=trailing, spec=spec)
    check_floating(value, name)
    return value.to(device=device, dtype=dtype)


def _vector_field(
    value: object, name: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A 3-vector or a batch of them (tensor or nested sequence) -> ``(N, 3)``."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
        check_shape(value, name, ndim=(1, 2), last=(3,), spec="(3,) or (N, 3)")
        return value.reshape(-1, 3).to(device=device, dtype=dtype)
    try:
        tensor = torch.tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name}: expected a tensor or a sequence of 3-vectors, got {describe(value)}"
        ) from None
    check_shape(tensor, name, ndim=(1, 2), last=(3,), spec="(3,) or (N, 3)")
    return tensor.reshape(-1, 3)


def _expand(tensor: torch.Tensor, n: int) -> torch.Tensor:
    return tensor.expand(n, *tensor.shape[1:])


def _host_values(raw: object, converted: torch.Tensor) -> torch.Tensor | None:
    """The values of a scalar field where reading them costs no device sync, else None."""
    if torch.compiler.is_compiling():
        return None
    if isinstance(raw, torch.Tensor):
        return raw.detach().reshape(-1) if raw.device.type == "cpu" else None
    if converted.device.type == "cpu":
        return converted.detach()
    return torch.tensor(raw, dtype=torch.float64).reshape(-1)


def _first_bad(values: torch.Tensor, ok: torch.Tensor) -> float:
    return float(values[~ok][0])


# ---------------------------------------------------------------------------------------------
# World <-> view transforms
# ---------------------------------------------------------------------------------------------


def _world_to_view(R: torch.Tensor, T: torch.Tensor) -> Transform3d:
    """``p -> p @ R + T`` as a Transform3d with a closed-form inverse (no validation)."""
    matrix = _affine_matrix(R, T)  # (N, 4, 4)

    def inverse() -> torch.Tensor:
        rt = R.transpose(1, 2)
        return _affine_matrix(rt, -torch.matmul(T[:, None, :], rt)[:, 0])

    return Transform3d._with_inverse(matrix, inverse)


def get_world_to_view_transform(R: torch.Tensor = _R, T: torch.Tensor = _T) -> Transform3d:
    """World -> view transform: rotate by ``R``, then translate by ``T`` (``p @ R + T``).

    Args:
        R: rotations ``(N, 3, 3)``.
        T: translations ``(N, 3)``; batch sizes 1 and ``N`` broadcast.

    Returns:
        A Transform3d of ``N`` transforms.
    """
    if R is _R and isinstance(T, torch.Tensor) and T.is_floating_point():
        R = _R.to(device=T.device, dtype=T.dtype)
    check_floating(R, "R")
    check_shape(R, "R", ndim=3, last=(3, 3), spec="(N, 3, 3)")
    if T is _T:
        T = _T.to(device=R.device, dtype=R.dtype)
    check_floating(T, "T")
    check_shape(T, "T", ndim=2, last=(3,), spec="(N, 3)")
    if T.dtype != R.dtype:
        raise TypeError(f"T: expected dtype {R.dtype} (R's), got {T.dtype}")
    check_same_device("T", T, R.device)
    broadcast_batch_sizes({"R": R.shape[0], "T": T.shape[0]})
    return _world_to_view(R, T)


# ---------------------------------------------------------------------------------------------
# Small builders: per-axis affine maps, sparse 4x4 matrices, screen <-> NDC
# ---------------------------------------------------------------------------------------------


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {describe(value)}")
    return value


def _sparse_matrix(
    entries: dict[tuple[int, int], torch.Tensor], like: torch.Tensor
) -> torch.Tensor:
    """``(N, 4, 4)`` matrices with the given ``(N,)`` entries and zeros elsewhere."""
    zero = torch.zeros_like(like)
    flat = [entries.get((i, j), zero) for i in range(4) for j in range(4)]
    return torch.stack(flat, dim=-1).reshape(-1, 4, 4)


def _axis_affine(scale: torch.Tensor, shift: torch.Tensor) -> Transform3d:
    """``p -> p * scale + shift`` per axis (``scale``, ``shift`` ``(N, 3)``), inverted in closed form."""
    matrix = _affine_matrix(torch.diag_embed(scale), shift)  # (N, 4, 4)

    def inverse() -> torch.Tensor:
        reciprocal = 1.0 / scale  # (N, 3)
        return _affine_matrix(torch.diag_embed(reciprocal), -shift * reciprocal)

    return Transform3d._with_inverse(matrix, inverse)


def _column_matrix_transform(K: torch.Tensor) -> Transform3d:
    """A user's column-vector projection matrices ``K`` ``(N, 4, 4)`` as a transform (``K^T``)."""
    matrix = K.transpose(1, 2)
    return Transform3d._with_inverse(matrix, lambda: _numerical_inverse(matrix))


def _real_tensor(
    value: object, name: str, dtype: torch.dtype, device: torch.device, forms: str
) -> torch.Tensor:
    """A number, a nested sequence of numbers or a real tensor -> a tensor (shape as given)."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
        return value.to(device=device, dtype=dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        raise TypeError(f"{name}: expected {forms}, got {describe(value)}")
    try:
        return torch.tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: expected {forms}, got {describe(value)}") from None


def _focal_length_field(
    value: object, name: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``f``, ``(N,)``, ``(N, 1)`` or ``(N, 2)`` -> ``(N, 2)`` as ``(fx, fy)`` (graph kept)."""
    spec = "(), (N,), (N, 1) or (N, 2)"
    tensor = _real_tensor(value, name, dtype, device, f"a number or a tensor of shape {spec}")
    if tensor.ndim < 2:
        tensor = tensor.reshape(-1, 1)  # (N, 1)
    if tensor.ndim != 2 or tensor.shape[1] not in (1, 2) or tensor.shape[0] == 0:
        raise ValueError(f"{name}: expected shape {spec}, got shape {tuple(tensor.shape)}")
    return tensor.expand(-1, 2)


def _xy_field(value: object, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A pair ``(2,)`` or a batch of pairs ``(N, 2)`` (tensor or sequence) -> ``(N, 2)``."""
    tensor = _real_tensor(value, name, dtype, device, "a pair or a tensor of shape (N, 2)")
    if tensor.ndim not in (1, 2) or tensor.shape[-1] != 2 or tensor.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (2,) or (N, 2), got shape {tuple(tensor.shape)}")
    return tensor.reshape(-1, 2)


def _check_image_size_values(raw: object, converted: torch.Tensor) -> None:
    values = _host_values(raw, converted)
    if values is not None and not bool((values >= 1).all()):
        raise ValueError(
            f"image_size: expected (height, width) values >= 1, got {_first_bad(values, values >= 1):g}"
        )


def _image_size_for(cameras: CamerasBase, image_size: object) -> torch.Tensor:
    """The image sizes ``(N, 2)`` (height, width) for ``cameras``, checked and broadcast."""
    if image_size is None:
        raise ValueError(
            "image_size: expected the image (height, width), a pair or a tensor (N, 2), to "
            "convert between NDC and screen space (give it to the camera or to this call), "
            "got None"
        )
    size = _xy_field(image_size, "image_size", cameras.dtype, cameras.device)
    _check_image_size_values(image_size, size)
    if size.shape[0] not in (1, len(cameras)):
        raise ValueError(
            f"image_size: expected a batch size of 1 or {len(cameras)} (len(cameras)), "
            f"got {size.shape[0]}"
        )
    return _expand(size, len(cameras))


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
    _check_bool(with_xyflip, "with_xyflip")
    size = _image_size_for(cameras, image_size)  # (N, 2)
    height, width = size.unbind(1)  # (N,) each
    half_short = size.min(dim=1).values / 2  # (N,)
    sign = -1.0 if with_xyflip else 1.0
    one, zero = torch.ones_like(height), torch.zeros_like(height)
    scale = torch.stack((sign * half_short, sign * half_short, one), dim=1)  # (N, 3)
    shift = torch.stack((-sign * width / 2, -sign * height / 2, zero), dim=1)  # (N, 3)
    return _axis_affine(scale, shift)


def get_screen_to_ndc_transform(
    cameras: CamerasBase, with_xyflip: bool = False, image_size: object = None
) -> Transform3d:
    """Screen (pixel) coordinates -> PyTorch3D NDC: the inverse of :func:`get_ndc_to_screen_transform`."""
    return get_ndc_to_screen_transform(cameras, with_xyflip, image_size).inverse()


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
    _DEFAULTS: ClassVar[tuple[torch.Tensor, ...]] = (_R, _T)
    # Fields whose dtype never decides the cameras' dtype (e.g. integer-valued image sizes).
    _DTYPE_NEUTRAL: ClassVar[tuple[str, ...]] = ()

    R: torch.Tensor
    T: torch.Tensor

    # ------------------------------------------------------------------ fields

    def _init_fields(self, device: torch.device | str, **values: Any) -> None:
        """Check, convert, broadcast and set the per-camera fields; sets ``device``, ``dtype``, ``_N``."""
        device = _make_device(device)
        deciding = [v for k, v in values.items() if k not in self._DTYPE_NEUTRAL]
        dtype = _user_dtype(deciding, self._DEFAULTS)
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
            setattr(self, name, _expand(converted[name], n) if name in converted else None)
        self._check_values({name: (values[name], getattr(self, name)) for name in converted})

    def _convert_field(
        self, name: str, value: object, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """One field as given -> a checked tensor ``(n, *trailing)`` (``n`` is 1 or ``N``).

        Matrix-like fields must be tensors ``(N, *trailing)``; per-camera floats may be numbers,
        lists or tensors. Subclasses override this for fields with more forms.
        """
        trailing = self._FIELD_SHAPES[name]
        if trailing:
            return _matrix_field(value, name, trailing, dtype, device)
        return as_batched_param(value, name, dtype=dtype, device=device)

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """Check field values where that needs no device sync (override in subclasses).

        Args:
            fields: name -> (value as given, converted tensor) for the fields just set or
                overridden; others are read from ``self``.
        """

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
        return _expand(out, self._N)

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
        if isinstance(index, bool) or not isinstance(index, (int, list, torch.Tensor)):
            raise TypeError(
                f"index: expected an int, a list of ints or a Long/Bool tensor, got {describe(index)}"
            )
        if isinstance(index, int):
            index = [index]
        if isinstance(index, list):
            if any(isinstance(i, bool) or not isinstance(i, int) for i in index):
                raise TypeError(f"index: expected a list of ints, got {index!r}")
            bad = [i for i in index if not -n <= i < n]
            if bad:
                raise IndexError(
                    f"index: expected indices in [{-n}, {n}) for {n} cameras, got {bad[0]}"
                )
        elif index.dtype == torch.bool:
            if index.shape != (n,):
                raise ValueError(
                    f"index: expected a Bool mask of shape ({n},), got shape {tuple(index.shape)}"
                )
        elif index.dtype in (torch.int64, torch.int32):
            check_shape(index, "index", ndim=1, spec="(M,)")
            if index.device.type == "cpu" and index.numel():
                bad = index[(index < -n) | (index >= n)]
                if bad.numel():
                    raise IndexError(
                        f"index: expected indices in [{-n}, {n}) for {n} cameras, got {int(bad[0])}"
                    )
        else:
            raise TypeError(f"index: expected a Long or Bool tensor, got dtype {index.dtype}")
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
        device = _make_device(device)
        for name, value in self._tensor_fields().items():
            setattr(self, name, value.to(device))
        self.device = device
        return self

    def cpu(self) -> CamerasBase:
        return self.to("cpu")

    def cuda(self) -> CamerasBase:
        return self.to("cuda")

    # ------------------------------------------------------------------ queries

    def is_perspective(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement is_perspective")

    def in_ndc(self) -> bool:
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
        return _world_to_view(self.R, self.T)

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
        _check_bool(with_xyflip, "with_xyflip")
        points_ndc = self.transform_points_ndc(points, eps=eps, **kwargs)
        image_size = kwargs.get("image_size", self.get_image_size())
        to_screen = get_ndc_to_screen_transform(
            self, with_xyflip=with_xyflip, image_size=image_size
        )
        return to_screen.transform_points(points_ndc, eps=eps)

    def _check_xy_depth(self, xy_depth: torch.Tensor) -> None:
        """Shape, dtype, device and batch of an ``unproject_points`` input."""
        check_floating(xy_depth, "xy_depth")
        check_shape(xy_depth, "xy_depth", ndim=(2, 3), last=(3,), spec="(P, 3) or (N, P, 3)")
        if xy_depth.dtype != self.dtype:
            raise TypeError(
                f"xy_depth: expected dtype {self.dtype} (the cameras'), got {xy_depth.dtype}"
            )
        check_same_device("xy_depth", xy_depth, self.device)
        if xy_depth.ndim == 3:
            broadcast_batch_sizes({"xy_depth.shape[0]": xy_depth.shape[0], "len(cameras)": self._N})

    def get_camera_center(self, **kwargs: Any) -> torch.Tensor:
        """Camera centres in world coordinates ``(N, 3)``: ``-T @ R^T``.

        ``R`` or ``T`` in ``kwargs`` override (and, as in PyTorch3D, replace) the camera's.
        """
        self.get_world_to_view_transform(**kwargs)
        return -torch.matmul(self.T[:, None, :], self.R.transpose(1, 2))[:, 0]


class FoVPerspectiveCameras(CamerasBase):
    """Perspective cameras given by a field of view (OpenGL-style frustum, PyTorch3D's NDC).

    The projection maps view points to NDC with ``x_ndc = x / (tan(fov/2) * aspect_ratio * z)``,
    ``y_ndc = y / (tan(fov/2) * z)`` and ``z_ndc = zfar / (zfar - znear) * (1 - znear / z)``
    (0 at ``znear``, 1 at ``zfar``).

    Args:
        znear: near plane distance(s) ``> 0``: a float, a list or a tensor ``()`` / ``(N,)``.
        zfar: far plane distance(s) ``> znear``, like ``znear``.
        aspect_ratio: pixel aspect ratio(s) ``> 0`` (1 for square pixels), like ``znear``.
        fov: vertical field(s) of view in ``(0, 180)`` degrees (``(0, pi)`` radians), like ``znear``.
        degrees: whether ``fov`` is in degrees.
        R: rotations ``(N, 3, 3)`` (world -> view: ``p @ R + T``).
        T: translations ``(N, 3)``.
        K: optional projection matrices ``(N, 4, 4)`` (column-vector convention, like
            PyTorch3D's); when given they replace the matrices built from the fields above.
        device: where the cameras live; tensors given are moved there.

    Value checks (positivity, ``znear < zfar``, fov range) run at construction for Python
    numbers and CPU tensors; values of accelerator tensors are not read (no host sync).
    """

    _FIELDS = ("K", "znear", "zfar", "aspect_ratio", "fov", "R", "T")
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
        znear: _BatchFloat = 1.0,
        zfar: _BatchFloat = 100.0,
        aspect_ratio: _BatchFloat = 1.0,
        fov: _BatchFloat = 60.0,
        degrees: bool = True,
        R: torch.Tensor = _R,
        T: torch.Tensor = _T,
        K: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(degrees, bool):
            raise TypeError(f"degrees: expected a bool, got {describe(degrees)}")
        self.degrees = degrees
        self._init_fields(
            device, K=K, znear=znear, zfar=zfar, aspect_ratio=aspect_ratio, fov=fov, R=R, T=T
        )

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """Positivity, fov range and ``znear < zfar``, for values readable without a sync."""
        values = {}
        for name in ("znear", "zfar", "aspect_ratio", "fov"):
            given, converted = fields.get(name, (getattr(self, name), getattr(self, name)))
            values[name] = _host_values(given, converted)
        for name in ("znear", "aspect_ratio"):
            v = values[name]
            if v is not None and not bool((v > 0).all()):
                raise ValueError(f"{name}: expected values > 0, got {_first_bad(v, v > 0):g}")
        fov = values["fov"]
        if fov is not None:
            top, unit = (180.0, "degrees") if self.degrees else (math.pi, "radians")
            ok = (fov > 0) & (fov < top)
            if not bool(ok.all()):
                raise ValueError(
                    f"fov: expected values in (0, {top:g}) {unit}, got {_first_bad(fov, ok):g}"
                )
        near, far = values["znear"], values["zfar"]
        if near is not None and far is not None:
            near, far = torch.broadcast_tensors(near.double(), far.double())
            ok = far > near
            if not bool(ok.all()):
                i = int((~ok).nonzero()[0, 0])
                raise ValueError(
                    f"zfar: expected values > znear, got zfar={float(far[i]):g} "
                    f"with znear={float(near[i]):g}"
                )

    def is_perspective(self) -> bool:
        return True

    def in_ndc(self) -> bool:
        return True

    def compute_projection_matrix(
        self, znear, zfar, fov, aspect_ratio, degrees: bool
    ) -> torch.Tensor:
        """Column-vector projection matrices ``K`` ``(N, 4, 4)`` (PyTorch3D's method).

        Args:
            znear, zfar, fov, aspect_ratio: floats, lists or tensors ``()`` / ``(N,)``; batch
                sizes 1 and ``len(self)`` broadcast to ``len(self)``.
            degrees: whether ``fov`` is in degrees.
        """
        _check_degrees(degrees)
        names = ("znear", "zfar", "fov", "aspect_ratio")
        fields = [
            self._override(k, {k: v})
            for k, v in zip(names, (znear, zfar, fov, aspect_ratio), strict=True)
        ]
        return _fov_projection(*fields, degrees)[0].transpose(1, 2)

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> NDC transform (row-vector matrices ``(N, 4, 4)``, i.e. ``K^T``).

        Args:
            **kwargs: ``znear``, ``zfar``, ``fov``, ``aspect_ratio``, ``degrees`` or ``K``
                override the camera's fields for this call (other keys are ignored).
        """
        K = self._override("K", kwargs)
        if K is not None:
            matrix = K.transpose(1, 2)
            return Transform3d._with_inverse(matrix, lambda: _numerical_inverse(matrix))
        degrees = kwargs.get("degrees", self.degrees)
        if not isinstance(degrees, bool):
            raise TypeError(f"degrees: expected a bool, got {describe(degrees)}")
        matrix, inverse = _fov_projection(
            self._override("znear", kwargs),
            self._override("zfar", kwargs),
            self._override("fov", kwargs),
            self._override("aspect_ratio", kwargs),
            degrees,
        )
        return Transform3d._with_inverse(matrix, inverse)

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
                ``z``, or with ``scaled_depth_input`` the NDC ``z`` in ``[0, 1]``).
            world_coordinates: return world points (True) or view points (False).
            scaled_depth_input: whether the depth is already the NDC ``z``.
            **kwargs: field overrides (used for the whole unprojection, where PyTorch3D uses
                them only to scale the depth); ``from_ndc`` is accepted and ignored (these
                cameras are defined in NDC).

        Returns:
            Points ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` input).
        """
        kwargs.pop("from_ndc", None)
        self._check_xy_depth(xy_depth)
        projection = self.get_projection_transform(**kwargs)
        if world_coordinates:
            to_ndc = self.get_world_to_view_transform(**kwargs).compose(projection)
        else:
            to_ndc = projection
        xy_sdepth = xy_depth
        if not scaled_depth_input:
            matrix = projection.get_matrix()  # (N, 4, 4)
            if xy_depth.ndim == 2 and len(matrix) > 1:
                xy_depth = xy_depth[None]  # (1, P, 3)
            shape = (-1,) + (1,) * (xy_depth.ndim - 1)
            f1 = matrix[:, 2, 2].reshape(shape)  # (N, 1, 1): z_ndc = f1 + f2 / depth
            f2 = matrix[:, 3, 2].reshape(shape)
            depth = xy_depth[..., 2:3]  # (N, P, 1)
            sdepth = (f1 * depth + f2) / depth  # (N, P, 1)
            xy = xy_depth[..., :2].expand(*sdepth.shape[:-1], 2)
            xy_sdepth = torch.cat((xy, sdepth), dim=-1)  # (N, P, 3)
        return to_ndc.inverse().transform_points(xy_sdepth)


def _fov_projection(znear, zfar, fov, aspect_ratio, degrees: bool):
    """Row-vector FoV projection matrices ``(N, 4, 4)`` and a closed-form inverse builder."""
    znear, zfar, fov, aspect_ratio = torch.broadcast_tensors(znear, zfar, fov, aspect_ratio)
    if degrees:
        fov = (math.pi / 180) * fov
    tan_half = torch.tan(fov / 2)  # (N,)
    depth_range = zfar - znear
    f1 = zfar / depth_range  # z_ndc = f1 + f2 / z
    f2 = -(zfar * znear) / depth_range
    zero, one = torch.zeros_like(fov), torch.ones_like(fov)

    def build(entries: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        flat = [entries.get((i, j), zero) for i in range(4) for j in range(4)]
        return torch.stack(flat, dim=-1).reshape(-1, 4, 4)

    matrix = build(
        {
            (0, 0): 1 / (tan_half * aspect_ratio),
            (1, 1): 1 / tan_half,
            (2, 2): f1,
            (2, 3): one,
            (3, 2): f2,
        }
    )

    def inverse() -> torch.Tensor:
        return build(
            {
                (0, 0): tan_half * aspect_ratio,
                (1, 1): tan_half,
                (2, 3): -depth_range / (zfar * znear),
                (3, 2): one,
                (3, 3): 1 / znear,
            }
        )

    return matrix, inverse


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
        return _axis_affine(torch.stack((fx, fy, one), 1), torch.stack((px, py, zero), 1))
    # Row-vector form: [x, y, z, 1] @ M = [fx x + px z, fy y + py z, 1, z].
    matrix = _sparse_matrix(
        {(0, 0): fx, (1, 1): fy, (2, 0): px, (2, 1): py, (2, 3): one, (3, 2): one}, fx
    )

    def inverse() -> torch.Tensor:
        return _sparse_matrix(
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

    K: torch.Tensor | None
    focal_length: torch.Tensor
    principal_point: torch.Tensor
    image_size: torch.Tensor | None

    def __init__(
        self,
        focal_length: float | Sequence | torch.Tensor = 1.0,
        principal_point: Sequence | torch.Tensor = ((0.0, 0.0),),
        R: torch.Tensor = _R,
        T: torch.Tensor = _T,
        K: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        in_ndc: bool = True,
        image_size: Sequence | torch.Tensor | None = None,
    ) -> None:
        self._in_ndc = _check_bool(in_ndc, "in_ndc")
        self._init_fields(
            device,
            K=K,
            R=R,
            T=T,
            focal_length=focal_length,
            principal_point=principal_point,
            image_size=image_size,
        )

    def _convert_field(
        self, name: str, value: object, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        if name == "focal_length":
            return _focal_length_field(value, name, dtype, device)
        if name in ("principal_point", "image_size"):
            return _xy_field(value, name, dtype, device)
        return super()._convert_field(name, value, dtype, device)

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """A focal length of 0 collapses the projection; image sizes must be >= 1 pixel."""
        if "focal_length" in fields:
            raw, converted = fields["focal_length"]
            values = _host_values(raw, converted)
            if values is not None and not bool((values != 0).all()):
                raise ValueError("focal_length: expected non-zero values, got 0")
        if "image_size" in fields:
            _check_image_size_values(*fields["image_size"])

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
            return _column_matrix_transform(K)
        focal = self._override("focal_length", kwargs)
        principal = self._override("principal_point", kwargs)
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
        size = _image_size_for(self, kwargs.get("image_size", self.image_size))  # (N, 2)
        principal = self.get_principal_point(**kwargs)  # (N, 2)
        half_short = size.min(dim=1).values / 2  # (N,)
        offset = size.flip(1) / 2 - 2 * principal  # (N, 2): (W/2 - 2 px, H/2 - 2 py)
        one, zero = torch.ones_like(half_short), torch.zeros_like(half_short)
        inv = 1 / half_short
        scale = torch.stack((inv, inv, one), dim=1)  # (N, 3)
        shift = torch.cat((offset * inv[:, None], zero[:, None]), dim=1)  # (N, 3)
        return _axis_affine(scale, shift)

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
        _check_bool(world_coordinates, "world_coordinates")
        _check_bool(from_ndc, "from_ndc")
        self._check_xy_depth(xy_depth)
        to_camera = self.get_projection_transform(**kwargs)
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
        return True


class OrthographicCameras(_FocalCameras):
    """Orthographic cameras given by focal length (scale) and principal point.

    The projection is ``x' = fx * x + px``, ``y' = fy * y + py``, ``z' = z``: depth does not
    change where a point lands. ``in_ndc`` and ``image_size`` work as in
    :class:`PerspectiveCameras`, and so do the arguments.
    """

    _ORTHOGRAPHIC = True

    def is_perspective(self) -> bool:
        return False


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


class FoVOrthographicCameras(CamerasBase):
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

    Value checks run at construction for Python numbers and CPU tensors (no host sync).
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
        znear: _BatchFloat = 1.0,
        zfar: _BatchFloat = 100.0,
        max_y: _BatchFloat = 1.0,
        min_y: _BatchFloat = -1.0,
        max_x: _BatchFloat = 1.0,
        min_x: _BatchFloat = -1.0,
        scale_xyz: Sequence | torch.Tensor = ((1.0, 1.0, 1.0),),
        R: torch.Tensor = _R,
        T: torch.Tensor = _T,
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

    def _convert_field(
        self, name: str, value: object, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        if name == "scale_xyz":
            return _vector_field(value, name, dtype, device)
        return super()._convert_field(name, value, dtype, device)

    def _check_values(self, fields: dict[str, tuple[Any, torch.Tensor]]) -> None:
        """Ordered bounds (``zfar > znear``, ``max > min``) and non-zero scales, without a sync."""
        values = {}
        for name in ("znear", "zfar", "max_x", "min_x", "max_y", "min_y", "scale_xyz"):
            given, converted = fields.get(name, (getattr(self, name), getattr(self, name)))
            values[name] = _host_values(given, converted)
        scale = values["scale_xyz"]
        if scale is not None and not bool((scale != 0).all()):
            raise ValueError("scale_xyz: expected non-zero values, got 0")
        for low, high in (("znear", "zfar"), ("min_x", "max_x"), ("min_y", "max_y")):
            lo, hi = values[low], values[high]
            if lo is None or hi is None:
                continue
            lo, hi = torch.broadcast_tensors(lo.double(), hi.double())
            ok = hi > lo
            if not bool(ok.all()):
                i = int((~ok).nonzero()[0, 0])
                raise ValueError(
                    f"{high}: expected values > {low}, got {high}={float(hi[i]):g} "
                    f"with {low}={float(lo[i]):g}"
                )

    def is_perspective(self) -> bool:
        return False

    def in_ndc(self) -> bool:
        return True

    def compute_projection_matrix(
        self, znear, zfar, max_x, min_x, max_y, min_y, scale_xyz
    ) -> torch.Tensor:
        """Column-vector projection matrices ``K`` ``(N, 4, 4)`` (PyTorch3D's method).

        Args:
            znear, zfar, max_x, min_x, max_y, min_y: floats, lists or tensors ``()`` / ``(N,)``.
            scale_xyz: ``(3,)`` or ``(N, 3)``.
        """
        names = ("znear", "zfar", "max_x", "min_x", "max_y", "min_y", "scale_xyz")
        given = (znear, zfar, max_x, min_x, max_y, min_y, scale_xyz)
        fields = [self._override(k, {k: v}) for k, v in zip(names, given, strict=True)]
        scale, shift = _fov_orthographic_axes(*fields)
        return _axis_affine(scale, shift).get_matrix().transpose(1, 2)

    def get_projection_transform(self, **kwargs: Any) -> Transform3d:
        """View -> NDC transform (row-vector matrices ``(N, 4, 4)``).

        Args:
            **kwargs: ``znear``, ``zfar``, ``max_x``, ``min_x``, ``max_y``, ``min_y``,
                ``scale_xyz`` or ``K`` override the camera's fields for this call.
        """
        K = self._override("K", kwargs)
        if K is not None:
            return _column_matrix_transform(K)
        names = ("znear", "zfar", "max_x", "min_x", "max_y", "min_y", "scale_xyz")
        scale, shift = _fov_orthographic_axes(*(self._override(k, kwargs) for k in names))
        return _axis_affine(scale, shift)

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
                ``z``, or with ``scaled_depth_input`` the NDC ``z``).
            world_coordinates: return world points (True) or view points (False).
            scaled_depth_input: whether the depth is already the NDC ``z``.
            **kwargs: field overrides; ``from_ndc`` is accepted and ignored (NDC cameras).

        Returns:
            Points ``(N, P, 3)`` (``(P, 3)`` for one camera and ``(P, 3)`` input).
        """
        kwargs.pop("from_ndc", None)
        _check_bool(world_coordinates, "world_coordinates")
        _check_bool(scaled_depth_input, "scaled_depth_input")
        self._check_xy_depth(xy_depth)
        projection = self.get_projection_transform(**kwargs)
        to_ndc = projection
        if world_coordinates:
            to_ndc = self.get_world_to_view_transform(**kwargs).compose(projection)
        if not scaled_depth_input:
            matrix = projection.get_matrix()  # (N, 4, 4)
            if xy_depth.ndim == 2 and len(matrix) > 1:
                xy_depth = xy_depth[None]  # (1, P, 3)
            shape = (-1,) + (1,) * (xy_depth.ndim - 1)
            scale_z = matrix[:, 2, 2].reshape(shape)  # (N, 1, 1): z_ndc = scale_z * z + shift_z
            shift_z = matrix[:, 3, 2].reshape(shape)
            sdepth = scale_z * xy_depth[..., 2:3] + shift_z  # (N, P, 1)
            xy = xy_depth[..., :2].expand(*sdepth.shape[:-1], 2)
            xy_depth = torch.cat((xy, sdepth), dim=-1)  # (N, P, 3)
        return to_ndc.inverse().transform_points(xy_depth)


# ---------------------------------------------------------------------------------------------
# Look-at helpers
# ---------------------------------------------------------------------------------------------


def _broadcast_inputs(
    scalars: dict[str, object], vectors: dict[str, object], device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Scalars -> ``(N,)``, 3-vectors -> ``(N, 3)``, in a common dtype on ``device``."""
    device = _make_device(device)
    dtype = _user_dtype([*scalars.values(), *vectors.values()])
    s = {k: as_batched_param(v, k, dtype=dtype, device=device) for k, v in scalars.items()}
    v = {k: _vector_field(x, k, dtype, device) for k, x in vectors.items()}
    sizes = {k: t.shape[0] for k, t in (*s.items(), *v.items())}
    n = broadcast_batch_sizes(sizes)
    return {k: _expand(t, n) for k, t in s.items()}, {k: _expand(t, n) for k, t in v.items()}


def _check_degrees(degrees: object) -> None:
    if not isinstance(degrees, bool):
        raise TypeError(f"degrees: expected a bool, got {describe(degrees)}")


def _spherical_to_position(dist, elev, azim, degrees: bool) -> torch.Tensor:  # (N, 3)
    if degrees:
        elev = math.pi / 180.0 * elev
        azim = math.pi / 180.0 * azim
    x = dist * torch.cos(elev) * torch.sin(azim)
    y = dist * torch.sin(elev)
    z = dist * torch.cos(elev) * torch.cos(azim)
    return torch.stack((x, y, z), dim=1)


def camera_position_from_spherical_angles(
    distance: _BatchFloat,
    elevation: _BatchFloat,
    azimuth: _BatchFloat,
    degrees: bool = True,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Points on spheres around the origin: ``(d cos(e) sin(a), d sin(e), d cos(e) cos(a))``.

    Args:
        distance: radii (a float, a list or a tensor ``()`` / ``(N,)``).
        elevation: angles above the XZ plane, like ``distance``.
        azimuth: angles about +Y from +Z, like ``distance``.
        degrees: whether the angles are in degrees.
        device: output device (tensors given are moved there).

    Returns:
        Positions ``(N, 3)``.
    """
    _check_degrees(degrees)
    s, _ = _broadcast_inputs(
        {"distance": distance, "elevation": elevation, "azimuth": azimuth}, {}, device
    )
    return _spherical_to_position(s["distance"], s["elevation"], s["azimuth"], degrees)


def _normalize(v: torch.Tensor) -> torch.Tensor:
    """``v / max(|v|, 1e-5)`` along the last dimension (PyTorch3D's look-at normalisation)."""
    return torch.nn.functional.normalize(v, dim=1, eps=1e-5)


def _look_at_rotation(position: torch.Tensor, at: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    z_axis = _normalize(at - position)  # (N, 3)
    side = torch.cross(up, z_axis, dim=1)  # (N, 3)
    length = side.norm(dim=1, keepdim=True)  # (N, 1)
    # PyTorch3D's x axis wherever |up x z| >= 1e-5. Below that (``up`` nearly parallel to the
    # viewing direction) PyTorch3D's result is not always a rotation; there the direction of
    # ``up x z`` is normalised exactly instead (what PyTorch3D's own fallback computes when it
    # triggers), and where it vanishes altogether a fixed world axis orthogonalised against z.
    tiny = torch.finfo(side.dtype).tiny
    exact = side / torch.where(length > tiny, length, torch.ones_like(length))
    helper = torch.zeros_like(z_axis)
    near_x = z_axis[:, :1].abs() > 0.9  # (N, 1)
    helper[:, 0] = 1.0
    helper = torch.where(near_x, helper.roll(2, dims=1), helper)  # (1, 0, 0) or (0, 0, 1)
    fixed = _normalize(helper - (helper * z_axis).sum(1, keepdim=True) * z_axis)
    x_axis = torch.where(length >= 1e-5, _normalize(side), torch.where(length > tiny, exact, fixed))
    y_axis = _normalize(torch.cross(z_axis, x_axis, dim=1))
    return torch.stack((x_axis, y_axis, z_axis), dim=2)  # columns are the camera axes


def look_at_rotation(
    camera_position, at=((0, 0, 0),), up=((0, 1, 0),), device: torch.device | str = "cpu"
) -> torch.Tensor:
    """World -> view rotations of cameras at ``camera_position`` looking at ``at``.

    Args:
        camera_position: ``(N, 3)`` (tensor or nested sequence; ``(3,)`` means one camera).
        at: points looked at, ``(N, 3)`` or ``(1, 3)``.
        up: up directions, ``(N, 3)`` or ``(1, 3)``.
        device: output device (tensors given are moved there).

    Returns:
        Rotations ``(N, 3, 3)`` whose columns are the camera's x, y, z axes in world space.
    """
    _, v = _broadcast_inputs({}, {"camera_position": camera_position, "at": at, "up": up}, device)
    return _look_at_rotation(v["camera_position"], v["at"], v["up"])


def look_at_view_transform(
    dist: _BatchFloat = 1.0,
    elev: _BatchFloat = 0.0,
    azim: _BatchFloat = 0.0,
    degrees: bool = True,
    eye=None,
    at=((0, 0, 0),),
    up=((0, 1, 0),),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``R, T`` of cameras looking at ``at``, placed by spherical angles around it or at ``eye``.

    Args:
        dist: distances from ``at`` (a float, a list or a tensor ``()`` / ``(N,)``).
        elev: elevations, like ``dist``.
        azim: azimuths, like ``dist``.
        degrees: whether the angles are in degrees.
        eye: camera positions ``(N, 3)``; when given, ``dist``, ``elev`` and ``azim`` are ignored.
        at: points looked at, ``(N, 3)`` or ``(1, 3)``.
        up: up directions, ``(N, 3)`` or ``(1, 3)``.
        device: output device (tensors given are moved there).

    Returns:
        ``R`` ``(N, 3, 3)`` and ``T`` ``(N, 3)`` for :class:`FoVPerspectiveCameras`.
    """
    _check_degrees(degrees)
    if eye is not None:
        _, v = _broadcast_inputs({}, {"eye": eye, "at": at, "up": up}, device)
        position = v["eye"]
    else:
        s, v = _broadcast_inputs(
            {"dist": dist, "elev": elev, "azim": azim}, {"at": at, "up": up}, device
        )
        position = _spherical_to_position(s["dist"], s["elev"], s["azim"], degrees) + v["at"]
    R = _look_at_rotation(position, v["at"], v["up"])
    T = -torch.matmul(R.transpose(1, 2), position[:, :, None])[:, :, 0]
    return R, T

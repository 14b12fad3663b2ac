"""Shared pieces of the cameras: per-camera field conversion and checks, small transform builders.

Private to :mod:`voxrender.cameras` (the module name says so); the names here are its modules'
shared vocabulary, public among them and not re-exported.

Every per-camera field is stored as a tensor with the batch size ``N`` first (see
:mod:`voxrender.cameras` for the conventions); the functions here check, convert and broadcast
what users give, and build the ``(N, 4, 4)`` row-vector matrices the cameras compose.

Dimensions:
    ``N``: cameras in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import ArgumentTypeError, as_batched_param, as_flag, check_shape, describe
from .._transform_helpers import affine_matrix
from ..transforms import Transform3d, _numerical_inverse

__all__ = [
    "DEFAULT_R",
    "DEFAULT_T",
    "BatchFloat",
    "axis_affine",
    "check_bool",
    "check_image_size_values",
    "check_ordered",
    "column_matrix_transform",
    "expand",
    "first_bad",
    "focal_length_field",
    "geometry_tensor",
    "host_values",
    "matrix_field",
    "real_tensor",
    "required",
    "scalar_field",
    "sparse_matrix",
    "user_dtype",
    "vector_field",
    "xy_field",
]

# Defaults (identity extrinsics), as in PyTorch3D. Recognised by identity: they never decide
# the dtype or device of a camera.
DEFAULT_R = torch.eye(3)[None]  # (1, 3, 3)
DEFAULT_T = torch.zeros(1, 3)  # (1, 3)

BatchFloat = float | Sequence[float] | torch.Tensor


# ---------------------------------------------------------------------------------------------
# Field conversion shared by all cameras
# ---------------------------------------------------------------------------------------------


def user_dtype(values: Sequence[object], defaults: Sequence[object] = ()) -> torch.dtype:
    """Promoted dtype of the floating tensors among ``values`` (defaults excluded)."""
    dtype = None
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if any(value is d for d in defaults):
                continue
            dtype = value.dtype if dtype is None else torch.promote_types(dtype, value.dtype)
    return torch.get_default_dtype() if dtype is None else dtype


def geometry_tensor(
    value: object, name: str, spec: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A real tensor or a nested sequence of numbers -> a tensor in ``dtype`` (graph kept).

    Integer tensors and nested lists are cast (as PyTorch3D does); booleans, complex numbers and
    anything else raise :class:`~voxrender._checks.ArgumentTypeError` (a ``TypeError`` and ``ValueError``).
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise ArgumentTypeError(
                f"{name}: expected a real tensor of shape {spec}, got dtype {value.dtype}"
            )
        return value.to(device=device, dtype=dtype)
    if isinstance(value, (list, tuple)):
        try:
            return torch.tensor(value, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise ArgumentTypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")


def matrix_field(
    value: object, name: str, trailing: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A tensor (or nested sequence) ``(N, *trailing)`` -> checked, cast and moved (graph kept)."""
    spec = "(N, " + ", ".join(map(str, trailing)) + ")"
    tensor = geometry_tensor(value, name, spec, dtype, device)
    check_shape(tensor, name, ndim=len(trailing) + 1, last=trailing, spec=spec)
    return tensor


def scalar_field(
    value: object, name: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A per-camera number: a number, a list, or a tensor ``()``, ``(N,)`` or ``(N, 1)`` -> ``(N,)``."""
    if isinstance(value, torch.Tensor) and value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]  # (N, 1) -> (N,)
    return as_batched_param(value, name, dtype=dtype, device=device)


def vector_field(
    value: object, name: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A 3-vector or a batch of them (tensor, integer tensor or nested sequence) -> ``(N, 3)``."""
    tensor = geometry_tensor(value, name, "(3,) or (N, 3)", dtype, device)
    check_shape(tensor, name, ndim=(1, 2), last=(3,), spec="(3,) or (N, 3)")
    return tensor.reshape(-1, 3)


def required(value: torch.Tensor | None, name: str, owner: str) -> torch.Tensor:
    """``value``, or a clear ``ValueError`` where a field set to None is needed."""
    if value is None:
        raise ValueError(
            f"{name}: expected a tensor, got None ({owner} was made with {name}=None; give "
            f"{name} to the camera or to this call)"
        )
    return value


def expand(tensor: torch.Tensor, n: int) -> torch.Tensor:
    return tensor.expand(n, *tensor.shape[1:])


def host_values(raw: object, converted: torch.Tensor) -> torch.Tensor | None:
    """The values of a scalar field where reading them costs no device sync, else None."""
    if torch.compiler.is_compiling():
        return None
    if isinstance(raw, torch.Tensor):
        return raw.detach().reshape(-1) if raw.device.type == "cpu" else None
    if converted.device.type == "cpu":
        return converted.detach()
    return torch.tensor(raw, dtype=torch.float64).reshape(-1)


def first_bad(values: torch.Tensor, ok: torch.Tensor) -> float:
    return float(values[~ok][0])


def check_ordered(values: dict[str, torch.Tensor | None], low: str, high: str) -> None:
    """``values[high] > values[low]`` elementwise (after broadcasting), where both are known."""
    lo, hi = values[low], values[high]
    if lo is None or hi is None:
        return
    lo, hi = torch.broadcast_tensors(lo.double(), hi.double())
    ok = hi > lo
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        raise ValueError(
            f"{high}: expected values > {low}, got {high}={float(hi[i]):g} "
            f"with {low}={float(lo[i]):g}"
        )


# ---------------------------------------------------------------------------------------------
# Small builders and field forms: per-axis affine maps, sparse 4x4 matrices, pairs
# ---------------------------------------------------------------------------------------------


def check_bool(value: object, name: str) -> bool:
    """A flag: a bool or 0 / 1 (as PyTorch3D code passes them) -> bool."""
    return as_flag(value, name)


def sparse_matrix(entries: dict[tuple[int, int], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``(N, 4, 4)`` matrices with the given ``(N,)`` entries and zeros elsewhere."""
    zero = torch.zeros_like(like)
    flat = [entries.get((i, j), zero) for i in range(4) for j in range(4)]
    return torch.stack(flat, dim=-1).reshape(-1, 4, 4)


def axis_affine(scale: torch.Tensor, shift: torch.Tensor) -> Transform3d:
    """``p -> p * scale + shift`` per axis (``scale``, ``shift`` ``(N, 3)``), inverted in closed form."""
    matrix = affine_matrix(torch.diag_embed(scale), shift)  # (N, 4, 4)

    def inverse() -> torch.Tensor:
        reciprocal = 1.0 / scale  # (N, 3)
        return affine_matrix(torch.diag_embed(reciprocal), -shift * reciprocal)

    return Transform3d._with_inverse(matrix, inverse)


def column_matrix_transform(K: torch.Tensor) -> Transform3d:
    """A user's column-vector projection matrices ``K`` ``(N, 4, 4)`` as a transform (``K^T``)."""
    matrix = K.transpose(1, 2)
    return Transform3d._with_inverse(matrix, lambda: _numerical_inverse(matrix))


def real_tensor(
    value: object, name: str, dtype: torch.dtype, device: torch.device, forms: str
) -> torch.Tensor:
    """A number, a nested sequence of numbers or a real tensor -> a tensor (shape as given)."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise ArgumentTypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
        return value.to(device=device, dtype=dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        raise ArgumentTypeError(f"{name}: expected {forms}, got {describe(value)}")
    try:
        return torch.tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name}: expected {forms}, got {describe(value)}") from None


def focal_length_field(
    value: object, name: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``f``, ``(N,)``, ``(N, 1)`` or ``(N, 2)`` -> ``(N, 2)`` as ``(fx, fy)`` (graph kept)."""
    spec = "(), (N,), (N, 1) or (N, 2)"
    tensor = real_tensor(value, name, dtype, device, f"a number or a tensor of shape {spec}")
    if tensor.ndim < 2:
        tensor = tensor.reshape(-1, 1)  # (N, 1)
    if tensor.ndim != 2 or tensor.shape[1] not in (1, 2) or tensor.shape[0] == 0:
        raise ValueError(f"{name}: expected shape {spec}, got shape {tuple(tensor.shape)}")
    return tensor.expand(-1, 2)


def xy_field(value: object, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A pair ``(2,)`` or a batch of pairs ``(N, 2)`` / ``(N, 2, 1)`` (tensor or sequence) -> ``(N, 2)``."""
    tensor = real_tensor(value, name, dtype, device, "a pair or a tensor of shape (N, 2)")
    if tensor.ndim == 3 and tensor.shape[2] == 1:
        tensor = tensor[..., 0]  # (N, 2, 1) -> (N, 2), as PyTorch3D accepts
    if tensor.ndim not in (1, 2) or tensor.shape[-1] != 2 or tensor.shape[0] == 0:
        raise ValueError(
            f"{name}: expected shape (2,), (N, 2) or (N, 2, 1), got shape {tuple(tensor.shape)}"
        )
    return tensor.reshape(-1, 2)


def check_image_size_values(raw: object, converted: torch.Tensor) -> None:
    values = host_values(raw, converted)
    if values is not None and not bool((values >= 1).all()):
        raise ValueError(
            f"image_size: expected (height, width) values >= 1, got {first_bad(values, values >= 1):g}"
        )

"""Helpers shared by the transforms, the cameras, ``volume_locator.py`` and ``rotate_axis_angle.py``.

A package-private module with public names, so that no module imports another's underscored
name (as :mod:`voxrender._checks`). Messages follow ``_checks``' form.
"""

from __future__ import annotations

import torch

from ._checks import check_shape, describe

__all__ = ["affine_matrix", "check_float_dtype", "coordinate", "make_device"]


def make_device(device: torch.device | str | None, name: str = "device") -> torch.device:
    """A ``torch.device``, with the current CUDA index filled in (as PyTorch3D does)."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name}: expected a str or torch.device, got {describe(device)}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """``dtype`` if it is a floating-point ``torch.dtype``; else ``TypeError``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point torch.dtype, got {dtype!r}")
    return dtype


def affine_matrix(linear: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Row-vector affine matrices ``[[linear, 0], [translation, 1]]`` ``(N, 4, 4)``.

    Args:
        linear: ``(N, 3, 3)`` (acts as ``p @ linear``).
        translation: ``(N, 3)``.
    """
    n = max(linear.shape[0], translation.shape[0])
    linear = linear.expand(n, 3, 3)
    translation = translation.expand(n, 3)
    top = torch.cat((linear, linear.new_zeros(n, 3, 1)), dim=2)  # (N, 3, 4)
    bottom = torch.cat((translation, translation.new_ones(n, 1)), dim=1)  # (N, 4)
    return torch.cat((top, bottom[:, None]), dim=1)


def coordinate(value: object, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A float or a tensor of shape () or (N,) -> a (N,) tensor."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
        check_shape(value, name, ndim=(0, 1), spec="() or (N,)")
        return value.reshape(-1).to(device=device, dtype=dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number or a tensor, got {describe(value)}")
    return torch.tensor([float(value)], dtype=dtype, device=device)

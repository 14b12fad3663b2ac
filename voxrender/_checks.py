"""Input validation shared by every public entry point.

Every helper raises ``ValueError`` or ``TypeError`` with a message of the form
``"<argument>: expected <what>, got <what came>"`` so a user can fix the call without reading
the source. None of them reads tensor *values* (which would force a host-device sync), except
:func:`check_density_range`, which reads them at once only on the CPU (or when asked to be
strict), and :func:`scalar_value`, which reads a one-element tensor given as an argument.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import torch

__all__ = [
    "ArgumentTypeError",
    "IndexOutOfRangeError",
    "IndexTypeError",
    "as_batched_param",
    "as_flag",
    "broadcast_batch_sizes",
    "check_choice",
    "check_density_range",
    "check_floating",
    "check_positive_number",
    "check_same_device",
    "check_shape",
    "check_shape_worded",
    "check_tensor",
    "describe",
    "scalar_value",
]


def describe(value: object) -> str:
    """Short human description of ``value`` for error messages."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__} of length {len(value)}"
    return f"{type(value).__name__} {value!r}"


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    return value


def check_floating(value: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``value`` is a floating-point tensor."""
    check_tensor(value, name)
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    return value


def check_shape(
    value: torch.Tensor,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    last: Sequence[int | None] | None = None,
    spec: str | None = None,
) -> torch.Tensor:
    """Check the rank and trailing sizes of a tensor.

    Args:
        value: the tensor.
        name: argument name used in the message.
        ndim: allowed rank(s).
        min_ndim: smallest allowed rank.
        last: required trailing sizes, ``None`` entries match anything.
        spec: how the expected shape reads in the message, e.g. ``"(N, 3, 3)"``.
    """
    check_tensor(value, name)
    want = spec or _spec(ndim, min_ndim, last)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            raise ValueError(f"{name}: expected shape {want}, got shape {tuple(value.shape)}")
    if min_ndim is not None and value.ndim < min_ndim:
        raise ValueError(f"{name}: expected shape {want}, got shape {tuple(value.shape)}")
    if last is not None:
        if value.ndim < len(last):
            raise ValueError(f"{name}: expected shape {want}, got shape {tuple(value.shape)}")
        tail = value.shape[value.ndim - len(last) :]
        for got, exp in zip(tail, last, strict=True):
            if exp is not None and got != exp:
                raise ValueError(f"{name}: expected shape {want}, got shape {tuple(value.shape)}")
    return value


def _spec(ndim, min_ndim, last) -> str:
    tail = ", ".join("*" if s is None else str(s) for s in (last or ()))
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        return f"with {' or '.join(map(str, ranks))} dims" + (
            f" ending in ({tail})" if tail else ""
        )
    if min_ndim is not None:
        return f"with at least {min_ndim} dims" + (f" ending in ({tail})" if tail else "")
    return f"(..., {tail})"


def check_same_device(name: str, value: torch.Tensor, device: torch.device | str) -> None:
    """Raise ``ValueError`` unless ``value`` lives on ``device``."""
    device = torch.device(device)
    if value.device.type != device.type or (
        device.index is not None and value.device.index not in (None, device.index)
    ):
        raise ValueError(f"{name}: expected a tensor on device {device}, got one on {value.device}")


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_positive_number(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Check a Python scalar is a positive (or non-negative) real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {describe(value)}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")
    return value


def broadcast_batch_sizes(sizes: dict[str, int]) -> int:
    """Common batch size of several arguments, each of size 1 or N.

    Args:
        sizes: argument name -> its batch size.

    Returns:
        The broadcast batch size N.
    """
    n = max(sizes.values()) if sizes else 1
    bad = {k: v for k, v in sizes.items() if v not in (1, n)}
    if bad:
        listing = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(
            f"batch sizes do not broadcast: expected each to be 1 or {n}, got {listing}"
        )
    return n


def as_batched_param(
    value: object,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turn a float, a sequence of floats or a tensor of shape () / (N,) into a (N,) tensor.

    Booleans and non-numeric values are refused; integer tensors are converted to ``dtype``.
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name}: expected a real tensor, got dtype {value.dtype}")
        if value.ndim > 1:
            raise ValueError(
                f"{name}: expected a scalar or a tensor of shape (N,), got {describe(value)}"
            )
        out = value.reshape(-1)
        if not out.is_floating_point():
            out = out.to(dtype or torch.get_default_dtype())
        if dtype is not None and out.dtype != dtype:
            out = out.to(dtype)
        return out.to(device) if device is not None else out
    if isinstance(value, bool):
        raise TypeError(
            f"{name}: expected a float, a list of floats or a tensor, got {describe(value)}"
        )
    if isinstance(value, (int, float)):
        items = [float(value)]
    elif isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        if len(value) == 0:
            raise ValueError(
                f"{name}: expected a non-empty sequence, got an empty {type(value).__name__}"
            )
        items = [float(v) for v in value]
    else:
        raise TypeError(
            f"{name}: expected a float, a list of floats or a tensor, got {describe(value)}"
        )
    return torch.tensor(items, dtype=dtype or torch.get_default_dtype(), device=device)


class IndexOutOfRangeError(IndexError, ValueError):
    """An index outside a batch: an ``IndexError`` (so iteration stops) and a ``ValueError``."""


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a ``TypeError`` (Python's rule) and a ``ValueError``.

    PyTorch3D raises ``ValueError`` for most arguments of the wrong type (``Volumes(None)``,
    ``rays_densities=None``, ...); this class keeps both promises.
    """


class IndexTypeError(IndexError, TypeError):
    """An index of the wrong type.

    An ``IndexError`` (what PyTorch3D's batches raise) and a
    ``TypeError`` (Python's rule).
    """


def scalar_value(value: object, name: str, *, finite: bool = True) -> float:
    """A real Python/NumPy number or a 0-d real tensor, as a finite Python float.

    A tensor is read on the host (free on the CPU; one device sync for an accelerator tensor,
    so call this where arguments are taken, never per sample).
    """
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise ValueError(
                f"{name}: expected a number or a tensor of shape (), got {describe(value)}"
            )
        if value.dtype == torch.bool or value.is_complex():
            raise ArgumentTypeError(f"{name}: expected a real number, got {describe(value)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name}: expected a real number, got {describe(value)}")
    if finite and not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


_DENSITY_WARNING = "One or more elements of {name} are outside of valid range (0.0, 1.0)"


def check_density_range(value: torch.Tensor, name: str, *, strict: bool = False) -> None:
    """PyTorch3D's density check.

    Warn (``strict``: raise ``ValueError``) if an entry of ``value`` lies outside ``[0, 1]`` or
    is NaN.

    The warning keeps PyTorch3D's wording ("One or more elements of rays_densities are outside
    of valid range (0.0, 1.0)"), so warning filters written for PyTorch3D still match.

    Cost: on the CPU one ``aminmax`` pass and a free read. On CUDA the default
    (``strict=False``) never waits for the device and never asserts on it: the check is queued
    (a reduction and a non-blocking copy of one flag to the host) and its result is read, and
    warned about, by a later call once the device has finished it. ``strict=True`` reads the
    result at once, which costs one host-device sync. Under ``torch.compile`` nothing is
    checked (no Python side effects inside a graph).
    """
    if value.numel() == 0 or torch.compiler.is_compiling() or value.device.type == "meta":
        return  # nothing to read (meta tensors carry no values)
    if value.device.type != "cuda" or strict:
        with torch.no_grad():
            lo, hi = torch.aminmax(value.detach())
            bad = not bool((lo >= 0) & (hi <= 1))  # NaN fails both comparisons
        if bad:
            message = (
                _DENSITY_WARNING.format(name=name)
                + f": expected values in [0, 1], got values in [{float(lo):g}, {float(hi):g}]"
            )
            if strict:
                raise ValueError(message)
            warnings.warn(message, stacklevel=3)
        return
    _poll_pending_density_checks()
    with torch.no_grad():
        inside = (value.detach() >= 0) & (value.detach() <= 1)
        flag = (~inside).any().reshape(1)  # on the device, no sync
    host = torch.empty(1, dtype=torch.bool, pin_memory=torch.cuda.is_available())
    host.copy_(flag, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    _PENDING_DENSITY_CHECKS.append((event, host, name))


_PENDING_DENSITY_CHECKS: list = []


def _poll_pending_density_checks() -> None:
    """Warn for every queued accelerator density check the device has finished (no waiting)."""
    while _PENDING_DENSITY_CHECKS:
        event, host, name = _PENDING_DENSITY_CHECKS[0]
        if not event.query():
            if len(_PENDING_DENSITY_CHECKS) < 64:
                return
            event.synchronize()  # a bounded backlog: only if the device lags 64 calls behind
        _PENDING_DENSITY_CHECKS.pop(0)
        if bool(host[0]):
            warnings.warn(
                _DENSITY_WARNING.format(name=name)
                + " (found by an asynchronous check of an earlier call on the device)",
                stacklevel=4,
            )


def as_flag(value: object, name: str) -> bool:
    """A flag given as a bool or as the integers 0 / 1 (as PyTorch3D code often passes) -> bool.

    Raises:
        ArgumentTypeError: anything else (a number other than 0 / 1, a string, a tensor, ...).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise ArgumentTypeError(f"{name}: expected a bool (or 0 / 1), got {describe(value)}")


def check_shape_worded(value: torch.Tensor, name: str, pytorch3d_words: str, **kwargs) -> None:
    """:func:`check_shape` with PyTorch3D's wording.

    Its ``ValueError`` is led by PyTorch3D's own wording for the same error (code may match on
    it), then voxrender's detail.
    """
    try:
        check_shape(value, name, **kwargs)
    except ValueError as e:
        raise ValueError(f"{pytorch3d_words} ({e})") from None

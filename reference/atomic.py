"""Atomic file writes: every output lands complete or not at all.

Each writer fills a temporary file in the destination's own folder (so the final rename never
crosses a file system), flushes and fsyncs it, then moves it over the destination with
:func:`os.replace`. A crash or an exception in between leaves the previous file, if any,
untouched and removes the temporary one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["atomic_write", "save_torch_atomic", "write_bytes_atomic", "write_json_atomic"]


def atomic_write(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically: ``fill(f)`` writes into a temporary binary file first.

    Args:
        path: destination; its folder must exist.
        fill: callback writing the whole content into the open binary file it receives.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (which JSON cannot hold) by ``None``, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strictly valid JSON (NaN and inf become ``null``)."""
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` into ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(path, buffer.getvalue())

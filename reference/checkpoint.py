"""Checkpoints: everything needed to continue a fit exactly where it stopped.

A checkpoint (``checkpoint.pt`` in the run folder, written atomically) is a dict:

- ``version``: format version (1).
- ``iteration``: iterations completed; the next one to run.
- ``params``: ``log_densities (1, V, V, V)`` and ``log_colors (3, V, V, V)``.
- ``optimizer``: Adam's ``state_dict()`` (of the optimizer current at ``iteration``).
- ``color_err``, ``sil_err``: loss history, one float per completed iteration.
- ``wall_s``: seconds spent in the training loop so far.
- ``rng_state``: ``torch.get_rng_state()`` of the global CPU generator.
- ``config``: :meth:`~reference.config.FitConfig.to_dict` of the run.

Restoring the parameters, the optimizer and the generator, a resumed CPU run produces the very
same volume, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .atomic import save_torch_atomic
from .errors import FitError

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
VERSION = 1
_KEYS = (
    "version",
    "iteration",
    "params",
    "optimizer",
    "color_err",
    "sil_err",
    "wall_s",
    "rng_state",
    "config",
)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a checkpoint dict (keys in the module docstring, ``version`` added) atomically."""
    save_torch_atomic(path, {"version": VERSION, **state})


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check a checkpoint; tensors land on the CPU.

    Raises:
        FitError: missing, unreadable, or not a checkpoint of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FitError(f"--resume: no {path.name} in {path.parent} (nothing to resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: report, don't dump a traceback
        raise FitError(f"--resume: cannot read {path} ({type(e).__name__}: {e})") from None
    missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise FitError(
            f"--resume: {path} is not a voxrender-fit checkpoint (missing {', '.join(missing)})"
        )
    if state["version"] != VERSION:
        raise FitError(
            f"--resume: {path} has format version {state['version']}, expected {VERSION}"
        )
    n = state["iteration"]
    if len(state["color_err"]) != n or len(state["sil_err"]) != n:
        raise FitError(
            f"--resume: {path} is inconsistent (loss history length differs from iteration {n})"
        )
    return state

"""The tutorial's volume-fitting pipeline as a tool: ``python -m reference.fit`` / ``voxrender-fit``.

Programmatic use::

    from reference import FitConfig, resolve_config, run
    metrics = run(FitConfig(volume_size=32, image_size=32, iters=50, out="runs/a"))
    metrics = run(resolve_config({"preset": "tiny", "out": "runs/b"}))  # preset + overrides

``run`` and ``main`` are imported lazily, so ``python -m reference.fit`` does not import the
module twice.
"""

from __future__ import annotations

from .config import PRESETS, FitConfig, resolve_config
from .errors import FitError

__all__ = [
    "PRESETS",
    "FitConfig",
    "FitError",
    "main",
    "resolve_config",
    "run",
]


def __getattr__(name: str):
    if name in ("main", "run"):
        from . import fit

        return getattr(fit, name)
    raise AttributeError(f"module 'reference' has no attribute {name!r}")

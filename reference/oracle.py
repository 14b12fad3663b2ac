"""PyTorch3D as a live oracle: one place that finds it, imports it and hides it again.

Tests and benchmarks compare voxrender with PyTorch3D itself. Where a real PyTorch3D is
installed it is used; otherwise the runnable PyTorch3D 0.7.9 copy that sits beside the project
(``../shared/pytorch3d``, or the folder named by ``VOXRENDER_PYTORCH3D_PATH``) is imported. The
copy's folder is put on ``sys.path`` only for the import and taken off again, so code that asks
whether PyTorch3D is *installed* (on ``sys.path``) still sees only a real install;
the imported modules stay in ``sys.modules``. Tests that need PyTorch3D absent (the
``voxrender.compat`` alias) wrap themselves in :func:`pytorch3d_hidden`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

__all__ = ["find_pytorch3d", "import_pytorch3d", "pytorch3d_hidden", "shared_pytorch3d_path"]

_MODULES = (
    "pytorch3d",
    "pytorch3d.renderer",
    "pytorch3d.renderer.implicit.renderer",
    "pytorch3d.structures",
    "pytorch3d.transforms",
)


def shared_pytorch3d_path() -> Path:
    """The folder holding the runnable copy's ``pytorch3d`` package (it may not exist)."""
    env = os.environ.get("VOXRENDER_PYTORCH3D_PATH")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "pytorch3d"


def _is_alias(module: ModuleType) -> bool:
    return bool(getattr(module, "__voxrender_alias__", False))


def find_pytorch3d() -> tuple[str | None, str]:
    """Where PyTorch3D would come from, without importing it.

    Returns:
        ``("installed", "")``, ``("shared", "")`` or ``(None, reason)``.
    """
    loaded = sys.modules.get("pytorch3d")
    if loaded is not None and not _is_alias(loaded):
        return ("installed" if _installed() else "shared"), ""
    if _installed():
        return "installed", ""
    path = shared_pytorch3d_path()
    if (path / "pytorch3d" / "__init__.py").is_file():
        return "shared", ""
    return None, (
        "pytorch3d is not importable: not installed, and no runnable copy at "
        f"{path} (set VOXRENDER_PYTORCH3D_PATH to a folder holding the pytorch3d package)"
    )


def _installed() -> bool:
    """A PyTorch3D on ``sys.path`` (what is already in ``sys.modules`` does not count)."""
    return importlib.machinery.PathFinder.find_spec("pytorch3d", sys.path) is not None


def import_pytorch3d() -> tuple[ModuleType | None, str]:
    """Import PyTorch3D (installed, else the shared copy); ``(module, "")`` or ``(None, why)``.

    The renderer, structures and transforms subpackages are imported too. Never raises.
    """
    where, reason = find_pytorch3d()
    if where is None:
        return None, reason
    loaded = sys.modules.get("pytorch3d")
    if loaded is not None and _is_alias(loaded):
        return None, "pytorch3d is not importable: only voxrender.compat's alias is installed"
    entry = str(shared_pytorch3d_path())
    added = where == "shared" and entry not in sys.path
    if added:
        sys.path.append(entry)  # appended: an installed PyTorch3D always wins
    try:
        for name in _MODULES:
            importlib.import_module(name)
    except Exception as e:  # installed but broken (e.g. a missing compiled extension)
        return None, f"pytorch3d is not importable: {type(e).__name__}: {e}".splitlines()[0]
    finally:
        if added:
            sys.path.remove(entry)
    return sys.modules["pytorch3d"], ""


@contextmanager
def pytorch3d_hidden() -> Iterator[None]:
    """Within the block PyTorch3D's modules are out of ``sys.modules``; restored afterwards.

    For code that needs PyTorch3D absent (``voxrender.compat`` installs its alias under the same
    name). A real installed PyTorch3D stays findable on ``sys.path``; only what was imported is
    hidden.
    """
    hidden = {
        k: sys.modules.pop(k)
        for k in list(sys.modules)
        if (k == "pytorch3d" or k.startswith("pytorch3d.")) and not _is_alias(sys.modules[k])
    }
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == "pytorch3d" or k.startswith("pytorch3d.")]:
            if k not in hidden:
                del sys.modules[k]
        sys.modules.update(hidden)

"""Run unmodified PyTorch3D scripts on voxrender: ``pytorch3d.*`` module paths as aliases.

``python -m voxrender.compat script.py [args]`` runs ``script.py`` as ``__main__`` (``sys.argv``
is ``["script.py", *args]`` and the script's folder leads ``sys.path``) with :func:`install`
in effect, so its ``from pytorch3d.renderer import VolumeRenderer`` gets
``voxrender.VolumeRenderer``. :func:`install` and :func:`uninstall` do the same from Python.

How: a ``sys.meta_path`` finder serves the module paths in :data:`PROVIDED` as synthetic
modules whose attributes are voxrender's public objects (taken from ``voxrender`` itself, so
``pytorch3d.renderer.FoVPerspectiveCameras is voxrender.FoVPerspectiveCameras``). Nothing is
re-implemented here. A name voxrender does not provide never resolves to a wrong object:

- ``from pytorch3d.renderer import MeshRenderer`` raises ``ImportError`` and
  ``pytorch3d.renderer.MeshRenderer`` raises ``AttributeError``, both saying
  ``"voxrender.compat: pytorch3d.renderer.MeshRenderer is not provided by voxrender (...)"``;
- ``import pytorch3d.io`` (a module path not in :data:`PROVIDED`) raises ``ImportError``
  with the same kind of message.

The alias never shadows a real PyTorch3D: :func:`install` refuses when
``importlib.util.find_spec("pytorch3d")`` finds one, unless ``force=True`` (then the real
``pytorch3d`` modules already imported are set aside and put back by :func:`uninstall`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types
from collections.abc import Sequence

import voxrender

__all__ = [
    "PROVIDED",
    "SOURCES",
    "PyTorch3DShadowError",
    "install",
    "installed",
    "main",
    "uninstall",
]

_DEPRECATED_CAMERAS = (
    "OpenGLOrthographicCameras",
    "OpenGLPerspectiveCameras",
    "SfMOrthographicCameras",
    "SfMPerspectiveCameras",
)
_CAMERAS = (
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "OrthographicCameras",
    "PerspectiveCameras",
    "camera_position_from_spherical_angles",
    "get_world_to_view_transform",
    "look_at_rotation",
    "look_at_view_transform",
    *_DEPRECATED_CAMERAS,
)
_CAMERA_UTILS = ("join_cameras_as_batch", "rotate_on_spot")
_RAYMARCHERS = ("AbsorptionOnlyRaymarcher", "EmissionAbsorptionRaymarcher")
_RAYSAMPLERS = (
    "GridRaysampler",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCGridRaysampler",
    "NDCMultinomialRaysampler",
)
_RENDERERS = ("ImplicitRenderer", "VolumeRenderer", "VolumeSampler")
_RAY_BUNDLES = (
    "HeterogeneousRayBundle",
    "RayBundle",
    "ray_bundle_to_ray_points",
    "ray_bundle_variables_to_ray_points",
)
_IMPLICIT = ("HarmonicEmbedding", *_RAYMARCHERS, *_RAYSAMPLERS, *_RENDERERS, *_RAY_BUNDLES)
_TRANSFORM3D = ("Rotate", "RotateAxisAngle", "Scale", "Transform3d", "Translate")
# every public name of pytorch3d.transforms.rotation_conversions (ours has exactly those)
_ROTATION_CONVERSIONS = tuple(voxrender.rotation_conversions.__all__)
_SO3 = (
    "so3_exp_map",
    "so3_exponential_map",
    "so3_log_map",
    "so3_relative_angle",
    "so3_rotation_angle",
)
_SE3 = ("se3_exp_map", "se3_log_map")

#: Names served from a voxrender submodule rather than from ``voxrender`` itself (PyTorch3D's
#: module-private helpers that scripts import).
SOURCES: dict[str, str] = {"_validate_ray_bundle_variables": "voxrender.implicit_utils"}

#: PyTorch3D module path -> the names it offers under voxrender, each the object of the same
#: name in ``voxrender`` (or in the module :data:`SOURCES` names). Names PyTorch3D 0.7.9 has at
#: these paths but voxrender lacks (e.g. ``MeshRenderer``) raise, as does any other path.
PROVIDED: dict[str, tuple[str, ...]] = {
    "pytorch3d": (),
    "pytorch3d.renderer": tuple(sorted(_CAMERAS + _CAMERA_UTILS + _IMPLICIT)),
    "pytorch3d.renderer.camera_utils": ("camera_to_eye_at_up", *_CAMERA_UTILS),
    "pytorch3d.renderer.cameras": tuple(
        sorted(
            (*_CAMERAS, "CamerasBase", "get_ndc_to_screen_transform", "get_screen_to_ndc_transform")
        )
    ),
    "pytorch3d.renderer.implicit": tuple(sorted(_IMPLICIT)),
    "pytorch3d.renderer.implicit.harmonic_embedding": ("HarmonicEmbedding",),
    "pytorch3d.renderer.implicit.raymarching": _RAYMARCHERS,
    "pytorch3d.renderer.implicit.raysampling": _RAYSAMPLERS,
    "pytorch3d.renderer.implicit.renderer": _RENDERERS,
    "pytorch3d.renderer.implicit.utils": (*_RAY_BUNDLES, "_validate_ray_bundle_variables"),
    "pytorch3d.structures": ("Volumes",),
    "pytorch3d.structures.volumes": ("VolumeLocator", "Volumes"),
    "pytorch3d.transforms": tuple(
        sorted((*_TRANSFORM3D, *_ROTATION_CONVERSIONS, *_SO3, *_SE3, "acos_linear_extrapolation"))
    ),
    "pytorch3d.transforms.math": ("acos_linear_extrapolation",),
    "pytorch3d.transforms.rotation_conversions": _ROTATION_CONVERSIONS,
    "pytorch3d.transforms.se3": _SE3,
    "pytorch3d.transforms.so3": ("hat", "hat_inv", *_SO3),
    "pytorch3d.transforms.transform3d": _TRANSFORM3D,
}

_ROOT = "pytorch3d"
_SCOPE = (
    "voxrender covers the volume renderer: cameras and camera helpers, Transform3d, rotation "
    "conversions, so3 and se3 maps, Volumes and VolumeLocator, raysamplers, raymarchers, "
    "HarmonicEmbedding, VolumeSampler, VolumeRenderer and ImplicitRenderer; "
    "see voxrender.compat.PROVIDED for every name"
)
# The version string scripts see: PyTorch3D's conventions, marked as voxrender's alias.
_ALIAS_VERSION = f"0.7.9+voxrender.{voxrender.__version__}"


class PyTorch3DShadowError(RuntimeError):
    """:func:`install` was asked to hide an importable, real PyTorch3D."""


def _not_provided(path: str) -> str:
    return f"voxrender.compat: {path} is not provided by voxrender ({_SCOPE})"


def _is_ours(module: object) -> bool:
    return getattr(module, "__voxrender_alias__", False) is True


def _source(name: str) -> object | None:
    """Voxrender's object for ``name`` (see :data:`SOURCES`), or None if it has none."""
    module = importlib.import_module(SOURCES[name]) if name in SOURCES else voxrender
    return getattr(module, name, None)


class _AliasModule(types.ModuleType):
    """A ``pytorch3d.*`` stand-in whose missing attributes fail loudly, naming the path."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        child = f"{self.__name__}.{name}"
        if child in PROVIDED:  # a submodule not imported yet (PyTorch3D's packages import theirs)
            return importlib.import_module(child)
        raise AttributeError(_not_provided(child))


class _AliasLoader(importlib.abc.Loader):
    """Creates and fills the synthetic module of one path in :data:`PROVIDED`."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _AliasModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        names = [n for n in PROVIDED[module.__name__] if _source(n) is not None]
        for name in names:
            setattr(module, name, _source(name))
        # Like PyTorch3D's ``__all__``: the public names (underscored helpers stay importable).
        module.__all__ = [n for n in names if not n.startswith("_")]
        module.__voxrender_alias__ = True
        module.__doc__ = f"voxrender.compat alias of {module.__name__} (voxrender's objects)."
        if module.__name__ == _ROOT:
            module.__version__ = _ALIAS_VERSION


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Serves ``pytorch3d`` and the paths in :data:`PROVIDED`; refuses other ``pytorch3d.*``."""

    __voxrender_alias__ = True

    def __init__(self) -> None:
        self._loader = _AliasLoader()

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != _ROOT and not fullname.startswith(_ROOT + "."):
            return None
        if fullname not in PROVIDED:
            # ImportError, not ModuleNotFoundError: ``from pytorch3d.renderer import X`` first
            # tries ``pytorch3d.renderer.X`` as a submodule and would swallow the latter.
            raise ImportError(_not_provided(fullname), name=fullname)
        # Every alias is a package (empty ``__path__``) so that ``from <alias> import X``
        # comes here for a missing X and gets the message above, not a bare "cannot import".
        spec = importlib.machinery.ModuleSpec(fullname, self._loader, is_package=True)
        return spec


# Real pytorch3d modules taken out of sys.modules by install(force=True), for uninstall().
_set_aside: dict[str, types.ModuleType] = {}


def _alias_finders() -> list[object]:
    return [f for f in sys.meta_path if getattr(f, "__voxrender_alias__", False) is True]


def installed() -> bool:
    """Whether the alias is currently installed."""
    return bool(_alias_finders())


def _real_pytorch3d() -> str | None:
    """Where a real, importable PyTorch3D lives (None if there is none); imports nothing."""
    loaded = sys.modules.get(_ROOT)
    if loaded is not None:
        return None if _is_ours(loaded) else str(getattr(loaded, "__file__", None) or "sys.modules")
    try:
        spec = importlib.util.find_spec(_ROOT)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return str(spec.origin or next(iter(spec.submodule_search_locations or []), "?"))


def install(force: bool = False) -> None:
    """Make ``import pytorch3d...`` (the paths in :data:`PROVIDED`) give voxrender's objects.

    Idempotent. Refuses (:class:`PyTorch3DShadowError`) when a real PyTorch3D is importable,
    so it is never hidden by accident.

    Args:
        force: install anyway; real ``pytorch3d`` modules already imported are taken out of
            ``sys.modules`` until :func:`uninstall` puts them back. Objects a program already
            holds from the real PyTorch3D stay what they are.
    """
    if not isinstance(force, bool):
        raise TypeError(f"force: expected a bool, got {type(force).__name__} {force!r}")
    if installed():
        return
    where = _real_pytorch3d()
    if where is not None and not force:
        raise PyTorch3DShadowError(
            f"voxrender.compat.install: a real PyTorch3D is importable (pytorch3d at {where}); "
            "refusing to shadow it. Use it directly, or call install(force=True) to route "
            "pytorch3d imports to voxrender anyway."
        )
    for name, module in list(sys.modules.items()):
        if (name == _ROOT or name.startswith(_ROOT + ".")) and not _is_ours(module):
            _set_aside[name] = sys.modules.pop(name)
    sys.meta_path.insert(0, _AliasFinder())
    importlib.invalidate_caches()


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and the alias modules from ``sys.modules``.

    Real ``pytorch3d`` modules set aside by ``install(force=True)`` are restored. Safe to call
    when not installed.
    """
    for finder in _alias_finders():
        sys.meta_path.remove(finder)
    for name, module in list(sys.modules.items()):
        if (name == _ROOT or name.startswith(_ROOT + ".")) and _is_ours(module):
            del sys.modules[name]
    sys.modules.update(_set_aside)
    _set_aside.clear()
    importlib.invalidate_caches()


_USAGE = "usage: python -m voxrender.compat [--force] SCRIPT.py [ARGS ...]"
_HELP = (
    _USAGE
    + """

Run an unmodified PyTorch3D script on voxrender: its imports of pytorch3d, pytorch3d.renderer,
pytorch3d.structures, pytorch3d.transforms (and the volume-rendering submodules) get
voxrender's classes. SCRIPT.py runs as __main__ with sys.argv = [SCRIPT.py, ARGS ...] and its
folder first on sys.path, as `python SCRIPT.py ARGS ...` would run it. A name voxrender does
not provide (e.g. MeshRenderer) fails with an ImportError saying so.

arguments:
  SCRIPT.py   the PyTorch3D script to run
  ARGS        passed to the script unchanged (its own flags, even -h)

options:
  -h, --help  show this help and exit
  --force     route pytorch3d imports to voxrender even where a real PyTorch3D is importable
              (by default that is refused, so as never to hide a real install)

The list of provided names: voxrender.compat.PROVIDED. From Python: voxrender.compat.install().
"""
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m voxrender.compat [--force] script.py [args]``: run a PyTorch3D script on voxrender.

    The script runs as ``__main__`` with ``sys.argv = [script, *args]`` and its folder first on
    ``sys.path`` (as ``python script.py`` would); its exit status is the return value (a
    ``SystemExit`` it raises propagates, other exceptions too, with their traceback).

    Returns:
        0 when the script finishes (or after ``--help``), 2 on a usage error (one line on
        stderr).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    force = False
    if args and args[0] == "--force":
        force, args = True, args[1:]
    if args and args[0] in ("-h", "--help"):
        print(_HELP, end="")
        return 0
    if not args:
        print(_USAGE, file=sys.stderr)
        print(
            "voxrender.compat: error: expected a script to run (--help explains)", file=sys.stderr
        )
        return 2
    if args[0].startswith("-"):
        print(
            f"voxrender.compat: error: unknown option {args[0]} (only --force and --help come "
            "before the script)",
            file=sys.stderr,
        )
        return 2
    script = args[0]
    if not os.path.isfile(script):
        print(f"voxrender.compat: error: script not found: {script}", file=sys.stderr)
        return 2
    was_installed = installed()
    try:
        install(force=force)
    except PyTorch3DShadowError:
        print(
            f"voxrender.compat: error: a real PyTorch3D is importable (pytorch3d at "
            f"{_real_pytorch3d()}); refusing to shadow it. Run the script with python directly "
            f"to use it, or pass --force (python -m voxrender.compat --force {script} ...) to "
            "route its pytorch3d imports to voxrender anyway.",
            file=sys.stderr,
        )
        return 2
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *args[1:]]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if not was_installed:
            uninstall()
    return 0


if __name__ == "__main__":
    # Run the importable module's main (not this __main__ copy's) so a script that imports
    # voxrender.compat sees the same install state.
    from voxrender.compat import main as _main

    sys.exit(_main())

"""Which library's classes drive the pipeline: voxrender's, or PyTorch3D's very own.

Both expose the same names with the same signatures, so the fit code only ever talks to a
:class:`Backend` and the two can be compared run for run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import FitError

__all__ = ["Backend", "get_backend"]


@dataclass(frozen=True)
class Backend:
    """The renderer pieces the fit uses, taken from one library."""

    name: str
    Volumes: Any
    VolumeRenderer: Any
    ImplicitRenderer: Any
    NDCMultinomialRaysampler: Any
    EmissionAbsorptionRaymarcher: Any
    FoVPerspectiveCameras: Any
    look_at_view_transform: Any
    so3_exp_map: Any
    ray_bundle_to_ray_points: Any


def _voxrender() -> Backend:
    import voxrender as v

    return Backend(
        name="voxrender",
        Volumes=v.Volumes,
        VolumeRenderer=v.VolumeRenderer,
        ImplicitRenderer=v.ImplicitRenderer,
        NDCMultinomialRaysampler=v.NDCMultinomialRaysampler,
        EmissionAbsorptionRaymarcher=v.EmissionAbsorptionRaymarcher,
        FoVPerspectiveCameras=v.FoVPerspectiveCameras,
        look_at_view_transform=v.look_at_view_transform,
        so3_exp_map=v.so3_exp_map,
        ray_bundle_to_ray_points=v.ray_bundle_to_ray_points,
    )


def _pytorch3d() -> Backend:
    try:
        from pytorch3d.renderer import (
            EmissionAbsorptionRaymarcher,
            FoVPerspectiveCameras,
            ImplicitRenderer,
            NDCMultinomialRaysampler,
            VolumeRenderer,
            look_at_view_transform,
            ray_bundle_to_ray_points,
        )
        from pytorch3d.structures import Volumes
        from pytorch3d.transforms import so3_exp_map
    except Exception as e:  # not installed, or installed but broken (e.g. a missing C extension)
        raise FitError(
            f"--backend pytorch3d: cannot import pytorch3d ({type(e).__name__}: {e}); "
            "install it or use --backend voxrender"
        ) from None
    return Backend(
        name="pytorch3d",
        Volumes=Volumes,
        VolumeRenderer=VolumeRenderer,
        ImplicitRenderer=ImplicitRenderer,
        NDCMultinomialRaysampler=NDCMultinomialRaysampler,
        EmissionAbsorptionRaymarcher=EmissionAbsorptionRaymarcher,
        FoVPerspectiveCameras=FoVPerspectiveCameras,
        look_at_view_transform=look_at_view_transform,
        so3_exp_map=so3_exp_map,
        ray_bundle_to_ray_points=ray_bundle_to_ray_points,
    )


def get_backend(name: str) -> Backend:
    """The :class:`Backend` called ``name`` (``"voxrender"`` or ``"pytorch3d"``).

    Raises:
        FitError: an unknown name, or PyTorch3D cannot be imported.
    """
    if name == "voxrender":
        return _voxrender()
    if name == "pytorch3d":
        return _pytorch3d()
    raise FitError(f"--backend: expected one of voxrender, pytorch3d, got {name!r}")

"""voxrender: pure-PyTorch volume rendering, a drop-in for PyTorch3D's volume renderer."""

__version__ = "0.1.0"

from .transforms import Rotate, Scale, Transform3d, Translate
from .so3 import hat, hat_inv, so3_exp_map, so3_log_map
from .cameras import (
    CamerasBase,
    FoVPerspectiveCameras,
    camera_position_from_spherical_angles,
    get_world_to_view_transform,
    look_at_rotation,
    look_at_view_transform,
)
from .volumes import Volumes
from .ray_bundle import (
    HeterogeneousRayBundle,
    RayBundle,
    ray_bundle_to_ray_points,
    ray_bundle_variables_to_ray_points,
)
from .raysampling import (
    GridRaysampler,
    MonteCarloRaysampler,
    MultinomialRaysampler,
    NDCGridRaysampler,
    NDCMultinomialRaysampler,
)
from .grid_sample import sample_grid
from .raymarching import AbsorptionOnlyRaymarcher, EmissionAbsorptionRaymarcher
from .renderer import ImplicitRenderer, VolumeRenderer, VolumeSampler

__all__ = [
    "AbsorptionOnlyRaymarcher",
    "CamerasBase",
    "EmissionAbsorptionRaymarcher",
    "FoVPerspectiveCameras",
    "GridRaysampler",
    "HeterogeneousRayBundle",
    "ImplicitRenderer",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCGridRaysampler",
    "NDCMultinomialRaysampler",
    "RayBundle",
    "Rotate",
    "Scale",
    "Transform3d",
    "Translate",
    "VolumeRenderer",
    "VolumeSampler",
    "Volumes",
    "__version__",
    "camera_position_from_spherical_angles",
    "get_world_to_view_transform",
    "hat",
    "hat_inv",
    "look_at_rotation",
    "look_at_view_transform",
    "ray_bundle_to_ray_points",
    "ray_bundle_variables_to_ray_points",
    "sample_grid",
    "so3_exp_map",
    "so3_log_map",
]

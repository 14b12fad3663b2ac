"""voxrender: pure-PyTorch volume rendering, a drop-in for PyTorch3D's volume renderer."""

__version__ = "0.1.0"

from ._checks import IndexOutOfRangeError
from .backends import BackendChoice
from .cameras import (
    CamerasBase,
    FoVOrthographicCameras,
    FoVPerspectiveCameras,
    OrthographicCameras,
    PerspectiveCameras,
    camera_position_from_spherical_angles,
    get_ndc_to_screen_transform,
    get_screen_to_ndc_transform,
    get_world_to_view_transform,
    look_at_rotation,
    look_at_view_transform,
)
from .grid_sample import sample_grid
from .ray_bundle import (
    HeterogeneousRayBundle,
    RayBundle,
    ray_bundle_to_ray_points,
    ray_bundle_variables_to_ray_points,
)
from .raymarching import (
    AbsorptionOnlyRaymarcher,
    EmissionAbsorptionRaymarcher,
    emission_absorption,
    opacity_from_densities,
    render_weights_from_densities,
    transmittance_from_densities,
)
from .raysampling import (
    GridRaysampler,
    MonteCarloRaysampler,
    MultinomialRaysampler,
    NDCGridRaysampler,
    NDCMultinomialRaysampler,
)
from .renderer import ImplicitRenderer, VolumeRenderer, VolumeSampler
from .so3 import hat, hat_inv, so3_exp_map, so3_log_map
from .transforms import Rotate, Scale, Transform3d, Translate
from .volumes import Volumes

__all__ = [
    "AbsorptionOnlyRaymarcher",
    "BackendChoice",
    "CamerasBase",
    "EmissionAbsorptionRaymarcher",
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "GridRaysampler",
    "HeterogeneousRayBundle",
    "ImplicitRenderer",
    "IndexOutOfRangeError",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCGridRaysampler",
    "NDCMultinomialRaysampler",
    "OrthographicCameras",
    "PerspectiveCameras",
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
    "emission_absorption",
    "get_ndc_to_screen_transform",
    "get_screen_to_ndc_transform",
    "get_world_to_view_transform",
    "hat",
    "hat_inv",
    "look_at_rotation",
    "look_at_view_transform",
    "opacity_from_densities",
    "ray_bundle_to_ray_points",
    "ray_bundle_variables_to_ray_points",
    "render_weights_from_densities",
    "sample_grid",
    "so3_exp_map",
    "so3_log_map",
    "transmittance_from_densities",
]

"""voxrender: pure-PyTorch volume rendering, a drop-in for PyTorch3D's volume renderer.

The modules follow the render, stage by stage; each stage's reference implementation is plain
torch and equals PyTorch3D, and each fast path (``fused`` on the CPU, ``triton_render`` on CUDA,
chosen per call by ``backends``) equals the reference:

- cameras: ``cameras/`` (``base``, ``fov``, ``focal``, ``world_view``, ``look_at``,
  ``camera_utils``) on ``transforms``;
- rays: ``raysampling`` -> ``RayBundle`` (``ray_bundle``);
- points: ``ray_bundle_to_ray_points``; rays in the volume's frame (``voxel_geometry``,
  ``volumes``);
- samples: ``VolumeSampler`` (``renderer``) -> ``sample_grid`` (``grid_sample``) reading the
  channel-last voxel table (``voxel_table``);
- weights and pixels: ``raymarching`` (emission-absorption, absorption-only), composed by
  ``VolumeRenderer`` / ``ImplicitRenderer`` (``renderer``).

Beside the pipeline: ``compat`` (run PyTorch3D scripts unchanged), ``deprecated``,
``rotation_conversions``, ``so3``, ``se3``, ``so3_angles``, ``harmonic_embedding``,
``implicit_utils``, ``volume_locator``.
"""

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
    camera_to_eye_at_up,
    get_ndc_to_screen_transform,
    get_screen_to_ndc_transform,
    get_world_to_view_transform,
    join_cameras_as_batch,
    look_at_rotation,
    look_at_view_transform,
    rotate_on_spot,
)
from .deprecated import (
    OpenGLOrthographicCameras,
    OpenGLPerspectiveCameras,
    SfMOrthographicCameras,
    SfMPerspectiveCameras,
    so3_exponential_map,
)
from .grid_sample import sample_grid
from .harmonic_embedding import HarmonicEmbedding
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
from .rotate_axis_angle import RotateAxisAngle
from .rotation_conversions import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_angles_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler_angles,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_apply,
    quaternion_invert,
    quaternion_multiply,
    quaternion_raw_multiply,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    random_quaternions,
    random_rotation,
    random_rotations,
    rotation_6d_to_matrix,
    standardize_quaternion,
)
from .se3 import se3_exp_map, se3_log_map
from .so3 import hat, hat_inv, so3_exp_map, so3_log_map
from .so3_angles import acos_linear_extrapolation, so3_relative_angle, so3_rotation_angle
from .transforms import Rotate, Scale, SingularTransformError, Transform3d, Translate
from .volume_locator import VolumeLocator
from .volumes import Volumes

__all__ = [
    "AbsorptionOnlyRaymarcher",
    "BackendChoice",
    "CamerasBase",
    "EmissionAbsorptionRaymarcher",
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "GridRaysampler",
    "HarmonicEmbedding",
    "HeterogeneousRayBundle",
    "ImplicitRenderer",
    "IndexOutOfRangeError",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCGridRaysampler",
    "NDCMultinomialRaysampler",
    "OpenGLOrthographicCameras",
    "OpenGLPerspectiveCameras",
    "OrthographicCameras",
    "PerspectiveCameras",
    "RayBundle",
    "Rotate",
    "RotateAxisAngle",
    "Scale",
    "SfMOrthographicCameras",
    "SfMPerspectiveCameras",
    "SingularTransformError",
    "Transform3d",
    "Translate",
    "VolumeLocator",
    "VolumeRenderer",
    "VolumeSampler",
    "Volumes",
    "__version__",
    "acos_linear_extrapolation",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "camera_position_from_spherical_angles",
    "camera_to_eye_at_up",
    "emission_absorption",
    "euler_angles_to_matrix",
    "get_ndc_to_screen_transform",
    "get_screen_to_ndc_transform",
    "get_world_to_view_transform",
    "hat",
    "hat_inv",
    "join_cameras_as_batch",
    "look_at_rotation",
    "look_at_view_transform",
    "matrix_to_axis_angle",
    "matrix_to_euler_angles",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "opacity_from_densities",
    "quaternion_apply",
    "quaternion_invert",
    "quaternion_multiply",
    "quaternion_raw_multiply",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "random_quaternions",
    "random_rotation",
    "random_rotations",
    "ray_bundle_to_ray_points",
    "ray_bundle_variables_to_ray_points",
    "render_weights_from_densities",
    "rotate_on_spot",
    "rotation_6d_to_matrix",
    "sample_grid",
    "se3_exp_map",
    "se3_log_map",
    "so3_exp_map",
    "so3_exponential_map",
    "so3_log_map",
    "so3_relative_angle",
    "so3_rotation_angle",
    "standardize_quaternion",
    "transmittance_from_densities",
]

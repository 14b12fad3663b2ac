"""STUB: being written. Replace this whole file."""

__all__ = ['HeterogeneousRayBundle', 'RayBundle', 'ray_bundle_to_ray_points', 'ray_bundle_variables_to_ray_points']

HeterogeneousRayBundle = None  # stub
RayBundle = None  # stub
ray_bundle_to_ray_points = None  # stub
ray_bundle_variables_to_ray_points = None  # stub

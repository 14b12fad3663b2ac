"""STUB: being written. Replace this whole file."""

__all__ = ['CamerasBase', 'FoVPerspectiveCameras', 'camera_position_from_spherical_angles', 'get_world_to_view_transform', 'look_at_rotation', 'look_at_view_transform']

CamerasBase = None  # stub
FoVPerspectiveCameras = None  # stub
camera_position_from_spherical_angles = None  # stub
get_world_to_view_transform = None  # stub
look_at_rotation = None  # stub
look_at_view_transform = None  # stub

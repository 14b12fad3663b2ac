"""Cameras in PyTorch3D's conventions: the four camera kinds, screen <-> NDC maps, look-at helpers.

Coordinate systems (as in PyTorch3D): *world*; *view* (camera at the origin, +X left, +Y up,
+Z pointing from the camera into the scene); *NDC* (after the projection: +X left, +Y up,
``x, y`` in ``[-1, 1]`` along the image's shorter side and ``[-u, u]``, ``u >= 1``, along the
longer one; for FoV cameras ``z`` in ``[0, 1]`` from ``znear`` to ``zfar``); *screen* (pixels of
an ``H x W`` image). World -> view is ``p_view = p_world @ R + T`` (row vectors), so a camera at
world position ``C`` has ``T = -C @ R``. All transforms are :class:`~voxrender.Transform3d`
(row-vector matrices).

Camera kinds: :class:`FoVPerspectiveCameras` and :class:`FoVOrthographicCameras` (defined in
NDC by a field of view or a box), :class:`PerspectiveCameras` and :class:`OrthographicCameras`
(focal length and principal point, in NDC or, with ``in_ndc=False``, in screen space; their
``get_ndc_camera_transform`` maps screen units to NDC using ``image_size``).

Every per-camera field (``R``, ``T``, ``K``, ``znear``, ``focal_length``, ...) is stored as a
tensor with the batch size ``N`` first: batch sizes 1 and ``N`` broadcast at construction,
anything else raises. Fields given as tensors keep their autograd graph (they are only moved,
cast to the common dtype and expanded), so gradients flow back to them. The camera's dtype is
the promoted dtype of the floating tensors given (the default dtype when only Python numbers are
given; ``image_size`` never decides it).

Dimensions:
    ``N``: cameras in the batch.
    ``P``: points per camera.
    ``H, W``: image height and width in pixels.

Where things live: :mod:`~voxrender.cameras.base` (:class:`CamerasBase`, screen <-> NDC),
:mod:`~voxrender.cameras.fov`, :mod:`~voxrender.cameras.focal`,
:mod:`~voxrender.cameras.world_view` (world -> view), :mod:`~voxrender.cameras.look_at` and
:mod:`~voxrender.cameras.camera_utils` (batch joining, turning on the spot), all built on the
package-private :mod:`~voxrender.cameras._helpers`; every public name is re-exported here.
"""

from .base import CamerasBase, get_ndc_to_screen_transform, get_screen_to_ndc_transform
from .camera_utils import camera_to_eye_at_up, join_cameras_as_batch, rotate_on_spot
from .focal import OrthographicCameras, PerspectiveCameras
from .fov import FoVOrthographicCameras, FoVPerspectiveCameras
from .look_at import (
    camera_position_from_spherical_angles,
    look_at_rotation,
    look_at_view_transform,
)
from .world_view import get_world_to_view_transform

__all__ = [
    "CamerasBase",
    "FoVOrthographicCameras",
    "FoVPerspectiveCameras",
    "OrthographicCameras",
    "PerspectiveCameras",
    "camera_position_from_spherical_angles",
    "camera_to_eye_at_up",
    "get_ndc_to_screen_transform",
    "get_screen_to_ndc_transform",
    "get_world_to_view_transform",
    "join_cameras_as_batch",
    "look_at_rotation",
    "look_at_view_transform",
    "rotate_on_spot",
]

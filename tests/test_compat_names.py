"""voxrender.compat serves the names added for PyTorch3D scripts, with PyTorch3D hidden.

Each PyTorch3D module path that holds one of the added names gives voxrender's object under
``voxrender.compat``; a script's imports of them work as in PyTorch3D. PyTorch3D (the live
oracle other tests import) is taken out of ``sys.modules`` around every test with
``reference.oracle.pytorch3d_hidden()``, so the alias can be installed in the same run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest
import torch

import voxrender
from reference.oracle import pytorch3d_hidden
from voxrender import compat
from voxrender.implicit_utils import _validate_ray_bundle_variables

# A real PyTorch3D on sys.path (not the shared oracle copy, which is off sys.path).
REAL_PYTORCH3D = importlib.util.find_spec("pytorch3d") is not None

ADDED = {
    "pytorch3d.renderer": (
        "HarmonicEmbedding",
        "OpenGLOrthographicCameras",
        "OpenGLPerspectiveCameras",
        "SfMOrthographicCameras",
        "SfMPerspectiveCameras",
        "join_cameras_as_batch",
        "rotate_on_spot",
    ),
    "pytorch3d.renderer.cameras": (
        "OpenGLOrthographicCameras",
        "OpenGLPerspectiveCameras",
        "SfMOrthographicCameras",
        "SfMPerspectiveCameras",
    ),
    "pytorch3d.renderer.camera_utils": (
        "camera_to_eye_at_up",
        "join_cameras_as_batch",
        "rotate_on_spot",
    ),
    "pytorch3d.renderer.implicit": ("HarmonicEmbedding",),
    "pytorch3d.renderer.implicit.harmonic_embedding": ("HarmonicEmbedding",),
    "pytorch3d.renderer.implicit.utils": ("_validate_ray_bundle_variables",),
    "pytorch3d.structures.volumes": ("VolumeLocator",),
    "pytorch3d.transforms": (
        "RotateAxisAngle",
        "acos_linear_extrapolation",
        "axis_angle_to_matrix",
        "axis_angle_to_quaternion",
        "euler_angles_to_matrix",
        "matrix_to_axis_angle",
        "matrix_to_euler_angles",
        "matrix_to_quaternion",
        "matrix_to_rotation_6d",
        "quaternion_apply",
        "quaternion_invert",
        "quaternion_multiply",
        "quaternion_raw_multiply",
        "quaternion_to_axis_angle",
        "quaternion_to_matrix",
        "random_quaternions",
        "random_rotation",
        "random_rotations",
        "rotation_6d_to_matrix",
        "se3_exp_map",
        "se3_log_map",
        "so3_exponential_map",
        "so3_relative_angle",
        "so3_rotation_angle",
        "standardize_quaternion",
    ),
    "pytorch3d.transforms.math": ("acos_linear_extrapolation",),
    "pytorch3d.transforms.se3": ("se3_exp_map", "se3_log_map"),
    "pytorch3d.transforms.so3": ("so3_exponential_map", "so3_relative_angle", "so3_rotation_angle"),
    "pytorch3d.transforms.transform3d": ("RotateAxisAngle",),
}
ADDED["pytorch3d.transforms.rotation_conversions"] = tuple(
    n
    for n in ADDED["pytorch3d.transforms"]
    if n
    not in (
        "RotateAxisAngle",
        "acos_linear_extrapolation",
        "se3_exp_map",
        "se3_log_map",
        "so3_exponential_map",
        "so3_relative_angle",
        "so3_rotation_angle",
    )
)


def _voxrender_object(name: str) -> object:
    if name == "_validate_ray_bundle_variables":
        return _validate_ray_bundle_variables
    return getattr(voxrender, name)


@pytest.fixture
def alias():
    """PyTorch3D hidden, the alias installed; both undone afterwards."""
    with pytorch3d_hidden():
        compat.uninstall()
        compat.install(force=REAL_PYTORCH3D)
        try:
            yield
        finally:
            compat.uninstall()


@pytest.mark.parametrize(("path", "name"), [(p, n) for p, names in ADDED.items() for n in names])
def test_added_name_is_served_as_voxrenders_object(alias, path, name):
    module = importlib.import_module(path)
    assert module.__voxrender_alias__ is True
    assert getattr(module, name) is _voxrender_object(name)
    assert name in compat.PROVIDED[path]


def test_every_provided_name_resolves_to_a_voxrender_object(alias):
    for path, names in compat.PROVIDED.items():
        module = importlib.import_module(path)
        for name in names:
            obj = getattr(module, name)
            assert obj is _voxrender_object(name), f"{path}.{name}"
            assert obj.__module__.startswith("voxrender"), f"{path}.{name}"
        assert module.__all__ == [n for n in names if not n.startswith("_")]


def test_a_script_using_the_added_names_runs(alias):
    from pytorch3d.renderer import (
        HarmonicEmbedding,
        OpenGLPerspectiveCameras,
        join_cameras_as_batch,
        rotate_on_spot,
    )
    from pytorch3d.renderer.implicit.utils import _validate_ray_bundle_variables as validate
    from pytorch3d.structures.volumes import VolumeLocator
    from pytorch3d.transforms import (
        RotateAxisAngle,
        axis_angle_to_matrix,
        matrix_to_quaternion,
        random_rotations,
        se3_exp_map,
        se3_log_map,
        so3_relative_angle,
    )

    torch.manual_seed(0)
    R = random_rotations(2)
    q = matrix_to_quaternion(R)
    assert q.shape == (2, 4)
    assert so3_relative_angle(R, R).abs().max() < 0.03
    with pytest.warns(PendingDeprecationWarning):
        cams = OpenGLPerspectiveCameras(R=R)
    both = join_cameras_as_batch([cams, cams])
    assert len(both) == 4
    R2, T2 = rotate_on_spot(
        R, torch.zeros(2, 3), axis_angle_to_matrix(torch.tensor([0.0, 0.1, 0.0]))
    )
    assert R2.shape == (2, 3, 3) and T2.shape == (2, 3)
    assert RotateAxisAngle(30.0, "Y").get_matrix().shape == (1, 4, 4)
    log = torch.tensor([[0.1, 0.2, 0.3, 0.2, -0.1, 0.3]])
    assert torch.allclose(se3_log_map(se3_exp_map(log)), log, atol=1e-5)
    assert HarmonicEmbedding(4)(torch.zeros(5, 3)).shape == (5, 27)
    assert VolumeLocator(1, (2, 3, 4), "cpu").get_coord_grid().shape == (1, 2, 3, 4, 3)
    validate(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))


def test_underscored_helper_is_importable_but_not_starred(alias):
    namespace: dict[str, object] = {}
    exec("from pytorch3d.renderer.implicit.utils import *", namespace)
    assert "_validate_ray_bundle_variables" not in namespace
    assert "RayBundle" in namespace


def test_pytorch3d_is_restored_after_the_alias():
    before = {k for k in sys.modules if k == "pytorch3d" or k.startswith("pytorch3d.")}
    with pytorch3d_hidden():
        compat.install(force=REAL_PYTORCH3D)
        import pytorch3d.transforms

        assert pytorch3d.transforms.se3_exp_map is voxrender.se3_exp_map
        compat.uninstall()
    after = {k for k in sys.modules if k == "pytorch3d" or k.startswith("pytorch3d.")}
    assert after == before

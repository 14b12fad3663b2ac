"""Live parity of the names added for PyTorch3D scripts: voxrender against PyTorch3D itself.

Rotation conversions, so3 angles, se3 maps, ``RotateAxisAngle``, camera helpers, deprecated
cameras, ``HarmonicEmbedding``, ``VolumeLocator`` / ``Volumes.locator`` and
``_validate_ray_bundle_variables``. Each case runs the same call on both libraries with the same
inputs (drawn from a hypothesis seed), compares the outputs, and pushes one seeded random
cotangent through both to compare the gradients of every input. Skipped as a whole, with the
reason, where PyTorch3D is not importable (``reference.oracle``).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import pytest
import torch
from helpers import DEVICES, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import voxrender
from reference.oracle import import_pytorch3d, pytorch3d_hidden
from voxrender import compat

_P3D_MODULES = (
    "pytorch3d.transforms",
    "pytorch3d.transforms.math",
    "pytorch3d.renderer",
    "pytorch3d.renderer.camera_utils",
    "pytorch3d.renderer.cameras",
    "pytorch3d.renderer.implicit.utils",
    "pytorch3d.structures.volumes",
)

# PyTorch3D is loaded out of sight: other test modules collected after this one (and the
# voxrender.compat tests) must find sys.modules as it was. Its modules are put back only while
# this module's tests run (see _oracle_modules_loaded).
with pytorch3d_hidden():
    PYTORCH3D, REASON = import_pytorch3d()
    _P3D = [importlib.import_module(m) for m in _P3D_MODULES] if PYTORCH3D is not None else []
    _LOADED = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "pytorch3d"}
if PYTORCH3D is None:
    pytest.skip(REASON, allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def _oracle_modules_loaded():
    """PyTorch3D's modules in ``sys.modules`` (for its own lazy imports) during these tests only."""
    saved = {k: sys.modules.get(k) for k in _LOADED}
    sys.modules.update(_LOADED)
    yield
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


class _Lib(SimpleNamespace):
    """Names looked up in a list of modules, first hit wins."""

    def __init__(self, modules: list[ModuleType]):
        super().__init__()
        self._modules = modules

    def __getattr__(self, name: str):
        for module in self.__dict__["_modules"]:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(name)


THEIRS = _Lib(_P3D)
OURS = _Lib([voxrender, importlib.import_module("voxrender.implicit_utils")])

CONVENTIONS = [a + b + c for a in "XYZ" for b in "XYZ" for c in "XYZ" if b not in (a, c)]
SEEDS = st.integers(0, 2**31 - 1)
PARITY = settings(max_examples=4, deadline=None)


# ------------------------------------------------------------------------------- inputs


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _rotations(g: torch.Generator, n: int, max_angle: float = 3.0) -> torch.Tensor:
    """Random rotations ``(n, 3, 3)`` with angles in ``(0.1, max_angle)`` (away from 0 and pi)."""
    axis = torch.nn.functional.normalize(_randn(g, n, 3), dim=-1)
    angle = 0.1 + (max_angle - 0.1) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return voxrender.axis_angle_to_matrix(axis * angle)


def _perturbed(g: torch.Generator, n: int) -> torch.Tensor:
    """Rotations plus a small general perturbation: not exactly orthonormal."""
    return _rotations(g, n) + 0.02 * _randn(g, n, 3, 3)


def _axis_angles(g: torch.Generator, *batch: int, max_angle: float = 3.0) -> torch.Tensor:
    axis = torch.nn.functional.normalize(_randn(g, *batch, 3), dim=-1)
    angle = 0.05 + (max_angle - 0.05) * torch.rand(*batch, 1, generator=g, dtype=torch.float64)
    return axis * angle


def _se3_logs(g: torch.Generator, n: int) -> torch.Tensor:
    return torch.cat((_randn(g, n, 3), _axis_angles(g, n)), dim=1)


# ------------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class Case:
    """One call: ``fn(lib, *inputs)``; ``inputs(generator)`` are float64 CPU tensors."""

    fn: Callable
    inputs: Callable[[torch.Generator], tuple]
    float64: bool = True  # PyTorch3D computes it in float64 too
    grad: bool = True
    constant: tuple[int, ...] = ()  # inputs that get no gradient


def _run(lib, case: Case, inputs: tuple, dtype: torch.dtype, device: str, cot_seed: int):
    leaves = [
        x.to(device=device, dtype=dtype).requires_grad_(case.grad and i not in case.constant)
        for i, x in enumerate(inputs)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        out = case.fn(lib, *leaves)
    outs = out if isinstance(out, tuple) else (out,)
    grads: list[torch.Tensor | None] = []
    wrt = [x for x in leaves if torch.is_tensor(x) and x.requires_grad]
    differentiable = [o for o in outs if o.requires_grad]
    if differentiable and wrt:
        g = torch.Generator().manual_seed(cot_seed)
        loss = sum(
            (o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o)).sum()
            for o in differentiable
        )
        grads = list(torch.autograd.grad(loss, wrt, allow_unused=True))
    return [o.detach() for o in outs], grads


def _check(case: Case, seed: int, dtype: torch.dtype, device: str) -> None:
    inputs = case.inputs(_gen(seed))
    ours_out, ours_grad = _run(OURS, case, inputs, dtype, device, seed + 1)
    theirs_out, theirs_grad = _run(THEIRS, case, inputs, dtype, device, seed + 1)
    assert len(ours_out) == len(theirs_out)
    for i, (a, b) in enumerate(zip(ours_out, theirs_out, strict=True)):
        assert a.dtype == b.dtype, f"output {i}: dtype {a.dtype} vs PyTorch3D's {b.dtype}"
        assert_close(a, b, dtype=dtype, msg=f"output {i}")
    assert len(ours_grad) == len(theirs_grad)
    for i, (a, b) in enumerate(zip(ours_grad, theirs_grad, strict=True)):
        assert (a is None) == (b is None), f"input {i}: gradient presence differs"
        if a is not None:
            assert_close(a, b, kind="grad", dtype=dtype, msg=f"gradient of input {i}")


# ------------------------------------------------------------------------------- the cases

CASES: dict[str, Case] = {
    # quaternions
    "quaternion_to_matrix": Case(
        lambda L, q: L.quaternion_to_matrix(q), lambda g: (_randn(g, 2, 3, 4),)
    ),
    "matrix_to_quaternion": Case(
        lambda L, m: L.matrix_to_quaternion(m), lambda g: (_perturbed(g, 6),)
    ),
    "standardize_quaternion": Case(
        lambda L, q: L.standardize_quaternion(q), lambda g: (_randn(g, 7, 4),)
    ),
    "quaternion_raw_multiply": Case(
        lambda L, a, b: L.quaternion_raw_multiply(a, b),
        lambda g: (_randn(g, 2, 1, 4), _randn(g, 3, 4)),
    ),
    "quaternion_multiply": Case(
        lambda L, a, b: L.quaternion_multiply(a, b), lambda g: (_randn(g, 5, 4), _randn(g, 5, 4))
    ),
    "quaternion_invert": Case(lambda L, q: L.quaternion_invert(q), lambda g: (_randn(g, 5, 4),)),
    "quaternion_apply": Case(
        lambda L, q, p: L.quaternion_apply(q, p),
        lambda g: (torch.nn.functional.normalize(_randn(g, 4, 4), dim=-1), _randn(g, 4, 3)),
    ),
    # axis-angle
    "axis_angle_to_quaternion": Case(
        lambda L, a: L.axis_angle_to_quaternion(a), lambda g: (_axis_angles(g, 3, 2),)
    ),
    "quaternion_to_axis_angle": Case(
        lambda L, q: L.quaternion_to_axis_angle(q), lambda g: (_randn(g, 6, 4),)
    ),
    "axis_angle_to_matrix": Case(
        lambda L, a: L.axis_angle_to_matrix(a), lambda g: (_axis_angles(g, 6),)
    ),
    "axis_angle_to_matrix_fast": Case(
        lambda L, a: L.axis_angle_to_matrix(a, fast=True), lambda g: (_axis_angles(g, 2, 3),)
    ),
    "matrix_to_axis_angle": Case(
        lambda L, m: L.matrix_to_axis_angle(m), lambda g: (_perturbed(g, 6),)
    ),
    "matrix_to_axis_angle_fast": Case(
        lambda L, m: L.matrix_to_axis_angle(m, fast=True), lambda g: (_perturbed(g, 6),)
    ),
    # 6D
    "rotation_6d_to_matrix": Case(
        lambda L, d: L.rotation_6d_to_matrix(d), lambda g: (_randn(g, 5, 6),)
    ),
    "matrix_to_rotation_6d": Case(
        lambda L, m: L.matrix_to_rotation_6d(m), lambda g: (_randn(g, 2, 2, 3, 3),)
    ),
    # so3 angles
    "so3_rotation_angle": Case(
        lambda L, m: L.so3_rotation_angle(m), lambda g: (_rotations(g, 6, max_angle=3.14),)
    ),
    "so3_rotation_angle_cos": Case(
        lambda L, m: L.so3_rotation_angle(m, cos_angle=True),
        lambda g: (0.99 * _rotations(g, 4),),
    ),
    "so3_rotation_angle_plain_acos": Case(
        lambda L, m: L.so3_rotation_angle(m, cos_bound=0.0), lambda g: (_rotations(g, 4),)
    ),
    "so3_rotation_angle_identity": Case(
        lambda L, m: L.so3_rotation_angle(m), lambda g: (torch.eye(3, dtype=torch.float64)[None],)
    ),
    "so3_relative_angle": Case(
        lambda L, a, b: L.so3_relative_angle(a, b), lambda g: (_rotations(g, 5), _rotations(g, 5))
    ),
    "acos_linear_extrapolation": Case(
        lambda L, x: L.acos_linear_extrapolation(x, (-0.9, 0.8)),
        lambda g: (3 * torch.rand(40, generator=g, dtype=torch.float64) - 1.5,),
    ),
    "acos_linear_extrapolation_default": Case(
        lambda L, x: L.acos_linear_extrapolation(x),
        lambda g: (2.2 * torch.rand(3, 9, generator=g, dtype=torch.float64) - 1.1,),
    ),
    # se3
    "se3_exp_map": Case(lambda L, v: L.se3_exp_map(v), lambda g: (_se3_logs(g, 5),)),
    "se3_exp_map_small": Case(lambda L, v: L.se3_exp_map(v), lambda g: (1e-3 * _randn(g, 3, 6),)),
    "se3_log_map": Case(
        lambda L, m: L.se3_log_map(m), lambda g: (voxrender.se3_exp_map(_se3_logs(g, 5)),)
    ),
    "so3_exponential_map": Case(
        lambda L, v: L.so3_exponential_map(v), lambda g: (_axis_angles(g, 4),)
    ),
    # RotateAxisAngle
    **{
        f"RotateAxisAngle_{axis}_{deg}": Case(
            lambda L, a, axis=axis, deg=deg: L.RotateAxisAngle(
                a, axis, degrees=deg, dtype=a.dtype
            ).get_matrix(),
            lambda g, deg=deg: (_randn(g, 4) * (60.0 if deg else 1.0),),
        )
        for axis in ("X", "y", "Z")
        for deg in (True, False)
    },
    # camera helpers
    "rotate_on_spot": Case(
        lambda L, R, T, rot: L.rotate_on_spot(R, T, rot),
        lambda g: (_rotations(g, 3), _randn(g, 3, 3), _rotations(g, 1)),
    ),
    "rotate_on_spot_unbatched": Case(
        lambda L, R, T, rot: L.rotate_on_spot(R, T, rot),
        lambda g: (_rotations(g, 1)[0], _randn(g, 3), _rotations(g, 4)),
    ),
    "camera_to_eye_at_up": Case(
        lambda L, R, T: L.camera_to_eye_at_up(L.get_world_to_view_transform(R=R, T=T)),
        lambda g: (_rotations(g, 3), _randn(g, 3, 3)),
        float64=False,
    ),
    "join_cameras_as_batch_fov": Case(
        lambda L, R1, R2, T, fov: (
            L.join_cameras_as_batch(
                [
                    L.FoVPerspectiveCameras(fov=fov, R=R1, T=T[:2]),
                    L.FoVPerspectiveCameras(fov=fov[:1] * 0.5, R=R2, T=T[2:]),
                ]
            )
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (
            _rotations(g, 2),
            _rotations(g, 1),
            _randn(g, 3, 3) + torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64),
            40.0 + 20.0 * torch.rand(2, generator=g, dtype=torch.float64),
        ),
        float64=False,
    ),
    "join_cameras_as_batch_screen": Case(
        lambda L, R, f, p: L.join_cameras_as_batch(
            [
                L.PerspectiveCameras(
                    focal_length=f[:1],
                    principal_point=p[:1],
                    R=R[:1],
                    in_ndc=False,
                    image_size=((10, 20),),
                ),
                L.PerspectiveCameras(
                    focal_length=f[1:],
                    principal_point=p[1:],
                    R=R[1:],
                    in_ndc=False,
                    image_size=((12, 8), (6, 6)),
                ),
            ]
        ).transform_points_screen(torch.ones(3, 2, 3, dtype=f.dtype, device=f.device) + R[:, :2]),
        lambda g: (
            _rotations(g, 3),
            5.0 + torch.rand(3, generator=g, dtype=torch.float64),
            4.0 * torch.rand(3, 2, generator=g, dtype=torch.float64),
        ),
        float64=False,
    ),
    "join_cameras_as_batch_ortho": Case(
        lambda L, s, T: (
            L.join_cameras_as_batch(
                [
                    L.FoVOrthographicCameras(scale_xyz=s[:1], T=T[:1]),
                    L.FoVOrthographicCameras(T=T[1:]),
                ]
            )
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (1.0 + torch.rand(1, 3, generator=g, dtype=torch.float64), _randn(g, 3, 3)),
        float64=False,
    ),
    # deprecated cameras
    "OpenGLPerspectiveCameras": Case(
        lambda L, fov, R: (
            L.OpenGLPerspectiveCameras(fov=fov, aspect_ratio=1.5, R=R)
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (30 + 40 * torch.rand(2, generator=g, dtype=torch.float64), _rotations(g, 2)),
        float64=False,
    ),
    "OpenGLOrthographicCameras": Case(
        lambda L, top, R: (
            L.OpenGLOrthographicCameras(top=top, bottom=-0.5, left=-2.0, R=R)
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (1 + torch.rand(2, generator=g, dtype=torch.float64), _rotations(g, 2)),
        float64=False,
    ),
    "SfMPerspectiveCameras": Case(
        lambda L, f, p, R: (
            L.SfMPerspectiveCameras(focal_length=f, principal_point=p, R=R)
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (
            1 + torch.rand(2, 2, generator=g, dtype=torch.float64),
            _randn(g, 2, 2),
            _rotations(g, 2),
        ),
        float64=False,
    ),
    "SfMOrthographicCameras": Case(
        lambda L, f, p, R: (
            L.SfMOrthographicCameras(focal_length=f, principal_point=p, R=R)
            .get_full_projection_transform()
            .get_matrix()
        ),
        lambda g: (
            1 + torch.rand(2, generator=g, dtype=torch.float64),
            _randn(g, 2, 2),
            _rotations(g, 2),
        ),
        float64=False,
    ),
    # HarmonicEmbedding
    **{
        f"HarmonicEmbedding_{n}_{log}_{app}": Case(
            lambda L, x, cov, n=n, log=log, app=app: L.HarmonicEmbedding(
                n, omega_0=0.7, logspace=log, append_input=app
            ).to(x.device)(x, diag_cov=cov),
            lambda g: (_randn(g, 2, 5, 3), torch.rand(2, 5, 3, generator=g, dtype=torch.float64)),
        )
        for n, log, app in ((6, True, True), (4, False, False), (1, True, False))
    },
    "HarmonicEmbedding_no_cov": Case(
        lambda L, x: L.HarmonicEmbedding().to(x.device)(x), lambda g: (_randn(g, 7, 2),)
    ),
    # VolumeLocator and Volumes.locator (PyTorch3D's locator computes in float32 only)
    "VolumeLocator_grids": Case(
        lambda L, vs: tuple(
            L.VolumeLocator(
                2,
                [(3, 4, 5), (2, 4, 3)],
                vs.device,
                voxel_size=vs,
                volume_translation=(1.0, 2.0, 3.0),
                align_corners=ac,
            ).get_coord_grid(world_coordinates=w)
            for ac in (True, False)
            for w in (True, False)
        ),
        lambda g: (0.2 + torch.rand(2, 1, generator=g, dtype=torch.float64),),
        float64=False,
    ),
    "VolumeLocator_points": Case(
        lambda L, vs, t, p: (
            (
                loc := L.VolumeLocator(2, (3, 4, 5), vs.device, voxel_size=vs, volume_translation=t)
            ).world_to_local_coords(p),
            loc.local_to_world_coords(p),
            loc.get_local_to_world_coords_transform().get_matrix(),
            loc.get_world_to_local_coords_transform().get_matrix(),
        ),
        lambda g: (
            0.2 + torch.rand(3, generator=g, dtype=torch.float64),
            _randn(g, 2, 3),
            _randn(g, 2, 4, 5, 3),
        ),
        float64=False,
    ),
    "Volumes_locator": Case(
        lambda L, d, p: (
            (
                loc := L.Volumes(
                    d, voxel_size=(0.3, 0.2, 0.1), volume_translation=(0.5, 0, 1)
                ).locator
            ).get_coord_grid(),
            loc.world_to_local_coords(p),
        ),
        lambda g: (torch.rand(2, 1, 3, 4, 5, generator=g, dtype=torch.float64), _randn(g, 2, 6, 3)),
        float64=False,
    ),
}
for _conv in CONVENTIONS:
    CASES[f"euler_angles_to_matrix_{_conv}"] = Case(
        lambda L, e, c=_conv: L.euler_angles_to_matrix(e, c), lambda g: (_randn(g, 2, 3, 3),)
    )
    CASES[f"matrix_to_euler_angles_{_conv}"] = Case(
        lambda L, m, c=_conv: L.matrix_to_euler_angles(m, c), lambda g: (_rotations(g, 5),)
    )


def _case_params():
    for name, case in CASES.items():
        for dtype in (torch.float32, torch.float64) if case.float64 else (torch.float32,):
            yield pytest.param(name, dtype, id=f"{name}-{str(dtype)[6:]}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "dtype"), list(_case_params()))
@PARITY
@given(seed=SEEDS)
def test_values_and_gradients_match_pytorch3d(name, dtype, device, seed):
    _check(CASES[name], seed, dtype, device)


# ------------------------------------------------------------------------------- random draws


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["random_quaternions", "random_rotations", "random_rotation"])
@PARITY
@given(seed=SEEDS, n=st.integers(0, 6))
def test_random_draws_match_pytorch3d_for_the_same_seed(name, dtype, seed, n):
    args = () if name == "random_rotation" else (n,)
    torch.manual_seed(seed)
    ours = getattr(OURS, name)(*args, dtype=dtype)
    torch.manual_seed(seed)
    theirs = getattr(THEIRS, name)(*args, dtype=dtype)
    assert ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs)


def test_random_draws_leave_the_generator_where_pytorch3d_does():
    torch.manual_seed(7)
    OURS.random_rotations(5)
    ours_next = torch.rand(4)
    torch.manual_seed(7)
    THEIRS.random_rotations(5)
    assert torch.equal(ours_next, torch.rand(4))


# ------------------------------------------------------------------------------- outcomes


def _outcome(lib, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(lib)
        except Exception as e:
            return type(e)
    return None


REFUSED = {
    "matrix_to_quaternion_shape": lambda L: L.matrix_to_quaternion(torch.zeros(2, 3, 4)),
    "matrix_to_axis_angle_shape": lambda L: L.matrix_to_axis_angle(torch.zeros(4, 3)),
    "matrix_to_axis_angle_fast_shape": lambda L: L.matrix_to_axis_angle(torch.zeros(3, 2), True),
    "euler_shape": lambda L: L.euler_angles_to_matrix(torch.zeros(2, 4), "XYZ"),
    "euler_0d": lambda L: L.euler_angles_to_matrix(torch.tensor(1.0), "XYZ"),
    "euler_convention_length": lambda L: L.euler_angles_to_matrix(torch.zeros(3), "XY"),
    "euler_convention_middle": lambda L: L.euler_angles_to_matrix(torch.zeros(3), "XXY"),
    "euler_convention_letter": lambda L: L.euler_angles_to_matrix(torch.zeros(3), "XYW"),
    "matrix_to_euler_convention": lambda L: L.matrix_to_euler_angles(torch.eye(3), "ZZY"),
    "matrix_to_euler_shape": lambda L: L.matrix_to_euler_angles(torch.zeros(3, 4), "XYZ"),
    "quaternion_apply_points": lambda L: L.quaternion_apply(torch.ones(4), torch.ones(2)),
    "so3_rotation_angle_shape": lambda L: L.so3_rotation_angle(torch.zeros(2, 3, 4)),
    "so3_rotation_angle_trace": lambda L: L.so3_rotation_angle(2 * torch.eye(3)[None]),
    "so3_relative_angle_trace": lambda L: L.so3_relative_angle(
        torch.eye(3)[None], -2 * torch.eye(3)[None]
    ),
    "acos_bounds_order": lambda L: L.acos_linear_extrapolation(torch.zeros(2), (0.5, -0.5)),
    "acos_bounds_range": lambda L: L.acos_linear_extrapolation(torch.zeros(2), (-1.0, 0.5)),
    "se3_exp_shape": lambda L: L.se3_exp_map(torch.zeros(2, 7)),
    "se3_exp_ndim": lambda L: L.se3_exp_map(torch.zeros(6)),
    "se3_log_shape": lambda L: L.se3_log_map(torch.zeros(2, 3, 4)),
    "se3_log_column": lambda L: L.se3_log_map(
        torch.eye(4)[None] + torch.nn.functional.one_hot(torch.tensor([[3]]), 4).T[None]
    ),
    "RotateAxisAngle_axis": lambda L: L.RotateAxisAngle(10.0, axis="W"),
    "RotateAxisAngle_2d": lambda L: L.RotateAxisAngle(torch.zeros(2, 2)),
    "rotate_on_spot_R": lambda L: L.rotate_on_spot(torch.eye(2), torch.zeros(3), torch.eye(3)),
    "rotate_on_spot_T": lambda L: L.rotate_on_spot(torch.eye(3), torch.zeros(4), torch.eye(3)),
    "rotate_on_spot_rotation": lambda L: L.rotate_on_spot(
        torch.eye(3), torch.zeros(3), torch.eye(4)
    ),
    "join_mixed_types": lambda L: L.join_cameras_as_batch(
        [L.FoVPerspectiveCameras(), L.PerspectiveCameras()]
    ),
    "join_not_cameras": lambda L: L.join_cameras_as_batch([L.FoVPerspectiveCameras(), 3]),
    "join_inconsistent_field": lambda L: L.join_cameras_as_batch(
        [L.PerspectiveCameras(image_size=((4, 4),)), L.PerspectiveCameras()]
    ),
    "join_shared_field": lambda L: L.join_cameras_as_batch(
        [L.FoVPerspectiveCameras(degrees=True), L.FoVPerspectiveCameras(degrees=False)]
    ),
    "join_in_ndc": lambda L: L.join_cameras_as_batch(
        [
            L.PerspectiveCameras(in_ndc=False, image_size=((4, 4),)),
            L.PerspectiveCameras(in_ndc=True, image_size=((4, 4),)),
        ]
    ),
    "locator_grid_sizes_count": lambda L: L.VolumeLocator(2, [(2, 2, 2)], "cpu"),
    "locator_grid_sizes_triple": lambda L: L.VolumeLocator(1, [(2, 2)], "cpu"),
    "locator_grid_sizes_tensor": lambda L: L.VolumeLocator(
        1, torch.ones(3, dtype=torch.long), "cpu"
    ),
    "locator_grid_sizes_type": lambda L: L.VolumeLocator(1, "abc", "cpu"),
    "locator_voxel_size": lambda L: L.VolumeLocator(1, (2, 2, 2), "cpu", voxel_size=(1.0, 2.0)),
    "locator_voxel_size_type": lambda L: L.VolumeLocator(1, (2, 2, 2), "cpu", voxel_size="a"),
    "locator_translation": lambda L: L.VolumeLocator(
        2, (2, 2, 2), "cpu", volume_translation=torch.zeros(3, 3)
    ),
    "validate_ndim": lambda L: L._validate_ray_bundle_variables(
        torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(2, 5)
    ),
    "validate_min_ndim": lambda L: L._validate_ray_bundle_variables(
        torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 5)
    ),
    "validate_leading": lambda L: L._validate_ray_bundle_variables(
        torch.zeros(1, 2, 3), torch.zeros(1, 3, 3), torch.zeros(1, 2, 5)
    ),
    "validate_last": lambda L: L._validate_ray_bundle_variables(
        torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.zeros(1, 2, 5)
    ),
}

ACCEPTED = {
    "validate_ok": lambda L: L._validate_ray_bundle_variables(
        torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(1, 2, 5)
    ),
    "locator_grid_sizes_tensor_ok": lambda L: L.VolumeLocator(
        2, torch.tensor([[2, 3, 4], [4, 3, 2]]), "cpu"
    ).get_coord_grid(),
    "locator_voxel_size_forms": lambda L: [
        L.VolumeLocator(2, (2, 3, 4), "cpu", voxel_size=v).get_coord_grid()
        for v in (2, 0.5, (1.0, 2.0, 3.0), torch.tensor([2.0]), torch.ones(3), torch.ones(2, 1))
    ],
    "join_single": lambda L: L.join_cameras_as_batch([L.FoVPerspectiveCameras()]),
    "rotate_on_spot_broadcast": lambda L: L.rotate_on_spot(
        torch.eye(3)[None].repeat(2, 1, 1), torch.zeros(2, 3), torch.eye(3)
    ),
    "RotateAxisAngle_0d": lambda L: L.RotateAxisAngle(torch.tensor(30.0), axis="z"),
    "RotateAxisAngle_int": lambda L: L.RotateAxisAngle(30),
    "so3_rotation_angle_empty": lambda L: L.so3_rotation_angle(torch.zeros(0, 3, 3)),
    "quaternion_broadcast": lambda L: L.quaternion_apply(torch.ones(2, 1, 4), torch.ones(5, 3)),
    "harmonic_zero_functions": lambda L: L.HarmonicEmbedding(0)(torch.ones(2, 3)),
    "euler_batch": lambda L: L.euler_angles_to_matrix(torch.zeros(2, 2, 3), "ZXZ"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_where_pytorch3d_refuses_with_the_same_class(name):
    theirs = _outcome(THEIRS, REFUSED[name])
    ours = _outcome(OURS, REFUSED[name])
    assert theirs is not None, f"PyTorch3D accepts {name}: the case is wrong"
    assert ours is not None and issubclass(ours, theirs), (
        f"{name}: voxrender {ours}, PyTorch3D {theirs}"
    )


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_where_pytorch3d_accepts(name):
    assert _outcome(THEIRS, ACCEPTED[name]) is None, f"PyTorch3D refuses {name}: the case is wrong"
    assert _outcome(OURS, ACCEPTED[name]) is None


# ------------------------------------------------------------------------------- warnings, types


@pytest.mark.parametrize(
    ("name", "modern"),
    [
        ("OpenGLPerspectiveCameras", "FoVPerspectiveCameras"),
        ("OpenGLOrthographicCameras", "FoVOrthographicCameras"),
        ("SfMPerspectiveCameras", "PerspectiveCameras"),
        ("SfMOrthographicCameras", "OrthographicCameras"),
    ],
)
def test_deprecated_cameras_warn_like_pytorch3d_and_return_the_modern_class(name, modern):
    for lib in (THEIRS, OURS):
        with pytest.warns(PendingDeprecationWarning, match=f"{name} is deprecated"):
            cams = getattr(lib, name)()
        assert type(cams) is getattr(lib, modern)
        assert inspect.isfunction(getattr(lib, name))
    ours = inspect.signature(getattr(OURS, name))
    theirs = inspect.signature(getattr(THEIRS, name))
    assert list(ours.parameters) == list(theirs.parameters)


def test_so3_exponential_map_warns_like_pytorch3d():
    for lib in (THEIRS, OURS):
        with pytest.warns(PendingDeprecationWarning, match="so3_exponential_map is deprecated"):
            lib.so3_exponential_map(torch.zeros(1, 3))


# Every public name's parameters, in order, with the same defaults.
_TRANSFORMS = compat.PROVIDED["pytorch3d.transforms"]
_OLDER = {"Rotate", "Scale", "Transform3d", "Translate", "so3_exp_map", "so3_log_map"}
SIGNATURES = [
    *sorted(n for n in dir(voxrender) if n in _TRANSFORMS and n not in _OLDER),
    "HarmonicEmbedding",
    "VolumeLocator",
    "_validate_ray_bundle_variables",
    "camera_to_eye_at_up",
    "join_cameras_as_batch",
    "rotate_on_spot",
]


def _params(obj):
    fn = obj.__init__ if inspect.isclass(obj) else obj
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature_matches_pytorch3d(name):
    ours, theirs = _params(getattr(OURS, name)), _params(getattr(THEIRS, name))
    assert [p[0] for p in ours] == [p[0] for p in theirs]
    for (n, a, _), (_, b, _) in zip(ours, theirs, strict=True):
        if torch.is_tensor(b):
            assert torch.equal(a, b), n
        else:
            assert a == b, n


def test_harmonic_embedding_buffers_and_output_dims_match():
    ours, theirs = OURS.HarmonicEmbedding(5, 0.3, False), THEIRS.HarmonicEmbedding(5, 0.3, False)
    assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys()
    for key, value in theirs.named_buffers():
        assert torch.equal(dict(ours.named_buffers())[key], value)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert ours.get_output_dim() == theirs.get_output_dim()
    assert ours.get_output_dim(7) == theirs.get_output_dim(7)
    assert OURS.HarmonicEmbedding.get_output_dim_static(
        4, 3, False
    ) == THEIRS.HarmonicEmbedding.get_output_dim_static(4, 3, False)


def test_volume_locator_attributes_match():
    args = (2, [(3, 4, 5), (2, 4, 3)], "cpu")
    ours, theirs = OURS.VolumeLocator(*args), THEIRS.VolumeLocator(*args)
    assert len(ours) == len(theirs)
    assert torch.equal(ours.get_grid_sizes(), theirs.get_grid_sizes())
    assert tuple(ours._resolution) == tuple(int(r) for r in theirs._resolution)
    assert ours._align_corners == theirs._align_corners
    assert ours.device == torch.device(theirs.device)
    d = torch.rand(2, 1, 3, 4, 5)
    assert isinstance(OURS.Volumes(d).locator, OURS.VolumeLocator)


# ------------------------------------------------------------------------------- coverage


def _is_module(obj) -> bool:
    return isinstance(obj, ModuleType)


def test_every_name_of_pytorch3d_transforms_is_served_and_covered():
    transforms = sys.modules["pytorch3d.transforms"]
    public = sorted(n for n in transforms.__all__ if not _is_module(getattr(transforms, n)))
    assert set(public) <= set(compat.PROVIDED["pytorch3d.transforms"]), sorted(
        set(public) - set(compat.PROVIDED["pytorch3d.transforms"])
    )
    covered = {c.split("_fast")[0] for c in CASES} | {
        "random_quaternions",
        "random_rotations",
        "random_rotation",
    }
    conversions = {n for n in public if n not in _OLDER}
    missing = {n for n in conversions if not any(c == n or c.startswith(n + "_") for c in covered)}
    assert not missing, f"no live parity case for {sorted(missing)}"


def test_every_module_level_helper_of_implicit_utils_is_served():
    utils = importlib.import_module("pytorch3d.renderer.implicit.utils")
    defined = sorted(
        n
        for n, obj in vars(utils).items()
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == utils.__name__
    )
    assert "_validate_ray_bundle_variables" in defined
    assert set(defined) <= set(compat.PROVIDED["pytorch3d.renderer.implicit.utils"])

"""The names added for PyTorch3D scripts, on their own.

Rotation conversions, so3 angles, se3
maps, RotateAxisAngle, camera helpers, deprecated names, HarmonicEmbedding, VolumeLocator.
Analytic cases, round trips (hypothesis), float64 gradcheck, bad input. Live parity with
PyTorch3D: tests/parity/test_parity_names.py; the compat aliases: tests/test_compat_names.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close
from hypothesis import given
from hypothesis import strategies as st

import voxrender as vr
from voxrender.implicit_utils import _validate_ray_bundle_variables

CONVENTIONS = [a + b + c for a in "XYZ" for b in "XYZ" for c in "XYZ" if b not in (a, c)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _axis_angles(seed: int, n: int, lo: float = 0.0, hi: float = 3.1) -> torch.Tensor:
    g = _gen(seed)
    axis = torch.nn.functional.normalize(
        torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1
    )
    return axis * (lo + (hi - lo) * torch.rand(n, 1, generator=g, dtype=torch.float64))


def _rotations(seed: int, n: int) -> torch.Tensor:
    return vr.axis_angle_to_matrix(_axis_angles(seed, n, 0.1, 3.0))


SEEDS = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------------------- analytic


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_quarter_turn_about_z(device, dtype):
    q = torch.tensor(
        [math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=dtype, device=device
    )
    R = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=dtype, device=device)
    assert_close(vr.quaternion_to_matrix(q), R)
    assert_close(vr.matrix_to_quaternion(R), q)
    aa = torch.tensor([0, 0, math.pi / 2], dtype=dtype, device=device)
    assert_close(vr.axis_angle_to_matrix(aa), R)
    assert_close(vr.axis_angle_to_matrix(aa, fast=True), R)
    assert_close(vr.matrix_to_axis_angle(R), aa)
    assert_close(vr.matrix_to_axis_angle(R, fast=True), aa)
    assert_close(vr.euler_angles_to_matrix(torch.stack([aa[2], aa[0], aa[1]]), "ZXY"), R)
    assert_close(
        vr.quaternion_apply(q, torch.tensor([1.0, 0, 0], dtype=dtype, device=device)), R[:, 0]
    )
    assert_close(vr.RotateAxisAngle(90.0, "Z", dtype=dtype).get_matrix()[0, :3, :3].to(device), R.T)


def test_identity_and_zero_are_exact():
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.equal(vr.axis_angle_to_matrix(torch.zeros(3, dtype=torch.float64)), eye)
    assert torch.equal(vr.matrix_to_axis_angle(eye), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(vr.matrix_to_axis_angle(eye, fast=True), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(
        vr.matrix_to_quaternion(eye), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    )
    assert torch.equal(vr.se3_exp_map(torch.zeros(1, 6)), torch.eye(4)[None])


def test_half_turn_fast_axis_angle_is_a_rotation_by_pi():
    for axis in ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.6, -0.8, 0]):
        aa = math.pi * torch.tensor(axis, dtype=torch.float64)
        R = vr.axis_angle_to_matrix(aa)
        out = vr.matrix_to_axis_angle(R, fast=True)
        assert torch.isfinite(out).all()
        assert_close(vr.axis_angle_to_matrix(out), R, atol=1e-7)


def test_standardize_and_multiply():
    q = torch.tensor([[-0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, 0.5]])
    assert (vr.standardize_quaternion(q)[:, 0] >= 0).all()
    ident = torch.tensor([1.0, 0, 0, 0])
    assert_close(vr.quaternion_raw_multiply(q, ident), q)
    assert_close(vr.quaternion_multiply(q, vr.quaternion_invert(q)), ident.expand(2, 4))


def test_so3_angles_and_acos_extrapolation():
    R = vr.axis_angle_to_matrix(
        torch.tensor([[0.0, 0.3, 0.0], [1.2, 0.0, 0.0]], dtype=torch.float64)
    )
    assert_close(vr.so3_rotation_angle(R), torch.tensor([0.3, 1.2], dtype=torch.float64), atol=1e-8)
    assert_close(
        vr.so3_rotation_angle(R, cos_angle=True),
        torch.cos(torch.tensor([0.3, 1.2], dtype=torch.float64)),
    )
    assert_close(vr.so3_relative_angle(R, R), torch.zeros(2, dtype=torch.float64), atol=2e-2)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64)
    out = vr.acos_linear_extrapolation(x, (-0.9, 0.9))
    assert_close(out[1:4], torch.acos(x[1:4]))
    slope = -1 / math.sqrt(1 - 0.81)
    assert_close(out[4], torch.tensor(math.acos(0.9) + slope * 1.1, dtype=torch.float64))
    assert_close(out[0], torch.tensor(math.acos(-0.9) + slope * -1.1, dtype=torch.float64))


def test_random_draws_are_rotations_and_deterministic():
    torch.manual_seed(0)
    a = vr.random_rotations(50, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert_close(a @ a.transpose(1, 2), eye)
    assert_close(torch.linalg.det(a), torch.ones(50, dtype=torch.float64))
    q = vr.random_quaternions(20)
    assert (q[:, 0] >= 0).all()
    assert_close(q.norm(dim=1), torch.ones(20))
    assert vr.random_rotation().shape == (3, 3)
    assert vr.random_quaternions(0).shape == (0, 4)
    torch.manual_seed(5)
    b = vr.random_rotation(torch.float64)
    torch.manual_seed(5)
    assert torch.equal(b, vr.random_rotations(1, torch.float64)[0])


def test_harmonic_embedding_layout():
    emb = vr.HarmonicEmbedding(n_harmonic_functions=2, omega_0=1.0, append_input=True)
    x = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    out = emb(x)
    f = torch.tensor([1.0, 2.0], dtype=torch.float64)
    scaled = (x[..., None] * f).reshape(1, -1)  # (1, D*K), coordinate-major
    assert_close(out, torch.cat([scaled.sin(), scaled.cos(), x], dim=-1), atol=1e-7)
    assert out.shape[-1] == emb.get_output_dim(2)
    cov = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    damp = torch.exp(-0.5 * (cov[..., None] * f**2)).reshape(1, -1)
    # cos(t) is sin(t + pi/2) with a float32 pi/2 and float32 frequencies, as in PyTorch3D.
    assert_close(
        emb(x, diag_cov=cov)[:, :8],
        torch.cat([scaled.sin() * damp, scaled.cos() * damp], -1),
        atol=1e-7,
    )
    assert emb.state_dict() == {}


# ------------------------------------------------------------------------------- round trips


@given(seed=SEEDS)
def test_quaternion_matrix_round_trip(seed):
    q = torch.randn(8, 4, generator=_gen(seed), dtype=torch.float64)
    q = vr.standardize_quaternion(torch.nn.functional.normalize(q, dim=-1))
    assert_close(vr.matrix_to_quaternion(vr.quaternion_to_matrix(q)), q, atol=1e-9)


@given(seed=SEEDS, fast=st.booleans())
def test_axis_angle_matrix_round_trip(seed, fast):
    aa = _axis_angles(seed, 8, 0.0, 3.1)
    back = vr.matrix_to_axis_angle(vr.axis_angle_to_matrix(aa, fast=fast), fast=fast)
    assert_close(back, aa, atol=1e-8)


@given(seed=SEEDS)
def test_axis_angle_quaternion_round_trip(seed):
    aa = _axis_angles(seed, 8, 0.0, 3.1)
    assert_close(vr.quaternion_to_axis_angle(vr.axis_angle_to_quaternion(aa)), aa, atol=1e-9)


@given(seed=SEEDS, convention=st.sampled_from(CONVENTIONS))
def test_euler_round_trip(seed, convention):
    R = _rotations(seed, 6)
    angles = vr.matrix_to_euler_angles(R, convention)
    assert_close(vr.euler_angles_to_matrix(angles, convention), R, atol=1e-9)


@given(seed=SEEDS)
def test_6d_round_trip(seed):
    R = _rotations(seed, 6)
    assert_close(vr.rotation_6d_to_matrix(vr.matrix_to_rotation_6d(R)), R, atol=1e-12)


@given(seed=SEEDS)
def test_se3_round_trip(seed):
    g = _gen(seed)
    log = torch.cat(
        [torch.randn(5, 3, generator=g, dtype=torch.float64), _axis_angles(seed, 5, 0.1, 3.0)], 1
    )
    assert_close(vr.se3_log_map(vr.se3_exp_map(log)), log, atol=1e-7)


@given(seed=SEEDS)
def test_quaternion_apply_agrees_with_the_matrix(seed):
    g = _gen(seed)
    q = torch.nn.functional.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=-1)
    p = torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert_close(vr.quaternion_apply(q, p), (vr.quaternion_to_matrix(q) @ p[..., None])[..., 0])


@given(seed=SEEDS)
def test_composition_matches_matrix_product(seed):
    g = _gen(seed)
    a, b = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    ab = vr.quaternion_to_matrix(vr.quaternion_multiply(a, b))
    assert_close(ab, vr.quaternion_to_matrix(a) @ vr.quaternion_to_matrix(b))


@given(seed=SEEDS)
def test_rotate_on_spot_keeps_the_camera_centre(seed):
    R, rot = _rotations(seed, 3), _rotations(seed + 1, 3)
    T = torch.randn(3, 3, generator=_gen(seed), dtype=torch.float64)
    new_R, new_T = vr.rotate_on_spot(R, T, rot)
    centre = lambda R, T: -(R @ T[:, :, None])[:, :, 0]  # noqa: E731 (C = -R T, column form)
    assert_close(centre(new_R, new_T), centre(R, T))
    assert_close(new_R, R @ rot.transpose(1, 2))


def test_camera_to_eye_at_up_inverts_look_at():
    eye = torch.tensor([[1.0, 2.0, 3.0]])
    R, T = vr.look_at_view_transform(eye=eye, at=((0.0, 0.5, 0.0),), up=((0.0, 1.0, 0.0),))
    e, at, up = vr.camera_to_eye_at_up(vr.get_world_to_view_transform(R=R, T=T))
    R2, T2 = vr.look_at_view_transform(eye=e, at=at, up=up)
    assert_close(e, eye)
    assert_close(R2, R)
    assert_close(T2, T)


# ------------------------------------------------------------------------------- gradcheck


def _d(*shape, seed=0):
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64, requires_grad=True)


_LAST_COLUMN = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)[None, :, None]

GRADCHECK = {
    "quaternion_to_matrix": lambda: (vr.quaternion_to_matrix, (_d(2, 4),)),
    "matrix_to_quaternion": lambda: (
        vr.matrix_to_quaternion,
        ((_rotations(1, 2) + 0.01 * _d(2, 3, 3)).detach().requires_grad_(),),
    ),
    "axis_angle_to_matrix": lambda: (vr.axis_angle_to_matrix, (_d(2, 3),)),
    "axis_angle_to_matrix_fast": lambda: (
        lambda a: vr.axis_angle_to_matrix(a, fast=True),
        (_d(2, 3),),
    ),
    "matrix_to_axis_angle": lambda: (vr.matrix_to_axis_angle, (_rotations(2, 2).requires_grad_(),)),
    "matrix_to_axis_angle_fast": lambda: (
        lambda m: vr.matrix_to_axis_angle(m, fast=True),
        (_rotations(2, 2).requires_grad_(),),
    ),
    "quaternion_to_axis_angle": lambda: (vr.quaternion_to_axis_angle, (_d(3, 4),)),
    "axis_angle_to_quaternion": lambda: (vr.axis_angle_to_quaternion, (_d(3, 3),)),
    "euler_angles_to_matrix": lambda: (lambda e: vr.euler_angles_to_matrix(e, "ZYX"), (_d(2, 3),)),
    "matrix_to_euler_angles": lambda: (
        lambda m: vr.matrix_to_euler_angles(m, "XZX"),
        (_rotations(3, 2).requires_grad_(),),
    ),
    "rotation_6d_to_matrix": lambda: (vr.rotation_6d_to_matrix, (_d(2, 6),)),
    "quaternion_apply": lambda: (vr.quaternion_apply, (_d(2, 4), _d(2, 3, seed=1))),
    "quaternion_multiply": lambda: (vr.quaternion_multiply, (_d(2, 4), _d(2, 4, seed=1))),
    "so3_rotation_angle": lambda: (vr.so3_rotation_angle, (_rotations(4, 3).requires_grad_(),)),
    "so3_relative_angle": lambda: (
        vr.so3_relative_angle,
        (_rotations(4, 2).requires_grad_(), _rotations(5, 2).requires_grad_()),
    ),
    "acos_linear_extrapolation": lambda: (
        vr.acos_linear_extrapolation,
        ((torch.linspace(-1.4, 1.3, 7, dtype=torch.float64) + 0.01).requires_grad_(),),
    ),
    "se3_exp_map": lambda: (vr.se3_exp_map, (_d(2, 6),)),
    "se3_log_map": lambda: (
        lambda m: vr.se3_log_map(torch.cat([m, _LAST_COLUMN.expand(len(m), 4, 1)], dim=2)),
        (vr.se3_exp_map(_d(2, 6))[:, :, :3].detach().requires_grad_(),),
    ),
    "rotate_on_spot": lambda: (
        vr.rotate_on_spot,
        (_rotations(6, 2).requires_grad_(), _d(2, 3), _rotations(7, 1).requires_grad_()),
    ),
    "RotateAxisAngle": lambda: (
        lambda a: vr.RotateAxisAngle(a, "Y", dtype=torch.float64).get_matrix(),
        (_d(3),),
    ),
    "HarmonicEmbedding": lambda: (
        lambda x, c: vr.HarmonicEmbedding(3)(x, diag_cov=c),
        (_d(2, 3), _d(2, 3, seed=1).abs().detach().requires_grad_()),
    ),
    "Volumes.locator": lambda: (
        lambda v, p: vr.Volumes(
            torch.zeros(1, 1, 2, 3, 4, dtype=torch.float64), voxel_size=v
        ).locator.world_to_local_coords(p),
        (_d(3).abs().add(0.5).detach().requires_grad_(), _d(1, 4, 3)),
    ),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck(name):
    fn, inputs = GRADCHECK[name]()
    assert torch.autograd.gradcheck(fn, inputs)


# ------------------------------------------------------------------------------- bad input

BAD = {
    "not a tensor": (
        lambda: vr.quaternion_to_matrix([1.0, 0, 0, 0]),
        TypeError,
        "quaternions: expected a torch.Tensor",
    ),
    "integer tensor": (
        lambda: vr.matrix_to_quaternion(torch.eye(3, dtype=torch.long)),
        TypeError,
        "matrix: expected a floating-point",
    ),
    "quaternion size": (
        lambda: vr.quaternion_to_matrix(torch.zeros(3)),
        ValueError,
        r"quaternions: expected shape \(\.\.\., 4\)",
    ),
    "matrix shape": (
        lambda: vr.matrix_to_quaternion(torch.zeros(3, 4)),
        ValueError,
        r"matrix: expected shape \(\.\.\., 3, 3\)",
    ),
    "6d size": (lambda: vr.rotation_6d_to_matrix(torch.zeros(5)), ValueError, "d6: expected shape"),
    "fast flag": (
        lambda: vr.axis_angle_to_matrix(torch.zeros(3), fast="yes"),
        TypeError,
        "fast: expected a bool",
    ),
    "convention type": (
        lambda: vr.euler_angles_to_matrix(torch.zeros(3), 3),
        TypeError,
        "convention: expected a string",
    ),
    "convention letters": (
        lambda: vr.matrix_to_euler_angles(torch.eye(3), "XYQ"),
        ValueError,
        "Invalid letter Q",
    ),
    "point size": (
        lambda: vr.quaternion_apply(torch.ones(4), torch.ones(2)),
        ValueError,
        "Points are not in 3D",
    ),
    "random count": (lambda: vr.random_rotations(-1), ValueError, "n: expected an int >= 0"),
    "random count type": (lambda: vr.random_quaternions(2.0), TypeError, "n: expected an int"),
    "random dtype": (
        lambda: vr.random_rotations(2, dtype=torch.long),
        TypeError,
        "dtype: expected a floating",
    ),
    "angle trace": (
        lambda: vr.so3_rotation_angle(3 * torch.eye(3)[None]),
        ValueError,
        "trace outside valid range",
    ),
    "angle shape": (
        lambda: vr.so3_rotation_angle(torch.eye(3)),
        ValueError,
        r"R: expected shape \(N, 3, 3\)",
    ),
    "relative batch": (
        lambda: vr.so3_relative_angle(torch.eye(3)[None], torch.eye(3).expand(2, 3, 3)),
        ValueError,
        "R2: expected the batch size",
    ),
    "acos bounds": (
        lambda: vr.acos_linear_extrapolation(torch.zeros(1), (0.2, 0.1)),
        ValueError,
        "lower bound",
    ),
    "acos bounds type": (
        lambda: vr.acos_linear_extrapolation(torch.zeros(1), 0.5),
        TypeError,
        "bounds: expected a pair",
    ),
    "se3 shape": (
        lambda: vr.se3_exp_map(torch.zeros(6)),
        ValueError,
        r"log_transform: expected shape \(N, 6\)",
    ),
    "se3 eps": (
        lambda: vr.se3_exp_map(torch.zeros(1, 6), eps=-1.0),
        ValueError,
        "eps: expected a number >= 0",
    ),
    "se3 log column": (
        lambda: vr.se3_log_map(
            torch.eye(4)[None].transpose(1, 2) + torch.eye(4)[None, :, [3, 0, 1, 2]]
        ),
        ValueError,
        "last column",
    ),
    "axis": (lambda: vr.RotateAxisAngle(1.0, axis="Q"), ValueError, "Expected axis to be one of"),
    "axis type": (lambda: vr.RotateAxisAngle(1.0, axis=0), TypeError, "axis: expected one of"),
    "angle 2d": (
        lambda: vr.RotateAxisAngle(torch.zeros(2, 2)),
        ValueError,
        "Expected tensor of shape",
    ),
    "rotate_on_spot R": (
        lambda: vr.rotate_on_spot(torch.eye(2), torch.zeros(3), torch.eye(3)),
        ValueError,
        "Invalid R",
    ),
    "rotate_on_spot batch": (
        lambda: vr.rotate_on_spot(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3), torch.eye(3)),
        ValueError,
        "T: expected the batch size",
    ),
    "rotate_on_spot rotation batch": (
        lambda: vr.rotate_on_spot(
            torch.eye(3).expand(2, 3, 3), torch.zeros(2, 3), torch.eye(3).expand(3, 3, 3)
        ),
        ValueError,
        "rotation: expected a batch size",
    ),
    "join empty": (
        lambda: vr.join_cameras_as_batch([]),
        ValueError,
        "cameras_list: expected a non-empty",
    ),
    "join type": (
        lambda: vr.join_cameras_as_batch([vr.FoVPerspectiveCameras(), vr.PerspectiveCameras()]),
        ValueError,
        "All cameras must be of the same type",
    ),
    "eye_at_up type": (
        lambda: vr.camera_to_eye_at_up(torch.eye(4)),
        TypeError,
        "world_to_view_transform: expected a Transform3d",
    ),
    "harmonic n": (
        lambda: vr.HarmonicEmbedding(-1),
        ValueError,
        "n_harmonic_functions: expected an int >= 0",
    ),
    "harmonic x": (
        lambda: vr.HarmonicEmbedding()(torch.ones(2, 3, dtype=torch.long)),
        TypeError,
        "x: expected a floating-point",
    ),
    "harmonic cov": (
        lambda: vr.HarmonicEmbedding()(torch.ones(2, 3), diag_cov=torch.ones(2, 2)),
        ValueError,
        "diag_cov: expected shape",
    ),
    "locator batch": (
        lambda: vr.VolumeLocator(-1, (2, 2, 2), "cpu"),
        ValueError,
        "batch_size: expected an int >= 0",
    ),
    "locator sizes": (
        lambda: vr.VolumeLocator(2, [(2, 2, 2)], "cpu"),
        ValueError,
        "grid_sizes: expected one",
    ),
    "locator voxel": (
        lambda: vr.VolumeLocator(1, (2, 2, 2), "cpu", voxel_size="big"),
        ValueError,
        r"voxel_size has to be either a 3-tuple .* voxel_size: got str 'big'",
    ),
    "validate": (
        lambda: _validate_ray_bundle_variables(
            torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4)
        ),
        ValueError,
        "at least 3 dimensions",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_refused_with_a_clear_message(name):
    fn, error, match = BAD[name]
    with pytest.raises(error, match=match):
        fn()


def test_deprecated_names_warn_and_build_the_modern_object():
    with pytest.warns(PendingDeprecationWarning, match="Use FoVPerspectiveCameras instead"):
        cams = vr.OpenGLPerspectiveCameras(fov=50.0)
    assert type(cams) is vr.FoVPerspectiveCameras
    with pytest.warns(PendingDeprecationWarning, match="Use OrthographicCameras instead"):
        assert type(vr.SfMOrthographicCameras()) is vr.OrthographicCameras
    with pytest.warns(PendingDeprecationWarning, match="Use so3_exp_map instead"):
        assert_close(vr.so3_exponential_map(torch.zeros(1, 3)), torch.eye(3)[None])


def test_volumes_locator_shares_the_volumes_state():
    vol = vr.Volumes(torch.rand(2, 1, 3, 4, 5), voxel_size=0.5)
    loc = vol.locator
    assert isinstance(loc, vr.VolumeLocator) and len(loc) == 2
    assert torch.equal(loc.get_coord_grid(), vol.get_coord_grid())
    loc._set_local_to_world_transform(voxel_size=2.0, volume_translation=(1.0, 0.0, 0.0))
    assert_close(
        vol.local_to_world_coords(torch.zeros(2, 1, 3)), torch.tensor([-1.0, 0, 0]).expand(2, 1, 3)
    )
    assert loc.to("cpu") is loc and loc.to("cpu", copy=True) is not loc
    clone = loc.clone()
    clone._set_local_to_world_transform(voxel_size=1.0)
    assert not torch.equal(clone.get_coord_grid(), loc.get_coord_grid())

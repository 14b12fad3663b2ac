"""Conversions between rotation representations: PyTorch3D's ``pytorch3d.transforms`` helpers.

Representations (matrices act on column vectors, ``R @ x``; quaternions are ``(w, x, y, z)``,
real part first):

- rotation matrices ``(..., 3, 3)``;
- quaternions ``(..., 4)`` (unit quaternions, "versors", for rotations);
- axis-angle 3-vectors ``(..., 3)``: direction = axis, norm = angle in radians (right hand);
- Euler angles ``(..., 3)`` with a convention of three letters from ``"XYZ"`` (the matrix is
  ``R_first @ R_second @ R_third``);
- the continuous 6D representation of Zhou et al. (CVPR 2019): the first two rows of ``R``.

The formulas follow the same route as PyTorch3D 0.7.9 (so values *and* gradients agree, also for
inputs that are not exactly rotations): matrices -> quaternions pick the best-conditioned of
the four candidate quaternions, axis-angle <-> quaternion go through ``sinc`` (finite at zero),
and the default axis-angle <-> matrix maps go through quaternions.

Dimensions:
    ``...``: any number of batch dimensions (broadcast where two inputs meet).
    ``N``: number of random draws.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_shape, describe

__all__ = [
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
    "standardize_quaternion",
]

_AXES = ("X", "Y", "Z")


def _check_vectors(x: object, name: str, size: int) -> torch.Tensor:
    check_floating(x, name)
    return check_shape(x, name, min_ndim=1, last=(size,), spec=f"(..., {size})")


def _check_matrices(x: object, name: str) -> torch.Tensor:
    check_floating(x, name)
    return check_shape(x, name, min_ndim=2, last=(3, 3), spec="(..., 3, 3)")


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise TypeError(f"{name}: expected a bool, got {describe(value)}")
    return bool(value)


def _check_convention(convention: object) -> str:
    """Three letters from ``"XYZ"``, the middle one different from its neighbours."""
    if not isinstance(convention, str):
        raise TypeError(
            f"convention: expected a string of 3 letters from 'XYZ', got {describe(convention)}"
        )
    if len(convention) != 3:
        raise ValueError(
            f"Convention must have 3 letters. convention: expected 3 letters from 'XYZ', "
            f"got {convention!r}"
        )
    if convention[1] in (convention[0], convention[2]):
        raise ValueError(
            f"Invalid convention {convention}. convention: expected a middle axis that differs "
            f"from the first and the last, got {convention!r}"
        )
    for letter in convention:
        if letter not in _AXES:
            raise ValueError(
                f"Invalid letter {letter} in convention string. convention: expected letters "
                f"from 'XYZ', got {convention!r}"
            )
    return convention


# ------------------------------------------------------------------------------- quaternions


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """Quaternions -> rotation matrices.

    The quaternion need not be normalised: ``q`` and ``c * q`` give the same matrix (the formula
    divides by ``|q|**2``).

    Args:
        quaternions: ``(..., 4)``, real part first.

    Returns:
        Rotation matrices ``(..., 3, 3)``.
    """
    _check_vectors(quaternions, "quaternions", 4)
    w, x, y, z = quaternions.unbind(-1)
    s = 2.0 / (quaternions * quaternions).sum(-1)  # (...,) = 2 / |q|^2
    entries = (
        1 - s * (y * y + z * z),
        s * (x * y - z * w),
        s * (x * z + y * w),
        s * (x * y + z * w),
        1 - s * (x * x + z * z),
        s * (y * z - x * w),
        s * (x * z - y * w),
        s * (y * z + x * w),
        1 - s * (x * x + y * y),
    )
    return torch.stack(entries, dim=-1).reshape(*quaternions.shape[:-1], 3, 3)


def _sqrt_of_positive(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero gradient where ``x <= 0`` (no infinite slope at 0)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices -> unit quaternions with a non-negative real part.

    Each of ``|w|, |x|, |y|, |z|`` follows from the diagonal; the quaternion is then read off the
    row of the largest one (``4 w q = (4 w^2, R21 - R12, R02 - R20, R10 - R01)`` and likewise),
    the best-conditioned choice.

    Args:
        matrix: ``(..., 3, 3)``.

    Returns:
        Quaternions ``(..., 4)``, real part first and ``>= 0``.

    Raises:
        ValueError: ``matrix`` is not ``(..., 3, 3)``.
    """
    _check_matrices(matrix, "matrix")
    batch = matrix.shape[:-2]
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = matrix.reshape(*batch, 9).unbind(-1)
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22),
        dim=-1,
    )  # (..., 4) = 4 * (w^2, x^2, y^2, z^2)
    twice_abs = _sqrt_of_positive(four_sq)  # (..., 4) = 2 * |q_i|
    # Row i holds 4 * q_i * q (with the squares from twice_abs, so the diagonal is exact).
    rows = torch.stack(
        (
            torch.stack((twice_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, twice_abs[..., 1] ** 2, m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, twice_abs[..., 2] ** 2, m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, twice_abs[..., 3] ** 2), dim=-1),
        ),
        dim=-2,
    )  # (..., 4, 4)
    # Rows with a small denominator are never picked; the floor only keeps them finite.
    floor = torch.tensor(0.1, dtype=twice_abs.dtype, device=twice_abs.device)
    candidates = rows / (2.0 * twice_abs[..., None].maximum(floor))  # (..., 4, 4)
    best = twice_abs.argmax(dim=-1)  # (...,)
    index = best[..., None, None].expand(*batch, 1, 4)
    return standardize_quaternion(torch.gather(candidates, -2, index)[..., 0, :])


def standardize_quaternion(quaternions: torch.Tensor) -> torch.Tensor:
    """Flip quaternions with a negative real part (``q`` and ``-q`` are the same rotation).

    Args:
        quaternions: ``(..., 4)``, real part first.

    Returns:
        Quaternions ``(..., 4)`` with a real part ``>= 0``.
    """
    _check_vectors(quaternions, "quaternions", 4)
    return torch.where(quaternions[..., :1] < 0, -quaternions, quaternions)


def quaternion_raw_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The Hamilton product ``a * b`` (no standardisation); batch dimensions broadcast.

    Args:
        a: quaternions ``(..., 4)``, real part first.
        b: quaternions ``(..., 4)``, real part first.

    Returns:
        The products ``(..., 4)``.
    """
    _check_vectors(a, "a", 4)
    _check_vectors(b, "b", 4)
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    w = aw * bw - ax * bx - ay * by - az * bz
    x = aw * bx + ax * bw + ay * bz - az * by
    y = aw * by - ax * bz + ay * bw + az * bx
    z = aw * bz + ax * by - ay * bx + az * bw
    return torch.stack((w, x, y, z), dim=-1)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The quaternion of the composed rotation ``a`` after ``b``, real part made ``>= 0``.

    Args:
        a: quaternions ``(..., 4)``, real part first.
        b: quaternions ``(..., 4)``, real part first.

    Returns:
        Standardised products ``(..., 4)``.
    """
    return standardize_quaternion(quaternion_raw_multiply(a, b))


def quaternion_invert(quaternion: torch.Tensor) -> torch.Tensor:
    """The conjugate ``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion.

    Args:
        quaternion: unit quaternions ``(..., 4)``, real part first.

    Returns:
        Quaternions ``(..., 4)``.
    """
    _check_vectors(quaternion, "quaternion", 4)
    signs = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=quaternion.dtype, device=quaternion.device)
    return quaternion * signs


def quaternion_apply(quaternion: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Rotate 3D points by quaternions: the vector part of ``q * (0, p) * conj(q)``.

    Args:
        quaternion: unit quaternions ``(..., 4)``, real part first.
        point: points ``(..., 3)``; batch dimensions broadcast with ``quaternion``'s.

    Returns:
        Rotated points ``(..., 3)``.

    Raises:
        ValueError: ``point`` is not ``(..., 3)``.
    """
    _check_vectors(quaternion, "quaternion", 4)
    check_floating(point, "point")
    if point.ndim == 0 or point.shape[-1] != 3:
        raise ValueError(
            f"Points are not in 3D, {tuple(point.shape)}. point: expected shape (..., 3), "
            f"got shape {tuple(point.shape)}"
        )
    pure = torch.cat((point.new_zeros(*point.shape[:-1], 1), point), dim=-1)  # (..., 4)
    rotated = quaternion_raw_multiply(
        quaternion_raw_multiply(quaternion, pure), quaternion_invert(quaternion)
    )
    return rotated[..., 1:]


# ------------------------------------------------------------------------------- axis-angle


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors -> unit quaternions ``(cos(t/2), sin(t/2) * axis)``.

    Args:
        axis_angle: ``(..., 3)``; the norm ``t`` is the angle in radians.

    Returns:
        Quaternions ``(..., 4)``, real part first.
    """
    _check_vectors(axis_angle, "axis_angle", 3)
    angle = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)  # (..., 1)
    # sin(t/2) / t = 0.5 * sinc(t / (2 pi)) with torch's normalised sinc: finite at t = 0.
    half_sin_over_angle = 0.5 * torch.sinc(angle * 0.5 / torch.pi)
    return torch.cat((torch.cos(0.5 * angle), axis_angle * half_sin_over_angle), dim=-1)


def quaternion_to_axis_angle(quaternions: torch.Tensor) -> torch.Tensor:
    """Quaternions -> axis-angle vectors.

    The half angle is ``atan2(|v|, w)``; a negative real part gives an angle above ``pi``.

    Args:
        quaternions: ``(..., 4)``, real part first.

    Returns:
        Axis-angle vectors ``(..., 3)``.
    """
    _check_vectors(quaternions, "quaternions", 4)
    vector = quaternions[..., 1:]  # (..., 3)
    half_angle = torch.atan2(
        torch.linalg.vector_norm(vector, dim=-1, keepdim=True), quaternions[..., :1]
    )  # (..., 1), in [0, pi]
    half_sin_over_angle = 0.5 * torch.sinc(half_angle / torch.pi)  # > 0 for half angles < pi
    return vector / half_sin_over_angle


def axis_angle_to_matrix(axis_angle: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """Axis-angle vectors -> rotation matrices.

    Args:
        axis_angle: ``(..., 3)``; the norm is the angle in radians (anticlockwise about the
            direction).
        fast: ``False`` (default) goes through quaternions; ``True`` uses Rodrigues' formula
            ``I + sinc(t) K + (1 - cos t) / t^2 K^2`` (same values, another gradient route).

    Returns:
        Rotation matrices ``(..., 3, 3)``.
    """
    fast = _check_flag(fast, "fast")
    _check_vectors(axis_angle, "axis_angle", 3)
    if not fast:
        return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1)
    skew = skew.reshape(*axis_angle.shape, 3)  # (..., 3, 3)
    angle = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    sq = angle * angle
    sq = torch.where(sq == 0, torch.ones_like(sq), sq)  # the K^2 term vanishes there anyway
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return (
        eye.expand(skew.shape)
        + torch.sinc(angle / torch.pi) * skew
        + ((1 - torch.cos(angle)) / sq) * (skew @ skew)
    )


def _isclose(a: torch.Tensor, value: float) -> torch.Tensor:
    """``torch.isclose(a, value)`` with torch's default tolerances (rtol 1e-5, atol 1e-8)."""
    return (a - value).abs() <= 1e-8 + 1e-5 * abs(value)


def matrix_to_axis_angle(matrix: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """Rotation matrices -> axis-angle vectors (angle in ``[0, pi]``).

    Args:
        matrix: ``(..., 3, 3)``.
        fast: ``False`` (default) goes through quaternions. ``True`` reads the angle from
            ``atan2(|skew part|, trace - 1)`` and the axis from the skew part, or, for angles
            within ``torch.isclose`` of ``pi``, from ``(R + I) / 2 = n n^T`` (the column of
            its largest diagonal entry, signed to make its first clearly non-zero entry
            positive, as PyTorch3D's first-row reading does where that row is usable).

    Returns:
        Axis-angle vectors ``(..., 3)``.

    Raises:
        ValueError: ``matrix`` is not ``(..., 3, 3)``.
    """
    fast = _check_flag(fast, "fast")
    _check_matrices(matrix, "matrix")
    if not fast:
        return quaternion_to_axis_angle(matrix_to_quaternion(matrix))
    omega = torch.stack(
        (
            matrix[..., 2, 1] - matrix[..., 1, 2],
            matrix[..., 0, 2] - matrix[..., 2, 0],
            matrix[..., 1, 0] - matrix[..., 0, 1],
        ),
        dim=-1,
    )  # (..., 3) = 2 sin(t) n
    norm = torch.linalg.vector_norm(omega, dim=-1, keepdim=True)  # (..., 1)
    trace = torch.diagonal(matrix, dim1=-2, dim2=-1).sum(-1, keepdim=True)
    angle = torch.atan2(norm, trace - 1)  # (..., 1)
    omega = torch.where(_isclose(angle, 0.0), torch.zeros_like(omega), omega)
    near_pi = _isclose(angle, torch.pi)  # (..., 1)
    # General rows: t n = omega / (2 sinc(t)); near-pi rows get a stand-in angle (finite).
    safe = torch.where(near_pi, torch.zeros_like(angle), angle)
    general = 0.5 * omega / torch.sinc(safe / torch.pi)
    # Near pi: (R + I) / 2 = n n^T; its column k is n_k n.
    eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
    outer = 0.5 * (matrix + eye)  # (..., 3, 3)
    k = torch.diagonal(outer, dim1=-2, dim2=-1).argmax(-1)  # (...,)
    column = torch.gather(outer, -1, k[..., None, None].expand(*k.shape, 3, 1))[..., 0]
    axis = column / torch.linalg.vector_norm(column, dim=-1, keepdim=True).clamp_min(1e-30)
    clear = axis.abs() > 1e-6  # (..., 3)
    first = clear.to(torch.int8).argmax(-1, keepdim=True)  # first clearly non-zero entry
    sign = torch.where(torch.gather(axis, -1, first) < 0, -1.0, 1.0).to(axis.dtype)
    at_pi = angle * axis * sign
    return torch.where(near_pi, at_pi, general)


# ------------------------------------------------------------------------------- Euler angles


def _elementary_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Matrices ``(..., 3, 3)`` of rotations by ``angle`` ``(...)`` about one coordinate axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        entries = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        entries = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        entries = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(entries, dim=-1).reshape(*angle.shape, 3, 3)


def euler_angles_to_matrix(euler_angles: torch.Tensor, convention: str) -> torch.Tensor:
    """Euler angles -> rotation matrices ``R_a(t0) @ R_b(t1) @ R_c(t2)`` for ``convention = "abc"``.

    Args:
        euler_angles: ``(..., 3)`` angles in radians.
        convention: three letters from ``"XYZ"`` (``"XYZ"``, ``"ZYZ"``, ...); the middle one
            must differ from both others.

    Returns:
        Rotation matrices ``(..., 3, 3)``.

    Raises:
        ValueError: a bad shape or convention.
    """
    check_floating(euler_angles, "euler_angles")
    if euler_angles.ndim == 0 or euler_angles.shape[-1] != 3:
        raise ValueError(
            "Invalid input euler angles. euler_angles: expected shape (..., 3), "
            f"got shape {tuple(euler_angles.shape)}"
        )
    _check_convention(convention)
    first, second, third = (
        _elementary_rotation(axis, angle)
        for axis, angle in zip(convention, euler_angles.unbind(-1), strict=True)
    )
    return (first @ second) @ third


def _outer_angle(axis: str, middle: str, entries: torch.Tensor, last: bool, tait_bryan: bool):
    """The first (``last=False``) or third Euler angle ``(...)`` from a column / row of ``R``.

    ``entries`` is the column ``R[..., :, i_last]`` (first angle) or the row ``R[..., i_first, :]``
    (third angle); two of its entries are a positive multiple of the angle's sine and cosine.
    """
    i, j = {"X": (2, 1), "Y": (0, 2), "Z": (1, 0)}[axis]
    if last:
        i, j = j, i
    cyclic = axis + middle in ("XY", "YZ", "ZX")
    if last == cyclic:
        return torch.atan2(entries[..., i], entries[..., j])
    if tait_bryan:
        return torch.atan2(-entries[..., j], entries[..., i])
    return torch.atan2(entries[..., j], -entries[..., i])


def matrix_to_euler_angles(matrix: torch.Tensor, convention: str) -> torch.Tensor:
    """Rotation matrices -> Euler angles (the inverse of :func:`euler_angles_to_matrix`).

    The middle angle is in ``[-pi/2, pi/2]`` (Tait-Bryan conventions, three different letters)
    or ``[0, pi]`` (proper Euler conventions, first letter = last); the others in ``(-pi, pi]``.

    Args:
        matrix: ``(..., 3, 3)``.
        convention: three letters from ``"XYZ"``, as for :func:`euler_angles_to_matrix`.

    Returns:
        Euler angles ``(..., 3)`` in radians.

    Raises:
        ValueError: a bad shape or convention.
    """
    _check_convention(convention)
    _check_matrices(matrix, "matrix")
    i0, i2 = _AXES.index(convention[0]), _AXES.index(convention[2])
    tait_bryan = i0 != i2
    if tait_bryan:
        sign = -1.0 if i0 - i2 in (-1, 2) else 1.0
        middle = torch.asin(torch.clamp(matrix[..., i0, i2], -1.0, 1.0) * sign)
    else:
        middle = torch.acos(torch.clamp(matrix[..., i0, i0], -1.0, 1.0))
    first = _outer_angle(convention[0], convention[1], matrix[..., i2], False, tait_bryan)
    third = _outer_angle(convention[2], convention[1], matrix[..., i0, :], True, tait_bryan)
    return torch.stack((first, middle, third), dim=-1)


# ------------------------------------------------------------------------------- 6D


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D representations -> rotation matrices by Gram-Schmidt (Zhou et al., CVPR 2019).

    The rows of the result are ``b1 = a1 / |a1|``, ``b2`` = the normalised part of ``a2``
    orthogonal to ``b1``, and ``b3 = b1 x b2``.

    Args:
        d6: ``(..., 6)``: two 3-vectors ``a1, a2``.

    Returns:
        Rotation matrices ``(..., 3, 3)``.
    """
    _check_vectors(d6, "d6", 6)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices -> their 6D representation: the first two rows, flattened.

    Args:
        matrix: ``(..., 3, 3)``.

    Returns:
        ``(..., 6)`` (a new tensor, not a view of ``matrix``).
    """
    _check_matrices(matrix, "matrix")
    return matrix[..., :2, :].clone().reshape(*matrix.shape[:-2], 6)


# ------------------------------------------------------------------------------- random draws


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {describe(n)}")
    if n < 0:
        raise ValueError(f"n: expected an int >= 0, got {n}")
    return n


def random_quaternions(
    n: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Uniformly random rotations as unit quaternions with a non-negative real part.

    Draws ``torch.randn(n, 4)`` (as PyTorch3D does: the same seed gives the same quaternions)
    and normalises each draw, flipping it to a non-negative real part.

    Args:
        n: number of quaternions ``N``.
        dtype: floating dtype (default: torch's default dtype).
        device: device (default: torch's default device).

    Returns:
        Quaternions ``(N, 4)``, real part first.
    """
    n = _check_count(n)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating torch.dtype or None, got {describe(dtype)}")
    draws = torch.randn((n, 4), dtype=dtype, device=device)  # (N, 4)
    norm = torch.sqrt((draws * draws).sum(1))  # (N,)
    signed = torch.where(draws[:, 0] < 0, -norm, norm)
    return draws / signed[:, None]


def random_rotations(
    n: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Uniformly random rotation matrices (from :func:`random_quaternions`: same draws).

    Args:
        n: number of matrices ``N``.
        dtype: floating dtype (default: torch's default dtype).
        device: device (default: torch's default device).

    Returns:
        Rotation matrices ``(N, 3, 3)``.
    """
    return quaternion_to_matrix(random_quaternions(n, dtype=dtype, device=device))


def random_rotation(
    dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """One uniformly random rotation matrix (the first of ``random_rotations(1)``).

    Args:
        dtype: floating dtype (default: torch's default dtype).
        device: device (default: torch's default device).

    Returns:
        A rotation matrix ``(3, 3)``.
    """
    return random_rotations(1, dtype, device)[0]

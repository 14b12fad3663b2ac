"""Batched 3D transforms in PyTorch3D's row-vector convention (``Transform3d`` and friends).

A transform is a batch of ``4 x 4`` matrices ``M`` that act on row vectors:
``[x', y', z', w'] = [x, y, z, 1] @ M`` and the transformed point is ``[x', y', z'] / w'``. For an
affine map the linear part sits in ``M[:3, :3]`` and the translation in the last row ``M[3, :3]``.

``a.compose(b)`` applies ``a`` first, then ``b`` (its matrix is ``M_a @ M_b``). Composition is
eager, so :meth:`Transform3d.get_matrix` only returns a stored tensor; each transform also keeps
its factors and how to invert each of them. :meth:`Transform3d.inverse` inverts each factor and
composes the inverses in reverse order, exactly where PyTorch3D does so in closed form
(translations, rotations as ``R^T``, scalings, unless the factor is the first one of a
composition) and numerically elsewhere: the same values and the same gradients, also for a
rotation matrix that is not exactly orthonormal. Mixed float dtypes promote; batch sizes 1 and
``N`` broadcast everywhere.

Dimensions:
    ``N``: transforms in the batch (1 broadcasts against any batch size).
    ``P``: points per batch element.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

from ._checks import (
    ArgumentTypeError,
    IndexOutOfRangeError,
    broadcast_batch_sizes,
    check_floating,
    check_positive_number,
    check_same_device,
    check_shape,
    check_shape_worded,
    describe,
)
from ._transform_helpers import affine_matrix, check_float_dtype, coordinate, make_device

__all__ = ["Rotate", "Scale", "SingularTransformError", "Transform3d", "Translate"]

# One factor of a composed transform: its matrix (N, 4, 4) and, when known in closed form, a
# function returning the inverse matrix (None: invert numerically).
_Factor = tuple[torch.Tensor, "Callable[[], torch.Tensor] | None"]


def _broadcast_matmul(a: torch.Tensor, b: torch.Tensor, what: str = "transforms") -> torch.Tensor:
    """``a @ b`` for stacks of matrices whose batch sizes are 1 or a common ``N``."""
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(
            f"{what}: expected batch sizes that broadcast (equal, or one of them 1), "
            f"got {a.shape[0]} and {b.shape[0]}"
        )
    return torch.matmul(a, b)


class SingularTransformError(ValueError, torch.linalg.LinAlgError):
    """A transform to invert is singular (a ``ValueError`` and ``torch.linalg.LinAlgError``)."""


def _numerical_inverse(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(N, 4, 4)`` matrices (``torch.linalg.inv``, PyTorch3D's gradients).

    On the CPU a singular matrix raises :class:`SingularTransformError`; on accelerators there
    is no error check (it would need a host sync).
    """
    if matrix.device.type == "cpu":
        try:
            return torch.linalg.inv(matrix)
        except torch.linalg.LinAlgError as e:
            raise SingularTransformError(
                f"Transform3d.inverse: expected invertible matrices, got a singular one "
                f"({str(e).splitlines()[0]})"
            ) from None
    return torch.linalg.inv_ex(matrix).inverse


def _cast(fn: Callable[[], torch.Tensor] | None, dtype: torch.dtype):
    return None if fn is None else (lambda: fn().to(dtype))


def _factor_inverse(factor: _Factor) -> torch.Tensor:
    matrix, inverse_fn = factor
    return inverse_fn() if inverse_fn is not None else _numerical_inverse(matrix)


class Transform3d:
    """A batch of ``N`` projective 3D transforms (row vectors: ``[p, 1] @ M``).

    Args:
        dtype: dtype of the identity transform made when ``matrix`` is None.
        device: device of the identity transform made when ``matrix`` is None.
        matrix: ``(4, 4)`` or ``(N, 4, 4)``; when given, its dtype and device are used.
    """

    def __init__(
        self,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        matrix: torch.Tensor | None = None,
    ) -> None:
        if matrix is None:
            check_float_dtype(dtype)
            eye = torch.eye(4, dtype=dtype, device=make_device(device)).view(1, 4, 4)
            self._set(eye, ((eye, lambda: eye),))
        else:
            check_floating(matrix, "matrix")
            check_shape_worded(
                matrix,
                "matrix",
                '"matrix" has to be a tensor of shape (minibatch, 4, 4) or (4, 4).',
                ndim=(2, 3),
                last=(4, 4),
                spec="(4, 4) or (N, 4, 4)",
            )
            matrix = matrix.reshape(-1, 4, 4)
            self._set(matrix, ((matrix, None),))

    # ------------------------------------------------------------------ construction helpers

    def _set(self, matrix: torch.Tensor, factors: tuple[_Factor, ...]) -> None:
        self._matrix = matrix
        self._factors = factors
        self.device = make_device(matrix.device)
        self.dtype = matrix.dtype

    @classmethod
    def _from_factors(cls, factors: Sequence[_Factor]) -> Transform3d:
        """A plain ``Transform3d`` composing ``factors`` left to right."""
        matrix = factors[0][0]
        for other, _ in factors[1:]:
            matrix = _broadcast_matmul(matrix, other)
        out = Transform3d.__new__(Transform3d)
        out._set(matrix, tuple(factors))
        return out

    @classmethod
    def _with_inverse(
        cls, matrix: torch.Tensor, inverse_fn: Callable[[], torch.Tensor]
    ) -> Transform3d:
        """A transform with matrix ``(N, 4, 4)`` whose inverse ``inverse_fn`` computes."""
        return cls._from_factors(((matrix, inverse_fn),))

    @classmethod
    def _composed(cls, matrix: torch.Tensor, factors: Sequence[_Factor]) -> Transform3d:
        """A composition whose product ``matrix`` ``(N, 4, 4)`` is already known."""
        out = Transform3d.__new__(Transform3d)
        out._set(matrix, tuple(factors))
        return out

    # ------------------------------------------------------------------ batch and accessors

    def __len__(self) -> int:
        return self._matrix.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={len(self)}, dtype={self.dtype}, device={self.device})"

    def __getitem__(self, index: int | list[int] | slice | torch.Tensor) -> Transform3d:
        """Select transforms by an int, a list of ints, a slice, or a Long/Bool tensor.

        The batch dimension is kept (an int selects a batch of one). Tensors are not copied.
        """
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, list, slice, torch.Tensor)):
            raise ArgumentTypeError(
                f"index: expected an int, a list of ints, a slice or a Long/Bool tensor, "
                f"got {describe(index)}"
            )
        if isinstance(index, int):
            index = [index]
        if isinstance(index, list):
            bad = [i for i in index if isinstance(i, bool) or not isinstance(i, int)]
            if bad:
                raise ArgumentTypeError(f"index: expected a list of ints, got {index!r}")
            out = [i for i in index if not -n <= i < n]
            if out:
                raise IndexOutOfRangeError(f"index: expected indices in [{-n}, {n}), got {out[0]}")
        return Transform3d(matrix=self._matrix[index])

    def get_matrix(self) -> torch.Tensor:
        """The composed matrices ``(N, 4, 4)`` (row-vector convention).

        This is the transform's own tensor (no copy, no work): do not modify it in place.
        """
        return self._matrix

    # ------------------------------------------------------------------ algebra

    def compose(self, *others: Transform3d) -> Transform3d:
        """The transform applying ``self`` first, then each of ``others`` in order.

        As in PyTorch3D, the result forgets how to invert ``self``'s own first factor in closed
        form (:meth:`inverse` inverts it numerically, whatever its kind), while the factors of
        ``others`` keep theirs; so ``Rotate(R).compose(t).inverse()`` uses ``inverse(R)`` and
        ``t.compose(Rotate(R)).inverse()`` uses ``R^T``, with PyTorch3D's gradients for any
        ``R``. Mixed float dtypes promote.
        """
        for i, other in enumerate(others):
            if not isinstance(other, Transform3d):
                raise ValueError(
                    f"Only possible to compose Transform3d objects; got {type(other)} "
                    f"(others[{i}]: expected a Transform3d, got {describe(other)})"
                )
            check_same_device(f"others[{i}]", other._matrix, self.device)
        dtype = self.dtype
        for other in others:
            dtype = torch.promote_types(dtype, other.dtype)
        head, *rest = self._factors
        factors = [(head[0], None), *rest]
        for other in others:
            factors.extend(other._factors)
        if any(m.dtype != dtype for m, _ in factors):
            factors = [(m.to(dtype), _cast(fn, dtype)) for m, fn in factors]
        return Transform3d._from_factors(factors)

    def inverse(self, invert_composed: bool = False) -> Transform3d:
        """The inverse transform.

        Args:
            invert_composed: if True, invert the composed matrix numerically; if False (default),
                invert each factor (in closed form for translations, rotations and scalings that
                were not the first factor of a composition, else numerically, as PyTorch3D does)
                and compose the inverses in reverse order.

        On the CPU a singular matrix to invert raises :class:`SingularTransformError` (a
        ``ValueError`` and ``torch.linalg.LinAlgError``, like PyTorch3D's error); on
        accelerators nothing is checked (a check would need a host sync) and the result holds
        inf/NaN.
        """
        if invert_composed:
            return Transform3d._from_factors(((_numerical_inverse(self._matrix), None),))
        inverted = [(_factor_inverse(f), None) for f in reversed(self._factors)]
        return Transform3d._from_factors(inverted)

    def stack(self, *others: Transform3d) -> Transform3d:
        """Concatenate the batches of ``self`` and ``others`` (``len`` adds up)."""
        for i, other in enumerate(others):
            if not isinstance(other, Transform3d):
                raise TypeError(f"others[{i}]: expected a Transform3d, got {describe(other)}")
        return Transform3d(matrix=torch.cat([t._matrix for t in (self, *others)], dim=0))

    # ------------------------------------------------------------------ application

    def _check_points(self, points: torch.Tensor, name: str) -> torch.Tensor:
        """Checked points; integer points are cast to the transform's dtype."""
        if not isinstance(points, torch.Tensor):
            raise ArgumentTypeError(
                f"{name}: expected a tensor of shape (P, 3) or (N, P, 3), got {describe(points)}"
            )
        if not points.is_floating_point():
            if points.dtype == torch.bool or points.is_complex():
                raise ArgumentTypeError(f"{name}: expected a real tensor, got dtype {points.dtype}")
            points = points.to(self.dtype)
        check_shape(points, name, ndim=(2, 3), last=(3,), spec="(P, 3) or (N, P, 3)")
        check_same_device(name, points, self.device)
        if points.ndim == 3:
            broadcast_batch_sizes(
                {f"{name}.shape[0]": points.shape[0], "len(transform)": len(self)}
            )
        return points

    def _matrix_for(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrix and the points in their promoted dtype (mixed float dtypes compute)."""
        dtype = torch.promote_types(self.dtype, points.dtype)
        return self._matrix.to(dtype), points.to(dtype)

    @staticmethod
    def _unbatch(out: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        # (P, 3) points through a single transform come back as (P, 3), like PyTorch3D.
        return out[0] if points.ndim == 2 and out.shape[0] == 1 else out

    def transform_points(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Apply the transforms to points, with the homogeneous divide.

        Args:
            points: ``(P, 3)`` or ``(N, P, 3)`` (a batch of 1 broadcasts either way).
            eps: if given, the homogeneous coordinate ``w`` is replaced by
                ``sign(w) * max(|w|, eps)`` (``w == 0`` counting as positive) before dividing.

        Returns:
            ``(N, P, 3)``, or ``(P, 3)`` when both the points are ``(P, 3)`` and ``N == 1``.
        """
        points = self._check_points(points, "points")
        if eps is not None:
            check_positive_number(eps, "eps", allow_zero=True)
        matrix, points = self._matrix_for(points)
        out = torch.matmul(points, matrix[:, :3, :]) + matrix[:, 3:, :]  # (N, P, 4)
        denom = out[..., 3:]  # (N, P, 1)
        if eps is not None:
            sign = torch.where(denom >= 0, 1.0, -1.0).to(denom.dtype)
            denom = sign * denom.abs().clamp(min=eps)
        return self._unbatch(out[..., :3] / denom, points)

    def transform_normals(self, normals: torch.Tensor) -> torch.Tensor:
        """Apply the transforms to normal vectors (by the inverse transpose of the linear part).

        Args:
            normals: ``(P, 3)`` or ``(N, P, 3)``.

        Returns:
            ``(N, P, 3)``, or ``(P, 3)`` when both the normals are ``(P, 3)`` and ``N == 1``.
        """
        normals = self._check_points(normals, "normals")
        matrix, normals = self._matrix_for(normals)
        # inverse(M^T) of the composed linear part, as PyTorch3D (its gradients for any M)
        inverse_t = _numerical_inverse(matrix[:, :3, :3].transpose(1, 2))  # (N, 3, 3)
        out = torch.matmul(normals, inverse_t)  # (N, P, 3)
        return self._unbatch(out, normals)

    # ------------------------------------------------------------------ builders

    def translate(self, *args, **kwargs) -> Transform3d:
        """``self`` followed by ``Translate(*args, **kwargs)``."""
        return self.compose(Translate(*args, dtype=self.dtype, device=self.device, **kwargs))

    def scale(self, *args, **kwargs) -> Transform3d:
        """``self`` followed by ``Scale(*args, **kwargs)``."""
        return self.compose(Scale(*args, dtype=self.dtype, device=self.device, **kwargs))

    def rotate(self, *args, **kwargs) -> Transform3d:
        """``self`` followed by ``Rotate(*args, **kwargs)``."""
        return self.compose(Rotate(*args, dtype=self.dtype, device=self.device, **kwargs))

    # ------------------------------------------------------------------ devices and copies

    def clone(self) -> Transform3d:
        """A copy with its own tensors (still attached to the autograd graph).

        As in PyTorch3D, the copy inverts every factor numerically.
        """
        factors = tuple((m.clone(), None) for m, _ in self._factors)
        out = Transform3d.__new__(Transform3d)
        out._set(self._matrix.clone(), factors)
        return out

    def to(
        self, device: torch.device | str, copy: bool = False, dtype: torch.dtype | None = None
    ) -> Transform3d:
        """This transform on ``device`` (and in ``dtype``); ``self`` if nothing changes and not ``copy``."""
        device = make_device(device)
        dtype = self.dtype if dtype is None else check_float_dtype(dtype)
        if not copy and device == self.device and dtype == self.dtype:
            return self
        source = self.clone()
        factors = tuple((m.to(device=device, dtype=dtype), None) for m, _ in source._factors)
        out = Transform3d.__new__(Transform3d)
        out._set(source._matrix.to(device=device, dtype=dtype), factors)
        return out

    def cpu(self) -> Transform3d:
        """``self.to("cpu")``."""
        return self.to("cpu")

    def cuda(self) -> Transform3d:
        """``self.to("cuda")``."""
        return self.to("cuda")


# ---------------------------------------------------------------------------------------------
# Elementary transforms
# ---------------------------------------------------------------------------------------------


def _resolve(
    values: Sequence[object], dtype: torch.dtype | None, device: torch.device | str | None
) -> tuple[torch.dtype, torch.device]:
    """Dtype and device of a transform built from ``values`` (tensors lead, else float32 / CPU)."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if dtype is None:
        dtype = torch.float32
        floating = [t.dtype for t in tensors if t.is_floating_point()]
        if floating:
            dtype = floating[0]
            for other in floating[1:]:
                dtype = torch.promote_types(dtype, other)
    else:
        check_float_dtype(dtype)
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    return dtype, make_device(device)


def _xyz(owner: str, x, y, z, dtype, device, *, allow_singleton: bool) -> torch.Tensor:  # (N, 3)
    """PyTorch3D's argument forms for Translate/Scale: an (N, 3) tensor, or x, y, z (scalars/(N,))."""
    if isinstance(x, torch.Tensor) and x.ndim == 2:
        if y is not None or z is not None:
            raise ValueError(
                f"{owner}: expected y and z to be None when x is an (N, 3) tensor, got y={describe(y)}, z={describe(z)}"
            )
        check_shape(x, "x", last=(3,), spec="(N, 3)")
        if x.dtype == torch.bool or x.is_complex():
            raise ArgumentTypeError(f"x: expected a real tensor, got dtype {x.dtype}")
        dtype, device = _resolve([x], dtype, device)  # integer tensors: float32, as PyTorch3D
        return x.to(device=device, dtype=dtype)
    if y is None and z is None and allow_singleton:
        y = z = x
    if y is None or z is None:
        raise TypeError(
            f"{owner}: expected x, y and z (or one (N, 3) tensor), got y={describe(y)}, z={describe(z)}"
        )
    dtype, device = _resolve([x, y, z], dtype, device)
    coords = [coordinate(v, k, dtype, device) for k, v in (("x", x), ("y", y), ("z", z))]
    n = broadcast_batch_sizes({k: c.shape[0] for k, c in zip("xyz", coords, strict=True)})
    return torch.stack([c.expand(n) for c in coords], dim=1)


class Translate(Transform3d):
    """Translations: ``p -> p + t``.

    Args:
        x: an ``(N, 3)`` tensor of offsets (then ``y`` and ``z`` stay None), or the x offsets
            (a number or a tensor of shape ``()`` / ``(N,)``).
        y, z: the y and z offsets, like ``x``.
        dtype: output dtype; None (default) follows the tensor arguments (float32 without any).
            PyTorch3D defaults to float32 and casts tensors to it.
        device: output device; None follows the tensor arguments (CPU without any).
    """

    def __init__(self, x, y=None, z=None, dtype: torch.dtype | None = None, device=None) -> None:
        offset = _xyz("Translate", x, y, z, dtype, device, allow_singleton=False)  # (N, 3)
        eye = torch.eye(3, dtype=offset.dtype, device=offset.device)[None]
        matrix = affine_matrix(eye, offset)
        self._set(matrix, ((matrix, lambda: affine_matrix(eye, -offset)),))


class Scale(Transform3d):
    """Axis-aligned scalings: ``p -> p * s``.

    Args:
        x: an ``(N, 3)`` tensor of factors, or the x factors (a number or a ``()`` / ``(N,)``
            tensor); alone, it scales all three axes.
        y, z: the y and z factors, like ``x``.
        dtype: output dtype; None (default) follows the tensor arguments (float32 without any).
        device: output device; None follows the tensor arguments (CPU without any).
    """

    def __init__(self, x, y=None, z=None, dtype: torch.dtype | None = None, device=None) -> None:
        factors = _xyz("Scale", x, y, z, dtype, device, allow_singleton=True)  # (N, 3)
        ones = factors.new_ones(factors.shape[0], 1)
        matrix = torch.diag_embed(torch.cat((factors, ones), dim=1))
        self._set(matrix, ((matrix, lambda: torch.diag_embed(torch.cat((1 / factors, ones), 1))),))


class Rotate(Transform3d):
    """Rotations: ``p -> p @ R`` (row vectors).

    Args:
        R: ``(3, 3)`` or ``(N, 3, 3)`` rotation matrices. On the CPU, matrices that are not
            orthonormal with determinant 1 (within ``orthogonal_tol``) raise a warning, as in
            PyTorch3D; on accelerators the check is skipped (it would need a host sync).
        dtype: output dtype; None (default) keeps ``R``'s.
        device: output device; None (default) keeps ``R``'s.
        orthogonal_tol: tolerance of the orthogonality check.
    """

    def __init__(
        self,
        R: torch.Tensor,
        dtype: torch.dtype | None = None,
        device=None,
        orthogonal_tol: float = 1e-5,
    ) -> None:
        if not isinstance(R, torch.Tensor):
            raise ArgumentTypeError(
                f"R: expected a tensor of shape (3, 3) or (N, 3, 3), got {describe(R)}"
            )
        if R.dtype == torch.bool or R.is_complex():
            raise ArgumentTypeError(f"R: expected a real tensor, got dtype {R.dtype}")
        check_shape(R, "R", ndim=(2, 3), last=(3, 3), spec="(3, 3) or (N, 3, 3)")
        check_positive_number(orthogonal_tol, "orthogonal_tol", allow_zero=True)
        dtype, device = _resolve([R], dtype, device)
        rot = R.reshape(-1, 3, 3).to(device=device, dtype=dtype)
        if rot.device.type == "cpu" and not torch.compiler.is_compiling():
            _warn_if_not_rotation(rot, orthogonal_tol)
        zero = rot.new_zeros(1, 3)
        matrix = affine_matrix(rot, zero)
        self._set(matrix, ((matrix, lambda: matrix.transpose(1, 2)),))


def _warn_if_not_rotation(rot: torch.Tensor, tol: float) -> None:
    """Warn (like PyTorch3D) when some ``rot`` ``(N, 3, 3)`` is not a proper rotation."""
    with torch.no_grad():
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        orthogonal = torch.allclose(rot @ rot.transpose(1, 2), eye.expand_as(rot), atol=tol)
        det = torch.linalg.det(rot)
        proper = torch.allclose(det, torch.ones_like(det))
    if not (orthogonal and proper):
        warnings.warn("R: expected valid rotation matrices, got some that are not", stacklevel=3)

"""Raymarchers: composite the densities and features sampled along each ray into one value.

The model is PyTorch3D's emission-absorption (EA) model. A density ``d_i`` in ``[0, 1]`` is the
*opacity* of the i-th sample of a ray (the fraction of light it stops), not a volumetric
extinction coefficient, so there is no step length. For one ray with samples ``i = 0 .. P-1``,
features ``f_i``, a surface thickness ``s >= 1`` and a small ``eps >= 0``::

    x_i  = (1 + eps) - d_i                      # light let through by sample i
    T_i  = prod_{j <= i - s} x_j                # transmittance (absorption function); = 1 for i < s
    w_i  = d_i * T_i                            # render weight of sample i
    features = sum_i w_i * f_i                  # (C,)
    opacity  = 1 - prod_i (1 - d_i)             # (1,), no eps here
    output   = cat(features, opacity)           # (C + 1,)

``T`` is the cumulative product of ``x`` shifted ``s`` places towards the far end, ``s`` ones
entering at the front: with ``s = 1`` the i-th sample is lit by everything strictly in front of
it, and larger ``s`` lets a surface ``s`` samples thick show through (weights then overlap and
may sum to more than one). ``eps`` keeps ``T`` away from an exact zero behind a fully opaque
sample (it has no effect in float32, where ``1 + 1e-10 == 1``); it also lets ``T`` grow very
slightly where ``d_i < eps``. With ``s = 1`` and ``eps = 0`` the weights sum to the opacity.

The absorption-only (AO) model keeps just ``opacity``.

Dimensions:
    ``...``: any leading (batch, spatial) dimensions: one ray per entry.
    ``P``: samples (points) per ray, ``n_pts_per_ray``.
    ``C``: feature channels per sample (e.g. 3 for RGB).
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ._checks import (
    ArgumentTypeError,
    check_density_range,
    check_same_device,
    describe,
    scalar_value,
)

__all__ = [
    "AbsorptionOnlyRaymarcher",
    "EmissionAbsorptionRaymarcher",
    "emission_absorption",
    "opacity_from_densities",
    "render_weights_from_densities",
    "transmittance_from_densities",
]


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_surface_thickness(surface_thickness: object) -> int:
    """A positive int (PyTorch3D slices with it, so a bool counts as 0 or 1)."""
    if not isinstance(surface_thickness, numbers.Integral):
        raise ArgumentTypeError(
            f"surface_thickness: expected a positive int, got {describe(surface_thickness)}"
        )
    if surface_thickness < 1:
        raise ValueError(f"surface_thickness: expected a positive int, got {surface_thickness!r}")
    return int(surface_thickness)


def _check_eps(eps: object) -> float:
    """A finite real number (a one-element tensor is read once); PyTorch3D takes any sign."""
    return scalar_value(eps, "eps")


def _check_strict(strict: object) -> bool:
    if not isinstance(strict, (bool, int)) or strict not in (0, 1):
        raise ArgumentTypeError(f"strict_densities: expected a bool, got {describe(strict)}")
    return bool(strict)


def _as_real(value: object, name: str) -> torch.Tensor:
    """A real tensor; integer ones become the default float dtype (what PyTorch3D's arithmetic
    with Python floats makes of them)."""
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(
            f"{name} has to be an instance of torch.Tensor: got {describe(value)}"
        )
    if value.dtype == torch.bool or value.is_complex():
        raise ArgumentTypeError(
            f"{name}: expected a real (floating-point or integer) tensor, got dtype {value.dtype}"
        )
    return value if value.is_floating_point() else value.to(torch.get_default_dtype())


def _check_ray_densities(densities: object, name: str, strict: bool) -> torch.Tensor:
    """Per-ray densities ``(..., P)``: a real tensor, at least 1-D; warns outside [0, 1]."""
    densities = _as_real(densities, name)
    if densities.ndim < 1:
        raise ValueError(f"{name}: expected shape (..., P), got shape {tuple(densities.shape)}")
    check_density_range(densities, name, strict=strict)
    return densities


def _check_raymarcher_densities(rays_densities: object, strict: bool) -> torch.Tensor:
    """Raymarcher densities ``(..., P, 1)``; values outside [0, 1] warn (PyTorch3D's check)."""
    rays_densities = _as_real(rays_densities, "rays_densities")
    if rays_densities.ndim < 2 or rays_densities.shape[-1] != 1:
        raise ValueError(
            "The size of the last dimension of rays_densities has to be one. rays_densities: "
            f"expected shape (..., P, 1), got shape {tuple(rays_densities.shape)}"
        )
    return rays_densities


def _check_raymarcher_features(rays_features: object, rays_densities: torch.Tensor) -> torch.Tensor:
    """Raymarcher features ``(..., P, C)`` matching ``rays_densities (..., P, 1)``."""
    rays_features = _as_real(rays_features, "rays_features")
    want = tuple(rays_densities.shape[:-1])
    if rays_features.ndim != rays_densities.ndim or tuple(rays_features.shape[:-1]) != want:
        spec = "(" + ", ".join(map(str, want)) + ", C)"
        raise ValueError(
            "The first to previous to last dimensions of rays_features have to be the same as "
            f"all dimensions of rays_densities. rays_features: expected shape {spec} to match "
            f"rays_densities {tuple(rays_densities.shape)}, got shape {tuple(rays_features.shape)}"
        )
    check_same_device("rays_features", rays_features, rays_densities.device)
    return rays_features


# ---------------------------------------------------------------------------------------------
# Unchecked kernels (inputs already validated)
# ---------------------------------------------------------------------------------------------


def _transmittance(densities: torch.Tensor, surface_thickness: int, eps: float) -> torch.Tensor:
    """``T_i = prod_{j <= i - s} ((1 + eps) - d_j)`` for ``densities (..., P)`` -> ``(..., P)``."""
    n_pts = densities.shape[-1]
    keep = max(n_pts - surface_thickness, 0)
    # Shift before the scan: cumprod of (s ones, x_0 .. x_{P-s-1}) equals the shifted cumprod of
    # x exactly (multiplying by 1 is exact), with one temporary fewer than scan-then-shift.
    passed = (1.0 + eps) - densities[..., :keep]  # (..., P - s)
    passed = F.pad(passed, (n_pts - keep, 0), value=1.0)  # (..., P)
    return torch.cumprod(passed, dim=-1)


def _opacity(densities: torch.Tensor) -> torch.Tensor:
    """``1 - prod_i (1 - d_i)`` for ``densities (..., P)`` -> ``(..., 1)``."""
    return 1.0 - torch.prod(1.0 - densities, dim=-1, keepdim=True)


def _emission_absorption(
    rays_densities: torch.Tensor, rays_features: torch.Tensor, surface_thickness: int, eps: float
) -> torch.Tensor:
    # squeeze rather than [..., 0]: its backward is a view too, not a zero-filled copy
    densities = rays_densities.squeeze(-1)  # (..., P)
    weights = densities * _transmittance(densities, surface_thickness, eps)  # (..., P)
    dtype = torch.promote_types(weights.dtype, rays_features.dtype)
    # Weighted sum over P as a batched (1, P) @ (P, C) product: no (..., P, C) temporary.
    weights = weights.to(dtype).unsqueeze(-2)  # (..., 1, P)
    features = torch.matmul(weights, rays_features.to(dtype)).squeeze(-2)  # (..., C)
    opacity = _opacity(densities).to(dtype)  # (..., 1)
    return torch.cat((features, opacity), dim=-1)


def _reversed_cumsum(x: torch.Tensor) -> torch.Tensor:
    """``out_j = sum_{i >= j} x_i`` along the last dimension (no cancellation)."""
    return x.flip(-1).cumsum(-1).flip(-1)


def _emission_absorption_backward(
    densities: torch.Tensor,
    features: torch.Tensor,
    grad_out: torch.Tensor,
    surface_thickness: int,
    grad_densities: torch.Tensor,
    grad_features: torch.Tensor,
) -> None:
    """Gradient of :func:`_emission_absorption` (with ``1 + eps == 1``), written out.

    With ``x_j = 1 - d_j``, ``C = cumprod(x)``, ``T_i = C_{i-s}`` (1 for ``i < s``), weights
    ``w_i = d_i T_i``, features ``F = sum_i w_i f_i`` and opacity ``O = 1 - C_{P-1}``, and the
    output's gradient split into ``gF (C,)`` and ``gO``::

        dL/df_i = w_i gF
        dL/dd_i = T_i (f_i . gF) - dL/dx_i
        dL/dC_j = d_{j+s} (f_{j+s} . gF)  [j + s < P]  - gO  [j = P - 1]
        dL/dx_j = sum_{i >= j} dL/dC_i C_i / x_j

    the last line being autograd's rule for ``cumprod`` (PyTorch3D's gradients go through it).
    Where ``x_j = 0`` (a density of exactly 1) the division is replaced by its limit: the first
    such ``j`` of a ray gets ``sum_{i >= j} dL/dC_i C'_i`` with ``C'`` the cumulative product
    skipping ``x_j``, and the later ones 0.

    Args:
        densities: ``(n, P)``; features ``(n, P, C)``; grad_out ``(n, C + 1)``.
        surface_thickness: ``s >= 1``.
        grad_densities: ``(n, P)`` written with ``dL/dd``.
        grad_features: ``(C, n, P)`` written with ``dL/df`` (channel-major).
    """
    n_pts = densities.shape[-1]
    lag = min(surface_thickness, n_pts)
    passed = 1.0 - densities  # (n, P): x
    cum = torch.cumprod(passed, dim=-1)  # (n, P): C
    lit = torch.ones_like(densities)  # (n, P): T
    lit[:, lag:] = cum[:, : n_pts - lag]
    grad_f, grad_o = grad_out[:, :-1], grad_out[:, -1]
    weights = densities * lit  # (n, P)
    for c in range(features.shape[-1]):
        torch.mul(weights, grad_f[:, c, None], out=grad_features[c])
    shade = torch.bmm(features, grad_f[:, :, None]).squeeze(-1)  # (n, P): f_i . gF
    grad_cum = torch.zeros_like(densities)  # (n, P): dL/dC
    torch.mul(shade[:, lag:], densities[:, lag:], out=grad_cum[:, : n_pts - lag])
    grad_cum[:, -1] -= grad_o
    grad_passed = _reversed_cumsum(grad_cum * cum).div_(passed)  # (n, P): dL/dx
    zero = passed == 0
    if bool(zero.any()):  # CPU-only caller: reading the flag is not a device sync
        first = zero & (zero.cumsum(-1) == 1)
        skipped = torch.cumprod(torch.where(first, 1.0, passed), dim=-1)  # C'
        limit = _reversed_cumsum(grad_cum * skipped)
        grad_passed = torch.where(zero, torch.where(first, limit, 0.0), grad_passed)
    torch.mul(shade, lit, out=grad_densities).sub_(grad_passed)


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


def transmittance_from_densities(
    densities: torch.Tensor,
    surface_thickness: int = 1,
    eps: float = 1e-10,
    *,
    strict_densities: bool = False,
) -> torch.Tensor:
    """Transmittance (PyTorch3D's "absorption") reaching each sample of each ray.

    Args:
        densities: per-sample opacities, meant to lie in [0, 1], ``(..., P)``; values outside
            warn (``strict_densities``: raise ``ValueError``) and are used as they are.
        surface_thickness: how many samples the transmittance lags behind, a positive int.
        eps: number added to ``1 - d`` in the product.
        strict_densities: raise instead of warning for densities outside [0, 1].

    Returns:
        ``T_i = prod_{j <= i - surface_thickness} ((1 + eps) - d_j)``, ``(..., P)``; the first
        ``surface_thickness`` entries are 1.
    """
    surface_thickness = _check_surface_thickness(surface_thickness)
    eps = _check_eps(eps)
    densities = _check_ray_densities(densities, "densities", _check_strict(strict_densities))
    return _transmittance(densities, surface_thickness, eps)


def render_weights_from_densities(
    densities: torch.Tensor,
    surface_thickness: int = 1,
    eps: float = 1e-10,
    *,
    strict_densities: bool = False,
) -> torch.Tensor:
    """Emission-absorption weight ``w_i = d_i * T_i`` of each sample of each ray.

    The transmittance ``T_i`` and the arguments (checked the same way) are those of
    :func:`transmittance_from_densities`: ``densities`` ``(..., P)``, the lag
    ``surface_thickness``, ``eps`` and ``strict_densities``.

    Returns:
        The weights, ``(..., P)``.
    """
    transmittance = transmittance_from_densities(
        densities, surface_thickness, eps, strict_densities=strict_densities
    )
    return _as_real(densities, "densities") * transmittance


def opacity_from_densities(
    densities: torch.Tensor, *, strict_densities: bool = False
) -> torch.Tensor:
    """Fraction of light each ray loses on its way through all of its samples.

    Args:
        densities: per-sample opacities, meant to lie in [0, 1] (see
            :func:`transmittance_from_densities`), ``(..., P)``.
        strict_densities: raise instead of warning for densities outside [0, 1].

    Returns:
        ``1 - prod_i (1 - d_i)``, ``(..., 1)``; in [0, 1] for densities in [0, 1].
    """
    densities = _check_ray_densities(densities, "densities", _check_strict(strict_densities))
    return _opacity(densities)


def emission_absorption(
    rays_densities: torch.Tensor,
    rays_features: torch.Tensor,
    surface_thickness: int = 1,
    eps: float = 1e-10,
    *,
    strict_densities: bool = False,
) -> torch.Tensor:
    """Emission-absorption render of each ray: weighted features, then opacity.

    Args:
        rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``; values
            outside warn (``strict_densities``: raise ``ValueError``), as in PyTorch3D.
        rays_features: per-sample features, ``(..., P, C)``.
        surface_thickness: how many samples the transmittance lags behind, a positive int.
        eps: number added to ``1 - d`` in the transmittance (not in the opacity).
        strict_densities: raise instead of warning for densities outside [0, 1].

    Returns:
        ``cat(sum_i w_i f_i, 1 - prod_i (1 - d_i))``, ``(..., C + 1)``, in the promoted dtype of
        the two inputs.
    """
    surface_thickness = _check_surface_thickness(surface_thickness)
    eps = _check_eps(eps)
    strict = _check_strict(strict_densities)
    rays_densities = _check_raymarcher_densities(rays_densities, strict)
    rays_features = _check_raymarcher_features(rays_features, rays_densities)
    check_density_range(rays_densities, "rays_densities", strict=strict)
    return _emission_absorption(rays_densities, rays_features, surface_thickness, eps)


# ---------------------------------------------------------------------------------------------
# PyTorch3D-compatible modules
# ---------------------------------------------------------------------------------------------


class EmissionAbsorptionRaymarcher(torch.nn.Module):
    """Emission-absorption raymarcher (PyTorch3D's), see the module docstring for the model.

    Args:
        surface_thickness: how many samples the transmittance lags behind the densities, a
            positive int; 1 lets each sample be lit by everything strictly in front of it.
        strict_densities: a voxrender option. Densities outside [0, 1] (or NaN) make
            PyTorch3D's raymarchers warn and render them anyway; voxrender does the same by
            default, and raises ``ValueError`` instead with ``strict_densities=True`` (which
            costs one host-device sync per call on CUDA; the default never syncs there, see
            :func:`voxrender._checks.check_density_range`).
    """

    def __init__(self, surface_thickness: int = 1, *, strict_densities: bool = False):
        super().__init__()
        self.surface_thickness = _check_surface_thickness(surface_thickness)
        self.strict_densities = _check_strict(strict_densities)

    def forward(
        self,
        rays_densities: torch.Tensor,
        rays_features: torch.Tensor,
        eps: float = 1e-10,
        **kwargs,
    ) -> torch.Tensor:
        """Render each ray.

        Args:
            rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``.
            rays_features: per-sample features, ``(..., P, C)``.
            eps: number added to ``1 - d`` in the transmittance.
            **kwargs: ignored (e.g. the ``ray_bundle`` a renderer passes along).

        Returns:
            Features then opacity of each ray, ``(..., C + 1)``.
        """
        return emission_absorption(
            rays_densities,
            rays_features,
            self.surface_thickness,
            eps,
            strict_densities=self.strict_densities,
        )

    def extra_repr(self) -> str:
        return f"surface_thickness={self.surface_thickness}"


class AbsorptionOnlyRaymarcher(torch.nn.Module):
    """Absorption-only raymarcher (PyTorch3D's): the opacity of each ray and nothing else.

    Args:
        strict_densities: raise ``ValueError`` instead of warning for densities outside
            [0, 1] (see :class:`EmissionAbsorptionRaymarcher`).
    """

    def __init__(self, *, strict_densities: bool = False):
        super().__init__()
        self.strict_densities = _check_strict(strict_densities)

    def forward(self, rays_densities: torch.Tensor, **kwargs) -> torch.Tensor:
        """Opacity of each ray.

        Args:
            rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``.
            **kwargs: ignored (e.g. ``rays_features`` or the ``ray_bundle`` of a renderer).

        Returns:
            ``1 - prod_i (1 - d_i)``, ``(..., 1)``.
        """
        strict = _check_strict(getattr(self, "strict_densities", False))
        rays_densities = _check_raymarcher_densities(rays_densities, strict)
        check_density_range(rays_densities, "rays_densities", strict=strict)
        return _opacity(rays_densities.squeeze(-1))

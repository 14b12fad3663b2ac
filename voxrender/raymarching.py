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

Opt-in extensions (voxrender only; the defaults are PyTorch3D's model above, unchanged):

- ``density_mode="extinction"``: the densities are extinction coefficients ``sigma_i >= 0``
  (NeRF's model) and the opacity of sample ``i`` is ``d_i = 1 - exp(-sigma_i * delta_i)`` with
  the step ``delta_i = t_{i+1} - t_i`` between consecutive ray lengths (in the units of the
  lengths: with PyTorch3D's raysamplers, camera depth) and ``delta_{P-1} = last_step_length``
  (default ``1e10``, as NeRF: the last sample stops the light that reaches it wherever
  ``sigma > 0``). Everything else is the model above with these ``d_i``; the opacity is then
  ``1 - exp(-sum_i sigma_i delta_i)``.
- ``background``: a colour ``b (C,)`` behind the volume: ``features + (1 - opacity) * b``.
- ``return_depth``: one more channel after the opacity, the expected depth
  ``sum_i w_i t_i`` (rays that hit nothing have depth 0; with ``s = 1`` and ``eps = 0``
  dividing by the opacity gives the mean depth of the visible surface), or with
  ``normalize_depth`` that weighted mean itself, ``sum_i w_i t_i / sum_i w_i`` (0 where all
  weights are 0).

The ray lengths ``t (..., P)`` these need are the ``rays_lengths`` keyword, or the lengths of
the ``ray_bundle`` keyword that the renderers pass to the raymarcher.

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
    check_choice,
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

DENSITY_MODES = ("opacity", "extinction")
"""What the raymarchers' densities mean: PyTorch3D's per-sample opacities in [0, 1]
(``"opacity"``, the default) or extinction coefficients (``"extinction"``, opt-in)."""


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
    """A real tensor; integer ones become the default float dtype.

    That is what PyTorch3D's arithmetic with Python floats makes of them.
    """
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


def _check_density_mode(density_mode: object) -> str:
    return check_choice(density_mode, "density_mode", DENSITY_MODES)


def _check_last_step(last_step_length: object) -> float:
    value = scalar_value(last_step_length, "last_step_length")
    if value < 0:
        raise ValueError(f"last_step_length: expected a number >= 0, got {value!r}")
    return value


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ArgumentTypeError(f"{name}: expected a bool, got {describe(value)}")
    return bool(value)


def _check_background(background: object) -> torch.Tensor | None:
    """None, or a colour ``(C,)``: a real 1-D tensor or a sequence of numbers.

    A tensor is kept as is, so it may be learnt; a sequence of numbers is made a float64
    tensor, cast to the features' dtype at use.
    """
    if background is None:
        return None
    if not isinstance(background, torch.Tensor):
        if isinstance(background, (str, bytes)) or not hasattr(background, "__len__"):
            raise ArgumentTypeError(
                f"background: expected None, a tensor of shape (C,) or a sequence of C numbers, "
                f"got {describe(background)}"
            )
        try:
            background = torch.tensor(
                [scalar_value(v, "background") for v in background], dtype=torch.float64
            )  # float64: cast to the features' dtype at use, as the numbers themselves
        except ArgumentTypeError as error:
            raise ArgumentTypeError(
                f"background: expected a sequence of numbers, got {describe(background)}"
            ) from error
    if not background.is_floating_point():
        raise ArgumentTypeError(
            f"background: expected a floating-point tensor, got dtype {background.dtype}"
        )
    if background.ndim != 1 or background.shape[0] == 0:
        raise ValueError(
            f"background: expected shape (C,), one value per feature channel, got shape "
            f"{tuple(background.shape)}"
        )
    return background


def _rays_lengths(kwargs: dict, rays_densities: torch.Tensor, why: str) -> torch.Tensor:
    """The ray lengths ``(..., P)`` of the samples of ``rays_densities (..., P, 1)``.

    The ``rays_lengths`` keyword, else ``ray_bundle.lengths``.
    """
    lengths = kwargs.get("rays_lengths")
    name = "rays_lengths"
    if lengths is None and kwargs.get("ray_bundle") is not None:
        lengths, name = getattr(kwargs["ray_bundle"], "lengths", None), "ray_bundle.lengths"
    if lengths is None:
        raise ValueError(
            f"rays_lengths: {why} needs the ray lengths (..., P): expected a rays_lengths or "
            "ray_bundle keyword (the renderers pass ray_bundle), got neither"
        )
    lengths = _as_real(lengths, name)
    want = tuple(rays_densities.shape[:-1])
    if tuple(lengths.shape) != want:
        raise ValueError(
            f"{name}: expected shape {want} to match rays_densities "
            f"{tuple(rays_densities.shape)}, got shape {tuple(lengths.shape)}"
        )
    check_same_device(name, lengths, rays_densities.device)
    return lengths


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


def _opacities_from_extinction(
    sigmas: torch.Tensor, lengths: torch.Tensor, last_step_length: float
) -> torch.Tensor:
    """``d_i = 1 - exp(-sigma_i * delta_i)`` for ``sigmas (..., P)``, ``lengths (..., P)``.

    ``delta_i = t_{i+1} - t_i`` and ``delta_{P-1} = last_step_length``.
    """
    dtype = torch.promote_types(sigmas.dtype, lengths.dtype)
    steps = _extinction_steps(lengths.to(dtype), last_step_length)  # (..., P)
    return -torch.expm1(-sigmas.to(dtype) * steps)  # (..., P), exact near 0


def _extinction_steps(lengths: torch.Tensor, last_step_length: float) -> torch.Tensor:
    """``delta_i = t_{i+1} - t_i`` and ``delta_{P-1} = last_step_length``: ``(..., P)``."""
    steps = lengths[..., 1:] - lengths[..., :-1]  # (..., P - 1)
    return F.pad(steps, (0, 1), value=last_step_length)  # (..., P)


def _composite_background(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``features + (1 - opacity) * background`` for EA ``images (..., C + 1)``: ``(..., C + 1)``.

    ``background (C,)`` is already checked; the opacity is unchanged.
    """
    features, opacity = images[..., :-1], images[..., -1:]  # (..., C), (..., 1)
    background = background.to(device=images.device, dtype=images.dtype)  # (C,)
    return torch.cat((features + (1.0 - opacity) * background, opacity), dim=-1)


def _emission_absorption_ext(
    rays_densities: torch.Tensor,
    rays_features: torch.Tensor,
    surface_thickness: int,
    eps: float,
    lengths: torch.Tensor | None,
    normalize_depth: bool,
) -> torch.Tensor:
    """:func:`_emission_absorption`, plus the depth channel when ``lengths (..., P)`` is given.

    Returns ``(..., C + 1)``, or ``(..., C + 2)`` with the depth channel.
    """
    if lengths is None:
        return _emission_absorption(rays_densities, rays_features, surface_thickness, eps)
    densities = rays_densities.squeeze(-1)  # (..., P)
    weights = densities * _transmittance(densities, surface_thickness, eps)  # (..., P)
    dtype = torch.promote_types(weights.dtype, rays_features.dtype)
    w = weights.to(dtype).unsqueeze(-2)  # (..., 1, P)
    features = torch.matmul(w, rays_features.to(dtype)).squeeze(-2)  # (..., C)
    opacity = _opacity(densities).to(dtype)  # (..., 1)
    depth = (weights.to(dtype) * lengths.to(dtype)).sum(-1, keepdim=True)  # (..., 1)
    if normalize_depth:
        total = weights.to(dtype).sum(-1, keepdim=True)  # (..., 1)
        # A safe denominator (no NaN gradient where total == 0), and 0 with a 0 gradient
        # there: an empty ray's mean depth jumps to t_i as soon as any d_i moves off 0.
        empty = total == 0
        depth = torch.where(empty, 0.0, depth / torch.where(empty, 1.0, total))
    return torch.cat((features, opacity, depth), dim=-1)


def _reversed_cumsum(x: torch.Tensor) -> torch.Tensor:
    """``out_j = sum_{i >= j} x_i`` along the last dimension (no cancellation)."""
    return x.flip(-1).cumsum(-1).flip(-1)


def _emission_absorption_backward(
    densities: torch.Tensor,
    features: torch.Tensor,
    grad_out: torch.Tensor,
    surface_thickness: int,
    grad_densities: torch.Tensor,
    grad_features: torch.Tensor | list[torch.Tensor],
    samples: torch.Tensor | None = None,
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
        grad_features: ``(C, n, P)`` written with ``dL/df`` (channel-major), or a sequence of
            ``C`` tensors ``(n, P)`` (views of any strides), one per channel.
        samples: ``(n, P, 1 + C)`` the densities and features side by side, when the caller
            has them so (the fused renderer): ``f_i . gF`` is then one product with
            ``(0, gF)``, three times faster than with the strided features alone.
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
    if samples is None:
        shade = torch.bmm(features, grad_f[:, :, None]).squeeze(-1)  # (n, P): f_i . gF
    else:  # 0 * d_i adds an exact 0 (densities are finite here)
        padded = torch.cat((grad_f.new_zeros(grad_f.shape[0], 1), grad_f), dim=1)  # (n, 1 + C)
        shade = torch.bmm(samples, padded[:, :, None]).squeeze(-1)  # (n, P)
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
    density_mode: str = "opacity",
    rays_lengths: torch.Tensor | None = None,
    last_step_length: float = 1e10,
    background: torch.Tensor | None = None,
    return_depth: bool = False,
    normalize_depth: bool = False,
) -> torch.Tensor:
    """Emission-absorption render of each ray: weighted features, then opacity.

    Args:
        rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``; values
            outside warn (``strict_densities``: raise ``ValueError``), as in PyTorch3D. With
            ``density_mode="extinction"``: extinction coefficients ``sigma >= 0``.
        rays_features: per-sample features, ``(..., P, C)``.
        surface_thickness: how many samples the transmittance lags behind, a positive int.
        eps: number added to ``1 - d`` in the transmittance (not in the opacity).
        strict_densities: raise instead of warning for densities outside [0, 1] (extinction:
            for opacities ``1 - exp(-sigma * delta)`` outside [0, 1], i.e. negative ``sigma``
            or steps).
        density_mode: ``"opacity"`` (PyTorch3D's model) or ``"extinction"`` (a voxrender
            extension, see the module docstring).
        rays_lengths: the samples' ray lengths ``(..., P)``, needed by ``"extinction"`` and
            ``return_depth``.
        last_step_length: the step of the last sample in ``"extinction"`` mode, ``>= 0``.
        background: a colour ``(C,)`` composited behind the volume:
            ``features + (1 - opacity) * background`` (gradients flow into it).
        return_depth: append the expected depth ``sum_i w_i t_i`` as a last channel.
        normalize_depth: with ``return_depth``, divide it by ``sum_i w_i`` (0, with a zero
            gradient, where that is 0).

    Returns:
        ``cat(sum_i w_i f_i, 1 - prod_i (1 - d_i))``, ``(..., C + 1)``, in the promoted dtype of
        the two inputs; with ``return_depth`` one more channel, the depth: ``(..., C + 2)``.
    """
    surface_thickness = _check_surface_thickness(surface_thickness)
    eps = _check_eps(eps)
    strict = _check_strict(strict_densities)
    density_mode = _check_density_mode(density_mode)
    last_step_length = _check_last_step(last_step_length)
    background = _check_background(background)
    return_depth = _check_flag(return_depth, "return_depth")
    normalize_depth = _check_flag(normalize_depth, "normalize_depth")
    rays_densities = _check_raymarcher_densities(rays_densities, strict)
    rays_features = _check_raymarcher_features(rays_features, rays_densities)
    if background is not None and background.shape[0] != rays_features.shape[-1]:
        raise ValueError(
            f"background: expected shape ({rays_features.shape[-1]},), one value per channel "
            f"of rays_features {tuple(rays_features.shape)}, got shape {tuple(background.shape)}"
        )
    lengths = None
    if density_mode == "extinction" or return_depth:
        why = "density_mode='extinction'" if density_mode == "extinction" else "return_depth"
        lengths = _rays_lengths({"rays_lengths": rays_lengths}, rays_densities, why)
    if density_mode == "extinction":
        opacities = _opacities_from_extinction(
            rays_densities.squeeze(-1), lengths, last_step_length
        )  # (..., P)
        check_density_range(opacities, "1 - exp(-rays_densities * step)", strict=strict)
        rays_densities = opacities.unsqueeze(-1)  # (..., P, 1)
    else:
        check_density_range(rays_densities, "rays_densities", strict=strict)
    if lengths is None and background is None:  # PyTorch3D's model, op for op
        return _emission_absorption(rays_densities, rays_features, surface_thickness, eps)
    images = _emission_absorption_ext(
        rays_densities,
        rays_features,
        surface_thickness,
        eps,
        lengths if return_depth else None,
        normalize_depth,
    )  # (..., C + 1) or (..., C + 2)
    if background is None:
        return images
    if not return_depth:
        return _composite_background(images, background)
    return torch.cat((_composite_background(images[..., :-1], background), images[..., -1:]), -1)


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
        density_mode: a voxrender extension: ``"opacity"`` (PyTorch3D's model, the default)
            or ``"extinction"`` (densities are extinction coefficients, ``d = 1 - exp(-sigma *
            step)``, see the module docstring).
        last_step_length: the step of each ray's last sample in ``"extinction"`` mode
            (default ``1e10``, as NeRF).
        background: a voxrender extension: a colour ``(C,)`` (tensor or sequence of numbers)
            composited behind the volume, ``features + (1 - opacity) * background``. An
            ``nn.Parameter`` is registered as a parameter (and learnt); any other tensor as a
            non-persistent buffer (it follows ``.to()``, and the state dict stays PyTorch3D's).
        return_depth: a voxrender extension: append the expected depth ``sum_i w_i t_i`` of
            each ray as a last channel (``(..., C + 2)``).
        normalize_depth: divide that depth by ``sum_i w_i`` (0 where it is 0).

    ``"extinction"`` and ``return_depth`` need the samples' ray lengths: the renderers pass
    their ``ray_bundle``; called directly, pass ``ray_bundle=`` or ``rays_lengths=``.
    """

    def __init__(
        self,
        surface_thickness: int = 1,
        *,
        strict_densities: bool = False,
        density_mode: str = "opacity",
        last_step_length: float = 1e10,
        background: torch.Tensor | None = None,
        return_depth: bool = False,
        normalize_depth: bool = False,
    ):
        super().__init__()
        self.surface_thickness = _check_surface_thickness(surface_thickness)
        self.strict_densities = _check_strict(strict_densities)
        self.density_mode = _check_density_mode(density_mode)
        self.last_step_length = _check_last_step(last_step_length)
        self.return_depth = _check_flag(return_depth, "return_depth")
        self.normalize_depth = _check_flag(normalize_depth, "normalize_depth")
        background = _check_background(background)
        if isinstance(background, torch.nn.Parameter):
            self.background = background
        else:
            self.register_buffer("background", background, persistent=False)

    @property
    def is_pytorch3d_model(self) -> bool:
        """True when no voxrender extension is switched on (the output is PyTorch3D's)."""
        # getattr: a module pickled before these options existed is PyTorch3D's model
        return (
            getattr(self, "density_mode", "opacity") == "opacity"
            and getattr(self, "background", None) is None
            and not getattr(self, "return_depth", False)
        )

    def forward(
        self,
        rays_densities: torch.Tensor,
        rays_features: torch.Tensor,
        eps: float = 1e-10,
        **kwargs,
    ) -> torch.Tensor:
        """Render each ray.

        Args:
            rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``
                (``"extinction"``: extinction coefficients).
            rays_features: per-sample features, ``(..., P, C)``.
            eps: number added to ``1 - d`` in the transmittance.
            **kwargs: ``rays_lengths (..., P)`` or a ``ray_bundle`` (its ``lengths``) where the
                extensions need them; anything else is ignored.

        Returns:
            Features then opacity of each ray, ``(..., C + 1)``; then the depth with
            ``return_depth``, ``(..., C + 2)``.
        """
        if self.is_pytorch3d_model:
            return emission_absorption(
                rays_densities,
                rays_features,
                self.surface_thickness,
                eps,
                strict_densities=self.strict_densities,
            )
        return emission_absorption(
            rays_densities,
            rays_features,
            self.surface_thickness,
            eps,
            strict_densities=self.strict_densities,
            density_mode=self.density_mode,
            rays_lengths=_lengths_keyword(kwargs, self.density_mode, self.return_depth),
            last_step_length=self.last_step_length,
            background=self.background,
            return_depth=self.return_depth,
            normalize_depth=self.normalize_depth,
        )

    def extra_repr(self) -> str:
        """The settings in the module's repr: the extensions' ones only when they are in use."""
        extras = ""
        if self.density_mode != "opacity":
            extras += f", density_mode={self.density_mode!r}"
            extras += f", last_step_length={self.last_step_length:g}"
        if self.return_depth:
            extras += f", return_depth=True, normalize_depth={self.normalize_depth}"
        return f"surface_thickness={self.surface_thickness}{extras}"


def _lengths_keyword(kwargs: dict, density_mode: str, return_depth: bool):
    """The ray lengths a raymarcher's extensions need: ``rays_lengths``, else ``ray_bundle``'s.

    None when not needed or not given; the kernel then says what is missing.
    """
    if density_mode != "extinction" and not return_depth:
        return None
    lengths = kwargs.get("rays_lengths")
    if lengths is None and kwargs.get("ray_bundle") is not None:
        lengths = getattr(kwargs["ray_bundle"], "lengths", None)
    return lengths


class AbsorptionOnlyRaymarcher(torch.nn.Module):
    """Absorption-only raymarcher (PyTorch3D's): the opacity of each ray and nothing else.

    Args:
        strict_densities: raise ``ValueError`` instead of warning for densities outside
            [0, 1] (see :class:`EmissionAbsorptionRaymarcher`).
        density_mode: ``"opacity"`` (PyTorch3D's, the default) or ``"extinction"`` (a
            voxrender extension: ``d = 1 - exp(-sigma * step)``, see the module docstring; the
            ray lengths come from the ``ray_bundle`` or ``rays_lengths`` keyword).
        last_step_length: the step of each ray's last sample in ``"extinction"`` mode.
    """

    def __init__(
        self,
        *,
        strict_densities: bool = False,
        density_mode: str = "opacity",
        last_step_length: float = 1e10,
    ):
        super().__init__()
        self.strict_densities = _check_strict(strict_densities)
        self.density_mode = _check_density_mode(density_mode)
        self.last_step_length = _check_last_step(last_step_length)

    @property
    def is_pytorch3d_model(self) -> bool:
        """True when no voxrender extension is switched on (the output is PyTorch3D's)."""
        return getattr(self, "density_mode", "opacity") == "opacity"

    def forward(self, rays_densities: torch.Tensor, **kwargs) -> torch.Tensor:
        """Opacity of each ray.

        Args:
            rays_densities: per-sample opacities, meant to lie in [0, 1], ``(..., P, 1)``
                (``"extinction"``: extinction coefficients).
            **kwargs: ``rays_lengths (..., P)`` or a ``ray_bundle`` for ``"extinction"``;
                anything else (e.g. ``rays_features``) is ignored.

        Returns:
            ``1 - prod_i (1 - d_i)``, ``(..., 1)``.
        """
        strict = _check_strict(getattr(self, "strict_densities", False))
        rays_densities = _check_raymarcher_densities(rays_densities, strict)
        if self.is_pytorch3d_model:
            check_density_range(rays_densities, "rays_densities", strict=strict)
            return _opacity(rays_densities.squeeze(-1))
        lengths = _lengths_keyword(kwargs, self.density_mode, False)
        lengths = _rays_lengths(
            {"rays_lengths": lengths}, rays_densities, "density_mode='extinction'"
        )
        opacities = _opacities_from_extinction(
            rays_densities.squeeze(-1), lengths, self.last_step_length
        )  # (..., P)
        check_density_range(opacities, "1 - exp(-rays_densities * step)", strict=strict)
        return _opacity(opacities)

    def extra_repr(self) -> str:
        """The settings in the module's repr: none for PyTorch3D's model, else the density mode."""
        if not self.is_pytorch3d_model:
            return f"density_mode={self.density_mode!r}, last_step_length={self.last_step_length:g}"
        return ""

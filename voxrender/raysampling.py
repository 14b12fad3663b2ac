"""Raysamplers: turn a batch of cameras into a :class:`~voxrender.RayBundle` of rays to render.

A raysampler picks image-plane locations ``(x, y)`` (a regular pixel grid, a random subset of it,
a mask-weighted subset, or uniformly random locations), unprojects each location at camera
depths 1 and 2 to get a ray (origin one depth unit in front of the depth-1 point, direction one
depth unit long), and samples ``P`` lengths per ray between ``min_depth`` and ``max_depth``
(evenly, or one uniform draw per stratum with stratified sampling). Because a direction spans one
unit of camera depth, a ray point's length is its depth in front of the camera. ``min_depth`` and
``max_depth`` may also be (a voxrender extension) tensors ``(B,)``, one depth per camera (e.g. a
scene's near and far per view); numbers behave exactly as in PyTorch3D.

Cameras are duck-typed exactly as PyTorch3D's raysamplers use them, so PyTorch3D's own cameras
work too: ``cameras.R`` (only ``R.shape[0]``, the batch size, and ``R.dtype`` are read),
``cameras.device``, ``cameras.unproject_points(xy_depth, world_coordinates=True, from_ndc=True)``
and, for ``n_rays_total``, ``len(cameras)`` and ``cameras[ids]``.

Random draws (pixel subsets, masks, stratified depths, Monte-Carlo locations, ``n_rays_total``)
come from torch's global RNG with the same calls, shapes, dtypes and order as PyTorch3D 0.7.9, so
a given ``torch.manual_seed`` yields the same rays.

Host-device syncs: none in the full-grid path, the uniform random-subset path or the
Monte-Carlo path. Sampling with a ``mask`` reads a few numbers back from the device (the smallest
mask total, as PyTorch3D does, and whether some image has too few non-zero pixels), because
output shapes and the random draws depend on them. ``n_rays_total`` draws the cameras on the host
(as PyTorch3D does), which needs no device sync.

Dimensions:
    ``B``: cameras in the batch.
    ``H``, ``W``: image height and width of the ray grid.
    ``R``: rays per image (``n_rays_per_image``).
    ``P``: points per ray (``n_pts_per_ray``).
    ``N``: rays in all (``n_rays_total``).
    ``M``: distinct cameras drawn for ``n_rays_total``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ._checks import ArgumentTypeError, check_same_device, describe, scalar_value
from .ray_bundle import HeterogeneousRayBundle, RayBundle

__all__ = [
    "GridRaysampler",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCGridRaysampler",
    "NDCMultinomialRaysampler",
]


# --------------------------------------------------------------------------------------------
# Argument checks (Python values only: no tensor reads)
# --------------------------------------------------------------------------------------------


def _check_count(
    value: object, name: str, *, optional: bool = False, allow_zero: bool = False
) -> int | None:
    """A non-negative integer (``>= 1`` unless ``allow_zero``; ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        what = f"an integer >= {0 if allow_zero else 1}" + (" or None" if optional else "")
        raise ArgumentTypeError(f"{name}: expected {what}, got {describe(value)}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name}: expected an integer >= {0 if allow_zero else 1}, got {value!r}")
    return int(value)


def _check_override_count(value: object, name: str) -> int | None:
    """A per-call ray count: as in PyTorch3D, ``0`` (falsy) means "not given", like ``None``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value == 0:
        return None
    return _check_count(value, name, optional=True)


def _check_real(value: object, name: str) -> float:
    """A finite real number: a Python / NumPy scalar or a one-element tensor (read once)."""
    return scalar_value(value, name)


def _check_flag(value: object, name: str) -> bool:
    """A bool, or an int flag (PyTorch3D only tests the truth of these flags)."""
    if not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name}: expected a bool, got {describe(value)}")
    return bool(value)


Depth = float | torch.Tensor  # a number, or one depth per camera ``(B,)``


def _check_depth(value: object, name: str) -> Depth:
    """A number (a 0-d tensor is read as one), or a real floating tensor ``(B,)``.

    The tensor holds per-camera depths (a voxrender extension) and is kept as is (it may carry
    gradients).
    """
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        if value.ndim != 1 or value.shape[0] == 0:
            raise ValueError(
                f"{name}: expected a number or a tensor of shape (B,), one depth per camera, "
                f"got shape {tuple(value.shape)}"
            )
        if not value.is_floating_point():
            raise ArgumentTypeError(
                f"{name}: expected a floating-point tensor of shape (B,), got dtype {value.dtype}"
            )
        return value
    return scalar_value(value, name, finite=False)


def _check_depth_range(min_depth: object, max_depth: object) -> tuple[Depth, Depth]:
    """Two depths. Either may be the larger: PyTorch3D then samples from far to near.

    Each is a number or (a voxrender extension) a tensor ``(B,)`` of one depth per camera.
    Finiteness is checked where the depths are used (:func:`_check_depths_usable`): with no
    points per ray they are not, and PyTorch3D accepts any value then.
    """
    return _check_depth(min_depth, "min_depth"), _check_depth(max_depth, "max_depth")


def _per_camera_depths(
    min_depth: Depth, max_depth: Depth, batch_size: int, device: torch.device
) -> None:
    """Per-camera depth tensors must have one entry per camera and sit on the cameras' device."""
    for name, value in (("min_depth", min_depth), ("max_depth", max_depth)):
        if isinstance(value, torch.Tensor):
            if value.shape[0] != batch_size:
                raise ValueError(
                    f"{name}: expected shape ({batch_size},), one depth per camera, got shape "
                    f"{tuple(value.shape)}"
                )
            check_same_device(name, value, device)


def _check_depths_usable(min_depth: Depth, max_depth: Depth, n_pts_per_ray: int) -> None:
    """Depths that make points must be finite (PyTorch3D returns inf / NaN lengths).

    Per-camera tensors are checked on the CPU only (elsewhere reading them would be a sync).
    """
    used = (("min_depth", min_depth), ("max_depth", max_depth))[: min(n_pts_per_ray, 2)]
    for name, value in used:  # one point per ray sits at min_depth: max_depth is not read
        if isinstance(value, torch.Tensor):
            if value.device.type == "cpu" and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name}: expected finite depths, got {value.tolist()!r}")
        elif not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")


def _check_exclusive(n_rays_per_image: int | None, n_rays_total: int | None) -> None:
    if n_rays_per_image is not None and n_rays_total is not None:
        raise ValueError(
            "n_rays_per_image, n_rays_total: expected at most one of them to be set, got "
            f"n_rays_per_image={n_rays_per_image!r} and n_rays_total={n_rays_total!r}"
        )


def _check_xy_bounds(
    min_x: object, max_x: object, min_y: object, max_y: object
) -> tuple[float, float, float, float]:
    """The four image-plane bounds as finite Python floats (no ordering checked)."""
    min_x, max_x = _check_real(min_x, "min_x"), _check_real(max_x, "max_x")
    min_y, max_y = _check_real(min_y, "min_y"), _check_real(max_y, "max_y")
    return min_x, max_x, min_y, max_y


def _check_ray_counts(
    n_rays_per_image: object, n_rays_total: object
) -> tuple[int | None, int | None]:
    """Both optional ray counts checked, and not both set.

    ``n_rays_total=0`` is kept: as in PyTorch3D it counts as set for this check, and as not
    set when rays are drawn.
    """
    n_rays_per_image = _check_count(n_rays_per_image, "n_rays_per_image", optional=True)
    n_rays_total = _check_count(n_rays_total, "n_rays_total", optional=True, allow_zero=True)
    _check_exclusive(n_rays_per_image, n_rays_total)
    return n_rays_per_image, n_rays_total


def _check_sampling_flags(unit_directions: object, stratified_sampling: object) -> None:
    _check_flag(unit_directions, "unit_directions")
    _check_flag(stratified_sampling, "stratified_sampling")


def _flag_or_default(value: object, default: bool, name: str) -> bool:
    """A per-call flag override: ``default`` when ``value`` is None, else the checked value."""
    if value is None:
        value = default
    return _check_flag(value, name)


def _check_cameras(cameras: Any, *, indexable: bool) -> tuple[int, torch.device, torch.dtype]:
    """Check the duck-typed cameras; returns ``(batch_size, device, dtype)``."""
    needed = ["R", "device", "unproject_points"] + (["__len__", "__getitem__"] if indexable else [])
    missing = [attr for attr in needed if not hasattr(cameras, attr)]
    if missing or not callable(cameras.unproject_points):
        lacking = ", ".join(missing) or "a callable unproject_points"
        raise ArgumentTypeError(
            f"cameras: expected a cameras object with {', '.join(needed)} (like "
            f"FoVPerspectiveCameras), got {describe(cameras)} lacking {lacking}"
        )
    rotation = cameras.R
    if not isinstance(rotation, torch.Tensor) or rotation.ndim != 3:
        raise ArgumentTypeError(
            f"cameras.R: expected a tensor of shape (B, 3, 3), got {describe(rotation)}"
        )
    if not rotation.is_floating_point():
        raise ArgumentTypeError(
            f"cameras.R: expected a floating-point tensor, got dtype {rotation.dtype}"
        )
    return rotation.shape[0], torch.device(cameras.device), rotation.dtype


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _bounds_to_xy_grid(
    min_x: float, max_x: float, min_y: float, max_y: float, width: int, height: int, dtype
) -> torch.Tensor:
    """Evenly spaced pixel-centre coordinates, ``(H, W, 2)`` holding ``(x, y)``.

    Row 0 is at ``min_y`` and column 0 at ``min_x``.
    """
    ys = torch.linspace(min_y, max_y, height, dtype=dtype)
    xs = torch.linspace(min_x, max_x, width, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack((grid_x, grid_y), dim=-1)


def _ndc_pixel_centre_bounds(width: int, height: int) -> tuple[float, float, float, float]:
    """``(min_x, max_x, min_y, max_y)`` of the pixel centres in PyTorch3D's NDC convention.

    The shorter image side spans ``[-1, 1]``, the longer ``[-aspect, aspect]``; +X points left
    and +Y up, so the first column/row is the one at positive x/y, half a pixel inside the edge.
    """
    if width >= height:
        extent_x, extent_y = width / height, 1.0
    else:
        extent_x, extent_y = 1.0, height / width
    half_pixel_x = extent_x / width  # a pixel is 2 * extent / size wide
    half_pixel_y = extent_y / height
    return (
        extent_x - half_pixel_x,
        -extent_x + half_pixel_x,
        extent_y - half_pixel_y,
        -extent_y + half_pixel_y,
    )


def _draw_ray_indices(
    weights: torch.Tensor, n_rays: int, *, some_rows_sparse: bool
) -> torch.Tensor:
    """Draw ``n_rays`` pixel indices per row of ``weights`` ``(B, HW)`` -> ``(B, n_rays)``.

    Without replacement where a row has at least ``n_rays`` positive weights, with replacement
    in the other rows (PyTorch3D's rule, with its calls in its order). ``some_rows_sparse``
    tells whether any row has fewer than ``n_rays`` positive weights; the caller knows it
    without reading the weights here.
    """
    n_pixels = weights.shape[-1]
    if n_rays > n_pixels:
        # More rays than pixels: no row can go without replacement. (PyTorch3D raises here,
        # from torch.multinomial; drawing with replacement is what its docs promise.)
        return torch.multinomial(weights, n_rays, replacement=True)
    indices = torch.multinomial(weights, n_rays, replacement=False)
    if some_rows_sparse:
        # Those rows hold zero-weight pixels now: redraw them with replacement. The selection
        # has a data-dependent size, hence a sync (sparse masks only).
        sparse = (weights > 0).sum(dim=-1) < n_rays  # (B,)
        indices[sparse] = torch.multinomial(weights[sparse], n_rays, replacement=True)
    return indices


def _mask_to_weights(mask: Any, batch_size: int, height: int, width: int, device, dtype):
    """Validate a sampling mask ``(B, H, W)`` and flatten it to weights ``(B, H * W)``."""
    if not isinstance(mask, torch.Tensor):
        raise ArgumentTypeError(f"mask: expected a tensor of shape (B, H, W), got {describe(mask)}")
    want = (batch_size, height, width)
    if tuple(mask.shape) != want:
        raise ValueError(
            f"mask: expected shape {want} (camera batch, image_height, image_width), got "
            f"{tuple(mask.shape)}"
        )
    check_same_device("mask", mask, device)
    if mask.is_complex():
        raise ArgumentTypeError(f"mask: expected a real or boolean tensor, got dtype {mask.dtype}")
    if not mask.is_floating_point():
        mask = mask.to(torch.float32)  # the dtype PyTorch3D draws with
    return mask.reshape(batch_size, height * width)


def _mask_stats(weights: torch.Tensor, height: int, width: int) -> tuple[int, int, bool]:
    """Read back, in one device sync, what mask sampling needs from weights ``(B, H * W)``.

    Returns:
        ``(min_total, min_support, invalid)``: the smallest per-image total truncated to an int,
        the smallest per-image count of positive weights, and whether any weight is negative or
        not finite.
    """
    totals = weights.reshape(-1, height, width).sum(dim=(1, 2))  # (B,), summed as PyTorch3D does
    stats = torch.stack(
        (
            totals.min().int(),
            (weights > 0).sum(dim=-1).min().int(),
            ((weights < 0) | ~torch.isfinite(weights)).any().int(),
        )
    )
    min_total, min_support, invalid = stats.tolist()
    return min_total, min_support, bool(invalid)


def _uniform_depths(
    min_depth: Depth, max_depth: Depth, n_pts_per_ray: int, batch_size: int, n_rays: int, like
) -> torch.Tensor:
    """``n_pts_per_ray`` evenly spaced depths for every ray, ``(B, R, P)`` (an expanded view).

    Per-camera depths ``(B,)``: ``lerp(min_depth, max_depth, linspace(0, 1, P))`` per camera
    (exact at both ends, differentiable in the depths).
    """
    if isinstance(min_depth, torch.Tensor) or isinstance(max_depth, torch.Tensor):
        ends = [
            (d if isinstance(d, torch.Tensor) else like.new_full((batch_size,), d)).to(like.dtype)
            for d in (min_depth, max_depth)
        ]  # (B,) each
        steps = torch.linspace(0.0, 1.0, n_pts_per_ray, dtype=like.dtype, device=like.device)
        depths = torch.lerp(ends[0][:, None], ends[1][:, None], steps)  # (B, P)
        return depths[:, None].expand(batch_size, n_rays, n_pts_per_ray)
    depths = torch.linspace(
        min_depth, max_depth, n_pts_per_ray, dtype=like.dtype, device=like.device
    )
    return depths[None, None].expand(batch_size, n_rays, n_pts_per_ray)


def _jitter_within_strata(centres: torch.Tensor) -> torch.Tensor:
    """Replace each sorted depth ``(..., P)`` by a uniform draw from its stratum.

    A depth's stratum runs from the midpoint with its predecessor to the midpoint with its
    successor; the first stratum starts at the first depth and the last ends at the last one.
    """
    midpoints = 0.5 * (centres[..., 1:] + centres[..., :-1])  # (..., P - 1)
    upper = torch.cat((midpoints, centres[..., -1:]), dim=-1)  # (..., P)
    lower = torch.cat((centres[..., :1], midpoints), dim=-1)  # (..., P)
    # Drawn in float32 whatever the depths' dtype, as PyTorch3D does: the same seed gives the
    # same depths with a float64 camera too.
    draw = torch.rand(lower.shape, dtype=torch.float32, device=lower.device)
    return lower + (upper - lower) * draw.to(lower.dtype)


def _xy_to_ray_bundle(
    cameras: Any,
    xy: torch.Tensor,
    min_depth: Depth,
    max_depth: Depth,
    n_pts_per_ray: int,
    unit_directions: bool,
    stratified_sampling: bool,
) -> RayBundle:
    """Rays through image-plane points ``xy`` ``(B, *S, 2)`` -> a bundle of shape ``(B, *S, ...)``.

    Each location is unprojected at depths 1 and 2; their difference is the direction (one
    unit of depth) and the origin lies one direction before the depth-1 point.
    """
    _check_depths_usable(min_depth, max_depth, n_pts_per_ray)
    batch_size, spatial = xy.shape[0], xy.shape[1:-1]
    n_rays = spatial.numel()
    lengths = _uniform_depths(min_depth, max_depth, n_pts_per_ray, batch_size, n_rays, xy)
    if stratified_sampling:
        lengths = _jitter_within_strata(lengths)  # (B, R, P)

    xy_flat = xy.reshape(batch_size, n_rays, 2)
    depth_one = xy.new_ones(batch_size, n_rays, 1)
    xy_depth = torch.cat(
        (torch.cat((xy_flat, xy_flat), dim=1), torch.cat((depth_one, 2.0 * depth_one), dim=1)),
        dim=-1,
    )  # (B, 2R, 3): all rays at depth 1, then all rays at depth 2
    world = cameras.unproject_points(xy_depth, world_coordinates=True, from_ndc=True)
    if not isinstance(world, torch.Tensor) or tuple(world.shape) != tuple(xy_depth.shape):
        raise ValueError(
            f"cameras.unproject_points: expected a tensor of shape {tuple(xy_depth.shape)}, "
            f"got {describe(world)}"
        )
    at_depth_one, at_depth_two = world[:, :n_rays], world[:, n_rays:]  # (B, R, 3) each
    directions = at_depth_two - at_depth_one
    origins = at_depth_one - directions
    if unit_directions:
        directions = F.normalize(directions, dim=-1)
    return RayBundle(
        origins.reshape(batch_size, *spatial, 3),
        directions.reshape(batch_size, *spatial, 3),
        lengths.reshape(batch_size, *spatial, n_pts_per_ray),
        xy,
    )


def _check_packable(n_pts_per_ray: int) -> None:
    """PyTorch3D cannot pack rays of no points (its reshape fails): refuse that clearly."""
    if n_pts_per_ray == 0:
        raise ValueError(
            "n_pts_per_ray, n_rays_total: expected n_pts_per_ray >= 1 with n_rays_total (rays "
            "of no points cannot be packed), got n_pts_per_ray=0"
        )


def _draw_cameras(n_rays_total: int, n_cameras: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n_rays_total`` cameras with replacement (on the host, like PyTorch3D).

    Returns:
        ``camera_ids (M,)``, the distinct cameras drawn (sorted), and ``camera_counts (M,)``,
        how often each was drawn; both int64 on the CPU.
    """
    drawn = torch.randint(0, n_cameras, size=(n_rays_total,), dtype=torch.long)  # (N,)
    return torch.unique(drawn, return_counts=True)


def _draw_camera_batch(
    cameras: Any, n_rays_total: int
) -> tuple[Any, tuple[torch.Tensor, torch.Tensor], int]:
    """Draw the cameras of ``n_rays_total`` rays (see :func:`_draw_cameras`).

    Returns:
        The drawn cameras (one per distinct id), ``(camera_ids (M,), camera_counts (M,))`` and
        the most rays any one camera got (a Python int).
    """
    camera_ids, camera_counts = _draw_cameras(n_rays_total, len(cameras))  # (M,), (M,)
    n_rays = int(camera_counts.max())  # CPU tensor: no device sync
    return cameras[camera_ids], (camera_ids, camera_counts), n_rays


def _depths_of(min_depth: Depth, max_depth: Depth, camera_ids: torch.Tensor) -> tuple[Depth, Depth]:
    """The per-camera depths of the drawn cameras ``camera_ids (M,)`` (numbers pass through)."""

    def pick(d: Depth) -> Depth:
        return d[camera_ids.to(d.device)] if isinstance(d, torch.Tensor) else d  # (M,)

    return pick(min_depth), pick(max_depth)


def _rays_or_packed(
    bundle: RayBundle, drawn: tuple[torch.Tensor, torch.Tensor] | None
) -> RayBundle | HeterogeneousRayBundle:
    """``bundle`` as is, or packed per drawn camera when cameras were drawn."""
    return bundle if drawn is None else _pack_rays(bundle, *drawn)


def _pack_rays(
    bundle: RayBundle, camera_ids: torch.Tensor, camera_counts: torch.Tensor
) -> HeterogeneousRayBundle:
    """Keep the first ``camera_counts[m]`` rays of row ``m`` of a padded bundle ``(M, R, ...)``.

    They are stacked: ``(N, 1, ...)``. Indices are built on the host from the host-side counts,
    so there is no device sync.
    """
    n_total = int(camera_counts.sum())  # CPU tensor: no device sync
    starts = torch.cumsum(camera_counts, dim=0) - camera_counts  # (M,)
    rows = torch.repeat_interleave(torch.arange(camera_counts.shape[0]), camera_counts)  # (N,)
    cols = torch.arange(n_total) - torch.repeat_interleave(starts, camera_counts)  # (N,)
    device = bundle.origins.device
    rows, cols = rows.to(device), cols.to(device)

    def pack(field: torch.Tensor) -> torch.Tensor:
        return field[rows, cols][:, None]  # (N, 1, ...)

    return HeterogeneousRayBundle(
        origins=pack(bundle.origins),
        directions=pack(bundle.directions),
        lengths=pack(bundle.lengths),
        xys=pack(bundle.xys),
        camera_ids=camera_ids,
        camera_counts=camera_counts.to(device),
    )


class _Request(NamedTuple):
    """One :meth:`MultinomialRaysampler.forward` call's settings, overrides applied and checked."""

    n_rays_per_image: int | None
    n_rays_total: int | None  # None: no camera draw (also for 0)
    min_depth: Depth
    max_depth: Depth
    n_pts_per_ray: int
    stratified_sampling: bool


def _draw_for_total(
    cameras: Any, request: _Request, weights: torch.Tensor | None, device
) -> tuple[Any, tuple[torch.Tensor, torch.Tensor], _Request, torch.Tensor | None]:
    """Draw the cameras of ``request.n_rays_total`` rays; keep the per-camera inputs of those.

    Returns:
        The drawn cameras (one per distinct id), ``(camera_ids (M,), camera_counts (M,))``, the
        request with the drawn cameras' depths and, as its ``n_rays_per_image``, the most rays
        any one camera got, and the drawn cameras' rows of ``weights`` ``(M, HW)`` (or None).
    """
    _check_packable(request.n_pts_per_ray)
    cameras, drawn, n_rays = _draw_camera_batch(cameras, request.n_rays_total)
    camera_ids = drawn[0]  # (M,)
    min_depth, max_depth = _depths_of(request.min_depth, request.max_depth, camera_ids)
    weights = weights[camera_ids.to(device)] if weights is not None else None
    request = request._replace(n_rays_per_image=n_rays, min_depth=min_depth, max_depth=max_depth)
    return cameras, drawn, request, weights


def _mask_ray_count(
    weights: torch.Tensor, n_rays_per_image: int | None, xy: torch.Tensor
) -> tuple[int, bool]:
    """Check mask weights ``(B, HW)`` and settle the rays per image they are sampled with.

    Returns:
        ``n_rays_per_image`` (when None, the smallest mask total: PyTorch3D's rule) and whether
        some image has fewer positive weights than that (its rays are drawn with replacement).
    """
    _, height, width, _ = xy.shape
    min_total, min_support, invalid = _mask_stats(weights, height, width)  # masks: sync
    if invalid:
        raise ValueError(
            "mask: expected finite non-negative weights, got negative or non-finite entries"
        )
    if min_support == 0:
        raise ValueError("mask: expected a non-zero entry in every image, got an all-zero image")
    if n_rays_per_image is None:
        if min_total < 1:
            raise ValueError(
                "mask: expected every image's weights to sum to >= 1 (the smallest sum "
                "sets the number of rays when n_rays_per_image is None), got a sum < 1"
            )
        n_rays_per_image = min_total  # PyTorch3D's rule: the smallest mask total
    return n_rays_per_image, min_support < n_rays_per_image


def _select_rays(
    xy: torch.Tensor, weights: torch.Tensor | None, n_rays: int, some_rows_sparse: bool
) -> torch.Tensor:
    """Draw ``n_rays`` of the grid points ``xy (B, H, W, 2)`` per camera -> ``(B, R, 1, 2)``.

    Uniformly when ``weights`` is None, else proportionally to ``weights (B, HW)`` (see
    :func:`_draw_ray_indices`).
    """
    batch_size, height, width, _ = xy.shape
    if weights is None:
        # float32 whatever the camera's dtype: PyTorch3D's draws, for the same seed
        weights = torch.ones(batch_size, height * width, device=xy.device)  # (B, HW)
    indices = _draw_ray_indices(weights, n_rays, some_rows_sparse=some_rows_sparse)  # (B, R)
    xy_flat = xy.reshape(batch_size, height * width, 2)
    return xy_flat.gather(1, indices[..., None].expand(-1, -1, 2))[:, :, None]  # (B, R, 1, 2)


# --------------------------------------------------------------------------------------------
# Raysamplers
# --------------------------------------------------------------------------------------------


class MultinomialRaysampler(torch.nn.Module):
    """Rays through a regular grid of image-plane points, all of them or a random subset.

    The grid has ``image_height`` rows from ``min_y`` to ``max_y`` and ``image_width`` columns
    from ``min_x`` to ``max_x`` (pixel centres, in the coordinates ``cameras.unproject_points``
    takes with ``from_ndc=True``). Either bound may be the larger one: PyTorch3D's NDC has +X
    left and +Y up, so :class:`NDCMultinomialRaysampler` runs from positive to negative.

    Which rays come back (highest priority first):

    - ``n_rays_total``: that many rays in all, as if a camera were drawn with replacement for
      each ray; a :class:`~voxrender.HeterogeneousRayBundle` of shape ``(N, 1, 1, ...)``.
    - ``n_rays_per_image``: that many grid points per camera, drawn without replacement
      (uniformly, or proportionally to ``mask``); shape ``(B, R, 1, ...)``.
    - ``mask`` alone: as many points per camera as the smallest mask total; ``(B, R, 1, ...)``.
    - otherwise the full grid, ``(B, H, W, ...)``.

    Args:
        min_x: x of the first grid column.
        max_x: x of the last grid column.
        min_y: y of the first grid row.
        max_y: y of the last grid row.
        image_width: grid columns ``W``.
        image_height: grid rows ``H``.
        n_pts_per_ray: points per ray ``P``.
        min_depth: depth of the first point on each ray: a number, or (a voxrender extension)
            a floating tensor ``(B,)`` of one depth per camera, on the cameras' device.
        max_depth: depth of the last point on each ray (a number or a tensor ``(B,)``).
        n_rays_per_image: if set, rays drawn per camera.
        n_rays_total: if set, rays drawn in all (exclusive with ``n_rays_per_image``).
        unit_directions: normalise the directions to unit length (lengths stay depths).
        stratified_sampling: jitter each depth uniformly within its stratum.
    """

    def __init__(
        self,
        *,
        min_x: float,
        max_x: float,
        min_y: float,
        max_y: float,
        image_width: int,
        image_height: int,
        n_pts_per_ray: int,
        min_depth: float | torch.Tensor,
        max_depth: float | torch.Tensor,
        n_rays_per_image: int | None = None,
        n_rays_total: int | None = None,
        unit_directions: bool = False,
        stratified_sampling: bool = False,
    ) -> None:
        super().__init__()
        min_x, max_x, min_y, max_y = _check_xy_bounds(min_x, max_x, min_y, max_y)
        image_width = _check_count(image_width, "image_width")
        image_height = _check_count(image_height, "image_height")
        n_pts_per_ray = _check_count(n_pts_per_ray, "n_pts_per_ray", allow_zero=True)
        min_depth, max_depth = _check_depth_range(min_depth, max_depth)
        n_rays_per_image, n_rays_total = _check_ray_counts(n_rays_per_image, n_rays_total)
        _check_sampling_flags(unit_directions, stratified_sampling)

        self.min_x, self.max_x = min_x, max_x
        self.min_y, self.max_y = min_y, max_y
        self._image_width, self._image_height = image_width, image_height
        self._n_pts_per_ray = n_pts_per_ray
        self._min_depth, self._max_depth = min_depth, max_depth
        self._n_rays_per_image = n_rays_per_image
        self._n_rays_total = n_rays_total
        self._unit_directions = bool(unit_directions)
        self._stratified_sampling = bool(stratified_sampling)
        bounds = (min_x, max_x, min_y, max_y, image_width, image_height)
        # float32 exactly as PyTorch3D builds it; float64 for double-precision cameras.
        self.register_buffer(
            "_xy_grid", _bounds_to_xy_grid(*bounds, torch.float32), persistent=False
        )
        self.register_buffer(
            "_xy_grid_double", _bounds_to_xy_grid(*bounds, torch.float64), persistent=False
        )

    def extra_repr(self) -> str:
        """The settings in the module's repr: image size, points per ray, depths, ray counts."""
        return (
            f"image_width={self._image_width}, image_height={self._image_height}, "
            f"n_pts_per_ray={self._n_pts_per_ray}, min_depth={self._min_depth}, "
            f"max_depth={self._max_depth}, n_rays_per_image={self._n_rays_per_image}, "
            f"n_rays_total={self._n_rays_total}, unit_directions={self._unit_directions}, "
            f"stratified_sampling={self._stratified_sampling}"
        )

    def forward(
        self,
        cameras: Any,
        *,
        mask: torch.Tensor | None = None,
        min_depth: float | torch.Tensor | None = None,
        max_depth: float | torch.Tensor | None = None,
        n_rays_per_image: int | None = None,
        n_pts_per_ray: int | None = None,
        stratified_sampling: bool | None = None,
        n_rays_total: int | None = None,
        **kwargs,
    ) -> RayBundle | HeterogeneousRayBundle:
        """Sample rays from ``cameras``; keyword arguments override the constructor's settings.

        Args:
            cameras: ``B`` cameras (see the module docstring for what is used).
            mask: optional non-negative sampling weights ``(B, H, W)``.
            min_depth: overrides ``min_depth``.
            max_depth: overrides ``max_depth``.
            n_rays_per_image: overrides ``n_rays_per_image``.
            n_pts_per_ray: overrides ``n_pts_per_ray``.
            stratified_sampling: overrides ``stratified_sampling``.
            n_rays_total: overrides ``n_rays_total``.
            **kwargs: ignored (renderers pass their own keywords through).

        Returns:
            A :class:`~voxrender.RayBundle` with ``origins (B, s1, s2, 3)``,
            ``directions (B, s1, s2, 3)``, ``lengths (B, s1, s2, P)`` and ``xys (B, s1, s2, 2)``
            where ``(s1, s2)`` is ``(H, W)`` for the full grid and ``(R, 1)`` for a subset; or,
            with ``n_rays_total``, a :class:`~voxrender.HeterogeneousRayBundle` with ``B = N``,
            ``(s1, s2) = (1, 1)``, ``camera_ids (M,)`` (CPU) and ``camera_counts (M,)``.
        """
        request = self._request(
            n_rays_per_image, n_rays_total, min_depth, max_depth, n_pts_per_ray,
            stratified_sampling,
        )  # fmt: skip
        batch_size, device, dtype = _check_cameras(
            cameras, indexable=request.n_rays_total is not None
        )
        _per_camera_depths(request.min_depth, request.max_depth, batch_size, device)
        height, width = self._image_height, self._image_width
        weights = None
        if mask is not None:
            weights = _mask_to_weights(mask, batch_size, height, width, device, dtype)  # (B, HW)

        drawn = None
        if request.n_rays_total is not None:
            cameras, drawn, request, weights = _draw_for_total(cameras, request, weights, device)
            batch_size = drawn[0].shape[0]  # M

        xy = self._pixel_grid(batch_size, device, dtype)  # (B, H, W, 2)
        n_rays_per_image, some_rows_sparse = request.n_rays_per_image, False
        if weights is not None:
            n_rays_per_image, some_rows_sparse = _mask_ray_count(weights, n_rays_per_image, xy)
        if n_rays_per_image is not None:
            xy = _select_rays(xy, weights, n_rays_per_image, some_rows_sparse)  # (B, R, 1, 2)

        bundle = _xy_to_ray_bundle(
            cameras,
            xy,
            request.min_depth,
            request.max_depth,
            request.n_pts_per_ray,
            self._unit_directions,
            request.stratified_sampling,
        )
        return _rays_or_packed(bundle, drawn)

    def _request(
        self, n_rays_per_image, n_rays_total, min_depth, max_depth, n_pts_per_ray,
        stratified_sampling,
    ) -> _Request:  # fmt: skip
        """One call's settings: its overrides, checked, over the constructor's."""
        n_rays_total = _check_override_count(n_rays_total, "n_rays_total")
        n_rays_per_image = _check_override_count(n_rays_per_image, "n_rays_per_image")
        n_rays_total = n_rays_total if n_rays_total is not None else self._n_rays_total
        if n_rays_per_image is None:
            n_rays_per_image = self._n_rays_per_image
        _check_exclusive(n_rays_per_image, n_rays_total)
        n_rays_total = n_rays_total or None  # a constructor's 0: no draw (PyTorch3D's rule)
        min_depth, max_depth = _check_depth_range(
            self._min_depth if min_depth is None else min_depth,
            self._max_depth if max_depth is None else max_depth,
        )
        n_pts_per_ray = _check_count(
            self._n_pts_per_ray if n_pts_per_ray is None else n_pts_per_ray,
            "n_pts_per_ray",
            allow_zero=True,
        )
        stratified_sampling = _flag_or_default(
            stratified_sampling, self._stratified_sampling, "stratified_sampling"
        )
        return _Request(
            n_rays_per_image, n_rays_total, min_depth, max_depth, n_pts_per_ray,
            stratified_sampling,
        )  # fmt: skip

    def _pixel_grid(self, batch_size: int, device, dtype) -> torch.Tensor:
        """The grid's image-plane points for every camera, ``(B, H, W, 2)`` (an expanded view)."""
        grid = self._xy_grid_double if dtype == torch.float64 else self._xy_grid
        return grid.to(device=device, dtype=dtype).expand(batch_size, -1, -1, -1)


class NDCMultinomialRaysampler(MultinomialRaysampler):
    """A :class:`MultinomialRaysampler` on the pixel centres of an image in PyTorch3D's NDC.

    The shorter image side spans ``[-1, 1]`` and the longer ``[-aspect, aspect]``; +X points
    left and +Y up, so ``xys[:, 0, 0]`` is the top-left pixel centre, at positive x and y, half a
    pixel inside the corner. The other arguments are :class:`MultinomialRaysampler`'s.
    """

    def __init__(
        self,
        *,
        image_width: int,
        image_height: int,
        n_pts_per_ray: int,
        min_depth: float | torch.Tensor,
        max_depth: float | torch.Tensor,
        n_rays_per_image: int | None = None,
        n_rays_total: int | None = None,
        unit_directions: bool = False,
        stratified_sampling: bool = False,
    ) -> None:
        _check_count(image_width, "image_width")
        _check_count(image_height, "image_height")
        min_x, max_x, min_y, max_y = _ndc_pixel_centre_bounds(image_width, image_height)
        super().__init__(
            min_x=min_x,
            max_x=max_x,
            min_y=min_y,
            max_y=max_y,
            image_width=image_width,
            image_height=image_height,
            n_pts_per_ray=n_pts_per_ray,
            min_depth=min_depth,
            max_depth=max_depth,
            n_rays_per_image=n_rays_per_image,
            n_rays_total=n_rays_total,
            unit_directions=unit_directions,
            stratified_sampling=stratified_sampling,
        )


class MonteCarloRaysampler(torch.nn.Module):
    """Rays through image-plane points drawn uniformly at random, not snapped to pixels.

    The points are real-valued, in ``[min_x, max_x] x [min_y, max_y]``.

    Args:
        min_x: smallest x of a ray's image-plane point.
        max_x: largest x.
        min_y: smallest y.
        max_y: largest y.
        n_rays_per_image: rays per camera ``R``; ``None`` when ``n_rays_total`` is set.
        n_pts_per_ray: points per ray ``P``.
        min_depth: depth of the first point on each ray: a number, or (a voxrender extension)
            a floating tensor ``(B,)`` of one depth per camera, on the cameras' device.
        max_depth: depth of the last point on each ray (a number or a tensor ``(B,)``).
        n_rays_total: rays in all, drawn as for :class:`MultinomialRaysampler` (exactly one of
            ``n_rays_per_image`` and ``n_rays_total`` must be set).
        unit_directions: normalise the directions to unit length.
        stratified_sampling: jitter each depth uniformly within its stratum.
    """

    def __init__(
        self,
        min_x: float,
        max_x: float,
        min_y: float,
        max_y: float,
        n_rays_per_image: int | None,
        n_pts_per_ray: int,
        min_depth: float | torch.Tensor,
        max_depth: float | torch.Tensor,
        *,
        n_rays_total: int | None = None,
        unit_directions: bool = False,
        stratified_sampling: bool = False,
    ) -> None:
        super().__init__()
        min_x, max_x, min_y, max_y = _check_xy_bounds(min_x, max_x, min_y, max_y)
        n_rays_per_image = _check_count(
            n_rays_per_image, "n_rays_per_image", optional=True, allow_zero=True
        )
        n_rays_total = _check_count(n_rays_total, "n_rays_total", optional=True, allow_zero=True)
        _check_exclusive(n_rays_per_image, n_rays_total)  # a 0 counts as given, as in PyTorch3D
        if n_rays_total == 0:
            raise ValueError("n_rays_total: expected None or an integer >= 1, got 0")
        if n_rays_per_image is None and n_rays_total is None:
            raise ValueError(
                "n_rays_per_image, n_rays_total: expected exactly one of them to be set, got "
                "both None"
            )
        n_pts_per_ray = _check_count(n_pts_per_ray, "n_pts_per_ray", allow_zero=True)
        min_depth, max_depth = _check_depth_range(min_depth, max_depth)
        _check_sampling_flags(unit_directions, stratified_sampling)

        self._min_x, self._max_x = min_x, max_x
        self._min_y, self._max_y = min_y, max_y
        self._n_rays_per_image = n_rays_per_image
        self._n_pts_per_ray = n_pts_per_ray
        self._min_depth, self._max_depth = min_depth, max_depth
        self._n_rays_total = n_rays_total
        self._unit_directions = bool(unit_directions)
        self._stratified_sampling = bool(stratified_sampling)

    def extra_repr(self) -> str:
        """The settings in the module's repr: x and y ranges, ray and point counts, depths."""
        return (
            f"x=[{self._min_x}, {self._max_x}], y=[{self._min_y}, {self._max_y}], "
            f"n_rays_per_image={self._n_rays_per_image}, n_rays_total={self._n_rays_total}, "
            f"n_pts_per_ray={self._n_pts_per_ray}, min_depth={self._min_depth}, "
            f"max_depth={self._max_depth}, unit_directions={self._unit_directions}, "
            f"stratified_sampling={self._stratified_sampling}"
        )

    def forward(
        self, cameras: Any, *, stratified_sampling: bool | None = None, **kwargs
    ) -> RayBundle | HeterogeneousRayBundle:
        """Sample rays from ``cameras``.

        Args:
            cameras: ``B`` cameras (see the module docstring for what is used).
            stratified_sampling: overrides ``stratified_sampling``.
            **kwargs: ignored (renderers pass their own keywords through).

        Returns:
            A :class:`~voxrender.RayBundle` with ``origins (B, R, 3)``, ``directions (B, R, 3)``,
            ``lengths (B, R, P)`` and ``xys (B, R, 2)``; or, with ``n_rays_total``, a
            :class:`~voxrender.HeterogeneousRayBundle` with ``B = N``, ``R = 1``,
            ``camera_ids (M,)`` (CPU) and ``camera_counts (M,)``.
        """
        stratified_sampling = _flag_or_default(
            stratified_sampling, self._stratified_sampling, "stratified_sampling"
        )
        batch_size, device, dtype = _check_cameras(
            cameras, indexable=self._n_rays_total is not None
        )
        min_depth, max_depth = self._min_depth, self._max_depth
        _per_camera_depths(min_depth, max_depth, batch_size, device)
        n_rays, drawn = self._n_rays_per_image, None
        if self._n_rays_total is not None:
            _check_packable(self._n_pts_per_ray)
            cameras, drawn, n_rays = _draw_camera_batch(cameras, self._n_rays_total)
            batch_size = drawn[0].shape[0]
            min_depth, max_depth = _depths_of(min_depth, max_depth, drawn[0])

        xy = torch.cat(
            [
                (torch.rand((batch_size, n_rays, 1), device=device) * (high - low) + low).to(dtype)
                for low, high in ((self._min_x, self._max_x), (self._min_y, self._max_y))
            ],
            dim=2,
        )  # (B, R, 2): x drawn first, then y
        bundle = _xy_to_ray_bundle(
            cameras,
            xy,
            min_depth,
            max_depth,
            self._n_pts_per_ray,
            self._unit_directions,
            stratified_sampling,
        )
        return _rays_or_packed(bundle, drawn)


# --------------------------------------------------------------------------------------------
# Deprecated names (PyTorch3D keeps them as functions that warn)
# --------------------------------------------------------------------------------------------


def GridRaysampler(
    min_x: float,
    max_x: float,
    min_y: float,
    max_y: float,
    image_width: int,
    image_height: int,
    n_pts_per_ray: int,
    min_depth: float,
    max_depth: float,
) -> MultinomialRaysampler:
    """Deprecated: build a :class:`MultinomialRaysampler`.

    Warns ``PendingDeprecationWarning``, as PyTorch3D does.
    """
    warnings.warn(
        "GridRaysampler is deprecated and will be removed; use MultinomialRaysampler instead.",
        PendingDeprecationWarning,
        stacklevel=2,
    )
    return MultinomialRaysampler(
        min_x=min_x,
        max_x=max_x,
        min_y=min_y,
        max_y=max_y,
        image_width=image_width,
        image_height=image_height,
        n_pts_per_ray=n_pts_per_ray,
        min_depth=min_depth,
        max_depth=max_depth,
    )


def NDCGridRaysampler(
    image_width: int,
    image_height: int,
    n_pts_per_ray: int,
    min_depth: float,
    max_depth: float,
) -> NDCMultinomialRaysampler:
    """Deprecated: build an :class:`NDCMultinomialRaysampler`.

    Warns ``PendingDeprecationWarning``, as PyTorch3D does.
    """
    warnings.warn(
        "NDCGridRaysampler is deprecated and will be removed; use NDCMultinomialRaysampler "
        "instead.",
        PendingDeprecationWarning,
        stacklevel=2,
    )
    return NDCMultinomialRaysampler(
        image_width=image_width,
        image_height=image_height,
        n_pts_per_ray=n_pts_per_ray,
        min_depth=min_depth,
        max_depth=max_depth,
    )

"""Renderers: sample a volume (or any volumetric function) along rays, then raymarch.

Dimension letters used in this module:

- ``B``: batch (cameras, ray bundles and volumes share it).
- ``...``: the ray layout of a bundle, e.g. ``(H, W)`` for a full image or ``(R, 1)`` for a
  random subset of ``R`` rays.
- ``P``: points per ray (``n_pts_per_ray``).
- ``C``: channels (density channels ``C_d``, feature channels ``C_f``).
- ``D, H, W``: voxel grid depth, height, width.

The pipeline is PyTorch3D's: a raysampler turns cameras into a :class:`~voxrender.RayBundle`, a
volumetric function (here :class:`VolumeSampler`) turns the bundle into per-point densities and
features, and a raymarcher composites them into per-ray colours and opacity. Every piece is
duck-typed: PyTorch3D's own cameras, volumes, raysamplers and raymarchers plug in too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import backends
from ._checks import ArgumentTypeError, check_choice, describe
from .fused import FusedInputs, fused_render, prepare_fused
from .grid_sample import MODES, PADDING_MODES, sample_grid
from .ray_bundle import RayBundle
from .voxel_geometry import rays_to_local
from .voxel_table import collapse_expanded_batch

__all__ = ["ImplicitRenderer", "VolumeRenderer", "VolumeSampler"]


def _volume_data(volumes) -> tuple[torch.Tensor, int]:
    """Densities and features of ``volumes`` concatenated channel-wise, batch collapsed if expanded.

    Returns:
        ``(data, n_density_channels)`` with data ``(B or 1, C_d + C_f, D, H, W)``.
    """
    densities = volumes.densities()
    features = volumes.features()
    if features is None:
        return densities, densities.shape[1]  # sample_grid collapses an expanded batch itself
    d1, f1 = collapse_expanded_batch(densities), collapse_expanded_batch(features)
    if d1.shape[0] != f1.shape[0]:  # only one of the two is expanded: sample the full batch
        d1, f1 = densities, features
    return torch.cat((d1, f1), dim=1), densities.shape[1]


def ray_bundle_to_local_points(ray_bundle, volumes) -> torch.Tensor:
    """Ray points in the volumes' local (normalised) coordinates.

    The world-to-local map of a volume is affine, so each ray is converted once (origin and
    direction) and the points are spread along it in local coordinates: one full-size tensor
    instead of a world-space one plus its converted copy.

    Args:
        ray_bundle: ``origins (B, ..., 3)``, ``directions (B, ..., 3)``, ``lengths (B, ..., P)``.
        volumes: anything with ``world_to_local_coords(points (B, N, 3))``.

    Returns:
        ``(B, ..., P, 3)`` local coordinates, ``[-1, 1]`` spanning the grid.
    """
    origins_local, directions_local = rays_to_local(
        ray_bundle.origins, ray_bundle.directions, volumes
    )  # (B, ..., 3) each
    lengths = ray_bundle.lengths
    points = origins_local[..., None, :] + lengths[..., :, None] * directions_local[..., None, :]
    dtype = volumes.densities().dtype
    # Rays of another dtype (a float64 camera, float32 volumes) are sampled in the volumes' dtype.
    return points if points.dtype == dtype else points.to(dtype)


class VolumeSampler(torch.nn.Module):
    """A volumetric function that samples a batch of :class:`~voxrender.Volumes` along rays.

    Args:
        volumes: a ``Volumes`` batch (or any object with ``densities()``, ``features()``,
            ``world_to_local_coords()``, ``get_align_corners()`` and ``len()``).
        sample_mode: ``"bilinear"`` (trilinear) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``: what points outside the
            grid see.
    """

    def __init__(self, volumes, sample_mode: str = "bilinear", padding_mode: str = "zeros"):
        super().__init__()
        for method in ("densities", "features", "world_to_local_coords", "get_align_corners"):
            if not callable(getattr(volumes, method, None)):
                raise ArgumentTypeError(
                    "'volumes' have to be an instance of the 'Volumes' class. volumes: expected "
                    f"a Volumes-like object with a {method}() method, got {describe(volumes)}"
                )
        self._volumes = volumes
        self._sample_mode = check_choice(sample_mode, "sample_mode", MODES)
        self._padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)

    def forward(self, ray_bundle, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample densities and features at every ray point.

        Args:
            ray_bundle: a ``RayBundle`` with ``origins (B, ..., 3)``, ``directions (B, ..., 3)``,
                ``lengths (B, ..., P)``.

        Returns:
            ``rays_densities (B, ..., P, C_d)`` and ``rays_features (B, ..., P, C_f)``
            (``C_f = 0`` when the volumes have no features).
        """
        self._check_rays(ray_bundle)
        data, n_density = _volume_data(self._volumes)
        points = ray_bundle_to_local_points(ray_bundle, self._volumes)  # (B, ..., P, 3)
        samples = sample_grid(
            data,
            points,
            mode=self._sample_mode,
            padding_mode=self._padding_mode,
            align_corners=self._volumes.get_align_corners(),
        )  # (B, ..., P, C_d + C_f)
        return samples[..., :n_density], samples[..., n_density:]

    def _check_rays(self, ray_bundle) -> None:
        _check_bundle(ray_bundle)
        n_volumes = len(self._volumes)
        batch = ray_bundle.origins.shape[0]
        if batch != n_volumes:
            raise ValueError(
                "Input volumes have to have the same batch size as rays. "
                f"ray_bundle: expected a batch of {n_volumes} (one per volume), got "
                f"origins of shape {tuple(ray_bundle.origins.shape)}"
            )

    @property
    def device(self) -> torch.device:
        """The device of the volumes' densities."""
        return self._volumes.densities().device

    def fused_inputs(self, ray_bundle, raymarcher, kwargs: dict) -> FusedInputs | str:
        """What a fused backend (CPU, Triton) renders, or a sentence saying why none applies.

        See :func:`voxrender.fused.prepare_fused`.
        """
        if self._sample_mode != "bilinear" or self._padding_mode != "zeros":
            return (
                f"the fused backends sample trilinearly with zeros padding, not "
                f"sample_mode={self._sample_mode!r}, padding_mode={self._padding_mode!r}"
            )
        self._check_rays(ray_bundle)
        return prepare_fused(self._volumes, ray_bundle, raymarcher, kwargs)

    def render_fused(
        self, ray_bundle, raymarcher, bounded: bool = False, **kwargs
    ) -> torch.Tensor | None:
        """``raymarcher(*self(ray_bundle))`` without per-sample tensors, or None if unsupported.

        What the fused path covers is described in :mod:`voxrender.backends` (``bounded``:
        :func:`voxrender.fused.render_cpu`); the renderers try it first and fall back to
        sampling then raymarching, which gives the same result.
        """
        if self._sample_mode != "bilinear" or self._padding_mode != "zeros":
            return None
        self._check_rays(ray_bundle)
        return fused_render(self._volumes, ray_bundle, raymarcher, kwargs, bounded)


def _check_bundle(ray_bundle) -> None:
    """Check a bundle's ``origins``, ``directions`` and ``lengths`` by PyTorch3D's rules.

    ``origins (B, ..., 3)``, ``directions (B, ..., 3)``, ``lengths (B, ..., P)``: real tensors
    with at least 3 dims and the same leading dims.
    """
    for field in ("origins", "directions", "lengths"):
        value = getattr(ray_bundle, field, None)
        if not isinstance(value, torch.Tensor):
            raise ArgumentTypeError(
                f"ray_bundle: expected a RayBundle with tensor field {field!r}, got {describe(ray_bundle)}"
            )
        if value.dtype == torch.bool or value.is_complex():
            raise ArgumentTypeError(
                f"ray_bundle.{field}: expected a real tensor, got dtype {value.dtype}"
            )
    o, d, lengths = ray_bundle.origins, ray_bundle.directions, ray_bundle.lengths
    if not o.ndim == d.ndim == lengths.ndim or o.ndim < 3:
        raise ValueError(
            "rays_origins, rays_directions and rays_lengths have to have the same number of "
            "dimensions, at least 3. ray_bundle: expected origins (B, ..., 3), directions "
            f"(B, ..., 3), lengths (B, ..., P), got shapes {tuple(o.shape)}, {tuple(d.shape)}, "
            f"{tuple(lengths.shape)}"
        )
    if o.shape[-1] != 3 or d.shape != o.shape or lengths.shape[:-1] != o.shape[:-1]:
        raise ValueError(
            "The shapes of rays_origins, rays_directions and rays_lengths may differ only in the "
            "last dimension, which has to be 3 for origins and directions. ray_bundle: expected "
            f"origins (B, ..., 3), directions (B, ..., 3), lengths (B, ..., P), got shapes "
            f"{tuple(o.shape)}, {tuple(d.shape)}, {tuple(lengths.shape)}"
        )


def _batch_size_of(cameras) -> int | None:
    """Number of cameras in a batch, or ``None`` when the object does not say."""
    R = getattr(cameras, "R", None)
    if isinstance(R, torch.Tensor) and R.ndim == 3:
        return R.shape[0]
    return None


def _check_chunk_size(chunk_size) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size: expected None or an int, got {describe(chunk_size)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected None or an int >= 1, got {chunk_size}")
    return chunk_size


def _rays_per_element(ray_bundle) -> int | None:
    """Rays per batch element of a homogeneous bundle; None when it cannot be chunked."""
    if getattr(ray_bundle, "camera_ids", None) is not None:
        return None  # a heterogeneous (packed) bundle: rendered whole
    origins = getattr(ray_bundle, "origins", None)
    if not isinstance(origins, torch.Tensor) or origins.ndim < 3:
        return None
    return origins.shape[1:-1].numel()


def _render_in_chunks(render: Callable, ray_bundle, chunk_size: int) -> torch.Tensor:
    """``render`` over slices of at most ``chunk_size`` rays per batch element, reassembled.

    Args:
        render: bundle -> images ``(B, n, C + 1)`` for a bundle of ``n`` rays per element.
        ray_bundle: ``origins (B, ..., 3)``, ``directions (B, ..., 3)``, ``lengths (B, ..., P)``,
            ``xys (B, ..., 2)``.

    Returns:
        Images ``(B, ..., C + 1)``, as ``render(ray_bundle)`` would give.
    """
    batch, ray_shape = ray_bundle.origins.shape[0], ray_bundle.origins.shape[1:-1]

    def flat(t):
        return None if t is None else t.reshape(batch, -1, t.shape[-1])  # (B, R, k)

    fields = [flat(getattr(ray_bundle, f)) for f in ("origins", "directions", "lengths", "xys")]
    checkpoint = torch.is_grad_enabled()
    pieces = []
    for start in range(0, ray_shape.numel(), chunk_size):
        part = RayBundle(*(None if t is None else t[:, start : start + chunk_size] for t in fields))
        if checkpoint:
            pieces.append(torch.utils.checkpoint.checkpoint(render, part, use_reentrant=False))
        else:
            pieces.append(render(part))
    images = torch.cat(pieces, dim=1)  # (B, R, C + 1)
    return images.reshape(batch, *ray_shape, images.shape[-1])


class ImplicitRenderer(torch.nn.Module):
    """Render any volumetric function: raysampler -> function -> raymarcher.

    Args:
        raysampler: callable ``raysampler(cameras=..., **kwargs) -> RayBundle``.
        raymarcher: callable ``raymarcher(rays_densities=..., rays_features=..., ray_bundle=...,
            **kwargs) -> (B, ..., C + 1)``.
        chunk_size: render at most this many rays per batch element at a time (a voxrender
            extension; ``None`` renders all at once). Samples exist for one chunk at a time, so
            an image of any size renders in bounded memory; with gradients enabled each chunk is
            checkpointed (recomputed in the backward pass) so training is bounded too. The
            result is the same as unchunked.
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"triton"`` (a voxrender
            extension, see :mod:`voxrender.backends`); None reads the environment variable
            ``VOXRENDER_BACKEND`` at every render (default ``"auto"``). A forced backend that
            cannot render the inputs raises ``ValueError`` saying why. After each render,
            ``last_backend`` is a :class:`~voxrender.BackendChoice`: the backend that ran and
            why each other one did not.

    The inputs the fused backends cover (described in :mod:`voxrender.backends`) are rendered
    on the CPU by the fused path (:mod:`voxrender.fused`): no per-sample tensors, the work spread
    over ``torch.get_num_threads()`` threads, the same images and gradients up to rounding.
    It keeps the samples for the backward pass (16 bytes per ray point in float32) unless
    ``chunk_size`` is set, in which case it recomputes them and memory stays bounded. Under
    ``torch.compile`` the fused path is one opaque custom operator (no graph break). On CUDA
    the same inputs go to the Triton backend (:mod:`voxrender.triton_render`) when it passes
    its checks. Anything else takes the general path; :mod:`voxrender.backends` decides, and
    ``last_backend`` says what ran and why.
    """

    def __init__(
        self,
        raysampler: Callable,
        raymarcher: Callable,
        *,
        chunk_size: int | None = None,
        backend: str | None = None,
    ):
        super().__init__()
        if not callable(raysampler):
            raise ValueError(
                f'"raysampler" has to be a "Callable" object: got {describe(raysampler)}'
            )
        if not callable(raymarcher):
            raise ValueError(
                f'"raymarcher" has to be a "Callable" object: got {describe(raymarcher)}'
            )
        self.raysampler = raysampler
        self.raymarcher = raymarcher
        self.chunk_size = _check_chunk_size(chunk_size)
        self.backend = backends.check_backend(backend)
        self.last_backend: backends.BackendChoice | None = None

    def forward(self, cameras, volumetric_function: Callable, **kwargs):
        """Render.

        Args:
            cameras: a batch of ``B`` cameras.
            volumetric_function: ``f(ray_bundle=..., cameras=..., **kwargs)`` returning
                ``rays_densities (B, ..., P, 1)`` and ``rays_features (B, ..., P, C)``.
            **kwargs: forwarded to the raysampler, the function and the raymarcher.

        Returns:
            ``images (B, ..., C + 1)`` (features then opacity for the EA raymarcher) and the
            ``ray_bundle`` that was rendered.
        """
        if not callable(volumetric_function):
            raise ValueError(
                '"volumetric_function" has to be a "Callable" object: got '
                f"{describe(volumetric_function)}"
            )
        ray_bundle = self.raysampler(
            cameras=cameras, volumetric_function=volumetric_function, **kwargs
        )

        def render(bundle):
            rays_densities, rays_features = volumetric_function(
                ray_bundle=bundle, cameras=cameras, **kwargs
            )
            return self.raymarcher(
                rays_densities=rays_densities,
                rays_features=rays_features,
                ray_bundle=bundle,
                **kwargs,
            )

        requested = backends.resolve_backend(self.backend)
        if isinstance(volumetric_function, VolumeSampler):
            device = volumetric_function.device

            def prepare():
                return volumetric_function.fused_inputs(ray_bundle, self.raymarcher, kwargs)

        else:
            device = getattr(ray_bundle.origins, "device", torch.device("cpu"))
            reason = backends.not_a_sampler(volumetric_function)

            def prepare():
                return reason

        choice, inputs = backends.choose(requested, device, prepare)
        self.last_backend = choice
        images = backends.run(choice, inputs, bounded=self.chunk_size is not None)
        if images is not None:
            return images, ray_bundle
        rays = _rays_per_element(ray_bundle)
        if self.chunk_size is None or rays is None or rays <= self.chunk_size:
            return render(ray_bundle), ray_bundle
        return _render_in_chunks(render, ray_bundle, self.chunk_size), ray_bundle


class VolumeRenderer(torch.nn.Module):
    """Render a batch of :class:`~voxrender.Volumes`: PyTorch3D's ``VolumeRenderer``.

    Args:
        raysampler: e.g. :class:`~voxrender.NDCMultinomialRaysampler`.
        raymarcher: e.g. :class:`~voxrender.EmissionAbsorptionRaymarcher`.
        sample_mode: ``"bilinear"`` (trilinear) or ``"nearest"``.
        padding_mode: a voxrender extension (PyTorch3D's ``VolumeRenderer`` always pads with
            zeros): ``"zeros"`` (the default), ``"border"`` or ``"reflection"``, what points
            outside the grid see; passed to the :class:`VolumeSampler`. Only ``"zeros"`` is
            rendered by the fused backends, the others by the reference path.
        chunk_size: rays per batch element rendered at a time (see :class:`ImplicitRenderer`).
        backend: which implementation renders (see :class:`ImplicitRenderer`); after each
            render ``last_backend`` says which one did, and why not the others.
    """

    def __init__(
        self,
        raysampler: Callable,
        raymarcher: Callable,
        sample_mode: str = "bilinear",
        *,
        padding_mode: str = "zeros",
        chunk_size: int | None = None,
        backend: str | None = None,
    ):
        super().__init__()
        self.renderer = ImplicitRenderer(
            raysampler, raymarcher, chunk_size=chunk_size, backend=backend
        )
        self._sample_mode = check_choice(sample_mode, "sample_mode", MODES)
        self._padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)

    @property
    def backend(self) -> str | None:
        """The backend request (None: ``$VOXRENDER_BACKEND`` at every render)."""
        return self.renderer.backend

    @property
    def last_backend(self) -> backends.BackendChoice | None:
        """The :class:`~voxrender.BackendChoice` of the last render (None before the first)."""
        return self.renderer.last_backend

    def forward(self, cameras, volumes, **kwargs):
        """Render ``volumes`` seen from ``cameras`` (one volume per camera).

        Args:
            cameras: a batch of ``B`` cameras.
            volumes: a ``Volumes`` batch of size ``B``.
            **kwargs: forwarded to the raysampler and the raymarcher.

        Returns:
            ``images (B, ..., C + 1)`` and the ``ray_bundle``.
        """
        n_cameras = _batch_size_of(cameras)
        if n_cameras is not None and len(volumes) != n_cameras:
            raise ValueError(
                f"volumes: expected one volume per camera ({n_cameras}), got {len(volumes)} volumes"
            )
        sampler = VolumeSampler(
            volumes, sample_mode=self._sample_mode, padding_mode=self._padding_mode
        )
        return self.renderer(cameras=cameras, volumetric_function=sampler, **kwargs)

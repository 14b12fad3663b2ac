"""Benchmark cases: one zero-argument callable per (config, backend, component, device, dtype).

A *case* is everything needed to time one operation: its inputs, built once and not timed, and
a callable that runs the operation once and, on CUDA, synchronises the device before returning
(so a wall-clock timer around it measures the work, not the launch). :func:`make_case` builds
one; :func:`make_cases` builds every component of a config for one backend.

Components (what the callable does):

- ``raysampling``: ``NDCMultinomialRaysampler(cameras)`` -> a full-image ray bundle.
- ``grid_sampling_fwd`` / ``grid_sampling_fwd_bwd``: ``Volumes`` from the expanded volume
  tensors, then sampling densities and features at every ray point (``VolumeSampler``); the
  ``_fwd_bwd`` variant adds the backward pass to the volume tensors for a fixed cotangent.
- ``raymarching_fwd`` / ``raymarching_fwd_bwd``: ``EmissionAbsorptionRaymarcher`` on per-point
  densities and features; the backward goes to both.
- ``render_fwd``: a whole ``VolumeRenderer`` call under ``torch.no_grad()`` (inference).
- ``fit_step``: one step of PyTorch3D's ``fit_textured_volume`` tutorial: zero the gradients,
  render (log densities / colours -> sigmoid -> ``Volumes`` of the tensors expanded across the
  batch -> ``VolumeRenderer(NDCMultinomialRaysampler, EmissionAbsorptionRaymarcher)``), huber
  colour + silhouette losses, backward, ``Adam.step()``.

``_fwd`` components run under ``torch.no_grad()``.

Backends:

- ``voxrender``: voxrender, eager.
- ``voxrender-compiled``: voxrender under ``torch.compile`` (the whole callable body: the fit
  step's forward and losses, the render, the component). Compiled and run twice when the case
  is built; a failure (e.g. no C++ compiler on the CPU) makes the case unavailable, with the
  error as the reason.
- ``voxrender-reference``, ``voxrender-triton`` (and their ``-compiled`` forms): voxrender with
  the renderer's backend forced (``VolumeRenderer(..., backend="reference" | "triton")``): the
  plain-torch general path, or the fused Triton path. Only ``render_fwd`` and ``fit_step`` go
  through a renderer; the other components are ``voxrender``'s. Unavailable, with the reason,
  where the installed voxrender takes no ``backend`` or the backend is not eligible here (the
  ``ValueError`` of the first call). ``voxrender`` itself is ``backend="auto"``.
- ``baseline``: :mod:`benchmarks.baseline`, PyTorch3D's computation in plain torch, on
  voxrender's cameras and rays (so it has no ``raysampling`` case of its own).
- ``baseline-concat``: the same with PyTorch3D 0.7's single ``grid_sample`` on the concatenated
  volume (not in the default matrix).
- ``pytorch3d``: PyTorch3D itself, when importable (float32 only).

Configs: :data:`CONFIGS` (``tutorial`` is the tutorial's fit; ``large`` the same rays on a
256³ volume, opt-in, for memory at scale; ``small`` and ``tiny`` for quick runs and CI). Dimension letters: ``B`` views, ``S`` image side, ``P`` points per ray, ``V``
voxels per side, ``C = 1 + C_f`` volume channels.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from reference.backends import Backend, get_backend
from reference.model import INIT_LOG_COLOR, INIT_LOG_DENSITY, fit_errors, huber

from .baseline import (
    BaselineEmissionAbsorptionRaymarcher,
    BaselineVolumeRenderer,
    baseline_sample_volumes,
)

__all__ = [
    "BACKENDS",
    "COMPONENTS",
    "CONFIGS",
    "DEFAULT_BACKENDS",
    "FORCED_BACKENDS",
    "Case",
    "CaseUnavailable",
    "Config",
    "TutorialModel",
    "backend_unavailable_reason",
    "backend_used",
    "bytes_lower_bound",
    "huber",
    "make_case",
    "make_cases",
    "renderer_backend_support",
    "touched_voxel_count",
]


@dataclass(frozen=True)
class Config:
    """The sizes of one benchmark configuration."""

    name: str
    batch: int  # B: views per step
    image_size: int  # S: rays per image side
    n_pts_per_ray: int  # P
    volume_size: int  # V: voxels per side
    feature_channels: int = 3  # C_f (RGB)
    extent: float = 3.0  # side of the volume's cube; voxel size = extent / V
    min_depth: float = 0.1
    max_depth: float = 3.0
    camera_distance: float = 2.7

    @property
    def n_rays(self) -> int:
        """Rays per call: ``B * S * S``."""
        return self.batch * self.image_size**2

    @property
    def n_samples(self) -> int:
        """Ray points per call: ``B * S * S * P``."""
        return self.n_rays * self.n_pts_per_ray

    @property
    def n_voxels(self) -> int:
        """``V^3``."""
        return self.volume_size**3

    @property
    def channels(self) -> int:
        """Volume channels ``C = 1 + C_f`` (density + features)."""
        return 1 + self.feature_channels

    def describe(self) -> str:
        """One line: ``10 views x 128x128 rays x 150 points, 128^3 volume``."""
        s, v = self.image_size, self.volume_size
        return (
            f"{self.batch} views x {s}x{s} rays x {self.n_pts_per_ray} points, "
            f"{v}^3 volume ({self.channels} channels)"
        )


CONFIGS: dict[str, Config] = {
    "tutorial": Config("tutorial", batch=10, image_size=128, n_pts_per_ray=150, volume_size=128),
    "small": Config("small", batch=2, image_size=32, n_pts_per_ray=32, volume_size=32),
    "tiny": Config("tiny", batch=2, image_size=8, n_pts_per_ray=8, volume_size=8),
    # memory at scale: the tutorial's rays on a 256^3 volume (1 GiB of parameters, gradients
    # and Adam state at float32) and on 384^3 (3.4 GiB); opt-in (--configs large,xlarge)
    "large": Config("large", batch=10, image_size=128, n_pts_per_ray=150, volume_size=256),
    "xlarge": Config("xlarge", batch=10, image_size=128, n_pts_per_ray=150, volume_size=384),
}

COMPONENTS = (
    "raysampling",
    "grid_sampling_fwd",
    "grid_sampling_fwd_bwd",
    "raymarching_fwd",
    "raymarching_fwd_bwd",
    "render_fwd",
    "fit_step",
)
BACKENDS = (
    "voxrender",
    "voxrender-compiled",
    "voxrender-reference",
    "voxrender-reference-compiled",
    "voxrender-triton",
    "voxrender-triton-compiled",
    "voxrender-bounded",
    "baseline",
    "baseline-concat",
    "pytorch3d",
)
# The voxrender backends that force the renderer's backend, and the name they force.
FORCED_BACKENDS = {
    "voxrender-reference": "reference",
    "voxrender-reference-compiled": "reference",
    "voxrender-triton": "triton",
    "voxrender-triton-compiled": "triton",
}
DEFAULT_BACKENDS = ("voxrender", "voxrender-compiled", "baseline", "pytorch3d")
# voxrender-bounded: the renderer's bounded-memory mode (``chunk_size`` rays per batch element at
# a time, samples recomputed in the backward): memory stays the volume plus chunk buffers.
BOUNDED_CHUNK_SIZE = 4096

# The tutorial's learning rate (its initial logits: reference.model).
LEARNING_RATE = 0.1


class CaseUnavailable(Exception):
    """A case that cannot run here (backend missing, dtype unsupported, compile failed)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Case:
    """One benchmark case: call it to run the operation once (synchronised on CUDA).

    Attributes:
        config: the sizes.
        backend, component: what runs.
        device, dtype: where and in what precision.
        fn: the zero-argument callable; returns the operation's output (tensors or a tuple).
        inputs: the tensors and objects ``fn`` works on (built once, not timed).
    """

    config: Config
    backend: str
    component: str
    device: torch.device
    dtype: torch.dtype
    fn: Callable[[], Any]
    inputs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        """Run the case once."""
        return self.fn()

    @property
    def n_rays(self) -> int:
        """Rays per call (0 for a component without rays)."""
        return self.config.n_rays

    @property
    def n_samples(self) -> int:
        """Ray points per call (0 for ``raysampling``, which creates no samples)."""
        return 0 if self.component == "raysampling" else self.config.n_samples


# --------------------------------------------------------------------------------------------
# The libraries behind the backends
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Library:
    """The pieces one backend renders with, behind one interface.

    ``classes`` is the fitting tool's :class:`reference.backends.Backend` (the same names from
    one library); ``sample`` samples volumes at ray points, which no class of it does alone.
    """

    classes: Backend
    sample: Callable  # (volumes, ray_bundle) -> (rays_densities, rays_features)

    def cameras(self, R: torch.Tensor, T: torch.Tensor, device) -> Any:
        """``FoVPerspectiveCameras(R=R, T=T, device=device)``."""
        return self.classes.FoVPerspectiveCameras(R=R, T=T, device=device)

    def raysampler(self, config: Config) -> Any:
        """The config's full-image ``NDCMultinomialRaysampler``."""
        return _ndc_raysampler(self.classes.NDCMultinomialRaysampler, config)

    def volumes(self, densities: torch.Tensor, features: torch.Tensor, voxel_size: float) -> Any:
        """``Volumes`` of ``densities (B, 1, V^3)`` and ``features (B, C_f, V^3)``."""
        return self.classes.Volumes(densities=densities, features=features, voxel_size=voxel_size)

    def raymarcher(self) -> Any:
        """An ``EmissionAbsorptionRaymarcher``."""
        return self.classes.EmissionAbsorptionRaymarcher()

    def renderer(self, raysampler) -> Any:
        """A ``VolumeRenderer`` of ``raysampler`` and an emission-absorption raymarcher."""
        return self.classes.VolumeRenderer(raysampler=raysampler, raymarcher=self.raymarcher())


def _ndc_raysampler(cls, config: Config):
    return cls(
        image_width=config.image_size,
        image_height=config.image_size,
        n_pts_per_ray=config.n_pts_per_ray,
        min_depth=config.min_depth,
        max_depth=config.max_depth,
    )


def _voxrender_library(
    render_backend: str | None = None, chunk_size: int | None = None
) -> _Library:
    import voxrender as v

    classes = get_backend("voxrender")
    if render_backend is not None or chunk_size is not None:
        renderer = functools.partial(
            v.VolumeRenderer, backend=render_backend, chunk_size=chunk_size
        )
        classes = replace(classes, VolumeRenderer=renderer)
    return _Library(classes, sample=lambda volumes, bundle: v.VolumeSampler(volumes)(bundle))


def renderer_backend_support() -> str | None:
    """Why the installed voxrender's renderers cannot be told a backend, or None when they can."""
    import inspect

    import voxrender as v

    if "backend" not in inspect.signature(v.VolumeRenderer.__init__).parameters:
        return "unavailable: this voxrender's VolumeRenderer takes no backend argument"
    return None


def _baseline_library(variant: str) -> _Library:
    def renderer(raysampler, raymarcher):  # the baseline brings its own raymarcher
        return BaselineVolumeRenderer(raysampler, variant=variant)

    classes = replace(
        get_backend("voxrender"),
        name=f"baseline-{variant}",
        EmissionAbsorptionRaymarcher=BaselineEmissionAbsorptionRaymarcher,
        VolumeRenderer=renderer,
    )
    return _Library(
        classes,
        sample=lambda volumes, bundle: baseline_sample_volumes(
            volumes, bundle.origins, bundle.directions, bundle.lengths, variant=variant
        ),
    )


def _import_pytorch3d():
    """PyTorch3D's renderer modules, or :class:`CaseUnavailable` saying why not.

    PyTorch3D comes from :func:`reference.oracle.import_pytorch3d`: a real install, else the
    runnable copy beside the project (``../shared/pytorch3d``, or ``VOXRENDER_PYTORCH3D_PATH``).
    """
    from reference.oracle import import_pytorch3d

    module, reason = import_pytorch3d()
    if module is None:
        raise CaseUnavailable(reason)
    from pytorch3d import renderer as p3r
    from pytorch3d import structures as p3s
    from pytorch3d.renderer.implicit.renderer import VolumeSampler

    return p3r, p3s, VolumeSampler


def _pytorch3d_library() -> _Library:
    _, _, VolumeSampler = _import_pytorch3d()  # on sys.path from here on: get_backend finds it
    return _Library(
        get_backend("pytorch3d"), sample=lambda volumes, bundle: VolumeSampler(volumes)(bundle)
    )


def backend_unavailable_reason(backend: str, device: torch.device | str = "cpu", dtype=None):
    """Why ``backend`` cannot run on ``device`` in ``dtype``, or ``None`` when it can.

    Cheap (an import check); a compile failure only shows when a case is built.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    if backend in FORCED_BACKENDS:
        return renderer_backend_support()
    if backend == "pytorch3d":
        try:
            _import_pytorch3d()
        except CaseUnavailable as e:
            return e.reason
        if dtype is not None and dtype != torch.float32:
            return f"pytorch3d cameras and raysamplers are float32 only, got {dtype}"
    return None


def _library(backend: str) -> _Library:
    if backend in ("voxrender", "voxrender-compiled"):
        return _voxrender_library()
    if backend in FORCED_BACKENDS:
        return _voxrender_library(FORCED_BACKENDS[backend])
    if backend == "voxrender-bounded":
        return _voxrender_library(chunk_size=BOUNDED_CHUNK_SIZE)
    if backend == "baseline":
        return _baseline_library("split")
    if backend == "baseline-concat":
        return _baseline_library("concat")
    return _pytorch3d_library()


# --------------------------------------------------------------------------------------------
# The tutorial's model and losses
# --------------------------------------------------------------------------------------------


class TutorialModel(torch.nn.Module):
    """The tutorial's volume model: ``V^3`` density and colour logits rendered by a renderer.

    Args:
        renderer: a ``VolumeRenderer``-like module, ``renderer(cameras=, volumes=)``.
        volumes: ``(densities (B, 1, V^3), features (B, C_f, V^3), voxel_size) -> Volumes``.
        config: the sizes.
        device, dtype: of the parameters.
    """

    def __init__(self, renderer, volumes: Callable, config: Config, device, dtype):
        super().__init__()
        shape = (config.volume_size,) * 3
        kw = {"device": device, "dtype": dtype}
        self.log_densities = torch.nn.Parameter(torch.full((1, *shape), INIT_LOG_DENSITY, **kw))
        self.log_colors = torch.nn.Parameter(
            torch.full((config.feature_channels, *shape), INIT_LOG_COLOR, **kw)
        )
        self.renderer = renderer
        self._volumes = volumes
        self._voxel_size = config.extent / config.volume_size
        self._batch = config.batch

    def forward(self, cameras) -> torch.Tensor:
        """Render ``(B, S, S, C_f + 1)``: colour, then opacity."""
        densities = torch.sigmoid(self.log_densities)  # (1, V, V, V)
        colors = torch.sigmoid(self.log_colors)  # (C_f, V, V, V)
        volumes = self._volumes(
            densities[None].expand(self._batch, *densities.shape),  # (B, 1, V, V, V)
            colors[None].expand(self._batch, *colors.shape),  # (B, C_f, V, V, V)
            self._voxel_size,
        )
        return self.renderer(cameras=cameras, volumes=volumes)[0]


# --------------------------------------------------------------------------------------------
# Case construction
# --------------------------------------------------------------------------------------------


def _check_choice(value, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _sync_fn(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _camera_poses(config: Config, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``R (B, 3, 3)``, ``T (B, 3)``: views around the volume at the tutorial's distance."""
    import voxrender as v

    azim = torch.arange(config.batch, dtype=torch.float64) * (360.0 / config.batch) + 180.0
    elev = 15.0 * torch.cos(torch.arange(config.batch, dtype=torch.float64))
    R, T = v.look_at_view_transform(dist=config.camera_distance, elev=elev, azim=azim)
    return R.to(device=device, dtype=dtype), T.to(device=device, dtype=dtype)


def _volume_tensors(config: Config, device, dtype, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random densities ``(1, V, V, V)`` in ``[0, 0.1)`` and colours ``(C_f, V, V, V)`` in ``[0, 1)``."""
    v = config.volume_size
    d = torch.rand((1, v, v, v), generator=generator, dtype=torch.float64) * 0.1
    f = torch.rand((config.feature_channels, v, v, v), generator=generator, dtype=torch.float64)
    return d.to(device=device, dtype=dtype), f.to(device=device, dtype=dtype)


def _like(shape, generator, device, dtype, scale: float = 1.0) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * scale).to(
        device=device, dtype=dtype
    )


def _compile(fn: Callable, compile_backend: str) -> Callable:
    return torch.compile(fn, backend=compile_backend)


@dataclass
class _Setup:
    """What every component's builder starts from: the library, cameras, raysampler, inputs."""

    config: Config
    backend: str
    lib: _Library
    device: torch.device
    dtype: torch.dtype
    gen: torch.Generator  # draws every random input, in the order the builders ask
    cameras: Any
    raysampler: Any
    inputs: dict[str, Any]
    compile: Callable[[Callable], Callable]  # torch.compile for -compiled backends, else as is

    @property
    def batch(self) -> int:
        """``B``."""
        return self.config.batch

    @property
    def voxel_size(self) -> float:
        """``extent / V``."""
        return self.config.extent / self.config.volume_size

    def like(self, shape, scale: float = 1.0) -> torch.Tensor:
        """Uniform ``[0, scale)`` values of ``shape`` from :attr:`gen`."""
        return _like(shape, self.gen, self.device, self.dtype, scale=scale)

    def expanded_volumes(self, d: torch.Tensor, f: torch.Tensor) -> Any:
        """``Volumes`` of ``d (1, V^3)``, ``f (C_f, V^3)`` expanded across the batch."""
        b = self.batch
        return self.lib.volumes(
            d[None].expand(b, *d.shape), f[None].expand(b, *f.shape), self.voxel_size
        )


def _no_grad(fn: Callable) -> Callable:
    def body():
        with torch.no_grad():
            return fn()

    return body


def _raysampling(s: _Setup) -> Callable:
    if s.backend.startswith("baseline"):
        raise CaseUnavailable("the baseline uses voxrender's raysampler (see 'voxrender')")
    return lambda: s.raysampler(cameras=s.cameras)


def _grid_sampler(s: _Setup) -> tuple[Callable, torch.Tensor, torch.Tensor]:
    d, f = _volume_tensors(s.config, s.device, s.dtype, s.gen)
    bundle = s.raysampler(cameras=s.cameras)
    s.inputs.update(densities=d, features=f, ray_bundle=bundle)
    return (lambda: s.lib.sample(s.expanded_volumes(d, f), bundle)), d, f


def _grid_sampling_fwd(s: _Setup) -> Callable:
    return s.compile(_no_grad(_grid_sampler(s)[0]))


def _grid_sampling_fwd_bwd(s: _Setup) -> Callable:
    sample, d, f = _grid_sampler(s)
    d.requires_grad_(True)
    f.requires_grad_(True)
    point_shape = (s.batch, s.config.image_size, s.config.image_size, s.config.n_pts_per_ray)
    cot_d = s.like((*point_shape, 1))
    cot_f = s.like((*point_shape, s.config.feature_channels))
    s.inputs.update(cotangents=(cot_d, cot_f))
    forward = s.compile(sample)

    def body():
        d.grad = f.grad = None
        out = forward()
        torch.autograd.backward(out, (cot_d, cot_f))
        return d.grad, f.grad

    return body


def _marcher(s: _Setup) -> tuple[Callable, tuple, torch.Tensor, torch.Tensor]:
    ray_shape = (s.batch, s.config.image_size, s.config.image_size, s.config.n_pts_per_ray)
    rd = s.like((*ray_shape, 1), scale=0.1)
    rf = s.like((*ray_shape, s.config.feature_channels))
    raymarcher = s.lib.raymarcher()
    s.inputs.update(rays_densities=rd, rays_features=rf)
    return (lambda: raymarcher(rays_densities=rd, rays_features=rf)), ray_shape, rd, rf


def _raymarching_fwd(s: _Setup) -> Callable:
    return s.compile(_no_grad(_marcher(s)[0]))


def _raymarching_fwd_bwd(s: _Setup) -> Callable:
    march, ray_shape, rd, rf = _marcher(s)
    rd.requires_grad_(True)
    rf.requires_grad_(True)
    cot = s.like((*ray_shape[:-1], s.config.channels))
    s.inputs.update(cotangents=(cot,))
    forward = s.compile(march)

    def body():
        rd.grad = rf.grad = None
        forward().backward(cot)
        return rd.grad, rf.grad

    return body


def _render_fwd(s: _Setup) -> Callable:
    d, f = _volume_tensors(s.config, s.device, s.dtype, s.gen)
    renderer = s.lib.renderer(s.raysampler)
    s.inputs.update(densities=d, features=f, renderer=renderer)
    return s.compile(
        _no_grad(lambda: renderer(cameras=s.cameras, volumes=s.expanded_volumes(d, f))[0])
    )


def _fit_step(s: _Setup) -> Callable:
    config = s.config
    model = TutorialModel(s.lib.renderer(s.raysampler), s.lib.volumes, config, s.device, s.dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    images = s.like((s.batch, config.image_size, config.image_size, 3))
    silhouettes = (s.like((s.batch, config.image_size, config.image_size)) > 0.5).to(s.dtype)
    s.inputs.update(model=model, optimizer=optimizer, images=images, silhouettes=silhouettes)

    def loss_fn():
        color_err, sil_err = fit_errors(model(s.cameras), images, silhouettes)
        return color_err + sil_err

    forward = s.compile(loss_fn)

    def body():
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return body


# One builder per component: it draws the inputs (into ``inputs``) and returns the body. A
# ``_fwd`` body runs under no_grad and is compiled whole; a backward's forward alone is compiled.
_BUILDERS: dict[str, Callable[[_Setup], Callable]] = {
    "raysampling": lambda s: s.compile(_raysampling(s)),
    "grid_sampling_fwd": _grid_sampling_fwd,
    "grid_sampling_fwd_bwd": _grid_sampling_fwd_bwd,
    "raymarching_fwd": _raymarching_fwd,
    "raymarching_fwd_bwd": _raymarching_fwd_bwd,
    "render_fwd": _render_fwd,
    "fit_step": _fit_step,
}


def _build(config: Config, backend: str, component: str, device, dtype, compile_backend: str):
    """The body (un-synchronised callable) and inputs of one case."""
    renderer_only = backend in FORCED_BACKENDS or backend == "voxrender-bounded"
    if renderer_only and component not in ("render_fwd", "fit_step"):
        raise CaseUnavailable(
            f"{component} does not go through a renderer: the same code as 'voxrender'"
        )
    lib = _library(backend)
    compiled = backend.endswith("-compiled")
    gen = torch.Generator().manual_seed(0)
    R, T = _camera_poses(config, device, dtype)
    cameras = lib.cameras(R, T, device)
    raysampler = lib.raysampler(config)
    if hasattr(raysampler, "to"):
        raysampler = raysampler.to(device)
    setup = _Setup(
        config=config,
        backend=backend,
        lib=lib,
        device=device,
        dtype=dtype,
        gen=gen,
        cameras=cameras,
        raysampler=raysampler,
        inputs={"cameras": cameras, "raysampler": raysampler},
        compile=(lambda fn: _compile(fn, compile_backend)) if compiled else (lambda fn: fn),
    )
    return _BUILDERS[component](setup), setup.inputs


def make_case(
    config_name: str,
    backend: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    component: str = "fit_step",
    *,
    compile_backend: str | None = None,
) -> Case:
    """Build one case: inputs (untimed) and the callable that runs the component once.

    Args:
        config_name: a key of :data:`CONFIGS`.
        backend: one of :data:`BACKENDS`.
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        dtype: ``torch.float32`` or ``torch.float64``.
        component: one of :data:`COMPONENTS`.
        compile_backend: ``torch.compile``'s backend for ``voxrender-compiled`` (default the
            environment variable ``VOXRENDER_BENCH_COMPILE_BACKEND``, else ``"inductor"``;
            ``"eager"`` checks the tracing without code generation).

    Returns:
        A :class:`Case`; calling it runs the component once (synchronised on CUDA).

    Raises:
        ValueError: an unknown config, backend or component.
        TypeError: a dtype that is not float32 or float64.
        CaseUnavailable: the case cannot run here; ``.reason`` says why.
    """
    _check_choice(config_name, "config_name", tuple(CONFIGS))
    _check_choice(backend, "backend", BACKENDS)
    _check_choice(component, "component", COMPONENTS)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype!r}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device(
            "cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0
        )
    reason = backend_unavailable_reason(backend, device, dtype)
    if reason is not None:
        raise CaseUnavailable(reason)
    config = CONFIGS[config_name]
    compile_backend = compile_backend or os.environ.get(
        "VOXRENDER_BENCH_COMPILE_BACKEND", "inductor"
    )
    try:
        body, inputs = _build(config, backend, component, device, dtype, compile_backend)
    except ValueError as e:  # a forced backend that is not eligible here, said when built
        if backend not in FORCED_BACKENDS:
            raise
        first = f"{e}".strip().splitlines()[0][:300]
        raise CaseUnavailable(
            f"unavailable: backend={FORCED_BACKENDS[backend]!r} is not eligible here: {first}"
        ) from None
    sync = _sync_fn(device)

    def run():
        out = body()
        sync()
        return out

    case = Case(config, backend, component, device, dtype, run, inputs)
    if backend in FORCED_BACKENDS and not backend.endswith("-compiled"):
        try:  # forcing an ineligible backend raises ValueError (with the reason) on first use
            case()
        except ValueError as e:
            first = f"{e}".strip().splitlines()[0][:300]
            raise CaseUnavailable(
                f"unavailable: backend={FORCED_BACKENDS[backend]!r} is not eligible here: {first}"
            ) from None
    if backend.endswith("-compiled"):
        try:  # compile now (and run once more) so that failures and compile time stay out of timing
            case()
            case()
        except Exception as e:
            first = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
            raise CaseUnavailable(f"torch.compile ({compile_backend}) failed: {first}") from None
    return case


def backend_used(case: Case) -> dict[str, Any] | None:
    """Which renderer backend the case's last call took, and why the others were not.

    From ``renderer.last_backend`` (``voxrender.BackendChoice``: ``.name``, ``.reasons``) of the
    case's renderer; None where there is no voxrender renderer or it does not say.
    """
    renderer = case.inputs.get("renderer")
    if renderer is None and case.inputs.get("model") is not None:
        renderer = getattr(case.inputs["model"], "renderer", None)
    choice = getattr(renderer, "last_backend", None)
    if choice is None:  # e.g. kept by the VolumeRenderer's inner ImplicitRenderer only
        choice = getattr(getattr(renderer, "renderer", None), "last_backend", None)
    if choice is None or not hasattr(choice, "name"):
        return None
    reasons = getattr(choice, "reasons", None)
    if isinstance(reasons, dict):
        reasons = {str(k): str(val) for k, val in reasons.items()}
    elif isinstance(reasons, (list, tuple)):
        reasons = [str(x) for x in reasons]
    elif reasons is not None:
        reasons = str(reasons)
    return {"name": str(choice.name), "reasons": reasons}


def make_cases(
    config_name: str,
    backend: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    components: Sequence[str] = COMPONENTS,
    **kwargs,
) -> dict[str, Case | CaseUnavailable]:
    """:func:`make_case` for each of ``components``: a :class:`Case` or the reason it is missing."""
    out: dict[str, Case | CaseUnavailable] = {}
    for component in components:
        try:
            out[component] = make_case(config_name, backend, device, dtype, component, **kwargs)
        except CaseUnavailable as e:
            out[component] = e
    return out


# --------------------------------------------------------------------------------------------
# The physical-limit model: bytes a component must move at the very least
# --------------------------------------------------------------------------------------------


def touched_voxel_count(config_name: str, device="cpu", dtype=torch.float32) -> int:
    """Voxels that are a trilinear corner of at least one ray point of the config's rays.

    Only these must be read to render (and get a non-zero gradient); the rest of the grid may
    stay untouched in memory. Computed once with voxrender's rays, one view at a time.
    """
    import voxrender as v

    config = CONFIGS[_check_choice(config_name, "config_name", tuple(CONFIGS))]
    device = torch.device(device)
    R, T = _camera_poses(config, device, dtype)
    cameras = v.FoVPerspectiveCameras(R=R, T=T, device=device)
    bundle = _ndc_raysampler(v.NDCMultinomialRaysampler, config).to(device)(cameras=cameras)
    n = config.volume_size
    touched = torch.zeros(n**3, dtype=torch.bool, device=device)
    half = config.extent / 2 * (n - 1) / n  # world half-extent between the corner voxel centres
    for b in range(config.batch):
        points = (
            bundle.origins[b, ..., None, :]
            + bundle.lengths[b, ..., None] * bundle.directions[b, ..., None, :]
        )
        u = ((points.reshape(-1, 3) / half + 1) / 2 * (n - 1)).floor().long()  # (N, 3) x, y, z
        for corner in range(8):
            c = u + torch.tensor([corner & 1, (corner >> 1) & 1, corner >> 2], device=device)
            inside = ((c >= 0) & (c < n)).all(dim=-1)
            c = c[inside]
            touched[(c[:, 2] * n + c[:, 1]) * n + c[:, 0]] = True
    return int(touched.sum())


def bytes_lower_bound(
    config_name: str, component: str, dtype: torch.dtype, touched_voxels: int | None = None
) -> dict[str, int]:
    """A lower bound on the memory traffic of one call, by term (see ``benchmarks/README.md``).

    The model: an ideal implementation keeps every intermediate (points, corners, weights,
    per-point values) on chip, so only the tensors a call must read or write cross memory, each
    once: the touched voxels (``touched_voxels``, default the whole grid), ray directions
    (origins, depths and pixel grids may be broadcast views), the outputs, and for backward
    passes the cotangents, the re-read inputs and the gradients (a dense gradient of the whole
    grid). The fit step adds Adam: read parameter, gradient and both moments, write parameter
    and both moments, for every parameter.

    Returns:
        Bytes per term, and ``"total"``.
    """
    config = CONFIGS[_check_choice(config_name, "config_name", tuple(CONFIGS))]
    _check_choice(component, "component", COMPONENTS)
    b = torch.finfo(dtype).bits // 8
    rays, samples, c = config.n_rays, config.n_samples, config.channels
    voxels_read = config.n_voxels if touched_voxels is None else touched_voxels
    params = c * config.n_voxels
    fwd_bwd = component.endswith("_fwd_bwd")
    terms: dict[str, int] = {}
    if component == "raysampling":
        terms["directions_write"] = 3 * rays * b
    elif component.startswith("grid_sampling"):
        terms["volume_read"] = c * voxels_read * b
        terms["directions_read"] = 3 * rays * b
        terms["samples_write"] = c * samples * b
        if fwd_bwd:
            terms["directions_reread"] = 3 * rays * b
            terms["samples_cotangent_read"] = c * samples * b
            terms["volume_grad_write"] = params * b
    elif component.startswith("raymarching"):
        terms["samples_read"] = c * samples * b
        terms["pixels_write"] = c * rays * b
        if fwd_bwd:
            terms["samples_reread"] = c * samples * b
            terms["pixels_cotangent_read"] = c * rays * b
            terms["samples_grad_write"] = c * samples * b
    elif component == "render_fwd":
        terms["volume_read"] = c * voxels_read * b
        terms["pixels_write"] = c * rays * b
    else:  # fit_step
        terms["params_read"] = c * voxels_read * b
        terms["targets_read"] = 4 * rays * b
        terms["grad_write"] = params * b
        terms["adam_read_param_grad_moments"] = 4 * params * b
        terms["adam_write_param_moments"] = 3 * params * b
    terms["total"] = sum(terms.values())
    return terms

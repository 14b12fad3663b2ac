"""Backend choice: the one place that decides which implementation renders, and says why.

Backends:

- ``"reference"``: the general path, ``raymarcher(*volumetric_function(ray_bundle))`` in plain
  torch ops (sample every point, then composite). Renders anything, on any device; the oracle
  every fast path is tested against.
- ``"cpu"``: the fused CPU path (:mod:`voxrender.fused`): the inputs the fused backends cover
  (below), on CPU tensors.
- ``"triton"``: the fused Triton kernels (:mod:`voxrender.triton_render`): the same inputs
  except ``return_depth`` and ``density_mode="extinction"``, on CUDA tensors, or on CPU tensors
  in triton's interpreter when ``TRITON_INTERPRET=1`` was set before the kernels were first
  imported.

What the fused backends cover (the one description of it: the README, the renderers and
:mod:`voxrender.fused` point here):

- Volumes: voxrender's own :class:`~voxrender.Volumes`, one density channel, float32 or
  float64 (emission-absorption also needs features, of the densities' dtype and device),
  sampled by a :class:`~voxrender.VolumeSampler` (also inside an
  :class:`~voxrender.ImplicitRenderer`) trilinearly with zeros padding (its defaults
  ``sample_mode="bilinear"``, ``padding_mode="zeros"``).
- Raymarcher: voxrender's :class:`~voxrender.EmissionAbsorptionRaymarcher` or
  :class:`~voxrender.AbsorptionOnlyRaymarcher` (those classes, not subclasses), any ``eps`` and
  ``surface_thickness``. Of their opt-in extensions both fused backends render the
  ``background`` (composited onto their output, :func:`voxrender.fused.finish`), the CPU
  backend also the expected depth (``return_depth``) and ``density_mode="extinction"``.
- Rays: a homogeneous bundle (no ``camera_ids``) in the volumes' dtype and on their device,
  with at least one ray and one point per ray. Only the densities and features get gradients:
  rays, or a placement of the volumes (world-to-local transform), that require grad take the
  reference path.
- Densities in [0, 1] (with ``density_mode="extinction"``: >= 0, and each ray's lengths
  non-decreasing), checked once on the voxels: on CPU tensors voxels out of range leave the
  render to the reference path (which warns per sample, as PyTorch3D); on accelerators the
  [0, 1] check is queued without a sync and warns from a later call, while the fused backend
  renders.
- Under ``torch.compile`` each fused backend is one opaque custom operator
  (``voxrender::fused_render``, ``voxrender::triton_render``): no graph break.

The checks are :func:`voxrender.fused.fused_ineligible` and :func:`voxrender.fused.prepare_fused`
(plus :func:`voxrender.fused.cpu_ineligible`, :func:`voxrender.triton_render.device_ineligible`
and this module's own); anything else renders on the reference path, with the same numbers.

The request is the renderer's ``backend`` argument, or when that is None the environment
variable ``VOXRENDER_BACKEND``, read at every render (default ``"auto"``). Forcing a backend
that cannot render the inputs raises ``ValueError`` with the reason; there is no silent
fallback. ``"auto"`` never raises where the general path works: on CPU tensors it takes
``"cpu"`` when eligible; on CUDA tensors ``"triton"`` when triton imports (compiled, not
interpreted), the inputs are eligible, deterministic algorithms are off (the Triton backward
adds gradients with atomics, whose order varies run to run) and a one-time self-check on that
device passes (:func:`self_check`: a tiny render and backward against the reference path);
otherwise it warns once per reason and takes the reference path (no warning when the
volumetric function is not a :class:`~voxrender.VolumeSampler`: no fast path exists for it).

After each render the renderer's ``last_backend`` is a :class:`BackendChoice`: the backend that
ran and, for every backend not taken, why.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ._checks import describe
from .fused import FusedInputs, cpu_ineligible, finish, render_cpu
from .triton_render import device_ineligible, interpreted, render_triton

__all__ = ["BACKENDS", "ENV_VAR", "BackendChoice", "check_backend", "resolve_backend", "self_check"]

BACKENDS = ("auto", "reference", "cpu", "triton")
ENV_VAR = "VOXRENDER_BACKEND"

_lock = threading.Lock()
_warned: set[str] = set()
_self_checks: dict[str, str | None] = {}  # device -> failure (None: passed)


@dataclass(frozen=True)
class BackendChoice:
    """Which backend rendered, and why each other one did not.

    Attributes:
        name: ``"reference"``, ``"cpu"`` or ``"triton"``.
        reasons: every backend not taken -> a sentence saying why.
    """

    name: str
    reasons: dict[str, str] = field(default_factory=dict)


def check_backend(backend: object, name: str = "backend") -> str | None:
    """Validate a backend request (None allowed: the environment variable decides)."""
    if backend is None:
        return None
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{name}: expected one of {', '.join(BACKENDS)}, got {describe(backend)}")
    return backend


def resolve_backend(backend: str | None) -> str:
    """The request: ``backend``, or when None ``$VOXRENDER_BACKEND`` (default ``"auto"``)."""
    if backend is not None:
        return check_backend(backend)
    return check_backend(
        os.environ.get(ENV_VAR, "auto") or "auto", f"environment variable {ENV_VAR}"
    )


def _warn_once(reason: str, device: torch.device) -> None:
    if torch.compiler.is_compiling():  # warned eagerly while tracing (once, as always)
        _warn_constant(reason, str(device))
    else:
        _warn_eagerly(reason, str(device))


def _warn_eagerly(reason: str, device: str) -> bool:
    with _lock:
        if reason in _warned:
            return False
        _warned.add(reason)
    warnings.warn(
        f"voxrender: rendering on {device} with the general (reference) path, not the Triton "
        f"backend: {reason}",
        RuntimeWarning,
        stacklevel=5,
    )
    return True


@torch.compiler.assume_constant_result
def _warn_constant(reason: str, device: str) -> bool:
    return _warn_eagerly(reason, device)


def _deterministic_reason() -> str | None:
    if torch.are_deterministic_algorithms_enabled():
        return (
            "deterministic algorithms are enabled (torch.use_deterministic_algorithms): the "
            "Triton backward adds gradients with atomics, whose order varies run to run"
        )
    return None


def _self_check_scene(device: torch.device):
    """A tiny scene on ``device``: volumes with densities of 0 and 1, rays in and out of the box."""
    from .ray_bundle import RayBundle
    from .raymarching import EmissionAbsorptionRaymarcher
    from .volumes import Volumes

    g = torch.Generator().manual_seed(0)
    dens = torch.rand(2, 1, 3, 4, 5, generator=g)
    dens[:, :, 1] = 1.0
    dens[:, :, :, 0] = 0.0
    feats = torch.rand(2, 3, 3, 4, 5, generator=g)
    dens, feats = dens.to(device).requires_grad_(), feats.to(device).requires_grad_()
    volumes = Volumes(densities=dens, features=feats, voxel_size=0.5)
    origins = (torch.rand(2, 6, 3, generator=g) - 0.5) * 4.0
    directions = -origins + torch.rand(2, 6, 3, generator=g) - 0.5  # mostly towards the box
    directions[:, 0] = torch.tensor([0.0, 0.0, 1.0])  # axis-parallel, may miss
    lengths = torch.linspace(0.1, 2.0, 7).expand(2, 6, 7)
    bundle = RayBundle(origins.to(device), directions.to(device), lengths.to(device), None)
    return volumes, bundle, EmissionAbsorptionRaymarcher(surface_thickness=2), (dens, feats)


def _run_self_check(device: torch.device) -> str | None:
    from .fused import prepare_fused
    from .renderer import VolumeSampler

    try:
        volumes, bundle, raymarcher, leaves = _self_check_scene(device)
        inputs = prepare_fused(volumes, bundle, raymarcher, {})
        if isinstance(inputs, str):
            return f"the self-check scene is not eligible ({inputs})"
        got = render_triton(inputs)
        want = raymarcher(*VolumeSampler(volumes)(bundle))
        cot = torch.randn(got.shape, generator=torch.Generator().manual_seed(1)).to(device)
        grads = torch.autograd.grad((got * cot).sum(), leaves)
        want_grads = torch.autograd.grad((want * cot).sum(), leaves)
        for what, x, y in zip(("images", "densities' grad", "features' grad"),
                              (got, *grads), (want, *want_grads), strict=True):  # fmt: skip
            if not torch.allclose(x, y, atol=1e-4, rtol=1e-3):
                err = (x - y).abs().max().item()
                return f"the self-check's {what} differ from the reference path by {err:.3g}"
    except Exception as error:  # any failure means: do not use this backend here
        return f"the self-check failed ({type(error).__name__}: {error})"
    return None


def self_check(device: torch.device | str) -> str | None:
    """Run (once per device and process) the Triton self-check; why it failed, or None.

    A tiny render (2 batched volumes with densities of exactly 0 and 1, 12 rays of 7 points,
    some missing the box, surface thickness 2) and its backward, with the Triton kernels and
    with the reference path on ``device``: images and both volume gradients must agree to
    ``atol=1e-4, rtol=1e-3`` (float32).
    """
    key = str(torch.device(device))
    if torch.compiler.is_compiling():  # run eagerly while tracing; the result is a constant
        return _self_check_constant(key) or None
    return _self_check_once(key)


def _self_check_once(key: str) -> str | None:
    with _lock:  # one check per device even when threads render at once
        if key not in _self_checks:
            _self_checks[key] = _run_self_check(torch.device(key))
        return _self_checks[key]


@torch.compiler.assume_constant_result
def _self_check_constant(key: str) -> str:
    return _self_check_once(key) or ""


def choose(
    requested: str, device: torch.device, prepare: Callable[[], FusedInputs | str]
) -> tuple[BackendChoice, FusedInputs | None]:
    """Decide the backend for one render.

    Args:
        requested: one of :data:`BACKENDS` (already resolved).
        device: where the render happens (the volumes' device).
        prepare: builds the fused inputs or says why no fused backend applies (called only when
            a fused backend is still possible).

    Returns:
        The choice and, for a fused backend, its inputs.

    Raises:
        ValueError: a forced backend cannot render these inputs (the message says why).
    """
    if requested == "reference":
        why = "backend 'reference' was requested"
        return BackendChoice("reference", {"cpu": why, "triton": why}), None
    reasons: dict[str, str] = {}
    if device.type != "cpu":
        reasons["cpu"] = f"the fused CPU path runs on CPU tensors, these are on {device}"
    if requested == "auto" and device.type == "cpu":  # triton is not even imported
        reasons["triton"] = "auto takes the fused CPU path on CPU tensors"
    else:
        triton_reason = device_ineligible(device) or _deterministic_reason()
        if triton_reason is not None:
            reasons["triton"] = triton_reason
    if requested == "auto":
        if device.type == "cuda" and "triton" not in reasons and interpreted():
            reasons["triton"] = (
                "TRITON_INTERPRET=1: the kernels run in triton's (slow) interpreter, which auto "
                "does not take on CUDA tensors"
            )
        candidate = "cpu" if device.type == "cpu" else "triton"
    else:
        candidate = requested
    if candidate in reasons:
        return _refuse(requested, candidate, reasons, device, structural=False)
    inputs = prepare()
    if isinstance(inputs, str):
        reasons.setdefault("cpu", inputs)
        reasons.setdefault("triton", inputs)
        return _refuse(requested, candidate, reasons, device, structural=True, inputs=inputs)
    if inputs.depth or inputs.extinction:  # not in the Triton kernels (yet)
        what = (
            "return_depth (expected depth per ray)"
            if inputs.depth
            else "density_mode='extinction' (opacity 1 - exp(-sigma * step))"
        )
        reasons.setdefault("triton", f"the raymarcher's {what} is not in the Triton kernels")
    if candidate == "triton" and "triton" in reasons:
        return _refuse(requested, candidate, reasons, device, structural=False)
    if candidate == "cpu":
        reason = cpu_ineligible(inputs)
    elif requested == "auto":  # only auto runs the self-check; a forced backend is the user's
        reason = self_check(device)
        if reason is not None:
            reason = f"the one-time self-check on {device} failed: {reason}"
    else:
        reason = None
    if reason is not None:
        reasons[candidate] = reason
        return _refuse(requested, candidate, reasons, device, structural=False)
    other = "triton" if candidate == "cpu" else "cpu"
    reasons.setdefault(other, f"auto took {candidate!r}" if requested == "auto" else
                       f"backend {candidate!r} was requested")  # fmt: skip
    reasons["reference"] = f"the {candidate!r} backend renders these inputs"
    return BackendChoice(candidate, reasons), inputs


def _refuse(requested, candidate, reasons, device, *, structural, inputs=None):
    """Forced: raise with the reason. Auto: the reference path (warning once on CUDA)."""
    if requested != "auto":
        raise ValueError(
            f"backend: {requested!r} cannot render these inputs: {reasons[candidate]} "
            f"(use backend='auto' or 'reference', or {ENV_VAR}=auto)"
        )
    not_a_sampler = structural and inputs is not None and inputs.startswith(_NOT_A_SAMPLER)
    if device.type == "cuda" and not not_a_sampler:
        _warn_once(reasons[candidate], device)
    return BackendChoice("reference", reasons), None


_NOT_A_SAMPLER = "the volumetric function is not a voxrender VolumeSampler"


def not_a_sampler(volumetric_function) -> str:
    """The reason no fused backend renders an arbitrary volumetric function."""
    return f"{_NOT_A_SAMPLER} (it is {type(volumetric_function).__name__})"


def run(choice: BackendChoice, inputs: FusedInputs | None, bounded: bool) -> torch.Tensor | None:
    """Images ``(B, ..., C_out)`` from the chosen fused backend, or None for the reference path."""
    if choice.name == "cpu":
        return finish(inputs, render_cpu(inputs, bounded))
    if choice.name == "triton":  # no per-sample tensors: bounded memory whatever `bounded`
        return finish(inputs, render_triton(inputs))
    return None

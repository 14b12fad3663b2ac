"""The general (reference) path runs on ``meta`` tensors: no host sync, nothing on another device.

A meta tensor has a shape, a dtype and a device but no data, so reading a value (``.item()``,
``bool(t)``, ``.tolist()``, a data-dependent shape such as ``nonzero``) raises, and every
operation runs its shape logic only. The general path - cameras -> raysampler -> ``Volumes`` ->
``VolumeSampler`` (``sample_grid``) -> raymarcher, forward and backward - is run here on meta
tensors under a dispatch mode that records every tensor any operation reads or writes: all must
be on ``meta`` (a tensor the path makes on the CPU, e.g. ``torch.tensor(...)`` without a
device, would be a host-to-device copy, or a CPU scalar mixed into device math), and no
operation that reads values back to the host may run. On CUDA the same code therefore issues
no synchronising read; ``test_render_does_not_synchronize_on_cuda`` checks that directly with
``torch.cuda.set_sync_debug_mode("error")`` where a GPU is present.

What legitimately cannot run on meta, and is therefore left out:

- value checks (densities in [0, 1], voxel sizes > 0, camera indices in range): they read the
  data, so they run only on CPU tensors, where reading is free (``voxrender/_checks.py``);
  on any other device, meta included, they are skipped: they would be a device sync;
- raysampling with a ``mask`` (``MultinomialRaysampler(...)(mask=...)``): how many rays it
  draws depends on the mask's values (PyTorch3D's rule), one read by design;
- ``n_rays_total`` (drawn cameras): the cameras are drawn on the host, as PyTorch3D does.

The ``Volumes`` constructor turns Python numbers (grid sizes, a default translation) into small
tensors: :func:`test_volumes_constructor_on_meta` allows exactly that (a constant staged on the
host and copied with ``non_blocking=True``, never a blocking copy) and nothing else.
"""

from __future__ import annotations

import inspect
import traceback

import pytest
import torch
from helpers import needs_cuda
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import voxrender as v

META = torch.device("meta")
# Operations that read tensor values back to the host (or have data-dependent output shapes,
# which on CUDA means a sync to learn the size).
HOST_READS = {
    "aten._local_scalar_dense.default",
    "aten.item.default",
    "aten.nonzero.default",
    "aten.nonzero_static.default",
    "aten.masked_select.default",
    "aten.unique_consecutive.default",
    "aten._unique2.default",
    "aten.equal.default",
    "aten.is_nonzero.default",
}


class DeviceRecorder(TorchDispatchMode):
    """Records every operation whose inputs or outputs leave ``device``, and every host read."""

    def __init__(self, device: torch.device = META):
        super().__init__()
        self.device = device
        self.ops = 0
        self.violations: list[str] = []

    def _where(self) -> str:
        frames = [f for f in traceback.extract_stack() if "/voxrender/" in f.filename]
        if not frames:
            return "(outside voxrender)"
        f = frames[-1]
        return f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.line}"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        if str(func) in HOST_READS:
            self.violations.append(f"host read {func} at {self._where()}")
        out = func(*args, **kwargs)
        for t in tree_flatten((args, kwargs, out))[0]:
            if isinstance(t, torch.Tensor) and t.device != self.device:
                self.violations.append(
                    f"{func} touched a {t.device.type} tensor {tuple(t.shape)} at {self._where()}"
                )
                break
        return out


def _reference_kwargs() -> dict:
    """``backend="reference"`` where the renderers take a backend (the general path)."""
    params = inspect.signature(v.VolumeRenderer.__init__).parameters
    return {"backend": "reference"} if "backend" in params else {}


def _cameras(batch: int = 2) -> v.FoVPerspectiveCameras:
    azim = torch.linspace(0.0, 270.0, batch)
    R, T = v.look_at_view_transform(dist=2.7, elev=torch.full((batch,), 10.0), azim=azim)
    return v.FoVPerspectiveCameras(R=R.to(META), T=T.to(META), device=META)


def _raysampler(kind: str, n_pts: int = 6):
    common = {"n_pts_per_ray": n_pts, "min_depth": 0.5, "max_depth": 4.0}
    if kind == "ndc-grid":
        rs = v.NDCMultinomialRaysampler(image_width=5, image_height=4, **common)
    elif kind == "ndc-random":
        rs = v.NDCMultinomialRaysampler(
            image_width=5, image_height=4, n_rays_per_image=7, stratified_sampling=True, **common
        )
    elif kind == "montecarlo":
        rs = v.MonteCarloRaysampler(-1.0, 1.0, -1.0, 1.0, 9, unit_directions=True, **common)
    else:
        raise AssertionError(kind)
    return rs.to(META)


def _volume_tensors(shape=(5, 6, 7), channels: int = 3):
    d = torch.rand((1, *shape), device=META, requires_grad=True)
    f = torch.rand((channels, *shape), device=META, requires_grad=True)
    return d, f


def _volumes(d, f, batch: int, expanded: bool = True, **kwargs) -> v.Volumes:
    if expanded:  # the tutorial's form: one grid expanded across the batch
        dd, ff = d[None].expand(batch, *d.shape), f[None].expand(batch, *f.shape)
    else:
        dd, ff = (
            torch.stack([d * (i + 1) / batch for i in range(batch)]),
            f[None].repeat(batch, 1, 1, 1, 1),
        )
    return v.Volumes(densities=dd, features=ff, voxel_size=0.4, **kwargs)


def _check(recorder: DeviceRecorder) -> None:
    assert recorder.ops > 0, "the recorder saw no operation: the test checks nothing"
    assert not recorder.violations, "\n".join(dict.fromkeys(recorder.violations))


RENDER_CASES = {
    # name: (raysampler, raymarcher, sample_mode, chunk_size, expanded volumes)
    "ea-grid": ("ndc-grid", "ea", "bilinear", None, True),
    "ea-grid-batched": ("ndc-grid", "ea", "bilinear", None, False),
    "ea-nearest": ("ndc-grid", "ea", "nearest", None, True),
    "absorption-only": ("ndc-grid", "ao", "bilinear", None, True),
    "ea-chunked": ("ndc-grid", "ea", "bilinear", 6, True),  # checkpointed chunks
    "ea-random-rays": ("ndc-random", "ea", "bilinear", None, True),
    "ea-montecarlo": ("montecarlo", "ea", "bilinear", None, True),
}


@pytest.mark.parametrize("name", list(RENDER_CASES))
def test_volume_renderer_forward_backward_on_meta(name):
    sampler_kind, marcher, mode, chunk_size, expanded = RENDER_CASES[name]
    cameras, raysampler = _cameras(), _raysampler(sampler_kind)
    raymarcher = (
        v.EmissionAbsorptionRaymarcher(surface_thickness=2)
        if marcher == "ea"
        else v.AbsorptionOnlyRaymarcher()
    )
    renderer = v.VolumeRenderer(
        raysampler, raymarcher, sample_mode=mode, chunk_size=chunk_size, **_reference_kwargs()
    )
    d, f = _volume_tensors()
    with DeviceRecorder() as recorder:
        volumes = _volumes(d, f, batch=2, expanded=expanded, volume_translation=(0.1, 0, -0.2))
        images, bundle = renderer(cameras=cameras, volumes=volumes)
        n_forward = recorder.ops
        (images * torch.randn_like(images)).sum().backward()
    # Volumes() may stage its Python constants (checked on their own below); the rest is strict.
    recorder.violations = [x for x in recorder.violations if "volumes.py" not in x]
    _check(recorder)
    assert recorder.ops > n_forward, "the backward pass ran outside the recorder"
    assert images.device == META and bundle.lengths.device == META
    n_channels = 4 if marcher == "ea" else 1
    assert images.shape[0] == 2 and images.shape[-1] == n_channels
    assert d.grad is not None and d.grad.device == META and d.grad.shape == d.shape
    if marcher == "ea":
        assert f.grad is not None and f.grad.shape == f.shape


def test_implicit_renderer_with_volume_sampler_on_meta():
    d, f = _volume_tensors()
    volumes = _volumes(d, f, batch=2)
    renderer = v.ImplicitRenderer(
        _raysampler("ndc-grid"), v.EmissionAbsorptionRaymarcher(), **_reference_kwargs()
    )
    cameras = _cameras()
    with DeviceRecorder() as recorder:
        images, _ = renderer(cameras=cameras, volumetric_function=v.VolumeSampler(volumes))
        images.sum().backward()
    _check(recorder)
    assert images.device == META and d.grad.shape == d.shape and f.grad.shape == f.shape


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_sample_grid_forward_backward_on_meta(mode, padding_mode, align_corners):
    volume = torch.rand((1, 3, 4, 5, 6), device=META, requires_grad=True)
    points = torch.rand((2, 7, 5, 3), device=META, requires_grad=True)
    with DeviceRecorder() as recorder:
        expanded = volume.expand(2, -1, -1, -1, -1)
        out = v.sample_grid(expanded, points, mode, padding_mode, align_corners)
        out.backward(torch.randn_like(out))
    _check(recorder)
    assert out.shape == (2, 7, 5, 3) and out.device == META
    assert volume.grad.shape == volume.shape and points.grad.shape == points.shape


def test_volume_sampler_and_raymarchers_on_meta():
    d, f = _volume_tensors()
    bundle = _raysampler("ndc-grid")(cameras=_cameras())
    bundle = v.RayBundle(
        bundle.origins.requires_grad_(True),
        bundle.directions.requires_grad_(True),
        bundle.lengths,
        bundle.xys,
    )
    with DeviceRecorder() as recorder:
        volumes = _volumes(d, f, batch=2)
        densities, features = v.VolumeSampler(volumes, padding_mode="border")(bundle)
        outs = [
            v.EmissionAbsorptionRaymarcher()(rays_densities=densities, rays_features=features),
            v.AbsorptionOnlyRaymarcher()(rays_densities=densities),
            v.emission_absorption(densities, features, surface_thickness=3, eps=0.0),
            v.transmittance_from_densities(densities[..., 0]),
            v.render_weights_from_densities(densities[..., 0]),
            v.opacity_from_densities(densities[..., 0]),
        ]
        sum(o.sum() for o in outs).backward()
    recorder.violations = [x for x in recorder.violations if "volumes.py" not in x]
    _check(recorder)
    assert bundle.origins.grad.device == META and d.grad.shape == d.shape


def test_volumes_constructor_on_meta():
    """Only Python constants may be staged on the host, and only with a non-blocking copy."""
    d, f = _volume_tensors()
    staged: list[str] = []

    class Staging(DeviceRecorder):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = str(func)
            # torch.tensor(python values): created on the host, then copied without blocking.
            if name == "aten.lift_fresh.default":
                staged.append(name)
                return func(*args, **kwargs)
            if name == "aten._to_copy.default" and args[0].device.type == "cpu":
                assert kwargs.get("non_blocking") is True, f"blocking host copy at {self._where()}"
                assert kwargs.get("device") == META and args[0].numel() <= 64
                staged.append(name)
                return func(*args, **kwargs)
            return super().__torch_dispatch__(func, types, args, kwargs)

    with Staging() as recorder:
        volumes = _volumes(d, f, batch=3, volume_translation=(0.5, 0.0, -1.0))
        for x in (
            volumes.get_grid_sizes(),
            volumes.densities(),
            volumes.get_local_to_world_coords_transform().get_matrix(),
        ):
            assert x.device == META
        points = volumes.world_to_local_coords(torch.rand((3, 8, 3), device=META))
        assert points.device == META
    _check(recorder)


@needs_cuda
def test_render_does_not_synchronize_on_cuda():
    """The general path's render and backward issue no synchronising CUDA call."""
    device = torch.device("cuda")
    azim = torch.linspace(0.0, 270.0, 2)
    R, T = v.look_at_view_transform(dist=2.7, elev=torch.full((2,), 10.0), azim=azim)
    cameras = v.FoVPerspectiveCameras(R=R.to(device), T=T.to(device), device=device)
    raysampler = v.NDCMultinomialRaysampler(
        image_width=8, image_height=8, n_pts_per_ray=8, min_depth=0.5, max_depth=4.0
    ).to(device)
    renderer = v.VolumeRenderer(raysampler, v.EmissionAbsorptionRaymarcher(), **_reference_kwargs())
    d = torch.rand((1, 6, 6, 6), device=device, requires_grad=True)
    f = torch.rand((3, 6, 6, 6), device=device, requires_grad=True)
    for checked in (False, True):  # the first call initialises things (cuBLAS, kernels)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error" if checked else "default")
        try:
            volumes = v.Volumes(
                densities=d[None].expand(2, -1, -1, -1, -1),
                features=f[None].expand(2, -1, -1, -1, -1),
                voxel_size=0.5,
            )
            images, _ = renderer(cameras=cameras, volumes=volumes)
            images.sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert torch.isfinite(images).all() and d.grad.abs().sum() > 0

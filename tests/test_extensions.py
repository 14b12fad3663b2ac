"""Opt-in extensions PyTorch3D users ask for (issue 14).

Expected depth, a background colour, ``padding_mode`` on ``VolumeRenderer``, per-camera depth
tensors in the raysamplers and the extinction (``1 - exp(-sigma * step)``) density mode.

Each: the defaults unchanged (and equal to a live PyTorch3D where it is importable), an
analytic case, gradcheck in float64, bad input naming the argument, and the backend dispatch
(what the fused backends render, and the reason when they do not).
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_close

from voxrender import (
    AbsorptionOnlyRaymarcher,
    EmissionAbsorptionRaymarcher,
    FoVPerspectiveCameras,
    ImplicitRenderer,
    MonteCarloRaysampler,
    NDCMultinomialRaysampler,
    RayBundle,
    VolumeRenderer,
    Volumes,
    VolumeSampler,
    look_at_view_transform,
)
from voxrender.raymarching import emission_absorption

try:
    from reference.oracle import import_pytorch3d

    PYTORCH3D, _WHY = import_pytorch3d()
except Exception as error:  # pragma: no cover - the oracle is optional
    PYTORCH3D, _WHY = None, f"reference.oracle is not importable ({error})"
needs_pytorch3d = pytest.mark.skipif(PYTORCH3D is None, reason=f"no PyTorch3D: {_WHY}")


def _rays(n=3, p=5, c=2, dtype=torch.float64, seed=0):
    """Densities ``(n, p, 1)`` in [0, 1], features ``(n, p, c)``, sorted lengths ``(n, p)``."""
    g = torch.Generator().manual_seed(seed)
    dens = torch.rand(n, p, 1, generator=g, dtype=dtype)
    feats = torch.rand(n, p, c, generator=g, dtype=dtype)
    lengths = torch.rand(n, p, generator=g, dtype=dtype).cumsum(-1) + 0.5
    return dens, feats, lengths


def _cameras(n=2, dtype=torch.float32):
    R, T = look_at_view_transform(dist=2.7, azim=torch.linspace(0, 90, n))
    return FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype))


def _volumes(n=2, dtype=torch.float32, seed=0, grad=False, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    dens = (scale * torch.rand(n, 1, 4, 4, 4, generator=g)).to(dtype).requires_grad_(grad)
    feats = torch.rand(n, 3, 4, 4, 4, generator=g).to(dtype).requires_grad_(grad)
    return Volumes(densities=dens, features=feats, voxel_size=0.6), (dens, feats)


def _raysampler(**kwargs):
    args = dict(image_width=4, image_height=3, n_pts_per_ray=6, min_depth=1.5, max_depth=4.0)
    return NDCMultinomialRaysampler(**{**args, **kwargs})


# ---------------------------------------------------------------------------------------------
# Defaults: unchanged, PyTorch3D's
# ---------------------------------------------------------------------------------------------


def test_default_raymarchers_unchanged():
    dens, feats, lengths = _rays(dtype=torch.float32)
    bundle = RayBundle(torch.zeros(3, 3), torch.ones(3, 3), lengths, None)
    want = emission_absorption(dens, feats)
    for march in (
        EmissionAbsorptionRaymarcher(),
        EmissionAbsorptionRaymarcher(density_mode="opacity", background=None, return_depth=False),
    ):
        assert march.is_pytorch3d_model
        assert torch.equal(march(dens, feats, ray_bundle=bundle), want)
    assert torch.equal(AbsorptionOnlyRaymarcher()(dens, ray_bundle=bundle), want[..., -1:])
    assert EmissionAbsorptionRaymarcher().state_dict() == {}


@needs_pytorch3d
def test_defaults_equal_live_pytorch3d():
    # the module's attributes, not an import: other tests may hide pytorch3d from sys.modules
    TheirEA = PYTORCH3D.renderer.EmissionAbsorptionRaymarcher
    TheirSampler = PYTORCH3D.renderer.NDCMultinomialRaysampler
    TheirRenderer = PYTORCH3D.renderer.VolumeRenderer
    TheirVolumes = PYTORCH3D.structures.Volumes
    dens, feats, _ = _rays(dtype=torch.float32)
    assert_close(EmissionAbsorptionRaymarcher()(dens, feats), TheirEA()(dens, feats))
    cams = _cameras()
    vols, (d, f) = _volumes()
    theirs = TheirVolumes(densities=d, features=f, voxel_size=0.6)
    kwargs = dict(image_width=4, image_height=3, n_pts_per_ray=6, min_depth=1.5, max_depth=4.0)
    want, _ = TheirRenderer(TheirSampler(**kwargs), TheirEA())(cameras=cams, volumes=theirs)
    for backend in ("reference", "cpu"):
        renderer = VolumeRenderer(
            _raysampler(), EmissionAbsorptionRaymarcher(), padding_mode="zeros", backend=backend
        )
        got, _ = renderer(cameras=cams, volumes=vols)
        assert_close(got, want)


# ---------------------------------------------------------------------------------------------
# density_mode="extinction"
# ---------------------------------------------------------------------------------------------


def test_extinction_constant_slab():
    """Sigma constant along evenly spaced samples: known weights, opacity and depth."""
    sigma, step, p = 0.7, 0.25, 6
    lengths = 1.0 + step * torch.arange(p, dtype=torch.float64)[None]  # (1, P)
    dens = torch.full((1, p, 1), sigma, dtype=torch.float64)
    feats = torch.ones(1, p, 1, dtype=torch.float64)
    alpha = 1.0 - math.exp(-sigma * step)
    weights = torch.tensor(
        [math.exp(-sigma * step * i) * alpha for i in range(p)], dtype=torch.float64
    )
    weights[-1] = math.exp(-sigma * step * (p - 1))  # last step 1e10: the rest is stopped there
    march = EmissionAbsorptionRaymarcher(density_mode="extinction", return_depth=True)
    out = march(dens, feats, eps=0.0, rays_lengths=lengths)  # (1, 3)
    assert_close(out[0, 0], weights.sum())
    assert_close(out[0, 1], torch.tensor(1.0, dtype=torch.float64))
    assert_close(out[0, 2], (weights * lengths[0]).sum())
    # a finite last step: opacity 1 - exp(-sigma * total path)
    ao = AbsorptionOnlyRaymarcher(density_mode="extinction", last_step_length=step)
    got = ao(dens, rays_lengths=lengths)
    assert_close(got, torch.tensor([[1.0 - math.exp(-sigma * step * p)]], dtype=torch.float64))
    ea = EmissionAbsorptionRaymarcher(density_mode="extinction", last_step_length=0.0)
    bundle = RayBundle(torch.zeros(1, 3), torch.ones(1, 3), lengths, None)
    got = ea(dens, feats, eps=0.0, ray_bundle=bundle)
    assert_close(
        got[0, 1], torch.tensor(1.0 - math.exp(-sigma * step * (p - 1)), dtype=torch.float64)
    )


def test_extinction_zero_density_is_transparent():
    dens, feats, lengths = _rays()
    march = EmissionAbsorptionRaymarcher(density_mode="extinction")
    out = march(torch.zeros_like(dens), feats, rays_lengths=lengths)
    assert torch.equal(out, torch.zeros_like(out))


def test_extinction_warns_on_negative_sigma():
    dens, feats, lengths = _rays()
    with pytest.warns(UserWarning, match="outside of valid range"):
        EmissionAbsorptionRaymarcher(density_mode="extinction")(-dens, feats, rays_lengths=lengths)
    with pytest.raises(ValueError, match="outside of valid range"):
        AbsorptionOnlyRaymarcher(density_mode="extinction", strict_densities=True)(
            -dens, rays_lengths=lengths
        )
    # sigma > 1 is fine (it is not an opacity)
    EmissionAbsorptionRaymarcher(density_mode="extinction", strict_densities=True)(
        5.0 * dens, feats, rays_lengths=lengths
    )


def test_extinction_gradcheck():
    dens, feats, lengths = _rays(n=2, p=4)
    dens = (dens * 3.0).requires_grad_()
    feats.requires_grad_()
    lengths.requires_grad_()

    def ea(d, f, t):
        march = EmissionAbsorptionRaymarcher(density_mode="extinction", last_step_length=0.3)
        return march(d, f, eps=0.0, rays_lengths=t)

    def ao(d, t):
        return AbsorptionOnlyRaymarcher(density_mode="extinction")(d, rays_lengths=t)

    assert torch.autograd.gradcheck(ea, (dens, feats, lengths))
    assert torch.autograd.gradcheck(ao, (dens, lengths))


# ---------------------------------------------------------------------------------------------
# return_depth
# ---------------------------------------------------------------------------------------------


def test_depth_analytic():
    lengths = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3, dtype=torch.float64)  # (3, 4)
    dens = torch.zeros(3, 4, 1, dtype=torch.float64)
    dens[0, 2] = 1.0  # opaque at t = 3
    dens[1, 1] = 0.5  # half opaque at t = 2; ray 2 empty
    feats = torch.ones(3, 4, 2, dtype=torch.float64)
    raw = EmissionAbsorptionRaymarcher(return_depth=True)(dens, feats, rays_lengths=lengths)
    norm = EmissionAbsorptionRaymarcher(return_depth=True, normalize_depth=True)
    mean = norm(dens, feats, rays_lengths=lengths)
    assert raw.shape == (3, 4)
    assert_close(raw[:, -1], torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64))
    assert_close(mean[:, -1], torch.tensor([3.0, 2.0, 0.0], dtype=torch.float64))
    assert torch.equal(raw[:, :-1], emission_absorption(dens, feats))  # the rest unchanged


@pytest.mark.filterwarnings("ignore:One or more elements")  # gradcheck steps below 0
def test_depth_gradcheck_and_empty_rays_finite_grads():
    dens, feats, lengths = _rays(n=2, p=4)
    dens[1] = 0.0  # an empty ray: the normalised depth's denominator is 0
    dens.requires_grad_()
    feats.requires_grad_()
    lengths.requires_grad_()
    for normalize in (False, True):
        march = EmissionAbsorptionRaymarcher(
            surface_thickness=2, return_depth=True, normalize_depth=normalize
        )

        def f(d, x, t, march=march):
            return march(d, x, eps=0.0, rays_lengths=t)

        assert torch.autograd.gradcheck(f, (dens, feats, lengths))
        out = f(dens, feats, lengths)
        grads = torch.autograd.grad(out[..., -1].sum(), (dens, lengths))
        assert all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------------------------------------
# background
# ---------------------------------------------------------------------------------------------


def test_background_composite():
    dens, feats, lengths = _rays(c=3)
    bg = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    plain = emission_absorption(dens, feats)
    got = EmissionAbsorptionRaymarcher(background=bg)(dens, feats)
    assert_close(got[..., :3], plain[..., :3] + (1.0 - plain[..., 3:]) * bg)
    assert torch.equal(got[..., 3:], plain[..., 3:])
    empty = EmissionAbsorptionRaymarcher(background=[0.2, 0.5, 1.0])(torch.zeros_like(dens), feats)
    assert_close(empty[..., :3], bg.expand(3, 3))
    both = EmissionAbsorptionRaymarcher(background=bg, return_depth=True)
    out = both(dens, feats, rays_lengths=lengths)
    assert_close(out[..., :4], got)
    assert out.shape == (3, 5)


def test_background_gradcheck_and_parameter():
    dens, feats, _ = _rays(n=2, p=3, c=2)
    bg = torch.tensor([0.3, 0.9], dtype=torch.float64, requires_grad=True)
    dens.requires_grad_()
    feats.requires_grad_()

    def f(d, x, b):
        return EmissionAbsorptionRaymarcher(background=b)(d, x)

    assert torch.autograd.gradcheck(f, (dens, feats, bg))
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    march = EmissionAbsorptionRaymarcher(background=param)
    assert list(march.parameters()) == [param]
    out = march(dens, feats)
    (grad,) = torch.autograd.grad(out[..., 0].sum(), param)
    assert_close(grad[0], (1.0 - out[..., -1]).sum().detach())


# ---------------------------------------------------------------------------------------------
# Bad input names the argument
# ---------------------------------------------------------------------------------------------


def test_bad_raymarcher_arguments():
    dens, feats, lengths = _rays(c=3)
    with pytest.raises(ValueError, match="density_mode: expected one of"):
        EmissionAbsorptionRaymarcher(density_mode="sigma")
    with pytest.raises(ValueError, match="density_mode: expected one of"):
        AbsorptionOnlyRaymarcher(density_mode=None)
    with pytest.raises(ValueError, match="last_step_length: expected a number >= 0"):
        EmissionAbsorptionRaymarcher(last_step_length=-1.0)
    with pytest.raises(ValueError, match=r"background: expected shape \(3,\)"):
        EmissionAbsorptionRaymarcher(background=[0.0, 1.0])(dens, feats)
    with pytest.raises(ValueError, match=r"background: expected shape \(C,\)"):
        EmissionAbsorptionRaymarcher(background=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="background: expected a floating-point tensor"):
        EmissionAbsorptionRaymarcher(background=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="background: expected"):
        EmissionAbsorptionRaymarcher(background="white")
    with pytest.raises(ValueError, match="return_depth: expected a bool"):
        EmissionAbsorptionRaymarcher(return_depth="yes")
    with pytest.raises(ValueError, match="rays_lengths: return_depth needs the ray lengths"):
        EmissionAbsorptionRaymarcher(return_depth=True)(dens, feats)
    with pytest.raises(ValueError, match="rays_lengths: density_mode='extinction' needs"):
        AbsorptionOnlyRaymarcher(density_mode="extinction")(dens)
    with pytest.raises(ValueError, match=r"rays_lengths: expected shape \(3, 5\)"):
        EmissionAbsorptionRaymarcher(return_depth=True)(dens, feats, rays_lengths=lengths[:, :4])
    bundle = RayBundle(torch.zeros(3, 3), torch.ones(3, 3), lengths[:2], None)
    with pytest.raises(ValueError, match=r"expected shape \(3, 5\)"):
        EmissionAbsorptionRaymarcher(density_mode="extinction")(dens, feats, ray_bundle=bundle)


# ---------------------------------------------------------------------------------------------
# Renderers and backends
# ---------------------------------------------------------------------------------------------


def _render(
    march, backend, *, grad=True, chunk_size=None, padding_mode="zeros", dtype=None, scale=1.0
):
    dtype = dtype or torch.float32
    vols, leaves = _volumes(dtype=dtype, grad=grad, scale=scale)
    renderer = VolumeRenderer(
        _raysampler(), march, padding_mode=padding_mode, chunk_size=chunk_size, backend=backend
    )
    images, _ = renderer(cameras=_cameras(dtype=dtype), volumes=vols)
    return images, leaves, renderer


def _images_and_grads(march, backend, **kwargs):
    images, leaves, renderer = _render(march, backend, **kwargs)
    cot = torch.rand(images.shape, generator=torch.Generator().manual_seed(3)).to(images.dtype)
    grads = torch.autograd.grad((images * cot).sum(), leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves, strict=True)]
    return images, grads, renderer  # (features unused by absorption-only: zero gradients)


def test_background_on_the_fused_cpu_backend():
    march = EmissionAbsorptionRaymarcher(background=torch.tensor([0.1, 0.4, 0.9]))
    want, want_grads, ref = _images_and_grads(march, "reference")
    got, got_grads, cpu = _images_and_grads(march, "auto")
    assert cpu.last_backend.name == "cpu" and ref.last_backend.name == "reference"
    assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert_close(g, w, kind="grad")
    with pytest.raises(ValueError, match=r"background: expected shape \(3,\)"):
        _render(EmissionAbsorptionRaymarcher(background=[0.0, 1.0]), "cpu")


def test_background_on_the_triton_backend():
    pytest.importorskip("triton", reason="triton is not installed")
    from voxrender import triton_render

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reason = triton_render.device_ineligible(device)
    if reason is not None:
        pytest.skip(f"Triton kernels cannot run on {device}: {reason}")
    march = EmissionAbsorptionRaymarcher(background=torch.tensor([0.1, 0.4, 0.9]))
    vols, leaves = _volumes(n=1, grad=True)
    vols = vols.to(device)
    bundle = _raysampler(image_width=2, image_height=2, n_pts_per_ray=4)(_cameras(1).to(device))
    results = []
    for backend in ("reference", "triton"):
        renderer = ImplicitRenderer(lambda **kw: bundle, march, backend=backend)
        images, _ = renderer(cameras=None, volumetric_function=VolumeSampler(vols))
        assert renderer.last_backend.name == backend
        results.append((images, torch.autograd.grad(images.sum(), leaves)))
    (want, want_grads), (got, got_grads) = results
    assert_close(got, want, atol=1e-5, rtol=1e-4)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert_close(g, w, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("last_step", [1e10, 0.3])
@pytest.mark.parametrize("kind", ["ea", "ao", "ea-depth-background"])
def test_extinction_on_the_fused_cpu_backend(kind, last_step):
    """The fused CPU path renders extinction densities: the reference path's images and gradients.

    Steps come from the whole rays, so a window's last sample gets the step to the next one; the
    volume gradients match too. Densities > 1 are fine; negative ones, decreasing lengths and the
    Triton backend take (or name) the reference path.
    """
    kwargs = dict(density_mode="extinction", last_step_length=last_step)
    if kind == "ao":
        march = AbsorptionOnlyRaymarcher(**kwargs)
    elif kind == "ea":
        march = EmissionAbsorptionRaymarcher(**kwargs)
    else:
        march = EmissionAbsorptionRaymarcher(
            2, return_depth=True, background=torch.tensor([0.5, 0.5, 1.0]), **kwargs
        )
    want, want_grads, _ = _images_and_grads(march, "reference", scale=4.0)
    got, got_grads, cpu = _images_and_grads(march, "auto", scale=4.0)
    assert cpu.last_backend.name == "cpu"
    assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert_close(g, w, kind="grad")
    with pytest.raises(ValueError, match="backend: 'triton' cannot render") as info:
        _render(march, "triton")
    if "triton is not installed" not in str(info.value):
        assert "extinction" in str(info.value) or "return_depth" in str(info.value)
    with pytest.warns(UserWarning, match="outside of valid range"):
        _, _, negative = _render(march, "auto", scale=-1.0)
    assert "not all >= 0" in negative.last_backend.reasons["cpu"]
    vols, _ = _volumes()
    backwards = VolumeRenderer(_raysampler(min_depth=4.0, max_depth=1.5), march)
    with pytest.warns(UserWarning, match="outside of valid range"):
        backwards(cameras=_cameras(), volumes=vols)
    assert "lengths decrease" in backwards.last_backend.reasons["cpu"]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("surface_thickness", [1, 2])
def test_depth_on_the_fused_cpu_backend(normalize, surface_thickness):
    """The fused CPU path renders the depth channel: the reference path's images and gradients.

    With and without a background, volume gradients included; the Triton backend refuses it.
    """
    for background in (None, torch.tensor([0.1, 0.4, 0.9])):
        march = EmissionAbsorptionRaymarcher(
            surface_thickness,
            return_depth=True,
            normalize_depth=normalize,
            background=background,
        )
        want, want_grads, _ = _images_and_grads(march, "reference")
        got, got_grads, cpu = _images_and_grads(march, "auto")
        assert cpu.last_backend.name == "cpu" and got.shape[-1] == 5
        assert_close(got, want)
        for g, w in zip(got_grads, want_grads, strict=True):
            assert_close(g, w, kind="grad")
        bounded, _, _ = _images_and_grads(march, "cpu", chunk_size=5)
        assert_close(bounded, want)
    with pytest.raises(ValueError, match="backend: 'triton' cannot render") as info:
        _render(march, "triton")
    if "triton is not installed" not in str(info.value):
        assert "return_depth" in str(info.value)


def test_depth_through_the_renderer_chunked_and_analytic():
    """A camera looking down the z axis at an opaque box: hitting rays get the near face's depth.

    Every ray that hits the box has the depth of its near face (nearest sampling, thin steps).
    """
    march = EmissionAbsorptionRaymarcher(return_depth=True, normalize_depth=True)
    whole, _, _ = _render(march, "reference")
    chunked, _, _ = _render(march, "reference", chunk_size=5)  # checkpointed chunks
    assert whole.shape[-1] == 5
    assert_close(chunked, whole)
    R, T = look_at_view_transform(dist=3.0, elev=0.0, azim=0.0)
    cams = FoVPerspectiveCameras(R=R, T=T, fov=10.0)
    vols = Volumes(
        densities=torch.ones(1, 1, 4, 4, 4), features=torch.ones(1, 3, 4, 4, 4), voxel_size=0.25
    )  # the box spans [-0.5, 0.5]^3, its near face at camera depth 2.5
    sampler = NDCMultinomialRaysampler(
        image_width=3, image_height=3, n_pts_per_ray=401, min_depth=2.0, max_depth=4.0
    )
    images, _ = VolumeRenderer(sampler, march, sample_mode="nearest")(cameras=cams, volumes=vols)
    assert_close(images[..., 3], torch.ones(1, 3, 3))
    assert_close(images[..., 4], torch.full((1, 3, 3), 2.5), atol=0.006, rtol=0.0)


def test_padding_mode_on_volume_renderer():
    march = EmissionAbsorptionRaymarcher()
    zeros, _, _ = _render(march, "auto", grad=False)
    for mode in ("border", "reflection"):
        got, _, renderer = _render(march, "auto", grad=False, padding_mode=mode)
        assert renderer.last_backend.name == "reference"
        assert f"padding_mode={mode!r}" in renderer.last_backend.reasons["cpu"]
        vols, _ = _volumes()
        bundle = _raysampler()(_cameras())
        want = march(*VolumeSampler(vols, padding_mode=mode)(bundle), ray_bundle=bundle)
        assert_close(got, want)
        assert not torch.allclose(got, zeros)  # rays leave the grid: the padding shows
        with pytest.raises(ValueError, match="padding_mode"):
            _render(march, "cpu", grad=False, padding_mode=mode)
    with pytest.raises(ValueError, match="padding_mode: expected one of"):
        VolumeRenderer(_raysampler(), march, padding_mode="wrap")


@pytest.mark.parametrize("backend, padding", [("reference", "border"), ("cpu", "zeros")])
def test_renderer_gradcheck_with_all_extensions(backend, padding):
    """Gradcheck (float64, tiny) of densities, features and background through the renderer.

    On the reference path and on the fused CPU path.
    """
    vols_d = torch.rand(1, 1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    vols_f = torch.rand(1, 2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    bg = torch.tensor([0.5, 0.25], dtype=torch.float64, requires_grad=True)
    cams = _cameras(1, dtype=torch.float64)
    sampler = _raysampler(image_width=2, image_height=2, n_pts_per_ray=4)

    def f(d, x, b):
        march = EmissionAbsorptionRaymarcher(
            density_mode="extinction", background=b, return_depth=True
        )
        vols = Volumes(densities=d, features=x, voxel_size=1.0)
        renderer = VolumeRenderer(sampler, march, padding_mode=padding, backend=backend)
        images = renderer(cameras=cams, volumes=vols)[0]
        assert renderer.last_backend.name == backend
        return images

    assert torch.autograd.gradcheck(f, (vols_d, vols_f, bg))


# ---------------------------------------------------------------------------------------------
# Per-camera min_depth / max_depth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ndc", "montecarlo"])
def test_per_camera_depths(kind):
    cams = _cameras(2)

    def make(lo, hi):
        if kind == "ndc":
            return _raysampler(min_depth=lo, max_depth=hi)
        return MonteCarloRaysampler(-1, 1, -1, 1, 5, 6, min_depth=lo, max_depth=hi)

    lo, hi = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.5])
    torch.manual_seed(0)
    got = make(lo, hi)(cams)
    for i in range(2):
        torch.manual_seed(0)
        want = make(float(lo[i]), float(hi[i]))(cams)
        assert_close(got.lengths[i], want.lengths[i])
        assert_close(got.origins[i], want.origins[i])
    for i in range(2):
        assert torch.all(got.lengths[i, ..., 0] == lo[i])
        assert torch.all(got.lengths[i, ..., -1] == hi[i])  # lerp: exact at both ends
    # a mix of a number and a tensor, and tensors equal to a number: as the number
    torch.manual_seed(0)
    same = make(torch.tensor([1.5, 1.5]), 4.0)(cams)
    torch.manual_seed(0)
    assert_close(same.lengths, make(1.5, 4.0)(cams).lengths)


def test_per_camera_depths_override_packed_and_gradcheck():
    cams = _cameras(3)
    sampler = _raysampler()
    lo, hi = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 3.0, 4.0])
    torch.manual_seed(1)
    packed = sampler(cams, min_depth=lo, max_depth=hi, n_rays_total=7)
    ids = packed.camera_ids.repeat_interleave(packed.camera_counts)
    assert_close(packed.lengths[..., 0].reshape(-1), lo[ids])
    assert_close(packed.lengths[..., -1].reshape(-1), hi[ids])
    cams64 = _cameras(2, dtype=torch.float64)
    lo = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    hi = torch.tensor([3.0, 2.5], dtype=torch.float64, requires_grad=True)
    small = _raysampler(image_width=2, image_height=1, n_pts_per_ray=3)
    assert torch.autograd.gradcheck(
        lambda a, b: small(cams64, min_depth=a, max_depth=b).lengths, (lo, hi)
    )


def test_bad_per_camera_depths():
    cams = _cameras(2)
    with pytest.raises(ValueError, match=r"min_depth: expected shape \(2,\), one depth per camera"):
        _raysampler(min_depth=torch.tensor([1.0, 1.5, 2.0]))(cams)
    with pytest.raises(ValueError, match=r"max_depth: expected shape \(2,\)"):
        _raysampler()(cams, max_depth=torch.tensor([3.0]))
    with pytest.raises(
        ValueError, match=r"min_depth: expected a number or a tensor of shape \(B,\)"
    ):
        _raysampler(min_depth=torch.ones(2, 1))
    with pytest.raises(ValueError, match="max_depth: expected a floating-point tensor") as info:
        MonteCarloRaysampler(-1, 1, -1, 1, 5, 6, min_depth=1.0, max_depth=torch.tensor([3, 4]))
    assert isinstance(info.value, TypeError)
    with pytest.raises(ValueError, match="min_depth: expected finite depths"):
        _raysampler(min_depth=torch.tensor([1.0, float("nan")]))(cams)


def test_per_camera_depths_render_on_every_backend():
    """Per-camera depths are per-ray lengths, which the fused CPU path renders.

    Same images and volume gradients; depths that need a gradient take the reference path, which
    gives it.
    """
    lo, hi = torch.tensor([1.5, 2.0]), torch.tensor([4.0, 3.5])
    sampler = _raysampler(min_depth=lo, max_depth=hi)
    results = {}
    for backend in ("reference", "cpu"):
        vols, leaves = _volumes(grad=True)
        renderer = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher(), backend=backend)
        images, _ = renderer(cameras=_cameras(), volumes=vols)
        assert renderer.last_backend.name == backend
        results[backend] = (images, torch.autograd.grad(images.sum(), leaves))
    assert_close(results["cpu"][0], results["reference"][0])
    for g, w in zip(results["cpu"][1], results["reference"][1], strict=True):
        assert_close(g, w, kind="grad")
    lo = lo.clone().requires_grad_()
    renderer = VolumeRenderer(
        _raysampler(min_depth=lo, max_depth=hi), EmissionAbsorptionRaymarcher()
    )
    images, _ = renderer(cameras=_cameras(), volumes=_volumes()[0])
    assert renderer.last_backend.name == "reference"
    assert "require grad" in renderer.last_backend.reasons["cpu"]
    (grad,) = torch.autograd.grad(images[..., :3].sum(), lo)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["extinction", "depth"])
def test_fused_windows_narrower_than_the_rays(kind, monkeypatch):
    """Rays much longer than the volume: the fused CPU path still matches the reference path.

    It computes only each ray's window of samples that can read the volume; its last sample's
    step (extinction) and the skipped samples' zero weights (depth) still give the reference
    path's images and gradients.
    """
    from voxrender import fused

    widths = []
    schedule = fused._schedule

    def spy(a, b, lengths, plan):
        sched = schedule(a, b, lengths, plan)
        widths.extend(w for _, _, w in sched.chunks)
        return sched

    monkeypatch.setattr(fused, "_schedule", spy)
    if kind == "extinction":
        march = EmissionAbsorptionRaymarcher(density_mode="extinction")
    else:
        march = EmissionAbsorptionRaymarcher(return_depth=True, normalize_depth=True)
    sampler = _raysampler(n_pts_per_ray=40, min_depth=0.5, max_depth=6.0)
    results = {}
    for backend in ("reference", "cpu"):
        vols, leaves = _volumes(grad=True, scale=3.0 if kind == "extinction" else 1.0)
        renderer = VolumeRenderer(sampler, march, backend=backend)
        images, _ = renderer(cameras=_cameras(), volumes=vols)
        results[backend] = (images, torch.autograd.grad(images.sum(), leaves))
    assert widths and max(widths) < 40  # the windows were used
    assert_close(results["cpu"][0], results["reference"][0])
    for g, w in zip(results["cpu"][1], results["reference"][1], strict=True):
        assert_close(g, w, kind="grad")

"""VolumeSampler, VolumeRenderer, ImplicitRenderer: fixtures, analytic cases, the tutorial loop."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import DEVICES, assert_close, case_names, load_case, run_case

import voxrender
from reference.backends import get_backend
from reference.model import VolumeModel, fit_errors, huber
from voxrender import (
    EmissionAbsorptionRaymarcher,
    FoVPerspectiveCameras,
    ImplicitRenderer,
    NDCMultinomialRaysampler,
    RayBundle,
    VolumeRenderer,
    Volumes,
    VolumeSampler,
    look_at_view_transform,
)

# ----------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", case_names("volume_sampler"))
def test_volume_sampler_matches_pytorch3d(name):
    _, _, out, grads = load_case(name)
    got, got_grads = run_case(name)  # the recorder's calls, with voxrender's objects
    assert set(got) == set(out) and set(got_grads) == set(grads)
    for key, want in out.items():
        assert_close(got[key], want, msg=f"{name} {key}")
    for key, want in grads.items():
        assert_close(got_grads[key], want, kind="grad", msg=f"{name} grad/{key}")


def _render_case(name, device="cpu", dtype=torch.float32):
    """Fixture case ``name`` rendered (the recorder's calls) with the volume on ``device``."""
    inp = load_case(name)[1]
    for key in ("log_densities", "log_colors", "target_images", "target_silhouettes"):
        inp[key] = inp[key].to(device, dtype)
    out, grads = run_case(name, inp)
    images, color_err, sil_err = out["images"], out["color_err"], out["sil_err"]
    return images, color_err, sil_err, grads["log_densities"], grads["log_colors"]


@pytest.mark.parametrize("name", case_names("render"))
def test_render_matches_pytorch3d(name):
    _, _, out, grads = load_case(name)
    images, color_err, sil_err, g_dens, g_col = _render_case(name)
    assert_close(images, out["images"], msg=f"{name} images")
    assert_close(color_err, out["color_err"], msg=f"{name} color_err")
    assert_close(sil_err, out["sil_err"], msg=f"{name} sil_err")
    assert_close(g_dens, grads["log_densities"], kind="grad", msg=f"{name} grad/log_densities")
    assert_close(g_col, grads["log_colors"], kind="grad", msg=f"{name} grad/log_colors")


@pytest.mark.parametrize("device", DEVICES)
def test_render_float64_agrees_with_float32_fixture(device):
    _, _, out, grads = load_case("render_0")
    images, *_, g_col = _render_case("render_0", device=device, dtype=torch.float64)
    assert images.dtype == torch.float64 and images.device.type == device
    assert_close(images.float(), out["images"], msg="render_0 in float64")
    assert_close(g_col.float(), grads["log_colors"], kind="grad")


# ----------------------------------------------------------------------------- no grid_sample


def test_renderer_runs_without_grid_sample(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.nn.functional.grid_sample must not be called")

    monkeypatch.setattr(torch.nn.functional, "grid_sample", forbidden)
    _, _, out, _ = load_case("render_1")
    images, *_, g_dens, g_col = _render_case("render_1")
    assert_close(images, out["images"])
    assert torch.isfinite(g_dens).all() and g_dens.abs().sum() > 0
    assert torch.isfinite(g_col).all() and g_col.abs().sum() > 0


# ----------------------------------------------------------------------------- analytic cases


def _axis_camera(device="cpu", dtype=torch.float32):
    R, T = look_at_view_transform(dist=2.0, elev=0.0, azim=0.0, device=device)
    return FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype), device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_uniform_volume_gives_analytic_opacity(device):
    # A constant density d sampled at P points inside the volume: opacity 1 - (1 - d)^P and the
    # colour is the constant feature times that opacity (EA with eps=0 telescopes exactly).
    d, P = 0.05, 16
    cams = _axis_camera(device)
    raysampler = NDCMultinomialRaysampler(
        image_width=4, image_height=4, n_pts_per_ray=P, min_depth=1.8, max_depth=2.2
    )
    renderer = VolumeRenderer(raysampler, EmissionAbsorptionRaymarcher())
    vol = Volumes(
        densities=torch.full((1, 1, 8, 8, 8), d, device=device),
        features=torch.full((1, 3, 8, 8, 8), 0.5, device=device),
        voxel_size=0.5,
    )
    images, _ = renderer(cameras=cams, volumes=vol, eps=0.0)
    assert images.shape == (1, 4, 4, 4)
    opacity = 1 - (1 - d) ** P
    assert_close(images[..., 3], torch.full((1, 4, 4), opacity, device=device))
    assert_close(images[..., :3], torch.full((1, 4, 4, 3), 0.5 * opacity, device=device))


def test_empty_volume_renders_black_and_transparent():
    cams = _axis_camera()
    raysampler = NDCMultinomialRaysampler(
        image_width=5, image_height=3, n_pts_per_ray=7, min_depth=0.5, max_depth=3.0
    )
    renderer = VolumeRenderer(raysampler, EmissionAbsorptionRaymarcher())
    vol = Volumes(densities=torch.zeros(1, 1, 4, 4, 4), features=torch.rand(1, 3, 4, 4, 4))
    images, _ = renderer(cameras=cams, volumes=vol)
    assert images.shape == (1, 3, 5, 4)
    assert torch.equal(images, torch.zeros_like(images))


def test_implicit_renderer_with_analytic_function_and_kwargs():
    # A ball of radius 0.5 with density 1 inside: rays through the centre are opaque, rays that
    # miss it are transparent; kwargs reach the function.
    seen = {}

    def ball(ray_bundle, cameras, tag=None, **kwargs):
        seen["tag"] = tag
        pts = voxrender.ray_bundle_to_ray_points(ray_bundle)  # (B, H, W, P, 3)
        inside = (pts.norm(dim=-1, keepdim=True) < 0.5).to(pts.dtype)
        return inside, inside.expand(*inside.shape[:-1], 3)

    raysampler = NDCMultinomialRaysampler(
        image_width=9, image_height=9, n_pts_per_ray=64, min_depth=1.0, max_depth=3.0
    )
    renderer = ImplicitRenderer(raysampler, EmissionAbsorptionRaymarcher())
    images, bundle = renderer(cameras=_axis_camera(), volumetric_function=ball, tag="x")
    assert seen["tag"] == "x"
    assert images.shape == (1, 9, 9, 4)
    assert images[0, 4, 4, 3] == pytest.approx(1.0)
    assert images[0, 0, 0, 3] == 0.0
    assert bundle.lengths.shape == (1, 9, 9, 64)


def test_expanded_volume_gradient_skips_the_batch_buffer():
    # The tutorial's volumes: a hook on the expanded tensors would see a (B, ...) gradient if
    # autograd ever built one; it must never fire, and the base still gets its gradient.
    base = torch.rand(1, 6, 6, 6, requires_grad=True)
    colour_base = torch.rand(3, 6, 6, 6, requires_grad=True)
    dens = torch.sigmoid(base)[None].expand(1000, 1, 6, 6, 6)
    feats = torch.sigmoid(colour_base)[None].expand(1000, 3, 6, 6, 6)
    fired = []
    dens.register_hook(lambda g: fired.append(g.shape))
    feats.register_hook(lambda g: fired.append(g.shape))
    vols = Volumes(densities=dens, features=feats, voxel_size=0.5)
    origins = torch.zeros(1000, 2, 3)
    directions = torch.tensor([0.0, 0.0, 1.0]).expand(1000, 2, 3)
    lengths = torch.linspace(-1, 1, 5).expand(1000, 2, 5)
    rays_densities, rays_features = VolumeSampler(vols)(
        RayBundle(origins, directions, lengths, None)
    )
    (rays_densities.sum() + rays_features.sum()).backward()
    assert fired == []
    assert base.grad is not None and base.grad.abs().sum() > 0
    assert colour_base.grad is not None and colour_base.grad.abs().sum() > 0


def test_expanded_and_materialised_volumes_render_the_same():
    config, inp, *_ = load_case("render_0")
    B = inp["elev"].shape[0]
    R, T = look_at_view_transform(dist=2.7, elev=inp["elev"], azim=inp["azim"])
    cams = FoVPerspectiveCameras(R=R, T=T)
    renderer = VolumeRenderer(
        NDCMultinomialRaysampler(
            image_width=10, image_height=10, n_pts_per_ray=16, min_depth=0.1, max_depth=3.0
        ),
        EmissionAbsorptionRaymarcher(),
    )
    results = []
    for materialise in (False, True):
        ld = inp["log_densities"].clone().requires_grad_()
        dens = torch.sigmoid(ld)[None].expand(B, *ld.shape)
        feats = torch.sigmoid(inp["log_colors"])[None].expand(B, *inp["log_colors"].shape)
        if materialise:
            dens, feats = dens.contiguous(), feats.contiguous()
        vols = Volumes(densities=dens, features=feats, voxel_size=config["voxel_size"])
        images = renderer(cameras=cams, volumes=vols)[0]
        images.square().sum().backward()
        results.append((images, ld.grad))
    assert_close(results[0][0], results[1][0])
    assert_close(results[0][1], results[1][1], kind="grad")


# ----------------------------------------------------------------------------- bad input


def _tiny_setup(n_cameras=2, n_volumes=2):
    R, T = look_at_view_transform(dist=2.7, azim=torch.linspace(0, 90, n_cameras))
    cams = FoVPerspectiveCameras(R=R, T=T)
    vols = Volumes(
        densities=torch.rand(n_volumes, 1, 4, 4, 4), features=torch.rand(n_volumes, 3, 4, 4, 4)
    )
    sampler = NDCMultinomialRaysampler(
        image_width=4, image_height=4, n_pts_per_ray=3, min_depth=0.5, max_depth=3.0
    )
    return cams, vols, sampler


def test_bad_sample_mode():
    _, _, sampler = _tiny_setup()
    with pytest.raises(ValueError, match="sample_mode: expected one of"):
        VolumeRenderer(sampler, EmissionAbsorptionRaymarcher(), sample_mode="cubic")


def test_bad_padding_mode():
    _, vols, _ = _tiny_setup()
    with pytest.raises(ValueError, match="padding_mode: expected one of"):
        VolumeSampler(vols, padding_mode="wrap")


def test_cameras_and_volumes_batch_disagree():
    cams, vols, sampler = _tiny_setup(n_cameras=3, n_volumes=2)
    renderer = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher())
    with pytest.raises(ValueError, match="volumes: expected one volume per camera"):
        renderer(cameras=cams, volumes=vols)


def test_bundle_and_volumes_batch_disagree():
    _, vols, _ = _tiny_setup(n_volumes=2)
    bundle = RayBundle(torch.zeros(3, 5, 3), torch.ones(3, 5, 3), torch.rand(3, 5, 4), None)
    with pytest.raises(ValueError, match="ray_bundle: expected a batch of 2"):
        VolumeSampler(vols)(bundle)


def test_bundle_with_wrong_ranks():
    _, vols, _ = _tiny_setup(n_volumes=2)
    with pytest.raises(ValueError, match=r"may differ only in the last dimension"):
        VolumeSampler(vols)(
            RayBundle(torch.zeros(2, 5, 3), torch.ones(2, 4, 3), torch.rand(2, 5, 4), None)
        )
    with pytest.raises(ValueError, match=r"may differ only in the last dimension"):
        VolumeSampler(vols)(
            RayBundle(torch.zeros(2, 5, 3), torch.ones(2, 5, 3), torch.rand(2, 4, 4), None)
        )
    with pytest.raises(ValueError, match=r"which has to be 3 for origins"):
        VolumeSampler(vols)(
            RayBundle(torch.zeros(2, 5, 2), torch.ones(2, 5, 2), torch.rand(2, 5, 4), None)
        )
    with pytest.raises(ValueError, match=r"have to have the same number of dimensions, at least 3"):
        VolumeSampler(vols)(RayBundle(torch.zeros(2, 3), torch.ones(2, 3), torch.rand(2, 4), None))


@pytest.mark.parametrize("volumes", [None, torch.rand(1, 1, 4, 4, 4)])
def test_not_a_volume(volumes):
    with pytest.raises(ValueError, match="'volumes' have to be an instance of the 'Volumes'"):
        VolumeSampler(volumes)


def test_not_callable_function():
    _, _, sampler = _tiny_setup()
    renderer = ImplicitRenderer(sampler, EmissionAbsorptionRaymarcher())
    cams, *_ = _tiny_setup()
    with pytest.raises(ValueError, match='"volumetric_function" has to be a "Callable" object'):
        renderer(cameras=cams, volumetric_function=3)
    with pytest.raises(ValueError, match='"raysampler" has to be a "Callable" object'):
        ImplicitRenderer(None, EmissionAbsorptionRaymarcher())
    with pytest.raises(ValueError, match='"raymarcher" has to be a "Callable" object'):
        ImplicitRenderer(sampler, None)


def test_float64_rays_render_float32_volumes_like_pytorch3d():
    cams, vols, sampler = _tiny_setup()
    renderer = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher())
    want, _ = renderer(cameras=cams, volumes=vols)
    bundle = sampler(cams)
    bundle64 = RayBundle(*(t.double() for t in bundle))
    got = ImplicitRenderer(lambda **kw: bundle64, EmissionAbsorptionRaymarcher())(
        cameras=cams, volumetric_function=VolumeSampler(vols)
    )[0]
    assert got.dtype == vols.densities().dtype
    assert_close(got, want)


def test_out_of_range_densities_render_through_the_general_path_and_warn():
    cams, vols, sampler = _tiny_setup()
    big = vols.update_padded(vols.densities() * 3.0, vols.features())
    renderer = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher())
    with pytest.warns(UserWarning, match="One or more elements of rays_densities are outside"):
        images, bundle = renderer(cameras=cams, volumes=big)
    rays_densities, rays_features = VolumeSampler(big)(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = EmissionAbsorptionRaymarcher()(rays_densities, rays_features)
    assert_close(images, want)
    strict = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher(strict_densities=True))
    with pytest.raises(ValueError, match="rays_densities are outside"):
        strict(cameras=cams, volumes=big)


# ----------------------------------------------------------------------------- the tutorial


def test_tutorial_loop_loss_decreases():
    torch.manual_seed(0)
    num_views, render_size, volume_size, extent = 8, 16, 16, 3.0
    R, T = look_at_view_transform(
        dist=2.7, elev=0.0, azim=torch.linspace(-180, 180, num_views) + 180.0
    )
    target_cameras = FoVPerspectiveCameras(R=R, T=T)
    # Targets: a coloured cube rendered by the same renderer from a fixed volume.
    truth = torch.zeros(1, 1, volume_size, volume_size, volume_size)
    truth[..., 5:11, 4:12, 5:11] = 0.9
    colours = torch.rand(1, 3, 1, 1, 1).expand(1, 3, volume_size, volume_size, volume_size)
    # The fitting tool's model (reference/model.py): the tutorial's, with its renderer
    # (NDCMultinomialRaysampler up to max_depth=extent, EmissionAbsorptionRaymarcher).
    volume_model = VolumeModel(
        get_backend("voxrender"),
        volume_size=volume_size,
        extent=extent,
        image_size=(render_size, render_size),
        n_pts_per_ray=24,
        min_depth=0.1,
    )
    renderer = volume_model.renderer
    with torch.no_grad():
        truth_vols = Volumes(
            densities=truth.expand(num_views, -1, -1, -1, -1),
            features=colours.expand(num_views, -1, -1, -1, -1),
            voxel_size=extent / volume_size,
        )
        target = renderer(cameras=target_cameras, volumes=truth_vols)[0]
    target_images, target_silhouettes = target[..., :3], target[..., 3]

    lr, n_iter, batch_size = 0.1, 30, 4
    optimizer = torch.optim.Adam(volume_model.parameters(), lr=lr)
    losses = []
    for iteration in range(n_iter):
        if iteration == round(n_iter * 0.75):
            optimizer = torch.optim.Adam(volume_model.parameters(), lr=lr * 0.1)
        optimizer.zero_grad()
        batch_idx = torch.randperm(len(target_cameras))[:batch_size]
        batch_cameras = FoVPerspectiveCameras(
            R=target_cameras.R[batch_idx],
            T=target_cameras.T[batch_idx],
            znear=target_cameras.znear[batch_idx],
            zfar=target_cameras.zfar[batch_idx],
            aspect_ratio=target_cameras.aspect_ratio[batch_idx],
            fov=target_cameras.fov[batch_idx],
        )
        color_err, sil_err = fit_errors(
            volume_model(batch_cameras), target_images[batch_idx], target_silhouettes[batch_idx]
        )
        loss = color_err + sil_err
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(map(lambda v: v == v, losses))  # no NaN
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


# ----------------------------------------------------------------------------- duck typing, axes


class _DuckCameras:
    """Not a voxrender class: only the attributes and methods a raysampler uses."""

    def __init__(self, inner):
        self._inner = inner
        self.R, self.T, self.device = inner.R, inner.T, inner.device

    def __len__(self):
        return len(self._inner)

    def unproject_points(self, *args, **kwargs):
        return self._inner.unproject_points(*args, **kwargs)

    def get_camera_center(self, **kwargs):
        return self._inner.get_camera_center(**kwargs)


class _DuckVolumes:
    """Not a voxrender class: only what VolumeSampler calls."""

    def __init__(self, inner):
        self._inner = inner

    def __len__(self):
        return len(self._inner)

    def densities(self):
        return self._inner.densities()

    def features(self):
        return self._inner.features()

    def world_to_local_coords(self, points):
        return self._inner.world_to_local_coords(points)

    def get_align_corners(self):
        return self._inner.get_align_corners()


def test_renderer_accepts_duck_typed_cameras_and_volumes():
    cams, vols, sampler = _tiny_setup()
    renderer = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher())
    want, _ = renderer(cameras=cams, volumes=vols)
    got, _ = renderer(cameras=_DuckCameras(cams), volumes=_DuckVolumes(vols))
    # duck-typed volumes take the general path, voxrender's the fused one: equal up to rounding
    assert_close(got, want)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sample_mode", ["bilinear", "nearest"])
def test_axis_parallel_rays_have_finite_gradients(axis, sample_mode):
    # Rays along a grid axis through voxel centres and faces: integer local coordinates
    # everywhere on the other two axes.
    dens = torch.rand(1, 1, 5, 5, 5, dtype=torch.float64, requires_grad=True)
    feats = torch.rand(1, 3, 5, 5, 5, dtype=torch.float64, requires_grad=True)
    vols = Volumes(densities=dens, features=feats, voxel_size=0.5)
    offsets = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0], dtype=torch.float64)
    origins = torch.zeros(1, 5, 3, dtype=torch.float64)
    origins[0, :, (axis + 1) % 3] = offsets
    origins[0, :, axis] = -1.5
    origins.requires_grad_()
    directions = torch.zeros(1, 5, 3, dtype=torch.float64)
    directions[..., axis] = 1.0
    directions.requires_grad_()
    lengths = torch.linspace(0.0, 3.0, 13, dtype=torch.float64).expand(1, 5, 13)
    sampler = VolumeSampler(vols, sample_mode=sample_mode)
    rays_densities, rays_features = sampler(RayBundle(origins, directions, lengths, None))
    images = EmissionAbsorptionRaymarcher()(rays_densities, rays_features)
    images.sum().backward()
    for t in (dens, feats, origins, directions):
        assert torch.isfinite(t.grad).all()
    assert dens.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- chunked rendering


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("path", ["fused", "general"])
def test_chunked_rendering_matches_unchunked_values_and_gradients(chunk_size, path):
    # "fused": VolumeRenderer's fused path (chunk_size switches it to recomputing the samples in
    # the backward pass); "general": a wrapped sampler takes the sample-then-raymarch path, with
    # checkpointed chunks
    config, inp, *_ = load_case("render_1")  # 24 x 16 image: 384 rays per view
    results = []
    for chunk in (None, chunk_size):
        ld = inp["log_densities"].clone().requires_grad_()
        lc = inp["log_colors"].clone().requires_grad_()
        R, T = look_at_view_transform(dist=2.7, elev=inp["elev"], azim=inp["azim"])
        renderer = VolumeRenderer(
            NDCMultinomialRaysampler(
                image_width=24, image_height=16, n_pts_per_ray=20, min_depth=0.1, max_depth=3.0
            ),
            EmissionAbsorptionRaymarcher(),
            chunk_size=chunk,
        )
        B = R.shape[0]
        vols = Volumes(
            densities=torch.sigmoid(ld)[None].expand(B, *ld.shape),
            features=torch.sigmoid(lc)[None].expand(B, *lc.shape),
            voxel_size=config["voxel_size"],
        )
        cams = FoVPerspectiveCameras(R=R, T=T)
        if path == "fused":
            images, bundle = renderer(cameras=cams, volumes=vols)
        else:
            sampler = VolumeSampler(vols)
            images, bundle = renderer.renderer(
                cameras=cams, volumetric_function=lambda s=sampler, **kw: s(**kw)
            )
        cot = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
        (images * cot).sum().backward()
        results.append((images, ld.grad, lc.grad, bundle))
    (want, gd, gc, bundle), (got, gd2, gc2, bundle2) = results
    assert got.shape == want.shape == (2, 16, 24, 4)
    assert_close(got, want)
    assert_close(gd2, gd, kind="grad")
    assert_close(gc2, gc, kind="grad")
    assert torch.equal(bundle2.lengths, bundle.lengths)


def test_chunked_rendering_without_grad_and_random_subsets():
    cams, vols, _ = _tiny_setup()
    sampler = NDCMultinomialRaysampler(
        image_width=6,
        image_height=5,
        n_pts_per_ray=4,
        min_depth=0.5,
        max_depth=3.0,
        n_rays_per_image=11,
    )
    torch.manual_seed(3)
    want, bundle = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher())(
        cameras=cams, volumes=vols
    )
    torch.manual_seed(3)
    with torch.no_grad():
        got, bundle2 = VolumeRenderer(sampler, EmissionAbsorptionRaymarcher(), chunk_size=4)(
            cameras=cams, volumes=vols
        )
    assert got.shape == want.shape == (2, 11, 1, 4)
    assert torch.equal(bundle2.xys, bundle.xys)
    assert_close(got, want.detach())


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_chunk_size_value(bad):
    _, _, sampler = _tiny_setup()
    with pytest.raises(ValueError, match="chunk_size: expected None or an int >= 1"):
        VolumeRenderer(sampler, EmissionAbsorptionRaymarcher(), chunk_size=bad)


def test_bad_chunk_size_type():
    _, _, sampler = _tiny_setup()
    with pytest.raises(TypeError, match="chunk_size: expected None or an int"):
        ImplicitRenderer(sampler, EmissionAbsorptionRaymarcher(), chunk_size=2.5)


# ----------------------------------------------------------------------------- torch.compile


def _compile_setup():
    torch.manual_seed(0)
    R, T = look_at_view_transform(dist=2.7, azim=torch.tensor([0.0, 120.0]))
    cams = FoVPerspectiveCameras(R=R, T=T)
    renderer = VolumeRenderer(
        NDCMultinomialRaysampler(
            image_width=8, image_height=8, n_pts_per_ray=12, min_depth=0.1, max_depth=3.0
        ),
        EmissionAbsorptionRaymarcher(),
    )
    log_densities = torch.randn(1, 8, 8, 8)
    log_colors = torch.randn(3, 8, 8, 8)
    targets = torch.rand(2, 8, 8, 4)
    return cams, renderer, log_densities, log_colors, targets


def _fit_step(renderer, cams, ld, lc, targets, optimizer):
    optimizer.zero_grad()
    vols = Volumes(
        densities=torch.sigmoid(ld)[None].expand(2, *ld.shape),
        features=torch.sigmoid(lc)[None].expand(2, *lc.shape),
        voxel_size=3.0 / 8,
    )
    images = renderer(cameras=cams, volumes=vols)[0]
    loss = huber(images, targets).abs().mean()
    loss.backward()
    optimizer.step()
    return images.detach(), loss.detach()


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_fit_step_matches_eager(backend):
    torch._dynamo.reset()
    cams, renderer, ld0, lc0, targets = _compile_setup()
    runs = []
    for compiled in (False, True):
        ld = ld0.clone().requires_grad_()
        lc = lc0.clone().requires_grad_()
        optimizer = torch.optim.Adam([ld, lc], lr=0.1)
        step = torch.compile(_fit_step, backend=backend) if compiled else _fit_step
        out = [step(renderer, cams, ld, lc, targets, optimizer) for _ in range(3)]
        runs.append((out, ld.detach(), lc.detach()))
    (eager, ld_e, lc_e), (comp, ld_c, lc_c) = runs
    for (img_e, loss_e), (img_c, loss_c) in zip(eager, comp, strict=True):
        assert_close(img_c, img_e)
        assert_close(loss_c, loss_e)
    assert_close(ld_c, ld_e, kind="grad")  # after three Adam steps
    assert_close(lc_c, lc_e, kind="grad")


def test_compiled_renderer_forward_matches_eager():
    torch._dynamo.reset()
    cams, renderer, ld, lc, _ = _compile_setup()
    vols = Volumes(
        densities=torch.sigmoid(ld)[None].expand(2, *ld.shape),
        features=torch.sigmoid(lc)[None].expand(2, *lc.shape),
        voxel_size=3.0 / 8,
    )
    want = renderer(cameras=cams, volumes=vols)[0]
    got = torch.compile(renderer, backend="aot_eager")(cameras=cams, volumes=vols)[0]
    assert_close(got, want)


def test_compiled_forward_has_no_graph_breaks_and_no_recompiles():
    # the fit step's forward + loss as one graph (fullgraph=True fails on any graph break), and
    # Adam steps between calls trigger no recompilation
    torch._dynamo.reset()
    cams, renderer, ld0, lc0, targets = _compile_setup()
    ld, lc = ld0.clone().requires_grad_(), lc0.clone().requires_grad_()
    optimizer = torch.optim.Adam([ld, lc], lr=0.1)

    def loss_fn():
        vols = Volumes(
            densities=torch.sigmoid(ld)[None].expand(2, *ld.shape),
            features=torch.sigmoid(lc)[None].expand(2, *lc.shape),
            voxel_size=3.0 / 8,
        )
        return huber(renderer(cameras=cams, volumes=vols)[0], targets).abs().mean()

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    losses = []
    for step in range(4):
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
            optimizer.zero_grad()
            loss = compiled()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    assert losses[-1] < losses[0]

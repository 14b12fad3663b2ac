"""The fused render path (voxrender/fused.py) against the general one: same images, same gradients.

The general path is ``raymarcher(*VolumeSampler(volumes)(ray_bundle))`` (itself checked against
PyTorch3D's fixtures in test_renderer.py / test_grid_sample.py / test_raymarching.py); the fused
path is what ``VolumeRenderer`` / ``ImplicitRenderer`` take for voxrender's own volumes.
"""

from __future__ import annotations

import gc
import math
import threading
import time
import weakref

import pytest
import torch
from helpers import assert_close
from hypothesis import given
from hypothesis import strategies as st
from torch.multiprocessing.reductions import StorageWeakRef

import voxrender.fused as fused
import voxrender.voxel_geometry as voxel_geometry
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


@pytest.fixture
def calls(monkeypatch):
    """Counts the fused path's calls (to tell which path a render took)."""
    seen = []
    original = fused._render

    def counting(*args):
        seen.append(args[-1])
        return original(*args)

    monkeypatch.setattr(fused, "_render", counting)
    return seen


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request, monkeypatch):
    # a worker per chunk even for these small calls (else they would run on one worker)
    monkeypatch.setattr(fused, "_WORKER_POINTS", 1)
    saved = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(saved)


def _scene(
    dtype=torch.float64,
    batch=2,
    grid=(5, 6, 7),
    features=3,
    shared=False,
    align_corners=True,
    seed=0,
    density_scale=0.6,
):
    """Cameras, volumes (leaf tensors requiring grad) and the volume tensors."""
    g = torch.Generator().manual_seed(seed)
    n = 1 if shared else batch
    dens = (torch.rand(n, 1, *grid, generator=g, dtype=torch.float64) * density_scale).to(dtype)
    feats = torch.rand(n, features, *grid, generator=g, dtype=torch.float64).to(dtype)
    dens.requires_grad_()
    feats.requires_grad_()
    R, T = look_at_view_transform(
        dist=2.2,
        elev=torch.tensor([10.0, -20.0, 35.0])[:batch],
        azim=torch.tensor([0.0, 70.0, 200.0])[:batch],
    )
    cams = FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype))
    expand = (batch, -1, -1, -1, -1)
    vols = Volumes(
        densities=dens.expand(*expand) if shared else dens,
        features=feats.expand(*expand) if shared else feats,
        voxel_size=0.3,
        volume_translation=(0.1, -0.05, 0.2),
        align_corners=align_corners,
    )
    return cams, vols, (dens, feats)


def _ndc(width=9, height=7, n_pts=11, min_depth=0.5, max_depth=4.0, **kw):
    return NDCMultinomialRaysampler(
        image_width=width, image_height=height, n_pts_per_ray=n_pts, min_depth=min_depth,
        max_depth=max_depth, **kw,
    )  # fmt: skip


def _general(vols, bundle, raymarcher, **kwargs):
    """The unfused computation, by hand."""
    rays_densities, rays_features = VolumeSampler(vols)(bundle)
    return raymarcher(rays_densities=rays_densities, rays_features=rays_features, **kwargs)


def _both(cams, vols, tensors, raysampler, raymarcher, calls, chunk_size=None, **kwargs):
    """Images and volume gradients from the fused renderer and from the general path."""
    renderer = VolumeRenderer(raysampler, raymarcher, chunk_size=chunk_size)
    images, bundle = renderer(cameras=cams, volumes=vols, **kwargs)
    assert calls, "the fused path was not taken"
    cotangent = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)).to(images)
    fused_grads = torch.autograd.grad((images * cotangent).sum(), tensors, allow_unused=True)
    want = _general(vols, bundle, raymarcher, **kwargs)
    want_grads = torch.autograd.grad((want * cotangent).sum(), tensors, allow_unused=True)
    return (images, fused_grads), (want, want_grads)


def _assert_same(got, want):
    (images, grads), (want_images, want_grads) = got, want
    assert images.shape == want_images.shape and images.dtype == want_images.dtype
    assert_close(images, want_images)
    for g, w in zip(grads, want_grads, strict=True):
        if g is None or w is None:  # a tensor one path does not read (AO and features)
            assert not (g if w is None else w).any()
            continue
        assert_close(g, w, kind="grad")


# ------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shared", [False, True], ids=["per-view-volumes", "expanded-volume"])
@pytest.mark.parametrize("align_corners", [True, False])
def test_matches_general_path(dtype, shared, align_corners, threads, calls):
    cams, vols, tensors = _scene(dtype, shared=shared, align_corners=align_corners)
    _assert_same(*_both(cams, vols, tensors, _ndc(), EmissionAbsorptionRaymarcher(), calls))


@pytest.mark.parametrize("surface_thickness", [1, 2, 5, 11, 20])
@pytest.mark.parametrize("eps", [0.0, 1e-10, 1e-3])
def test_matches_general_path_raymarcher_options(surface_thickness, eps, calls):
    cams, vols, tensors = _scene()
    marcher = EmissionAbsorptionRaymarcher(surface_thickness=surface_thickness)
    _assert_same(*_both(cams, vols, tensors, _ndc(), marcher, calls, eps=eps))


def test_matches_general_path_float32_eps(calls):
    # float32 with eps=1e-3: 1 + eps != 1, so the autograd fallback of the backward is taken
    cams, vols, tensors = _scene(torch.float32)
    marcher = EmissionAbsorptionRaymarcher()
    _assert_same(*_both(cams, vols, tensors, _ndc(), marcher, calls, eps=1e-3))
    assert not calls[-1].eps_vanishes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_absorption_only_matches_general_path(dtype, calls):
    cams, vols, tensors = _scene(dtype)
    _assert_same(*_both(cams, vols, tensors, _ndc(), AbsorptionOnlyRaymarcher(), calls))


@pytest.mark.parametrize("keep", [True, False], ids=["kept-samples", "recomputed-samples"])
@pytest.mark.parametrize("points_per_chunk", [1, 7, 40, 1 << 16])
def test_chunking_does_not_change_the_result(keep, points_per_chunk, threads, calls, monkeypatch):
    # 1 point per chunk still means one ray per chunk; 7 and 40 leave a partial last chunk
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", points_per_chunk)
    cams, vols, tensors = _scene(torch.float64)
    got = _both(
        cams, vols, tensors, _ndc(n_pts=5), EmissionAbsorptionRaymarcher(), calls,
        chunk_size=None if keep else 10_000,
    )  # fmt: skip
    assert calls[-1].keep_samples is keep
    _assert_same(*got)


def test_random_rays_and_stratified_lengths(calls):
    # per-ray lengths (stratified) and a (B, R, 1) ray layout
    cams, vols, tensors = _scene(torch.float64)
    sampler = MonteCarloRaysampler(
        min_x=-1.0, max_x=1.0, min_y=-1.0, max_y=1.0, n_rays_per_image=23, n_pts_per_ray=9,
        min_depth=0.5, max_depth=4.0, stratified_sampling=True,
    )  # fmt: skip
    torch.manual_seed(0)
    _assert_same(*_both(cams, vols, tensors, sampler, EmissionAbsorptionRaymarcher(), calls))


def test_densities_of_exactly_one(calls):
    # opaque voxels: x = 1 - d hits exact zeros, the written-out gradient's special case
    cams, vols, tensors = _scene(torch.float64, density_scale=1.0)
    dens = tensors[0]
    with torch.no_grad():
        dens[:, :, 1:4, 2:5, 2:6] = 1.0
    _assert_same(*_both(cams, vols, tensors, _ndc(n_pts=15), EmissionAbsorptionRaymarcher(), calls))


def test_interpolated_ones_stay_at_most_one(calls):
    # a weighted sum of corners that are all 1 may round above 1; the fused path clips that ulp
    cams, vols, tensors = _scene(torch.float32)
    with torch.no_grad():
        tensors[0].fill_(1.0)
    images, _ = VolumeRenderer(_ndc(), AbsorptionOnlyRaymarcher())(cameras=cams, volumes=vols)
    assert calls and images.max() <= 1.0


def test_rays_missing_the_volume_and_nan_rays(calls):
    cams, vols, _ = _scene(torch.float64)
    bundle = _ndc()(cameras=cams)
    origins = bundle.origins.clone()
    origins[0, 0, 0] = float("nan")
    origins[1, 2, 3] = torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)  # misses the grid
    bundle = bundle._replace(origins=origins)
    raymarcher = EmissionAbsorptionRaymarcher()
    sampler = VolumeSampler(vols)
    got = sampler.render_fused(bundle, raymarcher)
    want = _general(vols, bundle, raymarcher)
    assert calls
    assert torch.equal(got[0, 0, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(got[1, 2, 3], torch.zeros(4, dtype=torch.float64))
    assert_close(got, want)


def _box_rays(vols, grid, align_corners, dtype):
    """Rays (in the volumes' local ``[-1, 1]`` frame, mapped to the world) that probe the box.

    Returns ``origins (1, R, 3)``, ``directions (1, R, 3)`` in world coordinates.
    """
    # local coordinate of the readable box's faces along x, y (beyond them a point reads zeros)
    ex, ey = (1 + (2 / (n - 1) if align_corners else 1 / n) for n in grid[::-1][:2])
    nan = float("nan")
    rays = [
        ((3.0, 3.0, 3.0), (1.0, 0.2, 0.1)),  # misses the box entirely
        ((-3.0, 0.1, 0.2), (-1.0, 0.0, 0.0)),  # points away from it
        ((0.1, -0.2, 0.3), (0.3, 0.5, -0.2)),  # starts inside
        ((0.0, 0.0, 0.0), (1e-3, 0.0, 0.0)),  # starts inside, barely moves
        ((-3.0, 0.3, -0.4), (1.0, 0.0, 0.0)),  # axis-parallel, through
        ((0.2, -3.0, 0.1), (0.0, 1.0, 0.0)),  # axis-parallel (y)
        ((0.2, 0.1, -3.0), (0.0, 0.0, 1.0)),  # axis-parallel (z)
        ((ex, -3.0, 0.2), (0.0, 1.0, 0.0)),  # along the box's face: reads zeros only
        ((ex - 1e-4, -3.0, 0.2), (0.0, 1.0, 0.0)),  # a hair inside the face
        ((ex, ey, -3.0), (0.0, 0.0, 1.0)),  # along an edge
        ((ex - 1e-4, ey - 1e-4, -3.0), (0.0, 0.0, 1.0)),  # a hair inside the edge
        ((-3.0, -3.0, -3.0), (1.0, 1.0, 1.0)),  # the diagonal, through two corners
        ((-ex - 1.0, -ey, 0.0), (1.0, -1.0, 0.0)),  # touches an edge from outside
        ((nan, 0.0, 0.0), (1.0, 0.0, 0.0)),  # NaN origin
        ((-3.0, 0.0, 0.0), (nan, 1.0, 0.0)),  # NaN direction
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),  # no direction, inside
    ]
    o = torch.tensor([r[0] for r in rays], dtype=dtype)
    dirs = torch.tensor([r[1] for r in rays], dtype=dtype)
    ends = vols.local_to_world_coords(torch.stack((o, o + dirs)).reshape(1, -1, 3))
    ends = ends.reshape(2, -1, 3)  # (origin, origin + direction) of each ray
    return ends[0][None], (ends[1] - ends[0])[None]


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(
    "lengths_kind", ["shared", "per-ray", "unsorted", "with-nan"], ids=lambda k: k
)
@pytest.mark.parametrize("surface_thickness", [1, 3])
def test_skipping_outside_the_box_matches_the_general_path(
    align_corners, lengths_kind, surface_thickness, calls, monkeypatch
):
    # The fused path computes only the samples that can read a voxel (a window per ray from
    # the ray's entry and exit through the box); images and gradients equal the general path's
    grid = (5, 6, 7)
    _, vols, tensors = _scene(torch.float64, batch=1, grid=grid, align_corners=align_corners)
    origins, directions = _box_rays(vols, grid, align_corners, torch.float64)
    n_rays, n_pts = origins.shape[1], 40
    depths = torch.linspace(0.0, 8.0, n_pts, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    if lengths_kind == "shared":
        lengths = depths.expand(1, n_rays, n_pts)
    else:
        jitter = torch.rand(1, n_rays, n_pts, generator=g, dtype=torch.float64) * 0.15
        lengths = (depths + jitter).sort(-1).values
        if lengths_kind == "unsorted":
            lengths = lengths.flip(-1)
        elif lengths_kind == "with-nan":
            lengths[0, 4, 7] = float("nan")
    bundle = RayBundle(origins, directions, lengths, torch.zeros(1, n_rays, 2, dtype=torch.float64))
    sizes = []
    original = fused._schedule

    def spy(*args):
        sched = original(*args)
        sizes.append(sum((e - s) * w for s, e, w in sched.chunks))
        return sched

    monkeypatch.setattr(fused, "_schedule", spy)
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", n_pts)  # chunks of a few rays
    raymarcher = EmissionAbsorptionRaymarcher(surface_thickness=surface_thickness)
    # eps = 0: in float64 the default 1e-10 counts ((1 + eps) - 0 != 1), and nothing is skipped
    got = VolumeSampler(vols).render_fused(bundle, raymarcher, eps=0.0)
    assert calls
    cotangent = torch.randn(got.shape, generator=g, dtype=torch.float64)
    got_grads = torch.autograd.grad((got * cotangent).sum(), tensors)
    want = _general(vols, bundle, raymarcher, eps=0.0)
    want_grads = torch.autograd.grad((want * cotangent).sum(), tensors)
    _assert_same((got, got_grads), (want, want_grads))
    assert torch.equal(got[0, 0], torch.zeros(4, dtype=torch.float64))  # missed
    assert got[0, 2, 3] > 0  # started inside
    skipping = lengths_kind in ("shared", "per-ray")
    assert len(sizes) == 1  # the forward's, which its backward reuses
    assert (sizes[0] < n_rays * n_pts / 2) is skipping  # most samples miss the box


def test_no_skipping_where_eps_matters(calls, monkeypatch):
    # (1 + eps) - 0 != 1 in float64 with eps = 1e-3: samples in front of the box do count (each
    # multiplies the transmittance by 1 + eps), so every sample is computed
    cams, vols, tensors = _scene(torch.float64)
    sizes = []
    original = fused._schedule
    monkeypatch.setattr(
        fused, "_schedule", lambda *a: sizes.append(original(*a).starts) or original(*a)
    )
    got, want = _both(cams, vols, tensors, _ndc(), EmissionAbsorptionRaymarcher(), calls, eps=1e-3)
    _assert_same(got, want)
    assert sizes and all(starts is None for starts in sizes)


def test_implicit_renderer_with_a_volume_sampler_takes_the_fused_path(calls):
    cams, vols, _ = _scene(torch.float64)
    renderer = ImplicitRenderer(_ndc(), EmissionAbsorptionRaymarcher())
    images, bundle = renderer(cameras=cams, volumetric_function=VolumeSampler(vols))
    assert calls
    assert_close(images, _general(vols, bundle, EmissionAbsorptionRaymarcher()))


@given(
    grid=st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)),
    n_pts=st.integers(1, 9),
    features=st.integers(1, 4),
    depth=st.tuples(st.floats(0.1, 3.0), st.floats(0.1, 3.0)),
    align_corners=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_matches_general_path(grid, n_pts, features, depth, align_corners, seed):
    cams, vols, tensors = _scene(
        torch.float64, grid=grid, features=features, align_corners=align_corners, seed=seed
    )
    lo, hi = sorted(depth)
    sampler = _ndc(width=4, height=3, n_pts=n_pts, min_depth=lo, max_depth=hi + 1e-3)
    bundle = sampler(cameras=cams)
    raymarcher = EmissionAbsorptionRaymarcher()
    got = VolumeSampler(vols).render_fused(bundle, raymarcher)
    assert got is not None
    want = _general(vols, bundle, raymarcher)
    assert_close(got, want)
    cotangent = torch.randn(
        got.shape, generator=torch.Generator().manual_seed(seed), dtype=got.dtype
    )
    g_got = torch.autograd.grad((got * cotangent).sum(), tensors)
    g_want = torch.autograd.grad((want * cotangent).sum(), tensors)
    for a, b in zip(g_got, g_want, strict=True):
        assert_close(a, b, kind="grad")


def test_gradcheck_table():
    # the fused Function itself, float64, tiny: a 2x3x2 grid, 3 rays, 4 points
    cams, vols, _ = _scene(torch.float64, batch=1, grid=(2, 3, 2))
    bundle = _ndc(width=3, height=1, n_pts=4, min_depth=1.0, max_depth=3.5)(cameras=cams)
    origins = bundle.origins.reshape(-1, 3)
    directions = bundle.directions.reshape(-1, 3)
    local = vols.world_to_local_coords(torch.stack((origins, origins + directions), 1)[None])[0]
    a, b = voxel_geometry.rays_to_voxel_lines(
        local[:, 0], local[:, 1] - local[:, 0], (2, 3, 2), True
    )
    lengths = bundle.lengths.reshape(-1, 4)
    for eps, emission in ((0.0, True), (1e-3, True), (0.0, False)):
        plan = fused._Plan(
            grid=(2, 3, 2), channels=4 if emission else 1, emission=emission,
            surface_thickness=1, eps=eps, rays_per_chunk=2, workers=1, keep_samples=True,
            eps_vanishes=eps == 0.0,
        )  # fmt: skip
        data = torch.rand(1, plan.channels, 2, 3, 2, dtype=torch.float64) * 0.9
        table = fused.volume_table(data[:, :1], data[:, 1:] if emission else None)
        table = table.detach().requires_grad_()

        def render(t, plan=plan):
            return fused._render(t, a, b, lengths, None, plan)

        assert torch.autograd.gradcheck(render, (table,), eps=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------ fallbacks


def test_rays_needing_gradients_take_the_general_path(calls):
    cams, vols, _ = _scene(torch.float64)
    bundle = _ndc()(cameras=cams)
    origins = bundle.origins.detach().requires_grad_()
    bundle = bundle._replace(origins=origins)
    assert VolumeSampler(vols).render_fused(bundle, EmissionAbsorptionRaymarcher()) is None
    images, _ = ImplicitRenderer(lambda **kw: bundle, EmissionAbsorptionRaymarcher())(
        cameras=cams, volumetric_function=VolumeSampler(vols)
    )
    images.sum().backward()
    assert not calls and origins.grad is not None and origins.grad.abs().sum() > 0


def test_learnt_volume_placement_takes_the_general_path(calls):
    cams, _, (dens, feats) = _scene(torch.float64)
    translation = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    vols = Volumes(densities=dens, features=feats, voxel_size=0.3, volume_translation=translation)
    images, _ = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(cameras=cams, volumes=vols)
    images.sum().backward()
    assert not calls and translation.grad is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda vols: VolumeSampler(vols, sample_mode="nearest"),
        lambda vols: VolumeSampler(vols, padding_mode="border"),
    ],
    ids=["nearest", "border"],
)
def test_other_sampling_takes_the_general_path(make, calls):
    cams, vols, _ = _scene(torch.float64)
    ImplicitRenderer(_ndc(), EmissionAbsorptionRaymarcher())(
        cameras=cams, volumetric_function=make(vols)
    )
    assert not calls


def test_other_raymarchers_take_the_general_path(calls):
    class Subclassed(EmissionAbsorptionRaymarcher):
        def forward(self, rays_densities, rays_features, **kwargs):
            return super().forward(rays_densities, rays_features, **kwargs) * 2

    cams, vols, _ = _scene(torch.float64)
    images, bundle = VolumeRenderer(_ndc(), Subclassed())(cameras=cams, volumes=vols)
    assert not calls
    assert_close(images, 2 * _general(vols, bundle, EmissionAbsorptionRaymarcher()))


def test_heterogeneous_bundle_is_not_fused():
    cams, vols, _ = _scene(torch.float64)
    torch.manual_seed(0)
    bundle = _ndc(n_rays_total=7)(cameras=cams)
    assert bundle.camera_ids is not None
    assert fused.fused_render(vols, bundle, EmissionAbsorptionRaymarcher(), {}) is None


# ------------------------------------------------------------------------------ modes, errors


def test_inference_mode_and_no_grad(threads, calls):
    cams, vols, _ = _scene(torch.float32)
    renderer = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())
    with torch.inference_mode():
        a, _ = renderer(cameras=cams, volumes=vols)
    with torch.no_grad():
        b, _ = renderer(cameras=cams, volumes=vols)
    c, _ = renderer(cameras=cams, volumes=vols)
    assert len(calls) == 3 and not b.requires_grad and c.requires_grad
    assert torch.equal(a, b) and torch.equal(b, c.detach())


def test_thread_setting_is_restored():
    cams, vols, _ = _scene(torch.float32)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        images, _ = VolumeRenderer(_ndc(n_pts=50), EmissionAbsorptionRaymarcher())(
            cameras=cams, volumes=vols
        )
        images.sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_out_of_range_densities_take_the_general_path_and_warn(calls):
    # PyTorch3D warns and renders: the fused path hands such volumes to the general path, whose
    # raymarcher warns per sample (only about samples that are really out of range).
    cams, vols, (dens, _) = _scene(torch.float64)
    with torch.no_grad():
        dens.mul_(3.0)
    renderer = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())
    with pytest.warns(UserWarning, match="One or more elements of rays_densities are outside"):
        got, bundle = renderer(cameras=cams, volumes=vols)
    assert calls == []
    with pytest.warns(UserWarning):
        want = _general(vols, bundle, EmissionAbsorptionRaymarcher())
    assert_close(got, want)


def test_negative_eps_renders_like_the_general_path(calls):
    cams, vols, _ = _scene(torch.float64)
    got, bundle = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(
        cameras=cams, volumes=vols, eps=-1e-3
    )
    assert len(calls) == 1
    assert_close(got, _general(vols, bundle, EmissionAbsorptionRaymarcher(), eps=-1e-3))


def test_bundle_batch_must_match_the_volumes(calls):
    cams, vols, _ = _scene(torch.float64, batch=2)
    bundle = _ndc()(cameras=cams)
    three = RayBundle(*(torch.cat((t, t[:1])) for t in bundle[:3]), None)
    with pytest.raises(ValueError, match="ray_bundle: expected a batch of 2"):
        VolumeSampler(vols).render_fused(three, EmissionAbsorptionRaymarcher())


@pytest.mark.parametrize("chunk_size", [None, 8])
def test_samples_are_kept_only_without_chunk_size(chunk_size, calls, monkeypatch):
    # chunk_size asks for bounded memory: the backward then recomputes the samples instead of
    # keeping all (rays x points x channels) of them; kept samples die with the graph
    kept = []
    original = fused._forward_impl

    def spy(*args):
        out = original(*args)
        kept.append((args[-1], weakref.ref(out[1]), tuple(out[1].shape)))
        return out

    monkeypatch.setattr(fused, "_forward_impl", spy)
    cams, vols, _ = _scene(torch.float32)
    renderer = VolumeRenderer(_ndc(n_pts=64), EmissionAbsorptionRaymarcher(), chunk_size=chunk_size)
    images, _ = renderer(cameras=cams, volumes=vols)
    n_samples = math.prod(images.shape[:-1]) * 64
    ((keep, ref, shape),) = kept
    assert calls[-1].keep_samples is (chunk_size is None) and keep is (chunk_size is None)
    assert shape == ((n_samples, 4) if chunk_size is None else (0, 4))
    images.sum().backward()
    del images
    gc.collect()
    assert ref() is None  # released with the graph


def test_a_failing_chunk_raises_after_every_worker_stopped(monkeypatch, threads):
    cams, vols, _ = _scene(torch.float32)
    original = fused._forward_chunk
    seen = []

    def flaky(ws, plan, table, a, b, lengths, base, out, keep):
        seen.append(a.shape[1])
        if out.storage_offset() == 0:  # the first chunk: worker 0's, whose result is read first
            raise RuntimeError("chunk failed")
        time.sleep(0.005)  # the other worker is still busy when the failure happens
        return original(ws, plan, table, a, b, lengths, base, out, keep)

    monkeypatch.setattr(fused, "_forward_chunk", flaky)
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", 11 * 8)  # 8 rays per chunk
    with pytest.raises(RuntimeError, match="chunk failed"):
        VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(cameras=cams, volumes=vols)
    count = len(seen)
    time.sleep(0.1)
    assert torch.get_num_threads() == threads
    assert len(seen) == count  # nothing still running after the call returned


@pytest.mark.parametrize("worker_points", [1, 1 << 18], ids=["spread", "small-call"])
def test_small_calls_run_on_one_worker(monkeypatch, worker_points):
    # chunks are spread over the threads only for calls of _WORKER_POINTS samples per worker
    cams, vols, _ = _scene(torch.float32)
    monkeypatch.setattr(fused, "_WORKER_POINTS", worker_points)
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", 11 * 4)  # many chunks
    idents, spaces = set(), set()  # threads, and workers (each has its own workspace)

    def spy(*args):
        idents.add(threading.get_ident())
        spaces.add(id(args[0]))
        return original(*args)

    original = fused._forward_chunk
    monkeypatch.setattr(fused, "_forward_chunk", spy)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(cameras=cams, volumes=vols)
    finally:
        torch.set_num_threads(saved)
    # (a fast pool thread may take both workers' chunks one after the other: count workers)
    assert len(spaces) == (2 if worker_points == 1 else 1)
    assert (threading.get_ident() in idents) == (worker_points > 1)  # one worker: the caller


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("poison", [None, math.inf, math.nan], ids=["finite", "inf", "nan"])
def test_channel_pairs_add_up_as_the_channels(dtype, poison, monkeypatch, calls):
    # even C: the gradient is added two channels at a time as complex numbers; the same bits as
    # channel by channel, also where a chunk's gradient is not finite (it then goes by channel:
    # (inf + 0j) * w would put a NaN into the other channel of the pair)
    cams, vols, tensors = _scene(dtype)
    images, _ = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(cameras=cams, volumes=vols)
    cotangent = torch.randn(images.shape, generator=torch.Generator().manual_seed(2)).to(images)
    if poison is not None:
        cotangent[0, 3, 4, 1] = poison  # green of one ray: pairs with the density channel
    paired = []
    original_pairs = fused._scatter_pairs
    monkeypatch.setattr(fused, "_scatter_pairs", lambda *a: paired.append(1) or original_pairs(*a))
    got = torch.autograd.grad((images * cotangent).sum(), tensors, retain_graph=True)
    monkeypatch.setattr(fused, "_paired", lambda channels, dtype: False)  # by channel
    want = torch.autograd.grad((images * cotangent).sum(), tensors)
    assert bool(paired) == (poison is None)  # (one chunk here)
    for g, w in zip(got, want, strict=True):
        assert torch.isfinite(w).all() == (poison is None)
        torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True)


def test_backward_reuses_the_forward_schedule(monkeypatch, calls):
    # the forward's schedule serves its backward (every backward of a retained graph), the
    # entries of forwards without a backward are dropped, and a backward op called on its own
    # computes the schedule again: the same gradients every way
    cams, vols, tensors = _scene(torch.float64)
    made = []
    original = fused._schedule
    monkeypatch.setattr(fused, "_schedule", lambda *a: made.append(1) or original(*a))
    renderer = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())
    images, _ = renderer(cameras=cams, volumes=vols)
    assert len(made) == 1
    first = torch.autograd.grad(images.sum(), tensors, retain_graph=True)
    again = torch.autograd.grad(images.sum(), tensors)
    assert len(made) == 1
    for g, w in zip(again, first, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    with torch.no_grad():
        for _ in range(5):
            renderer(cameras=cams, volumes=vols)
    assert len(made) == 6 and len(fused._schedules) <= 2  # expired entries are dropped
    # the backward operator on its own, with the same inputs as a fresh forward's
    table = fused.volume_table(*[t.detach() for t in tensors]).requires_grad_()
    plan = fused._Plan(
        grid=(5, 6, 7), channels=4, emission=True, surface_thickness=1, eps=1e-10,
        rays_per_chunk=64, workers=1, keep_samples=True, eps_vanishes=True,
    )  # fmt: skip
    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 20, generator=g, dtype=torch.float64) * 6
    b = torch.randn(3, 20, generator=g, dtype=torch.float64)
    lengths = torch.linspace(0, 4, 9, dtype=torch.float64).expand(20, 9)
    base = None
    images, kept = torch.ops.voxrender.fused_render(
        table, a, b, lengths, base, *fused._pack_plan(plan), True
    )
    grad = torch.randn(images.shape, generator=g, dtype=torch.float64)
    n = len(made)
    args = (grad, table.detach(), a, b, lengths, base)
    rows = table.shape[0]
    reused = torch.ops.voxrender.fused_render_backward(*args, kept, *fused._pack_plan(plan), rows)
    assert len(made) == n
    alone = torch.ops.voxrender.fused_render_backward(
        *args, kept.clone(), *fused._pack_plan(plan), rows
    )
    assert len(made) == n + 1
    torch.testing.assert_close(alone, reused, rtol=0, atol=0)


def test_big_volumes_get_fewer_gradient_buffers(monkeypatch, threads, calls):
    # with room for no extra gradient table, the backward runs on one worker: same result
    cams, vols, tensors = _scene(torch.float64)
    want = _both(cams, vols, tensors, _ndc(), EmissionAbsorptionRaymarcher(), calls)[0]
    monkeypatch.setattr(fused, "_EXTRA_GRAD_BYTES", 0)
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", 11 * 4)
    seen = []
    original = fused._backward_chunk
    monkeypatch.setattr(fused, "_backward_chunk", lambda *a: seen.append(id(a[-2])) or original(*a))
    got = _both(cams, vols, tensors, _ndc(), EmissionAbsorptionRaymarcher(), calls)[0]
    assert len(seen) > 1 and len(set(seen)) == 1  # every chunk into the one gradient table
    _assert_same(got, want)


def test_builds_without_sparse_products_take_the_general_path(monkeypatch, calls):
    cams, vols, _ = _scene(torch.float64)
    monkeypatch.setattr(fused, "_sparse_probes", {})
    monkeypatch.setattr(
        fused.torch, "sparse_csr_tensor", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no"))
    )
    images, bundle = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher())(
        cameras=cams, volumes=vols
    )
    assert not calls
    monkeypatch.undo()
    assert_close(images, _general(vols, bundle, EmissionAbsorptionRaymarcher()))


def test_sparse_probe_works_here():
    assert fused._sparse_products_work(torch.float32, torch.int32)
    assert fused._sparse_products_work(torch.float64, torch.int64)


def test_expanded_leaf_volume_gets_per_element_gradients(calls):
    # a leaf that is itself an expanded tensor: each batch element has its own gradient, which
    # only the rays of that element's view feed (as on the general path)
    cams, _, (dens, feats) = _scene(torch.float64, shared=True)
    d = dens.detach().expand(2, -1, -1, -1, -1).requires_grad_()
    f = feats.detach().expand(2, -1, -1, -1, -1).requires_grad_()
    vols = Volumes(densities=d, features=f, voxel_size=0.3, volume_translation=(0.1, -0.05, 0.2))
    got, want = _both(cams, vols, (d, f), _ndc(), EmissionAbsorptionRaymarcher(), calls)
    _assert_same(got, want)
    assert not torch.equal(got[1][0][0], got[1][0][1])  # the two views' gradients differ


def test_backward_allocates_nothing_the_size_of_the_kept_samples(monkeypatch, calls):
    # the kept samples are an output of the custom operator that gets no gradient: autograd
    # must not materialise a zero gradient of their size (it once did: +1 samples-sized buffer)
    monkeypatch.setattr(fused, "_POINTS_PER_CHUNK", 64)  # chunk buffers far below the samples'
    cams, vols, _ = _scene(torch.float64)
    renderer = VolumeRenderer(_ndc(n_pts=64), EmissionAbsorptionRaymarcher())
    images, _ = renderer(cameras=cams, volumes=vols)
    kept_bytes = math.prod(images.shape[:-1]) * 64 * 4 * 8  # (rays * P, C) float64
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        images.sum().backward()
    allocations = [e.cpu_memory_usage for e in prof.events()]
    assert calls and allocations and max(allocations) < kept_bytes / 2


@pytest.mark.parametrize("chunk_size", [None, 8], ids=["kept-samples", "recomputed-samples"])
def test_the_table_is_freed_when_the_backward_reads_no_voxel(chunk_size, calls, monkeypatch):
    # with the samples kept the backward reads no voxel, so the graph must not hold the table
    # (a volume-sized buffer through the whole backward); recomputing the samples needs it
    cams, vols, tensors = _scene(torch.float64)
    tables = []
    original = fused.volume_table

    def spy(*args):
        table = original(*args)
        tables.append(StorageWeakRef(table.untyped_storage()))
        return table

    monkeypatch.setattr(fused, "volume_table", spy)
    renderer = VolumeRenderer(_ndc(), EmissionAbsorptionRaymarcher(), chunk_size=chunk_size)
    images, bundle = renderer(cameras=cams, volumes=vols)
    gc.collect()
    assert calls and len(tables) == 1
    assert tables[0].expired() == (chunk_size is None)
    cotangent = torch.randn(images.shape, generator=torch.Generator().manual_seed(2)).to(images)
    got = torch.autograd.grad((images * cotangent).sum(), tensors)
    want = _general(vols, bundle, EmissionAbsorptionRaymarcher())
    want = torch.autograd.grad((want * cotangent).sum(), tensors)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, kind="grad")

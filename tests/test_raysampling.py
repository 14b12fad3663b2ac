"""Tests for voxrender.raysampling: the Multinomial, NDC and Monte-Carlo raysamplers."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICES, DTYPES, VOXRENDER_API, assert_close, case_names, load_case
from hypothesis import given
from hypothesis import strategies as st

from reference.record_fixtures import sample_rays
from voxrender import (
    FoVPerspectiveCameras,
    GridRaysampler,
    HeterogeneousRayBundle,
    MonteCarloRaysampler,
    MultinomialRaysampler,
    NDCGridRaysampler,
    NDCMultinomialRaysampler,
    RayBundle,
    ray_bundle_to_ray_points,
)


def _rotation(seed: int, dtype=torch.float32) -> torch.Tensor:
    """A random rotation (a quaternion drawn from a seeded generator)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(4, generator=g, dtype=torch.float64)
    w, x, y, z = (q / q.norm()).tolist()
    return torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ],
        dtype=dtype,
    )


def _cameras(batch=2, *, dtype=torch.float32, device="cpu", seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    R = torch.stack([_rotation(seed * 97 + i, dtype) for i in range(batch)])
    T = torch.randn(batch, 3, generator=g, dtype=dtype) + torch.tensor([0.0, 0.0, 3.0], dtype=dtype)
    return FoVPerspectiveCameras(R=R.to(device), T=T.to(device), device=device, **kwargs)


def _ndc(**kwargs):
    args = dict(image_width=6, image_height=4, n_pts_per_ray=5, min_depth=0.5, max_depth=3.0)
    args.update(kwargs)
    return NDCMultinomialRaysampler(**args)


def _multinomial(**kwargs):
    args = dict(min_x=-1.0, max_x=1.0, min_y=-0.5, max_y=0.5, image_width=5, image_height=3)
    args.update(n_pts_per_ray=4, min_depth=1.0, max_depth=2.0)
    args.update(kwargs)
    return MultinomialRaysampler(**args)


def _monte_carlo(**kwargs):
    args = dict(min_x=-1.0, max_x=1.0, min_y=-1.0, max_y=1.0, n_rays_per_image=7)
    args.update(n_pts_per_ray=4, min_depth=1.0, max_depth=2.0)
    args.update(kwargs)
    return MonteCarloRaysampler(**args)


def _view_depth(cameras, points):
    """View-space z of world points ``(B, ..., 3)``: ``x_view = x_world @ R + T``."""
    batch = points.shape[0]
    flat = points.reshape(batch, -1, 3)
    view = flat @ cameras.R + cameras.T[:, None, :]
    return view[..., 2].reshape(points.shape[:-1])


# ----------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", case_names("raysampler"))
def test_fixture(name):
    config, inputs, outputs, _ = load_case(name)
    bundle = sample_rays(VOXRENDER_API, config, inputs)  # the recorder's call, voxrender's objects
    assert set(outputs) <= {
        "origins",
        "directions",
        "lengths",
        "xys",
        "camera_ids",
        "camera_counts",
    }
    for key, expected in outputs.items():
        assert_close(getattr(bundle, key), expected, msg=f"{name}/{key}")
    expected_type = HeterogeneousRayBundle if "camera_ids" in outputs else RayBundle
    assert type(bundle) is expected_type


def test_fixture_cases_cover_every_mode():
    names = case_names("raysampler")
    assert len(names) >= 10
    for fragment in ("subset", "mask", "stratified", "montecarlo", "rays_total", "overrides"):
        assert any(fragment in n for n in names), fragment


# ----------------------------------------------------------------------------- NDC grid


@pytest.mark.parametrize(
    ("width", "height", "xs", "ys"),
    [
        (2, 2, [0.5, -0.5], [0.5, -0.5]),
        (4, 2, [1.5, 0.5, -0.5, -1.5], [0.5, -0.5]),  # wide: x spans [-2, 2]
        (2, 4, [0.5, -0.5], [1.5, 0.5, -0.5, -1.5]),  # tall: y spans [-2, 2]
        (3, 1, [2.0, 0.0, -2.0], [0.0]),
        (1, 1, [0.0], [0.0]),
    ],
)
def test_ndc_pixel_centres(width, height, xs, ys):
    sampler = _ndc(image_width=width, image_height=height)
    xys = sampler(_cameras(1)).xys  # (1, H, W, 2)
    assert xys.shape == (1, height, width, 2)
    expected = torch.stack(
        torch.meshgrid(torch.tensor(ys), torch.tensor(xs), indexing="ij")[::-1], dim=-1
    )
    assert_close(xys[0], expected)


@pytest.mark.parametrize(("width", "height"), [(8, 8), (12, 5), (5, 12)])
def test_ndc_short_side_spans_unit_interval(width, height):
    sampler = _ndc(image_width=width, image_height=height)
    # pixel centres sit half a pixel inside [-1, 1] on the short side
    short, n = (sampler.min_y, height) if width >= height else (sampler.min_x, width)
    assert short == pytest.approx(1.0 - 1.0 / n)
    assert sampler.max_x == pytest.approx(-sampler.min_x)
    assert sampler.max_y == pytest.approx(-sampler.min_y)
    assert sampler.min_x > 0 and sampler.min_y > 0  # +X left, +Y up: first column/row positive


def test_multinomial_custom_grid_corners():
    sampler = _multinomial(min_x=-0.7, max_x=0.9, min_y=-0.4, max_y=0.8, image_width=5)
    xys = sampler(_cameras(2)).xys
    assert_close(xys[:, 0, 0], torch.tensor([[-0.7, -0.4]] * 2))
    assert_close(xys[:, -1, -1], torch.tensor([[0.9, 0.8]] * 2))
    assert_close(xys[0, 1, 2], torch.tensor([0.1, 0.2]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_full_grid_shapes_dtype_device(dtype, device):
    cams = _cameras(3, dtype=dtype, device=device)
    bundle = _ndc()(cams)
    assert isinstance(bundle, RayBundle)
    assert bundle.origins.shape == (3, 4, 6, 3)
    assert bundle.directions.shape == (3, 4, 6, 3)
    assert bundle.lengths.shape == (3, 4, 6, 5)
    assert bundle.xys.shape == (3, 4, 6, 2)
    for t in bundle:
        assert t.dtype == dtype and t.device.type == torch.device(device).type
    assert_close(bundle.lengths[1, 2, 3], torch.linspace(0.5, 3.0, 5, dtype=dtype))


def test_double_precision_grid_is_exact():
    xys = _ndc(image_width=3, image_height=3)(_cameras(1, dtype=torch.float64)).xys
    assert xys.dtype == torch.float64
    assert xys[0, 0, 0, 0].item() == 1.0 - 1.0 / 3.0  # float64 pixel centre, not a float32 one


def test_lengths_are_view_depths_and_origins_are_camera_centres():
    cams = _cameras(2, dtype=torch.float64)
    bundle = _ndc(stratified_sampling=True)(cams)
    points = ray_bundle_to_ray_points(bundle)  # (B, H, W, P, 3)
    assert_close(_view_depth(cams, points), bundle.lengths)
    centres = cams.get_camera_center()[:, None, None, :].expand_as(bundle.origins)
    assert_close(bundle.origins, centres, atol=1e-9)


# ----------------------------------------------------------------------------- properties


@given(
    width=st.integers(1, 12),
    height=st.integers(1, 12),
    n_pts=st.integers(1, 6),
    min_depth=st.floats(0.2, 3.0),
    depth_span=st.floats(0.0, 5.0),
    fov=st.floats(20.0, 120.0),
    seed=st.integers(0, 10_000),
    stratified=st.booleans(),
    unit=st.booleans(),
)
def test_ndc_rays_project_onto_their_pixels(
    width, height, n_pts, min_depth, depth_span, fov, seed, stratified, unit
):
    cams = _cameras(2, dtype=torch.float64, seed=seed, fov=fov, znear=0.1, zfar=50.0)
    max_depth = min_depth + depth_span
    sampler = _ndc(
        image_width=width,
        image_height=height,
        n_pts_per_ray=n_pts,
        min_depth=min_depth,
        max_depth=max_depth,
        stratified_sampling=stratified,
        unit_directions=unit,
    )
    bundle = sampler(cams)
    lengths = bundle.lengths
    assert lengths.shape == (2, height, width, n_pts)
    assert bool((lengths[..., 1:] >= lengths[..., :-1]).all())
    assert bool((lengths >= min_depth).all()) and bool((lengths <= max_depth).all())
    if unit:
        assert_close(
            bundle.directions.norm(dim=-1), torch.ones(2, height, width, dtype=torch.float64)
        )

    points = ray_bundle_to_ray_points(bundle)  # (2, H, W, P, 3)
    projected = cams.transform_points(points.reshape(2, -1, 3)).reshape(points.shape)
    expected_xy = bundle.xys[..., None, :].expand(*points.shape[:-1], 2)
    # every point projects onto its ray's pixel centre (with unit directions too: the points
    # then sit at other distances, but still on the pixel's ray)
    assert_close(projected[..., :2], expected_xy, atol=1e-8, rtol=1e-7)
    if not unit:
        assert_close(_view_depth(cams, points), lengths, atol=1e-9, rtol=1e-8)
    # the points lie in front of the camera, ordered along the ray (up to the rounding of the
    # world -> view transform: a depth span of a few ulps may come back out of order)
    depth = _view_depth(cams, points)
    slack = 1e-12 * depth.abs().amax()
    assert bool((depth > 0).all()) and bool((depth[..., 1:] >= depth[..., :-1] - slack).all())


@given(
    n_rays=st.integers(1, 20),
    n_pts=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    stratified=st.booleans(),
)
def test_monte_carlo_rays_stay_in_bounds_and_project(n_rays, n_pts, seed, stratified):
    cams = _cameras(2, dtype=torch.float64, seed=seed % 1000)
    sampler = _monte_carlo(
        min_x=-0.5,
        max_x=1.0,
        min_y=-1.0,
        max_y=0.2,
        n_rays_per_image=n_rays,
        n_pts_per_ray=n_pts,
        stratified_sampling=stratified,
    )
    torch.manual_seed(seed)
    bundle = sampler(cams)
    xys, lengths = bundle.xys, bundle.lengths
    assert xys.shape == (2, n_rays, 2) and lengths.shape == (2, n_rays, n_pts)
    assert bool((xys[..., 0] >= -0.5).all()) and bool((xys[..., 0] <= 1.0).all())
    assert bool((xys[..., 1] >= -1.0).all()) and bool((xys[..., 1] <= 0.2).all())
    assert bool((lengths[..., 1:] >= lengths[..., :-1]).all())
    assert bool((lengths >= 1.0).all()) and bool((lengths <= 2.0).all())
    projected = cams.transform_points(ray_bundle_to_ray_points(bundle).reshape(2, -1, 3))
    assert_close(
        projected[..., :2].reshape(2, n_rays, n_pts, 2),
        xys[:, :, None].expand(2, n_rays, n_pts, 2),
        atol=1e-8,
        rtol=1e-7,
    )


# ----------------------------------------------------------------------------- random modes


def test_same_seed_same_rays_and_draws_advance_the_global_rng():
    sampler = _ndc(n_rays_per_image=9, stratified_sampling=True)
    cams = _cameras(2)
    torch.manual_seed(3)
    first = sampler(cams)
    second = sampler(cams)
    torch.manual_seed(3)
    again = sampler(cams)
    for a, c in zip(first, again, strict=True):
        assert torch.equal(a, c)
    assert not torch.equal(first.lengths, second.lengths)


def test_full_grid_does_not_touch_the_rng():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    _ndc()(_cameras(2))
    assert torch.equal(state, torch.get_rng_state())


def test_random_subset_shapes_and_distinct_pixels():
    torch.manual_seed(0)
    bundle = _ndc(n_rays_per_image=10)(_cameras(3))
    assert bundle.origins.shape == (3, 10, 1, 3)
    assert bundle.directions.shape == (3, 10, 1, 3)
    assert bundle.lengths.shape == (3, 10, 1, 5)
    assert bundle.xys.shape == (3, 10, 1, 2)
    grid = _ndc()(_cameras(1)).xys.reshape(-1, 2)
    for image in bundle.xys[:, :, 0]:
        assert torch.unique(image, dim=0).shape[0] == 10  # without replacement
        assert bool((torch.cdist(image, grid).min(dim=1).values < 1e-6).all())  # on the grid


def test_random_subset_larger_than_the_grid_samples_with_replacement():
    torch.manual_seed(0)
    bundle = _ndc(image_width=2, image_height=2, n_rays_per_image=9)(_cameras(2))
    assert bundle.xys.shape == (2, 9, 1, 2)
    assert bool((bundle.xys.abs() == 0.5).all())


def test_mask_sampling_picks_masked_pixels_and_smallest_count():
    mask = torch.zeros(2, 4, 6)
    mask[0, 1, 2:5] = 1.0  # 3 pixels
    mask[1, :2] = 1.0  # 12 pixels
    torch.manual_seed(0)
    bundle = _ndc()(_cameras(2), mask=mask)
    assert bundle.xys.shape == (2, 3, 1, 2) and bundle.lengths.shape == (2, 3, 1, 5)
    grid = _ndc()(_cameras(1)).xys[0]  # (H, W, 2)
    for b in range(2):
        allowed = grid[mask[b] > 0]
        got = bundle.xys[b, :, 0]
        assert bool((torch.cdist(got, allowed).min(dim=1).values < 1e-6).all())
    assert torch.unique(bundle.xys[0, :, 0], dim=0).shape[0] == 3


def test_bool_mask_is_accepted():
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[:, 0, :2] = True
    torch.manual_seed(0)
    bundle = _ndc()(_cameras(2), mask=mask)
    assert bundle.xys.shape == (2, 2, 1, 2)


def test_sparse_mask_row_falls_back_to_replacement():
    mask = torch.zeros(2, 4, 6)
    mask[0, 0, 0] = mask[0, 3, 5] = 1.0  # only 2 pixels but 5 rays asked
    mask[1] = 1.0
    torch.manual_seed(0)
    bundle = _ndc(n_rays_per_image=5)(_cameras(2), mask=mask)
    grid = _ndc()(_cameras(1)).xys[0]
    allowed = grid[mask[0] > 0]
    assert bool((torch.cdist(bundle.xys[0, :, 0], allowed).min(dim=1).values < 1e-6).all())
    assert torch.unique(bundle.xys[1, :, 0], dim=0).shape[0] == 5


def test_forward_overrides():
    torch.manual_seed(0)
    bundle = _ndc()(_cameras(2), min_depth=1.0, max_depth=1.5, n_pts_per_ray=3, n_rays_per_image=4)
    assert bundle.lengths.shape == (2, 4, 1, 3)
    assert_close(bundle.lengths[0, 0, 0], torch.tensor([1.0, 1.25, 1.5]))


@pytest.mark.parametrize("sampler_kind", ["multinomial", "montecarlo"])
def test_n_rays_total(sampler_kind):
    cams = _cameras(3, dtype=torch.float64)
    if sampler_kind == "multinomial":
        sampler, tail = _ndc(n_rays_total=11), (1, 1)
    else:
        sampler, tail = _monte_carlo(n_rays_per_image=None, n_rays_total=11), (1,)
    torch.manual_seed(5)
    bundle = sampler(cams)
    assert isinstance(bundle, HeterogeneousRayBundle)
    assert bundle.origins.shape == (11, *tail, 3)
    assert bundle.directions.shape == (11, *tail, 3)
    assert bundle.lengths.shape == (11, *tail, 4 if sampler_kind == "montecarlo" else 5)
    assert bundle.xys.shape == (11, *tail, 2)
    ids, counts = bundle.camera_ids, bundle.camera_counts
    assert ids.dtype == counts.dtype == torch.long
    assert int(counts.sum()) == 11 and bool((ids[1:] > ids[:-1]).all())
    # rays are packed camera by camera: each origin is its camera's centre
    owner = torch.repeat_interleave(ids, counts)
    centres = cams.get_camera_center()[owner].reshape(11, *[1] * len(tail), 3)
    assert_close(bundle.origins, centres.expand_as(bundle.origins), atol=1e-9)


def test_n_rays_total_with_mask_samples_only_masked_pixels():
    mask = torch.zeros(2, 4, 6)
    mask[0, 0, 0] = mask[1, 3, 5] = 1.0
    torch.manual_seed(1)
    bundle = _ndc(n_rays_total=6)(_cameras(2), mask=mask)
    grid = _ndc()(_cameras(1)).xys[0]
    owner = torch.repeat_interleave(bundle.camera_ids, bundle.camera_counts)
    expected = torch.stack([grid[0, 0], grid[3, 5]])[owner]
    assert_close(bundle.xys[:, 0, 0], expected)


def test_monte_carlo_shapes():
    torch.manual_seed(0)
    bundle = _monte_carlo()(_cameras(2))
    assert isinstance(bundle, RayBundle)
    assert bundle.origins.shape == (2, 7, 3) and bundle.directions.shape == (2, 7, 3)
    assert bundle.lengths.shape == (2, 7, 4) and bundle.xys.shape == (2, 7, 2)


def test_renderer_keywords_are_ignored():
    torch.manual_seed(0)
    bundle = _ndc()(cameras=_cameras(1), volumes=object(), volumetric_function=None)
    assert bundle.xys.shape == (1, 4, 6, 2)
    assert _monte_carlo()(cameras=_cameras(1), volumes=object()).xys.shape == (1, 7, 2)


def test_gradcheck_wrt_camera_translation():
    R = _rotation(1, torch.float64)[None]
    sampler = _ndc(image_width=2, image_height=2, n_pts_per_ray=2)

    def rays(T):
        bundle = sampler(FoVPerspectiveCameras(R=R, T=T))
        return bundle.origins, bundle.directions

    T = torch.tensor([[0.1, -0.2, 2.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rays, (T,))


class _LinearCameras:
    """A duck-typed camera unprojecting ``(x, y, z) -> (x z, y z, z) + shift``.

    No projection maths: it shows any object with the PyTorch3D surface plugs in.
    """

    def __init__(self, shift):
        self.shift = shift
        self.R = torch.eye(3).expand(shift.shape[0], 3, 3)
        self.device = shift.device

    def __len__(self):
        return self.shift.shape[0]

    def __getitem__(self, index):
        return _LinearCameras(self.shift[index])

    def unproject_points(self, xy_depth, world_coordinates=True, from_ndc=False):
        assert world_coordinates and from_ndc
        z = xy_depth[..., 2:]
        return torch.cat((xy_depth[..., :2] * z, z), -1) + self.shift[:, None]


def test_duck_typed_cameras():
    shift = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    bundle = _multinomial()(_LinearCameras(shift))
    assert_close(bundle.origins, shift[:, None, None].expand(2, 3, 5, 3))
    expected_dirs = torch.cat((bundle.xys, torch.ones(2, 3, 5, 1)), -1)
    assert_close(bundle.directions, expected_dirs)


@pytest.mark.parametrize(
    ("factory", "shape"),
    [
        (lambda: _multinomial(stratified_sampling=True, unit_directions=True), (2, 3, 5, 4)),
        (lambda: _multinomial(n_rays_per_image=6), (2, 6, 1, 4)),  # uniform subset
        (lambda: _multinomial(n_rays_per_image=40), (2, 40, 1, 4)),  # with replacement
        (lambda: _monte_carlo(stratified_sampling=True), (2, 7, 4)),
    ],
)
def test_forward_makes_no_host_sync(monkeypatch, factory, shape):
    """Reading a tensor value back to Python (what forces a device sync) is forbidden."""
    sampler = factory()
    cams = _LinearCameras(torch.zeros(2, 3))

    def forbidden(*args, **kwargs):
        raise AssertionError("host-device sync in the raysampler")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    bundle = sampler(cams)
    monkeypatch.undo()
    assert bundle.lengths.shape == shape


# ----------------------------------------------------------------------------- deprecated names


def test_grid_raysampler_is_deprecated():
    with pytest.warns(PendingDeprecationWarning, match="GridRaysampler is deprecated"):
        sampler = GridRaysampler(-1.0, 1.0, -0.5, 0.5, 5, 3, 4, 1.0, 2.0)
    assert isinstance(sampler, MultinomialRaysampler)
    cams = _cameras(2)
    for got, want in zip(sampler(cams), _multinomial()(cams), strict=True):
        assert torch.equal(got, want)


def test_ndc_grid_raysampler_is_deprecated():
    with pytest.warns(PendingDeprecationWarning, match="NDCGridRaysampler is deprecated"):
        sampler = NDCGridRaysampler(6, 4, 5, 0.5, 3.0)
    assert isinstance(sampler, NDCMultinomialRaysampler)
    cams = _cameras(2)
    for got, want in zip(sampler(cams), _ndc()(cams), strict=True):
        assert torch.equal(got, want)


# ----------------------------------------------------------------------------- bad input


def test_bad_rays_per_image_and_total_at_init():
    with pytest.raises(ValueError, match="n_rays_per_image, n_rays_total: expected at most one"):
        _ndc(n_rays_per_image=4, n_rays_total=8)


def test_bad_rays_per_image_and_total_at_forward():
    with pytest.raises(ValueError, match="n_rays_per_image, n_rays_total: expected at most one"):
        _ndc(n_rays_per_image=4)(_cameras(2), n_rays_total=8)


def test_bad_monte_carlo_rays_per_image_and_total():
    with pytest.raises(ValueError, match="n_rays_per_image, n_rays_total: expected at most one"):
        _monte_carlo(n_rays_per_image=4, n_rays_total=8)


def test_bad_monte_carlo_no_ray_count():
    with pytest.raises(ValueError, match="n_rays_per_image, n_rays_total: expected exactly one"):
        _monte_carlo(n_rays_per_image=None)


@pytest.mark.parametrize("shape", [(2, 4, 5), (2, 3, 6), (3, 4, 6), (4, 6)])
def test_bad_mask_shape(shape):
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 4, 6\)"):
        _ndc()(_cameras(2), mask=torch.ones(shape))


def test_bad_mask_not_a_tensor():
    with pytest.raises(TypeError, match="mask: expected a tensor"):
        _ndc()(_cameras(2), mask=[[1.0]])


def test_bad_mask_device():
    with pytest.raises(ValueError, match="mask: expected a tensor on device"):
        _ndc()(_cameras(2), mask=torch.ones(2, 4, 6, device="meta"))


def test_bad_mask_negative():
    mask = torch.ones(2, 4, 6)
    mask[1, 0, 0] = -1.0
    with pytest.raises(ValueError, match="mask: expected finite non-negative weights"):
        _ndc()(_cameras(2), mask=mask)


def test_bad_mask_empty_image():
    mask = torch.ones(2, 4, 6)
    mask[1] = 0.0
    with pytest.raises(ValueError, match="mask: expected a non-zero entry in every image"):
        _ndc(n_rays_per_image=3)(_cameras(2), mask=mask)


def test_bad_mask_total_below_one():
    with pytest.raises(ValueError, match="mask: expected every image's weights to sum to >= 1"):
        _ndc()(_cameras(2), mask=torch.full((2, 4, 6), 0.01))


def test_bad_n_pts_per_ray():
    with pytest.raises(ValueError, match="n_pts_per_ray: expected an integer >= 0"):
        _ndc(n_pts_per_ray=-3)


def test_bad_n_pts_per_ray_override():
    with pytest.raises(ValueError, match="n_pts_per_ray: expected an integer >= 0"):
        _ndc()(_cameras(1), n_pts_per_ray=-1)


def test_bad_n_pts_per_ray_type():
    with pytest.raises(ValueError, match="n_pts_per_ray: expected an integer >= 0") as info:
        _monte_carlo(n_pts_per_ray=2.5)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("factory", [_ndc, _monte_carlo])
def test_zero_points_per_ray_give_empty_lengths_like_pytorch3d(factory):
    bundle = factory(n_pts_per_ray=0)(_cameras(2))
    assert bundle.lengths.shape[-1] == 0 and bundle.lengths.shape[:-1] == bundle.xys.shape[:-1]


def test_zero_ray_count_override_means_not_given_like_pytorch3d():
    full = _ndc()(_cameras(1))
    assert full.xys.shape == _ndc()(_cameras(1), n_rays_per_image=0).xys.shape
    assert full.xys.shape == _ndc(n_rays_total=0)(_cameras(1)).xys.shape
    with pytest.raises(ValueError, match="expected at most one of them to be set"):
        _ndc(n_rays_total=0, n_rays_per_image=2)  # a constructor's 0 counts as set there


def test_bad_n_rays_per_image():
    with pytest.raises(ValueError, match="n_rays_per_image: expected an integer >= 1"):
        _ndc(n_rays_per_image=0)


def test_bad_n_rays_total():
    with pytest.raises(ValueError, match="n_rays_total: expected None or an integer >= 1, got 0"):
        _monte_carlo(n_rays_per_image=None, n_rays_total=0)
    with pytest.raises(ValueError, match="expected at most one of them to be set"):
        _monte_carlo(n_rays_per_image=3, n_rays_total=0)  # a 0 counts as set, as in PyTorch3D


@pytest.mark.parametrize("factory", [_ndc, _monte_carlo])
def test_reversed_depth_range_samples_far_to_near_like_pytorch3d(factory):
    lengths = factory(min_depth=3.0, max_depth=1.0, n_pts_per_ray=3)(_cameras(1)).lengths
    assert_close(lengths.reshape(-1, 3)[0], torch.tensor([3.0, 2.0, 1.0]))
    override = _ndc(n_pts_per_ray=2)(_cameras(1), min_depth=4.0).lengths
    assert_close(override.reshape(-1, 2)[0], torch.tensor([4.0, 3.0]))


@pytest.mark.parametrize("factory", [_ndc, _monte_carlo])
def test_zero_dim_tensor_depths_like_pytorch3d(factory):
    want = factory()(_cameras(1)).lengths
    got = factory(min_depth=torch.tensor(0.5 if factory is _ndc else 1.0))(_cameras(1)).lengths
    assert_close(got, want)


def test_bad_depth_not_finite():
    sampler = _ndc(max_depth=float("inf"))  # checked where depths place points
    with pytest.raises(ValueError, match="max_depth: expected a finite number"):
        sampler(_cameras(1))
    assert sampler(_cameras(1), n_pts_per_ray=1).lengths.eq(0.5).all()  # max_depth unused


def test_bad_depth_type():
    # (B,) tensors are per-camera depths (a voxrender extension, tests/test_extensions.py)
    with pytest.raises(
        ValueError, match=r"min_depth: expected a number or a tensor of shape \(B,\)"
    ):
        _ndc(min_depth=torch.tensor([[0.5]]))
    with pytest.raises(ValueError, match="min_depth: expected a real number") as info:
        _ndc(min_depth="0.5")
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("field", ["image_width", "image_height"])
@pytest.mark.parametrize("factory", [_ndc, _multinomial])
def test_bad_image_size(factory, field):
    with pytest.raises(ValueError, match=f"{field}: expected an integer >= 1"):
        factory(**{field: 0})


def test_equal_bounds_give_one_column_of_rays_like_pytorch3d():
    xys = _multinomial(min_x=0.3, max_x=0.3)(_cameras(1)).xys
    assert torch.all(xys[..., 0] == 0.3)


def test_bad_multinomial_bound_not_finite():
    with pytest.raises(ValueError, match="min_x: expected a finite number"):
        _multinomial(min_x=float("nan"))


def test_monte_carlo_reversed_and_equal_bounds_like_pytorch3d():
    xys = _monte_carlo(min_x=1.0, max_x=-1.0, min_y=0.5, max_y=0.5)(_cameras(2)).xys
    assert torch.all(xys[..., 0].abs() <= 1.0) and torch.all(xys[..., 1] == 0.5)


def test_float64_cameras_draw_the_same_random_numbers_as_float32_ones():
    # PyTorch3D draws in float32 whatever the camera: the same seed gives the same rays.
    for factory, field in ((_monte_carlo, "xys"), (lambda: _ndc(n_rays_per_image=5), "xys")):
        torch.manual_seed(3)
        want = getattr(factory()(_cameras(2)), field)
        torch.manual_seed(3)
        got = getattr(factory()(_cameras(2, dtype=torch.float64)), field)
        assert got.dtype == torch.float64
        assert_close(got.float(), want)
    torch.manual_seed(4)
    want = _ndc(stratified_sampling=True)(_cameras(2)).lengths
    torch.manual_seed(4)
    got = _ndc(stratified_sampling=True)(_cameras(2, dtype=torch.float64)).lengths
    assert_close(got.float(), want)


def test_bad_flag():
    with pytest.raises(TypeError, match="unit_directions: expected a bool"):
        _ndc(unit_directions="yes")
    assert _ndc(unit_directions=1)._unit_directions is True  # an int flag, as PyTorch3D takes


def test_bad_stratified_override():
    with pytest.raises(TypeError, match="stratified_sampling: expected a bool"):
        _monte_carlo()(_cameras(1), stratified_sampling="yes")


@pytest.mark.parametrize("factory", [_ndc, _monte_carlo])
def test_bad_cameras(factory):
    with pytest.raises(TypeError, match="cameras: expected a cameras object with R, device"):
        factory()(object())


def test_bad_cameras_not_indexable_for_n_rays_total():
    class NoIndex:
        def __init__(self):
            self.R = torch.eye(3)[None]
            self.device = torch.device("cpu")

        def unproject_points(self, xy_depth, **kwargs):
            return xy_depth

    _ndc()(NoIndex())  # the full grid needs no indexing
    with pytest.raises(TypeError, match=r"cameras: expected .* __len__, __getitem__"):
        _ndc(n_rays_total=3)(NoIndex())


def test_bad_cameras_rotation():
    class BadR:
        R = torch.eye(3)
        device = torch.device("cpu")

        def unproject_points(self, xy_depth, **kwargs):
            return xy_depth

    with pytest.raises(TypeError, match=r"cameras.R: expected a tensor of shape \(B, 3, 3\)"):
        _ndc()(BadR())


def test_bad_unprojection_shape():
    class Flat(_LinearCameras):
        def unproject_points(self, xy_depth, **kwargs):
            return xy_depth[..., :2]

    with pytest.raises(ValueError, match=r"cameras\.unproject_points: expected a tensor of shape"):
        _ndc()(Flat(torch.zeros(1, 3)))

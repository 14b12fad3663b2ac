"""The Triton backend (voxrender/triton_render.py) against the reference path.

Without a GPU the kernels run in triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``,
set by conftest.py before the kernels are imported). The interpreter is slow (about 0.1 s per
point of a ray per pass), so the scenes are tiny: a few rays of a few points; more examples run
under ``-m slow``. Images and volume gradients must equal the reference path (sample every point,
then composite) within tests/helpers.py's tolerance table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip(
    "triton", reason="triton is not installed: the Triton backend cannot be tested"
)

from helpers import assert_close  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from voxrender import (  # noqa: E402
    AbsorptionOnlyRaymarcher,
    EmissionAbsorptionRaymarcher,
    ImplicitRenderer,
    RayBundle,
    Volumes,
    VolumeSampler,
    triton_render,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

pytestmark = pytest.mark.skipif(
    triton_render.device_ineligible(torch.device(DEVICE)) is not None,
    reason=f"Triton kernels cannot run on {DEVICE}: "
    f"{triton_render.device_ineligible(torch.device(DEVICE))}",
)


def _scene(
    *,
    dtype=torch.float64,
    grid=(2, 3, 4),
    batch=1,
    shared=False,
    features=2,
    align_corners=True,
    n_rays=5,
    n_pts=4,
    seed=0,
    extremes=True,
    axis_rays=True,
    spread=3.0,
    sorted_lengths=True,
):
    """Volumes (leaves needing grad), a bundle (some rays inside, some missing), the leaves."""
    g = torch.Generator().manual_seed(seed)
    n = 1 if shared else batch
    dens = torch.rand(n, 1, *grid, generator=g, dtype=torch.float64)
    if extremes:  # exact 0s and 1s (a blend of 1s is 1: x = 0 in the transmittance)
        pick = torch.rand(dens.shape, generator=g, dtype=torch.float64)
        dens = torch.where(pick < 0.25, 0.0, torch.where(pick > 0.7, 1.0, dens))
    feats = torch.rand(n, features, *grid, generator=g, dtype=torch.float64)
    dens = dens.to(DEVICE, dtype).requires_grad_()
    feats = feats.to(DEVICE, dtype).requires_grad_()
    expand = (batch, -1, -1, -1, -1)
    vols = Volumes(
        densities=dens.expand(*expand) if shared else dens,
        features=feats.expand(*expand) if shared else feats,
        voxel_size=(0.5, 0.4, 0.6),
        volume_translation=(0.1, -0.2, 0.05),
        align_corners=align_corners,
    )
    origins = (torch.rand(batch, n_rays, 3, generator=g, dtype=torch.float64) - 0.5) * spread
    origins[:, 0] = 0.05  # starts inside the box
    directions = torch.randn(batch, n_rays, 3, generator=g, dtype=torch.float64)
    if axis_rays:  # axis-parallel rays (ray 0 too when it is the only one)
        directions[:, min(1, n_rays - 1)] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        directions[:, min(2, n_rays - 1)] = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    if n_rays > 3:  # one ray far outside, pointing away: misses the box
        origins[:, 3] = torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64)
        directions[:, 3] = torch.tensor([1.0, 0.2, 0.1], dtype=torch.float64)
    lengths = torch.rand(batch, n_rays, n_pts, generator=g, dtype=torch.float64) * 3
    if sorted_lengths:  # else the kernels must not assume points in order along the ray
        lengths = torch.sort(lengths)[0]
    bundle = RayBundle(
        *(t.to(DEVICE, dtype) for t in (origins, directions, lengths)), None
    )  # (B, R, 3), (B, R, 3), (B, R, P)
    return vols, bundle, (dens, feats)


def _render(vols, bundle, raymarcher, backend, **kwargs):
    renderer = ImplicitRenderer(lambda **_: bundle, raymarcher, backend=backend)
    images, _ = renderer(cameras=None, volumetric_function=VolumeSampler(vols), **kwargs)
    assert renderer.last_backend.name == backend, renderer.last_backend
    return images


def _compare(vols, bundle, leaves, raymarcher, **kwargs):
    got = _render(vols, bundle, raymarcher, "triton", **kwargs)
    want = _render(vols, bundle, raymarcher, "reference", **kwargs)
    assert_close(got, want)
    g = torch.Generator().manual_seed(7)
    cot = torch.randn(got.shape, generator=g, dtype=torch.float64).to(got)
    used = [
        leaf
        for leaf in leaves
        if type(raymarcher) is EmissionAbsorptionRaymarcher or leaf is leaves[0]
    ]
    grads = torch.autograd.grad((got * cot).sum(), used)
    want_grads = torch.autograd.grad((want * cot).sum(), used)
    for x, y in zip(grads, want_grads, strict=True):
        assert x.shape == y.shape
        assert_close(x, y, kind="grad")
    return got, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "raymarcher", [EmissionAbsorptionRaymarcher(), AbsorptionOnlyRaymarcher()], ids=["ea", "ao"]
)
def test_matches_reference(dtype, raymarcher):
    vols, bundle, leaves = _scene(dtype=dtype, batch=2)
    _compare(vols, bundle, leaves, raymarcher)


@pytest.mark.parametrize(
    "case",
    [
        dict(shared=True, batch=2, surface_thickness=3, align_corners=False),
        dict(grid=(2, 5, 2), surface_thickness=2, eps=0.05),
        dict(grid=(3, 2, 2), n_pts=9, surface_thickness=1, eps=0.0),  # two segments backward
    ],
    ids=["expanded-s3-noalign", "thin-s2-eps", "segments-eps0"],
)
def test_edge_cases(case):
    case = dict(case)
    s, eps = case.pop("surface_thickness"), case.pop("eps", 1e-10)
    vols, bundle, leaves = _scene(**case)
    _compare(vols, bundle, leaves, EmissionAbsorptionRaymarcher(s), eps=eps)
    if case.get("shared"):  # one table, one gradient: the leaf's own shape
        assert leaves[0].shape[0] == 1


def test_rays_missing_the_box_render_zero_and_send_no_gradient():
    vols, bundle, leaves = _scene(n_rays=4, n_pts=3)
    far = RayBundle(bundle.origins + 10.0, bundle.directions, bundle.lengths, None)
    images = _render(vols, far, EmissionAbsorptionRaymarcher(), "triton")
    assert torch.equal(images, torch.zeros_like(images))
    grads = torch.autograd.grad(images.sum(), leaves, allow_unused=True)
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_opaque_wall_exact():
    # densities of exactly 1 everywhere: the first point inside is all that shows; the
    # written-out backward has no 0/0 there (a division form would need a special case)
    vols, bundle, leaves = _scene(n_rays=3, n_pts=5, extremes=False)
    with torch.no_grad():
        leaves[0].fill_(1.0)
    _, grads = _compare(vols, bundle, leaves, EmissionAbsorptionRaymarcher(), eps=0.0)
    assert torch.isfinite(grads[0]).all()


@settings(max_examples=8)
@given(data=st.data())
def test_property_matches_reference(data):
    _property(data)


@pytest.mark.slow
@settings(max_examples=60)
@given(data=st.data())
def test_property_matches_reference_more(data):
    _property(data)


def _property(data):
    grid = tuple(data.draw(st.integers(2, 4)) for _ in range(3))
    batch = data.draw(st.integers(1, 2))
    case = dict(
        dtype=data.draw(st.sampled_from([torch.float32, torch.float64])),
        grid=grid,
        batch=batch,
        shared=batch > 1 and data.draw(st.booleans()),
        features=data.draw(st.integers(1, 3)),
        align_corners=data.draw(st.booleans()),
        n_rays=data.draw(st.integers(1, 6)),
        n_pts=data.draw(st.integers(1, 6)),
        seed=data.draw(st.integers(0, 2**16)),
        extremes=data.draw(st.booleans()),
        axis_rays=data.draw(st.booleans()),
        sorted_lengths=data.draw(st.booleans()),
    )
    vols, bundle, leaves = _scene(**case)
    if data.draw(st.booleans()):
        raymarcher = EmissionAbsorptionRaymarcher(data.draw(st.integers(1, 4)))
        eps = data.draw(st.sampled_from([1e-10, 0.0, 0.03]))
        _compare(vols, bundle, leaves, raymarcher, eps=eps)
    else:
        _compare(vols, bundle, leaves, AbsorptionOnlyRaymarcher())


def test_gradcheck_float64():
    _, bundle, (dens, feats) = _scene(
        grid=(2, 2, 2), features=1, n_rays=3, n_pts=4, extremes=False, spread=0.6
    )  # rays through the box: every voxel gets a gradient
    raymarcher = EmissionAbsorptionRaymarcher(2)
    renderer = ImplicitRenderer(lambda **_: bundle, raymarcher, backend="triton")

    def render(d, f):
        volumes = Volumes(densities=d, features=f, voxel_size=(0.5, 0.4, 0.6),
                          volume_translation=(0.1, -0.2, 0.05))  # fmt: skip
        return renderer(cameras=None, volumetric_function=VolumeSampler(volumes))[0]

    d0 = (dens.detach() * 0.8 + 0.1).requires_grad_()  # away from the [0, 1] bounds
    assert torch.autograd.gradcheck(render, (d0, feats), eps=1e-6, atol=1e-7, fast_mode=True)


def test_compiled_fullgraph_no_recompiles():
    torch._dynamo.reset()
    _, bundle, (dens, feats) = _scene(n_rays=4, n_pts=3, dtype=torch.float32)
    ld = torch.logit(dens.detach().clamp(0.05, 0.95)).requires_grad_()
    lc = feats.detach().clone().requires_grad_()
    renderer = ImplicitRenderer(
        lambda **_: bundle, EmissionAbsorptionRaymarcher(), backend="triton"
    )
    target = torch.rand(1, 4, 3, device=DEVICE)
    optimizer = torch.optim.Adam([ld, lc], lr=0.1)

    def loss_fn():
        volumes = Volumes(densities=torch.sigmoid(ld), features=lc, voxel_size=(0.5, 0.4, 0.6),
                          volume_translation=(0.1, -0.2, 0.05))  # fmt: skip
        images = renderer(cameras=None, volumetric_function=VolumeSampler(volumes))[0]
        return ((images - target) ** 2).mean()

    eager = loss_fn()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    losses = []
    for step in range(3):
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
            optimizer.zero_grad()
            loss = compiled()
            if step == 0:
                assert_close(loss.detach(), eager.detach())
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert renderer.last_backend.name == "triton"
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "args", [[], pytest.param(["--all"], marks=pytest.mark.slow)], ids=["fp32-ea", "all"]
)
def test_kernels_compile_for_sm90_without_a_gpu(args):
    # the interpreter does not type-check like the compiler: lower the kernels to a cubin for
    # sm_90 (H100/H200) with triton's bundled ptxas, in a process without TRITON_INTERPRET
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, str(root / "tests" / "triton_aot_check.py"), *args],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "compiled for sm_90" in run.stdout


# --------------------------------------------------------------------------------------------
# Empty-space skipping: each ray marches only its run [first, stop) of samples that can read
# the volume (triton_render.sample_ranges); the rest are exact zeros, so nothing changes.

# Rays in margined voxel units ``u = u0 + t du`` (x, y, z along W, H, D) for the (2, 3, 4) grid
# (readable where 0 < u < (5, 4, 3)), ``t`` in [0, 1]: (name, u0, du).
_SKIP_RAYS = [
    ("miss", (-3.0, 2.0, 1.5), (-2.0, 0.3, 0.1)),  # outside, heading away
    ("inside-exits", (2.5, 2.0, 1.5), (6.0, 4.2, 2.4)),  # starts inside, leaves
    ("through", (-4.0, -1.0, -2.0), (12.0, 7.0, 6.0)),  # enters and leaves
    ("axis-z", (2.3, 1.6, -3.0), (0.0, 0.0, 9.0)),  # axis-parallel, through
    ("axis-minus-y", (1.7, 8.0, 1.2), (0.0, -11.0, 0.0)),  # axis-parallel, backwards
    ("edge", (0.5, 0.5, -2.0), (0.0, 0.0, 7.0)),  # along an edge of the box, half a voxel out
    ("corner", (-1.6, 2.4, -1.6), (4.0, -4.0, 4.0)),  # clips the corner cell (0.4, 0.4, 0.4)
    ("face", (-2.0, 0.0, 1.5), (9.0, 0.0, 0.0)),  # on the face plane u_y = 0: reads nothing
    ("still", (2.2, 1.4, 1.1), (0.0, 0.0, 0.0)),  # no direction: every sample at one point
    ("inside-long", (3.2, 2.9, 0.7), (-2.5, -1.5, 1.0)),  # starts inside, ends inside
]


def _local_from_u(u: torch.Tensor, sizes, align_corners: bool) -> torch.Tensor:
    """Margined voxel units ``u (..., 3)`` -> normalised local coordinates (fused.py inverted)."""
    sizes = torch.tensor(sizes, dtype=u.dtype)  # (W, H, D)
    if align_corners:  # u = (x + 1) / 2 * (S - 1) + 1
        return (u - 1) * 2 / (sizes - 1) - 1
    return (2 * (u - 1) + 1) / sizes - 1  # u = ((x + 1) S - 1) / 2 + 1


def _skip_scene(*, dtype, layout="single", align_corners=True, n_pts=8, seed=0, rays=None):
    """Volumes on a (2, 3, 4) grid and the rays ``rays`` (default ``_SKIP_RAYS``) in each element.

    ``layout``: "single" (one volume), "batched" (two volumes) or "expanded" (one volume
    expanded across a batch of two). Returns ``(vols, bundle, leaves)``.
    """
    rays = _SKIP_RAYS if rays is None else rays
    grid = (2, 3, 4)
    batch = 1 if layout == "single" else 2
    vols, _, leaves = _scene(
        dtype=dtype, grid=grid, batch=batch, shared=layout == "expanded", seed=seed,
        align_corners=align_corners,
    )  # fmt: skip
    u0 = torch.tensor([r[1] for r in rays], dtype=torch.float64)  # (R, 3)
    du = torch.tensor([r[2] for r in rays], dtype=torch.float64)
    sizes = grid[::-1]
    ends = torch.stack((_local_from_u(u0, sizes, align_corners), _local_from_u(u0 + du, sizes,
                       align_corners)))  # fmt: skip  # (2, R, 3)
    world = vols.local_to_world_coords(
        ends.to(DEVICE, dtype).reshape(1, -1, 3).expand(batch, -1, -1)
    )
    world = world.double().reshape(batch, 2, -1, 3)  # (B, 2, R, 3)
    origins, directions = world[:, 0], world[:, 1] - world[:, 0]  # (B, R, 3)
    g = torch.Generator().manual_seed(seed)
    n_rays = len(rays)
    steps = torch.linspace(0, 1, n_pts, dtype=torch.float64)
    jitter = torch.rand(batch, n_rays, n_pts, generator=g, dtype=torch.float64) / (2 * n_pts)
    lengths = (steps + jitter).clamp(max=1.0)  # (B, R, P), each row increasing
    bundle = RayBundle(*(t.to(DEVICE, dtype) for t in (origins, directions, lengths)), None)
    return vols, bundle, leaves


def _ranges(vols, bundle, raymarcher, **kwargs):
    """``(first, stop)`` ``(B * R,)`` the kernels use for this render."""
    from voxrender.fused import prepare_fused

    inputs = prepare_fused(vols, bundle, raymarcher, kwargs)
    assert not isinstance(inputs, str), inputs
    return triton_render.sample_ranges(inputs)


def _ray(name: str) -> int:
    return [r[0] for r in _SKIP_RAYS].index(name)


@pytest.mark.parametrize("layout", ["single", "batched", "expanded"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_skipping_matches_reference(dtype, layout):
    # float32 with the default eps, float64 with eps = 0: (1 + eps) - 0 == 1, so the samples in
    # front of each run are skipped too
    eps = 1e-10 if dtype == torch.float32 else 0.0
    raymarcher = EmissionAbsorptionRaymarcher(2)
    vols, bundle, leaves = _skip_scene(dtype=dtype, layout=layout)
    _compare(vols, bundle, leaves, raymarcher, eps=eps)
    first, stop = (x.view(-1, len(_SKIP_RAYS)) for x in _ranges(vols, bundle, raymarcher, eps=eps))
    n_pts = bundle.lengths.shape[-1]
    assert (stop - first).sum() < first.numel() * n_pts * 0.7  # most samples are skipped
    assert (first[:, _ray("miss")] == stop[:, _ray("miss")]).all()  # no sample at all
    # ("face" lies on the box's boundary plane: the widened box keeps it, and it reads zeros)
    for name in ("inside-exits", "inside-long", "still"):
        assert (first[:, _ray(name)] == 0).all(), name
    assert (stop[:, _ray("inside-exits")] < n_pts).all()
    assert (stop[:, _ray("still")] == n_pts).all()
    for name in ("through", "axis-z", "axis-minus-y", "edge", "corner"):
        assert (first[:, _ray(name)] > 0).all(), name
        assert (stop[:, _ray(name)] < n_pts).all(), name
        assert (stop[:, _ray(name)] > first[:, _ray(name)]).all(), name


_LATE = ("through", "axis-z", "axis-minus-y", "edge", "corner", "miss")  # none starts inside


@pytest.mark.parametrize(
    "dtype,eps",
    [(torch.float32, 1e-10), (torch.float64, 0.0), (torch.float64, 1e-3), (torch.float32, 0.03)],
)
def test_skipping_whole_programs_start_late(dtype, eps):
    # every ray of the program enters late: its loops (and the backward's checkpoints and
    # segments, 4 of 4 points here) start at its smallest first > 0, inside a segment (the
    # segment's prefix products come from checkpoints that pass 1 computed without visiting
    # the points in front: powers of 1 + eps, or 1)
    raymarcher = EmissionAbsorptionRaymarcher(3)
    rays = [r for r in _SKIP_RAYS if r[0] in _LATE and r[0] != "corner"]
    vols, bundle, leaves = _skip_scene(dtype=dtype, layout="batched", n_pts=16, rays=rays, seed=1)
    _compare(vols, bundle, leaves, raymarcher, eps=eps)
    first, stop = _ranges(vols, bundle, raymarcher, eps=eps)
    hit = stop > first
    assert first[hit].min() == 5  # the first segment is skipped whole, the second in part
    assert stop.max() < 16


def _several_programs_scene():
    """70 rays: 3 backward programs (32 rays), 2 forward ones (64), whose loops differ.

    The first programs hold only rays that enter late, the last ones rays that start inside too.
    """
    late = [r for r in _SKIP_RAYS if r[0] in _LATE]
    rays = [
        (name, tuple(x + 0.01 * k for x in u0), du)
        for k in range(11)
        for name, u0, du in late
    ] + list(_SKIP_RAYS[:4])  # fmt: skip
    return _skip_scene(dtype=torch.float64, n_pts=12, rays=rays, seed=2)


def test_forward_kernel_counts_fewer_points():
    # the forward kernel, counted (COUNT): each ray visits exactly its run, each program loops
    # from its rays' smallest first to their largest stop, and far fewer points are gathered
    # than a full march would visit
    from voxrender.fused import prepare_fused

    vols, bundle, _ = _several_programs_scene()
    inputs = prepare_fused(vols, bundle, EmissionAbsorptionRaymarcher(2), {"eps": 0.0})
    steps, visited, gathered = triton_render._forward_counts(inputs).long()  # (R,) each
    first, stop = (x.long() for x in triton_render.sample_ranges(inputs))
    n_rays, n_pts = inputs.lengths.shape
    assert torch.equal(visited, stop - first)
    busy = stop > first
    for start in range(0, n_rays, 64):  # the forward kernel's programs
        rays = slice(start, start + 64)
        loop = stop[rays][busy[rays]].max() - first[rays][busy[rays]].min()
        assert (steps[rays] == loop).all()
    assert steps[:64].max() < n_pts  # the first program skips the front and the back
    assert (gathered <= visited).all()
    assert visited.sum() < 0.5 * n_rays * n_pts
    assert steps.sum() < 0.7 * n_rays * n_pts


def test_skipping_several_programs():
    vols, bundle, leaves = _several_programs_scene()
    raymarcher = EmissionAbsorptionRaymarcher(2)
    _compare(vols, bundle, leaves, raymarcher, eps=0.0)
    first, stop = _ranges(vols, bundle, raymarcher, eps=0.0)
    hit = stop > first
    assert first[:32][hit[:32]].min() > 0 and first[64:].min() == 0


@pytest.mark.parametrize(
    "dtype,layout,align_corners",
    [(torch.float64, "batched", True), (torch.float32, "expanded", False)],
)
def test_skipping_matches_reference_absorption_only(dtype, layout, align_corners):
    vols, bundle, leaves = _skip_scene(dtype=dtype, layout=layout, align_corners=align_corners)
    _compare(vols, bundle, leaves, AbsorptionOnlyRaymarcher())
    first, stop = _ranges(vols, bundle, AbsorptionOnlyRaymarcher())
    assert (first > 0).any() and (stop < bundle.lengths.shape[-1]).any()


def test_skipping_where_eps_counts():
    # (1 + eps) - 0 != 1 (float64, default eps or 1e-3): every sample in front multiplies the
    # transmittance by 1 + eps; the kernels multiply those factors in without visiting the
    # samples, so the runs are the same as where eps vanishes
    raymarcher = EmissionAbsorptionRaymarcher(3)
    vols, bundle, leaves = _skip_scene(dtype=torch.float64, layout="batched", seed=1)
    for eps in (1e-10, 1e-3):
        _compare(vols, bundle, leaves, raymarcher, eps=eps)
        first, stop = (x.view(2, -1) for x in _ranges(vols, bundle, raymarcher, eps=eps))
        for got, want in zip(
            (first, stop), _ranges(vols, bundle, raymarcher, eps=0.0), strict=True
        ):
            assert torch.equal(got, want.view(2, -1))
        for name in ("through", "axis-z", "axis-minus-y", "edge", "corner"):
            assert (first[:, _ray(name)] > 0).all(), name
            assert (stop[:, _ray(name)] < bundle.lengths.shape[-1]).all(), name
        assert (first[:, _ray("miss")] == stop[:, _ray("miss")]).all()


def test_sample_ranges_cover_every_sample_that_reads_the_volume():
    # a volume of ones, sampled by the reference path: every sample outside its ray's run reads
    # exactly 0, and the runs hold hardly any sample that reads 0 (they are tight, but for
    # the ray on the box's face)
    for align_corners in (True, False):
        vols, bundle, _ = _skip_scene(dtype=torch.float64, align_corners=align_corners, n_pts=40)
        ones = Volumes(
            densities=torch.ones_like(vols.densities()), features=vols.features().detach(),
            voxel_size=(0.5, 0.4, 0.6), volume_translation=(0.1, -0.2, 0.05),
            align_corners=align_corners,
        )  # fmt: skip
        density = VolumeSampler(ones)(bundle)[0][..., 0].reshape(len(_SKIP_RAYS), -1)  # (R, P)
        first, stop = _ranges(ones, bundle, AbsorptionOnlyRaymarcher())
        j = torch.arange(density.shape[1])
        run = (j >= first[:, None].long()) & (j < stop[:, None].long())  # (R, P)
        assert torch.equal(density[~run], torch.zeros_like(density[~run]))
        run[_ray("face")] = False  # on the boundary: kept by the widened box, reads zeros
        assert int((density[run] == 0).sum()) <= 2 * len(_SKIP_RAYS)
        assert run.sum() < density.numel() / 2


def test_sample_ranges_visit_every_sample_of_unordered_or_nan_depths():
    vols, bundle, _ = _skip_scene(dtype=torch.float64)
    lengths = bundle.lengths.clone()
    lengths[0, _ray("through")] = lengths[0, _ray("through")].flip(-1)
    lengths[0, _ray("axis-z"), 2] = float("nan")
    first, stop = _ranges(
        vols, RayBundle(bundle.origins, bundle.directions, lengths, None),
        AbsorptionOnlyRaymarcher(),
    )  # fmt: skip
    for name in ("through", "axis-z"):
        assert first[_ray(name)] == 0 and stop[_ray(name)] == lengths.shape[-1]
    assert first[_ray("miss")] == stop[_ray("miss")]  # the others keep their runs


def test_kernels_visit_only_the_runs(monkeypatch):
    # the kernels read nothing outside the runs they are given: emptying one ray's run blanks
    # its pixel and takes its gradient away, forward and backward (which recompute the samples)
    vols, bundle, leaves = _skip_scene(dtype=torch.float64)
    raymarcher = EmissionAbsorptionRaymarcher(2)
    blank = _ray("through")
    original = triton_render.sample_ranges

    def narrowed(inputs):
        first, stop = original(inputs)
        assert stop[blank] > first[blank]
        return first, torch.where(torch.arange(first.numel()) == blank, first, stop)

    monkeypatch.setattr(triton_render, "sample_ranges", narrowed)
    got = _render(vols, bundle, raymarcher, "triton", eps=0.0)
    want = _render(vols, bundle, raymarcher, "reference", eps=0.0)
    assert torch.equal(got[0, blank], torch.zeros_like(got[0, blank]))
    assert want[0, blank, -1] > 0  # the reference does see the volume there
    keep = torch.ones((*got.shape[:-1], 1), dtype=got.dtype)
    keep[0, blank] = 0
    assert_close(got * keep, want * keep)
    cot = torch.randn(got.shape, generator=torch.Generator().manual_seed(1), dtype=got.dtype)
    grads = torch.autograd.grad((got * cot).sum(), leaves)
    want_grads = torch.autograd.grad((want * cot * keep).sum(), leaves)
    for x, y in zip(grads, want_grads, strict=True):
        assert_close(x, y, kind="grad")


def test_tutorial_scene_skips_a_third_of_the_samples():
    # the fit tutorial's geometry: a 3-unit box seen from 2.7 units away, 150 points per ray
    # between depths 0.1 and 3 (the ranges only; no kernel runs)
    from voxrender import FoVPerspectiveCameras, NDCMultinomialRaysampler, look_at_view_transform

    R, T = look_at_view_transform(dist=2.7, elev=torch.zeros(2), azim=torch.tensor([0.0, 135.0]))
    cams = FoVPerspectiveCameras(R=R, T=T)
    raysampler = NDCMultinomialRaysampler(
        image_width=32, image_height=32, n_pts_per_ray=150, min_depth=0.1, max_depth=3.0
    )
    bundle = raysampler(cams)
    size = 16
    vols = Volumes(
        densities=torch.rand(1, 1, size, size, size).expand(2, -1, -1, -1, -1),
        features=torch.rand(1, 3, size, size, size).expand(2, -1, -1, -1, -1),
        voxel_size=3.0 / size,
    )
    first, stop = _ranges(vols, bundle, EmissionAbsorptionRaymarcher())  # float32, eps 1e-10
    visited = float((stop - first).sum()) / bundle.lengths.numel()
    assert 0.55 < visited < 0.75  # about 0.65: the samples in front of the box are skipped

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

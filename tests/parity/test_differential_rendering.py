"""Differential tests of the rendering API.

voxrender against PyTorch3D on valid, edge and invalid input.

Each test draws one input (hypothesis: valid, degenerate-but-legal and invalid values mixed),
runs the same calls on both libraries and checks the *outcome class*:

- PyTorch3D succeeds: voxrender succeeds with the same values (and the same gradients for the
  same random cotangent); where PyTorch3D's result is not finite (garbage) voxrender may refuse
  with a ``ValueError`` instead.
- PyTorch3D refuses on purpose (a ``raise`` statement of its own): voxrender refuses with an
  instance of the same class.
- PyTorch3D crashes by accident (an error from deeper down: ``RuntimeError``, ``TypeError``,
  ``IndexError`` from torch or Python): voxrender refuses with a clear ``ValueError``.
- PyTorch3D warns about densities outside [0, 1]: voxrender warns too.

The few documented extensions (README "Differences from PyTorch3D") that these generators reach
are listed in :data:`EXTENSIONS` and checked to be sensible instead. Skipped as a whole, saying
why, where PyTorch3D is not importable.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import voxrender
from reference.oracle import import_pytorch3d


def _pytorch3d_modules() -> set[str]:
    return {k for k in sys.modules if k == "pytorch3d" or k.startswith("pytorch3d.")}


_BEFORE = _pytorch3d_modules()
P3D, REASON = import_pytorch3d()
if P3D is None:
    pytest.skip(REASON, allow_module_level=True)

from pytorch3d import renderer as _p3d_renderer  # noqa: E402
from pytorch3d import structures as _p3d_structures  # noqa: E402
from pytorch3d.renderer.implicit import utils as _p3d_utils  # noqa: E402

# What this module imported stays out of sys.modules except while its tests run: tests that
# need PyTorch3D absent (voxrender.compat, the benchmarks' backend choice) run in the same session.
_OURS_MODULES = {k: sys.modules.pop(k) for k in _pytorch3d_modules() - _BEFORE}


@pytest.fixture(autouse=True, scope="module")
def _pytorch3d_importable():
    sys.modules.update(_OURS_MODULES)
    try:
        yield
    finally:
        for k in _pytorch3d_modules() - _BEFORE:  # also what its calls imported lazily
            _OURS_MODULES[k] = sys.modules.pop(k)


_NAMES = (
    "AbsorptionOnlyRaymarcher",
    "EmissionAbsorptionRaymarcher",
    "FoVPerspectiveCameras",
    "ImplicitRenderer",
    "MonteCarloRaysampler",
    "MultinomialRaysampler",
    "NDCMultinomialRaysampler",
    "RayBundle",
    "VolumeRenderer",
    "VolumeSampler",
)
OURS = SimpleNamespace(**{n: getattr(voxrender, n) for n in (*_NAMES, "Volumes")})
OURS.ray_bundle_variables_to_ray_points = voxrender.ray_bundle_variables_to_ray_points
THEIRS = SimpleNamespace(
    **{n: getattr(_p3d_renderer, n) for n in _NAMES}, Volumes=_p3d_structures.Volumes
)
THEIRS.ray_bundle_variables_to_ray_points = _p3d_utils.ray_bundle_variables_to_ray_points

# Heavier scenarios (cameras, renders) run fewer examples than the profile's (CI time budget).
_FEW = settings(max_examples=max(1, settings.default.max_examples // 2))

_DENSITY_WARNING = "One or more elements of rays_densities are outside"
_STATS = {"examples": 0, "both_ok": 0, "both_refused": 0, "garbage_refused": 0}


# ---------------------------------------------------------------------------------------------
# Running one scenario on both libraries and judging the outcomes
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    on_purpose: bool = False
    density_warning: bool = False


def _run(fn: Callable[[SimpleNamespace], Any], ns: SimpleNamespace, seed: int) -> Outcome:
    torch.manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn(ns)
        except Exception as e:  # the outcome under test
            last = traceback.extract_tb(e.__traceback__)[-1]
            mine = "pytorch3d" in last.filename.replace("\\", "/").split("/")
            on_purpose = mine and (last.line or "").lstrip().startswith("raise")
            return Outcome(error=e, on_purpose=on_purpose)
    warned = any(_DENSITY_WARNING in str(w.message) for w in caught)
    return Outcome(value=value, density_warning=warned)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return _tensors([value[k] for k in sorted(value)])
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if hasattr(value, "origins"):  # a ray bundle
        return _tensors([getattr(value, f) for f in ("origins", "directions", "lengths", "xys")])
    return []


def _finite(value: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in _tensors(value) if t.is_floating_point())


def _assert_same(ours: Any, theirs: Any, what: str) -> None:
    a, b = _tensors(ours), _tensors(theirs)
    assert len(a) == len(b), f"{what}: {len(a)} tensors against PyTorch3D's {len(b)}"
    _STATS["tensors_compared"] = _STATS.get("tensors_compared", 0) + len(a)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x.shape == y.shape, f"{what}[{i}]: shape {tuple(x.shape)} vs {tuple(y.shape)}"
        assert x.dtype == y.dtype, f"{what}[{i}]: dtype {x.dtype} vs {y.dtype}"
        torch.testing.assert_close(
            x.detach(),
            y.detach(),
            atol=2e-5,
            rtol=2e-4,
            equal_nan=True,
            msg=lambda m, i=i: f"{what}[{i}]: {m}",
        )


def differential(
    fn: Callable[[SimpleNamespace], Any],
    seed: int = 0,
    *,
    nonsense: bool = False,
    extension: bool = False,
) -> None:
    """Run ``fn`` on both libraries (same seed) and check the outcome classes agree.

    ``fn(ns)`` builds everything from ``ns`` (one library's names) and returns the outputs to
    compare; a dict ``{"out": ..., "grads": ...}`` compares both entries. ``nonsense`` marks an
    input PyTorch3D lets through unchecked although it means nothing (a negative count it
    silently treats as 0, a string depth it never reads): voxrender may refuse it with a
    ``ValueError`` even where PyTorch3D returns something. ``extension`` marks an input of a
    documented voxrender extension (README "Differences from PyTorch3D"): where PyTorch3D
    crashes on it by accident, voxrender may return a finite result instead.
    """
    _STATS["examples"] += 1
    theirs = _run(fn, THEIRS, seed)
    ours = _run(fn, OURS, seed)
    if theirs.error is None:
        if ours.error is not None:
            if (nonsense or not _finite(theirs.value)) and isinstance(ours.error, ValueError):
                _STATS["garbage_refused"] += 1
                return  # PyTorch3D's result is garbage: a clear refusal is allowed
            raise AssertionError(
                f"PyTorch3D succeeds, voxrender raises {type(ours.error).__name__}: {ours.error}"
            ) from ours.error
        _assert_same(ours.value, theirs.value, "outputs")
        assert ours.density_warning == theirs.density_warning, (
            f"density warning: voxrender {ours.density_warning}, PyTorch3D {theirs.density_warning}"
        )
        _STATS["both_ok"] += 1
        return
    if ours.error is None:
        if extension and not theirs.on_purpose and _finite(ours.value):
            _STATS["extension"] = _STATS.get("extension", 0) + 1
            return
        raise AssertionError(
            f"PyTorch3D raises {type(theirs.error).__name__} ({theirs.error}), voxrender succeeds"
        )
    want = type(theirs.error) if theirs.on_purpose else ValueError
    if theirs.on_purpose and want not in (ValueError, IndexError):
        want = ValueError
    assert isinstance(ours.error, want), (
        f"PyTorch3D raises {type(theirs.error).__name__} "
        f"({'on purpose' if theirs.on_purpose else 'by accident'}: {theirs.error}); voxrender "
        f"raises {type(ours.error).__name__}: {ours.error}; expected an instance of {want.__name__}"
    )
    _STATS["both_refused"] += 1


def _with_grads(out: torch.Tensor | tuple, leaves: list[torch.Tensor], seed: int) -> dict:
    """Outputs and the gradients of ``leaves`` for one seeded random cotangent per output."""
    outs = _tensors(out)
    g = torch.Generator().manual_seed(seed)
    loss = sum(
        (o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum()
        for o in outs
        if o.requires_grad and o.is_floating_point()
    )
    want = [x for x in leaves if x.requires_grad]
    if not want or not isinstance(loss, torch.Tensor):
        return {"out": out, "grads": []}
    grads = torch.autograd.grad(loss, want, allow_unused=True)
    grads = [torch.zeros_like(x) if gr is None else gr for x, gr in zip(want, grads, strict=True)]
    return {"out": out, "grads": grads}


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

_floats = st.floats(-2.0, 2.0, allow_nan=False, width=32)


def _tensor(shape, seed, lo=0.0, hi=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


_VALID_VOXEL_SIZES = ["float", "neg", "int", "tuple", "t0", "t1", "t3", "t13", "tB1", "tB3", "t11"]
_INVALID_VOXEL_SIZES = ["zero", "list2", "t2x3", "None", "str", "bool"]


@st.composite
def voxel_sizes(draw, batch, valid=None):
    valid = draw(st.booleans()) if valid is None else valid
    kind = draw(st.sampled_from(_VALID_VOXEL_SIZES if valid else _INVALID_VOXEL_SIZES))
    v = draw(st.floats(0.125, 2.0, width=32))
    return {
        "float": v,
        "neg": -v,
        "zero": 0.0,
        "int": 2,
        "tuple": (v, 0.5, 1.0),
        "list2": [v, v],
        "t0": torch.tensor(v),
        "t1": torch.tensor([v]),
        "t3": torch.tensor([v, 0.5, 1.0]),
        "t13": torch.tensor([[v, 0.5, 1.0]]),
        "tB1": torch.full((batch, 1), v),
        "tB3": torch.full((batch, 3), v),
        "t11": torch.tensor([[v]]),
        "t2x3": torch.full((batch + 1, 3), v),
        "None": None,
        "str": "1.0",
        "bool": True,
    }[kind]


@st.composite
def translations(draw, batch, valid=None):
    valid = draw(st.booleans()) if valid is None else valid
    kinds = (
        ["tuple", "list", "t3", "t13", "tB3"] if valid else ["float", "t1", "t11", "tB1", "None"]
    )
    kind = draw(st.sampled_from(kinds))
    v = draw(_floats)
    return {
        "tuple": (v, -0.5, 0.25),
        "list": [v, 0.0, 1.0],
        "float": v,
        "t3": torch.tensor([v, 0, 1]),
        "t13": torch.tensor([[v, 0.0, 1.0]]),
        "tB3": torch.full((batch, 3), v),
        "t1": torch.tensor([v]),
        "t11": torch.tensor([[v]]),
        "tB1": torch.full((batch, 1), v),
        "None": None,
    }[kind]


@st.composite
def volume_args(draw, batch=None):
    """Volumes arguments: valid ones two times in three, else one argument made invalid."""
    batch = batch or draw(st.integers(1, 3))
    broken = draw(st.sampled_from([""] * 8 + ["densities", "voxel_size", "translation", "align"]))
    size = tuple(draw(st.integers(1 if broken else 2, 4)) for _ in range(3))
    seed = draw(st.integers(0, 2**16))
    densities = _tensor((batch, 1, *size), seed)
    features = _tensor((batch, 2, *size), seed + 1) if draw(st.booleans()) else None
    return {
        "densities": draw(st.sampled_from([None, densities[0]]))
        if broken == "densities"
        else densities,
        "features": features,
        "voxel_size": draw(voxel_sizes(batch, valid=broken != "voxel_size")),
        "volume_translation": draw(translations(batch, valid=broken != "translation")),
        "align_corners": draw(
            st.sampled_from([None, "yes"] if broken == "align" else [True, False] * 3 + [0, 1, 2])
        ),
    }


# ---------------------------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------------------------


def _int_flag(args: dict) -> bool:
    """``align_corners`` given as an int.

    PyTorch3D constructs such volumes but its
    ``grid_sample`` call then refuses the int; voxrender renders them (documented).
    """
    flag = args["align_corners"]
    return isinstance(flag, int) and not isinstance(flag, bool)


@given(
    args=volume_args(),
    points=st.integers(0, 2**16),
    index=st.sampled_from([0, -1, True, [0], slice(0, 1), torch.tensor([0]), 5, 0.0, "0", None]),
    op=st.sampled_from(["local_to_world", "world_to_local", "coord_grid", "index"]),
)
def test_volumes(args, points, index, op):
    def fn(ns):
        vol = ns.Volumes(
            **{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        )
        batch = len(vol)
        pts = (_tensor((batch, 4, 3), points, -2.0, 2.0)).requires_grad_(True)
        if op == "local_to_world":
            return _with_grads(vol.local_to_world_coords(pts), [pts], points)
        if op == "world_to_local":
            return _with_grads(vol.world_to_local_coords(pts), [pts], points)
        if op == "coord_grid":
            return vol.get_coord_grid(world_coordinates=False)
        sub = vol[index]
        return (sub.densities(), sub.get_local_to_world_coords_transform().get_matrix())

    differential(fn)


# ---------------------------------------------------------------------------------------------
# Raysamplers
# ---------------------------------------------------------------------------------------------

_COUNTS = ([None, 1, 2, 5], [0, 100, -1, 2.0])  # (valid, edge or invalid)
_DEPTHS = ([0.5, 1.0, 3.0, torch.tensor(1.5)], [float("inf"), "1.0"])
_N_PTS = ([0, 1, 3], [-1, 2.0])


def _cameras(ns, n, seed):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 3.0])
    T.requires_grad_(True)
    return ns.FoVPerspectiveCameras(T=T), T


@_FEW
@given(
    kind=st.sampled_from(["monte_carlo", "ndc", "multinomial", "ndc_grid", "grid"]),
    bounds=st.tuples(_floats, _floats, _floats, _floats),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    fault=st.sampled_from([None] * 5 + ["n_rays", "n_pts", "depth"]),
    data=st.data(),
    n_total=st.sampled_from([None, None, 0, 3]),
    stratified=st.sampled_from([False, True, None, 1]),
    n_cameras=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_raysamplers(kind, bounds, size, fault, data, n_total, stratified, n_cameras, seed):
    (min_x, max_x, min_y, max_y), (width, height) = bounds, size

    def pick(choices, name):
        return data.draw(st.sampled_from(choices[fault == name]), label=name)

    n_rays, n_pts = pick(_COUNTS, "n_rays"), pick(_N_PTS, "n_pts")
    depths = (pick(_DEPTHS, "depth"), data.draw(st.sampled_from(_DEPTHS[0]), label="max_depth"))
    if data.draw(st.booleans(), label="swap depths"):
        depths = depths[::-1]

    def fn(ns):
        cams, T = _cameras(ns, n_cameras, seed)
        depth = {"min_depth": depths[0], "max_depth": depths[1]}
        if kind == "monte_carlo":
            sampler = ns.MonteCarloRaysampler(
                min_x, max_x, min_y, max_y, n_rays, n_pts, *depths, n_rays_total=n_total
            )
        elif kind in ("ndc_grid", "grid"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = voxrender if ns is OURS else _p3d_renderer
                if kind == "ndc_grid":
                    sampler = module.NDCGridRaysampler(width, height, n_pts, *depths)
                else:
                    sampler = module.GridRaysampler(
                        min_x, max_x, min_y, max_y, width, height, n_pts, *depths
                    )
        else:
            extra = {"n_rays_per_image": n_rays, "n_rays_total": n_total}
            grid = {"image_width": width, "image_height": height, "n_pts_per_ray": n_pts}
            if kind == "ndc":
                sampler = ns.NDCMultinomialRaysampler(**grid, **depth, **extra)
            else:
                bounds_ = {"min_x": min_x, "max_x": max_x, "min_y": min_y, "max_y": max_y}
                sampler = ns.MultinomialRaysampler(**bounds_, **grid, **depth, **extra)
        bundle = sampler(cams, stratified_sampling=stratified)
        fields = tuple(getattr(bundle, f) for f in ("origins", "directions", "lengths", "xys"))
        return _with_grads(fields, [T], seed)

    nonsense = (isinstance(n_pts, int) and n_pts < 0) or any(isinstance(d, str) for d in depths)
    # More rays than pixels: voxrender draws with replacement, as PyTorch3D documents (its
    # code raises); documented in README "Differences from PyTorch3D".
    counts = [c for c in (n_rays, n_total) if isinstance(c, int)]
    more_rays_than_pixels = (
        kind in ("ndc", "multinomial") and max(counts, default=0) > width * height
    )
    differential(fn, seed, nonsense=nonsense, extension=more_rays_than_pixels)


# ---------------------------------------------------------------------------------------------
# Raymarchers and the ray-point helper
# ---------------------------------------------------------------------------------------------


@given(
    shape=st.sampled_from([(2, 3), (1, 2, 4), (3,), (2, 0)]),
    last=st.sampled_from([1, 1, 1, 2]),
    channels=st.integers(0, 3),
    feature_shape_ok=st.sampled_from([True, True, True, False]),
    value_range=st.sampled_from([(0.0, 1.0), (0.0, 1.0), (-0.5, 1.5), (0.0, 3.0)]),
    dtype=st.sampled_from(["float", "float", "int", "none", "list"]),
    eps=st.sampled_from([1e-10, 0.0, 1e-3, -1e-3, torch.tensor(1e-3), "x"]),
    thickness=st.sampled_from([1, 2, 5, 0, 1.0, True]),
    marcher=st.sampled_from(["ea", "ao"]),
    seed=st.integers(0, 2**16),
)
def test_raymarchers(
    shape, last, channels, feature_shape_ok, value_range, dtype, eps, thickness, marcher, seed
):
    def fn(ns):
        d = _tensor((*shape, last), seed, *value_range)
        if dtype == "int":
            d = d.round().long()
        d = {"none": None, "list": d.tolist()}.get(dtype, d)
        fshape = (*shape, channels) if feature_shape_ok else (*shape[:-1], shape[-1] + 1, channels)
        f = _tensor(fshape, seed + 1, -1.0, 1.0).requires_grad_(True)
        if isinstance(d, torch.Tensor) and d.is_floating_point():
            d.requires_grad_(True)
        if marcher == "ea":
            out = ns.EmissionAbsorptionRaymarcher(thickness)(d, f, eps=eps)
        else:
            out = ns.AbsorptionOnlyRaymarcher()(rays_densities=d, rays_features=f)
        leaves = [x for x in (d, f) if isinstance(x, torch.Tensor)]
        return _with_grads(out, leaves, seed)

    differential(fn, extension=0 in shape)  # no samples: voxrender renders, PyTorch3D crashes


@given(
    shapes=st.sampled_from(
        [
            ((2, 3), (2, 3), (2, 4)),
            ((2, 1, 3), (2, 5, 3), (2, 5, 2)),
            ((3,), (3,), (4,)),
            ((2, 3), (2, 2), (2, 4)),
            ((2, 3), (3, 3), (2, 4)),
        ]
    ),
    dtypes=st.sampled_from(
        [("f", "f", "f"), ("f", "f", "d"), ("f", "f", "i"), ("i", "i", "i"), ("d", "f", "f")]
    ),
    seed=st.integers(0, 2**16),
)
def test_ray_bundle_variables_to_ray_points(shapes, dtypes, seed):
    cast = {"f": torch.float32, "d": torch.float64, "i": torch.int64}

    def fn(ns):
        args = [
            (_tensor(s, seed + i, -2.0, 2.0) * 3).to(cast[t])
            for i, (s, t) in enumerate(zip(shapes, dtypes, strict=True))
        ]
        for a in args:
            if a.is_floating_point():
                a.requires_grad_(True)
        return _with_grads(ns.ray_bundle_variables_to_ray_points(*args), args, seed)

    differential(fn)


# ---------------------------------------------------------------------------------------------
# VolumeSampler, VolumeRenderer, ImplicitRenderer
# ---------------------------------------------------------------------------------------------


@given(
    args=volume_args(batch=2),
    fault=st.sampled_from(
        [None] * 6 + ["batch", "bundle_shape", "sample_mode", "padding_mode", "not_volumes"]
    ),
    sample_mode=st.sampled_from(["bilinear", "nearest"]),
    padding_mode=st.sampled_from(["zeros", "border", "reflection"]),
    seed=st.integers(0, 2**16),
)
def test_volume_sampler(args, fault, sample_mode, padding_mode, seed):
    sample_mode = "bicubic" if fault == "sample_mode" else sample_mode
    padding_mode = "wrap" if fault == "padding_mode" else padding_mode
    bundle_batch = 1 if fault == "batch" else 2

    def fn(ns):
        kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        leaves = [
            kwargs[k] for k in ("densities", "features") if isinstance(kwargs[k], torch.Tensor)
        ]
        for x in leaves:
            x.requires_grad_(True)
        vol = kwargs["densities"] if fault == "not_volumes" else ns.Volumes(**kwargs)
        origins = _tensor((bundle_batch, 3, 2, 3), seed, -0.5, 0.5)
        directions = _tensor((bundle_batch, 3, 2, 3), seed + 1, -1.0, 1.0)
        n_rays = 1 if fault == "bundle_shape" else 2
        lengths = _tensor((bundle_batch, 3, n_rays, 4), seed + 2, 0.0, 2.0)
        bundle = ns.RayBundle(origins, directions, lengths, None)
        out = ns.VolumeSampler(vol, sample_mode=sample_mode, padding_mode=padding_mode)(bundle)
        return _with_grads(out, leaves, seed)

    differential(fn, extension=_int_flag(args))


@_FEW
@given(
    batch_and_args=st.integers(1, 3).flatmap(lambda b: st.tuples(st.just(b), volume_args(b))),
    n_cameras_differ=st.sampled_from([False] * 6 + [True]),
    raysampler=st.sampled_from(["ndc", "monte_carlo", "ndc_subset"] * 3 + ["none"]),
    marcher=st.sampled_from(["ea", "ao"] * 3 + ["none"]),
    sample_mode=st.sampled_from(["bilinear", "nearest"]),
    scale=st.sampled_from([1.0, 1.0, 1.0, 2.5]),
    seed=st.integers(0, 2**16),
)
def test_volume_renderer(
    batch_and_args, n_cameras_differ, raysampler, marcher, sample_mode, scale, seed
):
    n_cameras, args = batch_and_args
    n_cameras += n_cameras_differ

    def fn(ns):
        kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        leaves = [
            kwargs[k] for k in ("densities", "features") if isinstance(kwargs[k], torch.Tensor)
        ]
        if isinstance(kwargs["densities"], torch.Tensor):
            kwargs["densities"] = kwargs["densities"] * scale  # maybe outside [0, 1]
        for x in leaves:
            x.requires_grad_(True)
        vol = ns.Volumes(**kwargs)
        cams, _ = _cameras(ns, n_cameras, seed)
        sampler = {
            "ndc": lambda: ns.NDCMultinomialRaysampler(
                image_width=3, image_height=2, n_pts_per_ray=4, min_depth=1.5, max_depth=4.5
            ),
            "ndc_subset": lambda: ns.NDCMultinomialRaysampler(
                image_width=3,
                image_height=2,
                n_pts_per_ray=4,
                min_depth=1.5,
                max_depth=4.5,
                n_rays_per_image=3,
                stratified_sampling=True,
            ),
            "monte_carlo": lambda: ns.MonteCarloRaysampler(-1.0, 1.0, -1.0, 1.0, 5, 4, 1.5, 4.5),
            "none": lambda: None,
        }[raysampler]()
        march = {
            "ea": ns.EmissionAbsorptionRaymarcher,
            "ao": ns.AbsorptionOnlyRaymarcher,
            "none": lambda: "raymarcher",
        }[marcher]()
        images, bundle = ns.VolumeRenderer(sampler, march, sample_mode=sample_mode)(
            cameras=cams, volumes=vol
        )
        return _with_grads((images, bundle.lengths, bundle.xys), leaves, seed)

    differential(fn, seed, extension=_int_flag(args))


@_FEW
@given(
    n_cameras=st.integers(1, 2),
    function=st.sampled_from(["field", "field", "out_of_range", "not_callable", "bad_shape"]),
    marcher=st.sampled_from(["ea", "ao"]),
    seed=st.integers(0, 2**16),
)
def test_implicit_renderer(n_cameras, function, marcher, seed):
    weight = _tensor((3, 4), seed, -1.0, 1.0)

    def fn(ns):
        w = weight.clone().requires_grad_(True)

        def field(ray_bundle, **kwargs):
            points = ns.ray_bundle_variables_to_ray_points(
                ray_bundle.origins, ray_bundle.directions, ray_bundle.lengths
            )  # (B, R, P, 3)
            h = points @ w  # (B, R, P, 4)
            densities = h[..., :1] if function == "out_of_range" else torch.sigmoid(h[..., :1])
            if function == "bad_shape":
                densities = densities[..., 0]
            return densities, torch.sigmoid(h[..., 1:])

        cams, _ = _cameras(ns, n_cameras, seed)
        sampler = ns.MonteCarloRaysampler(
            -1.0, 1.0, -1.0, 1.0, 6, 5, 1.0, 4.0, stratified_sampling=True
        )
        march = (
            ns.EmissionAbsorptionRaymarcher() if marcher == "ea" else ns.AbsorptionOnlyRaymarcher()
        )
        images, bundle = ns.ImplicitRenderer(sampler, march)(
            cameras=cams, volumetric_function=3 if function == "not_callable" else field
        )
        return _with_grads((images, bundle.xys, bundle.lengths), [w], seed)

    differential(fn, seed)


def test_every_outcome_class_was_exercised():
    """The generators reach agreement, shared refusals.

    (This runs after the tests above in
    file order; alone it only checks the bookkeeping).
    """
    if _STATS["examples"] == 0:
        pytest.skip("run with the differential tests above to count their outcomes")
    assert _STATS["both_ok"] > 0 and _STATS["both_refused"] > 0, _STATS
    assert _STATS["tensors_compared"] > 2 * _STATS["both_ok"], _STATS  # outputs and gradients
    print(f"differential outcomes: {_STATS}")

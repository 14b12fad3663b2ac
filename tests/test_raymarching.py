"""Tests for voxrender.raymarching: emission-absorption and absorption-only raymarchers."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import (
    DEVICES,
    DTYPES,
    assert_close,
    case_names,
    cotangent_loss,
    load_case,
    run_case,
)
from hypothesis import given
from hypothesis import strategies as st

import voxrender.raymarching as raymarching
from voxrender import AbsorptionOnlyRaymarcher, EmissionAbsorptionRaymarcher
from voxrender.raymarching import (
    emission_absorption,
    opacity_from_densities,
    render_weights_from_densities,
    transmittance_from_densities,
)

# ----------------------------------------------------------------------------- helpers


def _naive_ea(densities, features, surface_thickness, eps):
    """Emission-absorption written out sample by sample: plain products, no cumprod, no division.

    densities (..., P), features (..., P, C) -> (features (..., C), opacity (..., 1), weights (..., P))
    """
    n_pts = densities.shape[-1]
    weights = []
    for i in range(n_pts):
        transmittance = torch.ones_like(densities[..., 0])
        for j in range(i - surface_thickness + 1):
            transmittance = transmittance * ((1.0 + eps) - densities[..., j])
        weights.append(densities[..., i] * transmittance)
    weights = torch.stack(weights, dim=-1)
    out_features = (weights[..., None] * features).sum(dim=-2)
    passed = torch.ones_like(densities[..., :1])
    for j in range(n_pts):
        passed = passed * (1.0 - densities[..., j : j + 1])
    return out_features, 1.0 - passed, weights


def _densities_with_extremes(shape, *, dtype=torch.float64, device="cpu", seed=0):
    """Random densities (..., P, 1) with exact zeros and ones sprinkled in (several per ray)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(*shape, 1, generator=g, dtype=torch.float64)
    pick = torch.rand(*shape, 1, generator=g, dtype=torch.float64)
    d = torch.where(pick < 0.15, torch.zeros_like(d), d)
    d = torch.where(pick > 0.85, torch.ones_like(d), d)
    return d.to(dtype=dtype, device=device)


def _features(shape, n_channels, *, dtype=torch.float64, device="cpu", seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, n_channels, generator=g, dtype=torch.float64).to(
        dtype=dtype, device=device
    )


unit_floats = st.one_of(
    st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
)
rays_strategy = st.integers(1, 10).flatmap(
    lambda p: st.lists(st.lists(unit_floats, min_size=p, max_size=p), min_size=1, max_size=4)
)


# ----------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", case_names("raymarcher"))
def test_fixture(name, device):
    config, inputs, outputs, grads = load_case(name)
    assert config["class"] in ("EmissionAbsorptionRaymarcher", "AbsorptionOnlyRaymarcher")
    got, got_grads = run_case(name, {k: v.to(device) for k, v in inputs.items()})
    assert_close(got["out"], outputs["out"], msg=f"{name} out")
    assert set(grads) == set(inputs) == set(got_grads)
    for key, want in grads.items():
        assert_close(got_grads[key], want, kind="grad", msg=f"{name} grad/{key}")


def test_fixtures_contain_exact_zero_and_one_densities():
    for name in case_names("raymarcher"):
        densities = load_case(name)[1]["rays_densities"]
        assert bool((densities == 1).any()), name


# ----------------------------------------------------------------------------- smoke, shapes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("leading", [(), (5,), (2, 3, 4)])
def test_shapes_dtype_device(leading, dtype, device):
    d = _densities_with_extremes((*leading, 6), dtype=dtype, device=device)
    f = _features((*leading, 6), 3, dtype=dtype, device=device)
    out = EmissionAbsorptionRaymarcher()(d, f)
    assert out.shape == (*leading, 4)
    assert out.dtype == dtype and out.device == d.device
    ao = AbsorptionOnlyRaymarcher()(d)
    assert ao.shape == (*leading, 1) and ao.dtype == dtype
    assert torch.equal(ao, out[..., 3:])
    assert transmittance_from_densities(d[..., 0]).shape == (*leading, 6)
    assert render_weights_from_densities(d[..., 0]).shape == (*leading, 6)
    assert opacity_from_densities(d[..., 0]).shape == (*leading, 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("surface_thickness", [1, 2, 3, 7, 12])
@pytest.mark.parametrize("eps", [0.0, 1e-10, 1e-3])
def test_matches_naive_values_and_gradients(surface_thickness, eps, dtype, device):
    d = _densities_with_extremes((3, 7), dtype=dtype, device=device).requires_grad_(True)
    f = _features((3, 7), 2, dtype=dtype, device=device).requires_grad_(True)
    out = emission_absorption(d, f, surface_thickness, eps)
    loss = cotangent_loss({"out": out}, 5)
    got = torch.autograd.grad(loss, (d, f))

    d64 = d.detach().double().cpu().requires_grad_(True)
    f64 = f.detach().double().cpu().requires_grad_(True)
    feats, opacity, weights = _naive_ea(d64[..., 0], f64, surface_thickness, eps)
    want_out = torch.cat((feats, opacity), dim=-1)
    want = torch.autograd.grad(cotangent_loss({"out": want_out.to(dtype)}, 5), (d64, f64))
    # the reference runs in float64, so compare at the tolerance of the dtype under test
    assert_close(out, want_out.to(dtype))
    assert_close(got[0], want[0].to(dtype), kind="grad")
    assert_close(got[1], want[1].to(dtype), kind="grad")
    assert_close(
        render_weights_from_densities(d[..., 0], surface_thickness, eps), weights.to(dtype)
    )


def test_empty_features_and_no_samples():
    d = torch.rand(2, 5, 1)
    out = EmissionAbsorptionRaymarcher()(d, torch.zeros(2, 5, 0))
    assert out.shape == (2, 1)
    assert_close(out, AbsorptionOnlyRaymarcher()(d))
    # no samples at all: nothing is seen, nothing is absorbed
    out = EmissionAbsorptionRaymarcher()(torch.zeros(2, 0, 1), torch.zeros(2, 0, 3))
    assert torch.equal(out, torch.zeros(2, 4))


def test_mixed_dtypes_promote_like_pytorch3d():
    d = _densities_with_extremes((2, 5), dtype=torch.float32)
    f = _features((2, 5), 3, dtype=torch.float64)
    out = EmissionAbsorptionRaymarcher()(d, f)
    assert out.dtype == torch.float64
    assert_close(out, EmissionAbsorptionRaymarcher()(d.double(), f), dtype=torch.float32)


def test_extra_keyword_arguments_are_ignored():
    d, f = _densities_with_extremes((2, 5)), _features((2, 5), 3)
    ea = EmissionAbsorptionRaymarcher()
    assert torch.equal(ea(rays_densities=d, rays_features=f, ray_bundle=None), ea(d, f))
    ao = AbsorptionOnlyRaymarcher()
    assert torch.equal(ao(rays_densities=d, rays_features=f, ray_bundle=None), ao(d))


def test_module_attributes_and_repr():
    ea = EmissionAbsorptionRaymarcher(surface_thickness=3)
    assert ea.surface_thickness == 3
    assert "surface_thickness=3" in repr(ea)
    assert EmissionAbsorptionRaymarcher().surface_thickness == 1
    assert list(ea.parameters()) == [] and list(AbsorptionOnlyRaymarcher().parameters()) == []


# ----------------------------------------------------------------------------- analytic cases


@pytest.mark.parametrize("surface_thickness", [1, 2])
def test_single_sample(surface_thickness):
    d = torch.tensor([[[0.0]], [[0.3]], [[1.0]]], dtype=torch.float64)  # (3, 1, 1)
    f = torch.tensor([[[1.0, 2.0]], [[3.0, -4.0]], [[5.0, 6.0]]], dtype=torch.float64)  # (3, 1, 2)
    out = EmissionAbsorptionRaymarcher(surface_thickness)(d, f, eps=0.0)
    assert_close(out, torch.cat((d[:, 0] * f[:, 0], d[:, 0]), dim=-1))


@given(d=st.floats(0.0, 1.0), n_pts=st.integers(1, 40))
def test_constant_density(d, n_pts):
    densities = torch.full((n_pts, 1), d, dtype=torch.float64)
    features = torch.ones(n_pts, 1, dtype=torch.float64)
    out = EmissionAbsorptionRaymarcher()(densities, features, eps=0.0)
    opacity = torch.tensor([1.0 - (1.0 - d) ** n_pts], dtype=torch.float64)
    assert_close(out[1:], opacity)
    assert_close(AbsorptionOnlyRaymarcher()(densities), opacity)
    # with surface_thickness 1 the weights are geometric, and with unit features they add up to
    # the opacity
    weights = render_weights_from_densities(densities[:, 0], eps=0.0)
    assert_close(weights, d * (1.0 - d) ** torch.arange(n_pts, dtype=torch.float64), atol=1e-12)
    assert_close(out[:1], opacity, atol=1e-12)


def test_transmittance_by_hand():
    d = torch.tensor([0.5, 0.25, 1.0, 0.5], dtype=torch.float64)
    assert_close(transmittance_from_densities(d, 1, 0.0), torch.tensor([1, 0.5, 0.375, 0.0]))
    assert_close(transmittance_from_densities(d, 2, 0.0), torch.tensor([1, 1, 0.5, 0.375]))
    assert_close(transmittance_from_densities(d, 4, 0.0), torch.ones(4, dtype=torch.float64))
    # eps enters every factor of the product
    assert_close(transmittance_from_densities(d, 1, 0.5), torch.tensor([1, 1.0, 1.25, 0.625]))
    assert_close(render_weights_from_densities(d, 2, 0.0), torch.tensor([0.5, 0.25, 0.5, 0.1875]))
    assert_close(opacity_from_densities(d), torch.tensor([1.0], dtype=torch.float64))


def test_eps_is_not_used_in_the_opacity():
    d = torch.tensor([[0.5], [0.5]], dtype=torch.float64)
    f = torch.ones(2, 1, dtype=torch.float64)
    out = EmissionAbsorptionRaymarcher()(d, f, eps=0.25)
    assert_close(out, torch.tensor([0.5 + 0.5 * 0.75, 0.75], dtype=torch.float64))


# ----------------------------------------------------------------------------- properties


@given(rays=rays_strategy, surface_thickness=st.integers(1, 4))
def test_weights_nonnegative_and_transmittance_nonincreasing(rays, surface_thickness):
    d = torch.tensor(rays, dtype=torch.float64)  # (R, P)
    weights = render_weights_from_densities(d, surface_thickness, eps=0.0)
    assert bool((weights >= 0).all())
    transmittance = transmittance_from_densities(d, surface_thickness, eps=0.0)
    assert bool((transmittance[..., 1:] <= transmittance[..., :-1]).all())
    assert bool(((transmittance >= 0) & (transmittance <= 1)).all())
    # the default eps keeps the weights non-negative as well
    assert bool((render_weights_from_densities(d, surface_thickness) >= 0).all())


@given(rays=rays_strategy, dtype=st.sampled_from(DTYPES))
def test_weights_sum_to_the_opacity_at_most_one(rays, dtype):
    d = torch.tensor(rays, dtype=dtype)
    weights = render_weights_from_densities(d, 1, eps=0.0)
    opacity = opacity_from_densities(d)
    assert bool(((opacity >= 0) & (opacity <= 1)).all())
    total = weights.sum(dim=-1, keepdim=True)
    assert bool((total <= 1 + 4 * d.shape[-1] * torch.finfo(dtype).eps).all())
    assert_close(total, opacity, atol=1e-5 if dtype == torch.float32 else 1e-12)


@given(rays=rays_strategy, surface_thickness=st.integers(1, 4), eps=st.sampled_from([0.0, 1e-10]))
def test_opacity_in_unit_interval_and_shared_by_both_raymarchers(rays, surface_thickness, eps):
    d = torch.tensor(rays, dtype=torch.float32)[..., None]  # (R, P, 1)
    f = torch.rand(*d.shape[:-1], 3)
    out = EmissionAbsorptionRaymarcher(surface_thickness)(d, f, eps=eps)
    ao = AbsorptionOnlyRaymarcher()(d)
    assert bool(((ao >= 0) & (ao <= 1)).all())
    assert torch.equal(out[..., 3:], ao)


@given(rays=rays_strategy, data=st.data())
def test_a_density_one_sample_hides_everything_behind_it(rays, data):
    d = torch.tensor(rays, dtype=torch.float64)  # (R, P)
    n_pts = d.shape[-1]
    k = data.draw(st.integers(0, n_pts - 1), label="opaque sample")
    d[:, k] = 1.0
    weights = render_weights_from_densities(d, 1, eps=0.0)
    assert bool((weights[:, k + 1 :] == 0).all())
    assert torch.equal(weights[:, k], transmittance_from_densities(d, 1, eps=0.0)[:, k])

    f = torch.randn(*d.shape, 3, dtype=torch.float64)
    f_behind = f.clone()
    f_behind[:, k + 1 :] = torch.randn_like(f_behind[:, k + 1 :]) * 100
    ea = EmissionAbsorptionRaymarcher(1)
    assert torch.equal(ea(d[..., None], f, eps=0.0), ea(d[..., None], f_behind, eps=0.0))


@given(rays=rays_strategy)
def test_thick_surface_covering_the_ray_weights_every_sample_by_its_density(rays):
    d = torch.tensor(rays, dtype=torch.float64)
    n_pts = d.shape[-1]
    assert torch.equal(render_weights_from_densities(d, n_pts), d)
    assert torch.equal(render_weights_from_densities(d, n_pts + 5), d)


# ----------------------------------------------------------------------------- gradients


@pytest.fixture
def no_range_check():
    """Finite differences step outside [0, 1] at exact 0 and 1: silence the range warning.

    The model is multilinear in the densities, so it is well defined (and smooth) there.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more elements of rays_densities")
        yield


@pytest.mark.parametrize("surface_thickness", [1, 2])
@pytest.mark.parametrize("eps", [0.0, 1e-10, 1e-3])
def test_gradcheck_emission_absorption(surface_thickness, eps, no_range_check):
    d = _densities_with_extremes((2, 5), seed=3)
    d[0, :3, 0] = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)  # two opaque samples in a row
    d.requires_grad_(True)
    f = _features((2, 5), 2).requires_grad_(True)
    raymarcher = EmissionAbsorptionRaymarcher(surface_thickness)
    assert torch.autograd.gradcheck(lambda d, f: raymarcher(d, f, eps=eps), (d, f))


def test_gradcheck_absorption_only(no_range_check):
    d = _densities_with_extremes((3, 6), seed=4)
    d[0, :2, 0] = 1.0
    d.requires_grad_(True)
    assert torch.autograd.gradcheck(AbsorptionOnlyRaymarcher(), (d,))


def test_gradcheck_functions_inside_the_unit_interval():
    d = (torch.rand(2, 5, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: transmittance_from_densities(d, 2, 0.0), (d,))
    assert torch.autograd.gradcheck(lambda d: render_weights_from_densities(d, 1), (d,))
    assert torch.autograd.gradcheck(opacity_from_densities, (d,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 1e-10])
@pytest.mark.parametrize("fill", ["zeros", "ones", "mixed"])
def test_gradients_finite_at_zero_and_one(fill, eps, dtype, device):
    if fill == "mixed":
        d = _densities_with_extremes((4, 9), dtype=dtype, device=device)
        d[..., 2:5, 0] = 1.0
    else:
        d = torch.full((4, 9, 1), 0.0 if fill == "zeros" else 1.0, dtype=dtype, device=device)
    d.requires_grad_(True)
    f = _features((4, 9), 3, dtype=dtype, device=device).requires_grad_(True)
    for surface_thickness in (1, 3):
        out = EmissionAbsorptionRaymarcher(surface_thickness)(d, f, eps=eps)
        ao = AbsorptionOnlyRaymarcher()(d)
        grads = torch.autograd.grad(cotangent_loss({"ao": ao, "out": out}, 7), (d, f))
        assert all(bool(torch.isfinite(g).all()) for g in grads)
        assert bool(torch.isfinite(out).all())
    if fill == "ones" and eps == 0.0:
        # (last loop: surface_thickness 3) the first three samples are seen, nothing behind them
        # moves the image, and their densities do
        assert bool((grads[1][:, 3:] == 0).all()) and bool((grads[0][:, 0] != 0).any())


# ----------------------------------------------------------------------------- torch.compile


def test_compiles_without_graph_breaks():
    torch._dynamo.reset()
    d = _densities_with_extremes((2, 6), dtype=torch.float32).requires_grad_(True)
    f = _features((2, 6), 3, dtype=torch.float32).requires_grad_(True)
    ea = EmissionAbsorptionRaymarcher(2)
    ao = AbsorptionOnlyRaymarcher()
    # aot_eager traces forward and backward like inductor does, without compiling C++ (fast)
    compiled_ea = torch.compile(ea, fullgraph=True, backend="aot_eager")
    compiled_ao = torch.compile(ao, fullgraph=True, backend="aot_eager")
    got = compiled_ea(d, f, eps=0.0)
    want = ea(d, f, eps=0.0)
    assert_close(got, want)
    assert_close(compiled_ao(d), ao(d))
    got_grads = torch.autograd.grad(got.sum(), (d, f))
    want_grads = torch.autograd.grad(want.sum(), (d, f))
    for g_got, g_want in zip(got_grads, want_grads, strict=True):
        assert_close(g_got, g_want, kind="grad")
    # under compile the range check is skipped (no Python side effects in a graph): no
    # device-side assertion, the same numbers as eager
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(compiled_ao(d.detach() + 1.5), ao(d.detach() + 1.5))


@pytest.mark.slow
def test_compiles_with_inductor():
    torch._dynamo.reset()
    d = _densities_with_extremes((3, 8), dtype=torch.float32).requires_grad_(True)
    f = _features((3, 8), 3, dtype=torch.float32).requires_grad_(True)
    ea = EmissionAbsorptionRaymarcher()
    got = torch.compile(ea, fullgraph=True)(d, f)
    want = ea(d, f)
    assert_close(got, want)
    got_grads = torch.autograd.grad(got.sum(), (d, f))
    want_grads = torch.autograd.grad(want.sum(), (d, f))
    for g_got, g_want in zip(got_grads, want_grads, strict=True):
        assert_close(g_got, g_want, kind="grad")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_does_not_synchronize_on_cuda():
    d = _densities_with_extremes((4, 8), dtype=torch.float32, device="cuda")
    f = _features((4, 8), 3, dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        EmissionAbsorptionRaymarcher()(d, f)
        AbsorptionOnlyRaymarcher()(d)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_density_check_on_cuda_is_asynchronous_and_never_a_device_assertion():
    d = torch.full((4, 8, 1), 2.0, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device sync raises
    try:
        out = AbsorptionOnlyRaymarcher()(d)  # queued, no sync, no device-side assertion
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()  # the CUDA context is still usable
    assert_close(out.cpu(), torch.full((4, 1), 1.0 - (-1.0) ** 8))
    with pytest.warns(UserWarning, match="rays_densities are outside .* asynchronous check"):
        AbsorptionOnlyRaymarcher()(d * 0.25)  # a later call reports the earlier one
    with pytest.raises(ValueError, match="rays_densities are outside"):
        AbsorptionOnlyRaymarcher(strict_densities=True)(d)  # strict: one sync, at once


# ----------------------------------------------------------------------------- bad input


def _good():
    return _densities_with_extremes((2, 5)), _features((2, 5), 3)


def test_bad_densities_last_dim_not_one():
    d, f = _good()
    with pytest.raises(ValueError, match=r"rays_densities: expected shape \(\.\.\., P, 1\)"):
        EmissionAbsorptionRaymarcher()(d.expand(2, 5, 2), f)


def test_bad_densities_too_few_dims():
    with pytest.raises(ValueError, match=r"rays_densities: expected shape \(\.\.\., P, 1\)"):
        AbsorptionOnlyRaymarcher()(torch.rand(1))


def test_bad_features_leading_dims():
    d, _ = _good()
    with pytest.raises(
        ValueError, match=r"rays_features: expected shape \(2, 5, C\).*got shape \(3, 5, 3\)"
    ):
        EmissionAbsorptionRaymarcher()(d, _features((3, 5), 3))


def test_bad_features_number_of_points():
    d, _ = _good()
    with pytest.raises(
        ValueError, match=r"rays_features: expected shape \(2, 5, C\).*got shape \(2, 4, 3\)"
    ):
        EmissionAbsorptionRaymarcher()(d, _features((2, 4), 3))


def test_bad_features_rank():
    d, f = _good()
    with pytest.raises(
        ValueError, match=r"rays_features: expected shape .*got shape \(1, 2, 5, 3\)"
    ):
        EmissionAbsorptionRaymarcher()(d, f[None])


def _out_of_range(d, where, value):
    d = d.clone()
    d[where] = value
    return d


@pytest.mark.parametrize("value", [1.0001, -1e-6, float("nan"), 7.0])
def test_densities_outside_the_unit_interval_warn_and_render_like_pytorch3d(value):
    d, f = _good()
    d = _out_of_range(d, (1, 2, 0), value)
    for march in (
        lambda: EmissionAbsorptionRaymarcher()(d, f),
        lambda: AbsorptionOnlyRaymarcher()(d),
    ):
        with pytest.warns(UserWarning, match="One or more elements of rays_densities are outside"):
            out = march()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            naive = _naive_ea(d[..., 0], f, 1, 1e-10)
        want = torch.cat(naive[:2], dim=-1) if out.shape[-1] == 4 else naive[1]
        torch.testing.assert_close(out, want, equal_nan=True)


def test_densities_inside_the_unit_interval_do_not_warn():
    d, f = _good()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EmissionAbsorptionRaymarcher()(d, f)
        AbsorptionOnlyRaymarcher()(d)
        opacity_from_densities(d[..., 0])


@pytest.mark.parametrize("value", [1.0001, -1e-6, float("nan")])
def test_strict_densities_raise(value):
    d, f = _good()
    d = _out_of_range(d, (0, 1, 0), value)
    with pytest.raises(
        ValueError, match=r"rays_densities are outside .* expected values in \[0, 1\]"
    ):
        EmissionAbsorptionRaymarcher(strict_densities=True)(d, f)
    with pytest.raises(
        ValueError, match=r"rays_densities are outside .* expected values in \[0, 1\]"
    ):
        AbsorptionOnlyRaymarcher(strict_densities=True)(d)
    with pytest.raises(ValueError, match=r"densities are outside"):
        opacity_from_densities(d[..., 0], strict_densities=True)


def test_integer_densities_and_features_compute_like_pytorch3d():
    d = torch.tensor([[[0], [1], [0]]])
    f = torch.tensor([[[1, 2], [3, 4], [5, 6]]])
    out = EmissionAbsorptionRaymarcher()(d, f)
    assert out.dtype == torch.float32
    assert_close(out, torch.tensor([[3.0, 4.0, 1.0]]))
    assert_close(AbsorptionOnlyRaymarcher()(d), torch.tensor([[1.0]]))


def test_bad_densities_not_a_tensor():
    with pytest.raises(ValueError, match=r"rays_densities has to be an instance of torch\.Tensor"):
        AbsorptionOnlyRaymarcher()([[0.5]])


def test_bad_features_not_a_tensor():
    d, _ = _good()
    with pytest.raises(ValueError, match=r"rays_features has to be an instance of torch\.Tensor"):
        EmissionAbsorptionRaymarcher()(d, None)


def test_bad_densities_bool():
    with pytest.raises(ValueError, match="rays_densities: expected a real"):
        AbsorptionOnlyRaymarcher()(torch.ones(2, 3, 1, dtype=torch.bool))


def test_bad_features_device():
    d, _ = _good()
    f = torch.empty(2, 5, 3, device="meta")
    with pytest.raises(ValueError, match="rays_features: expected a tensor on device cpu"):
        EmissionAbsorptionRaymarcher()(d, f)


@pytest.mark.parametrize("value", [0, -2])
def test_bad_surface_thickness_not_positive(value):
    with pytest.raises(
        ValueError, match=f"surface_thickness: expected a positive int, got {value}"
    ):
        EmissionAbsorptionRaymarcher(value)


@pytest.mark.parametrize("value", [1.0, "1", None])
def test_bad_surface_thickness_not_an_int(value):
    with pytest.raises(ValueError, match="surface_thickness: expected a positive int") as info:
        EmissionAbsorptionRaymarcher(value)
    assert isinstance(info.value, TypeError)


def test_bad_surface_thickness_set_after_construction():
    d, f = _good()
    raymarcher = EmissionAbsorptionRaymarcher()
    raymarcher.surface_thickness = 0
    with pytest.raises(ValueError, match="surface_thickness: expected a positive int"):
        raymarcher(d, f)


def test_negative_and_tensor_eps_like_pytorch3d():
    d, f = _good()
    want = torch.cat(_naive_ea(d[..., 0], f, 1, -0.1)[:2], dim=-1)
    assert_close(EmissionAbsorptionRaymarcher()(d, f, eps=-0.1), want)
    assert_close(EmissionAbsorptionRaymarcher()(d, f, eps=torch.tensor(-0.1)), want)


def test_bad_eps_not_a_number():
    d, f = _good()
    with pytest.raises(ValueError, match="eps: expected a real number") as info:
        EmissionAbsorptionRaymarcher()(d, f, eps="1e-10")
    assert isinstance(info.value, TypeError)


def test_bad_function_densities_scalar():
    with pytest.raises(ValueError, match=r"densities: expected shape \(\.\.\., P\)"):
        transmittance_from_densities(torch.tensor(0.5))


def test_function_densities_out_of_range_warn():
    with pytest.warns(UserWarning, match=r"got values in \[0, 2\]"):
        render_weights_from_densities(torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"densities are outside .* expected values in \[0, 1\]"):
        render_weights_from_densities(torch.tensor([0.0, 2.0]), strict_densities=True)


# ----------------------------------------------------------------------------- written-out gradient


@pytest.mark.parametrize(
    "side_by_side", [False, True, "pairs"], ids=["split", "samples", "samples-paired-outputs"]
)
@pytest.mark.parametrize("surface_thickness", [1, 2, 7, 12])
@pytest.mark.parametrize("opaque", [0, 1, 3], ids=["no-ones", "one-one", "three-ones"])
def test_written_out_gradient_matches_autograd(surface_thickness, opaque, side_by_side):
    # _emission_absorption_backward (the fused renderer's) against autograd through the kernel,
    # including densities of exactly 1 (zeros of 1 - d: cumprod's special case)
    g = torch.Generator().manual_seed(surface_thickness * 10 + opaque)
    n, p, c = 6, 10, 3
    d = torch.rand(n, p, generator=g, dtype=torch.float64) * 0.8
    for k in range(opaque):
        d[k % n, (3 * k + 2) % p] = 1.0
        d[(k + 2) % n, p - 1 - k] = 1.0
    f = torch.rand(n, p, c, generator=g, dtype=torch.float64)
    grad_out = torch.randn(n, c + 1, generator=g, dtype=torch.float64)
    leaves = (d.clone().requires_grad_(), f.clone().requires_grad_())
    out = raymarching._emission_absorption(leaves[0][..., None], leaves[1], surface_thickness, 0.0)
    want_d, want_f = torch.autograd.grad(out, leaves, grad_out)
    got_d = torch.empty(n, p, dtype=torch.float64)
    got_f = torch.empty(c, n, p, dtype=torch.float64)
    outputs = (got_d, got_f)
    if side_by_side == "pairs":  # the fused renderer's outputs: strided views, channel pairs
        pairs = torch.empty(2, n * p, 2, dtype=torch.float64)  # (C / 2, m, 2), C = 1 + c
        views = [pairs[i // 2, :, i % 2].view(n, p) for i in range(1 + c)]
        outputs = (views[0], views[1:])
    if side_by_side:  # the fused renderer's call: densities and features views of its samples
        samples = torch.cat((d[..., None], f), dim=-1)  # (n, P, 1 + C)
        d, f = samples[..., 0], samples[..., 1:]
    kw = {"samples": samples} if side_by_side else {}
    raymarching._emission_absorption_backward(d, f, grad_out, surface_thickness, *outputs, **kw)
    if side_by_side == "pairs":
        got_d, got_f = views[0], torch.stack(views[1:])
    assert_close(got_d, want_d, kind="grad")
    assert_close(got_f, want_f.permute(2, 0, 1), kind="grad")

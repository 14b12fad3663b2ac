"""Tests for voxrender.grid_sample: ``sample_grid`` against ``torch.nn.functional.grid_sample``."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
import torch.nn.functional as F
from helpers import DEVICES, DTYPES, assert_close
from hypothesis import given
from hypothesis import strategies as st

import voxrender.grid_sample as grid_sample_module
from voxrender import sample_grid

MODES = ["bilinear", "nearest"]
PADDINGS = ["zeros", "border", "reflection"]
CONFIGS = list(itertools.product(MODES, PADDINGS, [True, False]))


def reference(volume, points, mode="bilinear", padding_mode="zeros", align_corners=True):
    """``grid_sample`` on ``(B, ..., 3)`` points, moved channel-last to ``(B, ..., C)``."""
    batch = max(volume.shape[0], points.shape[0])
    volume = volume.expand(batch, *volume.shape[1:])
    points = points.expand(batch, *points.shape[1:])
    out = F.grid_sample(
        volume,
        points.reshape(batch, -1, 1, 1, 3),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=align_corners,
    )  # (B, C, P, 1, 1)
    return out.reshape(batch, volume.shape[1], *points.shape[1:-1]).movedim(1, -1)


def to_normalised(u, sizes, align_corners):
    """Voxel coordinates ``(..., 3)`` (x, y, z) -> normalised coordinates, sizes ``(W, H, D)``."""
    sizes = torch.as_tensor(sizes, dtype=u.dtype)
    if align_corners:
        return u / (sizes - 1).clamp(min=1) * 2 - 1
    return (2 * u + 1) / sizes - 1


def values_and_grads(fn, volume, points, cotangent=None, **kwargs):
    """``fn(volume, points)`` and the gradients of ``sum(out * cotangent)`` w.r.t. both."""
    volume = volume.detach().clone().requires_grad_(True)
    points = points.detach().clone().requires_grad_(True)
    out = fn(volume, points, **kwargs)
    if cotangent is None:
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((out * cotangent.to(out)).sum(), (volume, points))
    return out.detach(), grads


def assert_matches_reference(volume, points, **kwargs):
    out, (g_vol, g_pts) = values_and_grads(sample_grid, volume, points, **kwargs)
    ref, (r_vol, r_pts) = values_and_grads(reference, volume, points, **kwargs)
    assert_close(out, ref, kind="out", msg="values")
    assert_close(g_vol, r_vol, kind="grad", msg="grad volume")
    assert_close(g_pts, r_pts, kind="grad", msg="grad points")


def mixed_points(shape, sizes, align_corners, generator, dtype=torch.float64):
    """Points ``(*shape, 3)`` on and off the interpolation's kinks.

    They mix exact voxel centres and faces, dyadic values, the boundary ±1, uniform values in [-3, 3] and far-outside voxel coordinates.
    """
    n = torch.Size(shape).numel() * 3
    kind = torch.randint(0, 5, (n,), generator=generator)
    sizes3 = torch.tensor(sizes, dtype=dtype).repeat(n // 3)
    half_u = torch.randint(-8, 2 * max(sizes) + 8, (n,), generator=generator).to(dtype) / 2
    x_from_u = to_normalised(half_u.view(-1, 3), sizes, align_corners).reshape(-1)
    dyadic = torch.randint(-24, 25, (n,), generator=generator).to(dtype) / 8
    boundary = torch.randint(-1, 2, (n,), generator=generator).to(dtype)
    uniform = torch.rand(n, generator=generator, dtype=dtype) * 6 - 3
    far = (torch.rand(n, generator=generator, dtype=dtype) * 2 - 1) * 3 * sizes3
    choices = torch.stack((x_from_u, dyadic, boundary, uniform, far.clamp(-3, 3)))
    return choices.gather(0, kind[None]).view(*shape, 3)


# ----------------------------------------------------------------------------------------------
# Agreement with grid_sample
# ----------------------------------------------------------------------------------------------


@st.composite
def sampling_cases(draw):
    sizes = tuple(draw(st.integers(1, 6)) for _ in range(3))  # (W, H, D)
    channels = draw(st.integers(1, 4))
    batch = draw(st.integers(1, 3))
    volume_batch = draw(st.sampled_from([1, batch]))
    points_batch = draw(st.sampled_from([1, batch])) if volume_batch == batch else batch
    point_dims = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    mode, padding, align = draw(st.sampled_from(CONFIGS))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, channels, volume_batch, points_batch, point_dims, mode, padding, align, seed


@given(sampling_cases())
def test_matches_grid_sample_property(case):
    sizes, channels, volume_batch, points_batch, point_dims, mode, padding, align, seed = case
    g = torch.Generator().manual_seed(seed)
    w, h, d = sizes
    volume = torch.randn(volume_batch, channels, d, h, w, generator=g, dtype=torch.float64)
    points = mixed_points((points_batch, *point_dims), sizes, align, g)
    assert_matches_reference(volume, points, mode=mode, padding_mode=padding, align_corners=align)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mode", "padding", "align"), CONFIGS)
def test_matches_grid_sample_devices_dtypes(device, dtype, mode, padding, align):
    g = torch.Generator().manual_seed(3)
    volume = torch.randn(2, 3, 7, 5, 6, generator=g, dtype=dtype)
    points = mixed_points((2, 40, 5), (6, 5, 7), align, g, dtype=dtype)
    out, (g_vol, g_pts) = values_and_grads(
        sample_grid,
        volume.to(device),
        points.to(device),
        mode=mode,
        padding_mode=padding,
        align_corners=align,
    )
    ref, (r_vol, r_pts) = values_and_grads(
        reference, volume, points, mode=mode, padding_mode=padding, align_corners=align
    )
    assert out.device.type == torch.device(device).type and out.dtype == dtype
    assert_close(out.cpu(), ref, kind="out")
    assert_close(g_vol.cpu(), r_vol, kind="grad")
    assert_close(g_pts.cpu(), r_pts, kind="grad")


@pytest.mark.parametrize("padding", PADDINGS)
def test_chunk_boundaries(monkeypatch, padding):
    """Several chunks, batch boundaries inside chunks, one volume per batch element."""
    monkeypatch.setattr(grid_sample_module, "_CPU_CHUNK", 7)
    monkeypatch.setattr(grid_sample_module, "_DEVICE_CHUNK", 7)
    g = torch.Generator().manual_seed(4)
    volume = torch.randn(3, 2, 4, 3, 5, generator=g, dtype=torch.float64)
    points = mixed_points((3, 11), (5, 3, 4), False, g)
    for mode in MODES:
        assert_matches_reference(
            volume, points, mode=mode, padding_mode=padding, align_corners=False
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_realistic_sizes_float32_and_64(dtype):
    g = torch.Generator().manual_seed(5)
    volume = torch.rand(2, 4, 16, 16, 16, generator=g, dtype=dtype)
    points = torch.rand(2, 30, 50, 3, generator=g, dtype=dtype) * 2.4 - 1.2
    for align in (True, False):
        assert_matches_reference(volume, points, align_corners=align)


# ----------------------------------------------------------------------------------------------
# Gradients: gradcheck, boundaries, integer coordinates
# ----------------------------------------------------------------------------------------------


def kink_free_points(shape, sizes, align_corners, generator):
    """Points whose voxel coordinates stay >= 0.05 from integers and half-integers.

    There the interpolation, the clamps, the reflections and nearest rounding have kinks or jumps).
    """
    n = torch.Size(shape).numel()
    cell = torch.randint(-3, max(sizes) + 3, (n, 3), generator=generator).double()
    offset = torch.tensor([0.1, 0.3, 0.7, 0.9], dtype=torch.float64)
    frac = offset[torch.randint(0, 4, (n, 3), generator=generator)]
    frac = frac + (torch.rand(n, 3, generator=generator, dtype=torch.float64) - 0.5) * 0.08
    return to_normalised(cell + frac, sizes, align_corners).view(*shape, 3)


@pytest.mark.parametrize(("mode", "padding", "align"), CONFIGS)
def test_gradcheck(mode, padding, align):
    g = torch.Generator().manual_seed(6)
    volume = torch.randn(2, 2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    points = kink_free_points((2, 4), (3, 3, 2), align, g).requires_grad_(True)

    def fn(v, p):
        return sample_grid(v, p, mode=mode, padding_mode=padding, align_corners=align)

    assert torch.autograd.gradcheck(fn, (volume, points), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("align", [True, False])
def test_integer_coordinates_finite_gradients(padding, align):
    sizes = (4, 3, 5)
    u = torch.stack(
        torch.meshgrid(*(torch.arange(-2.0, s + 2.0, 0.5) for s in sizes), indexing="ij"), -1
    ).reshape(1, -1, 3)
    points = to_normalised(u.double(), sizes, align)
    volume = torch.randn(1, 2, 5, 3, 4, dtype=torch.float64)
    out, grads = values_and_grads(
        sample_grid, volume, points, padding_mode=padding, align_corners=align
    )
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(grad).all() for grad in grads)
    assert_matches_reference(volume, points, padding_mode=padding, align_corners=align)


@pytest.mark.parametrize("align", [True, False])
def test_border_points_gradient_is_zero_at_and_beyond_the_limit(align):
    volume = torch.arange(4.0, dtype=torch.float64).view(1, 1, 1, 1, 4).repeat(1, 1, 2, 2, 1)
    limit = 1.0 if align else 0.75  # u = W - 1 = 3 exactly
    xs = torch.tensor([-3.0, -limit, 0.1, limit, 1.0, 3.0], dtype=torch.float64)
    points = torch.stack((xs, torch.zeros_like(xs), torch.zeros_like(xs)), -1)[None]
    out, (_, g_pts) = values_and_grads(
        sample_grid,
        volume,
        points,
        cotangent=torch.ones(1, 6, 1),
        padding_mode="border",
        align_corners=align,
    )
    expected_grad_x = torch.tensor([0, 0, 1.5 if align else 2.0, 0, 0, 0], dtype=torch.float64)
    assert_close(g_pts[0, :, 0], expected_grad_x, kind="grad")
    assert_close(out[0, [0, 1, 3, 4, 5], 0], torch.tensor([0.0, 0.0, 3.0, 3.0, 3.0]).double())
    assert_matches_reference(volume, points, padding_mode="border", align_corners=align)


def test_reflection_mirrors_values_and_flips_gradient_sign():
    volume = (torch.arange(5.0, dtype=torch.float64) ** 2).view(1, 1, 1, 1, 5)
    # align_corners=True: u = 2 (x + 1); x = 1.25 -> u = 4.5 -> mirrored about 4 to 3.5.
    points = torch.tensor([[[1.25, 0.0, 0.0], [0.75, 0.0, 0.0]]], dtype=torch.float64)
    out, (_, g_pts) = values_and_grads(
        sample_grid, volume, points, cotangent=torch.ones(1, 2, 1), padding_mode="reflection"
    )
    assert_close(out[0, :, 0], torch.tensor([12.5, 12.5], dtype=torch.float64))  # (9 + 16) / 2
    assert_close(g_pts[0, :, 0], torch.tensor([-14.0, 14.0], dtype=torch.float64))  # ∓ 7 * 2
    assert_matches_reference(volume, points, padding_mode="reflection")


def test_trilinear_reproduces_a_linear_function():
    d, h, w = 4, 5, 6
    z, y, x = torch.meshgrid(
        *(torch.arange(n, dtype=torch.float64) for n in (d, h, w)), indexing="ij"
    )
    volume = (2 * x - 3 * y + 0.5 * z + 1)[None, None]  # (1, 1, D, H, W)
    u = torch.rand(1, 50, 3, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0, d - 1.0])
    points = to_normalised(u, (w, h, d), True)
    out, (_, g_pts) = values_and_grads(sample_grid, volume, points, cotangent=torch.ones(1, 50, 1))
    expected = 2 * u[..., 0] - 3 * u[..., 1] + 0.5 * u[..., 2] + 1
    assert_close(out[..., 0], expected)
    scale = torch.tensor([(w - 1) / 2, (h - 1) / 2, (d - 1) / 2], dtype=torch.float64)
    slope = torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64) * scale
    assert_close(g_pts, slope.expand(1, 50, 3), kind="grad")


def test_nearest_rounds_half_to_even():
    volume = torch.arange(6.0, dtype=torch.float64).view(1, 1, 1, 1, 6)
    u = torch.tensor([0.5, 1.5, 2.5, 3.5, 2.49, 4.51], dtype=torch.float64)
    points = torch.stack((u, torch.zeros_like(u), torch.zeros_like(u)), -1)[None]
    points = to_normalised(points, (6, 1, 1), True)
    out = sample_grid(volume, points, mode="nearest")
    assert_close(out[0, :, 0], torch.tensor([0.0, 2.0, 2.0, 4.0, 2.0, 5.0], dtype=torch.float64))


def test_nan_points_read_zero():
    volume = torch.rand(1, 2, 3, 3, 3)
    points = torch.tensor([[[float("nan"), 0.0, 0.0], [0.0, 0.0, 0.0]]])
    for mode, padding in itertools.product(MODES, PADDINGS):
        out = sample_grid(volume, points, mode=mode, padding_mode=padding)
        assert (out[0, 0] == 0).all(), (mode, padding)
        assert_close(out[0, 1], volume[0, :, 1, 1, 1])


def test_does_not_call_grid_sample(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("grid_sample was called")

    monkeypatch.setattr(F, "grid_sample", refuse)
    monkeypatch.setattr(torch, "grid_sampler", refuse)
    monkeypatch.setattr(torch, "grid_sampler_3d", refuse)
    volume = torch.rand(1, 2, 4, 4, 4, requires_grad=True)
    points = (torch.rand(2, 10, 3) * 2 - 1).requires_grad_(True)
    sample_grid(volume, points).sum().backward()
    assert volume.grad is not None and points.grad is not None


# ----------------------------------------------------------------------------------------------
# Batches: broadcasting and volumes expanded across the batch
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_shared_volume_and_shared_points(device):
    g = torch.Generator().manual_seed(7)
    volume = torch.randn(1, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    points = torch.rand(4, 9, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1
    assert_matches_reference(volume.to(device), points.to(device))  # one volume, batch of points
    volumes = torch.randn(4, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    assert_matches_reference(volumes.to(device), points[:1].to(device))  # batch of volumes
    out = sample_grid(volumes.to(device), points[:1].to(device))
    assert out.shape == (4, 9, 3)


def tutorial_volume(batch, channels=3, size=5, seed=8):
    """``sigmoid(log)[None].expand(B, ...)`` as in the tutorial, with its leaf ``log``."""
    g = torch.Generator().manual_seed(seed)
    log = torch.randn(channels, size, size, size, generator=g, dtype=torch.float64)
    log.requires_grad_(True)
    return log, torch.sigmoid(log)[None].expand(batch, -1, -1, -1, -1)


@pytest.mark.parametrize("mode", MODES)
def test_expanded_volume_gradient_bypasses_the_expanded_tensor(mode):
    log, volume = tutorial_volume(batch=3)
    seen = []
    volume.register_hook(lambda grad: seen.append(tuple(grad.shape)))
    points = torch.rand(3, 20, 3, dtype=torch.float64) * 2.2 - 1.1
    out = sample_grid(volume, points, mode=mode)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (grad,) = torch.autograd.grad((out * cot).sum(), log)
    assert seen == []  # no (B, C, D, H, W) gradient was ever formed for the expanded tensor

    log2 = log.detach().clone().requires_grad_(True)
    copied = torch.sigmoid(log2)[None].expand(3, -1, -1, -1, -1).contiguous()
    ref = reference(copied, points, mode=mode)
    (ref_grad,) = torch.autograd.grad((ref * cot).sum(), log2)
    assert_close(out.detach(), ref.detach())
    assert_close(grad, ref_grad, kind="grad")


def test_expanded_view_of_a_non_contiguous_base():
    """An expand of a slice of a permuted tensor: read through its base, gradients still exact."""
    g = torch.Generator().manual_seed(9)
    base = torch.randn(5, 2, 3, 4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    inner = (base * 1).permute(1, 0, 2, 3, 4)[:, 1:4]  # (2, 3, 3, 4, 3): not contiguous
    volume = inner[:1].expand(4, -1, -1, -1, -1)
    seen = []
    volume.register_hook(lambda grad: seen.append(1))
    points = torch.rand(4, 10, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1
    out = sample_grid(volume, points)
    (grad,) = torch.autograd.grad(out.sum(), base)
    assert seen == []
    ref = reference(volume.detach().contiguous(), points)
    assert_close(out.detach(), ref)
    base2 = base.detach().clone().requires_grad_(True)
    copied = (base2 * 1).permute(1, 0, 2, 3, 4)[:, 1:4][:1].expand(4, -1, -1, -1, -1)
    (ref_grad,) = torch.autograd.grad(reference(copied.contiguous(), points).sum(), base2)
    assert_close(grad, ref_grad, kind="grad")


def test_expanded_volume_without_grad_and_expanded_leaf():
    _, volume = tutorial_volume(batch=3)
    points = torch.rand(3, 7, 3, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert_close(sample_grid(volume, points), reference(volume, points))
    leaf = torch.rand(1, 2, 3, 3, 3, dtype=torch.float64).expand(3, -1, -1, -1, -1)
    leaf.requires_grad_(True)  # a leaf: its gradient is (B, ...) by definition
    out = sample_grid(leaf, points)
    (grad,) = torch.autograd.grad(out.sum(), leaf)
    (ref_grad,) = torch.autograd.grad(reference(leaf, points).sum(), leaf)
    assert_close(grad, ref_grad, kind="grad")


def test_huge_expanded_batch_stays_small_and_fast():
    """B = 10 000 copies of a 32³ x 4 volume (5 GB if materialised) in a few MB."""
    batch = 10_000
    log = torch.randn(4, 32, 32, 32, requires_grad=True)
    volume = torch.sigmoid(log)[None].expand(batch, -1, -1, -1, -1)
    points = torch.rand(batch, 4, 3) * 2 - 1
    start = time.perf_counter()
    with torch.profiler.profile(profile_memory=True) as prof:
        out = sample_grid(volume, points)
        out.square().sum().backward()
    elapsed = time.perf_counter() - start
    biggest = max(abs(event.cpu_memory_usage) for event in prof.events())
    assert biggest < 50e6, f"an allocation of {biggest} bytes"
    assert elapsed < 30  # generous: a materialised volume alone is 5 GB
    assert out.shape == (batch, 4, 4) and log.grad.shape == (4, 32, 32, 32)
    some = torch.arange(0, batch, 997)
    assert_close(out[some], reference(volume[:1], points[some]).detach())


# ----------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("point_dims", [(), (7,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("channels", [0, 1, 3])
def test_output_shapes(point_dims, channels):
    volume = torch.rand(2, channels, 3, 4, 5)
    points = torch.rand(2, *point_dims, 3) * 2 - 1
    out = sample_grid(volume, points)
    assert out.shape == (2, *point_dims, channels)
    if channels:
        assert_close(out, reference(volume, points))


def test_no_points():
    volume = torch.rand(2, 3, 3, 4, 5, requires_grad=True)
    points = torch.rand(2, 0, 3, requires_grad=True)
    out = sample_grid(volume, points)
    assert out.shape == (2, 0, 3)
    out.sum().backward()
    assert (volume.grad == 0).all() and points.grad.shape == (2, 0, 3)


def test_single_voxel_volume():
    volume = torch.rand(1, 2, 1, 1, 1, dtype=torch.float64)
    points = mixed_points((1, 30), (1, 1, 1), True, torch.Generator().manual_seed(0))
    for mode, padding, align in CONFIGS:
        assert_matches_reference(
            volume, points, mode=mode, padding_mode=padding, align_corners=align
        )


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def good_inputs():
    return torch.rand(2, 3, 4, 4, 4), torch.rand(2, 5, 3)


def test_volume_not_a_tensor():
    with pytest.raises(TypeError, match=r"volume: expected a torch\.Tensor"):
        sample_grid([[1.0]], good_inputs()[1])


def test_volume_not_floating():
    with pytest.raises(TypeError, match="volume: expected a floating-point tensor"):
        sample_grid(torch.ones(2, 3, 4, 4, 4, dtype=torch.int64), good_inputs()[1])


def test_points_not_floating():
    with pytest.raises(TypeError, match="points: expected a floating-point tensor"):
        sample_grid(good_inputs()[0], torch.ones(2, 5, 3, dtype=torch.int32))


def test_volume_wrong_rank():
    with pytest.raises(
        ValueError, match=r"volume: expected shape \(B, C, D, H, W\), got shape \(3, 4, 4, 4\)"
    ):
        sample_grid(torch.rand(3, 4, 4, 4), good_inputs()[1])


def test_points_last_dim_not_3():
    with pytest.raises(
        ValueError, match=r"points: expected shape \(B, \.\.\., 3\), got shape \(2, 5, 2\)"
    ):
        sample_grid(good_inputs()[0], torch.rand(2, 5, 2))


def test_points_rank_1():
    with pytest.raises(
        ValueError, match=r"points: expected shape \(B, \.\.\., 3\), got shape \(3,\)"
    ):
        sample_grid(good_inputs()[0], torch.rand(3))


def test_dtype_mismatch():
    with pytest.raises(
        TypeError,
        match=r"points: expected the volume's dtype torch\.float32, got dtype torch\.float64",
    ):
        sample_grid(good_inputs()[0], torch.rand(2, 5, 3, dtype=torch.float64))


def test_device_mismatch():
    with pytest.raises(
        ValueError, match="points: expected a tensor on device cpu, got one on meta"
    ):
        sample_grid(good_inputs()[0], torch.rand(2, 5, 3, device="meta"))


def test_batch_sizes_do_not_broadcast():
    with pytest.raises(ValueError, match=r"batch sizes do not broadcast.*volume=2, points=3"):
        sample_grid(good_inputs()[0], torch.rand(3, 5, 3))


def test_empty_grid():
    with pytest.raises(
        ValueError, match=r"volume: expected a grid with D, H, W >= 1, got shape \(2, 3, 0, 4, 4\)"
    ):
        sample_grid(torch.rand(2, 3, 0, 4, 4), good_inputs()[1])


def test_unknown_mode():
    with pytest.raises(
        ValueError, match=r"mode: expected one of \['bilinear', 'nearest'\], got 'bicubic'"
    ):
        sample_grid(*good_inputs(), mode="bicubic")


def test_unknown_padding_mode():
    with pytest.raises(
        ValueError,
        match=r"padding_mode: expected one of \['zeros', 'border', 'reflection'\], got 'wrap'",
    ):
        sample_grid(*good_inputs(), padding_mode="wrap")


def test_align_corners_not_bool():
    with pytest.raises(TypeError, match="align_corners: expected a bool, got int 1"):
        sample_grid(*good_inputs(), align_corners=1)

"""Tests for voxrender.volumes: the Volumes batch and its local <-> world coordinates."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICES, DTYPES, assert_close, case_names, load_case, run_case
from hypothesis import given
from hypothesis import strategies as st

from voxrender import Volumes

needs_cuda = pytest.mark.cuda  # run when CUDA is selected and present (conftest.py)


def _vol(batch=2, size=(4, 5, 6), channels=1, features=3, dtype=torch.float32, device="cpu", **kw):
    gen = torch.Generator().manual_seed(0)
    dens = torch.rand(batch, channels, *size, generator=gen, dtype=dtype).to(device)
    feats = None
    if features:
        feats = torch.rand(batch, features, *size, generator=gen, dtype=dtype).to(device)
    return Volumes(dens, feats, **kw)


def _expected_scale(size_dhw, voxel_size_xyz):
    d, h, w = size_dhw
    return torch.tensor(
        [(w - 1) / 2, (h - 1) / 2, (d - 1) / 2], dtype=torch.float64
    ) * torch.tensor(voxel_size_xyz, dtype=torch.float64)


# --------------------------------------------------------------------------- smoke and shapes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_getters_shapes_dtype_device(device, dtype):
    dens = torch.rand(2, 1, 4, 5, 6, dtype=dtype, device=device)
    feats = torch.rand(2, 3, 4, 5, 6, dtype=dtype, device=device)
    vol = Volumes(dens, feats, voxel_size=0.5)
    assert len(vol) == 2 and not vol.isempty()
    assert vol.densities() is dens and vol.features() is feats
    assert vol.device == dens.device
    assert vol.get_align_corners() is True
    sizes = vol.get_grid_sizes()
    assert sizes.dtype == torch.long and sizes.device == dens.device
    assert sizes.tolist() == [[4, 5, 6], [4, 5, 6]]
    pts = torch.rand(2, 7, 3, dtype=dtype, device=device)
    for out in (vol.world_to_local_coords(pts), vol.local_to_world_coords(pts)):
        assert out.shape == (2, 7, 3) and out.dtype == dtype and out.device == dens.device
    for world in (True, False):
        grid = vol.get_coord_grid(world_coordinates=world)
        assert grid.shape == (2, 4, 5, 6, 3) and grid.dtype == dtype
    assert [t.shape for t in vol.densities_list()] == [(1, 4, 5, 6)] * 2
    assert [t.shape for t in vol.features_list()] == [(3, 4, 5, 6)] * 2


def test_no_features():
    vol = _vol(features=0)
    assert vol.features() is None and vol.features_list() is None
    assert vol[0].features() is None


def test_points_of_any_rank():
    vol = _vol(batch=2)
    pts = torch.randn(2, 3, 4, 5, 3)
    flat = vol.world_to_local_coords(pts.reshape(2, -1, 3))
    assert_close(vol.world_to_local_coords(pts), flat.reshape(pts.shape))
    assert vol.world_to_local_coords(torch.randn(2, 3)).shape == (2, 3)


def test_single_volume_broadcasts_over_point_batch():
    vol = _vol(batch=1, voxel_size=0.3, volume_translation=(0.1, 0.2, 0.3))
    pts = torch.randn(4, 6, 3)
    out = vol.world_to_local_coords(pts)
    assert out.shape == (4, 6, 3)
    assert_close(out[2:3], vol.world_to_local_coords(pts[2:3]))


def test_repr_mentions_shapes():
    assert "densities=(2, 1, 4, 5, 6)" in repr(_vol())


# --------------------------------------------------------------------------- analytic cases


def test_pytorch3d_documented_example():
    # 5x5x5 grid, voxel 1, no translation: world (-2, 0, 2) is local (-1, 0, 1).
    vol = Volumes(torch.zeros(1, 1, 5, 5, 5))
    local = vol.world_to_local_coords(torch.tensor([[[-2.0, 0.0, 2.0]]]))
    assert_close(local, torch.tensor([[[-1.0, 0.0, 1.0]]]))


def test_translation_sign():
    # The grid centre (local 0) sits at -volume_translation in the world.
    vol = Volumes(torch.zeros(1, 1, 3, 3, 3), volume_translation=(1.0, 2.0, 3.0))
    assert_close(
        vol.local_to_world_coords(torch.zeros(1, 1, 3)), torch.tensor([[[-1.0, -2.0, -3.0]]])
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_anisotropic_scale_xyz_order(dtype):
    size, vs, tr = (3, 5, 9), (0.5, 2.0, 3.0), (0.25, -1.0, 2.0)
    vol = Volumes(torch.zeros(1, 1, *size, dtype=dtype), voxel_size=vs, volume_translation=tr)
    local = torch.tensor([[[1.0, -0.5, 0.25]]], dtype=dtype)
    scale = _expected_scale(size, vs).to(dtype)  # x spans W=9, z spans D=3
    want = local * scale - torch.tensor(tr, dtype=dtype)
    assert_close(vol.local_to_world_coords(local), want)
    assert_close(vol.world_to_local_coords(want), local)


def test_per_volume_parameters():
    vs = torch.tensor([[1.0], [2.0]])
    tr = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    vol = _vol(batch=2, size=(3, 3, 3), voxel_size=vs, volume_translation=tr)
    world = vol.local_to_world_coords(torch.ones(2, 1, 3))
    assert_close(world, torch.tensor([[[1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0]]]))


@pytest.mark.parametrize("align_corners", [True, False])
def test_coord_grid_matches_grid_sample_identity(align_corners):
    # Sampling the volume at its own local grid returns the volume (PyTorch3D's docstring).
    dens = torch.rand(2, 2, 3, 4, 5, dtype=torch.float64)
    vol = Volumes(dens, align_corners=align_corners)
    grid = vol.get_coord_grid(world_coordinates=False)
    sampled = torch.nn.functional.grid_sample(dens, grid, align_corners=align_corners)
    assert_close(sampled, dens)


def test_world_grid_is_local_grid_mapped():
    vol = _vol(voxel_size=(0.1, 0.2, 0.3), volume_translation=(1.0, 2.0, 3.0))
    local = vol.get_coord_grid(world_coordinates=False)
    assert_close(vol.get_coord_grid(world_coordinates=True), vol.local_to_world_coords(local))
    # voxel spacing in the world is the voxel size
    world = vol.get_coord_grid()
    assert_close(world[0, 0, 0, 1] - world[0, 0, 0, 0], torch.tensor([0.1, 0.0, 0.0]))
    assert_close(world[0, 1, 0, 0] - world[0, 0, 0, 0], torch.tensor([0.0, 0.0, 0.3]))


def test_list_of_volumes_padding_and_lists():
    sizes = [(2, 3, 4), (4, 2, 2), (3, 3, 3)]
    dens = [torch.rand(1, *s) + 1 for s in sizes]
    feats = [torch.rand(2, *s) + 1 for s in sizes]
    vol = Volumes(dens, feats)
    assert vol.densities().shape == (3, 1, 4, 3, 4)
    assert vol.features().shape == (3, 2, 4, 3, 4)
    assert vol.get_grid_sizes().tolist() == [list(s) for s in sizes]
    for i, s in enumerate(sizes):
        assert torch.equal(vol.densities_list()[i], dens[i])
        assert torch.equal(vol.features_list()[i], feats[i])
        padded = vol.densities()[i].clone()
        padded[:, : s[0], : s[1], : s[2]] = 0
        assert torch.count_nonzero(padded) == 0


def test_list_coord_grid_uses_each_grid_size():
    sizes = [(2, 3, 4), (4, 2, 5)]
    vol = Volumes([torch.rand(1, *s) for s in sizes], voxel_size=0.5)
    local = vol.get_coord_grid(world_coordinates=False)
    for i, (d, h, w) in enumerate(sizes):
        # each grid's own last voxel sits at local (1, 1, 1); its world position at scale - 0
        assert_close(local[i, 0, 0, 0], torch.tensor([-1.0, -1.0, -1.0]))
        assert_close(local[i, d - 1, h - 1, w - 1], torch.ones(3))
        world = vol.get_coord_grid()[i, d - 1, h - 1, w - 1]
        assert_close(world, _expected_scale((d, h, w), (0.5, 0.5, 0.5)).float())


def test_list_padding_is_differentiable():
    a = torch.rand(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: Volumes([a, b]).densities(), (a, b))


# --------------------------------------------------------------------------- expanded views


def test_expanded_batch_is_never_copied():
    base = torch.rand(1, 4, 4, 4)
    colors = torch.rand(3, 4, 4, 4)
    dens, feats = base[None].expand(5, -1, -1, -1, -1), colors[None].expand(5, -1, -1, -1, -1)
    vol = Volumes(densities=dens, features=feats, voxel_size=0.1)
    for got, src in ((vol.densities(), base), (vol.features(), colors)):
        assert got.data_ptr() == src.data_ptr()
        assert got.stride(0) == 0 and got.shape[0] == 5
    for view in (vol.to("cpu"), vol[1:4], vol[2], vol.update_padded(dens, feats)):
        assert view.densities().data_ptr() == base.data_ptr() and view.densities().stride(0) == 0
    assert vol.world_to_local_coords(torch.rand(5, 2, 3)).shape == (5, 2, 3)


@needs_cuda
def test_expanded_batch_stays_expanded_on_device_move():
    base = torch.rand(1, 4, 4, 4)
    vol = Volumes(base[None].expand(6, -1, -1, -1, -1)).cuda()
    assert vol.densities().is_cuda and vol.densities().stride(0) == 0
    assert torch.equal(vol.densities().cpu(), base[None].expand(6, -1, -1, -1, -1))


# --------------------------------------------------------------------------- parameter forms


@pytest.mark.parametrize(
    "voxel_size",
    [
        0.5,
        (0.5, 0.5, 0.5),
        [0.5, 0.5, 0.5],
        torch.tensor(0.5),
        torch.tensor([0.5]),
        torch.tensor([0.5, 0.5, 0.5]),
        torch.tensor([[0.5]]),
        torch.tensor([[0.5, 0.5, 0.5]]),
        torch.full((3, 1), 0.5),
        torch.full((3, 3), 0.5),
        torch.full((3, 3), 0.5, dtype=torch.float64),
    ],
    ids=lambda v: f"{type(v).__name__}{tuple(v.shape) if isinstance(v, torch.Tensor) else ''}",
)
def test_voxel_size_forms_agree(voxel_size):
    want = _vol(batch=3, voxel_size=(0.5, 0.5, 0.5))
    vol = _vol(batch=3, voxel_size=voxel_size)
    pts = torch.randn(3, 4, 3)
    assert_close(vol.world_to_local_coords(pts), want.world_to_local_coords(pts))


@pytest.mark.parametrize(
    "translation",
    [
        (0.1, -0.2, 0.3),
        [0.1, -0.2, 0.3],
        torch.tensor([0.1, -0.2, 0.3]),
        torch.tensor([[0.1, -0.2, 0.3]]),
        torch.tensor([[0.1, -0.2, 0.3]]).expand(3, 3),
    ],
    ids=lambda v: f"{type(v).__name__}{tuple(v.shape) if isinstance(v, torch.Tensor) else ''}",
)
def test_translation_forms_agree(translation):
    want = _vol(batch=3, volume_translation=(0.1, -0.2, 0.3))
    vol = _vol(batch=3, volume_translation=translation)
    pts = torch.randn(3, 4, 3)
    assert_close(vol.local_to_world_coords(pts), want.local_to_world_coords(pts))


@pytest.mark.parametrize(
    "translation",
    [0.5, torch.tensor(0.5), torch.tensor([0.5]), torch.tensor([[0.5]]), torch.full((2, 1), 0.5)],
    ids=["float", "0d", "(1,)", "(1, 1)", "(B, 1)"],
)
def test_scalar_translation_is_refused_like_pytorch3d(translation):
    # PyTorch3D refuses these on purpose (ValueError) or crashes on them (IndexError for the
    # (), (1,) tensors): voxrender refuses all with a ValueError quoting PyTorch3D's message.
    with pytest.raises(ValueError, match="`volume_translation` has to be either a 3-tuple"):
        _vol(batch=2, volume_translation=translation)


def test_negative_voxel_size_mirrors_the_grid():
    vol = _vol(voxel_size=-1.0)
    want = -_vol(voxel_size=1.0).local_to_world_coords(torch.ones(2, 1, 3))
    assert_close(vol.local_to_world_coords(torch.ones(2, 1, 3)), want)
    assert_close(vol.world_to_local_coords(want), torch.ones(2, 1, 3))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (1, 1, 1)])
def test_one_element_voxel_size_of_any_shape(shape):
    vol = _vol(batch=2, voxel_size=torch.full(shape, 0.5))
    want = _vol(batch=2, voxel_size=0.5)
    pts = torch.randn(2, 4, 3)
    assert_close(vol.world_to_local_coords(pts), want.world_to_local_coords(pts))


@pytest.mark.parametrize("flag", [0, 1, False, True, 2])
def test_align_corners_accepts_int_flags(flag):
    vol = Volumes(torch.rand(1, 1, 2, 2, 2), align_corners=flag)
    assert vol.get_align_corners() == bool(flag)


@pytest.mark.parametrize("size", [(1, 4, 4), (4, 1, 4), (4, 4, 1)])
def test_spatial_size_one_constructs_and_refuses_world_to_local(size):
    vol = Volumes(torch.rand(1, 2, *size), voxel_size=0.5, volume_translation=(1.0, 2.0, 3.0))
    assert vol.densities().shape == (1, 2, *size)
    # local -> world works (the flat axis maps to the grid centre), as in PyTorch3D
    world = vol.local_to_world_coords(torch.zeros(1, 1, 3))
    assert_close(world, torch.tensor([[[-1.0, -2.0, -3.0]]]))
    with pytest.raises(ValueError, match=r"points_3d_world: the world -> local map .* singular"):
        vol.world_to_local_coords(torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="singular"):
        vol.get_world_to_local_coords_transform()
    with pytest.raises(ValueError, match="get_coord_grid: a volume with a spatial size of 1"):
        vol.get_coord_grid()


def test_zero_voxel_size_constructs_and_refuses_world_to_local():
    vol = _vol(voxel_size=(1.0, 0.0, 1.0))
    vol.local_to_world_coords(torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="singular"):
        vol.world_to_local_coords(torch.zeros(2, 1, 3))


def test_integer_points_take_the_volume_dtype():
    vol = _vol(dtype=torch.float64)
    out = vol.world_to_local_coords(torch.ones(2, 5, 3, dtype=torch.long))
    assert out.dtype == torch.float64
    assert_close(out, vol.world_to_local_coords(torch.ones(2, 5, 3, dtype=torch.float64)))


def test_integer_tensor_parameters_take_the_volume_dtype():
    vol = _vol(dtype=torch.float64, voxel_size=torch.tensor([1, 2, 3]))
    assert (
        vol.local_to_world_coords(torch.ones(2, 1, 3, dtype=torch.float64)).dtype == torch.float64
    )


# --------------------------------------------------------------------------- transforms


def test_transform_matrices():
    vs, tr = (0.5, 2.0, 3.0), (0.25, -1.0, 2.0)
    vol = _vol(batch=2, size=(3, 5, 9), voxel_size=vs, volume_translation=tr)
    m = vol.get_local_to_world_coords_transform().get_matrix()
    want = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    want[:, [0, 1, 2], [0, 1, 2]] = _expected_scale((3, 5, 9), vs)
    want[:, 3, :3] = -torch.tensor(tr, dtype=torch.float64)
    assert_close(m, want.float())
    inv = vol.get_world_to_local_coords_transform().get_matrix()
    assert_close(inv @ m, torch.eye(4).expand(2, 4, 4))


def test_transforms_agree_with_coordinate_conversions():
    vol = _vol(batch=2, voxel_size=torch.tensor([[0.2], [0.3]]), volume_translation=(1.0, 2.0, 3.0))
    pts = torch.randn(2, 5, 3)
    w2l = vol.get_world_to_local_coords_transform()
    l2w = vol.get_local_to_world_coords_transform()
    assert_close(w2l.transform_points(pts), vol.world_to_local_coords(pts))
    assert_close(l2w.transform_points(pts), vol.local_to_world_coords(pts))


# --------------------------------------------------------------------------- batch operations


@pytest.mark.parametrize(
    "index, picked",
    [
        (1, [1]),
        (-1, [2]),
        (-3, [0]),
        ([2, 0], [2, 0]),
        ((0, 2), [0, 2]),
        (slice(1, None), [1, 2]),
        (slice(0, 3, 2), [0, 2]),
        (torch.tensor([2, 1]), [2, 1]),
        (torch.tensor([True, False, True]), [0, 2]),
        ([False, True, True], [1, 2]),
        ([], []),
    ],
)
def test_getitem(index, picked):
    vs = torch.tensor([[0.1], [0.2], [0.3]])
    vol = _vol(batch=3, voxel_size=vs, volume_translation=(1.0, 2.0, 3.0), align_corners=False)
    sub = vol[index]
    assert len(sub) == len(picked) and sub.isempty() == (not picked)
    assert torch.equal(sub.densities(), vol.densities()[picked])
    assert torch.equal(sub.features(), vol.features()[picked])
    assert torch.equal(sub.get_grid_sizes(), vol.get_grid_sizes()[picked])
    assert sub.get_align_corners() is False
    pts = torch.randn(3, 4, 3)
    assert_close(sub.world_to_local_coords(pts[picked]), vol.world_to_local_coords(pts)[picked])


def test_iteration_yields_each_volume():
    vol = _vol(batch=3)
    items = list(vol)
    assert len(items) == 3 and all(len(v) == 1 for v in items)
    assert torch.equal(items[2].densities(), vol.densities()[2:3])


def test_getitem_of_list_volumes_keeps_grid_sizes():
    vol = Volumes([torch.rand(1, 2, 3, 4), torch.rand(1, 4, 4, 4)])
    sub = vol[[1, 0]]
    assert sub.get_grid_sizes().tolist() == [[4, 4, 4], [2, 3, 4]]
    assert torch.equal(sub.densities_list()[1], vol.densities_list()[0])


def test_update_padded():
    vol = _vol(batch=2, voxel_size=0.3, volume_translation=(1.0, 0.0, 0.0))
    new_d, new_f = torch.rand(2, 2, 4, 5, 6), torch.rand(2, 5, 4, 5, 6)
    new = vol.update_padded(new_d, new_f)
    assert new.densities() is new_d and new.features() is new_f
    assert torch.equal(new.get_grid_sizes(), vol.get_grid_sizes())
    pts = torch.randn(2, 3, 3)
    assert_close(new.world_to_local_coords(pts), vol.world_to_local_coords(pts))
    assert vol.update_padded(new_d).features() is None
    assert vol.densities() is not new_d  # the original is unchanged


def test_update_padded_keeps_list_grid_sizes():
    vol = Volumes([torch.rand(1, 2, 3, 4), torch.rand(1, 4, 4, 4)])
    new = vol.update_padded(torch.rand(2, 1, 4, 4, 4))
    assert new.get_grid_sizes().tolist() == [[2, 3, 4], [4, 4, 4]]


def test_clone_copies_every_tensor():
    vs = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    vol = _vol(voxel_size=vs)
    copy = vol.clone()
    assert copy is not vol
    for a, b in ((copy.densities(), vol.densities()), (copy.features(), vol.features())):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    pts = torch.randn(2, 3, 3)
    assert_close(copy.world_to_local_coords(pts), vol.world_to_local_coords(pts))
    copy.world_to_local_coords(pts).sum().backward()
    assert vs.grad is not None  # clone stays differentiable


def test_to_same_device():
    vol = _vol()
    assert vol.to("cpu") is vol and vol.cpu() is vol
    assert vol.to(torch.device("cpu")) is vol
    copy = vol.to("cpu", copy=True)
    assert copy is not vol and copy.densities().data_ptr() != vol.densities().data_ptr()


@needs_cuda
def test_to_cuda_and_back():
    vol = _vol(voxel_size=(0.1, 0.2, 0.3), volume_translation=(1.0, 2.0, 3.0))
    gpu = vol.cuda()
    assert gpu.device.type == "cuda" and gpu.densities().is_cuda and gpu.get_grid_sizes().is_cuda
    pts = torch.randn(2, 3, 3)
    assert_close(gpu.world_to_local_coords(pts.cuda()).cpu(), vol.world_to_local_coords(pts))
    assert gpu.to("cuda") is gpu
    assert gpu.cpu().device.type == "cpu"


@needs_cuda
def test_no_host_sync_in_hot_path():
    dens = torch.rand(1, 4, 4, 4, device="cuda")[None].expand(3, -1, -1, -1, -1)
    vs = torch.tensor(0.1, device="cuda")
    pts = torch.randn(3, 100, 3, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        vol = Volumes(dens, dens, voxel_size=vs, volume_translation=(0.1, 0.2, 0.3))
        vol.local_to_world_coords(vol.world_to_local_coords(pts))
        vol.get_coord_grid()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --------------------------------------------------------------------------- gradients


def _gradcheck_inputs(batch=2):
    gen = torch.Generator().manual_seed(3)
    pts = torch.randn(batch, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    vs = (torch.rand(batch, 3, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    tr = torch.randn(batch, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    dens = torch.zeros(batch, 1, 3, 4, 5, dtype=torch.float64)
    return dens, pts, vs, tr


@pytest.mark.parametrize("method", ["world_to_local_coords", "local_to_world_coords"])
def test_gradcheck_coordinate_conversions(method):
    dens, pts, vs, tr = _gradcheck_inputs()

    def fn(pts, vs, tr):
        return getattr(Volumes(dens, voxel_size=vs, volume_translation=tr), method)(pts)

    assert torch.autograd.gradcheck(fn, (pts, vs, tr))


def test_gradcheck_per_volume_scalar_voxel_size_and_coord_grid():
    dens, _, _, tr = _gradcheck_inputs()
    vs = torch.tensor([[0.7], [1.3]], dtype=torch.float64, requires_grad=True)

    def fn(vs, tr):
        return Volumes(dens, voxel_size=vs, volume_translation=tr).get_coord_grid()

    assert torch.autograd.gradcheck(fn, (vs, tr))


def test_repeated_backward_through_one_volume():
    # The scale is rebuilt on every call, so one Volumes serves many optimisation steps.
    vs = torch.tensor([0.5, 0.5, 0.5], requires_grad=True)
    vol = _vol(voxel_size=vs)
    for _ in range(2):
        vol.world_to_local_coords(torch.randn(2, 3, 3)).sum().backward()
    assert vs.grad is not None


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", case_names("volumes"))
def test_fixture_volumes(case, dtype, device):
    _, inputs, outputs, _ = load_case(case)
    got, _ = run_case(case, {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()})
    assert set(got) == set(outputs)
    for key, value in got.items():
        assert_close(value, outputs[key], dtype=torch.float32, msg=f"{case}/{key}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", case_names("volumes_list"))
def test_fixture_volumes_list(case, dtype, device):
    _, inputs, outputs, _ = load_case(case)
    got, _ = run_case(case, {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()})
    assert set(got) == set(outputs)
    for key, value in got.items():
        assert_close(value, outputs[key], dtype=torch.float32, msg=f"{case}/{key}")


# --------------------------------------------------------------------------- properties

sizes_st = st.tuples(*[st.integers(2, 6)] * 3)
xyz_st = st.tuples(*[st.floats(0.05, 3.0)] * 3)
shift_st = st.tuples(*[st.floats(-3.0, 3.0)] * 3)


@given(size=sizes_st, vs=xyz_st, tr=shift_st, batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_local_to_world_inverts_world_to_local(size, vs, tr, batch, seed):
    vol = Volumes(
        torch.zeros(batch, 1, *size, dtype=torch.float64), voxel_size=vs, volume_translation=tr
    )
    pts = 5 * torch.randn(
        batch, 6, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    assert_close(vol.local_to_world_coords(vol.world_to_local_coords(pts)), pts)
    assert_close(vol.world_to_local_coords(vol.local_to_world_coords(pts)), pts)


@given(size=sizes_st, vs=xyz_st, tr=shift_st, align_corners=st.booleans())
def test_coord_grid_corners(size, vs, tr, align_corners):
    vol = Volumes(
        torch.zeros(2, 1, *size, dtype=torch.float64),
        voxel_size=vs,
        volume_translation=tr,
        align_corners=align_corners,
    )
    local = vol.get_coord_grid(world_coordinates=False)
    xyz_sizes = torch.tensor(size[::-1], dtype=torch.float64)
    edge = torch.ones(3, dtype=torch.float64) if align_corners else 1 - 1 / xyz_sizes
    assert_close(local[:, 0, 0, 0], -edge.expand(2, 3))
    assert_close(local[:, -1, -1, -1], edge.expand(2, 3))
    world = vol.get_coord_grid(world_coordinates=True)
    assert_close(vol.world_to_local_coords(world.reshape(2, -1, 3)), local.reshape(2, -1, 3))


@given(
    batch=st.integers(1, 4),
    data=st.data(),
    size=sizes_st,
    seed=st.integers(0, 2**16),
)
def test_index_then_convert_equals_convert_then_index(batch, data, size, seed):
    gen = torch.Generator().manual_seed(seed)
    vs = torch.rand(batch, 3, generator=gen, dtype=torch.float64) + 0.1
    tr = torch.randn(batch, 3, generator=gen, dtype=torch.float64)
    vol = Volumes(torch.rand(batch, 1, *size, generator=gen, dtype=torch.float64), None, vs, tr)
    index = data.draw(st.lists(st.integers(-batch, batch - 1), max_size=5))
    pts = torch.randn(batch, 5, 3, generator=gen, dtype=torch.float64)
    sub = vol[index]
    assert_close(sub.world_to_local_coords(pts[index]), vol.world_to_local_coords(pts)[index])
    assert_close(sub.local_to_world_coords(pts[index]), vol.local_to_world_coords(pts)[index])
    assert_close(sub.get_coord_grid(), vol.get_coord_grid()[index])


# --------------------------------------------------------------------------- bad input


def test_densities_wrong_type():
    with pytest.raises(TypeError, match=r"densities: expected a .* tensor or a list"):
        Volumes("not a volume")


def test_densities_wrong_rank():
    with pytest.raises(ValueError, match=r"densities: expected shape \(B, C, D, H, W\)"):
        Volumes(torch.zeros(1, 4, 4, 4))


def test_densities_not_floating():
    with pytest.raises(ValueError, match="densities: expected a floating-point tensor"):
        Volumes(torch.zeros(1, 1, 4, 4, 4, dtype=torch.long))


def test_densities_empty_list():
    with pytest.raises(ValueError, match="densities: expected a non-empty list"):
        Volumes([])


def test_densities_list_wrong_rank():
    with pytest.raises(ValueError, match=r"densities\[1\]: expected shape \(C, D, H, W\)"):
        Volumes([torch.zeros(1, 3, 3, 3), torch.zeros(1, 1, 3, 3, 3)])


def test_densities_list_not_floating():
    with pytest.raises(TypeError, match=r"densities\[0\]: expected a floating-point tensor"):
        Volumes([torch.zeros(1, 3, 3, 3, dtype=torch.int32)])


def test_densities_list_not_tensor():
    with pytest.raises(ValueError, match=r"densities\[0\]: expected a floating-point tensor"):
        Volumes([[1.0, 2.0]])


def test_densities_list_different_channels():
    with pytest.raises(
        ValueError, match="densities: expected every grid to have the same number of channels"
    ):
        Volumes([torch.zeros(1, 3, 3, 3), torch.zeros(2, 3, 3, 3)])


def test_densities_list_different_dtypes():
    with pytest.raises(ValueError, match="densities: expected every grid to share one dtype"):
        Volumes([torch.zeros(1, 3, 3, 3), torch.zeros(1, 3, 3, 3, dtype=torch.float64)])


@pytest.mark.parametrize("value", [None, 1.0, "densities"])
def test_densities_not_a_tensor_is_a_value_error_like_pytorch3d(value):
    with pytest.raises(ValueError, match="densities must be either a list or a tensor"):
        Volumes(value)


def test_features_batch_mismatch():
    with pytest.raises(ValueError, match="features: expected the batch size and grid sizes"):
        Volumes(torch.zeros(2, 1, 3, 3, 3), torch.zeros(3, 1, 3, 3, 3))


def test_features_grid_mismatch():
    with pytest.raises(ValueError, match="features: expected the batch size and grid sizes"):
        Volumes(torch.zeros(2, 1, 3, 3, 3), torch.zeros(2, 1, 3, 3, 4))


def test_features_list_length_mismatch():
    with pytest.raises(ValueError, match="features: expected the batch size and grid sizes"):
        Volumes([torch.zeros(1, 3, 3, 3)] * 2, [torch.zeros(2, 3, 3, 3)])


def test_features_list_sizes_mismatch():
    with pytest.raises(ValueError, match="features: expected the batch size and grid sizes"):
        Volumes(
            [torch.zeros(1, 3, 3, 3), torch.zeros(1, 2, 2, 2)],
            [torch.zeros(2, 2, 2, 2), torch.zeros(2, 3, 3, 3)],
        )


def test_features_tensor_against_list_densities():
    with pytest.raises(ValueError, match="features: expected the batch size and grid sizes"):
        Volumes([torch.zeros(1, 3, 3, 3), torch.zeros(1, 2, 2, 2)], torch.zeros(2, 2, 3, 3, 3))


def test_features_dtype_mismatch():
    with pytest.raises(ValueError, match=r"features: expected dtype torch.float32"):
        Volumes(torch.zeros(1, 1, 3, 3, 3), torch.zeros(1, 2, 3, 3, 3, dtype=torch.float64))


def test_features_not_floating():
    with pytest.raises(TypeError, match="features: expected a floating-point tensor"):
        Volumes(torch.zeros(1, 1, 3, 3, 3), torch.zeros(1, 2, 3, 3, 3, dtype=torch.uint8))


@needs_cuda
def test_features_device_mismatch():
    with pytest.raises(ValueError, match=r"features: expected dtype .* on cpu"):
        Volumes(torch.zeros(1, 1, 3, 3, 3), torch.zeros(1, 2, 3, 3, 3, device="cuda"))


@pytest.mark.parametrize(
    "voxel_size",
    [float("nan"), float("inf"), (0.1, float("nan"), 0.1), torch.tensor([[1.0], [float("inf")]])],
    ids=["nan", "inf", "tuple-nan", "per-volume-inf"],
)
def test_voxel_size_not_finite(voxel_size):
    with pytest.raises(ValueError, match="voxel_size: expected finite values"):
        _vol(batch=2, voxel_size=voxel_size)


def test_voxel_size_wrong_length():
    with pytest.raises(ValueError, match=r"voxel_size has to be .* got a sequence of length 2"):
        _vol(voxel_size=(1.0, 1.0))


@pytest.mark.parametrize("shape", [(2,), (4,), (2, 2), (1, 3, 1), (2, 3, 3), (3, 1)])
def test_voxel_size_wrong_tensor_shape(shape):
    with pytest.raises(ValueError, match=r"voxel_size has to be .* got shape"):
        _vol(batch=2, voxel_size=torch.ones(shape))


@pytest.mark.parametrize(
    "voxel_size", [None, "1.0", True, torch.tensor([True, True, True]), (1.0, "a", 1.0)]
)
def test_voxel_size_wrong_type_is_a_value_error_like_pytorch3d(voxel_size):
    with pytest.raises(ValueError, match="voxel_size has to be either") as info:
        _vol(voxel_size=voxel_size)
    assert isinstance(info.value, TypeError)


def test_voxel_size_batch_does_not_broadcast():
    with pytest.raises(ValueError, match=r"voxel_size has to be .* for 3 volumes"):
        _vol(batch=3, voxel_size=torch.ones(2, 3))


def test_translation_batch_does_not_broadcast():
    with pytest.raises(ValueError, match=r"volume_translation: got shape \(3, 3\) for 2 volumes"):
        _vol(batch=2, volume_translation=torch.zeros(3, 3))


def test_translation_wrong_length():
    with pytest.raises(ValueError, match=r"volume_translation: got a sequence of length 4"):
        _vol(volume_translation=[0.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("translation", [None, {"x": 1.0}])
def test_translation_wrong_type_is_a_value_error_like_pytorch3d(translation):
    with pytest.raises(ValueError, match="`volume_translation` has to be either"):
        _vol(volume_translation=translation)


@pytest.mark.parametrize("flag", ["yes", None, 0.0])
def test_align_corners_not_a_flag(flag):
    with pytest.raises(ValueError, match="align_corners: expected a bool"):
        _vol(align_corners=flag)


@pytest.mark.parametrize(
    "method, name",
    [("world_to_local_coords", "points_3d_world"), ("local_to_world_coords", "points_3d_local")],
)
def test_points_wrong_last_dim(method, name):
    with pytest.raises(ValueError, match=rf"{name}: expected shape \(B, ..., 3\)"):
        getattr(_vol(), method)(torch.zeros(2, 5, 2))


def test_points_rank_one():
    with pytest.raises(ValueError, match=r"points_3d_world: expected shape \(B, ..., 3\)"):
        _vol().world_to_local_coords(torch.zeros(3))


def test_points_not_real():
    with pytest.raises(ValueError, match="points_3d_world: expected a real"):
        _vol().world_to_local_coords(torch.zeros(2, 5, 3, dtype=torch.bool))


def test_points_not_tensor():
    with pytest.raises(TypeError, match=r"points_3d_local: expected a torch.Tensor"):
        _vol().local_to_world_coords([[0.0, 0.0, 0.0]])


def test_points_batch_mismatch():
    with pytest.raises(ValueError, match="points_3d_world: expected a batch of 2"):
        _vol(batch=2).world_to_local_coords(torch.zeros(3, 5, 3))


@needs_cuda
def test_points_device_mismatch():
    with pytest.raises(ValueError, match="points_3d_world: expected a tensor on cpu"):
        _vol().world_to_local_coords(torch.zeros(2, 5, 3, device="cuda"))


@pytest.mark.parametrize("index", [3, -4, 100])
def test_index_int_out_of_range(index):
    with pytest.raises(IndexError, match=rf"index {index} is out of bounds .* in \[-3, 3\)"):
        _vol(batch=3)[index]


def test_index_list_out_of_range():
    with pytest.raises(IndexError, match=r"index: expected integers in \[-3, 3\), got \[5\]"):
        _vol(batch=3)[[0, 5]]


def test_index_tensor_out_of_range():
    with pytest.raises(IndexError, match=r"index: expected integers in \[-3, 3\)"):
        _vol(batch=3)[torch.tensor([0, 3])]


def test_index_mask_wrong_length():
    with pytest.raises(IndexError, match="index: expected a boolean mask of length 3"):
        _vol(batch=3)[torch.tensor([True, False])]


def test_index_bool_list_wrong_length():
    with pytest.raises(IndexError, match="index: expected a boolean mask of length 3"):
        _vol(batch=3)[[True, False]]


def test_index_tensor_2d():
    with pytest.raises(IndexError, match="index: expected a 1D tensor"):
        _vol(batch=3)[torch.tensor([[0, 1]])]


def test_index_float_tensor():
    with pytest.raises(IndexError, match="index: expected an integer or boolean tensor"):
        _vol(batch=3)[torch.tensor([0.0])]


@pytest.mark.parametrize("index", ["0", 1.0, 0.0, None])
def test_index_wrong_type_is_an_index_error_like_pytorch3d(index):
    with pytest.raises(IndexError, match="index: expected an int, slice, list or 1D tensor"):
        _vol(batch=3)[index]


def test_index_bool_counts_as_an_int_like_pytorch3d():
    vol = _vol(batch=3)
    assert torch.equal(vol[True].densities(), vol[1].densities())
    assert torch.equal(vol[False].densities(), vol[0].densities())


def test_index_list_of_non_ints():
    with pytest.raises(IndexError, match="index: expected a list of ints"):
        _vol(batch=3)[[0, 1.5]]


def test_update_padded_wrong_spatial_size():
    with pytest.raises(ValueError, match=r"new_densities: expected shape \(2, C, 4, 5, 6\)"):
        _vol(batch=2).update_padded(torch.zeros(2, 1, 4, 5, 5))


def test_update_padded_wrong_batch():
    with pytest.raises(ValueError, match=r"new_densities: expected shape \(2, C, 4, 5, 6\)"):
        _vol(batch=2).update_padded(torch.zeros(3, 1, 4, 5, 6))


def test_update_padded_wrong_rank():
    with pytest.raises(ValueError, match=r"new_densities: expected shape \(B, C, D, H, W\)"):
        _vol(batch=2).update_padded(torch.zeros(2, 4, 5, 6))


def test_update_padded_features_wrong_size():
    with pytest.raises(ValueError, match=r"new_features: expected shape \(2, C, 4, 5, 6\)"):
        _vol(batch=2).update_padded(torch.zeros(2, 1, 4, 5, 6), torch.zeros(2, 3, 4, 4, 6))


def test_update_padded_wrong_dtype():
    with pytest.raises(ValueError, match=r"new_densities: expected dtype torch.float32"):
        _vol(batch=2).update_padded(torch.zeros(2, 1, 4, 5, 6, dtype=torch.float64))


def test_update_padded_not_floating():
    with pytest.raises(TypeError, match="new_features: expected a floating-point tensor"):
        _vol(batch=2).update_padded(
            torch.zeros(2, 1, 4, 5, 6), torch.zeros(2, 1, 4, 5, 6, dtype=torch.int64)
        )

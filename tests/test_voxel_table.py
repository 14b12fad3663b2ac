"""The voxel table (voxrender/voxel_table.py): the zero-margined channel-last layout and its gradient."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICES, assert_close

from voxrender.voxel_table import PAD, margined_table


def _volumes(device, dtype, batch=2, grid=(3, 4, 5), channels=(1, 3), requires_grad=True):
    g = torch.Generator().manual_seed(0)
    return [
        torch.rand(batch, c, *grid, generator=g, dtype=torch.float64)
        .to(device=device, dtype=dtype)
        .requires_grad_(requires_grad)
        for c in channels
    ]


def _by_hand(*volumes):
    """The table as a zero-padded, permuted concatenation (plain autograd, no custom backward)."""
    lo, hi = PAD
    data = torch.cat(volumes, dim=1)  # (B, C, D, H, W)
    padded = torch.nn.functional.pad(data, (lo, hi, lo, hi, lo, hi))  # (B, C, D+3, H+3, W+3)
    return padded.permute(0, 2, 3, 4, 1).reshape(-1, data.shape[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [(1,), (4,), (1, 3)], ids=["1", "4", "1+3"])
def test_values_and_gradients_match_the_padded_concatenation(device, dtype, channels):
    volumes = _volumes(device, dtype, channels=channels)
    table = margined_table(*volumes)
    want = _by_hand(*volumes)
    assert table.shape == want.shape == (2 * 6 * 7 * 8, sum(channels))
    torch.testing.assert_close(table, want, rtol=0, atol=0)  # a copy: the same bits
    cotangent = torch.randn(table.shape, generator=torch.Generator().manual_seed(1)).to(table)
    got = torch.autograd.grad(table, volumes, cotangent)
    expected = torch.autograd.grad(want, volumes, cotangent)
    for g, w, v in zip(got, expected, volumes, strict=True):
        assert_close(g, w, kind="grad")
        # each gradient in its volume's own layout: what comes after (a sigmoid's backward,
        # the accumulation into a leaf) runs on contiguous memory
        assert g.shape == v.shape and g.is_contiguous()


def test_margins_are_zero_whatever_the_allocator_returns(monkeypatch):
    # only the margins are zeroed (the interior is written): a table allocated full of NaN must
    # still read 0 outside the grid
    original = torch.Tensor.new_empty
    monkeypatch.setattr(
        torch.Tensor, "new_empty", lambda self, *a, **k: original(self, *a, **k).fill_(torch.nan)
    )
    volumes = _volumes("cpu", torch.float64, requires_grad=False)
    table = margined_table(*volumes)
    torch.testing.assert_close(table, _by_hand(*volumes), rtol=0, atol=0)


def test_gradcheck():
    volumes = _volumes("cpu", torch.float64, batch=1, grid=(2, 2, 3))
    assert torch.autograd.gradcheck(margined_table, volumes)
    assert torch.autograd.gradgradcheck(margined_table, volumes)


def test_only_the_volumes_that_need_it_get_a_gradient():
    d, f = _volumes("cpu", torch.float64)
    d.requires_grad_(False)
    table = margined_table(d, f)
    (grad,) = torch.autograd.grad(table.sum(), [f])
    assert torch.equal(grad, torch.ones_like(f))
    assert d.grad is None


@pytest.mark.parametrize("requires_grad", [False, True])
def test_compiled_matches_eager(requires_grad):
    # two volumes through torch.compile, with and without gradients (a varargs
    # autograd.Function lost its first input when traced without them)
    torch._dynamo.reset()
    volumes = _volumes("cpu", torch.float32, requires_grad=requires_grad)
    want = margined_table(*volumes)
    got = torch.compile(margined_table, backend="aot_eager", fullgraph=True)(*volumes)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bad_volumes_raise():
    d, f = _volumes("cpu", torch.float64, requires_grad=False)
    with pytest.raises(ValueError, match=r"volumes\[1\]: expected batch 2, grid \(3, 4, 5\)"):
        margined_table(d, f[:, :, :2])
    with pytest.raises(ValueError, match=r"volumes\[1\]: .* got shape .* torch.float32"):
        margined_table(d, f.float())
    with pytest.raises(ValueError, match="volumes: expected 1 or 2 tensors, got 3"):
        margined_table(d, f, f)

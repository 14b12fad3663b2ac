"""The voxel table: a batch of voxel grids as channel-last rows, the layout every sampler reads.

A volume ``(B, C, D, H, W)`` becomes a table ``(rows, C)`` whose row
``((b * D + z) * H + y) * W + x`` holds the ``C`` values of one voxel: they share a cache line,
so reading a corner of a cell costs one miss, and a corner's row is its voxel index times the
axis strides. :func:`channel_last_table` stores the grid as it is; :func:`margined_table` adds a
margin of zero voxels (:data:`PAD`) around it, so that a trilinear corner just outside the grid
reads a stored 0 and needs no bounds check (:func:`voxrender.sample_grid`'s fast path and the
fused CPU renderer). :func:`collapse_expanded_batch` reads a volume expanded across its batch
once.

Dimension letters: ``B`` batch, ``C`` channels, ``D, H, W`` depth, height, width of the grid.
"""

from __future__ import annotations

import torch

__all__ = ["PAD", "channel_last_table", "collapse_expanded_batch", "margined_table"]

# Zero voxels stored below / above the grid on every axis. With the voxel coordinate clamped to
# [-1, S], both neighbours (floor, floor + 1) land in [-1, S + 1]: inside the margined table, and
# every neighbour outside the real grid reads a stored 0. No masks, no per-corner bounds checks.
PAD = (1, 2)


def channel_last_table(volume: torch.Tensor) -> torch.Tensor:
    """``(B, C, D, H, W)`` -> the table ``(B * D * H * W, C)``, contiguous and differentiable."""
    rows = volume.shape[0] * volume.shape[2:].numel()
    return volume.permute(0, 2, 3, 4, 1).reshape(rows, volume.shape[1]).contiguous()


def margined_table(*volumes: torch.Tensor) -> torch.Tensor:
    """``(B, C_i, D, H, W)`` volumes -> channel-last rows with a zero margin of :data:`PAD` voxels.

    The volumes' channels are laid side by side, in order (densities and features become one
    table without a concatenated copy). Differentiable: the gradient of each volume comes back
    contiguous in its own ``(B, C_i, D, H, W)`` layout, one transposing copy (elementwise
    backward passes after it, such as a sigmoid's, then run on contiguous tensors: on the table's
    channel-last strides a sigmoid's backward took twice as long, 64³).

    Returns:
        ``(B * (D + 3) * (H + 3) * (W + 3), sum C_i)``: a voxel's values share a cache line, and
        a neighbour just outside the grid reads a stored 0.
    """
    if len(volumes) not in (1, 2):
        raise ValueError(f"volumes: expected 1 or 2 tensors, got {len(volumes)}")
    # two positional tensors rather than *volumes: torch 2.13's compile traced an
    # autograd.Function's varargs without the first one when no input required grad
    return _MarginedTable.apply(volumes[0], volumes[1] if len(volumes) == 2 else None)


class _MarginedTable(torch.autograd.Function):
    """:func:`margined_table`: the table written once (margins zeroed, interior copied)."""

    @staticmethod
    def forward(ctx, first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
        volumes = (first,) if second is None else (first, second)
        batch, grid = first.shape[0], first.shape[2:]
        if second is not None and (second.shape[0], second.shape[2:], second.dtype) != (
            batch,
            grid,
            first.dtype,
        ):  # internal callers only: a mismatch is a bug
            raise ValueError(
                f"volumes[1]: expected batch {batch}, grid {tuple(grid)} and {first.dtype} as "
                f"volumes[0], got shape {tuple(second.shape)} {second.dtype}"
            )
        channels = [v.shape[1] for v in volumes]
        lo, hi = PAD
        d, h, w = (n + lo + hi for n in grid)
        table = first.new_empty(batch, d, h, w, sum(channels))  # (B, D + 3, H + 3, W + 3, C)
        for axis in (1, 2, 3):  # the margins: the two slabs of each axis
            table.narrow(axis, 0, lo).zero_()
            table.narrow(axis, table.shape[axis] - hi, hi).zero_()
        inner = table[:, lo:-hi, lo:-hi, lo:-hi]  # (B, D, H, W, C) view
        start = 0
        for volume, c in zip(volumes, channels, strict=True):
            inner[..., start : start + c] = volume.permute(0, 2, 3, 4, 1)
            start += c
        ctx.channels, ctx.table_shape = channels, table.shape
        return table.view(batch * d * h * w, table.shape[-1])  # (rows, C)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # grad: (rows, C)
        lo, hi = PAD
        inner = grad.reshape(ctx.table_shape)[:, lo:-hi, lo:-hi, lo:-hi]  # (B, D, H, W, C) view
        grads, start = [], 0
        for needed, c in zip(ctx.needs_input_grad, ctx.channels, strict=False):
            part = inner[..., start : start + c].permute(0, 4, 1, 2, 3)  # (B, C_i, D, H, W)
            grads.append(part.contiguous() if needed else None)
            start += c
        return grads[0], grads[1] if len(grads) == 2 else None


def _layout_matches(shape, stride_a, stride_b) -> bool:
    """Whether two strides address a tensor of ``shape`` identically (size-1 dims ignored)."""
    return all(n == 1 or a == b for n, a, b in zip(shape, stride_a, stride_b, strict=True))


def collapse_expanded_batch(volume: torch.Tensor) -> torch.Tensor:
    """``(B, C, D, H, W)`` volume expanded across its batch (stride 0) -> ``(1, C, D, H, W)``.

    The result shares the memory of ``volume``; gradients flow into the tensor that was expanded
    without passing through a ``(B, C, D, H, W)`` buffer. Any other volume is returned as is.
    """
    if volume.shape[0] <= 1 or volume.stride(0) != 0:
        return volume
    if not (volume.requires_grad and torch.is_grad_enabled()):
        return volume[:1]  # no graph is recorded: a plain view
    base = volume._base
    if (
        base is None
        or not base.requires_grad
        or base.dtype != volume.dtype
        or torch.compiler.is_compiling()
    ):
        return volume  # a leaf expanded and then marked requires_grad: its grad is (B, ...)
    inner, inner_stride = volume.shape[1:], volume.stride()[1:]
    if (
        base.is_contiguous()
        and base.numel() == inner.numel()
        and base.storage_offset() == volume.storage_offset()
        and _layout_matches(inner, inner_stride, torch.empty(inner, device="meta").stride())
    ):
        return base.view(1, *inner)  # the plain expand of a contiguous tensor (the tutorial's)
    # Any other view: read the same memory through its (differentiable) base.
    return base.as_strided(inner, inner_stride, volume.storage_offset()).unsqueeze(0)

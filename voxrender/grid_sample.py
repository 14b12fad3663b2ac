"""Trilinear and nearest-neighbour sampling of voxel grids, written with gathers (no ``grid_sample``).

:func:`sample_grid` reproduces ``torch.nn.functional.grid_sample`` on 5D volumes (values and
gradients, every mode, padding mode and ``align_corners``) but returns channel-last samples, reads
a volume expanded across the batch once, and never holds per-corner copies of the samples.

Dimension letters:

- ``B``: batch (of the points; the volume's batch is ``B`` or 1).
- ``C``: channels of the volume.
- ``D, H, W``: depth, height and width of the voxel grid.
- ``...``: any number of point dimensions; ``M``: all points of one call, ``B * prod(...)``.

Coordinates. ``points[..., 0]`` (``x``) runs along ``W``, ``points[..., 1]`` (``y``) along ``H`` and
``points[..., 2]`` (``z``) along ``D``. Along an axis of ``S`` voxels a normalised coordinate ``x``
becomes the voxel coordinate ``u`` (voxel ``k`` has its centre at ``u = k``)::

    align_corners=True:   u = ((x + 1) / 2) * (S - 1)     x = -1, 1 at the corner voxels' centres
    align_corners=False:  u = ((x + 1) * S - 1) / 2       x = -1, 1 at the grid's outer faces

Padding then decides what lies outside ``[0, S - 1]``:

- ``"zeros"``: ``u`` is kept; voxels outside the grid read as 0.
- ``"border"``: ``u`` is clamped to ``[0, S - 1]`` (the edge voxels extend outwards).
- ``"reflection"``: ``u`` is mirrored about the corner centres ``0, S - 1`` (``align_corners=True``)
  or the faces ``-1/2, S - 1/2`` (``False``) until it falls inside, then clamped to ``[0, S - 1]``.

Trilinear interpolation (``mode="bilinear"``, the name ``grid_sample`` uses). Per axis, with
``u0 = floor(u)``, the two neighbours ``u0, u0 + 1`` get the weights ``(u0 + 1 - u, u - u0)``; a
corner ``(k, j, i)`` of the cell weighs the product of its three axis weights and the sample is::

    out[c] = sum over k in {z0, z0+1}, j in {y0, y0+1}, i in {x0, x0+1} of
             w_z(k) * w_y(j) * w_x(i) * volume[c, k, j, i]        (0 for a corner outside)

``mode="nearest"`` reads the voxel at ``round(u)`` per axis, ties to even (0 if outside).

Gradients follow ``grid_sample``'s rules, which are *not* those of autograd through ``clamp``:
``d out / d x`` is the derivative of the formula above with ``u0`` held fixed (so at an integer
``u`` it is the one-sided difference towards ``u0 + 1``), times ``du/dx``, where ``du/dx`` is the
scale ``(S - 1) / 2`` or ``S / 2``, times 0 wherever a clamp is active *or exactly at its limit*
(``u <= 0`` or ``u >= S - 1`` after reflecting), times -1 on a mirrored stretch of a reflection.
A size-1 axis with ``align_corners=True`` and reflection maps everything to ``u = 0``. The
nearest mode has a zero gradient with respect to the points.

Implementation. The volume is read as a channel-last voxel table ``(rows, C)``
(:mod:`voxrender.voxel_table`): row ``((b * D + z) * H + y) * W + x`` holds the ``C`` values of
one voxel, which share a cache line, so a corner costs one miss. A volume expanded across its batch
is read once (:func:`~voxrender.voxel_table.collapse_expanded_batch`). Corners are gathered one at
a time with a 1D ``index_select`` on the flattened table and accumulated, weighted, into the
output ``(M, C)``; the three per-axis weight pairs are computed once per point. Trilinear sampling
with zeros padding (the renderer's default) reads a table with a margin of zero voxels instead
(:func:`~voxrender.voxel_table.margined_table`): the voxel coordinate clamped to ``[-1, S]`` keeps
every corner inside it, so there are no masks or bounds checks, and a sample is three rounds of
lerps. A custom :class:`torch.autograd.Function` saves only its inputs and the backward recomputes
corners and weights, chunk by chunk, scattering the volume's gradient back into a table of the
same layout, so beyond the output and the gradients memory stays a few ``(chunk,)`` vectors and
``(chunk, C)`` blocks: nothing of size ``(M, 8)`` or ``(M, 8, C)``. Non-finite points (NaN) read
zeros and never index out of range. It is not twice differentiable (neither is ``grid_sample`` on
5D inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ._checks import (
    broadcast_batch_sizes,
    check_choice,
    check_floating,
    check_same_device,
    check_shape,
    describe,
)
from .voxel_table import PAD, channel_last_table, collapse_expanded_batch, margined_table

__all__ = ["sample_grid"]

MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")

# Points per step of the kernels: bounds the temporaries to a few (CHUNK,) vectors and (CHUNK, C)
# blocks. Small on the CPU (cache-resident; measured best), large on accelerators (few launches).
_CPU_CHUNK = 1 << 16
_DEVICE_CHUNK = 1 << 22


@dataclass(frozen=True)
class _Plan:
    """Everything about one call that is not a tensor."""

    grid: tuple[int, int, int]  # (D, H, W)
    batched: bool  # one volume per batch element (else one volume shared by all)
    points_per_batch: int
    mode: str
    padding_mode: str
    align_corners: bool
    index_dtype: torch.dtype  # int32 gathers faster; scatter_add_ wants int64
    padded: bool = False  # the table holds the grid with a zero margin (see PAD)

    @property
    def table_grid(self) -> tuple[int, int, int]:
        """``(D, H, W)`` of the grid as stored in the table (with its margin when padded)."""
        if not self.padded:
            return self.grid
        return tuple(n + PAD[0] + PAD[1] for n in self.grid)

    @property
    def strides(self) -> tuple[int, int, int]:
        """Row strides of the z, y, x axes in a flattened ``(D, H, W)`` table grid."""
        _, h, w = self.table_grid
        return h * w, w, 1

    def batch_rows(self, start: int, stop: int, device: torch.device) -> torch.Tensor | int:
        """First row of each point's own volume ``(stop - start,)``, or 0 for a shared volume."""
        if not self.batched:
            return 0
        point = torch.arange(start, stop, device=device, dtype=self.index_dtype)
        batch = torch.div(point, self.points_per_batch, rounding_mode="floor")
        return batch * math.prod(self.table_grid)


# --------------------------------------------------------------------------------------------
# Normalised coordinate -> voxel coordinate (and grid_sample's d voxel / d normalised)
# --------------------------------------------------------------------------------------------


def _unnormalize(x: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Normalised coordinates ``(N,)`` -> voxel coordinates ``(N,)``, ``grid_sample``'s rounding."""
    if align_corners:
        return ((x + 1) / 2) * (size - 1)
    return ((x + 1) * size - 1) / 2


def _reflect(
    u: torch.Tensor, twice_low: int, twice_high: int
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Mirror ``u`` into ``[twice_low / 2, twice_high / 2]``; also the derivative (+1 or -1)."""
    if twice_low == twice_high:
        return torch.zeros_like(u), 0.0
    low = twice_low / 2
    span = (twice_high - twice_low) / 2
    shifted = u - low
    dist = shifted.abs()
    extra = torch.fmod(dist, span)
    # A 0-dim divisor on the device: a true division (never a multiply by 1 / span).
    flips = torch.floor(dist / torch.full((), span, dtype=u.dtype, device=u.device))
    odd = torch.fmod(flips, 2) != 0
    out = torch.where(odd, (span - extra) + low, extra + low)
    sign = torch.where(shifted < 0, -1.0, 1.0).to(u.dtype)
    return out, torch.where(odd, -sign, sign)


def _source_coords(
    x: torch.Tensor, size: int, padding_mode: str, align_corners: bool, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Normalised coordinates ``(N,)`` -> padded voxel coordinates ``(N,)`` and ``du/dx``.

    ``du/dx`` (a float or an ``(N,)`` tensor) is ``grid_sample``'s: clamping contributes 0 at and
    beyond its limits. It is only computed when ``with_grad`` (else 0.0 is returned).
    """
    u = _unnormalize(x, size, align_corners)
    scale = (size - 1) / 2 if align_corners else size / 2
    if padding_mode == "zeros":
        return u, scale
    grad: torch.Tensor | float = scale
    if padding_mode == "reflection":
        bounds = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        u, reflect_grad = _reflect(u, *bounds)
        if with_grad:
            grad = reflect_grad * scale
    if with_grad:
        grad = ((u > 0) & (u < size - 1)).to(u.dtype) * grad  # the clamp's 0 at its limits
    return u.clamp(0, size - 1), (grad if with_grad else 0.0)


def _voxel_coords(points: torch.Tensor, plan: _Plan, with_grad: bool) -> tuple[list, list]:
    """Points ``(N, 3)`` -> per axis (z, y, x) voxel coordinates ``(N,)`` and their ``du/dx``."""
    coords, grads = [], []
    for axis, size in zip((2, 1, 0), plan.grid, strict=True):  # z -> D, y -> H, x -> W
        u, g = _source_coords(
            points[:, axis], size, plan.padding_mode, plan.align_corners, with_grad
        )
        coords.append(u)
        grads.append(g)
    return coords, grads


# --------------------------------------------------------------------------------------------
# Voxel coordinates -> corner rows and weights
# --------------------------------------------------------------------------------------------


def _to_rows(index: torch.Tensor, size: int, stride: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer-valued float indices ``(N,)`` along one axis -> in-range row offsets ``(N,)``."""
    # Clamp as floats (huge values) and again as integers (NaN converts to anything).
    clamped = index.clamp(0, size - 1).to(dtype).clamp_(0, size - 1)
    return clamped * stride if stride != 1 else clamped


def _linear_axis(u: torch.Tensor, size: int, stride: int, dtype: torch.dtype) -> tuple:
    """Voxel coordinates ``(N,)`` along one axis -> its two neighbours (low, high).

    Returns:
        ``(rows, weights, inside)``, each a (low, high) pair of ``(N,)`` tensors: row offsets
        ``index * stride`` clamped into the grid, interpolation weights (0 for a neighbour
        outside the grid) and whether the neighbour is inside.
    """
    low = torch.floor(u)
    high = low + 1
    inside = ((low >= 0) & (low <= size - 1), (high >= 0) & (high <= size - 1))
    weights = (torch.where(inside[0], high - u, 0.0), torch.where(inside[1], u - low, 0.0))
    rows = (_to_rows(low, size, stride, dtype), _to_rows(high, size, stride, dtype))
    return rows, weights, inside


def _linear_axes(points: torch.Tensor, plan: _Plan, with_grad: bool) -> tuple[list, list]:
    """Points ``(N, 3)`` -> :func:`_linear_axis` of the z, y, x axes, and the three ``du/dx``."""
    coords, dudx = _voxel_coords(points, plan, with_grad)
    axes = [
        _linear_axis(u, size, stride, plan.index_dtype)
        for u, size, stride in zip(coords, plan.grid, plan.strides, strict=True)
    ]
    return axes, dudx


def _nearest_rows(points: torch.Tensor, base, plan: _Plan) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(N, 3)`` -> the nearest voxel's row ``(N,)`` and whether it is inside ``(N,)``."""
    coords, _ = _voxel_coords(points, plan, False)
    rows, inside = base, True
    for u, size, stride in zip(coords, plan.grid, plan.strides, strict=True):
        nearest = torch.round(u)  # ties to even, like grid_sample's std::nearbyint
        rows = rows + _to_rows(nearest, size, stride, plan.index_dtype)
        inside = (nearest >= 0) & (nearest <= size - 1) & inside
    return rows, inside


# --------------------------------------------------------------------------------------------
# Kernels on one chunk of points: table (rows, C), points (N, 3), base rows (N,) or 0
# --------------------------------------------------------------------------------------------


def _flat_indices(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``(N,)`` of a channel-last ``table (R, C)`` -> flat indices ``(N * C,)``."""
    channels = table.shape[1]
    if channels == 1:
        return rows
    lanes = torch.arange(channels, device=rows.device, dtype=rows.dtype)
    return (rows[:, None] * channels + lanes).reshape(-1)  # (N * C,)


def _gather(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table (R, C)`` read at ``rows (N,)`` -> ``(N, C)``.

    One 1D gather over the flattened table: a row's channels share a cache line, and
    ``index_select`` along dim 0 of a 2D tensor with narrow rows takes a per-index slow path on
    the CPU.
    """
    flat = table.view(-1).index_select(0, _flat_indices(table, rows))
    return flat.view(rows.shape[0], table.shape[1])


def _scatter_add(grad_table: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``grad_table (R, C)[rows] += values (N, C)``, as one 1D ``scatter_add_``.

    ``scatter_add_`` rather than ``index_add_``: the same serial sums in the same order (so the
    same result), about a third faster on the CPU for 1D float tensors.
    """
    grad_table.view(-1).scatter_add_(0, _flat_indices(grad_table, rows), values.reshape(-1))


def _trilinear_forward(table, points, base, plan: _Plan, out: torch.Tensor) -> None:
    """Write trilinear samples at ``points (N, 3)`` into ``out (N, C)``, corner by corner."""
    ((oz, wz, _), (oy, wy, _), (ox, wx, _)), _ = _linear_axes(points, plan, False)
    out.zero_()
    for k in (0, 1):
        row_z = oz[k] + base
        for j in (0, 1):
            row_zy = row_z + oy[j]
            w_zy = wz[k] * wy[j]
            for i in (0, 1):
                values = _gather(table, row_zy + ox[i])  # (N, C)
                out.addcmul_(values, (w_zy * wx[i])[:, None])


def _trilinear_backward(table, points, base, plan: _Plan, grad_out, grad_table):
    """Backward of :func:`_trilinear_forward` for ``grad_out (N, C)``.

    Adds the volume's gradient into ``grad_table (rows, C)`` when given. Returns the points'
    gradient ``(N, 3)`` when ``table`` is given (else None): the trilinear formula differentiated
    with the cell held fixed, one axis at a time, times grid_sample's ``du/dx``.
    """
    want_points = table is not None
    ((oz, wz, mz), (oy, wy, my), (ox, wx, mx)), dudx = _linear_axes(points, plan, want_points)

    def signed(inside, high, value):  # d weight / du of a neighbour is -1 (low) or +1 (high)
        return torch.where(inside, value if high else -value, 0.0)

    g_z = g_y = g_x = 0.0
    for k in (0, 1):
        row_z = oz[k] + base
        f_z = 0.0  # sum over y, x of w_y * w_x * <corner, grad_out>
        for j in (0, 1):
            row_zy = row_z + oy[j]
            w_zy = wz[k] * wy[j]
            e_zy = d_x = 0.0  # sums over x of w_x * <corner, grad_out> and of its d / du_x
            for i in (0, 1):
                rows = row_zy + ox[i]
                if grad_table is not None:
                    _scatter_add(grad_table, rows, grad_out * (w_zy * wx[i])[:, None])
                if want_points:
                    dot = (_gather(table, rows) * grad_out).sum(1)  # (N,)
                    e_zy = e_zy + wx[i] * dot
                    d_x = d_x + signed(mx[i], i, dot)
            if want_points:
                g_x = g_x + w_zy * d_x
                g_y = g_y + wz[k] * signed(my[j], j, e_zy)
                f_z = f_z + wy[j] * e_zy
        if want_points:
            g_z = g_z + signed(mz[k], k, f_z)
    if not want_points:
        return None
    return torch.stack((g_x * dudx[2], g_y * dudx[1], g_z * dudx[0]), dim=-1)  # (N, 3) x, y, z


def _nearest_forward(table, points, base, plan: _Plan, out: torch.Tensor) -> None:
    """Write the nearest voxels' values at ``points (N, 3)`` into ``out (N, C)``."""
    rows, inside = _nearest_rows(points, base, plan)
    torch.mul(_gather(table, rows), inside[:, None], out=out)


def _nearest_backward(table, points, base, plan: _Plan, grad_out, grad_table):
    """Backward of :func:`_nearest_forward`; the points' gradient is 0, as in grid_sample."""
    if grad_table is not None:
        rows, inside = _nearest_rows(points, base, plan)
        _scatter_add(grad_table, rows, grad_out * inside[:, None])
    return None if table is None else torch.zeros_like(points)


# --------------------------------------------------------------------------------------------
# Fast path: trilinear with zeros padding (the renderer's default) on a zero-margined table
# --------------------------------------------------------------------------------------------


def _padded_axes(points: torch.Tensor, plan: _Plan) -> tuple[list, list, list]:
    """Points ``(N, 3)`` -> per axis (z, y, x): floor row offsets, fractions, inside-margin mask.

    Returns:
        ``(rows, fractions, valid)``: ``rows`` the integer floor times the axis stride ``(N,)``
        (int64), ``fractions`` ``u - floor(u)`` ``(N, 1)``, ``valid`` whether ``u >= -1`` (else
        the clamp moved the point: its gradient is 0; also False for NaN).
    """
    rows, fractions, valid = [], [], []
    for axis, size, stride in zip((2, 1, 0), plan.grid, plan.strides, strict=True):
        u = _unnormalize(points[:, axis], size, plan.align_corners)  # (N,)
        inside = u >= -1
        u = torch.where(inside, u, -1.0).clamp_(max=size)  # NaN -> -1: reads zeros
        low = torch.floor(u)
        fractions.append((u - low)[:, None])
        index = low.to(torch.int64)
        rows.append(index * stride if stride != 1 else index)
        valid.append(inside)
    return rows, fractions, valid


def _cell_index(table, rz, ry, rx, base, margin: int) -> torch.Tensor:
    """Flat index ``(N * C,)`` of each cell's low corner in the margined table (all >= 0)."""
    rows = rz.add_(ry).add_(rx).add_(margin)
    if not isinstance(base, int):
        rows.add_(base)
    return _flat_indices(table, rows)


def _padded_corners(table: torch.Tensor, points: torch.Tensor, base, plan: _Plan):
    """The 8 corner values ``(N, C)`` of each point's cell, keyed (k, j, i) along (z, y, x).

    All corners share one flat index: corner ``(k, j, i)`` reads the flat table shifted by its
    row offset, so only one index tensor is built per chunk.
    """
    (rz, ry, rx), fractions, valid = _padded_axes(points, plan)
    sz, sy, _ = plan.strides
    margin = PAD[0] * (sz + sy + 1)  # row of voxel (0, 0, 0) in the table
    index = _cell_index(table, rz, ry, rx, base, margin)  # (N * C,)
    flat, channels = table.view(-1), table.shape[1]
    corners = {}
    for k in (0, 1):
        for j in (0, 1):
            for i in (0, 1):
                start = (k * sz + j * sy + i) * channels
                corners[k, j, i] = flat[start:].index_select(0, index).view(len(points), channels)
    return corners, fractions, valid, index


def _padded_forward(table, points, base, plan: _Plan, out: torch.Tensor) -> None:
    """Trilinear samples ``(N, C)`` as three rounds of lerps (x, then y, then z)."""
    c, (fz, fy, fx), _, _ = _padded_corners(table, points, base, plan)
    a = {(k, j): torch.lerp(c[k, j, 0], c[k, j, 1], fx) for k in (0, 1) for j in (0, 1)}
    b = [torch.lerp(a[k, 0], a[k, 1], fy) for k in (0, 1)]
    torch.lerp(b[0], b[1], fz, out=out)


def _padded_backward(table, points, base, plan: _Plan, grad_out, grad_table):
    """Backward of :func:`_padded_forward`: the table's gradient (scatter) and the points'."""
    want_points = table is not None
    sz, sy, _ = plan.strides
    if want_points:
        c, (fz, fy, fx), valid, index = _padded_corners(table, points, base, plan)
    else:
        (rz, ry, rx), (fz, fy, fx), valid = _padded_axes(points, plan)
        index = _cell_index(grad_table, rz, ry, rx, base, PAD[0] * (sz + sy + 1))
    if grad_table is not None:
        flat, channels = grad_table.view(-1), grad_table.shape[1]
        g_z1 = grad_out * fz
        for k, g_z in ((0, grad_out - g_z1), (1, g_z1)):
            g_zy1 = g_z * fy
            for j, g_zy in ((0, g_z - g_zy1), (1, g_zy1)):
                g_zyx1 = g_zy * fx
                for i, g in ((0, g_zy - g_zyx1), (1, g_zyx1)):
                    start = (k * sz + j * sy + i) * channels
                    flat[start:].scatter_add_(0, index, g.reshape(-1))  # see _scatter_add
    if not want_points:
        return None
    a = {(k, j): torch.lerp(c[k, j, 0], c[k, j, 1], fx) for k in (0, 1) for j in (0, 1)}
    da = {(k, j): c[k, j, 1] - c[k, j, 0] for k in (0, 1) for j in (0, 1)}
    b = [torch.lerp(a[k, 0], a[k, 1], fy) for k in (0, 1)]
    d_z = ((b[1] - b[0]) * grad_out).sum(1)  # (N,)
    d_y = (torch.lerp(a[0, 1] - a[0, 0], a[1, 1] - a[1, 0], fz) * grad_out).sum(1)
    d_x = (
        torch.lerp(torch.lerp(da[0, 0], da[0, 1], fy), torch.lerp(da[1, 0], da[1, 1], fy), fz)
        * grad_out
    ).sum(1)
    grads = []
    for d, size, ok in zip((d_x, d_y, d_z), plan.grid[::-1], valid[::-1], strict=True):
        scale = (size - 1) / 2 if plan.align_corners else size / 2
        grads.append(torch.where(ok, d * scale, 0.0))
    return torch.stack(grads, dim=-1)  # (N, 3) x, y, z


_KERNELS = {
    "bilinear": (_trilinear_forward, _trilinear_backward),
    "nearest": (_nearest_forward, _nearest_backward),
    "bilinear-padded": (_padded_forward, _padded_backward),
}


def _kernel_name(plan: _Plan) -> str:
    return "bilinear-padded" if plan.padded else plan.mode


def _chunks(n: int, device: torch.device):
    if torch.compiler.is_compiling():  # one traced step: a loop would be unrolled into the graph
        yield 0, n
        return
    step = _CPU_CHUNK if device.type == "cpu" else _DEVICE_CHUNK
    for start in range(0, n, step):
        yield start, min(start + step, n)


class _SampleTable(torch.autograd.Function):
    """Channel-last voxel table ``(rows, C)`` and points ``(M, 3)`` -> samples ``(M, C)``.

    Saves only its inputs; the backward recomputes corners and weights chunk by chunk.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, points: torch.Tensor, plan: _Plan) -> torch.Tensor:
        forward_kernel = _KERNELS[_kernel_name(plan)][0]
        out = table.new_empty(points.shape[0], table.shape[1])  # (M, C)
        for start, stop in _chunks(points.shape[0], points.device):
            base = plan.batch_rows(start, stop, points.device)
            forward_kernel(table, points[start:stop], base, plan, out[start:stop])
        ctx.save_for_backward(table, points)
        ctx.plan = plan
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        table, points = ctx.saved_tensors
        plan = replace(ctx.plan, index_dtype=torch.int64)
        want_table, want_points = ctx.needs_input_grad[:2]
        backward_kernel = _KERNELS[_kernel_name(plan)][1]
        grad_out = grad_out.contiguous()  # (M, C)
        grad_table = torch.zeros_like(table) if want_table else None
        grad_points = torch.empty_like(points) if want_points else None
        for start, stop in _chunks(points.shape[0], points.device):
            base = plan.batch_rows(start, stop, points.device)
            grad = backward_kernel(
                table if want_points else None,
                points[start:stop],
                base,
                plan,
                grad_out[start:stop],
                grad_table,
            )
            if want_points:
                grad_points[start:stop] = grad
        return grad_table, grad_points, None


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def sample_grid(
    volume: torch.Tensor,
    points: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """Sample a batch of voxel grids at normalised points, channel-last.

    The same numbers (and gradients) as ``grid_sample(volume, points.view(B, -1, 1, 1, 3), mode,
    padding_mode, align_corners)`` moved channel-last, computed without ``grid_sample``. See the
    module docstring for the coordinate conventions and the formulas.

    Args:
        volume: voxel grids ``(B, C, D, H, W)`` or ``(1, C, D, H, W)`` (shared by every batch
            element). A volume expanded across its batch (stride 0, e.g.
            ``v[None].expand(B, ...)``) is read once and its gradient reaches ``v`` without a
            ``(B, ...)`` buffer.
        points: normalised points ``(B, ..., 3)`` or ``(1, ..., 3)``, ``(x, y, z)`` along
            ``(W, H, D)``, same dtype and device as ``volume``.
        mode: ``"bilinear"`` (trilinear) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: whether -1 and 1 are the centres of the corner voxels (True) or the
            outer faces of the grid (False).

    Returns:
        Samples ``(B, ..., C)``.

    Raises:
        TypeError: a non-tensor, non-floating or mismatched dtype, or a non-bool align_corners.
        ValueError: a bad shape, empty grid, batch sizes other than 1 or B, another device, or
            an unknown mode / padding_mode.
    """
    check_floating(volume, "volume")
    check_floating(points, "points")
    check_shape(volume, "volume", ndim=5, spec="(B, C, D, H, W)")
    check_shape(points, "points", min_ndim=2, last=(3,), spec="(B, ..., 3)")
    if points.dtype != volume.dtype:
        raise TypeError(
            f"points: expected the volume's dtype {volume.dtype}, got dtype {points.dtype}"
        )
    check_same_device("points", points, volume.device)
    if min(volume.shape[2:]) == 0:
        raise ValueError(
            f"volume: expected a grid with D, H, W >= 1, got shape {tuple(volume.shape)}"
        )
    check_choice(mode, "mode", MODES)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners: expected a bool, got {describe(align_corners)}")
    batch = broadcast_batch_sizes({"volume": volume.shape[0], "points": points.shape[0]})

    volume = collapse_expanded_batch(volume)  # (B or 1, C, D, H, W)
    channels = volume.shape[1]
    # Channel-last: the C values of a voxel share a cache line, so a corner costs one miss.
    padded = mode == "bilinear" and padding_mode == "zeros"
    if padded:  # a zero margin replaces every bounds check (see _padded_axes)
        table = margined_table(volume)  # (B*(D+3)*(H+3)*(W+3), C)
    else:
        table = channel_last_table(volume)  # (B*D*H*W, C)
    rows = table.shape[0]
    point_shape = (batch, *points.shape[1:-1])
    flat_points = points.expand(*point_shape, 3).reshape(-1, 3)  # (M, 3)
    plan = _Plan(
        grid=tuple(volume.shape[2:]),
        batched=volume.shape[0] > 1,
        points_per_batch=math.prod(point_shape[1:]),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=align_corners,
        index_dtype=torch.int32 if rows < 2**31 else torch.int64,
        padded=padded,
    )
    out = _SampleTable.apply(table, flat_points, plan)  # (M, C)
    return out.view(*point_shape, channels)

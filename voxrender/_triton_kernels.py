"""Triton kernels of the fused render (imported only when triton is; see voxrender.triton_render).

Whether they run compiled (CUDA) or in triton's interpreter (CPU tensors) is fixed when this
module is imported: ``TRITON_INTERPRET=1`` must be set before that (``INTERPRETED`` says which).

Dimension letters: ``R`` rays, ``P`` points per ray, ``C`` table channels (``CP`` padded to a
power of two), ``BR`` rays per program. Corner ``k = 4 kz + 2 ky + kx``.

Each ray ``r`` visits only its samples ``[first_r, stop_r)`` (``first_ptr``, ``stop_ptr``, from
voxrender.triton_render.sample_ranges); a program loops from its rays' smallest ``first`` to
their largest ``stop``, each ray masked to its own run. The caller guarantees that every
sample outside the run reads exactly zero (outside the volume's box): skipping it is exact.
A sample in front of the run still has ``x = (1 + eps) - 0 = 1 + eps`` in the transmittance,
which the kernels multiply in without visiting it (``1 + eps`` once per such sample, in order).
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton import knobs

INTERPRETED = bool(knobs.runtime.interpret)


@triton.jit
def _sample_point(
    table_ptr, ax, ay, az, bx, by, bz, len_ptr, rays, ray_ok, base, j, chans,
    P: tl.constexpr, C: tl.constexpr, GX: tl.constexpr, GY: tl.constexpr, GZ: tl.constexpr,
    DENSITY_ONLY: tl.constexpr,
):  # fmt: skip
    """Point ``j`` of each ray of the block: its sample, cell row and trilinear factors.

    Returns ``value (BR, CP)`` (only channel 0 when DENSITY_ONLY), ``row (BR,)`` the cell's low
    corner's table row (with ``base``), ``inside (BR,)`` whether any corner lies in the grid,
    and the fractions ``fx, fy, fz (BR,)``. Points outside the grid's box (every corner in the
    zero margin) issue no loads: their value is the exact zero those corners hold.
    """
    t = tl.load(len_ptr + rays.to(tl.int64) * P + j, mask=ray_ok, other=0.0)
    ux = ax + t * bx
    uy = ay + t * by
    uz = az + t * bz
    ux = tl.minimum(tl.maximum(tl.where(ux != ux, 0.0, ux), 0.0), GX + 1.0)  # NaN reads zeros
    uy = tl.minimum(tl.maximum(tl.where(uy != uy, 0.0, uy), 0.0), GY + 1.0)
    uz = tl.minimum(tl.maximum(tl.where(uz != uz, 0.0, uz), 0.0), GZ + 1.0)
    inside = (ux > 0) & (ux < GX + 1.0) & (uy > 0) & (uy < GY + 1.0) & (uz > 0) & (uz < GZ + 1.0)
    inside = inside & ray_ok
    lx, ly, lz = tl.floor(ux), tl.floor(uy), tl.floor(uz)
    fx, fy, fz = ux - lx, uy - ly, uz - lz
    sy = GX + 3
    sz = (GY + 3) * sy
    row = base + lz.to(tl.int64) * sz + ly.to(tl.int64) * sy + lx.to(tl.int64)  # (BR,)
    if DENSITY_ONLY:
        lanes = chans * 0
        lane_ok = chans < 1
    else:
        lanes = chans
        lane_ok = chans < C
    m2 = inside[:, None] & lane_ok[None, :]
    ptr = table_ptr + row[:, None] * C + lanes[None, :]  # (BR, CP)
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    v = tl.load(ptr, mask=m2, other=0.0) * (gz * gy * gx)[:, None]
    v += tl.load(ptr + C, mask=m2, other=0.0) * (gz * gy * fx)[:, None]
    v += tl.load(ptr + sy * C, mask=m2, other=0.0) * (gz * fy * gx)[:, None]
    v += tl.load(ptr + (sy + 1) * C, mask=m2, other=0.0) * (gz * fy * fx)[:, None]
    v += tl.load(ptr + sz * C, mask=m2, other=0.0) * (fz * gy * gx)[:, None]
    v += tl.load(ptr + (sz + 1) * C, mask=m2, other=0.0) * (fz * gy * fx)[:, None]
    v += tl.load(ptr + (sz + sy) * C, mask=m2, other=0.0) * (fz * fy * gx)[:, None]
    v += tl.load(ptr + (sz + sy + 1) * C, mask=m2, other=0.0) * (fz * fy * fx)[:, None]
    return v, row, inside, fx, fy, fz


@triton.jit
def _load_rays(a_ptr, b_ptr, base_ptr, first_ptr, stop_ptr, rays, ray_ok, R, P: tl.constexpr,
               HAS_BASE: tl.constexpr):  # fmt: skip
    """A block of rays: base rows, runs, the program's loop bounds and the ray lines.

    Returns ``base, first, stop`` (``(BR,)``: each ray's table base row and its run
    ``[first, stop)``), ``j_lo, j_hi`` (the program's loop over the union of the runs) and
    ``ax, ay, az, bx, by, bz`` (``(BR,)``: the ray ``u = a + t b`` in voxel units).
    """
    if HAS_BASE:
        base = tl.load(base_ptr + rays, mask=ray_ok, other=0)
    else:
        base = rays.to(tl.int64) * 0
    first = tl.load(first_ptr + rays, mask=ray_ok, other=P)  # (BR,) each ray's run
    stop = tl.load(stop_ptr + rays, mask=ray_ok, other=0)
    busy = stop > first  # (BR,) rays with a run (an empty one may sit anywhere)
    j_lo = tl.min(tl.where(busy, first, P), axis=0)  # the program's loop: j_lo <= j < j_hi
    j_hi = tl.max(tl.where(busy, stop, 0), axis=0)
    ax = tl.load(a_ptr + rays, mask=ray_ok, other=0.0)  # the ray: u = a + t b (voxel units)
    ay = tl.load(a_ptr + R + rays, mask=ray_ok, other=0.0)
    az = tl.load(a_ptr + 2 * R + rays, mask=ray_ok, other=0.0)
    bx = tl.load(b_ptr + rays, mask=ray_ok, other=0.0)
    by = tl.load(b_ptr + R + rays, mask=ray_ok, other=0.0)
    bz = tl.load(b_ptr + 2 * R + rays, mask=ray_ok, other=0.0)
    return base, first, stop, j_lo, j_hi, ax, ay, az, bx, by, bz


@triton.jit
def _column(tile, cols, k):
    """Column ``k`` of a register tile ``(BR, K)`` -> ``(BR,)`` (a masked row sum)."""
    return tl.sum(tl.where(cols[None, :] == k, tile, 0.0), axis=1)


@triton.jit
def render_forward_kernel(
    table_ptr, a_ptr, b_ptr, len_ptr, base_ptr, first_ptr, stop_ptr, out_ptr, R, one_eps_ptr,
    count_ptr,
    P: tl.constexpr, C: tl.constexpr, CP: tl.constexpr, GX: tl.constexpr, GY: tl.constexpr,
    GZ: tl.constexpr, EMISSION: tl.constexpr, S: tl.constexpr, SR: tl.constexpr,
    HAS_BASE: tl.constexpr, BR: tl.constexpr, COUNT: tl.constexpr = False,
):  # fmt: skip
    """Images ``out (R, C_out)`` of a block of ``BR`` rays, marched point by point.

    EA: ``x_i = (1 + eps) - d_i``; ``T_i = prod_{j <= i - S} x_j``, kept as a running product
    fed from a ring of the last ``S`` values of ``x`` (``SR`` slots, a power of two >= S);
    features ``sum_i d_i T_i f_i``; opacity ``1 - prod_i (1 - d_i)``. AO: the opacity only.
    Points ``j`` outside each ray's ``[first, stop)`` are zeros, not visited (module docstring).
    With COUNT (tests only), ``count (3, R)`` int32 gets, per ray, the program's loop steps, the
    points visited (in the ray's run) and those that gathered from the table (inside the box).
    """
    pid = tl.program_id(0)
    rays = pid * BR + tl.arange(0, BR)
    ray_ok = rays < R
    chans = tl.arange(0, CP)
    base, first, stop, j_lo, j_hi, ax, ay, az, bx, by, bz = _load_rays(
        a_ptr, b_ptr, base_ptr, first_ptr, stop_ptr, rays, ray_ok, R, P, HAS_BASE
    )
    zero = tl.zeros([BR], dtype=table_ptr.dtype.element_ty)
    one_eps = tl.load(one_eps_ptr)  # (1 + eps), rounded to the table's dtype as torch does
    passed = zero + 1.0  # prod_i (1 - d_i)
    lit = zero + 1.0  # T
    for _j in range(0, j_lo - S + 1):  # T_{j_lo}: the x = 1 + eps of the points in front
        lit = lit * one_eps
    acc = tl.zeros([BR, CP], dtype=table_ptr.dtype.element_ty)  # sum_i w_i value_i
    slots = tl.arange(0, SR)
    # x_j of the last S points; x = 1 + eps in front of j_lo
    ring = tl.zeros([BR, SR], dtype=table_ptr.dtype.element_ty) + one_eps
    steps = tl.zeros([BR], dtype=tl.int32)  # COUNT only
    visited = tl.zeros([BR], dtype=tl.int32)
    gathered = tl.zeros([BR], dtype=tl.int32)
    for j in range(j_lo, j_hi):
        live = ray_ok & (j >= first) & (j < stop)  # (BR,) the ray's own run
        v, _row, _inside, _fx, _fy, _fz = _sample_point(
            table_ptr, ax, ay, az, bx, by, bz, len_ptr, rays, live, base, j, chans,
            P, C, GX, GY, GZ, not EMISSION,
        )  # fmt: skip
        if COUNT:
            steps += 1
            visited += live.to(tl.int32)
            gathered += _inside.to(tl.int32)
        d = tl.minimum(_column(v, chans, 0), 1.0)  # a blend of 1s may round one ulp above
        passed = passed * (1.0 - d)
        if EMISSION:
            acc += (d * lit)[:, None] * v
            ring = tl.where(slots[None, :] == j % S, (one_eps - d)[:, None], ring)
            if j + 1 - S >= 0:  # T_{j+1}: times x_{j+1-S}
                lit = lit * _column(ring, slots, (j + 1) % S)
    if COUNT:
        tl.store(count_ptr + rays, steps, mask=ray_ok)
        tl.store(count_ptr + R + rays, visited, mask=ray_ok)
        tl.store(count_ptr + 2 * R + rays, gathered, mask=ray_ok)
    opacity = 1.0 - passed
    if EMISSION:  # out[:, c - 1] = feature c, out[:, C - 1] = opacity
        res = tl.where(chans[None, :] == 0, opacity[:, None], acc)
        col = (chans + (C - 1)) % C
        tl.store(
            out_ptr + rays[:, None] * C + col[None, :],
            res,
            mask=ray_ok[:, None] & (chans < C)[None, :],
        )
    else:
        tl.store(out_ptr + rays, opacity, mask=ray_ok)


@triton.jit
def _scatter(
    grad_ptr, row, inside, fx, fy, fz, g, chans, C: tl.constexpr, GX: tl.constexpr, GY: tl.constexpr
):
    """Add ``w_k * g (BR, CP)`` into the gradient table at each of the 8 corners (atomics)."""
    sy = GX + 3
    sz = (GY + 3) * sy
    m2 = inside[:, None] & (chans < C)[None, :]
    ptr = grad_ptr + row[:, None] * C + chans[None, :]
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    tl.atomic_add(ptr, g * (gz * gy * gx)[:, None], mask=m2)
    tl.atomic_add(ptr + C, g * (gz * gy * fx)[:, None], mask=m2)
    tl.atomic_add(ptr + sy * C, g * (gz * fy * gx)[:, None], mask=m2)
    tl.atomic_add(ptr + (sy + 1) * C, g * (gz * fy * fx)[:, None], mask=m2)
    tl.atomic_add(ptr + sz * C, g * (fz * gy * gx)[:, None], mask=m2)
    tl.atomic_add(ptr + (sz + 1) * C, g * (fz * gy * fx)[:, None], mask=m2)
    tl.atomic_add(ptr + (sz + sy) * C, g * (fz * fy * gx)[:, None], mask=m2)
    tl.atomic_add(ptr + (sz + sy + 1) * C, g * (fz * fy * fx)[:, None], mask=m2)


@triton.jit
def render_backward_kernel(
    grad_out_ptr, table_ptr, a_ptr, b_ptr, len_ptr, base_ptr, first_ptr, stop_ptr, grad_ptr, R,
    one_eps_ptr,
    P: tl.constexpr, C: tl.constexpr, CP: tl.constexpr, GX: tl.constexpr, GY: tl.constexpr,
    GZ: tl.constexpr, EMISSION: tl.constexpr, S: tl.constexpr, SR: tl.constexpr,
    HAS_BASE: tl.constexpr, BR: tl.constexpr, K: tl.constexpr, W: tl.constexpr,
    NSEG: tl.constexpr, NSP: tl.constexpr,
):  # fmt: skip
    """The table's gradient for ``grad_out (R, C_out)``, division-free (see triton_render).

    Pass 1 (densities only) records the prefix products at each segment's start; then, segment
    by segment from the far end, pass 2 recomputes the segment's prefix products into register
    tiles and pass 3 walks it backwards carrying the suffix sums, adding each point's gradient
    into the table at its 8 corners. Every pass runs over ``[j_lo, j_hi)`` only, each ray masked
    to its own run: the points outside are zeros (``d = 0``, ``x = 1 + eps``), so ``A`` is 1 in
    front (``X`` the powers of ``1 + eps``, multiplied in without visiting the points), ``S`` is
    0 and ``B`` 1 behind, and their gradient would only reach the zero margin, which is dropped.
    """
    pid = tl.program_id(0)
    rays = pid * BR + tl.arange(0, BR)
    ray_ok = rays < R
    chans = tl.arange(0, CP)
    base, first, stop, j_lo, j_hi, ax, ay, az, bx, by, bz = _load_rays(
        a_ptr, b_ptr, base_ptr, first_ptr, stop_ptr, rays, ray_ok, R, P, HAS_BASE
    )
    dt = table_ptr.dtype.element_ty
    zero = tl.zeros([BR], dtype=dt)
    one_eps = tl.load(one_eps_ptr)
    if EMISSION:
        g_all = tl.load(
            grad_out_ptr + rays[:, None] * C + ((chans + (C - 1)) % C)[None, :],
            mask=ray_ok[:, None] & (chans < C)[None, :],
            other=0.0,
        )  # (BR, CP): column c holds the gradient of feature c (c >= 1), column 0 the opacity's
        g_opacity = _column(g_all, chans, 0)
        g_feat = tl.where(chans[None, :] == 0, 0.0, g_all)
    else:
        g_opacity = tl.load(grad_out_ptr + rays, mask=ray_ok, other=0.0)
        g_feat = tl.zeros([BR, CP], dtype=dt)
    segs = tl.arange(0, NSP)
    # pass 1: X_q (prod_{l < q} x_l) at q = m K - S + 1 and A_q (prod_{l < q} (1 - d_l)) at m K
    ck_x = tl.zeros([BR, NSP], dtype=dt) + 1.0
    ck_a = tl.zeros([BR, NSP], dtype=dt) + 1.0
    xprod = zero + 1.0
    aprod = zero + 1.0
    j_last = (NSEG - 1) * K
    for j in range(0, tl.minimum(j_lo, j_last)):  # in front: x = 1 + eps, A stays 1
        if (j + S - 1) % K == 0:
            ck_x = tl.where(segs[None, :] == (j + S - 1) // K, xprod[:, None], ck_x)
        xprod = xprod * one_eps
    for j in range(j_lo, tl.minimum(j_hi, j_last)):
        if (j + S - 1) % K == 0:
            ck_x = tl.where(segs[None, :] == (j + S - 1) // K, xprod[:, None], ck_x)
        if j % K == 0:
            ck_a = tl.where(segs[None, :] == j // K, aprod[:, None], ck_a)
        live = ray_ok & (j >= first) & (j < stop)
        v, _row, _inside, _fx, _fy, _fz = _sample_point(
            table_ptr, ax, ay, az, bx, by, bz, len_ptr, rays, live, base, j, chans,
            P, C, GX, GY, GZ, True,
        )  # fmt: skip
        d = tl.minimum(_column(v, chans, 0), 1.0)
        xprod = xprod * (one_eps - d)
        aprod = aprod * (1.0 - d)
    # (if j_hi < j_last these are wrong, but then the last segment is skipped and unread)
    if (j_last + S - 1) % K == 0:
        ck_x = tl.where(segs[None, :] == (j_last + S - 1) // K, xprod[:, None], ck_x)
    ck_a = tl.where(segs[None, :] == NSEG - 1, aprod[:, None], ck_a)

    wcols = tl.arange(0, W)
    kcols = tl.arange(0, K)
    slots = tl.arange(0, SR)
    ring = tl.zeros([BR, SR], dtype=dt)  # e_i = d_i (f_i . gF) of the last S points seen
    suffix = zero  # S_i
    x_next = zero + 1.0  # x_{i+1}
    a_after = zero + 1.0  # prod_{l > i} (1 - d_l)
    for mm in range(NSEG):
        m = NSEG - 1 - mm
        st = m * K
        q = st - S + 1
        lo = tl.maximum(st, j_lo)  # the segment's points in the program's loop: [lo, hi)
        hi = tl.minimum(tl.minimum(st + K, P), j_hi)
        # pass 2: the window X_j, j in [q, hi), and A_j, j in [lo, hi) (empty when lo >= hi)
        win = tl.zeros([BR, W], dtype=dt) + 1.0  # X_j = 1 for j <= 0
        atile = tl.zeros([BR, K], dtype=dt)
        xprod = _column(ck_x, segs, m)  # X_q
        aprod = _column(ck_a, segs, m)  # A_st
        begin = tl.maximum(q, 0)  # (points in front of j_lo read nothing: their loads are masked)
        for j in range(begin, tl.where(lo < hi, hi, begin)):
            win = tl.where(wcols[None, :] == j - q, xprod[:, None], win)
            if j >= st:
                atile = tl.where(kcols[None, :] == j - st, aprod[:, None], atile)
            if j < hi - 1:  # advance to X_{j+1}, A_{j+1}
                live = ray_ok & (j >= first) & (j < stop)
                v, _row, _inside, _fx, _fy, _fz = _sample_point(
                    table_ptr, ax, ay, az, bx, by, bz, len_ptr, rays, live, base, j, chans,
                    P, C, GX, GY, GZ, True,
                )  # fmt: skip
                d = tl.minimum(_column(v, chans, 0), 1.0)
                xprod = xprod * (one_eps - d)
                if j >= st:
                    aprod = aprod * (1.0 - d)
        # pass 3: points hi - 1 .. lo, backwards
        for ii in range(lo, hi):
            i = hi - 1 - (ii - lo)
            live = ray_ok & (i >= first) & (i < stop)
            v, row, inside, fx, fy, fz = _sample_point(
                table_ptr, ax, ay, az, bx, by, bz, len_ptr, rays, live, base, i, chans,
                P, C, GX, GY, GZ, not EMISSION,
            )  # fmt: skip
            d = tl.minimum(_column(v, chans, 0), 1.0)
            a_before = _column(atile, kcols, i - st)
            g_d = g_opacity * a_before * a_after
            a_after = a_after * (1.0 - d)
            if EMISSION:
                x_before = _column(win, wcols, i - q)  # X_i
                lit = _column(win, wcols, i - st)  # T_i = X_{i - S + 1}
                shade = tl.sum(v * g_feat, axis=1)  # f_i . gF
                suffix = _column(ring, slots, i % S) + x_next * suffix  # S_i
                g_d += lit * shade - x_before * suffix
                ring = tl.where(slots[None, :] == i % S, (d * shade)[:, None], ring)
                x_next = one_eps - d
                g = tl.where(chans[None, :] == 0, g_d[:, None], (d * lit)[:, None] * g_feat)
            else:
                g = tl.where(chans[None, :] == 0, g_d[:, None], 0.0)
            _scatter(grad_ptr, row, inside, fx, fy, fz, g, chans, C, GX, GY)

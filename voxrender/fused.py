"""Fused volume rendering: sample a voxel grid along rays and raymarch, chunk by chunk.

:class:`~voxrender.VolumeRenderer` computes ``raymarcher(VolumeSampler(volumes)(rays))``: every
ray point is sampled into a ``(B, ..., P, C)`` tensor, then composited. This module computes the
same images and the same volume gradients without those per-sample tensors: rays are taken a
chunk at a time (cache-sized), sampled, composited and dropped. For the backward pass the
samples themselves (``C`` numbers per point, 16 bytes in float32 RGB + density) are kept (the
backward then reads no voxel, and the table goes when the forward returns), or, when the caller
asks for bounded memory (the renderers' ``chunk_size``), recomputed chunk by chunk, so that
memory is then the volume plus a few chunk-sized buffers whatever the image size.

Dimension letters:

- ``R``: rays of one call (all batch elements together); ``n``: rays of one chunk.
- ``P``: points per ray; ``m = n * P``: points of one chunk.
- ``C``: table channels (``1 + C_f`` for emission-absorption, 1 for absorption-only).
- ``D, H, W``: voxel grid depth, height, width.

How a chunk is computed (trilinear, zeros padding: the renderer's sampling):

1. Ray ``r`` in voxel units: ``u = a_r + t * b_r`` per axis, ``a_r``, ``b_r`` from the ray's
   origin and direction mapped into the grid once per ray (the world-to-local map is affine).
   Voxel ``k`` sits at ``u = k + 1``: the table carries a zero margin (one voxel below, two
   above), so clamping ``u`` to ``[0, S + 1]`` replaces every bounds test and NaN reads zeros.
2. The point's cell (its low corner's table row) and the 8 trilinear weights, as in
   :mod:`voxrender.grid_sample`.
3. The samples ``(m, C)`` = ``sum_k S_k @ table``, ``S_k`` a sparse ``(m, rows)`` matrix holding
   each point's weight of corner ``k`` at that corner's row: compiled sparse-dense products do
   all gathers and sums.
4. The raymarcher's own kernel (:func:`voxrender.raymarching.emission_absorption`, the one
   implementation of the model) composites the chunk; with the EA raymarcher's
   ``return_depth`` it also weighs the chunk's sample depths into the depth channel, and with
   ``density_mode="extinction"`` turns the samples into opacities ``1 - exp(-sigma * step)``
   first, the steps taken from the whole rays (:func:`_steps`), so that a window's last sample
   gets the step to the next sample as in the reference path (the backward of both goes
   through autograd). A ``background`` is composited onto the images afterwards
   (:func:`finish`).

Only the samples that can read the volume are computed: per ray, the window of samples between
its entry into and exit from the volume's box (beyond the zero margin every sample reads zeros,
changes no image and gets no gradient); see :func:`_schedule` for when this applies (it is exact)
and :func:`sample_windows` for the windows (the Triton kernels march the same ones).

Backward, per chunk: steps 1-2 again (and 3 unless the samples were kept), the samples'
gradient ``G (m, C)`` (the written-out
:func:`voxrender.raymarching._emission_absorption_backward`, or autograd through step 4), then
``S^T G`` into the table's gradient (one 1D ``scatter_add_`` per corner; for an even ``C``
the channels two at a time, as complex numbers: :func:`_scatter_pairs`).

On the CPU the chunks are spread over ``torch.get_num_threads()`` worker threads (at most
``_MAX_WORKERS``), each running single-threaded operators on its own buffers: the scatter is
serial in PyTorch, so splitting the chunks is the only way to use more than one core for it.
Each worker accumulates its own gradient table (one table-sized buffer per worker) and the
tables are summed at the end; the sum's order is fixed, so results do not vary run to run.

The whole render is two PyTorch custom operators, ``voxrender::fused_render`` and its backward
``voxrender::fused_render_backward``: eager calls go through them too, and ``torch.compile``
sees one opaque call (no graph break, no tracing of the threads or sparse products).
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from ._checks import check_density_range
from .raymarching import (
    AbsorptionOnlyRaymarcher,
    EmissionAbsorptionRaymarcher,
    _check_eps,
    _composite_background,
    _emission_absorption,
    _emission_absorption_backward,
    _emission_absorption_ext,
    _extinction_steps,
    _opacity,
)
from .volumes import Volumes
from .voxel_geometry import rays_to_local, rays_to_voxel_lines
from .voxel_table import PAD, collapse_expanded_batch, margined_table

__all__: list[str] = []  # internal: reached through VolumeRenderer (voxrender.backends)

# Points per chunk: the chunk's buffers (about 110 bytes per point) stay within a core's L2 / L3.
_POINTS_PER_CHUNK = 1 << 16

# Worker threads at most: each holds chunk buffers (~7 MB at 2^16 points) and, in the backward
# pass, a gradient table the size of the volume; the tables beyond the first take at most
# _EXTRA_GRAD_BYTES (fewer workers for big volumes).
_MAX_WORKERS = 8
_MIN_CHUNK_POINTS = 1 << 15  # a split below this costs more per-chunk overhead than it spreads
# One worker per this many computed samples of a call: below it, the workers' Python and
# operator overheads (taken under the GIL) cost more than they spread, and one worker, whose
# large operators use the intra-op threads, is faster. Forward + backward, 2 threads, medians:
# 32³ sweep row (44 K samples) 20 ms on one worker vs 30 ms on two; 221 K samples 43 vs 49 ms;
# 590 K samples 109 vs 110 ms; 64³ row (0.7 M) two workers faster (220 vs 240 ms).
_WORKER_POINTS = 1 << 18
_EXTRA_GRAD_BYTES = 512 << 20

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0
_sparse_probes: dict[tuple[torch.dtype, torch.dtype], bool] = {}


@dataclass(frozen=True)
class _Plan:
    """Everything about one fused call that is not a tensor."""

    grid: tuple[int, int, int]  # (D, H, W)
    channels: int  # C of the table
    emission: bool  # emission-absorption (else absorption-only)
    surface_thickness: int
    eps: float
    rays_per_chunk: int
    workers: int  # threads to spread the chunks over (set by the operator when it runs)
    keep_samples: bool  # keep the samples for the backward (else recompute them)
    eps_vanishes: bool  # (1 + eps) - d == 1 - d in the table's dtype
    depth: int = 0  # EA's expected depth channel: 0 none, 1 sum w t, 2 divided by sum w
    extinction: bool = False  # densities are extinction coefficients: 1 - exp(-sigma * step)
    last_step: float = 1e10  # the step of each ray's last sample (extinction)

    @property
    def strides(self) -> tuple[int, int, int]:
        """Table rows between neighbours along z, y, x (margined grid)."""
        _, h, w = (n + sum(PAD) for n in self.grid)
        return h * w, w, 1

    @property
    def corner_offsets(self) -> tuple[int, ...]:
        """Row offset of corner ``k = 4 kz + 2 ky + kx`` from the cell's low corner."""
        sz, sy, _ = self.strides
        return tuple(kz * sz + ky * sy + kx for kz in (0, 1) for ky in (0, 1) for kx in (0, 1))


def volume_table(densities: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """Channel-last, zero-margined table of the volumes, differentiable.

    Args:
        densities: ``(B, 1, D, H, W)``.
        features: ``(B, C_f, D, H, W)`` or None (absorption-only).

    Returns:
        ``(B * (D + 3) * (H + 3) * (W + 3), C)`` with ``C = 1 + C_f``.
    """
    return margined_table(densities) if features is None else margined_table(densities, features)


def _paired(channels: int, dtype: torch.dtype) -> bool:
    """Whether the samples' gradient is added two channels at a time (:func:`_scatter_pairs`)."""
    return channels % 2 == 0 and dtype in (torch.float32, torch.float64)


class _Workspace:
    """Reusable flat buffers for chunks of up to ``m`` points (one workspace per worker).

    About 108 bytes per point (float32, ``C = 4``; was 166): one scratch region holds the
    per-axis factors and the ``(z, y)`` weights while steps 1-2 run, and later, both being dead
    by then, the samples' gradient and its weighted copy; a buffer for the samples themselves is
    made only where they are not kept (on first use), the by-channel scatter's full index only
    where a chunk needs it.
    """

    def __init__(self, m: int, plan: _Plan, dtype: torch.dtype, index_dtype: torch.dtype):
        c = plan.channels
        self.points, self.dtype = m, dtype
        self.paired = _paired(c, dtype)
        self._scratch = max(6 + 4, 2 * c)  # factors + w4, later grad_planes + contrib
        self._float = torch.empty((self._scratch + 8) * m, dtype=dtype)
        self._int = torch.empty((3 + 1) * m, dtype=index_dtype)
        self._lanes = c // 2 if self.paired else c  # scatter indices per point
        self._flat = torch.empty(self._lanes * m, dtype=torch.int64)  # scatter_add_: int64 only
        self._samples: torch.Tensor | None = None
        self._flat_full: torch.Tensor | None = None
        self.crow = torch.arange(m + 1, dtype=index_dtype)  # one weight per row
        self.lanes = torch.arange(c, dtype=torch.int64).view(c, 1)
        self.offsets = plan.corner_offsets
        self.m = 0

    def carve(self, m: int, channels: int) -> None:
        """Point the named buffers at the first bytes of the flat ones, for ``m`` points."""
        if m == self.m:
            return
        self.m = m
        c, region = channels, self._scratch * m
        self.factors = self._float[: 6 * m].view(3, 2, m)  # per axis (1 - frac, frac)
        self.w4 = self._float[6 * m : 10 * m].view(2, 2, m)
        self.grad_planes = self._float[: c * m].view(c, m)  # over the factors: steps 1-2 done
        self.contrib = self._float[c * m : 2 * c * m].view(c, m)
        self.w8 = self._float[region : region + 8 * m].view(8, m)  # corner-major weights
        self.ints = self._int[: 3 * m].view(3, m)
        self.cell = self._int[3 * m : 4 * m]
        self.flat = self._flat[: self._lanes * m].view(self._lanes, m)
        if self.paired:  # the same bytes as (C / 2, m, 2): channels 2j, 2j + 1 side by side
            self.grad_pairs = self.grad_planes.view(channels // 2, m, 2)
            self.contrib_pairs = self.contrib.view(channels // 2, m, 2)

    def samples(self, channels: int) -> torch.Tensor:
        """``(m, C)``: the chunk's samples, where the caller keeps none."""
        if self._samples is None:
            self._samples = torch.empty(self.points * channels, dtype=self.dtype)
        return self._samples[: self.m * channels].view(self.m, channels)

    def flat_full(self, channels: int) -> torch.Tensor:
        """``(C * m,)`` int64: the by-channel scatter's index, one per (channel, point)."""
        if self._flat_full is None:
            self._flat_full = torch.empty(self.points * channels, dtype=torch.int64)
        return self._flat_full[: self.m * channels]


def _cells_and_weights(ws: _Workspace, plan: _Plan, a, b, lengths, base) -> int:
    """Steps 1-2 for one chunk: ``ws.cell (m,)`` and ``ws.w8 (8, m)``; returns ``m``."""
    m = lengths.numel()
    ws.carve(m, plan.channels)
    ints, cell, factors = ws.ints, ws.cell, ws.factors
    u, low = factors[:, 1], factors[:, 0]  # (3, m) each: u, later its fraction; floor(u)
    torch.addcmul(a[:, :, None], b[:, :, None], lengths[None], out=u.view(3, *lengths.shape))
    u.nan_to_num_(nan=0.0)  # NaN points read the margin: zeros
    for axis, size in enumerate(plan.grid[::-1]):  # x, y, z
        u[axis].clamp_(0, size + 1)
    torch.floor(u, out=low)
    ints.copy_(low)
    sz, sy, _ = plan.strides
    torch.add(ints[0], ints[1], alpha=sy, out=cell).add_(ints[2], alpha=sz)
    if base is not None:  # batched volumes: each ray reads its own
        cell.view(lengths.shape).add_(base[:, None])
    u.sub_(low)  # fractions
    torch.sub(1, u, out=low)
    torch.mul(factors[2][:, None], factors[1][None, :], out=ws.w4)  # (z, y) pairs
    torch.mul(ws.w4[:, :, None], factors[0][None, None], out=ws.w8.view(2, 2, 2, m))
    return m


def _sample(ws: _Workspace, table: torch.Tensor, m: int, out=None) -> torch.Tensor:
    """Step 3: ``(m, C)`` trilinear samples of the chunk, as 8 sparse-dense products.

    Corner ``k``'s product ``S_k @ table`` gathers each point's row of that corner, weighed
    (``S_k`` holds one weight per row), into the samples: corner-major weights and rows used as
    they are, no point-major ``(m, 8)`` copies (one 8-weight-per-row product measured 45 ns per
    point against 34 for the 8, tutorial chunk, one thread).
    """
    samples = ws.samples(table.shape[1]) if out is None else out  # (m, C)
    rows = table.shape[0]
    for k, offset in enumerate(ws.offsets):
        # corner k's row is the cell's row in the table shifted by the corner's offset (a
        # view): the cells serve every corner as columns, no per-corner column array
        matrix = torch.sparse_csr_tensor(
            ws.crow[: m + 1], ws.cell, ws.w8[k], size=(m, rows - offset), check_invariants=False
        )
        if k == 0:  # beta=0: the buffer's old contents are ignored (mm's out= fills and copies)
            torch.addmm(samples, matrix, table, beta=0, out=samples)
        else:
            samples.addmm_(matrix, table[offset:])
    return samples


def _composite(
    samples: torch.Tensor, plan: _Plan, lengths: torch.Tensor, steps: torch.Tensor | None
) -> torch.Tensor:
    """Step 4: the raymarcher on ``samples (n, P, C)`` -> ``(n, C_out)``.

    The samples lie at depths ``lengths (n, P)``, with ``steps (n, P)`` for extinction.

    The volume's densities were checked to lie in [0, 1], so their trilinear blends do too, up
    to the rounding of the weighted sum, which may land one ulp above 1 (blending voxels of
    exactly 1): that ulp is clipped, as exact interpolation would give 1.
    """
    densities = samples[..., :1] if plan.extinction else samples[..., :1].clamp_(max=1.0)
    return _raymarch(densities, samples[..., 1:], plan, lengths, steps)


def _forward_chunk(ws, plan, table, a, b, lengths, base, out, keep, steps=None) -> None:
    """Steps 1-4 for one chunk into ``out (n, C_out)``; the samples go to ``keep`` if given."""
    m = _cells_and_weights(ws, plan, a, b, lengths, base)
    samples = _sample(ws, table, m, keep).view(*lengths.shape, plan.channels)  # (n, P, C)
    out.copy_(_composite(samples, plan, lengths, steps))


def _backward_chunk(
    ws, plan, table, a, b, lengths, base, grad_out, grad_table, kept, steps=None
) -> None:
    """The table's gradient of one chunk, added into ``grad_table`` (flat).

    ``kept`` holds the chunk's samples ``(m, C)`` when the forward pass kept them (else they are
    computed again).
    """
    m = _cells_and_weights(ws, plan, a, b, lengths, base)
    if kept is None:
        kept = _sample(ws, table, m)
    samples = kept.view(*lengths.shape, plan.channels)  # (n, P, C)
    c = plan.channels
    # the samples' gradient G: channel-major (C, m), or in pairs (C / 2, m, 2) (_scatter_pairs)
    planes = ws.grad_pairs if ws.paired else ws.grad_planes
    channel = [planes[i // 2, :, i % 2] if ws.paired else planes[i] for i in range(c)]  # (m,)
    if plan.emission and plan.eps_vanishes and not (plan.depth or plan.extinction):  # faster
        _emission_absorption_backward(
            samples[..., 0],
            samples[..., 1:],
            grad_out,
            plan.surface_thickness,
            channel[0].view(lengths.shape),
            [plane.view(lengths.shape) for plane in channel[1:]],
            samples=samples,
        )
    else:  # autograd through the raymarcher's own kernel
        densities = samples[..., :1].detach().requires_grad_()
        features = samples[..., 1:].detach().requires_grad_(plan.emission)
        leaves = [densities, features] if plan.emission else [densities]
        with torch.enable_grad():
            images = _raymarch(densities, features, plan, lengths, steps)  # (n, C_out)
        grads = torch.autograd.grad(images, leaves, grad_out)
        channel[0].copy_(grads[0].view(m))
        for i in range(1, c if plan.emission else 1):
            channel[i].copy_(grads[1].view(m, -1)[:, i - 1])
    # complex products are exact for finite numbers only ((inf + 0j) * w makes a NaN imaginary).
    # A finite sum has finite terms (one reduction: isfinite(planes).all() took 4 passes and
    # 20 ns per sample); a finite chunk whose sum overflows just goes by channel.
    if ws.paired and bool(planes.sum().isfinite()):  # CPU tensor: no device sync
        _scatter_pairs(ws, plan, grad_table)
        return
    if ws.paired:  # flat table index of each (pair, point, lane), low corner
        lanes, out = ws.lanes.view(c // 2, 1, 2), ws.flat_full(c).view(c // 2, m, 2)
        flat = torch.add(lanes, ws.cell[:, None], alpha=c, out=out)
        weights, contrib = [w.view(m, 1) for w in ws.w8], ws.contrib_pairs
    else:  # flat table index of each (channel, point), low corner
        flat = torch.add(ws.lanes, ws.cell, alpha=c, out=ws.flat)
        weights, contrib = ws.w8, ws.contrib
    for k, offset in enumerate(plan.corner_offsets):
        torch.mul(weights[k], planes, out=contrib)
        # scatter_add_ rather than index_add_: a third faster on the CPU for 1D float tensors
        grad_table[offset * c :].scatter_add_(0, flat.view(-1), contrib.view(-1))


def _scatter_pairs(ws: _Workspace, plan: _Plan, grad_table: torch.Tensor) -> None:
    """``S^T G`` into ``grad_table`` (flat, even ``C``), channel pairs as complex numbers.

    The pairs ``(G_2j, G_2j+1)`` of ``ws.grad_pairs (C / 2, m, 2)`` become complex numbers and
    the table's gradient a complex vector: one complex addition adds two channels, so the
    scatter adds half the elements (45 against 85 ns per sample, tutorial chunk, one thread),
    in the same order as per channel, so to the same sums. ``(a + bj) * w`` is
    ``(a w - b 0) + (b w + a 0) j``: exactly ``(a w, b w)`` for finite ``a, b`` (the caller
    checks). Weighing in this layout as real numbers would broadcast over pairs, 4x slower.
    """
    half = plan.channels // 2
    flat = torch.add(ws.lanes[:half], ws.cell, alpha=half, out=ws.flat)  # (C / 2, m)
    pairs = torch.view_as_complex(ws.grad_pairs)  # (C / 2, m)
    contrib = torch.view_as_complex(ws.contrib_pairs)  # (C / 2, m)
    target = torch.view_as_complex(grad_table.view(-1, 2))  # (rows * C / 2,)
    for k, offset in enumerate(plan.corner_offsets):
        torch.mul(pairs, ws.w8[k], out=contrib)
        target[offset * half :].scatter_add_(0, flat.view(-1), contrib.view(-1))


def _raymarch(
    densities: torch.Tensor,
    features: torch.Tensor,
    plan: _Plan,
    lengths: torch.Tensor,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The plan's raymarcher on ``densities (n, P, 1)``, ``features (n, P, C_f)`` -> ``(n, C_out)``.

    The samples lie at depths ``lengths (n, P)``; the depth channel comes last when the plan has
    one. Extinction: ``densities`` are ``sigma``, turned into ``1 - exp(-sigma * steps)``.
    """
    if plan.extinction:
        densities = (-torch.expm1(-densities.squeeze(-1) * steps)).unsqueeze(-1)  # (n, P, 1)
    if not plan.emission:
        return _opacity(densities.squeeze(-1))
    if plan.depth:
        return _emission_absorption_ext(
            densities, features, plan.surface_thickness, plan.eps, lengths, plan.depth == 2
        )
    return _emission_absorption(densities, features, plan.surface_thickness, plan.eps)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared worker pool, (re)made when too small or inherited through ``fork``."""
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_size < workers or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="voxrender")
            _pool_size, _pool_pid = workers, os.getpid()
        return _pool


def _run_workers(plan: _Plan, chunks: list, job) -> None:
    """Run ``job(worker, chunk)`` over every chunk, on ``plan.workers`` threads (round robin).

    Every chunk runs without autograd recording (the backward enables it where it needs it)
    and in the caller's inference mode. With several workers, each sets its own thread to one
    intra-op thread, so the workers do not oversubscribe the cores; the caller's setting is
    restored afterwards.
    """
    workers = min(plan.workers, len(chunks))
    inference = torch.is_inference_mode_enabled()

    def task(worker: int, threaded: bool) -> None:
        if threaded:
            torch.set_num_threads(1)
        with torch.inference_mode(inference), torch.no_grad():
            for chunk in chunks[worker::workers]:
                job(worker, chunk)

    if workers <= 1:
        task(0, False)
        return
    saved = torch.get_num_threads()
    try:
        futures = [_executor(workers).submit(task, w, True) for w in range(workers)]
        wait(futures)  # all of them, even when one fails: none may outlive this call
        for future in futures:
            future.result()  # re-raises the first failure
    finally:
        torch.set_num_threads(saved)


def _sparse_products_work(dtype: torch.dtype, index_dtype: torch.dtype) -> bool:
    """Whether this build multiplies a CSR matrix into and onto a dense tensor (probed once).

    As :func:`_sample` does: into with ``beta=0`` (the old contents ignored), onto a view of the
    dense matrix starting at a later row.

    Also says PyTorch's once-per-process "sparse CSR is beta" warning here, silently.
    """
    key = (dtype, index_dtype)
    if torch.compiler.is_compiling():  # probed at import (and by eager calls); no tracing here
        return _sparse_probes.get(key, False)
    if key not in _sparse_probes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                crow = torch.tensor([0, 2, 3], dtype=index_dtype)
                col = torch.tensor([0, 1, 1], dtype=index_dtype)
                matrix = torch.sparse_csr_tensor(
                    crow, col, torch.tensor([1.0, 2.0, 3.0], dtype=dtype), size=(2, 2)
                )
                out = torch.full((2, 1), float("nan"), dtype=dtype)  # beta=0 ignores it
                ones = torch.tensor([[1.0], [1.0]], dtype=dtype)
                torch.addmm(out, matrix, ones, beta=0, out=out)
                shifted = torch.tensor([[7.0], [1.0], [2.0]], dtype=dtype)[1:]  # a row view
                out.addmm_(matrix, shifted)  # accumulates
                _sparse_probes[key] = out.flatten().tolist() == [8.0, 9.0]
            except (RuntimeError, NotImplementedError, TypeError):
                _sparse_probes[key] = False
    return _sparse_probes[key]


def _eps_vanishes(eps: float, dtype: torch.dtype) -> bool:
    """Whether ``(1 + eps) - d`` equals ``1 - d`` in ``dtype`` (Python arithmetic, no tensors)."""
    if dtype == torch.float64:
        return 1.0 + eps == 1.0
    return struct.unpack("f", struct.pack("f", 1.0 + eps))[0] == 1.0  # rounded to float32


for _dtype in (torch.float32, torch.float64):  # the probe once, eagerly, for the usual cases
    _sparse_products_work(_dtype, torch.int32)


def _index_dtype(rows: int) -> torch.dtype:
    """The CSR index dtype for a table of ``rows`` rows."""
    return torch.int32 if 8 * rows < 2**31 else torch.int64


def _has_kept(kept: torch.Tensor, lengths: torch.Tensor) -> bool:
    """Whether ``kept`` holds the forward's samples of the rays ``lengths (R, P)``."""
    return kept.shape[0] == lengths.numel() and lengths.numel() > 0


@dataclass(frozen=True)
class _Schedule:
    """Which samples of which rays one call computes, in chunks (see :func:`_schedule`).

    ``chunks`` holds ``(start, stop, width)``: rays ``start:stop`` (in their own order, which
    keeps neighbouring rays, and so neighbouring voxels, together), ``width`` samples per ray
    from each ray's window start. Rays in no chunk have no sample inside the volume. A chunk's
    kept samples are rows ``start * P`` on of the kept buffer.
    """

    starts: torch.Tensor | None  # (R,) first sample of each ray's window; None: all samples
    chunks: list[tuple[int, int, int]]
    points: int  # the most samples of one chunk
    total: int  # samples of all chunks

    def lengths(self, lengths: torch.Tensor, start: int, stop: int, width: int) -> torch.Tensor:
        """The chunk's ``(n, width)`` sample depths (each ray's window)."""
        if self.starts is None:
            return lengths[start:stop]
        first = self.starts[start:stop].clamp(max=lengths.shape[1] - width)  # (n,)
        if lengths.stride(0) == 0:  # one row for every ray: pick rows of its sliding windows
            return torch.index_select(lengths[0].unfold(0, width, 1), 0, first)
        windows = lengths[start:stop].unfold(1, width, 1)  # (n, P - width + 1, width) view
        # a window row per ray, not a gather per sample: 2 ns per sample against 10 (tutorial)
        return windows[torch.arange(stop - start), first]


def _monotone(lengths: torch.Tensor) -> bool:
    """Whether every ray's depths ``(R, P)`` never decrease (NaN: no)."""
    rows = lengths[:1] if lengths.stride(0) == 0 else lengths  # one row when shared
    return bool((rows[:, 1:] >= rows[:, :-1]).all())


def _box_interval(a: torch.Tensor, b: torch.Tensor, grid, reach: torch.Tensor):
    """Depths ``(t_near, t_far)`` ``(R,)`` (float64) bounding where each ray may read a voxel.

    A point reads a voxel only where ``0 < u < S + 1`` on every axis (margined units); the box
    is widened by ``2^-10 (1 + |a| + |b| reach)``, far beyond the rounding of ``a + t b`` in any
    float dtype for ``|t| <= reach``, so a depth outside the interval surely reads only zeros.
    Rays that never enter (and NaN rays) get an empty interval (``t_near > t_far`` or NaN).

    Args:
        a, b: ``(3, R)`` the rays ``u = a + t b`` in margined voxel units (rows ``x, y, z``).
        grid: ``(D, H, W)``.
        reach: ``(R,)`` (or ``(1,)``, or 0-dim) the largest ``|t|`` of each ray's samples.
    """
    a, b = a.double(), b.double()  # (3, R)
    upper = [n + 1.0 for n in grid[::-1]]
    upper = torch.tensor(upper, dtype=torch.float64, device=a.device)[:, None]  # (3, 1)
    slack = (1.0 + a.abs() + b.abs() * reach) * 2.0**-10  # (3, R)
    slack = slack.nan_to_num_(nan=float("inf"))  # 0 * inf: infinite depths, no bound
    low, high = -slack, upper + slack
    flat = b == 0  # parallel to the slab: inside it for every t, or never
    step = torch.where(flat, 1.0, b)
    t0, t1 = (low - a) / step, (high - a) / step  # (3, R)
    inside = (a > low) & (a < high)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=a.device)
    near = torch.where(flat, torch.where(inside, -inf, inf), torch.minimum(t0, t1))
    far = torch.where(flat, torch.where(inside, inf, -inf), torch.maximum(t0, t1))
    return near.amax(0), far.amin(0)


def sample_windows(a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor, grid):
    """Each ray's run of samples that may read the volume, ``[first, stop)``.

    The one definition of the samples that exact empty-space skipping keeps (the fused CPU
    path's chunks and the Triton kernels' loops): a sample outside the run lies outside the
    ray's entry and exit depths (:func:`_box_interval`, widened beyond rounding), so every
    corner of its trilinear footprint is in the zero margin and it reads exactly zero. Found by
    binary search, so it holds for rays whose depths never decrease (the caller checks). Only
    tensor operations (no host sync): O(R log P).

    Args:
        a, b: ``(3, R)`` the rays ``u = a + t b`` in margined voxel units.
        lengths: ``(R, P)`` the samples' depths (a row expanded across the rays is searched once).
        grid: ``(D, H, W)``.

    Returns:
        ``first (R,)`` and ``stop (R,)``, int64; ``stop == first`` for rays that miss the box
        (and NaN rays).
    """
    shared = lengths.stride(0) == 0
    rows = lengths[:1] if shared else lengths  # (R or 1, P)
    reach = rows.abs().amax(1).double()  # (R or 1,) NaN for a ray with a NaN depth
    near, far = _box_interval(a, b, grid, reach)  # (R,) each
    inf = torch.tensor(float("inf"), dtype=lengths.dtype, device=lengths.device)
    # rounded outwards into the depths' dtype, so that the search never cuts a sample off
    near = torch.nextafter(near.to(lengths.dtype), -inf)
    far = torch.nextafter(far.to(lengths.dtype), inf)
    if shared:
        first = torch.searchsorted(rows[0], near)  # (R,)
        stop = torch.searchsorted(rows[0], far, right=True)
    else:
        first = torch.searchsorted(rows, near[:, None]).view(-1)
        stop = torch.searchsorted(rows, far[:, None], right=True).view(-1)
    hit = near <= far  # False for NaN rays
    return first, torch.where(hit, torch.maximum(stop, first), first)


def _chunk_points(plan: _Plan, n_pts: int, total: int) -> int:
    """Samples per chunk: cache-sized, and small enough to give every worker some.

    A call of ``total`` samples makes ``_MAX_WORKERS`` chunks unless they would fall under
    ``_MIN_CHUNK_POINTS``; a call that runs on one worker anyway (``total < 2 *
    _WORKER_POINTS``) is not split beyond ``rays_per_chunk`` (each chunk costs ~1.4 ms of
    operator overheads, forward and backward: 5% of the 32³ sweep row's step). Independent of
    the thread count, so that the backward pass of a call finds the forward's chunks (and kept
    samples) even if the threads changed between.
    """
    if total < 2 * _WORKER_POINTS:
        return max(1, plan.rays_per_chunk * n_pts)
    spread = max(-(-total // _MAX_WORKERS), _MIN_CHUNK_POINTS)
    return max(1, min(plan.rays_per_chunk * n_pts, spread))


def _schedule(a, b, lengths, plan: _Plan) -> _Schedule:
    """The chunks of one call, skipping the samples that cannot read the volume.

    A sample outside the volume's box (beyond the zero margin) reads zeros: density 0 lets all
    light through (``1 - 0 = 1``, multiplied in exactly) and weighs 0, so it changes no image and
    its gradient reaches only margin rows, which are dropped. Where the depths of every ray
    never decrease, the samples that can read the volume are one run per ray, found from the
    ray's entry and exit depths by binary search (:func:`sample_windows`); each chunk then takes a
    window of ``width`` samples per ray (its widest run; a window may hold a few zero samples
    more, which change nothing either). The rays stay in their own order: neighbouring rays
    read neighbouring voxels, and sorting them by run length (fewer samples) measured slower.
    This is exact only where ``(1 + eps) - 0 == 1`` (``eps_vanishes``; absorption-only
    has no eps) and the window keeps each sample's position behind the ray's start (the
    ``surface_thickness`` lag counts positions): zeros in front change no product.
    Otherwise (non-monotone or NaN depths, or eps that matters) every sample is computed.
    """
    n_rays, n_pts = lengths.shape
    if not ((plan.eps_vanishes or not plan.emission) and _monotone(lengths)):
        per_chunk = max(1, _chunk_points(plan, n_pts, n_rays * n_pts) // n_pts)  # rays
        chunks = [(s, min(s + per_chunk, n_rays), n_pts) for s in range(0, n_rays, per_chunk)]
        return _Schedule(None, chunks, min(per_chunk, n_rays) * n_pts, n_rays * n_pts)
    first, stop = sample_windows(a, b, lengths, plan.grid)  # (R,) each
    width = stop - first  # (R,)
    per_chunk = max(1, _chunk_points(plan, n_pts, int(width.sum())) // n_pts)  # rays
    budget = per_chunk * n_pts
    chunks, start, points = [], 0, 0
    while start < n_rays:  # a chunk's rays share its widest window
        stop_ = min(start + per_chunk, n_rays)
        w = int(width[start:stop_].max())
        if w > 0:  # else every ray of the chunk misses: zeros
            more = min(start + budget // w, n_rays)  # narrow windows: more rays per chunk
            w_more = int(width[start:more].max())
            if (more - start) * w_more <= 2 * budget:
                stop_, w = more, w_more
            chunks.append((start, stop_, w))
            points = max(points, (stop_ - start) * w)
        start = stop_
    total = sum((stop_ - start_) * w for start_, stop_, w in chunks)
    return _Schedule(first, chunks, points, total)


# Each forward's schedule, for its backward: computing it again cost 0.65 / 4.7 / 40 ms a call
# (32³ / 64³ / tutorial sweep rows, 3-6% of the smaller steps). Keyed by the storage of the
# call's kept samples, which its backward receives (an empty one without kept samples); held
# weakly, so that a forward whose backward never runs leaves only an expired entry, dropped at
# the next forward.
_schedules: dict[int, tuple[StorageWeakRef, tuple, _Schedule]] = {}
_schedules_lock = threading.Lock()


def _schedule_key(a, b, lengths, plan: _Plan) -> tuple:
    """What a schedule depends on, beyond the tensors' contents (which autograd keeps)."""
    tensors = tuple((t.data_ptr(), t.shape, t.stride()) for t in (a, b, lengths))
    return tensors, replace(plan, workers=0)


def _remember_schedule(kept: torch.Tensor, key: tuple, sched: _Schedule) -> None:
    ref = StorageWeakRef(kept.untyped_storage())
    with _schedules_lock:
        for cdata in [c for c, (r, _, _) in _schedules.items() if r.expired()]:
            del _schedules[cdata]
        _schedules[ref.cdata] = (ref, key, sched)


def _recall_schedule(kept: torch.Tensor, key: tuple) -> _Schedule | None:
    """The schedule of the forward that made ``kept`` for these inputs, if remembered."""
    cdata = StorageWeakRef(kept.untyped_storage()).cdata
    with _schedules_lock:
        entry = _schedules.get(cdata)
    if entry is None or entry[0].expired() or entry[1] != key:
        return None
    return entry[2]


def _steps(lengths: torch.Tensor, plan: _Plan) -> torch.Tensor | None:
    """Extinction's step of every sample ``(R, P)``; None for other density modes.

    ``t_{i+1} - t_i``, the last ``plan.last_step`` (the raymarcher's formula). Computed for the
    whole rays, so a chunk's window gets the steps to the samples after it too.
    """
    if not plan.extinction:
        return None
    return _extinction_steps(lengths, plan.last_step)


def _forward_impl(table, a, b, lengths, base, plan: _Plan, keep: bool):
    """Images ``(R, C_out)`` and, if ``keep``, the samples ``(R * P, C)`` (else ``(0, C)``).

    Of the kept samples only the windows' rows are written: the pages of the rest (samples
    outside the volume) are never touched, so they take no memory.
    """
    n_rays, n_pts = lengths.shape
    n_out = plan.channels + (plan.depth > 0) if plan.emission else 1
    index_dtype = _index_dtype(table.shape[0])
    if base is not None:
        base = base.to(index_dtype)
    kept = table.new_empty(n_rays * n_pts if keep else 0, plan.channels)  # (R * P, C)
    sched = _schedule(a, b, lengths, plan)
    _remember_schedule(kept, _schedule_key(a, b, lengths, plan), sched)
    out = table.new_zeros(n_rays, n_out)  # rays in no chunk miss the volume: zeros
    workers = max(1, min(plan.workers, len(sched.chunks), sched.total // _WORKER_POINTS))
    spaces = [_Workspace(sched.points, plan, table.dtype, index_dtype) for _ in range(workers)]
    steps = _steps(lengths, plan)  # (R, P) or None

    def job(worker, chunk):
        s, e, width = chunk
        _forward_chunk(
            spaces[worker], plan, table, a[:, s:e], b[:, s:e], sched.lengths(lengths, s, e, width),
            None if base is None else base[s:e], out[s:e],
            kept[s * n_pts : s * n_pts + (e - s) * width] if keep else None,
            **({} if steps is None else {"steps": sched.lengths(steps, s, e, width)}),
        )  # fmt: skip

    _run_workers(replace(plan, workers=workers), sched.chunks, job)
    return out, kept


def _backward_impl(grad_out, table, a, b, lengths, base, kept, plan: _Plan, rows: int):
    """The table's gradient ``(rows, C)`` for the images' gradient ``grad_out (R, C_out)``.

    ``table`` is the forward's table where the samples must be computed again, else (samples
    kept) a ``(0, C)`` stand-in: the backward then reads no voxel, and the forward's table was
    freed when the forward returned (:func:`_saved_table`).
    """
    grad_out = grad_out.contiguous()
    n_pts = lengths.shape[1]
    has_kept = _has_kept(kept, lengths)
    index_dtype = _index_dtype(rows)
    if base is not None:
        base = base.to(index_dtype)
    sched = _recall_schedule(kept, _schedule_key(a, b, lengths, plan))  # the forward's
    if sched is None:  # a backward op called on its own, or a forward under other tracing
        sched = _schedule(a, b, lengths, plan)
    # one gradient table per worker: the extra ones may take _EXTRA_GRAD_BYTES at most
    table_bytes = rows * plan.channels * table.element_size()
    spare = 1 + _EXTRA_GRAD_BYTES // max(table_bytes, 1)
    workers = max(1, min(plan.workers, spare, len(sched.chunks), sched.total // _WORKER_POINTS))
    spaces = [_Workspace(sched.points, plan, table.dtype, index_dtype) for _ in range(workers)]
    grads = [table.new_zeros(rows * plan.channels) for _ in range(workers)]  # flat (rows * C,)
    steps = _steps(lengths, plan)  # (R, P) or None

    def job(worker, chunk):
        s, e, width = chunk
        _backward_chunk(
            spaces[worker], plan, table, a[:, s:e], b[:, s:e], sched.lengths(lengths, s, e, width),
            None if base is None else base[s:e], grad_out[s:e], grads[worker],
            kept[s * n_pts : s * n_pts + (e - s) * width] if has_kept else None,
            **({} if steps is None else {"steps": sched.lengths(steps, s, e, width)}),
        )  # fmt: skip

    _run_workers(replace(plan, workers=workers), sched.chunks, job)
    grad_table = grads[0]
    for extra in grads[1:]:
        grad_table += extra
    return grad_table.view(rows, plan.channels)


# The fused render as two PyTorch custom operators (forward, backward), so that torch.compile
# sees one opaque call instead of tracing (and breaking on) the thread pool and sparse products.
# A schema takes tensors and scalars only, so the plan travels packed: its ints (grid dims and
# flags) as one list[int], its floats as one list[float] (_pack_plan / _unpack_plan).


def _pack_plan(plan: _Plan) -> tuple[list[int], list[float]]:
    ints = [
        *plan.grid, plan.channels, int(plan.emission), plan.surface_thickness,
        int(plan.eps_vanishes), plan.rays_per_chunk, plan.depth, int(plan.extinction),
    ]  # fmt: skip
    return ints, [plan.eps, plan.last_step]


def _unpack_plan(ints: list[int], floats: list[float]) -> _Plan:
    d, h, w, channels, emission, thickness, eps_vanishes, rays_per_chunk, depth, extinction = ints
    eps, last_step = floats
    return _Plan(
        grid=(d, h, w), channels=channels, emission=bool(emission), surface_thickness=thickness,
        eps=eps, rays_per_chunk=rays_per_chunk,
        workers=max(1, min(torch.get_num_threads(), _MAX_WORKERS)), keep_samples=True,
        eps_vanishes=bool(eps_vanishes), depth=depth, extinction=bool(extinction),
        last_step=last_step,
    )  # fmt: skip


@torch.library.custom_op("voxrender::fused_render", mutates_args=())
def _render_op(
    table: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor,
    base: torch.Tensor | None,
    ints: list[int],
    floats: list[float],
    keep: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _forward_impl(table, a, b, lengths, base, _unpack_plan(ints, floats), keep)


@_render_op.register_fake
def _(table, a, b, lengths, base, ints, floats, keep):
    plan = _unpack_plan(ints, floats)
    n_rays, n_pts = lengths.shape
    images = table.new_empty(n_rays, plan.channels + (plan.depth > 0) if plan.emission else 1)
    return images, table.new_empty(n_rays * n_pts if keep else 0, plan.channels)


@torch.library.custom_op("voxrender::fused_render_backward", mutates_args=())
def _render_backward_op(
    grad_images: torch.Tensor,
    table: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor,
    base: torch.Tensor | None,
    kept: torch.Tensor,
    ints: list[int],
    floats: list[float],
    rows: int,
) -> torch.Tensor:
    plan = _unpack_plan(ints, floats)
    return _backward_impl(grad_images, table, a, b, lengths, base, kept, plan, rows)


@_render_backward_op.register_fake
def _(grad_images, table, a, b, lengths, base, kept, ints, floats, rows):
    return table.new_empty(rows, table.shape[1])


def _saved_table(table: torch.Tensor, lengths: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """What the backward keeps of the table: all of it only where it must sample again.

    With the samples kept the backward reads no voxel: a ``(0, C)`` stand-in (not a view, which
    would hold the storage) lets the table go when the forward returns, and the backward's peak
    memory drops by a table (4.8 / 36 MiB for the 64³ / 128³ sweep rows).
    """
    return table.new_empty(0, table.shape[1]) if _has_kept(kept, lengths) else table


def _setup_context(ctx, inputs, output):
    table, a, b, lengths, base, ints, floats, _keep = inputs
    kept = output[1]
    ctx.mark_non_differentiable(kept)
    ctx.set_materialize_grads(False)  # else a zero gradient the size of ``kept`` is made
    ctx.save_for_backward(_saved_table(table, lengths, kept), a, b, lengths, base, kept)
    ctx.plan = ints, floats
    ctx.rows = table.shape[0]
    ctx.n_inputs = len(inputs)


def _render_op_backward(ctx, grad_images, _grad_kept):
    table, a, b, lengths, base, kept = ctx.saved_tensors
    grad_table = None
    if ctx.needs_input_grad[0] and grad_images is not None:  # None: no gradient reached them
        grad_table = _render_backward_op(
            grad_images, table, a, b, lengths, base, kept, *ctx.plan, ctx.rows
        )
    return (grad_table,) + (None,) * (ctx.n_inputs - 1)  # only the table has a gradient


_render_op.register_autograd(_render_op_backward, setup_context=_setup_context)


def _render(table, a, b, lengths, base, plan: _Plan) -> torch.Tensor:
    """Images ``(R, C_out)``: the fused render of ``plan`` (one custom-operator call)."""
    keep = plan.keep_samples and table.requires_grad and torch.is_grad_enabled()
    images, _ = _render_op(table, a, b, lengths, base, *_pack_plan(plan), keep)
    return images


def _shared_volume(volume: torch.Tensor) -> torch.Tensor:
    """A volume expanded across its batch (stride 0) -> ``(1, ...)``, gradient-preserving.

    Eagerly this reads the expanded tensor's base without a ``(B, ...)`` gradient buffer
    (:func:`voxrender.voxel_table.collapse_expanded_batch`); under ``torch.compile``, which
    cannot follow ``_base``, it slices the first element (the compiler fuses away the buffer
    the slice's gradient would otherwise need).
    """
    collapsed = collapse_expanded_batch(volume)
    leaf = collapsed.requires_grad and collapsed.is_leaf  # its B elements get their own grads
    if collapsed.shape[0] > 1 and collapsed.stride(0) == 0 and not leaf:
        return collapsed[:1]
    return collapsed


def _extinction_in_range(densities: torch.Tensor, lengths: torch.Tensor) -> bool:
    """Whether every extinction opacity ``1 - exp(-sigma * step)`` lies in [0, 1].

    That is: every voxel's extinction coefficient is >= 0 (not NaN) and every ray's lengths
    ``(R, P)`` never decrease, so the raymarcher's check would not warn (CPU only: the reads
    are free).
    """
    return bool(densities.detach().amin() >= 0) and _monotone(lengths)


def _in_unit_interval(densities: torch.Tensor) -> bool:
    """Whether every voxel density lies in [0, 1] (CPU only: the read is free).

    Samples are convex blends of voxels, so voxels in [0, 1] give samples in [0, 1] and the
    raymarcher's density check can be skipped; otherwise the general path renders and warns.
    Not asked under ``torch.compile``, where no density check runs (no data-dependent branch).
    """
    lo, hi = torch.aminmax(densities.detach())
    return bool((lo >= 0) & (hi <= 1))  # NaN fails both


def _rays_need_grad(ray_bundle) -> bool:
    return any(
        getattr(ray_bundle, field).requires_grad for field in ("origins", "directions", "lengths")
    )


@dataclass(frozen=True)
class FusedInputs:
    """A render reduced to what every fused backend (CPU, Triton) reads: a table and ray lines.

    Attributes:
        table: ``(rows, C)`` channel-last zero-margined volume table (:func:`volume_table`),
            differentiable; one volume (an expanded batch collapsed) or ``B`` stacked.
        a, b: ``(3, R)`` each, rows ``x, y, z``: ray ``r`` in margined voxel units is
            ``a[:, r] + t * b[:, r]`` (:func:`rays_to_voxel_lines`).
        lengths: ``(R, P)`` the points' ``t``.
        base: ``(R,)`` int64 table row of each ray's own volume, or None (one shared volume).
        grid: ``(D, H, W)``.
        emission: emission-absorption (else absorption-only).
        surface_thickness: the EA raymarcher's ``s`` (1 for absorption-only).
        eps: the EA raymarcher's ``eps`` (0.0 for absorption-only).
        out_shape: ``(B, ...)``: the images are ``(*out_shape, C_out)``.
        background: the EA raymarcher's ``background (C_f,)`` or None: composited onto the
            backend's images afterwards (:func:`finish`), the reference path's formula.
        depth: the EA raymarcher's expected depth channel: 0 none, 1 ``sum_i w_i t_i``, 2 that
            divided by ``sum_i w_i`` (``return_depth``, ``normalize_depth``); the fused CPU
            path renders it, the Triton backend does not.
        extinction: the raymarcher's ``density_mode == "extinction"`` (fused CPU path only).
        last_step: its ``last_step_length``.
    """

    table: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    lengths: torch.Tensor
    base: torch.Tensor | None
    grid: tuple[int, int, int]
    emission: bool
    surface_thickness: int
    eps: float
    out_shape: tuple[int, ...]
    background: torch.Tensor | None = None
    depth: int = 0
    extinction: bool = False
    last_step: float = 1e10

    @property
    def channels(self) -> int:
        """``C`` of the table (``1 + C_f`` for EA, 1 for AO)."""
        return self.table.shape[1]


def fused_ineligible(volumes, ray_bundle, raymarcher) -> str | None:
    """Why no fused backend can render these inputs (a sentence), or None if one may.

    Device-independent: the backends add their own conditions (device, build) on top.
    """
    if not isinstance(volumes, Volumes):
        return f"the volumes are {type(volumes).__name__}, not voxrender.Volumes"
    emission = type(raymarcher) is EmissionAbsorptionRaymarcher
    if not emission and type(raymarcher) is not AbsorptionOnlyRaymarcher:
        return (
            f"the raymarcher is {type(raymarcher).__name__}, not voxrender's "
            "EmissionAbsorptionRaymarcher or AbsorptionOnlyRaymarcher"
        )
    if getattr(ray_bundle, "camera_ids", None) is not None:
        return "the ray bundle is heterogeneous (camera_ids)"
    if _rays_need_grad(ray_bundle):
        return "the rays (origins, directions or lengths) require grad"
    densities, features = volumes.densities(), volumes.features()
    if emission and features is None:
        return "emission-absorption needs features and the volumes have none"
    if densities.shape[1] != 1:
        return f"the volumes have {densities.shape[1]} density channels, not 1"
    if densities.dtype not in (torch.float32, torch.float64):
        return f"the volumes are {densities.dtype}, not float32 or float64"
    if emission and (features.dtype != densities.dtype or features.device != densities.device):
        return "the volumes' features and densities differ in dtype or device"
    origins, lengths = ray_bundle.origins, ray_bundle.lengths
    if origins.dtype != densities.dtype or lengths.dtype != densities.dtype:
        return f"the rays are {origins.dtype}, the volumes {densities.dtype}"
    if origins.device != densities.device:
        return f"the rays are on {origins.device}, the volumes on {densities.device}"
    if lengths.shape[-1] == 0 or origins.numel() == 0:
        return "the bundle has no rays or no points per ray"
    return None


def prepare_fused(volumes, ray_bundle, raymarcher, kwargs: dict) -> FusedInputs | str:
    """The inputs of a fused render (shared by the CPU and Triton backends), or why not.

    Checks the raymarcher's ``eps`` and the volumes' densities, once on the voxels (whose
    blends the samples are) rather than on every sample: on CPU tensors (a free read) voxels
    outside [0, 1] leave the render to the general path, which warns per sample as PyTorch3D;
    on accelerators the check is queued (:func:`~voxrender._checks.check_density_range`, never
    a sync) and warns from a later call, while the fused backend renders.

    Returns:
        A :class:`FusedInputs`, or a sentence saying why no fused backend applies.
    """
    reason = fused_ineligible(volumes, ray_bundle, raymarcher)
    if reason is not None:
        return reason
    emission = type(raymarcher) is EmissionAbsorptionRaymarcher
    extinction = getattr(raymarcher, "density_mode", "opacity") == "extinction"
    densities, features = volumes.densities(), volumes.features()
    origins, directions, lengths = ray_bundle.origins, ray_bundle.directions, ray_bundle.lengths
    batch, ray_shape = origins.shape[0], origins.shape[1:-1]
    origins_local, directions_local = rays_to_local(origins, directions, volumes)  # (B, ..., 3)
    if origins_local.requires_grad:  # the volumes' placement is being learnt: general path
        return "the volumes' placement (world-to-local transform) requires grad"
    grid = tuple(densities.shape[2:])
    a, b = rays_to_voxel_lines(
        origins_local.reshape(-1, 3),
        directions_local.reshape(-1, 3),
        grid,
        volumes.get_align_corners(),
    )  # (3, B*R) each
    n_pts = lengths.shape[-1]
    flat_lengths = lengths.reshape(-1, n_pts)  # (B*R, P), a view where the layout allows

    if emission:
        d1, f1 = _shared_volume(densities), _shared_volume(features)
        if d1.shape[0] != f1.shape[0]:
            d1, f1 = densities, features
    else:
        d1, f1 = _shared_volume(densities), None
    if torch.compiler.is_compiling():
        pass  # no density check inside a graph (no data-dependent branch), as the general path
    elif d1.device.type == "cpu" and extinction:
        if not _extinction_in_range(d1, flat_lengths):
            return (
                "the volumes' densities are not all >= 0 or a ray's lengths decrease (negative "
                "steps): the general path renders them and warns per sample"
            )
    elif d1.device.type == "cpu":
        if not _in_unit_interval(d1):
            return (
                "the volumes' densities are not all in [0, 1]: the general path renders them "
                "and warns per sample, as PyTorch3D"
            )
    elif not extinction:  # queued on the device, never a sync: warns from a later call
        check_density_range(d1, "volumes.densities()")
    table = volume_table(d1, f1)  # (rows, C)
    base = None
    if d1.shape[0] > 1:  # one volume per batch element
        rows = table.shape[0] // d1.shape[0]
        per_batch = torch.arange(batch, device=origins.device) * rows
        base = per_batch.repeat_interleave(ray_shape.numel())  # (B*R,)
    eps = _check_eps(kwargs.get("eps", 1e-10)) if emission else 0.0
    background = getattr(raymarcher, "background", None) if emission else None
    if background is not None and background.shape[0] != features.shape[1]:
        raise ValueError(
            f"background: expected shape ({features.shape[1]},), one value per feature "
            f"channel of the volumes, got shape {tuple(background.shape)}"
        )
    return FusedInputs(
        table=table,
        a=a,
        b=b,
        lengths=flat_lengths,
        base=base,
        grid=grid,
        emission=emission,
        surface_thickness=raymarcher.surface_thickness if emission else 1,
        eps=eps,
        out_shape=(batch, *ray_shape),
        background=background,
        depth=_depth_code(raymarcher) if emission else 0,
        extinction=extinction,
        last_step=raymarcher.last_step_length if extinction else 1e10,
    )


def _depth_code(raymarcher) -> int:
    """0 (no depth channel), 1 (``sum w t``) or 2 (normalised) for an EA raymarcher."""
    if not getattr(raymarcher, "return_depth", False):
        return 0
    return 2 if raymarcher.normalize_depth else 1


def finish(inputs: FusedInputs, images: torch.Tensor) -> torch.Tensor:
    """A fused backend's ``images (B, ..., C_out)`` with the raymarcher's post-ops applied.

    The post-op is the background colour, by the same formula as the reference path.
    """
    if inputs.background is None:
        return images
    if not inputs.depth:
        return _composite_background(images, inputs.background)
    rendered = _composite_background(images[..., :-1], inputs.background)  # (B, ..., C_f + 1)
    return torch.cat((rendered, images[..., -1:]), dim=-1)


def cpu_ineligible(inputs: FusedInputs) -> str | None:
    """Why the fused CPU backend cannot render ``inputs`` (a sentence), or None."""
    if inputs.table.device.type != "cpu":
        return f"the fused CPU path runs on CPU tensors, these are on {inputs.table.device}"
    if not _sparse_products_work(inputs.table.dtype, _index_dtype(inputs.table.shape[0])):
        return "this PyTorch build cannot multiply sparse CSR matrices into dense out= tensors"
    return None


def render_cpu(inputs: FusedInputs, bounded: bool = False) -> torch.Tensor:
    """The fused CPU render of ``inputs``: images ``(B, ..., C_out)``.

    Args:
        inputs: from :func:`prepare_fused`, with :func:`cpu_ineligible` None.
        bounded: recompute the samples in the backward pass instead of keeping them: memory
            then stays the volume plus chunk buffers whatever the number of rays.
    """
    table, n_pts = inputs.table, inputs.lengths.shape[-1]
    plan = _Plan(
        grid=inputs.grid,
        channels=inputs.channels,
        emission=inputs.emission,
        surface_thickness=inputs.surface_thickness,
        eps=inputs.eps,
        rays_per_chunk=max(1, _POINTS_PER_CHUNK // n_pts),
        workers=0,  # decided when the operator runs (torch.get_num_threads() then)
        keep_samples=not bounded,
        eps_vanishes=_eps_vanishes(inputs.eps, table.dtype),
        depth=inputs.depth,
        extinction=inputs.extinction,
        last_step=inputs.last_step,
    )
    images = _render(table, inputs.a, inputs.b, inputs.lengths, inputs.base, plan)  # (B*R, C_out)
    return images.view(*inputs.out_shape, images.shape[-1])


def fused_render(
    volumes, ray_bundle, raymarcher, kwargs: dict, bounded: bool = False
) -> torch.Tensor | None:
    """Render ``raymarcher(VolumeSampler(volumes)(ray_bundle))`` fused on the CPU, if possible.

    What the fused path covers is described in :mod:`voxrender.backends`; anything else returns
    None and the caller takes the general path, which gives the same numbers.

    Args:
        volumes: the volumes, batch ``B`` (or 1).
        ray_bundle: ``origins (B, ..., 3)``, ``directions (B, ..., 3)``, ``lengths (B, ..., P)``.
        raymarcher: the renderer's raymarcher.
        kwargs: the keyword arguments the raymarcher would get (``eps`` is read from them).
        bounded: see :func:`render_cpu`.

    Returns:
        Images ``(B, ..., C_f + 1)`` (EA) or ``(B, ..., 1)`` (AO), or None.
    """
    inputs = prepare_fused(volumes, ray_bundle, raymarcher, kwargs)
    if isinstance(inputs, str) or cpu_ineligible(inputs) is not None:
        return None
    return finish(inputs, render_cpu(inputs, bounded))

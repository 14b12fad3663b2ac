"""Fused volume rendering in Triton: march each ray point by point, no per-sample tensors.

The same render as :mod:`voxrender.fused` (whose :func:`~voxrender.fused.prepare_fused` builds
the inputs: the channel-last zero-margined table, each ray as ``u = a + t * b`` in margined voxel
units, the per-ray ``base`` row of batched volumes), computed by two Triton kernels wrapped as
the custom operators ``voxrender::triton_render`` and ``voxrender::triton_render_backward``, so
``torch.compile`` sees one opaque call. The kernels run compiled on CUDA tensors and, with
``TRITON_INTERPRET=1`` set before they are first imported, in triton's interpreter on CPU tensors
(how they are tested without a GPU). triton is optional: without it this backend is ineligible.

Dimension letters: ``R`` rays, ``P`` points per ray, ``C`` table channels (``1 + C_f`` for EA,
1 for AO), ``BR`` rays per program.

Forward (one program per ``BR`` rays, a loop over the ``P`` points): the point
``u = a + t b`` (NaN -> 0, clamped to the margined grid), the 8 trilinear weights, one
``(BR, C)`` gather per corner from the channel-last table (``C`` contiguous values: 16 bytes for
RGB + density in float32), then emission-absorption compositing as in
:mod:`voxrender.raymarching`: ``x_i = (1 + eps) - d_i`` (``1 + eps`` rounded to the dtype, as
torch does), ``T_i = prod_{j <= i - s} x_j`` as a running product fed from a ring of the last
``s`` values of ``x``, features ``sum_i d_i T_i f_i``, opacity ``1 - prod_i (1 - d_i)``. Only the
images are written.

Empty-space skipping, exact: each ray marches only its run ``[first, stop)`` of samples that
can read the volume (:func:`sample_ranges`: the depths between its entry into and exit from the
volume's box, found per ray in torch, O(R log P), the same windows the fused CPU path computes),
and a program loops from its rays' smallest ``first`` to their largest ``stop``, each ray masked
to its own run. A skipped sample would read exactly zero (every corner of its footprint in the
zero margin): it adds nothing and lets all light through (``1 - 0 = 1``), so the images and
gradients are those of the full march with fewer samples visited (about 65% of them in the fit
tutorial's geometry). Where ``(1 + eps) - 0 != 1`` in the dtype (EA in float64 at the default
eps), each sample in front of a run still multiplies the transmittance by ``1 + eps``: the
kernels multiply those factors in, in order, without visiting the samples. Rays with
decreasing or NaN depths march every sample. Within a run, a point whose 8 corners all lie in
the margin still issues no table loads (masked). There is no early exit on low transmittance
(it would not be exact).

Backward, division-free. With ``e_k = d_k (f_k . gF)`` (``gF``, ``gO`` the images' gradient for
the features and the opacity), ``X_i = prod_{l < i} x_l`` (so ``T_i = X_{i-s+1}``),
``A_i = prod_{l < i} (1 - d_l)`` and ``B_i = prod_{l > i} (1 - d_l)``::

    dL/df_i = d_i T_i gF
    dL/dd_i = T_i (f_i . gF) - X_i S_i + gO A_i B_i
    S_i     = sum_{k >= i + s} e_k prod_{i < l <= k - s} x_l = e_{i+s} + x_{i+1} S_{i+1}

(``e_k = 0`` for ``k >= P``, ``S_{P-1} = 0``): derivatives of the products are products over
``l != i``, never ``T / x_i``, so densities of exactly 1 (``x = 0``) or 0 need no special case.
``S`` and ``B`` are suffix quantities (a reverse sweep carries them), ``X`` and ``A`` prefix
ones. Without a per-sample buffer the prefixes are checkpointed: pass 1 marches the densities
forward and keeps ``X`` and ``A`` at the start of each segment of ``K ~ sqrt(P)`` points (a
``(BR, P/K)`` register tile); then for each segment from the far end, pass 2 recomputes its
prefixes into ``(BR, K + s - 1)`` register tiles and pass 3 walks it backwards, carrying ``S``,
``B`` and a ring of the last ``s`` values of ``e``, and adds ``w_k * dL/dvalue_i`` into the
gradient table at the 8 corners with atomic adds. All three passes cover the program's runs
only (the same ``first``, ``stop``, saved by the forward): outside them the prefix products
are 1, ``S`` is 0 and ``B`` is 1, and the samples' gradient would reach only the margin.
Cost: about 3 gathers per point of a run (2 of the density only) and 8 atomic adds of ``C``
values per point inside the box. A volume expanded
across the batch is one table and one gradient table; batched volumes are read and written at
each ray's ``base``. The atomics make the gradient's summation order vary run to run, so this
backend is not used under ``torch.use_deterministic_algorithms(True)``.

Design for the GPU (fixed configurations, no autotuning, no host syncs): ``BR`` = 64 rays per
program forward, 32 backward (register tiles), 4 warps; the loop over points is sequential per
ray, the rays of a program are independent lanes; gathers of ``C`` contiguous channels per
corner (vectorised); ``int64`` row offsets (tables of any size). Not yet measured on a GPU.
"""

from __future__ import annotations

import math

import torch

from .fused import sample_windows

__all__: list[str] = []  # internal: reached through voxrender.backends

_FORWARD_RAYS = 64
_BACKWARD_RAYS = 32
_WARPS = 4

_kernels = None
_import_error: str | None = None


def _load():
    """The kernels module, imported once (None when triton does not import)."""
    global _kernels, _import_error
    if _kernels is None and _import_error is None:
        try:
            from . import _triton_kernels
        except Exception as error:  # ImportError, or a broken triton install
            _import_error = f"{type(error).__name__}: {error}"
        else:
            _kernels = _triton_kernels
    return _kernels


def unavailable() -> str | None:
    """Why triton cannot be used at all in this process (a sentence), or None."""
    if _load() is None:
        return f"triton does not import ({_import_error})"
    return None


def interpreted() -> bool:
    """Whether the kernels run in triton's interpreter (``TRITON_INTERPRET=1`` at import)."""
    return _load() is not None and _kernels.INTERPRETED


def device_ineligible(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device`` (a sentence), or None."""
    reason = unavailable()
    if reason is not None:
        return reason
    if device.type == "cuda" or (device.type == "cpu" and interpreted()):
        return None
    if device.type == "cpu":
        return (
            "the Triton kernels run on CUDA tensors; CPU tensors need TRITON_INTERPRET=1 set "
            "before voxrender's Triton kernels are first imported (triton's interpreter)"
        )
    return f"the Triton kernels run on CUDA tensors, these are on {device}"


def _pow2(n: int) -> int:
    return max(2, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def _params(table, lengths, emission: bool, surface_thickness: int) -> dict:
    """Compile-time parameters of both kernels."""
    n_pts = lengths.shape[1]
    s = max(1, min(surface_thickness, n_pts))  # s >= P: every T_i is 1, as with s = P
    return {
        "P": n_pts,
        "C": table.shape[1],
        "CP": _pow2(table.shape[1]),
        "EMISSION": emission,
        "S": s,
        "SR": _pow2(s),
    }


def _launch(kernel, rays_per_program, n_rays, device, *args, **constants):
    grid = (triton_cdiv(n_rays, rays_per_program),)
    if device.type == "cuda":
        with torch.cuda.device(device):
            kernel[grid](*args, BR=rays_per_program, num_warps=_WARPS, **constants)
    else:
        kernel[grid](*args, BR=rays_per_program, **constants)


def triton_cdiv(n: int, d: int) -> int:
    return -(-n // d)


def _grid_constants(grid) -> dict:
    d, h, w = grid
    return {"GX": w, "GY": h, "GZ": d}


def sample_ranges(inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples each ray's march visits, ``[first, stop)`` (all others are skipped, exactly).

    A sample outside the run cannot touch a voxel (:func:`voxrender.fused.sample_windows`, the
    definition the fused CPU path skips by): every corner of its trilinear footprint is in the
    zero margin, so it reads density 0, adds nothing and lets all light through
    (``1 - 0 = 1``; in front of the run, where ``(1 + eps) - 0 != 1``, the kernels multiply in
    its ``1 + eps`` without visiting it, so the runs do not depend on ``eps``). Rays whose depths
    decrease somewhere (or are NaN) visit every sample, as before. Tensor operations only, on
    the rays' device (no host sync): O(R log P).

    Args:
        inputs: :class:`voxrender.fused.FusedInputs`.

    Returns:
        ``first (R,)`` and ``stop (R,)``, int32, ``0 <= first <= stop <= P``; an empty run
        (``first == stop``) for a ray that misses the box.
    """
    lengths = inputs.lengths  # (R, P)
    n_pts = lengths.shape[1]
    first, stop = sample_windows(inputs.a, inputs.b, lengths, inputs.grid)  # (R,) each
    ordered = (lengths[:, 1:] >= lengths[:, :-1]).all(1)  # (R,) depths in order (NaN: False)
    first = torch.where(ordered, first, 0)
    stop = torch.where(ordered, stop, n_pts)
    return first.to(torch.int32), stop.to(torch.int32)


# A custom operator's schema takes tensors and scalars only: the grid dims and the flags travel
# as one list[int] (_pack_ints / _unpack_ints), eps as a float.


def _pack_ints(grid, emission: bool, surface_thickness: int) -> list[int]:
    return [*grid, int(emission), surface_thickness]


def _unpack_ints(ints: list[int]) -> tuple[tuple[int, int, int], bool, int]:
    d, h, w, emission, surface_thickness = ints
    return (d, h, w), bool(emission), surface_thickness


@torch.library.custom_op("voxrender::triton_render", mutates_args=())
def _forward_op(
    table: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor,
    base: torch.Tensor | None,
    first: torch.Tensor,
    stop: torch.Tensor,
    ints: list[int],
    eps: float,
) -> torch.Tensor:
    kernels = _load()
    grid, emission, surface_thickness = _unpack_ints(ints)
    table, a, b, lengths = table.contiguous(), a.contiguous(), b.contiguous(), lengths.contiguous()
    n_rays = lengths.shape[0]
    out = table.new_empty(n_rays, table.shape[1] if emission else 1)
    one_eps = torch.full((1,), 1.0 + eps, dtype=table.dtype, device=table.device)
    params = _params(table, lengths, emission, surface_thickness)
    if n_rays:
        _launch(
            kernels.render_forward_kernel, _FORWARD_RAYS, n_rays, table.device,
            table, a, b, lengths, base, first, stop, out, n_rays, one_eps, first,  # no count
            HAS_BASE=base is not None, **params, **_grid_constants(grid),
        )  # fmt: skip
    return out


@_forward_op.register_fake
def _(table, a, b, lengths, base, first, stop, ints, eps):
    _, emission, _ = _unpack_ints(ints)
    return table.new_empty(lengths.shape[0], table.shape[1] if emission else 1)


@torch.library.custom_op("voxrender::triton_render_backward", mutates_args=())
def _backward_op(
    grad_images: torch.Tensor,
    table: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    lengths: torch.Tensor,
    base: torch.Tensor | None,
    first: torch.Tensor,
    stop: torch.Tensor,
    ints: list[int],
    eps: float,
) -> torch.Tensor:
    kernels = _load()
    grid, emission, surface_thickness = _unpack_ints(ints)
    table, a, b, lengths = table.contiguous(), a.contiguous(), b.contiguous(), lengths.contiguous()
    grad_images = grad_images.contiguous()
    n_rays = lengths.shape[0]
    grad_table = torch.zeros_like(table, memory_format=torch.contiguous_format)
    one_eps = torch.full((1,), 1.0 + eps, dtype=table.dtype, device=table.device)
    params = _params(table, lengths, emission, surface_thickness)
    k = _pow2(math.isqrt(max(params["P"] - 1, 0)) + 1)  # segment length ~ sqrt(P)
    nseg = triton_cdiv(params["P"], k)
    if n_rays:
        _launch(
            kernels.render_backward_kernel, _BACKWARD_RAYS, n_rays, table.device,
            grad_images, table, a, b, lengths, base, first, stop, grad_table, n_rays, one_eps,
            HAS_BASE=base is not None, K=k, W=_pow2(k + params["S"] - 1), NSEG=nseg,
            NSP=_pow2(nseg), **params, **_grid_constants(grid),
        )  # fmt: skip
    return grad_table


@_backward_op.register_fake
def _(grad_images, table, *args):
    return torch.empty_like(table)


def _setup_context(ctx, inputs, output):
    table, a, b, lengths, base, first, stop, ints, eps = inputs
    ctx.save_for_backward(table, a, b, lengths, base, first, stop)  # the same runs backward
    ctx.params = ints, eps
    ctx.n_inputs = len(inputs)


def _backward(ctx, grad_images):
    table, a, b, lengths, base, first, stop = ctx.saved_tensors
    grad_table = None
    if ctx.needs_input_grad[0]:
        grad_table = _backward_op(grad_images, table, a, b, lengths, base, first, stop, *ctx.params)
    return (grad_table,) + (None,) * (ctx.n_inputs - 1)  # only the table has a gradient


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def _forward_counts(inputs) -> torch.Tensor:
    """What the forward kernel does for ``inputs``, counted (tests): ``(3, R)`` int32.

    Per ray: the loop steps of its program (rays of one program share them), the points it
    visited (its run) and the points that gathered from the table (in the run and inside the
    box). Runs the forward kernel once, without autograd; the images are dropped.
    """
    kernels = _load()
    lengths = inputs.lengths.contiguous()
    table = inputs.table.detach().contiguous()
    n_rays = lengths.shape[0]
    base = None if inputs.base is None else inputs.base.to(torch.int64)
    first, stop = sample_ranges(inputs)
    out = table.new_empty(n_rays, table.shape[1] if inputs.emission else 1)
    counts = torch.zeros(3, n_rays, dtype=torch.int32, device=table.device)
    one_eps = torch.full((1,), 1.0 + inputs.eps, dtype=table.dtype, device=table.device)
    params = _params(table, lengths, inputs.emission, inputs.surface_thickness)
    _launch(
        kernels.render_forward_kernel, _FORWARD_RAYS, n_rays, table.device,
        table, inputs.a.contiguous(), inputs.b.contiguous(), lengths, base, first, stop, out,
        n_rays, one_eps, counts,
        HAS_BASE=base is not None, COUNT=True, **params, **_grid_constants(inputs.grid),
    )  # fmt: skip
    return counts


def render_triton(inputs) -> torch.Tensor:
    """The Triton render of ``inputs`` (:class:`voxrender.fused.FusedInputs`): ``(B, ..., C_out)``.

    The caller has checked :func:`device_ineligible` (voxrender.backends does).
    """
    base = None if inputs.base is None else inputs.base.to(torch.int64)
    first, stop = sample_ranges(inputs)  # (R,) each
    ints = _pack_ints(inputs.grid, inputs.emission, inputs.surface_thickness)
    images = _forward_op(
        inputs.table, inputs.a, inputs.b, inputs.lengths, base, first, stop, ints, inputs.eps
    )
    return images.view(*inputs.out_shape, images.shape[-1])

"""Compile voxrender's Triton kernels for an NVIDIA GPU ahead of time, without a GPU.

The interpreter tests (test_triton.py) check what the kernels compute; this checks that the
compiler accepts them (types, loop-carried values, constexpr branches): triton lowers each
variant to PTX and runs ptxas (bundled with triton) for ``sm_90`` (H100 / H200). Run it in a
process without ``TRITON_INTERPRET``::

    python tests/triton_aot_check.py          # float32 emission-absorption, s = 1
    python tests/triton_aot_check.py --all    # float32/float64 x EA/AO x s in {1, 3}

Prints one line per kernel and exits non-zero when any fails to compile.
"""

from __future__ import annotations

import os
import sys
import time


def _pow2(n: int) -> int:
    return max(2, 1 << (n - 1).bit_length())


def main(argv: list[str]) -> int:
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from voxrender import _triton_kernels as kernels

    target = GPUTarget("cuda", 90, 32)
    variants = [("fp32", True, 1)]
    if "--all" in argv:
        variants = [(d, e, s) for d in ("fp32", "fp64") for e in (True, False) for s in (1, 3)]
    failures = 0
    for dtype, emission, s in variants:
        channels = 4 if emission else 1
        common = dict(
            P=150, C=channels, CP=_pow2(channels), GX=128, GY=96, GZ=64, EMISSION=emission,
            S=s, SR=_pow2(s), HAS_BASE=True,
        )  # fmt: skip
        pointers = ("table_ptr", "a_ptr", "b_ptr", "len_ptr")
        forward = {"table_ptr": f"*{dtype}"} | {p: f"*{dtype}" for p in pointers}
        forward |= {"base_ptr": "*i64", "first_ptr": "*i32", "stop_ptr": "*i32"}
        forward |= {"out_ptr": f"*{dtype}", "R": "i32"}
        forward |= {"one_eps_ptr": f"*{dtype}", "count_ptr": "*i32"}
        backward = {"grad_out_ptr": f"*{dtype}"} | {p: f"*{dtype}" for p in pointers}
        backward |= {"base_ptr": "*i64", "first_ptr": "*i32", "stop_ptr": "*i32"}
        backward |= {"grad_ptr": f"*{dtype}", "R": "i32"}
        backward |= {"one_eps_ptr": f"*{dtype}"}
        jobs = [
            ("forward", kernels.render_forward_kernel, forward, dict(common, BR=64, COUNT=False)),
            (
                "backward",
                kernels.render_backward_kernel,
                backward,
                dict(common, BR=32, K=16, W=_pow2(16 + s - 1), NSEG=10, NSP=16),
            ),
        ]
        for name, fn, signature, constants in jobs:
            signature = dict(signature) | dict.fromkeys(constants, "constexpr")
            start = time.perf_counter()
            label = f"{name} {dtype} {'EA' if emission else 'AO'} s={s}"
            try:
                triton.compile(
                    ASTSource(fn=fn, signature=signature, constexprs=constants),
                    target=target,
                    options={"num_warps": 4},
                )
            except Exception as error:
                failures += 1
                print(f"{label}: FAILED {type(error).__name__}: {error}")
            else:
                print(f"{label}: compiled for sm_90 in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One prepared GPU check: tests, parity and the benchmark report, within a fixed time budget.

``python -m benchmarks.gpu_check`` on a machine with one CUDA GPU, from the working tree:

1. **tests**: ``python -m pytest --device cuda`` (the device-parametrized tests on CUDA, the
   CUDA-marked ones; CPU-only tests skip saying why), capped in time;
2. **parity**: a render and a fit step's gradients on the GPU, the Triton backend and ``auto``
   against the reference (general) path, PyTorch3D against the reference; which backend
   ``auto`` took and why;
3. **benchmarks**: ``benchmarks.report``'s cases (``fit_step``, ``render_fwd``) at the tutorial
   and the small configs for the general path eager and compiled (``voxrender-reference[-
   compiled]``), the Triton path eager and compiled (``voxrender-triton[-compiled]``), the
   plain-torch baseline and PyTorch3D; the physical limit of each (bytes moved / the GPU's DRAM
   bandwidth) and the tutorial fit step against the targets (10x PyTorch3D's steps/s, 1/5 of
   its memory, within 3x of the bound);

and writes ``gpu-check-<hardware>.json`` and ``.md`` to ``--out`` (default ``$OUT`` when set,
else ``benchmarks/results/gpu``), after every phase, so that whatever ran is kept even if the
run is cut short.

Robustness: every phase and every benchmark group (one backend, all its cases) runs in its own
process group with a timeout taken from one global budget (``--budget``, default 450 s), so the
whole ends in time even if something hangs, and a CUDA error in one backend cannot poison the
others; a failing case records its error and the rest still run. Timed calls synchronise the
device; peak memory comes from ``torch.cuda.max_memory_allocated`` reset before each case.

Rehearse on the CPU: ``python -m benchmarks.gpu_check --device cpu --dry-run`` (tiny config,
one repeat, ``torch.compile`` with the ``eager`` backend, a few tests, a nominal 4.8 TB/s for
the bound's arithmetic).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "TARGETS", "main", "plan", "targets_table"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PHASES = ("tests", "parity", "bench")
# Benchmark groups in order of importance: when the budget runs out, the last are not run.
GPU_BACKENDS = (
    "pytorch3d",
    "voxrender-triton",
    "baseline",
    "voxrender-reference",
    "voxrender-triton-compiled",
    "voxrender-reference-compiled",
)
GPU_COMPONENTS = ("fit_step", "render_fwd")
# The targets for the tutorial fit step, against PyTorch3D.
TARGETS = {"speedup_vs_pytorch3d": 10.0, "memory_vs_pytorch3d": 0.2, "times_bound": 3.0}
RESULT_MARKER = "GPU-CHECK-RESULT "


# --------------------------------------------------------------------------------------------
# Running a phase in a process group with a deadline
# --------------------------------------------------------------------------------------------


class Budget:
    """Seconds left of the global budget, minus a reserve kept for writing the report."""

    def __init__(self, total: float, reserve: float = 8.0):
        self.start = time.monotonic()
        self.total = total
        self.reserve = reserve

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.total - self.reserve - self.elapsed()


def _child_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if args.pytorch3d:
        env["VOXRENDER_PYTORCH3D_PATH"] = str(Path(args.pytorch3d).resolve())
    return env


def run_limited(cmd: list[str], timeout: float, env: dict, log: Path) -> dict[str, Any]:
    """Run ``cmd`` in its own process group, output to ``log``; kill the group at ``timeout``.

    Returns:
        ``returncode`` (None when killed), ``timed_out``, ``wall_s``.
    """
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=max(1.0, timeout))
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = None, True
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child's helpers (compile workers) too
            proc.wait()
    return {"returncode": code, "timed_out": timed_out, "wall_s": time.monotonic() - t0}


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _results(path: Path) -> list[dict]:
    """The ``RESULT_MARKER`` lines a worker printed."""
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(RESULT_MARKER):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line[len(RESULT_MARKER) :]))
    return out


# --------------------------------------------------------------------------------------------
# Phase 1: the test suite on the device
# --------------------------------------------------------------------------------------------


def _junit_counts(path: Path) -> dict[str, int] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed, capped = [], 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
        skipped = case.find("skipped")
        if skipped is not None and "time cap" in (skipped.get("message") or ""):
            capped += 1
    counts["failed_tests"] = failed[:50]
    counts["not_run_time_cap"] = capped
    return counts


def run_tests(args, budget: Budget, work: Path, out_dir: Path) -> dict[str, Any]:
    timeout = min(args.tests_timeout, budget.left())
    if timeout < 10:
        return {"status": "not run", "reason": "time budget spent"}
    junit = work / "pytest.xml"
    cmd = [sys.executable, "-m", "pytest", "--device", args.device, "-q", "-p", "no:cacheprovider",
           "-p", "benchmarks._pytest_deadline", f"--maxfail={args.maxfail}",
           f"--junitxml={junit}", "-o", "junit_family=xunit1"]  # fmt: skip
    cmd += args.test_args
    log = out_dir / "gpu-check-pytest.txt"
    env = _child_env(args)
    # The tests stop starting new tests 20 s before the hard timeout kills the session.
    env["VOXRENDER_TEST_DEADLINE"] = str(time.time() + max(5.0, timeout - 20.0))
    run = run_limited(cmd, timeout, env, log)
    counts = _junit_counts(junit)
    if run["timed_out"]:
        status = f"timed out after {timeout:.0f} s (killed)"
    elif counts and counts["not_run_time_cap"]:
        status = (
            f"{'passed' if run['returncode'] == 0 else 'failed'} until the time cap "
            f"({counts['not_run_time_cap']} tests not run)"
        )
    elif run["returncode"] == 0:
        status = "passed"
    elif run["returncode"] == 5:
        status = "no tests collected"
    else:
        status = f"failed (exit {run['returncode']})"
    return {"status": status, "command": " ".join(cmd[1:]), "counts": counts, **run,
            "log": log.name, "tail": _tail(log, 25)}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Phase 2: parity on the device (a worker process)
# --------------------------------------------------------------------------------------------


def _parity_worker(spec: dict[str, Any]) -> None:
    """Render + fit-step gradients per backend vs the reference path; print one result each."""
    import torch

    from . import cases

    device = torch.device(spec["device"])

    def emit(record):
        print(RESULT_MARKER + json.dumps(record), flush=True)

    def run(backend: str):
        case = cases.make_case(spec["config"], backend, device, torch.float32, "fit_step",
                               compile_backend=spec["compile_backend"])  # fmt: skip
        model, optimizer = case.inputs["model"], case.inputs["optimizer"]
        with torch.no_grad():  # undo any step make_case took (a forced backend's trial call)
            model.log_densities.fill_(cases.INIT_LOG_DENSITY)
            model.log_colors.fill_(cases.INIT_LOG_COLOR)
        optimizer.state.clear()
        with torch.no_grad():  # the render at the initial parameters (the same everywhere)
            image = model(case.inputs["cameras"]).detach().clone()
        loss = case()  # one step: the loss before the update, and its gradients
        grads = [p.grad.detach().clone() for p in (model.log_densities, model.log_colors)]
        return loss.detach(), grads, image, cases.backend_used(case)

    try:
        ref = run("voxrender-reference") if cases.renderer_backend_support() is None else None
        ref_name = "voxrender-reference"
        if ref is None:
            ref, ref_name = run("voxrender"), "voxrender"
    except Exception as e:
        emit({"backend": "voxrender-reference", "status": "error", "reason": _why(e)})
        return
    emit({"backend": ref_name, "status": "ok", "backend_used": ref[3]})
    for backend in ("voxrender", "voxrender-triton", "pytorch3d"):
        if backend == ref_name:
            continue
        try:
            loss, grads, image, used = run(backend)
        except cases.CaseUnavailable as e:
            emit({"backend": backend, "status": "unavailable", "reason": e.reason})
            continue
        except Exception as e:
            emit({"backend": backend, "status": "error", "reason": _why(e)})
            continue
        # The image before the step is compared for every backend; gradients where the
        # parameters are the same tensors (PyTorch3D's model has the same shapes and values).
        err_img = (image - ref[2]).abs().max().item()
        err_loss = abs(loss.item() - ref[0].item())
        err_grad = max(
            ((g - r).abs().max() / r.abs().max().clamp_min(1e-30)).item()
            for g, r in zip(grads, ref[1], strict=True)
        )
        ok = err_img <= spec["atol_image"] and err_grad <= spec["rtol_grad"]
        emit({"backend": backend, "status": "ok" if ok else "mismatch",
              "max_abs_image_error": err_img, "loss_error": err_loss,
              "max_rel_grad_error": err_grad, "backend_used": used})  # fmt: skip


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]


def run_parity(args, budget: Budget, work: Path) -> dict[str, Any]:
    timeout = min(args.parity_timeout, budget.left())
    if timeout < 10:
        return {"status": "not run", "reason": "time budget spent", "rows": []}
    spec = {"device": args.device, "config": args.parity_config, "atol_image": 1e-4,
            "rtol_grad": 1e-3, "compile_backend": args.compile_backend}  # fmt: skip
    log = work / "parity.log"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", "parity", json.dumps(spec)]
    run = run_limited(cmd, timeout, _child_env(args), log)
    rows = _results(log)
    status = "timed out" if run["timed_out"] else f"exit {run['returncode']}"
    return {"status": status, "config": args.parity_config, "tolerances": spec, "rows": rows,
            **run, "tail": "" if run["returncode"] == 0 else _tail(log, 15)}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Phase 3: the benchmark report, one process per backend
# --------------------------------------------------------------------------------------------


def _bench_worker(specs: list[dict[str, Any]]) -> None:
    """``report.measure_case`` for each spec in this process; one result line each."""
    import torch

    from . import report

    for spec in specs:
        if spec["backend"].endswith("-compiled"):
            # A fresh compile per case: the same callable at another config would otherwise
            # recompile with dynamic shapes (a different program than a user's).
            torch._dynamo.reset()
        result = report._run_in_process(spec)
        print(RESULT_MARKER + json.dumps({"spec": spec, "result": result}), flush=True)


def plan(args) -> list[tuple[str, list[dict[str, Any]]]]:
    """The benchmark groups: ``(backend, specs)``, each spec one case, in order of importance.

    Where the installed voxrender cannot be told a backend (before the backend dispatch), the
    reference rows are joined by ``voxrender`` / ``voxrender-compiled`` (whatever it runs), so
    that voxrender is measured either way.
    """
    from .cases import renderer_backend_support

    backends = list(args.backends)
    if renderer_backend_support() is not None:
        for forced, auto in (
            ("voxrender-reference", "voxrender"),
            ("voxrender-reference-compiled", "voxrender-compiled"),
        ):
            if forced in backends and auto not in backends:
                backends.insert(backends.index(forced) + 1, auto)
    groups = []
    for backend in backends:
        specs = [
            {
                "config": config,
                "backend": backend,
                "component": component,
                "device": args.device,
                "dtype": "float32",
                "repeats": args.repeats,
                "warmup": args.warmup,
                "min_time": args.min_time,
                "compile_backend": args.compile_backend,
                "threads": None,
            }
            for config in args.configs
            for component in args.components
        ]
        groups.append((backend, specs))
    return groups


def run_bench(args, budget: Budget, work: Path, code: dict) -> list[dict[str, Any]]:
    import torch

    from . import report
    from .cases import backend_unavailable_reason

    records = []
    for backend, specs in plan(args):
        timeout = min(args.group_timeout, budget.left())
        unavailable = backend_unavailable_reason(backend, torch.device(args.device), torch.float32)
        if unavailable is not None:  # known without starting a process
            results = [{"status": "skipped", "reason": unavailable} for _ in specs]
        elif timeout < 15:
            results = [{"status": "not run", "reason": "time budget spent"} for _ in specs]
        else:
            log = work / f"bench-{backend}.log"
            cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", "bench",
                   json.dumps(specs)]  # fmt: skip
            run = run_limited(cmd, timeout, _child_env(args), log)
            done = {json.dumps(r["spec"], sort_keys=True): r["result"] for r in _results(log)}
            why = (
                f"timed out after {timeout:.0f} s" if run["timed_out"]
                else f"worker exited {run['returncode']}: {_tail(log, 1)[:300]}"
            )  # fmt: skip
            results = [
                done.get(json.dumps(s, sort_keys=True), {"status": "error", "reason": why})
                for s in specs
            ]
        for spec, result in zip(specs, results, strict=True):
            record = report.make_record(spec, result, code)
            records.append(record)
            shown = (
                f"{record['time_s']['median'] * 1e3:.4g} ms"
                if record["status"] == "ok"
                else f"{record['status']}: {record['reason']}"
            )
            _say(f"bench {spec['config']} {spec['component']} {backend}: {shown}")
        yield records


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, Any]:
    import torch

    import voxrender
    from reference.oracle import find_pytorch3d

    out: dict[str, Any] = {"voxrender_version": voxrender.__version__, "voxrender_path": None}
    out["voxrender_path"] = str(Path(voxrender.__file__).resolve().parent)
    try:
        import triton

        out["triton_version"] = triton.__version__
    except Exception as e:  # not installed (CPU wheels) or broken
        out["triton_version"] = None
        out["triton_import_error"] = _why(e)
    where, reason = find_pytorch3d()
    out["pytorch3d_source"] = where or reason
    out["cuda_version"] = torch.version.cuda
    out["triton_interpret"] = os.environ.get("TRITON_INTERPRET")
    return out


def targets_table(records: list[dict]) -> list[dict[str, Any]]:
    """The tutorial fit step of each voxrender backend against the issue's targets.

    (Another config's fit step where the tutorial's was not run: the dry run's tiny one.)
    """
    configs = [r["config"] for r in records if r["component"] == "fit_step"]
    config = "tutorial" if "tutorial" in configs or not configs else configs[0]
    by = {(r["config"], r["component"], r["backend"]): r for r in records}
    p3d = by.get((config, "fit_step", "pytorch3d"))
    rows = []
    for r in records:
        if r["config"] != config or r["component"] != "fit_step":
            continue
        if not r["backend"].startswith("voxrender") or r["status"] != "ok":
            continue
        row = {"config": config, "backend": r["backend"], "steps_per_s": r["steps_per_s"], "speedup": None,
               "memory": None, "times_bound": None}  # fmt: skip
        if p3d and p3d["status"] == "ok":
            row["speedup"] = p3d["time_s"]["median"] / r["time_s"]["median"]
            pm = p3d["memory"]["peak_working_bytes"]
            row["memory"] = r["memory"]["peak_working_bytes"] / pm if pm else None
        if r.get("physical_limit"):
            row["times_bound"] = r["physical_limit"]["times_bound"]
        row["meets"] = {
            "speedup": None if row["speedup"] is None
            else row["speedup"] >= TARGETS["speedup_vs_pytorch3d"],
            "memory": None if row["memory"] is None
            else row["memory"] <= TARGETS["memory_vs_pytorch3d"],
            "bound": None if row["times_bound"] is None
            else row["times_bound"] <= TARGETS["times_bound"],
        }  # fmt: skip
        rows.append(row)
    return rows


def _yes(flag) -> str:
    return "—" if flag is None else ("yes" if flag else "**no**")


def to_markdown(doc: dict[str, Any]) -> str:
    from . import report

    env, v = doc["env"], doc["versions"]
    dry = " (CPU dry run: tiny sizes, numbers mean nothing)" if doc["dry_run"] else ""
    lines = [
        f"# voxrender GPU check: {env['device_name']}{dry}",
        "",
        f"- commit `{env['git_commit'][:12]}`{' (dirty)' if env['git_dirty'] else ''}, "
        f"{env['date']}; torch {env['torch_version']} (CUDA {v['cuda_version']}), "
        f"triton {v['triton_version']}, Python {env['python_version']}",
        f"- PyTorch3D: {v['pytorch3d_source']}",
        f"- wall time {doc['wall_s']:.0f} s of a {doc['budget_s']:.0f} s budget",
        "",
        "## Tests",
        "",
    ]
    t = doc["tests"]
    if t.get("counts"):
        c = t["counts"]
        lines.append(
            f"`{t['command']}`: **{t['status']}**, {c['passed']} passed, {c['failures']} failed, "
            f"{c['errors']} errors, {c['skipped']} skipped in {t['wall_s']:.0f} s"
        )
        lines += [f"- failed: `{name}`" for name in c["failed_tests"]]
    else:
        lines.append(f"**{t['status']}** {t.get('reason', '')}".rstrip())
    lines += ["", f"## Parity on the device (`{doc['parity'].get('config')}` fit step)", ""]
    lines += ["| backend | status | backend taken | max image error | max grad error (rel.) | note |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for row in doc["parity"].get("rows", []):
        used = row.get("backend_used") or {}
        lines.append(
            f"| {row['backend']} | {row['status']} | {used.get('name', '—')} | "
            f"{report._fmt(row.get('max_abs_image_error'))} | "
            f"{report._fmt(row.get('max_rel_grad_error'))} | {row.get('reason') or ''} |"
        )
    if not doc["parity"].get("rows"):
        lines.append(
            f"| — | {doc['parity'].get('status')} | | | | {doc['parity'].get('tail', '')} |"
        )
    config = doc["targets"][0]["config"] if doc["targets"] else "tutorial"
    lines += ["", f"## Fit step (`{config}`) against the targets", "",
              "| backend | steps/s | speed-up vs PyTorch3D (≥ 10) | memory vs PyTorch3D (≤ 0.2) "
              "| × bound (≤ 3) |", "|---|---|---|---|---|"]  # fmt: skip
    for row in doc["targets"]:
        m = row["meets"]
        lines.append(
            f"| {row['backend']} | {report._fmt(row['steps_per_s'])} | "
            f"{report._ratio(row['speedup'])} {_yes(m['speedup'])} | "
            f"{report._ratio(row['memory'])} {_yes(m['memory'])} | "
            f"{report._ratio(row['times_bound'])} {_yes(m['bound'])} |"
        )
    used = sorted(
        {(r["backend"], (r.get("backend_used") or {}).get("name")) for r in doc["records"]
         if r.get("backend_used")}
    )  # fmt: skip
    if used:
        lines += ["", "Renderer backend each voxrender row took: "
                  + ", ".join(f"`{b}` → `{n}`" for b, n in used)]  # fmt: skip
    bench = report.to_markdown(doc).split("\n")
    bench = ["#" + x if x.startswith("#") else x for x in bench]  # one heading level down
    lines += ["", *bench]
    return "\n".join(lines) + "\n"


def _say(msg: str) -> None:
    print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _csv(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0]
    )
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--dry-run", action="store_true",
                   help="rehearsal: tiny config, 1 repeat, compile backend eager, a few tests")  # fmt: skip
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for everything (default 450; dry run 300)")  # fmt: skip
    p.add_argument("--phases", type=_csv, default=list(PHASES), help="tests,parity,bench")
    p.add_argument("--configs", type=_csv, default=None, help="default tutorial,small")
    p.add_argument("--backends", type=_csv, default=list(GPU_BACKENDS))
    p.add_argument("--components", type=_csv, default=list(GPU_COMPONENTS))
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-time", type=float, default=None, help="seconds per repeat (0.05)")
    p.add_argument("--compile-backend", default=None, help="default inductor (dry run: eager)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="DRAM TB/s for the bound (default: the GPU's data sheet by name, else "
                   "a measured copy; dry run: 4.8)")  # fmt: skip
    p.add_argument("--pytorch3d", default=None,
                   help="folder holding the pytorch3d package (sets VOXRENDER_PYTORCH3D_PATH)")  # fmt: skip
    p.add_argument("--tests-timeout", type=float, default=150.0)
    p.add_argument("--parity-timeout", type=float, default=90.0)
    p.add_argument("--group-timeout", type=float, default=150.0)
    p.add_argument("--maxfail", type=int, default=10)
    p.add_argument("--parity-config", default=None, help="default small (dry run: tiny)")
    p.add_argument("--test-args", type=str.split, default=None,
                   help="pytest selection, space separated (default: the whole suite)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    return p


def _defaults(args: argparse.Namespace) -> None:
    dry = args.dry_run
    if args.budget is None:
        args.budget = 300.0 if dry else 450.0
    if args.configs is None:
        args.configs = ["tiny"] if dry else ["tutorial", "small"]
    if args.repeats is None:
        args.repeats = 1 if dry else 5
    if args.min_time is None:
        args.min_time = 0.0 if dry else 0.05
    if dry:
        args.warmup = min(args.warmup, 1)
    if args.compile_backend is None:
        args.compile_backend = "eager" if dry else "inductor"
    if args.bandwidth is None and dry:
        args.bandwidth = 4.8
    if args.parity_config is None:
        args.parity_config = "tiny" if dry else "small"
    if args.test_args is None:
        args.test_args = ["tests/test_meta.py::test_volumes_constructor_on_meta"] if dry else []
    if args.out is None:
        env_out = os.environ.get("OUT")
        if env_out:
            args.out = Path(env_out)
        elif dry:
            args.out = Path(tempfile.mkdtemp(prefix="gpu-check-dry-run-"))
        else:
            args.out = REPO_ROOT / "benchmarks" / "results" / "gpu"


def _check_args(args) -> str | None:
    from .cases import BACKENDS, CONFIGS

    for name, values, choices in (("phases", args.phases, PHASES),
                                  ("configs", args.configs, tuple(CONFIGS)),
                                  ("backends", args.backends, BACKENDS),
                                  ("components", args.components, ("fit_step", "render_fwd",
                                   "raysampling", "grid_sampling_fwd", "grid_sampling_fwd_bwd",
                                   "raymarching_fwd", "raymarching_fwd_bwd"))):  # fmt: skip
        bad = [x for x in values if x not in choices]
        if bad or not values:
            return f"--{name}: expected a comma list of {', '.join(choices)}, got {values}"
    if args.repeats < 1 or args.warmup < 0 or args.budget <= 0:
        return "--repeats >= 1, --warmup >= 0 and --budget > 0 expected"
    if args.bandwidth is not None and not (args.bandwidth > 0 and math.isfinite(args.bandwidth)):
        return f"--bandwidth: expected TB/s > 0, got {args.bandwidth}"
    if args.pytorch3d and not (Path(args.pytorch3d) / "pytorch3d" / "__init__.py").is_file():
        return f"--pytorch3d: expected a folder holding pytorch3d/__init__.py, got {args.pytorch3d}"
    return None


def _point_at_pytorch3d(args: argparse.Namespace) -> None:
    """Set ``VOXRENDER_PYTORCH3D_PATH`` from ``--pytorch3d``, else a carried ``shared/`` copy."""
    if not args.pytorch3d and "VOXRENDER_PYTORCH3D_PATH" not in os.environ:
        from reference.oracle import find_pytorch3d

        carried = REPO_ROOT / "shared" / "pytorch3d"  # a shared/ folder travels to the device
        if find_pytorch3d()[0] is None and (carried / "pytorch3d" / "__init__.py").is_file():
            args.pytorch3d = str(carried)
    if args.pytorch3d:
        os.environ["VOXRENDER_PYTORCH3D_PATH"] = str(Path(args.pytorch3d).resolve())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 when the report was written (whatever it says)."""
    args = _parser().parse_args(argv)
    if args.worker is not None:
        kind, payload = args.worker
        if kind == "parity":
            _parity_worker(json.loads(payload))
        else:
            _bench_worker(json.loads(payload))
        return 0
    _defaults(args)
    error = _check_args(args)
    if error:
        print(error, file=sys.stderr)
        return 2
    _point_at_pytorch3d(args)
    budget = Budget(args.budget)

    import torch

    from . import report

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here (use --device cpu --dry-run to "
              "rehearse)", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device(args.device)
    try:
        env = report.environment(device)
    except Exception as e:  # CUDA present but broken: still write what can be written
        env = report.environment(torch.device("cpu"))
        env["device_error"] = _why(e)
    stem = f"gpu-check-{'dry-run-' if args.dry_run else ''}{report.hardware_slug(env)}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        bandwidth = report.memory_bandwidth(
            device, None if args.bandwidth is None else args.bandwidth * 1e12
        )
    except Exception as e:  # never lose the run to the bandwidth probe
        bandwidth = None
        _say(f"memory bandwidth unavailable: {_why(e)}")
    code = {"git_commit": env["git_commit"], "source_hash": env["source_hash"]}
    doc: dict[str, Any] = {
        "schema_version": 1,
        "kind": "gpu_check",
        "dry_run": args.dry_run,
        "budget_s": args.budget,
        "wall_s": 0.0,
        "env": env,
        "versions": _versions(),
        "bandwidth": bandwidth,
        "targets": [],
        "tests": {"status": "not run", "reason": "not selected (--phases)"},
        "parity": {"status": "not run", "reason": "not selected (--phases)", "rows": []},
        "settings": {
            "configs": args.configs,
            "backends": args.backends,
            "components": args.components,
            "dtype": "float32",
            "repeats": args.repeats,
            "warmup": args.warmup,
            "min_time_s": args.min_time,
            "isolated_processes": True,
            "compile_backend": args.compile_backend,
            "phases": args.phases,
        },
        "records": [],
    }

    def write() -> None:
        doc["wall_s"] = budget.elapsed()
        report._add_ratios(doc["records"])
        try:
            report.add_physical_limits(doc["records"], bandwidth, device)
        except Exception as e:
            _say(f"physical limits failed: {_why(e)}")
        doc["targets"] = targets_table(doc["records"])
        report.write_atomic(json_path, json.dumps(doc, indent=2, default=str) + "\n")
        report.write_atomic(md_path, to_markdown(doc))

    write()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        if "tests" in args.phases:
            _say(f"tests: pytest --device {args.device} (at most {args.tests_timeout:.0f} s)")
            doc["tests"] = run_tests(args, budget, work, args.out)
            _say(f"tests: {doc['tests']['status']}")
            write()
        if "parity" in args.phases:
            _say(f"parity on {args.device} ({args.parity_config})")
            doc["parity"] = run_parity(args, budget, work)
            for row in doc["parity"]["rows"]:
                _say(f"parity {row['backend']}: {row['status']} {row.get('reason') or ''}")
            write()
        if "bench" in args.phases:
            for records in run_bench(args, budget, work, code):
                doc["records"] = records
                write()
    write()
    _say(f"done in {budget.elapsed():.0f} s: wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""Run the benchmark matrix on this machine and write a Markdown table and a JSON file.

``python -m benchmarks.report [--device cpu|cuda] [--configs tutorial,small] [--backends ...]
[--components ...] [--repeats N] [--out benchmarks/results]`` writes
``<out>/<device>-<hardware-slug>.md`` and ``.json`` (atomically: a temporary file, then a rename).
What every number means, how memory is measured and the physical-limit model are documented in
``benchmarks/README.md``.

Each case runs in a fresh subprocess on the CPU (``--isolate auto``), so that its peak resident
memory is its own; on CUDA the cases run in this process and memory comes from the caching
allocator's counters.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .cases import (
    BACKENDS,
    COMPONENTS,
    CONFIGS,
    DEFAULT_BACKENDS,
    CaseUnavailable,
    backend_unavailable_reason,
    backend_used,
    bytes_lower_bound,
    make_case,
    touched_voxel_count,
)

__all__ = [
    "HBM_BANDWIDTH",
    "add_physical_limits",
    "environment",
    "hardware_slug",
    "main",
    "make_record",
    "measure_case",
    "memory_bandwidth",
    "peak_memory",
    "run_matrix",
    "summarize",
    "write_atomic",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH-RESULT "
SCHEMA_VERSION = 1
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Peak DRAM (HBM / GDDR) bandwidth from the vendors' data sheets, bytes/s. First match wins, so
# the more specific patterns come first. Unknown GPUs fall back to a measured copy bandwidth.
HBM_BANDWIDTH: list[tuple[str, float, str]] = [
    (r"GH200", 4.0e12, "GH200 96 GB HBM3: 4.0 TB/s"),
    (r"H200", 4.8e12, "H200 HBM3e: 4.8 TB/s"),
    (r"H100.*NVL", 3.9e12, "H100 NVL: 3.9 TB/s"),
    (r"H100.*PCIe", 2.0e12, "H100 PCIe: 2.0 TB/s"),
    (r"H100", 3.35e12, "H100 SXM: 3.35 TB/s"),
    (r"H800", 3.35e12, "H800 SXM: 3.35 TB/s"),
    (r"B200", 8.0e12, "B200: 8.0 TB/s"),
    (r"A100.*80GB.*PCIe", 1.935e12, "A100 80GB PCIe: 1.935 TB/s"),
    (r"A100.*80GB", 2.039e12, "A100 80GB SXM: 2.039 TB/s"),
    (r"A100", 1.555e12, "A100 40GB: 1.555 TB/s"),
    (r"V100", 0.9e12, "V100: 900 GB/s"),
    (r"L40", 0.864e12, "L40/L40S: 864 GB/s"),
    (r"\bL4\b", 0.3e12, "L4: 300 GB/s"),
    (r"A10G?\b", 0.6e12, "A10/A10G: 600 GB/s"),
    (r"\bT4\b", 0.32e12, "T4: 320 GB/s"),
    (r"RTX 4090", 1.008e12, "RTX 4090: 1008 GB/s"),
    (r"RTX 3090", 0.936e12, "RTX 3090: 936 GB/s"),
    (r"RTX 6000 Ada", 0.96e12, "RTX 6000 Ada: 960 GB/s"),
    (r"RTX A6000", 0.768e12, "RTX A6000: 768 GB/s"),
]


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def source_hash() -> str:
    """A short hash of the measured code (``voxrender/`` and ``benchmarks/`` Python files).

    Taken before every case, so that a run during which the code changed is flagged.
    """
    digest = hashlib.sha256()
    for folder in ("voxrender", "benchmarks"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def environment(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on: code version, libraries, hardware, load, date."""
    commit = (_git("rev-parse", "HEAD") or "unknown").strip()
    status = _git("status", "--porcelain", "--", "voxrender", "benchmarks")
    dirty_paths = [line[3:] for line in (status or "").splitlines() if line.strip()]
    try:
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        load = None
    env: dict[str, Any] = {
        "git_commit": commit,
        "git_dirty": bool(dirty_paths) if status is not None else None,
        "git_dirty_paths": dirty_paths[:50],
        "source_hash": source_hash(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device_type": device.type,
        "cpu_model": _cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=props.name,
            gpu_memory_bytes=props.total_memory,
            cuda_version=torch.version.cuda,
            gpu_count=torch.cuda.device_count(),
        )
    else:
        env["device_name"] = f"{env['cpu_model']} ({env['cpu_threads']} threads)"
    return env


def hardware_slug(env: dict[str, Any]) -> str:
    """File-name-safe hardware name: the GPU, or the CPU model and thread count."""
    if env["device_type"] == "cuda":
        name = env["device_name"]
    else:
        name = f"{env['cpu_model']}-{env['cpu_threads']}t"
    name = re.sub(r"\((r|tm)\)|\bcpu\b|@.*?ghz", " ", name, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------------------------
# Measuring one case
# --------------------------------------------------------------------------------------------


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, quartiles (linear interpolation), IQR, min, max and mean of ``samples``."""
    s = sorted(samples)
    if not s:
        raise ValueError("samples: expected at least one value, got none")

    def quantile(q: float) -> float:
        pos = q * (len(s) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    q25, q75 = quantile(0.25), quantile(0.75)
    return {
        "median": quantile(0.5),
        "q25": q25,
        "q75": q75,
        "iqr": q75 - q25,
        "min": s[0],
        "max": s[-1],
        "mean": sum(s) / len(s),
    }


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmRSS``, ``VmHWM``) in bytes."""
    try:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0: write 5 to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _trim_heap() -> None:
    """Return freed heap pages to the OS (glibc), so that RSS is what is really in use."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _memory_baseline(device: torch.device) -> int:
    """What this process holds before a case is built: CUDA allocated bytes, or RSS."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    _trim_heap()
    return _proc_status_bytes("VmRSS") or 0


def peak_memory(fn, device: torch.device, before_build: int) -> dict[str, Any]:
    """Run ``fn`` once and measure its peak memory.

    Returns:
        ``method``, ``peak_working_bytes`` (the peak above what was in use just before the
        call: the call's own temporaries) and ``peak_total_bytes`` (the peak above
        ``before_build``: the case's inputs, parameters, optimizer state and temporaries).
    """
    if device.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        method = "cuda.max_memory_allocated"
    else:
        _trim_heap()
        before = _proc_status_bytes("VmRSS")
        if before is not None and _reset_peak_rss():
            fn()
            peak = _proc_status_bytes("VmHWM")
            method = "VmHWM after clear_refs"
        else:  # fresh process: the lifetime peak, reached during one of the identical calls
            fn()
            before = before if before is not None else 0
            peak = _ru_maxrss_bytes()
            method = "ru_maxrss"
    # The RSS read before the build can exceed the one before the call when trimming the heap
    # returned pages freed by earlier cases: the lower of the two is the baseline of the total.
    return {
        "method": method,
        "peak_working_bytes": max(0, peak - before),
        "peak_total_bytes": max(0, peak - min(before_build, before)),
    }


def measure_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Build and time one case; ``spec`` holds config, backend, component, device, dtype, etc.

    Returns:
        The measurement part of a record: ``status`` (``ok`` or ``skipped``), ``reason``,
        ``time_s`` statistics and ``memory``.
    """
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    before_build = _memory_baseline(device)
    t0 = time.perf_counter()
    try:
        case = make_case(
            spec["config"],
            spec["backend"],
            device,
            DTYPES[spec["dtype"]],
            spec["component"],
            compile_backend=spec.get("compile_backend"),
        )
    except CaseUnavailable as e:
        return {"status": "skipped", "reason": e.reason}
    build_s = time.perf_counter() - t0

    first = None
    for _ in range(max(1, spec.get("warmup", 1))):
        t = time.perf_counter()
        case()
        first = time.perf_counter() - t
    number = max(1, min(1000, math.ceil(spec.get("min_time", 0.02) / max(first, 1e-9))))
    samples = []
    for _ in range(max(1, spec.get("repeats", 5))):
        t = time.perf_counter()
        for _ in range(number):
            case()
        samples.append((time.perf_counter() - t) / number)
    stats = summarize(samples)
    stats.update(repeats=len(samples), calls_per_repeat=number, warmup=spec.get("warmup", 1))
    memory = peak_memory(case, device, before_build)
    return {
        "status": "ok",
        "reason": None,
        "build_s": build_s,
        "time_s": stats,
        "memory": memory,
        "backend_used": backend_used(case),
    }


def _worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    result = measure_case(spec)
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


def _run_isolated(
    spec: dict[str, Any], timeout: float, module: str = "benchmarks.report"
) -> dict[str, Any]:
    """:func:`measure_case` in a fresh Python process (``python -m MODULE --worker SPEC``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", module, "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line)]
    tail = (errors or lines or ["(no output)"])[-1][:300]
    why = {-9: "killed (out of memory?)", 137: "killed (out of memory?)"}.get(proc.returncode)
    if proc.returncode in (-15, 143):
        why = "terminated (SIGTERM)"
    return {"status": "error", "reason": f"{why or f'exit {proc.returncode}'}: {tail}"}


def _run_in_process(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return measure_case(spec)
    except Exception as e:  # a crash of one case must not lose the others
        return {"status": "error", "reason": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# The physical limit (CUDA)
# --------------------------------------------------------------------------------------------


def measured_copy_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """Device-to-device ``copy_`` bandwidth in bytes/s (read + write counted), best of 5."""
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize(device)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * 4 / best


def memory_bandwidth(device: torch.device, given: float | None = None) -> dict[str, Any] | None:
    """The DRAM bandwidth to bound against, bytes/s.

    ``given`` (``--bandwidth``, TB/s * 1e12) wins; else on CUDA the data-sheet figure for the
    GPU's name (:data:`HBM_BANDWIDTH`), else a measured device-to-device copy. On the CPU there
    is none unless given (a rehearsal of the GPU report's arithmetic).
    """
    if device.type != "cuda":
        if given is None:
            return None
        return {"bytes_per_s": given, "source": "given (--bandwidth)", "measured_copy": None}
    name = torch.cuda.get_device_name(device)
    if given is not None:
        measured = measured_copy_bandwidth(device)
        return {"bytes_per_s": given, "source": "given (--bandwidth)", "measured_copy": measured}
    measured = measured_copy_bandwidth(device)
    for pattern, bandwidth, source in HBM_BANDWIDTH:
        if re.search(pattern, name):
            return {
                "bytes_per_s": bandwidth,
                "source": f"data sheet ({source})",
                "measured_copy": measured,
            }
    return {"bytes_per_s": measured, "source": "measured copy_ of 1 GiB", "measured_copy": measured}


# --------------------------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------------------------


def _reference(records: list[dict], record: dict) -> dict | None:
    """The record ratios are taken against: PyTorch3D when measured, else the baseline."""
    for backend in ("pytorch3d", "baseline"):
        for other in records:
            if (
                other["backend"] == backend
                and other["status"] == "ok"
                and all(other[k] == record[k] for k in ("config", "component", "dtype"))
            ):
                return other
    return None


def _add_ratios(records: list[dict]) -> None:
    for record in records:
        ref = None if record["status"] != "ok" else _reference(records, record)
        record["reference_backend"] = ref["backend"] if ref else None
        record["speedup_vs_reference"] = (
            ref["time_s"]["median"] / record["time_s"]["median"] if ref else None
        )
        ratio = None
        if ref and ref["memory"]["peak_working_bytes"] > 0:
            ratio = record["memory"]["peak_working_bytes"] / ref["memory"]["peak_working_bytes"]
        record["memory_working_vs_reference"] = ratio


def make_record(spec: dict[str, Any], result: dict[str, Any], code: dict) -> dict[str, Any]:
    """One JSON record from a case's ``spec`` and :func:`measure_case`'s ``result``."""
    config, component = spec["config"], spec["component"]
    cfg = CONFIGS[config]
    record: dict[str, Any] = {
        "config": config,
        "config_description": cfg.describe(),
        "component": component,
        "backend": spec["backend"],
        "device": torch.device(spec["device"]).type,
        "dtype": spec["dtype"],
        "status": result["status"],
        "reason": result.get("reason"),
        "n_rays": cfg.n_rays,
        "n_samples": 0 if component == "raysampling" else cfg.n_samples,
        "time_s": result.get("time_s"),
        "build_s": result.get("build_s"),
        "memory": result.get("memory"),
        "backend_used": result.get("backend_used"),
        "measured_code": code,
    }
    record["steps_per_s"] = record["rays_per_s"] = record["samples_per_s"] = None
    if record["status"] == "ok":
        median = record["time_s"]["median"]
        record["steps_per_s"] = 1.0 / median
        record["rays_per_s"] = record["n_rays"] / median
        record["samples_per_s"] = record["n_samples"] / median
    return record


def add_physical_limits(records: list[dict], bandwidth: dict | None, device: torch.device) -> None:
    """Set each record's ``physical_limit``: the bytes-moved lower bound / ``bandwidth``.

    None where there is no bandwidth (the CPU, unless ``--bandwidth`` was given) or the case
    did not run. ``times_bound`` is median / bound (the targets say "within 3x of the bound").
    """
    touched: dict[tuple[str, str], int] = {}
    for record in records:
        record["physical_limit"] = None
        if bandwidth is None or record["status"] != "ok":
            continue
        config, dtype = record["config"], DTYPES[record["dtype"]]
        if (config, record["dtype"]) not in touched:
            touched[config, record["dtype"]] = touched_voxel_count(config, device, dtype)
        voxels = touched[config, record["dtype"]]
        terms = bytes_lower_bound(config, record["component"], dtype, voxels)
        bound_s = terms["total"] / bandwidth["bytes_per_s"]
        record["physical_limit"] = {
            "bytes_lower_bound": terms,
            "touched_voxels": voxels,
            "bandwidth_bytes_per_s": bandwidth["bytes_per_s"],
            "bandwidth_source": bandwidth["source"],
            "time_lower_bound_s": bound_s,
            "achieved_fraction": bound_s / record["time_s"]["median"],
            "times_bound": record["time_s"]["median"] / bound_s,
        }


def _case_spec(args: argparse.Namespace, device, config, component, backend) -> dict[str, Any]:
    """What one case measures, as the worker and the record read it."""
    return {
        "config": config,
        "backend": backend,
        "component": component,
        "device": str(device),
        "dtype": args.dtype,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "min_time": args.min_time,
        "compile_backend": args.compile_backend,
        "threads": args.threads,
    }


def _measured_code() -> dict[str, str]:
    """The commit and source hash now (read per case: the code may change during a run)."""
    return {
        "git_commit": (_git("rev-parse", "HEAD") or "unknown").strip(),
        "source_hash": source_hash(),
    }


def _measure(spec: dict[str, Any], args: argparse.Namespace, device, isolate: bool) -> dict:
    """One case's result: skipped with the reason, else timed in a fresh process or here."""
    reason = backend_unavailable_reason(spec["backend"], device, DTYPES[args.dtype])
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    if isolate:
        return _run_isolated(spec, args.case_timeout)
    return _run_in_process(spec)


def _progress_line(i: int, n: int, record: dict[str, Any]) -> str:
    """``[i/n] config component backend: 12.3 ms`` (or the status and reason)."""
    shown = (
        f"{record['time_s']['median'] * 1e3:.3g} ms"
        if record["status"] == "ok"
        else f"{record['status']}: {record['reason']}"
    )
    return f"[{i}/{n}] {record['config']} {record['component']} {record['backend']}: {shown}"


def _matrix_document(args, device, env, bandwidth, isolate: bool, records: list) -> dict[str, Any]:
    """The JSON document of a finished matrix: ratios and limits added, env in every record."""
    _add_ratios(records)
    add_physical_limits(records, bandwidth, device)
    codes = {(r["measured_code"]["git_commit"], r["measured_code"]["source_hash"]) for r in records}
    env["code_changed_during_run"] = len(codes) > 1
    for record in records:
        record["env"] = env
    return {
        "schema_version": SCHEMA_VERSION,
        "env": env,
        "bandwidth": bandwidth,
        "settings": {
            "configs": args.configs,
            "backends": args.backends,
            "components": args.components,
            "dtype": args.dtype,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "min_time_s": args.min_time,
            "isolated_processes": isolate,
            "compile_backend": args.compile_backend or "inductor",
        },
        "records": records,
    }


def run_matrix(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (config, component, backend) and return the JSON document."""
    device = torch.device(args.device)
    env = environment(device)
    isolate = args.isolate == "yes" or (args.isolate == "auto" and device.type == "cpu")
    bandwidth = memory_bandwidth(device, getattr(args, "bandwidth", None))
    records: list[dict[str, Any]] = []
    jobs = [(c, comp, b) for c in args.configs for comp in args.components for b in args.backends]
    for i, (config, component, backend) in enumerate(jobs, 1):
        spec = _case_spec(args, device, config, component, backend)
        code = _measured_code()
        record = make_record(spec, _measure(spec, args, device, isolate), code)
        records.append(record)
        print(_progress_line(i, len(jobs), record), file=sys.stderr, flush=True)
    return _matrix_document(args, device, env, bandwidth, isolate, records)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value * scale:.{digits}g}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def to_markdown(doc: dict[str, Any]) -> str:
    """The document as Markdown: a header with the environment, one table per config."""
    env = doc["env"]
    dirty = " (dirty)" if env["git_dirty"] else ""
    lines = [
        f"# voxrender benchmarks: {env['device_type']}, {env['device_name']}",
        "",
        f"- commit `{env['git_commit'][:12]}`{dirty}, torch {env['torch_version']}, "
        f"Python {env['python_version']}, {env['date']}",
        f"- CPU: {env['cpu_model']}, {env['cpu_threads']} threads of {env['cpu_count']} CPUs; "
        f"load average {env['load_average']}",
        f"- dtype {doc['settings']['dtype']}; median and IQR over {doc['settings']['repeats']} "
        f"repeats after {doc['settings']['warmup']} warm-up call(s); "
        f"{'one fresh process per case' if doc['settings']['isolated_processes'] else 'one process'}",
        "- ratios: against `pytorch3d` when measured, else `baseline` (PyTorch3D's computation "
        "in plain torch, `benchmarks/baseline.py`); speed-up > 1 is faster, memory < 1 is less",
    ]
    if doc.get("bandwidth"):
        bw = doc["bandwidth"]
        copy = bw.get("measured_copy")
        copy = f"{copy / 1e12:.3g} TB/s" if copy else "not measured"
        lines.append(
            f"- physical limit: bytes-moved lower bound / {bw['bytes_per_s'] / 1e12:.3g} TB/s "
            f"({bw['source']}; measured copy {copy})"
        )
    if env.get("code_changed_during_run"):
        lines.append(
            "- **warning**: the code (commit or files under `voxrender/`, `benchmarks/`) changed "
            "while this ran; see each record's `measured_code` in the JSON"
        )
    load = env.get("load_average")
    if env["device_type"] == "cpu" and load and load[0] > (env["cpu_count"] or 1):
        lines.append(
            f"- **warning**: the load average ({load[0]}) exceeded the CPU count when this ran; "
            "timings are noisy"
        )
    lines.append("")
    header = (
        "| component | backend | median ms | IQR ms | steps/s | Mrays/s | Msamples/s "
        "| peak working MiB | peak total MiB | speed-up | memory | bound ms | achieved |"
    )
    rule = "|" + "---|" * 13
    for config in doc["settings"]["configs"]:
        records = [r for r in doc["records"] if r["config"] == config]
        if not records:
            continue
        lines += [f"## `{config}`: {records[0]['config_description']}", "", header, rule]
        notes = []
        for r in records:
            if r["status"] != "ok":
                notes.append(
                    f"- `{r['component']}` / `{r['backend']}`: {r['status']}: {r['reason']}"
                )
                continue
            t, m, lim = r["time_s"], r["memory"], r.get("physical_limit") or {}
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["component"],
                        r["backend"],
                        _fmt(t["median"], 1e3),
                        _fmt(t["iqr"], 1e3, 2),
                        _fmt(r["steps_per_s"]),
                        _fmt(r["rays_per_s"], 1e-6),
                        _fmt(r["samples_per_s"], 1e-6) if r["n_samples"] else "—",
                        _fmt(m["peak_working_bytes"], 1 / 2**20),
                        _fmt(m["peak_total_bytes"], 1 / 2**20),
                        _ratio(r["speedup_vs_reference"]),
                        _ratio(r["memory_working_vs_reference"]),
                        _fmt(lim.get("time_lower_bound_s"), 1e3),
                        _fmt(lim.get("achieved_fraction"), 100, 2) + ("%" if lim else ""),
                    ]
                )
                + " |"
            )
        if notes:
            lines += ["", "Not measured:", "", *notes]
        lines.append("")
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what a plain open() would give
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _csv(value: str, choices, name: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in items if x not in choices]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"--{name}: expected a comma-separated list of {', '.join(choices)}, got {value!r}"
        )
    return items


def _terabytes_per_s(value: str) -> float:
    try:
        tbps = float(value)
    except ValueError:
        tbps = math.nan
    if not (tbps > 0 and math.isfinite(tbps)):
        raise argparse.ArgumentTypeError(f"--bandwidth: expected TB/s > 0, got {value!r}")
    return tbps * 1e12


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.split("\n")[0]
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--configs", default="tutorial,small", type=lambda v: _csv(v, CONFIGS, "configs")
    )
    p.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        type=lambda v: _csv(v, BACKENDS, "backends"),
    )
    p.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        type=lambda v: _csv(v, COMPONENTS, "components"),
    )
    p.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument(
        "--min-time",
        type=float,
        default=0.02,
        help="seconds per repeat: fast cases are called several times per repeat (default 0.02)",
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    p.add_argument(
        "--isolate",
        default="auto",
        choices=("auto", "yes", "no"),
        help="one fresh process per case (auto: on the CPU only)",
    )
    p.add_argument(
        "--compile-backend", default=None, help="torch.compile backend (default inductor)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the cases (default: torch's)",
    )
    p.add_argument("--case-timeout", type=float, default=3600.0, help="seconds per isolated case")
    p.add_argument(
        "--bandwidth",
        type=_terabytes_per_s,
        default=None,
        help="DRAM bandwidth for the physical limit, TB/s (default: the GPU's data sheet, "
        "else a measured copy; on the CPU, none unless given)",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def apply_run_args(args: argparse.Namespace) -> bool:
    """Check ``--repeats`` / ``--warmup`` / ``--threads`` and apply ``--threads``.

    Shared by this report and :mod:`benchmarks.sweep`. Returns False (after one line on stderr)
    when an argument is out of range.
    """
    if args.repeats < 1 or args.warmup < 0:
        print("--repeats: expected >= 1 (and --warmup >= 0)", file=sys.stderr)
        return False
    if args.threads is not None:
        if args.threads < 1:
            print("--threads: expected >= 1", file=sys.stderr)
            return False
        torch.set_num_threads(args.threads)  # also what the environment record shows
    return True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.worker is not None:
        return _worker(args.worker)
    if not apply_run_args(args):
        return 2
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here", file=sys.stderr)
        return 2
    doc = run_matrix(args)
    stem = f"{doc['env']['device_type']}-{hardware_slug(doc['env'])}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    write_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    write_atomic(md_path, to_markdown(doc))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # SIGTERM -> SystemExit, so that subprocess.run kills the running worker on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

"""The fit-step size sweep: voxrender beside PyTorch3D from small problems to the tutorial's.

``python -m benchmarks.sweep [--rows 32,64,96,128,tutorial] [--backends voxrender,pytorch3d]
[--repeats N] [--rounds K] [--out benchmarks/results/cpu-sweep]`` times one tutorial fit step
(forward + backward + Adam, :mod:`benchmarks.cases`' ``fit_step``) at each row of :data:`ROWS`,
every case in a fresh process (its peak memory its own), a row's backends back to back so that
they see the same machine load; with ``--rounds K`` all of it K times, the backends' order
alternating, a row's speed-up the median of its rounds' ratios. It writes
``<out>/<device>-<hardware>.json``, ``.md`` and ``.png`` (time per step against samples per
step, both backends, log-log; matplotlib). PyTorch3D comes from
:func:`reference.oracle.import_pytorch3d` (installed, else ``../shared/pytorch3d``).

Dimension letters: ``B`` views, ``S`` image side, ``P`` points per ray, ``V`` voxels per side.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from .cases import CONFIGS, Config
from .report import (
    REPO_ROOT,
    RESULT_MARKER,
    _run_isolated,
    apply_run_args,
    environment,
    hardware_slug,
    measure_case,
    write_atomic,
)

__all__ = ["ROWS", "main", "plot", "register_rows", "to_markdown"]

# The sweep's rows: (name, config). Volume V^3, B views of S x S rays, P points per ray.
ROWS: dict[str, Config] = {
    "32": Config("sweep-32", batch=2, image_size=32, n_pts_per_ray=32, volume_size=32),
    "64": Config("sweep-64", batch=4, image_size=64, n_pts_per_ray=64, volume_size=64),
    "96": Config("sweep-96", batch=6, image_size=96, n_pts_per_ray=100, volume_size=96),
    "128": Config("sweep-128", batch=10, image_size=64, n_pts_per_ray=150, volume_size=128),
    "tutorial": Config(
        "sweep-tutorial", batch=10, image_size=128, n_pts_per_ray=150, volume_size=128
    ),
}
BACKENDS = ("voxrender", "pytorch3d")


def register_rows() -> None:
    """Make the rows' configs known to :func:`benchmarks.cases.make_case` (by their names)."""
    for config in ROWS.values():
        CONFIGS.setdefault(config.name, config)


def _worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    register_rows()
    if spec["backend"] == "pytorch3d":
        from reference.oracle import import_pytorch3d

        import_pytorch3d()  # into sys.modules, so that cases' plain import finds it
    print(RESULT_MARKER + json.dumps(measure_case(spec)), flush=True)
    return 0


def _run(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """:func:`benchmarks.report.measure_case` in a fresh process (``--worker`` of this module)."""
    return _run_isolated(spec, timeout, module="benchmarks.sweep")


def run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (row, backend), ``args.rounds`` times; returns the JSON document.

    Each round measures every row's backends back to back, the first backend alternating from
    round to round; a row's speed-up is the median of its rounds' ratios (each taken from two
    neighbouring measurements), so that the machine's drift over minutes cancels.
    """
    env = environment(torch.device("cpu"))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for row in args.rows:
            order = args.backends if round_ % 2 == 0 else args.backends[::-1]
            for backend in order:
                result = _run(_spec(row, backend, args), args.case_timeout)
                runs.setdefault((row, backend), []).append(result)
                shown = (
                    f"{result['time_s']['median'] * 1e3:.4g} ms, "
                    f"{result['memory']['peak_working_bytes'] / 2**20:.0f} MiB"
                    if result["status"] == "ok"
                    else f"{result['status']}: {result.get('reason')}"
                )
                tag = f" (round {round_ + 1}/{args.rounds})" if args.rounds > 1 else ""
                print(f"[{row}] {backend}{tag}: {shown}", file=sys.stderr, flush=True)
    records = []
    for row in args.rows:
        config = ROWS[row]
        for backend in args.backends:
            records.append(
                {
                    "row": row,
                    "config": config.name,
                    "config_description": config.describe(),
                    "backend": backend,
                    "n_rays": config.n_rays,
                    "n_samples": config.n_samples,
                    **_combine_rounds(runs[row, backend]),
                }
            )
    _add_ratios(records)
    return {"kind": "cpu-fit-step-sweep", "env": env, "rounds": args.rounds, "records": records}


def _spec(row: str, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "config": ROWS[row].name,
        "backend": backend,
        "component": "fit_step",
        "device": "cpu",
        "dtype": "float32",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "min_time": 0.02,
        "compile_backend": None,
        "threads": args.threads,
    }


def _combine_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's rounds as one result: the median round's, plus every round's median and peak.

    A failed round makes the whole case that failure.
    """
    failed = next((r for r in results if r["status"] != "ok"), None)
    if failed is not None:
        return failed
    times = [r["time_s"]["median"] for r in results]
    ranked = sorted(range(len(results)), key=lambda i: times[i])
    combined = dict(results[ranked[len(ranked) // 2]])
    combined["time_s"] = {**combined["time_s"], "median": statistics.median(times), "rounds": times}
    peaks = [r["memory"]["peak_working_bytes"] for r in results]
    combined["memory"] = {
        **combined["memory"],
        "peak_working_bytes": statistics.median(peaks),
        "rounds": peaks,
    }
    return combined


def _add_ratios(records: list[dict[str, Any]]) -> None:
    """Each record's speed-up and memory ratio against PyTorch3D's record of the same row.

    With rounds, the speed-up is the median of the rounds' ratios (``speedup_rounds``).
    """
    for record in records:
        ref = next(
            (
                r
                for r in records
                if r["row"] == record["row"] and r["backend"] == "pytorch3d" and r["status"] == "ok"
            ),
            None,
        )
        ok = ref is not None and record["status"] == "ok"
        record["speedup_vs_pytorch3d"] = None
        if ok:
            mine = record["time_s"].get("rounds", [record["time_s"]["median"]])
            theirs = ref["time_s"].get("rounds", [ref["time_s"]["median"]])
            ratios = [t / m for t, m in zip(theirs, mine, strict=True)]
            record["speedup_vs_pytorch3d"] = statistics.median(ratios)
            record["speedup_rounds"] = ratios
        ref_mem = ref["memory"]["peak_working_bytes"] if ok else 0
        record["memory_vs_pytorch3d"] = (
            record["memory"]["peak_working_bytes"] / ref_mem if ok and ref_mem else None
        )


def to_markdown(doc: dict[str, Any]) -> str:
    """The sweep as a Markdown table (one line per row: both backends and the ratios)."""
    env = doc["env"]
    load = env.get("load_average")
    lines = [
        "# Fit-step size sweep: voxrender vs PyTorch3D (CPU)",
        "",
        f"- commit `{env['git_commit'][:10]}`"
        + (" (dirty: " + ", ".join(env["git_dirty_paths"]) + ")" if env["git_dirty"] else ""),
        f"- torch {env['torch_version']}, Python {env['python_version']}",
        f"- {env['device_name']}, {env['cpu_count']} CPUs, load average {load}",
        f"- {env['date']}",
        "- fit step = forward + backward + Adam (the tutorial's), float32; median of the repeats;"
        " peak working memory = peak RSS of the step above the RSS before it; every case in a"
        " fresh process, a row's two backends back to back",
    ]
    rounds = doc.get("rounds", 1)
    if rounds > 1:
        lines.append(
            f"- {rounds} rounds, the backends' order alternating: times and memory are the"
            " median over rounds, the speed-up the median of the rounds' ratios (their range in"
            " brackets)"
        )
    if load and load[0] > (env.get("cpu_count") or 1):
        lines.append(
            f"- **noisy**: the load average ({load[0]:.1f}) exceeded the CPU count while this ran"
            " (the machine is shared): compare the two backends of a row, not rows across runs"
        )
    lines += [
        "",
        "| volume | views x rays x points | samples | voxrender | PyTorch3D | speed-up "
        "| voxrender MiB | PyTorch3D MiB | memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = dict.fromkeys(r["row"] for r in doc["records"])
    for row in rows:
        recs = {r["backend"]: r for r in doc["records"] if r["row"] == row}
        config = ROWS[row] if row in ROWS else None
        vox, p3d = recs.get("voxrender"), recs.get("pytorch3d")

        def t(r):
            if r is None or r["status"] != "ok":
                return "—" if r is None else r["status"]
            return f"{r['time_s']['median'] * 1e3:.4g} ms"

        def mem(r):
            if r is None or r["status"] != "ok":
                return "—"
            return f"{r['memory']['peak_working_bytes'] / 2**20:.0f}"

        speed = vox.get("speedup_vs_pytorch3d") if vox else None
        spread = (vox.get("speedup_rounds") or []) if vox else []
        speed_text = "—" if speed is None else f"{speed:.2f}x"
        if len(spread) > 1:
            speed_text += f" ({min(spread):.2f}-{max(spread):.2f})"
        memr = vox.get("memory_vs_pytorch3d") if vox else None
        size = f"{config.volume_size}³" if config else row
        shape = f"{config.batch} x {config.image_size}² x {config.n_pts_per_ray}" if config else ""
        if row == "tutorial":
            shape += " (tutorial)"
        samples = next(iter(recs.values()))["n_samples"]
        lines.append(
            f"| {size} | {shape} | {samples / 1e6:.3g} M | {t(vox)} | {t(p3d)} | "
            f"{speed_text} | {mem(vox)} | {mem(p3d)} | "
            f"{'—' if memr is None else f'{memr:.2f}x'} |"
        )
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Time per step against samples per step, one line per backend (log-log), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for backend, style in (("voxrender", "o-"), ("pytorch3d", "s--")):
        recs = [r for r in doc["records"] if r["backend"] == backend and r["status"] == "ok"]
        if recs:
            recs.sort(key=lambda r: r["n_samples"])
            ax.plot(
                [r["n_samples"] for r in recs],
                [r["time_s"]["median"] for r in recs],
                style,
                label="PyTorch3D" if backend == "pytorch3d" else "voxrender",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ray samples per fit step")
    ax.set_ylabel("seconds per fit step (median)")
    env = doc["env"]
    ax.set_title(f"CPU fit step, {env['device_name']}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", default=",".join(ROWS), type=lambda v: _csv(v, ROWS, "rows"))
    p.add_argument(
        "--backends", default=",".join(BACKENDS), type=lambda v: _csv(v, BACKENDS, "backends")
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument(
        "--rounds",
        type=_positive,
        default=1,
        help="measure every case this many times, backends alternating (default 1)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default torch's)"
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "cpu-sweep")
    p.add_argument("--case-timeout", type=float, default=3600.0, help="seconds per case")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"--rounds: expected a positive integer, got {value!r}")
    return number


def _csv(value: str, choices, name: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in items if x not in choices]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"--{name}: expected a comma-separated list of {', '.join(choices)}, got {value!r}"
        )
    return items


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.worker is not None:
        return _worker(args.worker)
    if not apply_run_args(args):
        return 2
    doc = run_sweep(args)
    stem = f"cpu-{hardware_slug(doc['env'])}"
    base = args.out / stem
    write_atomic(base.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    write_atomic(base.with_suffix(".md"), to_markdown(doc))
    plot(doc, base.with_suffix(".png"))
    print(f"wrote {base}.md, .json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

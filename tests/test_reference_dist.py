"""voxrender-fit on torch.distributed (gloo, CPU processes): equal to one process, lost peers.

Each test starts real processes (a torch import each), so the sizes are the smallest that still
exercise the split: the tiny preset, 8 iterations, 2 processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reference.distributed import TEST_DIE_AT_ENV, Dist, _cause
from reference.fit import main

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--preset", "tiny", "--device", "cpu", "--no-progress-bar", "--iters", "8"]
# float32 sums in another order: measured differences are ~1e-7 (losses and volume)
ATOL = 1e-5


def _env(**extra: str) -> dict[str, str]:
    """The environment of a launched process.

    This checkout first on the path, one thread (as torchrun sets), no torchrun variables
    inherited, then ``extra``.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env | extra


def _torchrun(nproc: int, *args, timeout: float = 150, **env: str):
    """``torchrun --standalone --nproc-per-node N -m reference ARGS`` (a free port of its own)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "reference", *map(str, args)]  # fmt: skip
    return subprocess.run(
        cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_ranks(world: int, *args, **env: str) -> list[subprocess.Popen]:
    """The ranks as plain processes with torchrun's variables (env://), without its agent.

    Each one keeps its own exit status and stderr, which torchrun would merge and override.
    """
    port = str(_free_port())
    return [
        subprocess.Popen(
            [sys.executable, "-m", "reference", *map(str, args)],
            cwd=ROOT,
            env=_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                **env,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


def _finish(
    procs: list[subprocess.Popen], timeout: float = 150
) -> list[subprocess.CompletedProcess]:
    """Wait for every process (killing all of them past ``timeout``): their results."""
    done = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def _ranks(world: int, *args, **env: str) -> list[subprocess.CompletedProcess]:
    return _finish(_start_ranks(world, *args, **env))


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The single-process run every distributed one must reproduce."""
    out = tmp_path_factory.mktemp("single") / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def _assert_same_fit(a: Path, b: Path) -> float:
    """Loss curves and final volumes equal within ATOL; returns the largest difference."""
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    worst = 0.0
    for key in ("color_err", "sil_err"):
        x, y = np.array(ma[key]), np.array(mb[key])
        assert x.shape == y.shape
        worst = max(worst, float(np.abs(x - y).max()))
    va, vb = torch.load(a / "volume.pt"), torch.load(b / "volume.pt")
    for key in ("densities", "colors"):
        worst = max(worst, (va[key] - vb[key]).abs().max().item())
    assert worst <= ATOL, worst
    return worst


def test_shard_splits_the_global_batch_deterministically():
    index = torch.tensor([7, 3, 5, 1, 0])
    parts = [Dist(rank=r, world_size=3).shard(index).tolist() for r in range(3)]
    assert parts == [[7, 3], [5, 1], [0]]  # contiguous, rank 0 holds the first view
    assert [Dist(rank=r, world_size=3).shard(index[:2]).numel() for r in range(3)] == [1, 1, 0]
    assert Dist().shard(index) is index


def test_lost_peer_causes_are_one_short_line():
    long = (
        "[/src/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:1: Connection reset "
        + "x" * 300
    )
    text = _cause(RuntimeError(long + "\nsecond line"))
    assert text.startswith("RuntimeError: Read error [127.0.0.1]:1: Connection reset")
    assert len(text) < 200 and "\n" not in text and text.endswith("...")


def test_dist_timeout_is_checked(tmp_path, capsys):
    assert main([*ARGS, "--dist-timeout", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--dist-timeout: expected a finite number > 0, got 0.0" in capsys.readouterr().err


def test_torchrun_two_processes_equal_one(single, tmp_path):
    out = tmp_path / "run"
    proc = _torchrun(2, *ARGS, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data-parallel fit: 2 processes (gloo)" in proc.stdout
    assert proc.stderr.count("fit: iteration 8/8") == 1  # rank 0's progress only
    _assert_same_fit(single, out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["dist_backend"] == "gloo"
    assert [r["rank"] for r in m["ranks"]] == [0, 1]
    assert all(r["steps"] == 8 and r["step_s"] > 0 and r["allreduce_s"] > 0 for r in m["ranks"])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["world_size"] == 2


def test_a_dead_rank_stops_the_other_and_the_checkpoint_resumes(single, tmp_path, capsys):
    out = tmp_path / "run"
    # rank 1 dies as iteration 7 (0-based 6) starts; tiny checkpoints every 4 iterations
    rank0, rank1 = _ranks(2, *ARGS, "--out", out, **{TEST_DIE_AT_ENV: "1:6"})
    assert rank1.returncode == 1
    assert rank0.returncode == 3, rank0.stderr[-3000:]
    lines = [ln for ln in rank0.stderr.splitlines() if ln.startswith("voxrender-fit: error:")]
    assert len(lines) == 1 and "Traceback" not in rank0.stderr, rank0.stderr[-3000:]
    assert "rank 0 of 2: lost contact with another process" in lines[0]
    assert "during iteration 7; the checkpoint at iteration 4 is kept" in lines[0]
    assert f"voxrender-fit --resume --out {out}" in lines[0]
    assert not (out / "metrics.json").exists()
    # one process now: the checkpoint holds the global state, whatever the world size
    assert main(["--resume", "--out", str(out), "--no-progress-bar"]) == 0
    assert "resuming" in capsys.readouterr().out
    _assert_same_fit(single, out)
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 1


@pytest.mark.slow
def test_three_processes_with_a_rank_left_without_views(single, tmp_path):
    """Batch 2 on 3 processes: rank 2 renders nothing and adds zero gradients."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert main([*ARGS, "--batch-size", "2", "--out", str(ref)]) == 0
    proc = _torchrun(3, *ARGS, "--batch-size", "2", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_fit(ref, out)


@pytest.mark.slow
def test_a_peer_that_never_joins_times_out(tmp_path):
    """WORLD_SIZE 2 but only rank 0 starts: it gives up after --dist-timeout, exit status 3."""
    env = _env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "reference", *ARGS, "--dist-timeout", "3", "--out",
         str(tmp_path / "r")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "could not join the process group within --dist-timeout 3 s" in proc.stderr


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_all_after_the_same_iteration(tmp_path, capsys):
    """SIGTERM to rank 1 only: both ranks stop after the same iteration, and the run resumes.

    Rank 0 checkpoints that iteration, both exit with status 143, and the resumed run ends at the
    uninterrupted fit.
    """
    args = [*ARGS, "--iters", "100"]
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert main([*args, "--out", str(ref)]) == 0
    procs = _start_ranks(2, *args, "--out", out)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():  # the loop is running
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)
    finally:
        rank0, rank1 = _finish(procs)
    assert rank0.returncode == rank1.returncode == 128 + signal.SIGTERM, rank0.stderr[-3000:]
    assert "voxrender-fit: interrupted (SIGTERM)" in rank0.stderr
    assert "interrupted (SIGTERM)" not in rank1.stderr  # one message for the run
    stopped = torch.load(out / "checkpoint.pt", weights_only=True)["iteration"]
    assert 4 <= stopped < 100 and f"after iteration {stopped}; continue with" in rank0.stdout
    assert main(["--resume", "--out", str(out), "--no-progress-bar"]) == 0
    capsys.readouterr()
    _assert_same_fit(ref, out)

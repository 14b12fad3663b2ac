"""voxrender-fit's command line as a user meets it.

The run folder checked before any work, --help's presets, SIGTERM from outside, plain progress
lines when stderr is not a terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reference import fit as fit_module
from reference.checkpoint import load_checkpoint
from reference.fit import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--device", "cpu", "--no-progress-bar"]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the scene gets rendered: refusals must come before any work."""

    def boom(*args, **kwargs):
        raise AssertionError("the scene was rendered before the refusal")

    monkeypatch.setattr(fit_module, "make_scene_data", boom)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voxrender-fit: error: "), err
    return err[0]


def test_out_under_a_file(tmp_path, capsys, no_work):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    assert main([*TINY, "--out", str(blocker / "runs" / "a")]) == 2
    line = _one_error_line(capsys)
    assert (
        line == f"voxrender-fit: error: --out {blocker}/runs/a: {blocker} is a file, not a folder"
    )


def test_out_in_a_folder_nobody_can_write(tmp_path, capsys, no_work):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc (a folder where no one can create files)")
    assert main([*TINY, "--out", "/proc/voxrender-fit-test/run"]) == 2
    assert "--out /proc/voxrender-fit-test/run: cannot write in /proc (" in _one_error_line(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_folder(tmp_path, capsys, no_work):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main([*TINY, "--out", str(locked / "run")]) == 2
    finally:
        locked.chmod(0o700)
    assert f"cannot write in {locked} (Permission denied)" in _one_error_line(capsys)
    assert list(locked.iterdir()) == []


def test_help_says_what_each_preset_sets(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrap the lines
    assert (
        "quick --volume-size 64 --image-size 64 --n-pts-per-ray 64 --batch-size 6 --iters 100"
        in out
    )
    assert "(about 20 s on 2 CPU cores)" in out and "tiny --volume-size 16" in out
    assert "tutorial the defaults" in out
    assert "--downsample K" in out and "Blender scene" in out


def _small_npz(path: Path) -> Path:
    n = 6
    np.savez(
        path,
        images=np.full((n, 8, 8, 3), 0.5, np.float32),
        silhouettes=np.ones((n, 8, 8), np.float32),
        R=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        T=np.tile(np.array([0, 0, 2.7], np.float32), (n, 1)),
    )
    return path


def test_sigterm_from_outside_checkpoints_and_says_how_to_resume(tmp_path):
    data, out = _small_npz(tmp_path / "views.npz"), tmp_path / "run"
    argv = [*TINY, "--volume-size", "8", "--iters", "100000", "--checkpoint-every", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference", *argv, "--data", str(data), "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    done = load_checkpoint(out / "checkpoint.pt")["iteration"]
    assert stdout.strip().splitlines()[-1] == (
        f"interrupted (SIGTERM) after iteration {done}; continue with: voxrender-fit --resume "
        f"--out {out}"
    )
    assert "SIGTERM: finishing this iteration, then saving a checkpoint" in stderr
    assert stderr.strip().splitlines()[-1] == "voxrender-fit: interrupted (SIGTERM)"
    assert "Traceback" not in stderr

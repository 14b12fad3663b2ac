"""reference.atomic, reference.plots and reference.checkpoint: what lands on disk."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from reference.atomic import atomic_write, save_torch_atomic, write_json_atomic
from reference.checkpoint import load_checkpoint, save_checkpoint
from reference.errors import FitError
from reference.plots import save_gif, save_loss_plot, save_mosaic, save_progress_panel


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    atomic_write(path, lambda f: f.write(b"new content"))
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["f.bin"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def half_then_fail(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_failure_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "g.bin", lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert os.listdir(tmp_path) == []


def test_json_is_strict_and_non_finite_becomes_null(tmp_path):
    write_json_atomic(
        tmp_path / "m.json", {"a": [1.0, float("nan")], "b": float("inf"), "c": (1, 2)}
    )
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"a": [1.0, None], "b": None, "c": [1, 2]}
    assert "NaN" not in text and "Infinity" not in text


def test_torch_save_round_trip(tmp_path):
    save_torch_atomic(tmp_path / "t.pt", {"x": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "t.pt")["x"], torch.arange(3))


def _frames(n=28, h=6, w=5):
    return np.random.default_rng(0).random((n, h, w, 3), dtype=np.float32)


def test_mosaic_is_pixel_exact(tmp_path):
    frames = _frames()
    save_mosaic(tmp_path / "m.png", frames, 4, 7)
    grid = np.asarray(Image.open(tmp_path / "m.png"))
    assert grid.shape == (4 * 6, 7 * 5, 3)
    # frame 8 = row 1, column 1
    np.testing.assert_array_equal(grid[6:12, 5:10], (frames[8] * 255 + 0.5).astype(np.uint8))


def test_mosaic_wrong_frame_count(tmp_path):
    with pytest.raises(ValueError, match=r"frames: expected 4 x 7 = 28 frames, got 27"):
        save_mosaic(tmp_path / "m.png", _frames(27), 4, 7)
    assert os.listdir(tmp_path) == []


def test_gif_frames_and_size(tmp_path):
    save_gif(tmp_path / "r.gif", _frames())
    gif = Image.open(tmp_path / "r.gif")
    assert gif.size == (5, 6) and gif.n_frames == 28 and gif.info["loop"] == 0


def test_progress_panel_and_loss_plot(tmp_path):
    f = _frames(2)
    save_progress_panel(
        tmp_path / "p.png", f[0], f[1], f[0, ..., 0], f[1, ..., 0], title="iteration 0"
    )
    save_loss_plot(tmp_path / "l.png", [0.3, 0.2, 0.1], [0.5, 0.3, 0.2], lr_drop=2)
    for name in ("p.png", "l.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and min(im.size) > 100
    assert sorted(os.listdir(tmp_path)) == ["l.png", "p.png"]


def _state(n=3):
    return {
        "iteration": n,
        "params": {"log_densities": torch.zeros(1, 2, 2, 2), "log_colors": torch.ones(3, 2, 2, 2)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "color_err": [0.1] * n,
        "sil_err": [0.2] * n,
        "wall_s": 1.5,
        "rng_state": torch.get_rng_state(),
        "config": {"volume_size": 2},
    }


def test_checkpoint_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _state())
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["version"] == 1 and state["iteration"] == 3
    assert torch.equal(state["rng_state"], torch.get_rng_state())


def test_checkpoint_missing(tmp_path):
    with pytest.raises(FitError, match=r"--resume: no c\.pt in .* \(nothing to resume\)"):
        load_checkpoint(tmp_path / "c.pt")


def test_checkpoint_corrupt(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"garbage")
    with pytest.raises(FitError, match=r"--resume: cannot read .*c\.pt"):
        load_checkpoint(tmp_path / "c.pt")


def test_checkpoint_foreign(tmp_path):
    torch.save({"model": torch.zeros(2)}, tmp_path / "c.pt")
    with pytest.raises(
        FitError, match=r"is not a voxrender-fit checkpoint \(missing version, iteration"
    ):
        load_checkpoint(tmp_path / "c.pt")


def test_checkpoint_inconsistent_history(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {**_state(), "color_err": [0.1]})
    with pytest.raises(
        FitError, match=r"inconsistent \(loss history length differs from iteration 3\)"
    ):
        load_checkpoint(tmp_path / "c.pt")

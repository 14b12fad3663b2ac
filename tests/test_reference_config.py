"""reference.config: defaults, presets, flag parsing and validation."""

from __future__ import annotations

import dataclasses
import os

import pytest

from reference.config import PRESETS, FitConfig, parse_overrides, resolve_config, validate_config
from reference.errors import FitError


def test_defaults_are_the_tutorials():
    cfg = resolve_config(parse_overrides([]))
    assert (cfg.volume_size, cfg.extent, cfg.n_pts_per_ray, cfg.min_depth) == (128, 3.0, 150, 0.1)
    assert (cfg.batch_size, cfg.iters, cfg.lr, cfg.seed) == (10, 300, 0.1, 0)
    assert (cfg.device, cfg.backend, cfg.checkpoint_every, cfg.progress_every) == (
        "auto",
        "voxrender",
        10,
        40,
    )
    assert cfg.image_size is None and cfg.data is None and cfg.resume is False


def test_preset_then_explicit_flags_win():
    cfg = resolve_config(parse_overrides(["--preset", "tiny", "--iters", "5", "--lr", "0.2"]))
    assert cfg.preset == "tiny" and cfg.iters == 5 and cfg.lr == 0.2
    assert cfg.volume_size == PRESETS["tiny"]["volume_size"]
    assert cfg.batch_size == PRESETS["tiny"]["batch_size"]


def test_every_preset_is_valid():
    for name, settings in PRESETS.items():
        cfg = resolve_config({"preset": name})
        assert all(getattr(cfg, k) == v for k, v in settings.items())


def test_preset_image_size_gives_way_to_a_data_file():
    assert resolve_config({"preset": "tiny", "data": "x.npz"}).image_size is None
    assert resolve_config({"preset": "tiny", "data": "x.npz", "image_size": 8}).image_size == 8


def test_flags_parse_types():
    o = parse_overrides(
        ["--device", "cpu", "--data", "x.npz", "--resume", "--out", "r", "--no-progress-bar"]
    )
    assert o == {
        "device": "cpu",
        "data": "x.npz",
        "resume": True,
        "out": "r",
        "progress_bar": False,
    }
    assert resolve_config(o).data == os.path.abspath("x.npz")


def test_resume_inherits_result_settings_from_the_checkpoint():
    stored = dataclasses.replace(
        FitConfig(), volume_size=16, iters=7, stop_after=3, out="a"
    ).to_dict()
    cfg = resolve_config({"resume": True, "out": "b"}, stored)
    assert cfg.volume_size == 16 and cfg.iters == 7
    assert cfg.stop_after is None and cfg.out == "b"  # not inherited: they don't shape the result


def test_resume_accepts_the_same_flags_again():
    stored = resolve_config({"preset": "tiny", "iters": 5}).to_dict()
    cfg = resolve_config({"preset": "tiny", "iters": 5, "resume": True, "out": "r"}, stored)
    assert cfg.iters == 5


def test_resume_refuses_different_result_settings():
    stored = resolve_config({"preset": "tiny"}).to_dict()
    with pytest.raises(
        FitError, match=r"--resume: settings differ.*--volume-size 32 \(the run has 16\)"
    ):
        resolve_config({"resume": True, "out": "r", "volume_size": 32}, stored)


# ---- bad settings: one test per case -------------------------------------------------------


def test_unknown_device_flag():
    with pytest.raises(FitError, match=r"argument --device: invalid choice: 'tpu'"):
        parse_overrides(["--device", "tpu"])


def test_unknown_backend_flag():
    with pytest.raises(FitError, match=r"argument --backend: invalid choice: 'mitsuba'"):
        parse_overrides(["--backend", "mitsuba"])


def test_unknown_preset_flag():
    with pytest.raises(FitError, match=r"argument --preset: invalid choice: 'huge'"):
        parse_overrides(["--preset", "huge"])


def test_non_integer_flag():
    with pytest.raises(FitError, match=r"argument --volume-size: invalid int value: 'big'"):
        parse_overrides(["--volume-size", "big"])


def test_unknown_flag():
    with pytest.raises(FitError, match=r"unrecognized arguments: --colour"):
        parse_overrides(["--colour", "red"])


def test_volume_size_below_two():
    with pytest.raises(FitError, match=r"--volume-size: expected an integer >= 2, got 1"):
        resolve_config({"volume_size": 1})


def test_non_positive_iters():
    with pytest.raises(FitError, match=r"--iters: expected an integer >= 1, got 0"):
        resolve_config({"iters": 0})


def test_non_positive_extent():
    with pytest.raises(FitError, match=r"--extent: expected a finite number > 0, got -1.0"):
        resolve_config({"extent": -1.0})


def test_nan_lr():
    with pytest.raises(FitError, match=r"--lr: expected a finite number > 0, got nan"):
        resolve_config({"lr": float("nan")})


def test_min_depth_beyond_extent():
    with pytest.raises(
        FitError, match=r"--min-depth: expected less than the max depth \(--extent 3\), got 3.5"
    ):
        resolve_config({"min_depth": 3.5})


def test_negative_seed():
    with pytest.raises(FitError, match=r"--seed: expected an integer >= 0, got -1"):
        resolve_config({"seed": -1})


def test_unknown_device_programmatic():
    with pytest.raises(FitError, match=r"--device: expected one of auto, cpu, cuda, got 'gpu'"):
        validate_config(FitConfig(device="gpu"))


def test_unknown_backend_programmatic():
    with pytest.raises(
        FitError, match=r"--backend: expected one of voxrender, pytorch3d, got 'p3d'"
    ):
        validate_config(FitConfig(backend="p3d"))


def test_resume_without_out():
    with pytest.raises(FitError, match=r"--resume: expected --out"):
        validate_config(FitConfig(resume=True))


def test_unknown_setting():
    with pytest.raises(FitError, match=r"config: unknown setting\(s\) colour"):
        resolve_config({"colour": "red"})

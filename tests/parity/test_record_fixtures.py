"""reference.record_fixtures: same cases, same format, atomic writes, clear refusals.

PyTorch3D is not importable here, so the recorder's calls are exercised with voxrender's objects
standing in for PyTorch3D's (the command line itself refuses to do that): re-recording the spec
that way must reproduce every committed fixture within the fixtures' tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import FIXTURES, assert_close, load_case

import voxrender
from reference import record_fixtures as rf
from reference.oracle import find_pytorch3d, pytorch3d_hidden
from voxrender import compat

ROOT = Path(__file__).resolve().parents[2]
# A real PyTorch3D installed on sys.path (the live oracle's copy, maybe in sys.modules, does not
# count: the recorder never uses it, and the tests below hide it).
REAL_PYTORCH3D = find_pytorch3d()[0] == "installed"
VOXRENDER_API = SimpleNamespace(
    **{n: getattr(voxrender, n) for names in rf.API_NAMES.values() for n in names}
)


@pytest.fixture(scope="module")
def recorded():
    """Every fixture case re-recorded through the recorder's calls, with voxrender's objects."""
    return rf.record_all(VOXRENDER_API, FIXTURES, "voxrender-stand-in")


def _run(args, cwd=ROOT, extra_env=None):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "reference.record_fixtures", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --------------------------------------------------------------------------- what is recorded


def test_recording_reproduces_every_fixture(recorded):
    manifest, arrays = recorded
    spec = json.loads((FIXTURES / "manifest.json").read_text())
    assert [c["name"] for c in manifest["cases"]] == [c["name"] for c in spec["cases"]]
    for case in manifest["cases"]:
        _, inputs, outputs, grads = load_case(case["name"])
        got = arrays[case["file"]]
        assert list(got) == list(case["arrays"]), case["name"]  # same keys, same order
        for key, value in inputs.items():
            assert np.array_equal(got[f"in/{key}"], value.numpy()), f"{case['name']} in/{key}"
        for key, value in outputs.items():
            assert_close(
                torch.from_numpy(got[f"out/{key}"]), value, msg=f"{case['name']} out/{key}"
            )
        for key, value in grads.items():
            assert_close(
                torch.from_numpy(got[f"grad/{key}"]),
                value,
                kind="grad",
                msg=f"{case['name']} grad/{key}",
            )


def test_manifest_keeps_cases_and_configs_and_updates_recorded_with(recorded):
    manifest, _ = recorded
    spec = json.loads((FIXTURES / "manifest.json").read_text())
    assert manifest["cases"] == spec["cases"]
    assert manifest["recorded_with"] == {
        "pytorch3d": "voxrender-stand-in",
        "torch": torch.__version__,
        "dtype": "float32",
        "device": "cpu",
    }


def test_written_folder_has_the_fixture_format(recorded, tmp_path):
    manifest, arrays = recorded
    readme = (FIXTURES / "README.md").read_text()
    out = rf.write_fixtures(tmp_path / "fixtures", manifest, arrays, readme=readme)
    assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", "manifest.json", *arrays])
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert (out / "README.md").read_text() == readme
    for case in manifest["cases"]:
        with np.load(out / case["file"]) as data:
            assert list(data.files) == list(case["arrays"])
            for key, shape in case["arrays"].items():
                assert list(data[key].shape) == shape
                assert data[key].dtype == np.load(FIXTURES / case["file"])[key].dtype
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_shape_other_than_the_specs_is_refused():
    manifest, inputs = rf.read_spec(FIXTURES)
    case = json.loads(json.dumps(manifest["cases"][0]))
    case["arrays"]["out/camera_center"] = [4, 3]
    with pytest.raises(
        rf.RecordError, match=r"out/camera_center has shape \[3, 3\], the spec says \[4, 3\]"
    ):
        rf.record_case(VOXRENDER_API, case, inputs[case["name"]])


def test_an_output_the_spec_does_not_list_is_refused():
    manifest, inputs = rf.read_spec(FIXTURES)
    case = json.loads(json.dumps(manifest["cases"][0]))
    del case["arrays"]["out/camera_center"]
    with pytest.raises(
        rf.RecordError, match=r"produced \['out/camera_center'\], which the spec does not list"
    ):
        rf.record_case(VOXRENDER_API, case, inputs[case["name"]])


def test_an_unknown_kind_is_refused():
    with pytest.raises(rf.RecordError, match="case x: unknown kind 'meshes'"):
        rf.record_case(
            VOXRENDER_API, {"name": "x", "kind": "meshes", "config": {}, "arrays": {}}, {}
        )


def test_an_unreadable_spec_is_refused(tmp_path):
    with pytest.raises(rf.RecordError, match="cannot read the fixtures"):
        rf.read_spec(tmp_path)


# --------------------------------------------------------------------------- writing atomically


def _small(recorded, n=3):
    manifest, arrays = recorded
    cases = manifest["cases"][:n]
    return {**manifest, "cases": cases}, {c["file"]: arrays[c["file"]] for c in cases}


def test_refuses_a_non_empty_folder_without_force(recorded, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(rf.RecordError, match="exists and is not empty; pass --force to replace it"):
        rf.write_fixtures(out, *_small(recorded))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_writes_into_an_existing_empty_folder(recorded, tmp_path):
    (tmp_path / "out").mkdir()
    out = rf.write_fixtures(tmp_path / "out", *_small(recorded))
    assert (out / "manifest.json").is_file()


def test_force_replaces_the_folder_as_a_whole(recorded, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.npz").write_text("old")
    rf.write_fixtures(out, *_small(recorded), force=True)
    assert not (out / "stale.npz").exists() and (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_while_writing_leaves_the_old_folder_untouched(recorded, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    calls = []

    def failing(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        np.savez(f, **arrays)

    monkeypatch.setattr(rf.np, "savez_compressed", failing)
    with pytest.raises(OSError, match="disk full"):
        rf.write_fixtures(out, *_small(recorded), force=True)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_dir_that_is_a_file_is_refused(recorded, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(rf.RecordError, match="exists and is not a folder"):
        rf.write_fixtures(tmp_path / "file", *_small(recorded))


# --------------------------------------------------------------------------- command line


@pytest.mark.skipif(REAL_PYTORCH3D, reason="a real PyTorch3D is importable here")
def test_command_line_refuses_without_pytorch3d_in_one_line(tmp_path):
    result = _run([str(tmp_path / "out")])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("record_fixtures: error: pytorch3d is not importable")
    assert not (tmp_path / "out").exists()


def test_command_line_refuses_a_non_empty_out_dir_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    result = _run([str(tmp_path / "out")])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"record_fixtures: error: OUT_DIR {tmp_path / 'out'}: exists and is not empty; "
        "pass --force to replace it"
    )


def test_refuses_voxrenders_own_alias(tmp_path, capsys):
    with pytorch3d_hidden():
        compat.install(force=REAL_PYTORCH3D)
        try:
            assert rf.main([str(tmp_path / "out")]) == 2
        finally:
            compat.uninstall()
    err = capsys.readouterr().err
    assert "pytorch3d is voxrender.compat's alias of voxrender, not PyTorch3D" in err
    assert not (tmp_path / "out").exists()


def test_main_records_with_whatever_load_pytorch3d_gives(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rf, "load_pytorch3d", lambda: (VOXRENDER_API, "stand-in"))
    assert rf.main([str(tmp_path / "out")]) == 0
    assert "recorded 46 cases with PyTorch3D stand-in" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["recorded_with"]["pytorch3d"] == "stand-in"
    assert (tmp_path / "out" / "README.md").read_text() == (FIXTURES / "README.md").read_text()
    with np.load(tmp_path / "out" / "render_0.npz") as data:
        _, _, outputs, _ = load_case("render_0")
        assert_close(torch.from_numpy(data["out/images"]), outputs["images"])

"""``python -m voxrender.compat``: real help, and a refusal that names the command line's --force."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from voxrender import compat

ROOT = Path(__file__).resolve().parents[1]


def test_help_is_real_help():
    proc = subprocess.run(
        [sys.executable, "-m", "voxrender.compat", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    assert out.startswith("usage: python -m voxrender.compat [--force] SCRIPT.py [ARGS ...]\n")
    for words in ("Run an unmodified PyTorch3D script on voxrender", "SCRIPT.py", "ARGS",
                  "-h, --help", "--force", "voxrender.compat.PROVIDED"):  # fmt: skip
        assert words in out, words
    assert len(out.splitlines()) > 10


def test_unknown_option_is_one_line(capsys):
    assert compat.main(["--forse", "x.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "voxrender.compat: error: unknown option --forse (only --force and --help come before "
        "the script)"
    ]


@pytest.fixture
def real_looking_pytorch3d(tmp_path, monkeypatch):
    """A package named pytorch3d on sys.path, so the alias must refuse to shadow it."""
    for name in [m for m in sys.modules if m == "pytorch3d" or m.startswith("pytorch3d.")]:
        monkeypatch.delitem(sys.modules, name)
    pkg = tmp_path / "site" / "pytorch3d"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    yield pkg
    compat.uninstall()
    for name in [m for m in sys.modules if m == "pytorch3d" or m.startswith("pytorch3d.")]:
        del sys.modules[name]


def test_refusal_cites_force_on_the_command_line(real_looking_pytorch3d, tmp_path, capsys):
    script = tmp_path / "fit.py"
    script.write_text(
        "from pytorch3d.renderer import VolumeRenderer\nimport voxrender\n"
        "assert VolumeRenderer is voxrender.VolumeRenderer\nprint('ran on voxrender')\n"
    )
    assert compat.main([str(script)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "voxrender.compat: error: a real PyTorch3D is importable (pytorch3d at "
    )
    assert str(real_looking_pytorch3d) in err[0]
    assert f"pass --force (python -m voxrender.compat --force {script} ...)" in err[0]
    assert "force=True" not in err[0]
    # and --force does what the message says
    assert compat.main(["--force", str(script)]) == 0
    assert capsys.readouterr().out == "ran on voxrender\n"

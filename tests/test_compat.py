"""voxrender.compat: PyTorch3D module paths served by voxrender, loud failures, no shadowing."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import voxrender
from reference.oracle import find_pytorch3d, pytorch3d_hidden
from voxrender import compat

ROOT = Path(__file__).resolve().parents[1]

# Whether a real PyTorch3D is installed here (on sys.path). The live oracle (the runnable copy
# beside the project, imported by the parity tests into sys.modules) does not count: every test
# here runs with it hidden.
REAL_PYTORCH3D = find_pytorch3d()[0] == "installed"

NOT_PROVIDED = (
    r"voxrender\.compat: {} is not provided by voxrender \(voxrender covers the volume renderer"
)


def _pytorch3d_modules() -> dict[str, object]:
    return {k: v for k, v in sys.modules.items() if k == "pytorch3d" or k.startswith("pytorch3d.")}


@pytest.fixture(autouse=True)
def _leave_sys_modules_clean():
    """Hide PyTorch3D and the aliases around every test.

    Every test runs with the live oracle's PyTorch3D hidden (whether or not the parity tests
    imported it earlier in this process), starts and ends with no alias installed and
    sys.modules as it was.
    """
    with pytorch3d_hidden():
        compat.uninstall()
        before = _pytorch3d_modules()
        meta_path = list(sys.meta_path)
        yield
        compat.uninstall()
        assert _pytorch3d_modules() == before
        assert sys.meta_path == meta_path


@pytest.fixture
def alias():
    """The alias installed (forced past a real PyTorch3D only if one is actually here)."""
    compat.install(force=REAL_PYTORCH3D)
    yield
    compat.uninstall()


@pytest.fixture
def fake_real_pytorch3d(tmp_path, monkeypatch):
    """A stand-in 'real' PyTorch3D package on a temporary sys.path entry."""
    package = tmp_path / "site" / "pytorch3d"
    (package / "renderer").mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = 'fake-real'\nREAL = True\n")
    (package / "renderer" / "__init__.py").write_text("REAL_RENDERER = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    yield tmp_path / "site"
    for name in list(_pytorch3d_modules()):
        if getattr(sys.modules[name], "REAL", False) or getattr(
            sys.modules[name], "REAL_RENDERER", False
        ):
            del sys.modules[name]


def _env(extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT)] + ([extra_path] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# --------------------------------------------------------------------------- what is provided


def test_every_provided_path_imports_and_maps_to_voxrender(alias):
    for path, names in compat.PROVIDED.items():
        module = importlib.import_module(path)
        assert module.__voxrender_alias__ is True
        for name in names:
            assert getattr(module, name) is compat._source(name), f"{path}.{name}"
            if name not in compat.SOURCES:
                assert getattr(module, name) is getattr(voxrender, name), f"{path}.{name}"
        assert sorted(module.__all__) == sorted(n for n in names if not n.startswith("_"))


def test_tutorial_names_are_voxrender_objects(alias):
    from pytorch3d.renderer import (
        EmissionAbsorptionRaymarcher,
        FoVPerspectiveCameras,
        NDCMultinomialRaysampler,
        VolumeRenderer,
        look_at_view_transform,
    )
    from pytorch3d.structures import Volumes
    from pytorch3d.transforms import so3_exp_map

    assert FoVPerspectiveCameras is voxrender.FoVPerspectiveCameras
    assert VolumeRenderer is voxrender.VolumeRenderer
    assert NDCMultinomialRaysampler is voxrender.NDCMultinomialRaysampler
    assert EmissionAbsorptionRaymarcher is voxrender.EmissionAbsorptionRaymarcher
    assert look_at_view_transform is voxrender.look_at_view_transform
    assert Volumes is voxrender.Volumes
    assert so3_exp_map is voxrender.so3_exp_map


def test_new_camera_kinds_are_provided(alias):
    from pytorch3d.renderer import FoVOrthographicCameras, OrthographicCameras, PerspectiveCameras
    from pytorch3d.renderer.cameras import CamerasBase, get_ndc_to_screen_transform

    assert PerspectiveCameras is voxrender.PerspectiveCameras
    assert OrthographicCameras is voxrender.OrthographicCameras
    assert FoVOrthographicCameras is voxrender.FoVOrthographicCameras
    assert CamerasBase is voxrender.CamerasBase
    assert get_ndc_to_screen_transform is voxrender.get_ndc_to_screen_transform


def test_submodules_become_attributes_of_their_parents(alias):
    import pytorch3d
    import pytorch3d.renderer.implicit.raysampling

    assert pytorch3d.renderer.implicit.raysampling.MonteCarloRaysampler is (
        voxrender.MonteCarloRaysampler
    )


def test_provided_submodules_are_reachable_as_attributes(alias):
    import pytorch3d.renderer

    assert "pytorch3d.renderer.cameras" not in sys.modules
    assert pytorch3d.renderer.cameras.CamerasBase is voxrender.CamerasBase
    assert pytorch3d.renderer.implicit.utils.RayBundle is voxrender.RayBundle


def test_star_import_gives_exactly_the_provided_names(alias):
    namespace: dict[str, object] = {}
    exec("from pytorch3d.renderer.implicit.raymarching import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == ["AbsorptionOnlyRaymarcher", "EmissionAbsorptionRaymarcher"]


def test_version_marks_the_alias(alias):
    import pytorch3d

    assert pytorch3d.__version__ == f"0.7.9+voxrender.{voxrender.__version__}"


# --------------------------------------------------------------------------- loud failures


def test_missing_name_from_import_fails_with_the_message(alias):
    with pytest.raises(
        ImportError, match=NOT_PROVIDED.format(r"pytorch3d\.renderer\.MeshRenderer")
    ):
        from pytorch3d.renderer import MeshRenderer  # noqa: F401


def test_missing_name_from_a_leaf_module_fails_with_the_message(alias):
    with pytest.raises(
        ImportError,
        match=NOT_PROVIDED.format(r"pytorch3d\.renderer\.implicit\.raysampling\._safe_multinomial"),
    ):
        from pytorch3d.renderer.implicit.raysampling import _safe_multinomial  # noqa: F401


def test_missing_name_among_provided_ones_fails(alias):
    with pytest.raises(
        ImportError, match=NOT_PROVIDED.format(r"pytorch3d\.renderer\.MeshRenderer")
    ):
        from pytorch3d.renderer import MeshRenderer, VolumeRenderer  # noqa: F401


def test_missing_attribute_raises_attribute_error_with_the_message(alias):
    import pytorch3d.renderer

    with pytest.raises(
        AttributeError, match=NOT_PROVIDED.format(r"pytorch3d\.renderer\.PointLights")
    ):
        pytorch3d.renderer.PointLights  # noqa: B018
    assert not hasattr(pytorch3d.renderer, "PointLights")
    assert getattr(pytorch3d.renderer, "PointLights", None) is None


def test_missing_dunder_is_a_plain_attribute_error(alias):
    import pytorch3d.structures

    with pytest.raises(AttributeError, match="has no attribute '__wrapped__'"):
        pytorch3d.structures.__wrapped__  # noqa: B018


def test_unprovided_module_path_fails_with_the_message(alias):
    with pytest.raises(ImportError, match=NOT_PROVIDED.format(r"pytorch3d\.io")):
        import pytorch3d.io  # noqa: F401


def test_unprovided_module_via_from_import_fails_with_the_message(alias):
    with pytest.raises(ImportError, match=NOT_PROVIDED.format(r"pytorch3d\.ops")):
        from pytorch3d import ops  # noqa: F401


# --------------------------------------------------------------------------- install / uninstall


def test_install_is_idempotent_and_uninstall_cleans_up():
    compat.install(force=REAL_PYTORCH3D)
    compat.install(force=REAL_PYTORCH3D)
    assert compat.installed()
    assert sum(getattr(f, "__voxrender_alias__", False) is True for f in sys.meta_path) == 1
    importlib.import_module("pytorch3d.renderer.cameras")
    assert "pytorch3d.renderer.cameras" in sys.modules
    compat.uninstall()
    assert not compat.installed()
    assert not any(getattr(m, "__voxrender_alias__", False) for m in _pytorch3d_modules().values())
    compat.uninstall()  # a second call is harmless


def test_install_force_must_be_bool():
    with pytest.raises(TypeError, match="force: expected a bool, got str 'yes'"):
        compat.install(force="yes")


@pytest.mark.skipif(REAL_PYTORCH3D, reason="a real PyTorch3D is importable here")
def test_without_install_pytorch3d_stays_unimportable():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pytorch3d")


def test_install_refuses_to_shadow_an_importable_pytorch3d(fake_real_pytorch3d):
    with pytest.raises(
        compat.PyTorch3DShadowError, match=r"a real PyTorch3D is importable .*refusing"
    ):
        compat.install()
    assert not compat.installed()
    assert "pytorch3d" not in sys.modules  # the check imported nothing


def test_install_refuses_when_a_real_pytorch3d_is_already_imported(fake_real_pytorch3d):
    importlib.import_module("pytorch3d")
    with pytest.raises(compat.PyTorch3DShadowError, match="refusing to shadow it"):
        compat.install()


def test_force_shadows_then_uninstall_restores_the_real_one(fake_real_pytorch3d):
    real = importlib.import_module("pytorch3d")
    real_renderer = importlib.import_module("pytorch3d.renderer")
    compat.install(force=True)
    import pytorch3d.renderer

    assert pytorch3d.renderer.VolumeRenderer is voxrender.VolumeRenderer
    compat.uninstall()
    assert sys.modules["pytorch3d"] is real
    assert sys.modules["pytorch3d.renderer"] is real_renderer


def test_force_with_a_real_pytorch3d_not_yet_imported(fake_real_pytorch3d):
    compat.install(force=True)
    import pytorch3d

    assert pytorch3d.__version__.startswith("0.7.9+voxrender")
    compat.uninstall()
    assert importlib.import_module("pytorch3d").REAL is True


# --------------------------------------------------------------------------- python -m voxrender.compat


def _write_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(body))
    return script


def test_main_runs_the_script_as_main_with_its_argv(tmp_path, capsys):
    script = _write_script(
        tmp_path,
        """
        import sys
        from pytorch3d.renderer import VolumeRenderer
        import voxrender
        print("name", __name__)
        print("argv", sys.argv)
        print("same", VolumeRenderer is voxrender.VolumeRenderer)
        print("path0", sys.path[0])
        """,
    )
    force = ["--force"] if REAL_PYTORCH3D else []
    assert compat.main([*force, str(script), "a", "--b"]) == 0
    out = capsys.readouterr().out
    assert "name __main__" in out
    assert f"argv {[str(script), 'a', '--b']}" in out
    assert "same True" in out
    assert f"path0 {tmp_path}" in out
    assert not compat.installed()  # main undoes its own install


def test_main_lets_the_scripts_exit_status_through(tmp_path):
    script = _write_script(tmp_path, "import sys\nsys.exit(3)\n")
    with pytest.raises(SystemExit) as info:
        compat.main([*(["--force"] if REAL_PYTORCH3D else []), str(script)])
    assert info.value.code == 3
    assert not compat.installed()


def test_main_without_a_script_is_a_usage_error(capsys):
    assert compat.main([]) == 2
    assert "usage: python -m voxrender.compat" in capsys.readouterr().err


def test_main_with_a_missing_script_is_an_error(tmp_path, capsys):
    assert compat.main([str(tmp_path / "nope.py")]) == 2
    assert "script not found" in capsys.readouterr().err


def test_command_line_refuses_to_shadow_in_one_line(tmp_path, fake_real_pytorch3d):
    script = _write_script(tmp_path, "print('ran')\n")
    result = subprocess.run(
        [sys.executable, "-m", "voxrender.compat", str(script)],
        cwd=tmp_path,
        env=_env(str(fake_real_pytorch3d)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "ran" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to shadow" in lines[0]


def test_command_line_missing_name_fails_loudly(tmp_path):
    script = _write_script(tmp_path, "from pytorch3d.renderer import MeshRenderer\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxrender.compat",
            *(["--force"] if REAL_PYTORCH3D else []),
            str(script),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        "ImportError: voxrender.compat: pytorch3d.renderer.MeshRenderer is not provided"
        in result.stderr
    )

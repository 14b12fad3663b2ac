"""Re-record the PyTorch3D fixtures: ``python -m reference.record_fixtures OUT_DIR [--force]``.

Reads the current fixtures (``tests/fixtures/pytorch3d``, or ``--spec DIR``) as the
specification: the case list, each case's kind and config, its ``in/`` arrays and the keys and
shapes it must produce. Every case is run again through a real PyTorch3D, exactly as the
fixtures' README describes for its kind, on the very same inputs; outputs go to ``out/``,
gradients of the README's cotangent loss to ``grad/``. The result (``manifest.json``, one
``.npz`` per case, the README) is written to a temporary folder beside ``OUT_DIR`` and moved into
place in one rename, so ``OUT_DIR`` is never left half written.

Refusals (exit status 2, one line on stderr): PyTorch3D not importable (or only voxrender's
``voxrender.compat`` alias of it), ``OUT_DIR`` existing and not empty without ``--force``, a
spec that cannot be read, a recorded array whose key or shape differs from the spec's.

:func:`record_case` takes the PyTorch3D-named objects as an argument, so the recorder itself
can be exercised with voxrender's (the tests do; the command line never does).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

__all__ = [
    "DEFAULT_SPEC",
    "RecordError",
    "cotangent_loss",
    "load_pytorch3d",
    "main",
    "read_spec",
    "record_case",
    "run_calls",
    "sample_rays",
    "write_fixtures",
]

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pytorch3d"

# The PyTorch3D objects the recorded calls use, by name, with the module each comes from.
API_NAMES = {
    "pytorch3d.renderer": (
        "AbsorptionOnlyRaymarcher",
        "EmissionAbsorptionRaymarcher",
        "FoVPerspectiveCameras",
        "MonteCarloRaysampler",
        "MultinomialRaysampler",
        "NDCMultinomialRaysampler",
        "RayBundle",
        "VolumeRenderer",
        "VolumeSampler",
        "camera_position_from_spherical_angles",
        "look_at_view_transform",
    ),
    "pytorch3d.structures": ("Volumes",),
    "pytorch3d.transforms": ("so3_exp_map",),
}

Arrays = dict[str, torch.Tensor]


class RecordError(Exception):
    """A refusal: the message is one line naming what is wrong."""


# ---------------------------------------------------------------------------------------------
# PyTorch3D
# ---------------------------------------------------------------------------------------------


def load_pytorch3d() -> tuple[SimpleNamespace, str]:
    """The PyTorch3D objects of :data:`API_NAMES` and PyTorch3D's version.

    Raises:
        RecordError: PyTorch3D is not importable, or ``pytorch3d`` is voxrender's alias.
    """
    try:
        found = importlib.util.find_spec("pytorch3d")
    except (ImportError, ValueError) as e:
        found, reason = None, f"{type(e).__name__}: {e}"
    else:
        reason = "no module named 'pytorch3d'"
    if found is None:
        raise RecordError(f"pytorch3d is not importable ({reason}); install PyTorch3D to re-record")
    try:
        root = importlib.import_module("pytorch3d")
        modules = {name: importlib.import_module(name) for name in API_NAMES}
        api = SimpleNamespace(
            **{n: getattr(modules[m], n) for m, names in API_NAMES.items() for n in names}
        )
    except Exception as e:  # installed but broken: a missing C extension, an old version, ...
        raise RecordError(f"pytorch3d is not importable ({type(e).__name__}: {e})") from None
    if getattr(root, "__voxrender_alias__", False):
        raise RecordError(
            "pytorch3d is voxrender.compat's alias of voxrender, not PyTorch3D; "
            "run without the alias installed"
        )
    return api, str(getattr(root, "__version__", "unknown"))


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------


def read_spec(spec_dir: str | os.PathLike) -> tuple[dict, dict[str, Arrays]]:
    """The manifest and every case's ``in/`` arrays (as tensors, keyed without the prefix)."""
    spec_dir = Path(spec_dir)
    try:
        manifest = json.loads((spec_dir / "manifest.json").read_text())
        cases = manifest["cases"]
        inputs = {}
        for case in cases:
            with np.load(spec_dir / case["file"]) as data:
                inputs[case["name"]] = {
                    key[3:]: torch.from_numpy(np.array(data[key]))
                    for key in data.files
                    if key.startswith("in/")
                }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RecordError(
            f"--spec {spec_dir}: cannot read the fixtures ({type(e).__name__}: {e})"
        ) from None
    return manifest, inputs


# ---------------------------------------------------------------------------------------------
# One function per kind: exactly the calls of the fixtures' README
# ---------------------------------------------------------------------------------------------


def cotangent_loss(outputs: Arrays, seed: int) -> torch.Tensor:
    """``sum_k sum(out_k * cot_k)``: seeded normal cotangents drawn in sorted output order.

    The cotangents are drawn on the CPU in each output's dtype, then moved to its device.
    """
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(())
    for name in sorted(outputs):
        out = outputs[name]
        cot = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
        if out.requires_grad:
            total = total + (out * cot).sum()
    return total


def _leaves(inp: Arrays, names: Sequence[str]) -> Arrays:
    return {k: inp[k].clone().requires_grad_(True) for k in names}


def _cameras_fov(api, config, inp, grad_names):
    cams = api.FoVPerspectiveCameras(
        R=inp["camera.R"], T=inp["camera.T"], **config["camera_kwargs"]
    )
    points = inp["points"]
    outputs = {
        "projection_matrix": cams.get_projection_transform().get_matrix(),
        "world_to_view_matrix": cams.get_world_to_view_transform().get_matrix(),
        "full_projection_matrix": cams.get_full_projection_transform().get_matrix(),
        "transform_points": cams.transform_points(points),
        "unproject_world": cams.unproject_points(inp["xy_depth"], world_coordinates=True),
        "unproject_view": cams.unproject_points(inp["xy_depth"], world_coordinates=False),
        "unproject_scaled": cams.unproject_points(inp["xy_scaled_depth"], scaled_depth_input=True),
        "camera_center": cams.get_camera_center(),
        "getitem_transform_points": cams[[2, 0]].transform_points(points[[2, 0]]),
    }
    return outputs, {}


def _look_at(api, config, inp, grad_names):
    degrees = config["degrees"]
    R, T = api.look_at_view_transform(degrees=degrees, **inp)
    position = api.camera_position_from_spherical_angles(
        inp["dist"], inp["elev"], inp["azim"], degrees=degrees
    )
    return {"R": R, "T": T, "camera_position": position}, {}


def _so3_exp_map(api, config, inp, grad_names):
    leaves = _leaves(inp, grad_names)
    outputs = {"R": api.so3_exp_map(leaves["log_rot"])}
    cotangent_loss(outputs, config["cot_seed"]).backward()
    return outputs, {k: v.grad for k, v in leaves.items()}


def _volumes(api, config, inp, grad_names):
    voxel_size = float(inp["voxel_size"]) if config["scalar_voxel_size"] else inp["voxel_size"]
    vol = api.Volumes(
        inp["densities"],
        inp["features"],
        voxel_size,
        inp["volume_translation"],
        config["align_corners"],
    )
    outputs = {
        "world_to_local": vol.world_to_local_coords(inp["points_world"]),
        "local_to_world": vol.local_to_world_coords(inp["points_local"]),
        "coord_grid_world": vol.get_coord_grid(world_coordinates=True),
        "coord_grid_local": vol.get_coord_grid(world_coordinates=False),
        "local_to_world_matrix": vol.get_local_to_world_coords_transform().get_matrix(),
        "world_to_local_matrix": vol.get_world_to_local_coords_transform().get_matrix(),
        "grid_sizes": vol.get_grid_sizes(),
        "getitem_densities": vol[[2, 0]].densities(),
        "getitem_world_to_local": vol[1].world_to_local_coords(inp["points_world"][1:2]),
    }
    return outputs, {}


def _volumes_list(api, config, inp, grad_names):
    n = config["n"]
    vol = api.Volumes(
        densities=[inp[f"densities_{i}"] for i in range(n)],
        features=[inp[f"features_{i}"] for i in range(n)],
        voxel_size=config["voxel_size"],
        volume_translation=config["volume_translation"],
    )
    outputs = {
        "densities_padded": vol.densities(),
        "features_padded": vol.features(),
        "grid_sizes": vol.get_grid_sizes(),
        "world_to_local": vol.world_to_local_coords(inp["points_world"]),
        "coord_grid_world": vol.get_coord_grid(world_coordinates=True),
        "coord_grid_local": vol.get_coord_grid(world_coordinates=False),
    }
    for i, densities in enumerate(vol.densities_list()):
        outputs[f"densities_list_{i}"] = densities
    return outputs, {}


def sample_rays(api, config, inp):
    """The ray bundle of a ``raysampler`` case (the seeded sampler call)."""
    cams = api.FoVPerspectiveCameras(
        R=inp["camera.R"], T=inp["camera.T"], **config["camera_kwargs"]
    )
    sampler = getattr(api, config["class"])(**config["init"])
    forward = dict(config["forward"])
    if "mask" in inp:
        forward["mask"] = inp["mask"]
    torch.manual_seed(config["torch_manual_seed"])
    return sampler(cams, **forward)


def _raysampler(api, config, inp, grad_names):
    bundle = sample_rays(api, config, inp)
    names = ("origins", "directions", "lengths", "xys", "camera_ids", "camera_counts")
    return {n: getattr(bundle, n) for n in names if getattr(bundle, n, None) is not None}, {}


def _volume_sampler(api, config, inp, grad_names):
    leaves = _leaves(inp, grad_names)
    value = lambda k: leaves.get(k, inp.get(k))  # noqa: E731
    vol = api.Volumes(
        densities=value("densities"),
        features=value("features"),
        voxel_size=inp["voxel_size"],
        volume_translation=inp["volume_translation"],
        align_corners=config["align_corners"],
    )
    bundle = api.RayBundle(value("origins"), value("directions"), value("lengths"), None)
    sampler = api.VolumeSampler(
        vol, sample_mode=config["sample_mode"], padding_mode=config["padding_mode"]
    )
    rays_densities, rays_features = sampler(bundle)
    differentiable = {"rays_densities": rays_densities}
    if "features" in inp:
        differentiable["rays_features"] = rays_features
    cotangent_loss(differentiable, config["cot_seed"]).backward()
    outputs = {
        **differentiable,
        "rays_features_shape": torch.tensor(list(rays_features.shape), dtype=torch.int64),
    }
    return outputs, {k: v.grad for k, v in leaves.items()}


def _raymarcher(api, config, inp, grad_names):
    leaves = _leaves(inp, grad_names)
    if config["class"] == "EmissionAbsorptionRaymarcher":
        marcher = api.EmissionAbsorptionRaymarcher(surface_thickness=config["surface_thickness"])
        out = marcher(leaves["rays_densities"], leaves["rays_features"], eps=config["eps"])
    else:
        out = api.AbsorptionOnlyRaymarcher()(leaves["rays_densities"])
    outputs = {"out": out}
    cotangent_loss(outputs, config["cot_seed"]).backward()
    return outputs, {k: v.grad for k, v in leaves.items()}


def _huber(x: torch.Tensor, y: torch.Tensor, scaling: float = 0.1) -> torch.Tensor:
    return ((1 + (x - y) ** 2 / scaling**2).clamp(1e-4).sqrt() - 1) * scaling


def _render(api, config, inp, grad_names):
    leaves = _leaves(inp, grad_names)
    device, dtype = inp["log_densities"].device, inp["log_densities"].dtype  # the volume's
    R, T = api.look_at_view_transform(dist=2.7, elev=inp["elev"], azim=inp["azim"], device=device)
    cams = api.FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype), device=device)
    renderer = api.VolumeRenderer(
        api.NDCMultinomialRaysampler(
            image_width=config["image_width"],
            image_height=config["image_height"],
            n_pts_per_ray=config["n_pts_per_ray"],
            min_depth=config["min_depth"],
            max_depth=config["max_depth"],
        ),
        api.EmissionAbsorptionRaymarcher(surface_thickness=config["surface_thickness"]),
        sample_mode=config["sample_mode"],
    )
    log_densities, log_colors = leaves["log_densities"], leaves["log_colors"]
    batch = inp["elev"].shape[0]
    volumes = api.Volumes(
        densities=torch.sigmoid(log_densities)[None].expand(batch, *log_densities.shape),
        features=torch.sigmoid(log_colors)[None].expand(batch, *log_colors.shape),
        voxel_size=config["voxel_size"],
    )
    images = renderer(cameras=cams, volumes=volumes)[0]
    color_err = _huber(images[..., :3], inp["target_images"]).abs().mean()
    sil_err = _huber(images[..., 3], inp["target_silhouettes"]).abs().mean()
    (color_err + sil_err).backward()
    outputs = {"images": images, "color_err": color_err, "sil_err": sil_err}
    return outputs, {k: v.grad for k, v in leaves.items()}


KINDS: dict[str, Callable[..., tuple[Arrays, Arrays]]] = {
    "cameras_fov": _cameras_fov,
    "look_at": _look_at,
    "so3_exp_map": _so3_exp_map,
    "volumes": _volumes,
    "volumes_list": _volumes_list,
    "raysampler": _raysampler,
    "volume_sampler": _volume_sampler,
    "raymarcher": _raymarcher,
    "render": _render,
}


def run_calls(api: Any, case: dict, inputs: Arrays) -> tuple[Arrays, Arrays]:
    """The calls of one case (its kind's, as the fixtures' README lists them), on ``inputs``.

    The one definition of what each case computes: the recorder runs it with PyTorch3D's
    objects, the tests with voxrender's (on any device and dtype the inputs are given in).

    Args:
        api: objects named as in :data:`API_NAMES` (attributes).
        case: the case's manifest entry (``name``, ``kind``, ``config``, ``arrays``).
        inputs: its ``in/`` tensors, keyed without the prefix.

    Returns:
        ``(outputs, grads)``: tensors keyed as the case's ``out/`` and ``grad/`` arrays.

    Raises:
        RecordError: an unknown kind.
    """
    name, kind = case["name"], case["kind"]
    if kind not in KINDS:
        raise RecordError(f"case {name}: unknown kind {kind!r} (known: {sorted(KINDS)})")
    grad_names = [k[5:] for k in case["arrays"] if k.startswith("grad/")]
    return KINDS[kind](api, case["config"], dict(inputs), grad_names)


def record_case(api: Any, case: dict, inputs: Arrays) -> dict[str, np.ndarray]:
    """Run one case; its arrays keyed and ordered as the spec lists them.

    Args:
        api: the PyTorch3D-named objects of :data:`API_NAMES` (attributes).
        case: the case's manifest entry (``name``, ``kind``, ``config``, ``arrays``).
        inputs: its ``in/`` tensors, keyed without the prefix.

    Raises:
        RecordError: an unknown kind, or a recorded key or shape that differs from the spec's.
    """
    name = case["name"]
    outputs, grads = run_calls(api, case, inputs)
    produced = {f"in/{k}": v for k, v in inputs.items()}
    produced.update({f"out/{k}": v for k, v in outputs.items()})
    produced.update({f"grad/{k}": v for k, v in grads.items()})
    arrays = {}
    for key, shape in case["arrays"].items():
        if key not in produced or produced[key] is None:
            raise RecordError(f"case {name}: the call produced no {key}")
        value = produced[key].detach().cpu().numpy()
        if list(value.shape) != list(shape):
            raise RecordError(
                f"case {name}: {key} has shape {list(value.shape)}, the spec says {shape}"
            )
        arrays[key] = value
    extra = sorted(set(produced) - set(arrays))
    if extra:
        raise RecordError(f"case {name}: the call produced {extra}, which the spec does not list")
    return arrays


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RecordError(f"OUT_DIR {out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise RecordError(f"OUT_DIR {out_dir}: exists and is not empty; pass --force to replace it")


def _write_file(path: Path, fill: Callable[[Any], None]) -> None:
    with open(path, "wb") as f:
        fill(f)
        f.flush()
        os.fsync(f.fileno())


def write_fixtures(
    out_dir: str | os.PathLike,
    manifest: dict,
    arrays: dict[str, dict[str, np.ndarray]],
    readme: str | None = None,
    force: bool = False,
) -> Path:
    """Write a fixtures folder atomically: all files into a temporary sibling, then one rename.

    Args:
        out_dir: the folder to create (or, with ``force``, to replace).
        manifest: the ``manifest.json`` content; its cases' ``file`` names the ``.npz`` files.
        arrays: ``.npz`` file name -> its arrays.
        readme: the README text to include, if any.
        force: replace an existing, non-empty ``out_dir``.
    """
    out_dir = Path(out_dir).absolute()
    _check_out_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    old = None
    try:
        for file, content in arrays.items():
            _write_file(staging / file, lambda f, c=content: np.savez_compressed(f, **c))
        text = json.dumps(manifest, indent=1) + "\n"
        _write_file(staging / "manifest.json", lambda f: f.write(text.encode("utf-8")))
        if readme is not None:
            _write_file(staging / "README.md", lambda f: f.write(readme.encode("utf-8")))
        os.chmod(staging, 0o755)
        if out_dir.is_dir() and any(out_dir.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old)  # ``old`` was an empty folder: replaced by the old fixtures
        os.replace(staging, out_dir)  # over nothing, or over an empty folder
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)
            old = None
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir


def record_all(
    api: Any, spec_dir: str | os.PathLike, version: str
) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Record every case of the spec: the new manifest and the arrays of every file."""
    manifest, inputs = read_spec(spec_dir)
    arrays = {}
    for case in manifest["cases"]:
        arrays[case["file"]] = record_case(api, case, inputs[case["name"]])
    new_manifest = dict(manifest)
    new_manifest["recorded_with"] = {
        "pytorch3d": version,
        "torch": torch.__version__,
        "dtype": "float32",
        "device": "cpu",
    }
    return new_manifest, arrays


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 done, 2 refused)."""
    parser = argparse.ArgumentParser(
        prog="python -m reference.record_fixtures",
        description="Re-record tests/fixtures/pytorch3d with a real PyTorch3D (same cases, same inputs).",
    )
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="folder to write (new or empty unless --force)"
    )
    parser.add_argument(
        "--spec", default=str(DEFAULT_SPEC), help="fixtures to re-record (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    args = parser.parse_args(argv)
    try:
        _check_out_dir(Path(args.out_dir), args.force)
        api, version = load_pytorch3d()
        manifest, arrays = record_all(api, args.spec, version)
        readme_path = Path(args.spec) / "README.md"
        readme = readme_path.read_text() if readme_path.is_file() else None
        out_dir = write_fixtures(args.out_dir, manifest, arrays, readme=readme, force=args.force)
    except RecordError as e:
        print(f"record_fixtures: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"record_fixtures: error: {args.out_dir}: {e}", file=sys.stderr)
        return 2
    print(f"recorded {len(manifest['cases'])} cases with PyTorch3D {version} into {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run settings: the :class:`FitConfig` dataclass, named presets, the command-line parser.

Settings are layered, later layers winning: the tutorial's defaults (the fields of
:class:`FitConfig`), then a ``--preset``, then the flags given explicitly. With ``--resume`` the
settings that shape the result (:data:`RESULT_KEYS`) come from the run's checkpoint instead of
the defaults, and any preset or flag given must agree with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import textwrap
from dataclasses import dataclass
from typing import Any

from .errors import FitError

__all__ = [
    "BACKENDS",
    "DEVICES",
    "PRESETS",
    "RESULT_KEYS",
    "FitConfig",
    "build_parser",
    "flag",
    "parse_overrides",
    "resolve_config",
    "validate_config",
]

BACKENDS = ("voxrender", "pytorch3d")
DEVICES = ("auto", "cpu", "cuda")

# Settings that change the fitted volume: a resumed run must keep them.
RESULT_KEYS = (
    "volume_size",
    "extent",
    "n_pts_per_ray",
    "min_depth",
    "batch_size",
    "iters",
    "lr",
    "seed",
    "image_size",
    "data",
    "downsample",
    "scene_pts_per_ray",
    "backend",
)


@dataclass
class FitConfig:
    """Everything a fit needs; the defaults are the tutorial's.

    Attributes:
        volume_size: voxels per side ``V`` of the fitted ``(V, V, V)`` grid.
        extent: side of the cube the volume spans, centred at the origin (world units); also the
            raysampler's ``max_depth``.
        n_pts_per_ray: points sampled along each ray by the fit's raysampler.
        min_depth: the raysampler's ``min_depth``.
        batch_size: training views rendered per iteration.
        iters: optimisation steps; the learning rate drops 10-fold at ``round(0.75 * iters)``.
        lr: Adam's learning rate.
        seed: ``torch.manual_seed`` once before the loop.
        image_size: side of the built-in scene's square views; ``None`` means 128, or the data
            file's own size with ``data``.
        data: an ``.npz`` of views (format: :mod:`reference.data`), or a NeRF-synthetic /
            Blender scene: a folder or a ``transforms*.json`` file (:mod:`reference.blender`);
            ``None`` means the built-in scene (:mod:`reference.scene`).
        downsample: shrink the data's images by this integer factor (``K x K`` pixel blocks
            averaged); ``1`` keeps them.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        backend: ``"voxrender"`` or ``"pytorch3d"`` (PyTorch3D's classes in the same pipeline).
        out: the run folder; ``None`` means ``runs/<timestamp>``.
        resume: continue the run in ``out`` from its ``checkpoint.pt``.
        checkpoint_every: iterations between checkpoints.
        progress_every: iterations between progress panels (the tutorial's 40).
        stop_after: stop once this many iterations are done, leaving a checkpoint (simulates an
            interruption; used by the tests).
        scene_pts_per_ray: points per ray when rendering the built-in scene's ground truth.
        eval_batch_size: views per batch when rendering the final volume.
        progress_bar: show the tqdm bar; ``None`` shows it only on a terminal.
        dist_timeout: under ``torchrun``, seconds a process waits for a silent peer (joining, and
            each collective) before giving up (:mod:`reference.distributed`).
        preset: name of the preset the settings started from (informational).
    """

    volume_size: int = 128
    extent: float = 3.0
    n_pts_per_ray: int = 150
    min_depth: float = 0.1
    batch_size: int = 10
    iters: int = 300
    lr: float = 0.1
    seed: int = 0
    image_size: int | None = None
    data: str | None = None
    downsample: int = 1
    device: str = "auto"
    backend: str = "voxrender"
    out: str | None = None
    resume: bool = False
    checkpoint_every: int = 10
    progress_every: int = 40
    stop_after: int | None = None
    scene_pts_per_ray: int = 256
    eval_batch_size: int = 4
    progress_bar: bool | None = None
    dist_timeout: float = 300.0
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (JSON- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial as published (about 10 min on 2 CPU cores).
    "tutorial": {},
    # About 20 s on a 2-core CPU with the built-in scene.
    "quick": {
        "volume_size": 64,
        "image_size": 64,
        "n_pts_per_ray": 64,
        "batch_size": 6,
        "iters": 100,
        "scene_pts_per_ray": 192,
    },
    # Seconds: for tests and smoke runs.
    "tiny": {
        "volume_size": 16,
        "image_size": 16,
        "n_pts_per_ray": 32,
        "batch_size": 4,
        "iters": 20,
        "scene_pts_per_ray": 48,
        "checkpoint_every": 4,
        "eval_batch_size": 16,
    },
}


def flag(name: str) -> str:
    """The command-line flag of a :class:`FitConfig` field, e.g. ``--volume-size``."""
    return "--" + name.replace("_", "-")


def _check_int(cfg: FitConfig, name: str, low: int, *, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FitError(f"{flag(name)}: expected an integer >= {low}, got {value!r}")


def _check_float(cfg: FitConfig, name: str, *, allow_zero: bool = False) -> None:
    value = getattr(cfg, name)
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (allow_zero and value == 0))
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise FitError(f"{flag(name)}: expected a finite number {bound}, got {value!r}")


def validate_config(cfg: FitConfig) -> FitConfig:
    """Check every setting that can be checked without the data; raise :class:`FitError`.

    Also normalises ``data`` to an absolute path. Returns ``cfg``.
    """
    if not isinstance(cfg, FitConfig):
        raise FitError(f"config: expected a FitConfig, got {type(cfg).__name__}")
    _check_int(cfg, "volume_size", 2)
    _check_int(cfg, "n_pts_per_ray", 2)
    _check_int(cfg, "batch_size", 1)
    _check_int(cfg, "iters", 1)
    _check_int(cfg, "image_size", 2, optional=True)
    _check_int(cfg, "checkpoint_every", 1)
    _check_int(cfg, "progress_every", 1)
    _check_int(cfg, "stop_after", 1, optional=True)
    _check_int(cfg, "downsample", 1)
    _check_int(cfg, "scene_pts_per_ray", 2)
    _check_int(cfg, "eval_batch_size", 1)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise FitError(f"--seed: expected an integer >= 0, got {cfg.seed!r}")
    _check_float(cfg, "extent")
    _check_float(cfg, "lr")
    _check_float(cfg, "min_depth", allow_zero=True)
    _check_float(cfg, "dist_timeout")
    if cfg.min_depth >= cfg.extent:
        raise FitError(
            f"--min-depth: expected less than the max depth (--extent {cfg.extent:g}), "
            f"got {cfg.min_depth:g}"
        )
    if cfg.device not in DEVICES:
        raise FitError(f"--device: expected one of {', '.join(DEVICES)}, got {cfg.device!r}")
    if cfg.backend not in BACKENDS:
        raise FitError(f"--backend: expected one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise FitError(f"--preset: expected one of {', '.join(PRESETS)}, got {cfg.preset!r}")
    if cfg.data is not None:
        if not isinstance(cfg.data, (str, os.PathLike)) or not str(cfg.data):
            raise FitError(f"--data: expected a file path, got {cfg.data!r}")
        cfg.data = os.path.abspath(os.fspath(cfg.data))
    if cfg.resume and cfg.out is None:
        raise FitError("--resume: expected --out naming the run folder to continue, got none")
    return cfg


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are :class:`FitError` (one line, no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        raise FitError(message)


PRESET_TIMES = {
    "tutorial": "the tutorial's settings; about 10 min on 2 CPU cores",
    "quick": "about 20 s on 2 CPU cores",
    "tiny": "seconds; for tests and smoke runs",
}


def describe_presets() -> str:
    """One line per preset: what it sets, and how long it takes."""
    lines = []
    for name, values in PRESETS.items():
        sets = " ".join(f"{flag(k)} {v}" for k, v in values.items()) or "the defaults"
        text = f"  {name:<9} {sets} ({PRESET_TIMES[name]})"
        lines.append(textwrap.fill(text, width=92, subsequent_indent=" " * 12))
    return "\n".join(lines)


_HELP_EPILOG = """\
data (--data): a NeRF-synthetic / Blender scene (a folder with transforms_train.json and
  transforms_test.json or transforms_val.json, or one transforms.json; or one such .json file):
  RGBA PNGs, RGB composited on black, silhouettes from alpha, cameras converted from OpenGL,
  the scene centred and scaled so the cameras sit at distance 2.7 (as the built-in scene's);
  or an .npz of views, arrays by key:
  images (N,H,W,3) float in [0,1]     silhouettes (N,H,W) in [0,1]
  R (N,3,3) world-to-view rotations   T (N,3) translations (FoVPerspectiveCameras' R, T)
  optional fov (degrees), znear, zfar, aspect_ratio: scalars or (N,) (defaults 60, 1, 100, 1)
  optional heldout_images (M,H,W,3), heldout_R (M,3,3), heldout_T (M,3) (all three or none),
  heldout_silhouettes (M,H,W), heldout_fov / heldout_znear / heldout_zfar / heldout_aspect_ratio
without --data: the built-in analytic scene (40 training views, 25 held-out views).

presets (flags given explicitly override them):
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``voxrender-fit`` parser. Every setting defaults to "not given" so presets can layer."""
    p = _Parser(
        prog="voxrender-fit",
        description="Fit a textured voxel volume to images by differentiable volume rendering "
        "(PyTorch3D's fit_textured_volume tutorial).",
        epilog=_HELP_EPILOG + describe_presets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    d = FitConfig()
    p.add_argument(
        "--preset", choices=list(PRESETS), help="start from named settings (listed below)"
    )
    p.add_argument(
        "--volume-size", metavar="V", type=int, help=f"voxels per side (default {d.volume_size})"
    )
    p.add_argument(
        "--extent",
        metavar="X",
        type=float,
        help=f"side of the volume's cube, world units (default {d.extent:g})",
    )
    p.add_argument(
        "--n-pts-per-ray", metavar="P", type=int, help=f"points per ray (default {d.n_pts_per_ray})"
    )
    p.add_argument(
        "--min-depth",
        metavar="D",
        type=float,
        help=f"raysampler min depth (default {d.min_depth:g})",
    )
    p.add_argument(
        "--batch-size", metavar="B", type=int, help=f"views per iteration (default {d.batch_size})"
    )
    p.add_argument("--iters", metavar="N", type=int, help=f"iterations (default {d.iters})")
    p.add_argument("--lr", metavar="LR", type=float, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--seed", metavar="S", type=int, help=f"torch.manual_seed (default {d.seed})")
    p.add_argument(
        "--image-size", metavar="S", type=int, help="built-in scene's image side (default 128)"
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="views to fit: a Blender scene folder, a transforms*.json or an .npz "
        "(default: built-in scene)",
    )
    p.add_argument(
        "--downsample",
        metavar="K",
        type=int,
        help="shrink --data images K times (K x K pixel blocks averaged; default 1)",
    )
    p.add_argument("--device", choices=list(DEVICES), help="auto (default), cpu or cuda")
    p.add_argument("--backend", choices=list(BACKENDS), help="voxrender (default) or pytorch3d")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--checkpoint-every",
        metavar="N",
        type=int,
        help=f"iterations between checkpoints (default {d.checkpoint_every})",
    )
    p.add_argument(
        "--progress-every",
        metavar="N",
        type=int,
        help=f"iterations between progress panels (default {d.progress_every})",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop once N iterations are done, leaving a checkpoint (simulates an interruption)",
    )
    p.add_argument(
        "--scene-pts-per-ray",
        metavar="P",
        type=int,
        help=f"points per ray of the built-in scene's ground truth (default {d.scene_pts_per_ray})",
    )
    p.add_argument(
        "--eval-batch-size",
        metavar="B",
        type=int,
        help=f"views per batch for final renders (default {d.eval_batch_size})",
    )
    p.add_argument(
        "--progress-bar",
        action=argparse.BooleanOptionalAction,
        help="show the progress bar (default: only on a terminal)",
    )
    p.add_argument(
        "--dist-timeout",
        metavar="SECONDS",
        type=float,
        help="under torchrun: seconds to wait for a silent peer before stopping "
        f"(default {d.dist_timeout:g})",
    )
    return p


def parse_overrides(argv: list[str] | None) -> dict[str, Any]:
    """Parse ``argv`` into the settings given explicitly (field name -> value)."""
    return vars(build_parser().parse_args(argv))


def resolve_config(
    overrides: dict[str, Any], checkpoint_config: dict[str, Any] | None = None
) -> FitConfig:
    """Layer defaults, the preset and explicit settings into a validated :class:`FitConfig`.

    Args:
        overrides: explicitly given settings, e.g. from :func:`parse_overrides`; may hold
            ``preset``.
        checkpoint_config: the config stored in the checkpoint of a run being resumed; its
            :data:`RESULT_KEYS` replace the defaults and must not be contradicted.

    Returns:
        The validated config.
    """
    fields = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise FitError(f"config: unknown setting(s) {', '.join(unknown)}")
    preset = overrides.get("preset")
    if preset is not None and preset not in PRESETS:
        raise FitError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    layered: dict[str, Any] = {}
    if checkpoint_config is not None:
        layered.update({k: checkpoint_config[k] for k in RESULT_KEYS if k in checkpoint_config})
        layered["preset"] = checkpoint_config.get("preset")
    requested = {**(PRESETS[preset] if preset else {}), **overrides}
    if requested.get("data") is not None:
        requested["data"] = os.path.abspath(os.fspath(requested["data"]))
        if "image_size" not in overrides:  # a preset's image size is the built-in scene's
            requested.pop("image_size", None)
    if checkpoint_config is not None:
        clashes = [
            f"{flag(k)} {requested[k]!r} (the run has {checkpoint_config.get(k)!r})"
            for k in RESULT_KEYS
            if k in requested and requested[k] != checkpoint_config.get(k)
        ]
        if clashes:
            raise FitError("--resume: settings differ from the checkpoint's: " + "; ".join(clashes))
    layered.update(requested)
    return validate_config(FitConfig(**layered))

"""Views in the NeRF-synthetic ("Blender") format: reading, camera conversion, writing.

The format (``nerf_synthetic/lego`` and the like; nerfstudio, instant-ngp and nerfacc read it):
a folder with ``transforms_train.json``, ``transforms_val.json`` and ``transforms_test.json``
(or one ``transforms.json``), each a JSON object::

    {"camera_angle_x": 0.6911,                       # horizontal field of view, radians
     "frames": [{"file_path": "./train/r_0",         # relative to the JSON file; ".png" optional
                 "transform_matrix": [[...4 x 4...]]},  # camera-to-world, OpenGL convention
                ...]}

and RGBA PNGs. How they become the fit's views (:class:`~reference.data.ViewData`):

- **Splits.** A folder: ``transforms_train.json`` trains, ``transforms_test.json`` (else
  ``transforms_val.json``, else none) is held out; or ``transforms.json`` alone trains, with no
  held-out views. One JSON file given directly: its frames train, no held-out views.
- **Images.** Silhouettes are the alpha channel. RGB is composited on **black**
  (``rgb * alpha``): the emission-absorption raymarcher renders empty space as black, so that is
  the background the fitted volume can reproduce (NeRF's papers composite on white; a white
  background would have to be painted by the volume itself). ``downsample=K`` averages ``K x K``
  pixel blocks (of the composited RGB and of alpha), keeping the field of view.
- **Cameras.** Each camera-to-world matrix becomes ``FoVPerspectiveCameras(R, T)`` through
  :func:`opengl_to_pytorch3d` (derivation there), with ``fov`` the field of view across the
  image's shorter side (PyTorch3D's NDC spans ``[-1, 1]`` along it) and ``aspect_ratio`` 1.
- **Scale and centre.** The scene is moved and scaled (:func:`normalize_scene`) so that the point
  the training cameras look at sits at the origin and the cameras at the built-in scene's
  distance, 2.7: the tutorial's volume box (side 3, centred at the origin) and depth range then
  frame it as they frame the cow.

Dimension letters: ``N`` frames, ``H, W`` image size.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import INTRINSICS, ViewData, Views
from .errors import FitError

__all__ = [
    "SPLIT_FILES",
    "TARGET_DISTANCE",
    "SceneNormalization",
    "is_blender_path",
    "load_blender",
    "normalize_scene",
    "opengl_to_pytorch3d",
    "pytorch3d_to_opengl",
    "save_blender",
]

SPLIT_FILES = {
    "train": "transforms_train.json",
    "val": "transforms_val.json",
    "test": "transforms_test.json",
}
TARGET_DISTANCE = 2.7  # the built-in scene's (and the tutorial's cow's) camera distance

# PyTorch3D's view axes in OpenGL's camera axes: x and z flip, y stays.
_FLIP = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))


def opengl_to_pytorch3d(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenGL camera-to-world matrices -> PyTorch3D ``FoVPerspectiveCameras`` ``R, T``.

    Derivation. An OpenGL (Blender, NeRF) camera looks down its ``-z`` axis, ``+x`` right, ``+y``
    up; ``c2w = [[Rc, t], [0, 1]]`` maps camera points to world points as column vectors:
    ``X_world = Rc @ X_gl + t``, so ``X_gl = Rc^T @ (X_world - t)``. PyTorch3D's view space has
    ``+x`` left, ``+y`` up, ``+z`` into the screen (the viewing direction): the same camera's
    axes with x and z negated, ``X_view = F @ X_gl``, ``F = diag(-1, 1, -1)``. Hence
    ``X_view = F Rc^T X_world - F Rc^T t``. PyTorch3D writes points as rows,
    ``X_view = X_world @ R + T``, i.e. ``X_view = R^T X_world + T`` as columns; matching terms:

    - ``R^T = F Rc^T``, so ``R = Rc F``: ``Rc`` with its first and third columns negated;
    - ``T = -F Rc^T t = -R^T t``, i.e. ``T = -t @ R`` as a row.

    ``F`` is its own inverse, so :func:`pytorch3d_to_opengl` undoes it: ``Rc = R F``,
    ``t = -R T`` (the camera centre). Both are rotations (``det F = +1``).

    Args:
        c2w: ``(N, 4, 4)`` or ``(N, 3, 4)`` camera-to-world matrices (last row ignored).

    Returns:
        ``R (N, 3, 3)``, ``T (N, 3)`` in ``c2w``'s dtype.
    """
    rot, t = c2w[:, :3, :3], c2w[:, :3, 3]  # (N, 3, 3), (N, 3)
    R = rot @ _FLIP.to(c2w)  # (N, 3, 3)
    T = -(t[:, None, :] @ R)[:, 0]  # (N, 3)
    return R, T


def pytorch3d_to_opengl(R: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`opengl_to_pytorch3d`: ``R (N, 3, 3)``, ``T (N, 3)`` -> ``c2w (N, 4, 4)``."""
    c2w = torch.zeros(R.shape[0], 4, 4, dtype=R.dtype, device=R.device)
    c2w[:, :3, :3] = R @ _FLIP.to(R)
    c2w[:, :3, 3] = -(R @ T[:, :, None])[..., 0]  # the camera centres (N, 3)
    c2w[:, 3, 3] = 1.0
    return c2w


@dataclass(frozen=True)
class SceneNormalization:
    """``X_fit = scale * (X_data - center)``: where the data's world goes in the fit's world."""

    center: tuple[float, float, float]
    scale: float

    def apply(self, c2w: torch.Tensor) -> torch.Tensor:
        """Move and scale camera-to-world matrices ``(N, 4, 4)``; rotations are unchanged."""
        out = c2w.clone()
        center = torch.tensor(self.center, dtype=c2w.dtype)
        out[:, :3, 3] = self.scale * (c2w[:, :3, 3] - center)
        return out


def normalize_scene(c2w: torch.Tensor, where: str = "data") -> SceneNormalization:
    """Centre on the point the cameras look at; scale the cameras' distance to 2.7.

    The centre is the least-squares closest point to all optical axes (the cameras' ``-z`` axes
    in OpenGL): ``sum_i (I - d_i d_i^T) (x - o_i) = 0``. The scale brings the cameras' median
    distance from it to :data:`TARGET_DISTANCE`.

    Args:
        c2w: ``(N, 4, 4)`` training camera-to-world matrices.
        where: prefix of error messages.

    Raises:
        FitError: the optical axes are (nearly) parallel (a forward-facing capture), so no
            common centre exists, or the cameras sit at the centre.
    """
    c2w = c2w.to(torch.float64)
    origins, dirs = c2w[:, :3, 3], -c2w[:, :3, 2]  # (N, 3) each
    dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    proj = torch.eye(3, dtype=torch.float64) - dirs[:, :, None] * dirs[:, None, :]  # (N, 3, 3)
    a, b = proj.sum(0), (proj @ origins[:, :, None]).sum(0)[:, 0]
    eig = torch.linalg.eigvalsh(a)
    if eig[0] < 1e-3 * eig[-1]:
        raise FitError(
            f"{where}: the cameras' optical axes are nearly parallel, so they do not look at a "
            "common centre (a forward-facing capture?); only inward-facing captures are supported"
        )
    center = torch.linalg.solve(a, b)  # (3,)
    dist = torch.linalg.vector_norm(origins - center, dim=-1).median()
    if not dist > 1e-9:
        raise FitError(f"{where}: the cameras sit at the point they look at")
    return SceneNormalization(
        center=tuple(float(c) for c in center), scale=TARGET_DISTANCE / float(dist)
    )


def is_blender_path(path: str | os.PathLike) -> bool:
    """Whether ``--data path`` names the Blender format (a folder or a ``.json`` file)."""
    return os.path.isdir(path) or os.fspath(path).lower().endswith(".json")


def _read_json(path: Path, where: str) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FitError(
            f"{where}: cannot read {path.name} as JSON ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(meta, dict):
        raise FitError(f"{where}: {path.name}: expected a JSON object, got {type(meta).__name__}")
    angle = meta.get("camera_angle_x")
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 < angle < math.pi:
        raise FitError(
            f"{where}: {path.name}: camera_angle_x: expected radians in (0, pi), got {angle!r}"
        )
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise FitError(
            f"{where}: {path.name}: frames: expected a non-empty list, got {frames!r:.60}"
        )
    return meta


def _frame_matrix(frame: object, k: int, name: str, where: str) -> np.ndarray:
    matrix = frame.get("transform_matrix") if isinstance(frame, dict) else None
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape not in ((4, 4), (3, 4)) or not np.isfinite(m).all():
        raise FitError(
            f"{where}: {name}: frames[{k}].transform_matrix: expected a finite 4x4 matrix, "
            f"got {matrix!r:.60}"
        )
    rot = m[:3, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(rot) - 1) > 1e-3:
        raise FitError(
            f"{where}: {name}: frames[{k}].transform_matrix: expected a rotation in its upper "
            "left 3x3 (orthonormal, det +1; scaled or mirrored cameras are not supported)"
        )
    return np.vstack((m[:3], [0.0, 0.0, 0.0, 1.0]))


def _image_path(folder: Path, frame: dict, k: int, name: str, where: str) -> Path:
    rel = frame.get("file_path")
    if not isinstance(rel, str) or not rel:
        raise FitError(f"{where}: {name}: frames[{k}].file_path: expected a path, got {rel!r}")
    path = folder / rel
    if not path.is_file() and path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")  # the Blender dataset omits the extension
    if not path.is_file():
        raise FitError(f"{where}: {name}: frames[{k}]: no such image: {folder / rel}")
    return path


def _read_rgba(path: Path, downsample: int, where: str) -> np.ndarray:
    """One PNG as ``(H', W', 4)`` float32: RGB composited on black, then alpha; downsampled."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            if not has_alpha:
                raise FitError(
                    f"{where}: {path.name}: expected an image with an alpha channel (RGBA), got "
                    f"mode {im.mode}; silhouettes come from alpha"
                )
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
    except (OSError, UnidentifiedImageError) as e:
        raise FitError(f"{where}: cannot read image {path} ({type(e).__name__}: {e})") from None
    rgba[..., :3] *= rgba[..., 3:]
    if downsample > 1:
        h, w = rgba.shape[0] // downsample, rgba.shape[1] // downsample
        if min(h, w) < 2:
            raise FitError(
                f"--downsample {downsample}: {path.name} ({rgba.shape[0]}x{rgba.shape[1]}) would "
                "shrink below 2 pixels"
            )
        t = torch.from_numpy(rgba).permute(2, 0, 1)[None]  # (1, 4, H, W)
        t = torch.nn.functional.interpolate(t, size=(h, w), mode="area")
        rgba = t[0].permute(1, 2, 0).numpy()
    return rgba


def _read_split(
    json_path: Path, downsample: int, where: str
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``images (N, H, W, 4)``, ``c2w (N, 4, 4)`` float64, the field of view (degrees)."""
    meta = _read_json(json_path, where)
    frames, name = meta["frames"], json_path.name
    c2w = np.stack([_frame_matrix(f, k, name, where) for k, f in enumerate(frames)])
    images, size = [], None
    for k, frame in enumerate(frames):
        rgba = _read_rgba(_image_path(json_path.parent, frame, k, name, where), downsample, where)
        if size is None:
            size = rgba.shape[:2]
        elif rgba.shape[:2] != size:
            raise FitError(
                f"{where}: {name}: frames[{k}]: expected every image to be {size[0]}x{size[1]} "
                f"(H x W), got {rgba.shape[0]}x{rgba.shape[1]}"
            )
        images.append(torch.from_numpy(rgba))
    h, w = size
    # focal length in pixels of the (downsampled) image; fov across its shorter side
    focal = 0.5 * w / math.tan(0.5 * meta["camera_angle_x"])
    fov = math.degrees(2.0 * math.atan(0.5 * min(h, w) / focal))
    return torch.stack(images), torch.from_numpy(c2w), fov


def _views(images: torch.Tensor, c2w: torch.Tensor, fov: float, norm: SceneNormalization) -> Views:
    R, T = opengl_to_pytorch3d(norm.apply(c2w))
    n = images.shape[0]
    intrinsics = {k: torch.full((n,), float(v)) for k, v in INTRINSICS.items()}
    intrinsics["fov"] = torch.full((n,), fov)
    return Views(
        images=images[..., :3].contiguous(),
        silhouettes=images[..., 3].contiguous(),
        R=R.float(),
        T=T.float(),
        **intrinsics,
    )


def _split_files(path: Path, where: str) -> tuple[Path, Path | None]:
    """The training JSON and the held-out one (or ``None``)."""
    if path.is_file():
        return path, None
    train = path / SPLIT_FILES["train"]
    if train.is_file():
        for split in ("test", "val"):
            if (path / SPLIT_FILES[split]).is_file():
                return train, path / SPLIT_FILES[split]
        return train, None
    if (path / "transforms.json").is_file():
        return path / "transforms.json", None
    raise FitError(
        f"{where}: expected transforms_train.json (with transforms_test.json or "
        "transforms_val.json) or transforms.json in the folder, found neither"
    )


def load_blender(
    path: str | os.PathLike, downsample: int = 1, log: Callable[[str], None] | None = None
) -> ViewData:
    """Load a NeRF-synthetic / Blender scene as training and held-out views.

    Args:
        path: the scene folder, or one ``transforms*.json`` file.
        downsample: keep every ``K x K`` block of pixels as one (area average).
        log: receives one line describing the splits and the normalisation.

    Returns:
        :class:`~reference.data.ViewData` with RGB composited on black, silhouettes from alpha,
        cameras in PyTorch3D's convention, the scene centred and scaled (module docstring).

    Raises:
        FitError: a missing file, bad JSON, a non-rotation camera, an image without alpha or
            of a different size, or cameras that do not look at a common centre.
    """
    path = Path(path)
    where = f"--data {path}"
    if not path.exists():
        raise FitError(f"--data: no such file or folder: {path}")
    train_json, held_json = _split_files(path, where)
    images, c2w, fov = _read_split(train_json, downsample, where)
    norm = normalize_scene(c2w, where)
    train = _views(images, c2w, fov, norm)
    heldout = None
    if held_json is not None:
        h_images, h_c2w, h_fov = _read_split(held_json, downsample, where)
        if h_images.shape[1:3] != images.shape[1:3]:
            raise FitError(
                f"{where}: {held_json.name}: expected the training images' size "
                f"{tuple(images.shape[1:3])}, got {tuple(h_images.shape[1:3])}"
            )
        heldout = _views(h_images, h_c2w, h_fov, norm)
    h, w = train.image_size
    held = "none" if heldout is None else f"{len(heldout)} from {held_json.name}"
    c = ", ".join(f"{v:.3g}" for v in norm.center)
    if log is not None:
        log(
            f"Blender scene: {len(train)} training views from {train_json.name}, held-out {held}; "
            f"{h}x{w} px, fov {fov:.2f} deg; centred on ({c}) and scaled by {norm.scale:.4g} "
            f"(cameras at distance {TARGET_DISTANCE} from the centre)"
        )
    return ViewData(train=train, heldout=heldout, source=where)


def _save_split(folder: Path, name: str, split: str, views: Views) -> None:
    from PIL import Image

    from .atomic import write_bytes_atomic, write_json_atomic
    from .plots import to_uint8

    (folder / split).mkdir(parents=True, exist_ok=True)
    h, w = views.image_size
    fov = math.radians(float(views.fov[0]))
    focal = 0.5 * min(h, w) / math.tan(0.5 * fov)
    angle_x = 2.0 * math.atan(0.5 * w / focal)
    c2w = pytorch3d_to_opengl(views.R.double(), views.T.double())
    alpha = (
        views.silhouettes if views.silhouettes is not None else torch.ones(views.images.shape[:3])
    )
    # un-premultiply: the format stores straight colour and alpha
    rgb = torch.where(alpha[..., None] > 0, views.images / alpha[..., None].clamp_min(1e-6), 0.0)
    rgba = to_uint8(torch.cat((rgb, alpha[..., None]), dim=-1).numpy())
    frames = []
    for k in range(len(views)):
        rel = f"{split}/r_{k}"
        buffer = io.BytesIO()
        Image.fromarray(rgba[k], mode="RGBA").save(buffer, format="PNG")
        write_bytes_atomic(folder / f"{rel}.png", buffer.getvalue())
        frames.append({"file_path": f"./{rel}", "transform_matrix": c2w[k].tolist()})
    write_json_atomic(folder / name, {"camera_angle_x": angle_x, "frames": frames})


def save_blender(folder: str | os.PathLike, data: ViewData) -> None:
    """Write views as a Blender scene: ``transforms_train.json`` (+ ``transforms_test.json``).

    Images are stored as RGBA PNGs (colour un-premultiplied by alpha, 8 bits); cameras through
    :func:`pytorch3d_to_opengl`; ``camera_angle_x`` from the first view's ``fov``. Used by the
    tests to make small scenes; also a way to hand the built-in scene to other NeRF tools.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_split(folder, SPLIT_FILES["train"], "train", data.train.to("cpu"))
    if data.heldout is not None:
        _save_split(folder, SPLIT_FILES["test"], "test", data.heldout.to("cpu"))

"""reference.blender: the NeRF-synthetic / Blender format, its camera conversion, and fitting it.

Every dataset here is written by the test itself (from the built-in scene or by hand).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reference.blender import (
    load_blender,
    normalize_scene,
    opengl_to_pytorch3d,
    pytorch3d_to_opengl,
    save_blender,
)
from reference.errors import FitError
from reference.fit import main
from reference.scene import make_scene_data
from voxrender import FoVPerspectiveCameras, NDCMultinomialRaysampler

TINY = ["--preset", "tiny", "--device", "cpu", "--no-progress-bar"]


def _look_at_c2w(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """An OpenGL camera-to-world matrix written from scratch: -z looks at target, +y up-ish."""
    back = eye - target
    back /= np.linalg.norm(back)  # the camera's +z points away from what it looks at
    up = np.array([math.sin(roll), math.cos(roll), 0.3])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


def _pinhole(c2w: np.ndarray, points: np.ndarray, angle_x: float, h: int, w: int) -> np.ndarray:
    """OpenGL pinhole projection to image coordinates (u right, v down, origin top-left corner)."""
    rot, t = c2w[:3, :3], c2w[:3, 3]
    cam = (points - t) @ rot  # X_gl = Rc^T (X - t), as rows   (P, 3)
    focal = 0.5 * w / math.tan(0.5 * angle_x)
    depth = -cam[:, 2]  # in front of the camera: z < 0
    assert (depth > 0).all()
    return np.stack((0.5 * w + focal * cam[:, 0] / depth, 0.5 * h - focal * cam[:, 1] / depth), 1)


def _write_scene(folder: Path, c2ws, angle_x: float, h: int, w: int, split="transforms_train.json"):
    """A hand-written Blender split: grey RGBA PNGs without extension in file_path."""
    (folder / "train").mkdir(parents=True, exist_ok=True)
    frames = []
    for k, c2w in enumerate(c2ws):
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = 200, 255
        rgba[: h // 2, :, 3] = 0  # transparent top half
        Image.fromarray(rgba, mode="RGBA").save(folder / "train" / f"{split[:-5]}_{k}.png")
        frames.append({"file_path": f"./train/{split[:-5]}_{k}", "transform_matrix": c2w.tolist()})
    (folder / split).write_text(json.dumps({"camera_angle_x": angle_x, "frames": frames}))


@pytest.mark.parametrize("hw", [(12, 12), (6, 10), (10, 7)])
def test_a_point_projects_to_the_same_pixel_both_ways(tmp_path, hw):
    """A hand-written scene's world points land where the OpenGL pinhole model puts them.

    Load the scene and project the points through voxrender's cameras and the fit's raysampler:
    both must land where the pinhole model puts them.
    """
    h, w = hw
    rng = np.random.default_rng(1)
    center, angle_x = np.array([0.3, -0.2, 0.5]), 0.9
    eyes = center + 4.0 * rng.standard_normal((5, 3)) / np.sqrt(3)
    c2ws = [
        _look_at_c2w(e, center, roll) for e, roll in zip(eyes, rng.uniform(-1, 1, 5), strict=True)
    ]
    _write_scene(tmp_path, c2ws, angle_x, h, w)
    views = load_blender(tmp_path).train
    norm = normalize_scene(torch.tensor(np.stack(c2ws)))
    assert np.allclose(norm.center, center, atol=1e-6)

    points = center + 0.4 * rng.standard_normal((20, 3))  # world points near the centre
    fit_points = (norm.scale * (points - np.asarray(norm.center))).astype(np.float32)
    fit_points = torch.from_numpy(fit_points)  # the same points in the fit's world   (20, 3)
    cameras = FoVPerspectiveCameras(R=views.R, T=views.T, fov=views.fov)  # float32, as fitted
    screen = cameras.transform_points_screen(
        fit_points[None].expand(5, -1, -1), image_size=(h, w)
    )  # (5, 20, 3), image coordinates
    for k, c2w in enumerate(c2ws):
        expected = _pinhole(c2w, points, angle_x, h, w)
        np.testing.assert_allclose(screen[k, :, :2].numpy(), expected, atol=2e-3)

    # The ray the fit renders at pixel (i, j) passes through the point that the pinhole model
    # projects to that pixel's centre (j + 0.5, i + 0.5).
    sampler = NDCMultinomialRaysampler(
        image_width=w, image_height=h, n_pts_per_ray=2, min_depth=1.0, max_depth=2.0
    )
    bundle = sampler(cameras)
    for k, c2w in enumerate(c2ws):
        origins = bundle.origins[k].reshape(-1, 3)  # (H * W, 3)
        ends = origins + 2.5 * bundle.directions[k].reshape(-1, 3)
        world = ends.double().numpy() / norm.scale + np.asarray(
            norm.center
        )  # back to the data's world
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        centres = np.stack((jj.ravel() + 0.5, ii.ravel() + 0.5), 1)
        np.testing.assert_allclose(_pinhole(c2w, world, angle_x, h, w), centres, atol=2e-3)


def test_conversion_round_trips_and_gives_rotations():
    rng = np.random.default_rng(0)
    c2w = torch.tensor(
        np.stack([_look_at_c2w(rng.standard_normal(3) * 3, np.zeros(3), r) for r in range(4)])
    )
    R, T = opengl_to_pytorch3d(c2w)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=R.dtype).expand(4, 3, 3))
    assert torch.allclose(torch.linalg.det(R), torch.ones(4, dtype=R.dtype))
    assert torch.allclose(pytorch3d_to_opengl(R, T), c2w)
    # the camera centre: PyTorch3D's -T R^T is the OpenGL translation
    assert torch.allclose(-(T[:, None] @ R.transpose(1, 2))[:, 0], c2w[:, :3, 3])


def test_normalize_scene_centre_and_scale():
    rng = np.random.default_rng(2)
    center = np.array([1.0, 2.0, -3.0])
    dirs = rng.standard_normal((8, 3))
    eyes = center + 5.0 * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    norm = normalize_scene(torch.tensor(np.stack([_look_at_c2w(e, center, 0.1) for e in eyes])))
    assert np.allclose(norm.center, center) and norm.scale == pytest.approx(2.7 / 5.0)


def test_forward_facing_cameras_are_refused():
    c2w = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    c2w[:, 0, 3] = torch.tensor([0.0, 1.0, 2.0])  # parallel optical axes
    with pytest.raises(FitError, match="nearly parallel"):
        normalize_scene(c2w)


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    """The built-in scene (16 px) written in the Blender format, and the views it came from."""
    data = make_scene_data(16, 32)
    folder = tmp_path_factory.mktemp("blender") / "ring"
    save_blender(folder, data)
    return folder, data


def test_built_in_scene_round_trips(scene_folder):
    folder, data = scene_folder
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["test", "train", "transforms_test.json", "transforms_train.json"]
    loaded = load_blender(folder)
    for ours, theirs in ((loaded.train, data.train), (loaded.heldout, data.heldout)):
        # cameras at 2.7 around the origin: the normalisation is (nearly) the identity
        assert torch.allclose(ours.R, theirs.R, atol=1e-5)
        assert torch.allclose(ours.T, theirs.T, atol=1e-4)
        assert torch.allclose(ours.fov, theirs.fov, atol=1e-4)
        # 8-bit PNGs of straight colour, composited on black again
        assert (ours.images - theirs.images).abs().max() < 1.5 / 255
        assert (ours.silhouettes - theirs.silhouettes).abs().max() <= 0.5 / 255 + 1e-6


def test_downsample_averages_blocks(scene_folder):
    folder, _ = scene_folder
    full, half = load_blender(folder), load_blender(folder, downsample=2)
    assert half.train.image_size == (8, 8) and half.heldout.image_size == (8, 8)
    blocks = full.train.images.reshape(40, 8, 2, 8, 2, 3).mean((2, 4))
    assert torch.allclose(half.train.images, blocks, atol=1e-6)
    assert torch.equal(half.train.fov, full.train.fov)


def test_splits_val_fallback_single_file_and_transforms_json(tmp_path):
    c2ws = [_look_at_c2w(np.array([4.0 * math.cos(a), 0.5, 4.0 * math.sin(a)]), np.zeros(3), 0)
            for a in np.linspace(0, 6, 4)]  # fmt: skip
    _write_scene(tmp_path, c2ws, 0.8, 8, 8)
    _write_scene(tmp_path, c2ws[:2], 0.8, 8, 8, split="transforms_val.json")
    data = load_blender(tmp_path)
    assert len(data.train) == 4 and len(data.heldout) == 2  # no test split: val is held out
    only = load_blender(tmp_path / "transforms_train.json")
    assert len(only.train) == 4 and only.heldout is None
    # top half transparent: black RGB and zero silhouette there; grey 200/255 below
    assert data.train.silhouettes[0, :4].max() == 0 and data.train.images[0, :4].max() == 0
    assert torch.allclose(data.train.images[0, 4:], torch.tensor(200 / 255))
    single = tmp_path / "single"
    _write_scene(single, c2ws, 0.8, 8, 8, split="transforms.json")
    assert len(load_blender(single).train) == 4 and load_blender(single).heldout is None


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m, f: m.pop("camera_angle_x"), "camera_angle_x: expected radians in (0, pi)"),
        (lambda m, f: m["frames"][1].update(transform_matrix=[[1, 0], [0, 1]]),
         "frames[1].transform_matrix: expected a finite 4x4 matrix"),
        (lambda m, f: m["frames"][0]["transform_matrix"][0].__setitem__(0, 2.0),
         "frames[0].transform_matrix: expected a rotation"),
        (lambda m, f: m["frames"][2].update(file_path="./train/missing"),
         "frames[2]: no such image"),
        (lambda m, f: Image.new("RGB", (8, 8)).save(f / "train" / "transforms_train_0.png"),
         "expected an image with an alpha channel"),
        (lambda m, f: Image.new("RGBA", (6, 8)).save(f / "train" / "transforms_train_3.png"),
         "frames[3]: expected every image to be 8x8"),
        (lambda m, f: (f / "train" / "transforms_train_1.png").write_bytes(b"not a png"),
         "cannot read image"),
    ],
)  # fmt: skip
def test_bad_scenes_are_refused_with_one_line(tmp_path, capsys, change, message):
    c2ws = [_look_at_c2w(np.array([4.0 * math.cos(a), 0.5, 4.0 * math.sin(a)]), np.zeros(3), 0)
            for a in np.linspace(0, 6, 4)]  # fmt: skip
    scene = tmp_path / "scene"
    _write_scene(scene, c2ws, 0.8, 8, 8)
    meta = json.loads((scene / "transforms_train.json").read_text())
    change(meta, scene)
    (scene / "transforms_train.json").write_text(json.dumps(meta))
    assert main([*TINY, "--data", str(scene), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voxrender-fit: error: --data "), err
    assert message in err[0], err[0]
    assert not (tmp_path / "run").exists()


def test_folder_without_transforms_is_refused(tmp_path, capsys):
    assert main([*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "expected transforms_train.json" in capsys.readouterr().err


def test_fit_a_blender_scene_from_the_command_line(scene_folder, tmp_path, capsys):
    folder, _ = scene_folder
    out = tmp_path / "run"
    assert main([*TINY, "--iters", "8", "--data", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Blender scene: 40 training views from transforms_train.json, held-out 25 from" in (
        printed
    )
    assert "scaled by 1 (cameras at distance 2.7" in printed  # the scene's own cameras sit at 2.7
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_views"] == 40 and m["num_heldout_views"] == 25 and m["image_size"] == [16, 16]
    assert m["config"]["data"] == str(folder) and np.isfinite(m["psnr_heldout"])
    # the same fit from the views themselves gives the same first loss (same images, cameras)
    ref = tmp_path / "ref"
    assert main([*TINY, "--iters", "1", "--out", str(ref)]) == 0
    first = json.loads((ref / "metrics.json").read_text())
    assert m["color_err"][0] == pytest.approx(first["color_err"][0], rel=2e-2)
    assert m["sil_err"][0] == pytest.approx(first["sil_err"][0], rel=2e-2)


def test_fit_with_downsample(scene_folder, tmp_path, capsys):
    folder, _ = scene_folder
    out = tmp_path / "run"
    argv = [*TINY, "--iters", "2", "--data", str(folder), "--downsample", "2", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["image_size"] == [8, 8]
    assert main([*TINY, "--downsample", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--downsample 2: applies to --data" in capsys.readouterr().err

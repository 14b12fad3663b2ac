"""A coloured voxel grid fitted the way PyTorch3D's volume tutorial fits one.

voxrender's own script (not the tutorial's code). It makes the PyTorch3D imports and calls that
the tutorial ``fit_textured_volume`` makes, the way it makes them: an
``NDCMultinomialRaysampler`` and an ``EmissionAbsorptionRaymarcher`` in a ``VolumeRenderer``; a
module holding log-densities and log-colours that builds an expanded ``Volumes`` batch per call;
mini-batches of ``FoVPerspectiveCameras`` rebuilt from the fields of the target cameras; huber
colour and silhouette losses; Adam at 0.1 with a 10-fold drop for the last quarter; a turntable
of frames from ``so3_exp_map`` rotations at the end.

The tutorial's targets come from a mesh renderer; here they are renders of an analytic volume
made with the same volume renderer, so the script needs nothing outside it. The same file runs
on PyTorch3D (``python tests/data/tutorial_textured_volume.py``) and on voxrender standing in
for it (``python -m voxrender.compat tests/data/tutorial_textured_volume.py``). Options size the
run (the defaults take seconds on a CPU); ``--losses PATH`` writes the per-iteration losses as
JSON.
"""

# The PyTorch3D imports are written as the tutorial writes them (kept out of formatting).
# ruff: noqa: I001, W291
import argparse
import json
import math
import os
import sys
import time

import pytorch3d
import torch

# fmt: off
from pytorch3d.structures import Volumes
from pytorch3d.renderer import (
    FoVPerspectiveCameras, 
    VolumeRenderer,
    NDCMultinomialRaysampler,
    EmissionAbsorptionRaymarcher
)
from pytorch3d.transforms import so3_exp_map
# fmt: on
from pytorch3d.renderer import look_at_view_transform


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--views", type=int, default=4, help="training views")
    add("--image-size", type=int, default=16, help="side of the target images (px)")
    add("--grid", type=int, default=16, help="side of the fitted voxel grid")
    add("--points", type=int, default=24, help="points per ray")
    add("--batch", type=int, default=4, help="cameras per iteration")
    add("--iters", type=int, default=20, help="Adam iterations")
    add("--lr", type=float, default=0.1, help="learning rate (10x lower for the last quarter)")
    add("--frames", type=int, default=4, help="turntable frames rendered at the end")
    add("--seed", type=int, default=0)
    add("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    add("--losses", default=None, help="write the per-iteration losses here (JSON)")
    return parser.parse_args(argv)


EXTENT = 3.0  # the scene lies in a cube of this side centred at the origin


def analytic_scene(grid=32):
    """A ball with a colour gradient across it: densities (1, G, G, G), colours (3, G, G, G)."""
    centres = (torch.arange(grid) + 0.5) * (EXTENT / grid) - EXTENT / 2
    z, y, x = torch.meshgrid(centres, centres, centres, indexing="ij")
    radius = (x * x + y * y + z * z).sqrt()
    densities = torch.sigmoid(30.0 * (0.7 - radius))
    colours = torch.stack((0.5 + 0.7 * x, 0.5 + 0.7 * y, 0.5 - 0.7 * z)).clamp(0.0, 1.0)
    return densities[None], colours


def render_targets(n_views, image_size, device):
    """Cameras around the ball (alternating above / below it) and its renders from them."""
    elevations = torch.tensor([15.0 * (-1) ** i for i in range(n_views)])
    azimuths = torch.arange(n_views) * (360.0 / n_views)
    R, T = look_at_view_transform(dist=2.7, elev=elevations, azim=azimuths)
    cameras = FoVPerspectiveCameras(R=R, T=T, device=device)
    densities, colours = analytic_scene()
    volumes = Volumes(
        densities=densities[None].expand(n_views, -1, -1, -1, -1).to(device),
        features=colours[None].expand(n_views, -1, -1, -1, -1).to(device),
        voxel_size=EXTENT / densities.shape[-1],
    )
    target_renderer = VolumeRenderer(
        raysampler=NDCMultinomialRaysampler(
            image_width=image_size,
            image_height=image_size,
            n_pts_per_ray=64,
            min_depth=0.1,
            max_depth=EXTENT,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    with torch.no_grad():
        rendered = target_renderer(cameras=cameras, volumes=volumes)[0]  # (V, S, S, 4)
    return cameras, rendered[..., :3], rendered[..., 3]


class VoxelField(torch.nn.Module):
    """Densities and colours on a voxel grid, stored as logits and rendered for any cameras."""

    def __init__(self, renderer, grid, voxel_size):
        super().__init__()
        self.density_logits = torch.nn.Parameter(torch.full((1, grid, grid, grid), -4.0))
        self.colour_logits = torch.nn.Parameter(torch.zeros(3, grid, grid, grid))  # grey
        self.voxel_size = voxel_size
        self.renderer = renderer

    def forward(self, cameras):
        """Render from ``cameras``: (B, H, W, 4), colour then opacity."""
        n = cameras.R.shape[0]
        volumes = Volumes(
            densities=torch.sigmoid(self.density_logits)[None].expand(n, -1, -1, -1, -1),
            features=torch.sigmoid(self.colour_logits)[None].expand(n, -1, -1, -1, -1),
            voxel_size=self.voxel_size,
        )
        return self.renderer(cameras=cameras, volumes=volumes)[0]


def huber(x, y, scale=0.1):
    """Pseudo-huber distance, quadratic below ``scale`` and linear above."""
    return scale * (torch.sqrt((1.0 + ((x - y) / scale) ** 2).clamp(min=1e-4)) - 1.0)


def pick_cameras(cameras, ids, device):
    """The cameras ``ids`` of a FoV batch, rebuilt from its fields."""
    return FoVPerspectiveCameras(
        R=cameras.R[ids],
        T=cameras.T[ids],
        znear=cameras.znear[ids],
        zfar=cameras.zfar[ids],
        aspect_ratio=cameras.aspect_ratio[ids],
        fov=cameras.fov[ids],
        device=device,
    )


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    started = time.perf_counter()

    target_cameras, target_images, target_silhouettes = render_targets(
        args.views, args.image_size, device
    )
    print(f"Rendered {len(target_images)} target views of {args.image_size}^2 px.")

    renderer = VolumeRenderer(
        raysampler=NDCMultinomialRaysampler(
            image_width=target_images.shape[1],
            image_height=target_images.shape[1],
            n_pts_per_ray=args.points,
            min_depth=0.1,
            max_depth=EXTENT,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    target_cameras = target_cameras.to(device)
    target_images = target_images.to(device)
    target_silhouettes = target_silhouettes.to(device)

    torch.manual_seed(args.seed)
    model = VoxelField(renderer, args.grid, EXTENT / args.grid).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    history = {"color": [], "silhouette": []}
    for it in range(args.iters):
        if it == round(0.75 * args.iters):
            print("Learning rate / 10")
            optimizer = torch.optim.Adam(model.parameters(), lr=0.1 * args.lr)
        optimizer.zero_grad()

        ids = torch.randperm(len(target_cameras))[: args.batch]
        colours, opacity = model(pick_cameras(target_cameras, ids, device)).split([3, 1], dim=-1)
        silhouette_err = huber(opacity[..., 0], target_silhouettes[ids]).abs().mean()
        colour_err = huber(colours, target_images[ids]).abs().mean()
        loss = colour_err + silhouette_err
        history["color"].append(colour_err.item())
        history["silhouette"].append(silhouette_err.item())
        print(
            f"Iteration {it:05d}: color {colour_err.item():.4e} silhouette {silhouette_err.item():.4e}"
        )
        loss.backward()
        optimizer.step()

    # A turntable around the vertical axis, camera 2.7 units from the centre.
    log_rotations = torch.zeros(args.frames, 3, device=device)
    log_rotations[:, 1] = torch.arange(args.frames, device=device) * (2 * math.pi / args.frames)
    frames = []
    with torch.no_grad():
        for R in so3_exp_map(log_rotations):
            camera = FoVPerspectiveCameras(
                R=R[None],
                T=torch.tensor([[0.0, 0.0, 2.7]], device=device),
                znear=target_cameras.znear[0],
                zfar=target_cameras.zfar[0],
                aspect_ratio=target_cameras.aspect_ratio[0],
                fov=target_cameras.fov[0],
                device=device,
            )
            frames.append(model(camera)[..., :3].clamp(0.0, 1.0))
    frames = torch.cat(frames)  # (F, S, S, 3)
    history["frames_mean"] = frames.mean().item()
    history["seconds"] = time.perf_counter() - started
    print(f"Turntable frames: {tuple(frames.shape)} in {history['seconds']:.1f} s")

    history["pytorch3d"] = pytorch3d.__version__  # voxrender.compat's alias says so
    if args.losses:
        with open(args.losses + ".part", "w") as f:
            json.dump(history, f)
        os.replace(args.losses + ".part", args.losses)


if __name__ == "__main__":
    main()

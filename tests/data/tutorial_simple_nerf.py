"""A small neural radiance field fitted the way PyTorch3D's NeRF tutorial fits one.

voxrender's own script (not the tutorial's code). It makes the PyTorch3D imports and calls that
the tutorial ``fit_simple_neural_radiance_field`` makes, the way it makes them: an MLP over a
harmonic embedding of the ray points (the embedded ray direction feeds the colour branch),
rendered with ``ImplicitRenderer``; ``MonteCarloRaysampler`` rays for training and
``NDCMultinomialRaysampler`` full images, evaluated chunk by chunk (``RayBundle`` slices under
``torch.no_grad()``); huber colour and silhouette losses against the targets sampled at the
Monte-Carlo locations; Adam with a 10-fold learning-rate drop for the last quarter; a turntable
of frames from ``so3_exp_map`` rotations at the end.

The tutorial's targets come from a mesh renderer; here they are renders of a small analytic
volume made with PyTorch3D's volume API (``Volumes`` + ``VolumeRenderer``), so the script needs
nothing outside the volume renderer. The same file runs on PyTorch3D
(``python tests/data/tutorial_simple_nerf.py``) and on voxrender standing in for it
(``python -m voxrender.compat tests/data/tutorial_simple_nerf.py``). Options size the run (the
defaults take seconds on a CPU); ``--losses PATH`` writes the per-iteration losses as JSON.
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
from pytorch3d.transforms import so3_exp_map
from pytorch3d.renderer import (
    FoVPerspectiveCameras, 
    NDCMultinomialRaysampler,
    MonteCarloRaysampler,
    EmissionAbsorptionRaymarcher,
    ImplicitRenderer,
    RayBundle,
    ray_bundle_to_ray_points,
)
# fmt: on
from pytorch3d.renderer import VolumeRenderer, look_at_view_transform


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--views", type=int, default=6, help="training views")
    add("--image-size", type=int, default=16, help="side of the target images (px)")
    add("--rays", type=int, default=96, help="Monte-Carlo rays per image and iteration")
    add("--points", type=int, default=24, help="points per ray")
    add("--batch", type=int, default=3, help="cameras per iteration")
    add("--iters", type=int, default=30, help="Adam iterations")
    add("--lr", type=float, default=5e-3, help="learning rate (10x lower for the last quarter)")
    add("--harmonics", type=int, default=6, help="harmonic functions per coordinate")
    add("--hidden", type=int, default=48, help="hidden units of the MLPs")
    # The tutorial starts from -1.5 (almost empty) and fits for thousands of steps; a tiny run
    # starts faintly opaque so that its loss moves within a few dozen.
    add("--density-bias", type=float, default=0.0, help="initial bias of the density layer")
    add("--chunks", type=int, default=4, help="ray chunks of a full-image render")
    add("--preview-every", type=int, default=10, help="full render every N iterations (0: never)")
    add("--frames", type=int, default=2, help="turntable frames rendered at the end")
    add("--seed", type=int, default=1)
    add("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    add("--losses", default=None, help="write the per-iteration losses here (JSON)")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- targets


def analytic_scene(grid=24, extent=3.0):
    """A pear-shaped blob (two overlapping balls) coloured by position: (1, 1, G, G, G), (1, 3, ...)."""
    axis = torch.linspace(-extent / 2, extent / 2, grid)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    lower = torch.sqrt(x**2 + (y + 0.2) ** 2 + z**2)
    upper = torch.sqrt(x**2 + (y - 0.45) ** 2 + z**2)
    occupancy = torch.maximum(torch.sigmoid((0.6 - lower) * 20), torch.sigmoid((0.4 - upper) * 20))
    rgb = torch.stack((0.6 + 0.4 * torch.tanh(2 * x), 0.5 + 0.4 * torch.tanh(2 * y), 0.3 + 0 * z))
    return occupancy[None, None], rgb[None]


def render_targets(n_views, image_size, device):
    """Cameras on a half circle around the scene and what the volume renderer sees from them."""
    azimuths = torch.linspace(-90.0, 90.0, n_views)
    R, T = look_at_view_transform(dist=2.7, elev=10.0, azim=azimuths)
    cameras = FoVPerspectiveCameras(R=R, T=T, device=device)
    densities, colours = analytic_scene()
    volumes = Volumes(
        densities=densities.expand(n_views, -1, -1, -1, -1).to(device),
        features=colours.expand(n_views, -1, -1, -1, -1).to(device),
        voxel_size=3.0 / (densities.shape[-1] - 1),
    )
    target_renderer = VolumeRenderer(
        raysampler=NDCMultinomialRaysampler(
            image_width=image_size,
            image_height=image_size,
            n_pts_per_ray=48,
            min_depth=0.5,
            max_depth=5.0,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    with torch.no_grad():
        images = target_renderer(cameras=cameras, volumes=volumes)[0]  # (V, S, S, 4)
    return cameras, images[..., :3], images[..., 3]


# ----------------------------------------------------------------------------- the field


class SinCosFeatures(torch.nn.Module):
    """Each coordinate times ``base * 2**k`` (k < n), through sin and cos: (..., d) -> (..., 2 n d)."""

    def __init__(self, n_functions, base=0.1):
        super().__init__()
        scales = base * torch.pow(2.0, torch.arange(n_functions, dtype=torch.float32))
        self.register_buffer("scales", scales)

    def forward(self, x):
        phases = (x.unsqueeze(-1) * self.scales).flatten(start_dim=-2)  # (..., d * n)
        return torch.cat([torch.sin(phases), torch.cos(phases)], dim=-1)


class RadianceField(torch.nn.Module):
    """An MLP from embedded points to a density in [0, 1) and a view-dependent colour."""

    def __init__(self, n_functions, hidden, n_chunks=16, density_bias=-1.5):
        super().__init__()
        self.n_chunks = n_chunks  # ray chunks of forward_in_chunks
        self.embed = SinCosFeatures(n_functions)
        width = 6 * n_functions  # 3 coordinates, sin and cos
        self.trunk = torch.nn.Sequential(
            torch.nn.Linear(width, hidden),
            torch.nn.Softplus(beta=10.0),
            torch.nn.Linear(hidden, hidden),
            torch.nn.Softplus(beta=10.0),
        )
        self.to_density = torch.nn.Sequential(
            torch.nn.Linear(hidden, 1), torch.nn.Softplus(beta=10.0)
        )
        with torch.no_grad():
            self.to_density[0].bias.fill_(density_bias)  # the initial density level
        self.to_colour = torch.nn.Sequential(
            torch.nn.Linear(hidden + width, hidden),
            torch.nn.Softplus(beta=10.0),
            torch.nn.Linear(hidden, 3),
            torch.nn.Sigmoid(),
        )

    def forward(self, ray_bundle, **kwargs):
        """(origins (..., 3), directions (..., 3), lengths (..., P)) -> (..., P, 1), (..., P, 3)."""
        points = ray_bundle_to_ray_points(ray_bundle)  # (..., P, 3)
        features = self.trunk(self.embed(points))  # (..., P, hidden)
        density = 1.0 - torch.exp(-self.to_density(features))
        unit_dirs = torch.nn.functional.normalize(ray_bundle.directions, dim=-1)
        view = self.embed(unit_dirs)[..., None, :].expand(*features.shape[:-1], -1)
        colour = self.to_colour(torch.cat([features, view], dim=-1))
        return density, colour

    def forward_in_chunks(self, ray_bundle, **kwargs):
        """``forward`` over ``self.n_chunks`` slices of the flattened rays, reassembled."""
        n_points = ray_bundle.lengths.shape[-1]
        ray_shape = ray_bundle.origins.shape[:-1]
        flat_origins = ray_bundle.origins.view(-1, 3)
        flat_dirs = ray_bundle.directions.view(-1, 3)
        flat_lengths = ray_bundle.lengths.view(-1, n_points)
        densities, colours = [], []
        for ids in torch.arange(ray_shape.numel()).chunk(self.n_chunks):
            part = RayBundle(
                origins=flat_origins[ids],
                directions=flat_dirs[ids],
                lengths=flat_lengths[ids],
                xys=None,
            )
            density, colour = self(part)
            densities.append(density)
            colours.append(colour)
        return (
            torch.cat(densities).reshape(*ray_shape, n_points, 1),
            torch.cat(colours).reshape(*ray_shape, n_points, 3),
        )


# ----------------------------------------------------------------------------- helpers


def huber(x, y, scale=0.1):
    """Pseudo-huber distance, quadratic below ``scale`` and linear above."""
    return scale * (torch.sqrt((1.0 + ((x - y) / scale) ** 2).clamp(min=1e-4)) - 1.0)


def sample_at_rays(images, xys):
    """Bilinear samples of ``images (B, H, W, C)`` at NDC ``xys (B, R, 2)``: (B, R, C).

    PyTorch3D's NDC x and y grow to the left and up; grid_sample's to the right and down.
    """
    batch, channels = images.shape[0], images.shape[-1]
    picked = torch.nn.functional.grid_sample(
        images.permute(0, 3, 1, 2), -xys.reshape(batch, -1, 1, 2), align_corners=True
    )  # (B, C, R, 1)
    return picked.permute(0, 2, 3, 1).reshape(*xys.shape[:-1], channels)


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


def full_render(renderer, field, camera):
    """An image and silhouette of ``field`` from one camera, rendered in ray chunks."""
    with torch.no_grad():
        images, _ = renderer(cameras=camera, volumetric_function=field.forward_in_chunks)
    image, silhouette = images[0].split([3, 1], dim=-1)
    return image, silhouette[..., 0]


# ----------------------------------------------------------------------------- the fit


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    started = time.perf_counter()

    target_cameras, target_images, target_silhouettes = render_targets(
        args.views, args.image_size, device
    )
    print(f"Rendered {len(target_images)} target views of {args.image_size}^2 px.")

    extent = 3.0
    full_size = 2 * args.image_size  # full renders at twice the target resolution
    grid_renderer = ImplicitRenderer(
        raysampler=NDCMultinomialRaysampler(
            image_height=full_size,
            image_width=full_size,
            n_pts_per_ray=args.points,
            min_depth=0.1,
            max_depth=extent,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    mc_renderer = ImplicitRenderer(
        raysampler=MonteCarloRaysampler(
            min_x=-1.0,
            max_x=1.0,
            min_y=-1.0,
            max_y=1.0,
            n_rays_per_image=args.rays,
            n_pts_per_ray=args.points,
            min_depth=0.1,
            max_depth=extent,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    grid_renderer = grid_renderer.to(device)
    mc_renderer = mc_renderer.to(device)
    target_cameras = target_cameras.to(device)
    target_images = target_images.to(device)
    target_silhouettes = target_silhouettes.to(device)

    torch.manual_seed(args.seed)
    field = RadianceField(args.harmonics, args.hidden, args.chunks, args.density_bias).to(device)
    optimizer = torch.optim.Adam(field.parameters(), lr=args.lr)

    history = {"color": [], "silhouette": [], "preview_silhouette_err": []}
    for it in range(args.iters):
        if it == round(0.75 * args.iters):
            print("Learning rate / 10")
            optimizer = torch.optim.Adam(field.parameters(), lr=0.1 * args.lr)
        optimizer.zero_grad()

        ids = torch.randperm(len(target_cameras))[: args.batch]
        rendered, rays = mc_renderer(
            cameras=pick_cameras(target_cameras, ids, device), volumetric_function=field
        )  # (B, R, 4)
        colours, opacity = rendered.split([3, 1], dim=-1)
        silhouette_err = huber(
            opacity, sample_at_rays(target_silhouettes[ids, ..., None], rays.xys)
        )
        colour_err = huber(colours, sample_at_rays(target_images[ids], rays.xys))
        silhouette_err = silhouette_err.abs().mean()
        colour_err = colour_err.abs().mean()
        loss = colour_err + silhouette_err
        history["color"].append(colour_err.item())
        history["silhouette"].append(silhouette_err.item())
        print(
            f"Iteration {it:05d}: color {colour_err.item():.4e} silhouette {silhouette_err.item():.4e}"
        )
        loss.backward()
        optimizer.step()

        if args.preview_every and it % args.preview_every == 0:
            view = torch.randperm(len(target_cameras))[:1]
            _, silhouette = full_render(
                grid_renderer, field, pick_cameras(target_cameras, view, device)
            )
            coarse = torch.nn.functional.avg_pool2d(silhouette[None, None], 2)[0, 0]
            history["preview_silhouette_err"].append(
                (coarse - target_silhouettes[view[0]]).abs().mean().item()
            )

    # A turntable around the vertical axis, camera 2.7 units from the centre.
    log_rotations = torch.zeros(args.frames, 3, device=device)
    log_rotations[:, 1] = torch.linspace(-math.pi, math.pi, args.frames + 1, device=device)[:-1]
    frames = []
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
        frames.append(full_render(grid_renderer, field, camera)[0])
    frames = torch.stack(frames)  # (F, 2S, 2S, 3)
    history["frames_mean"] = frames.clamp(0.0, 1.0).mean().item()
    history["seconds"] = time.perf_counter() - started
    print(f"Turntable frames: {tuple(frames.shape)} in {history['seconds']:.1f} s")

    history["pytorch3d"] = pytorch3d.__version__  # voxrender.compat's alias says so
    if args.losses:
        with open(args.losses + ".part", "w") as f:
            json.dump(history, f)
        os.replace(args.losses + ".part", args.losses)


if __name__ == "__main__":
    main()

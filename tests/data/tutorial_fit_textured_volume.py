# PyTorch3D's tutorial "Fit a volume via raymarching" (docs/tutorials/fit_textured_volume.ipynb,
# Copyright (c) Meta Platforms, Inc. and affiliates, BSD licence), as a script.
#
# This is the tutorial's code, with its own `from pytorch3d... import ...` lines unmodified, and
# only these changes so that it runs in a test in seconds:
#   - data: `generate_cow_renders(num_views=40)` (a mesh renderer voxrender does not have) is
#     replaced by a synthetic target: a coloured ball rendered by the same volume renderer from
#     4 views at 16 px ("synthetic data" block below);
#   - sizes shrunk: 16^3 volume, 24 points per ray, batch of 4 views, 20 iterations, 4 frames
#     in the final rotation, losses printed every iteration (`print_every`);
#   - notebook-only lines removed: the pip-install cell, wget, matplotlib/IPython plotting and
#     the tqdm progress bar.
#
# Run it with PyTorch3D (`python tests/data/tutorial_fit_textured_volume.py`) or with voxrender
# standing in for PyTorch3D (`python -m voxrender.compat tests/data/tutorial_fit_textured_volume.py`).
# The tutorial's code is kept as it is (unused imports, spacing), hence:
# ruff: noqa
# fmt: off
import os
import sys
import time
import json
import glob
import torch
import math
import numpy as np

# Data structures and functions for rendering
from pytorch3d.structures import Volumes
from pytorch3d.renderer import (
    FoVPerspectiveCameras, 
    VolumeRenderer,
    NDCMultinomialRaysampler,
    EmissionAbsorptionRaymarcher
)
from pytorch3d.transforms import so3_exp_map

# obtain the utilized device
if torch.cuda.is_available():
    device = torch.device("cuda:0")
    torch.cuda.set_device(device)
else:
    device = torch.device("cpu")

# ---- sizes (shrunk from the tutorial's 40 views, 128 px, 128^3, 150 points, 300 iterations)
num_views = 4
image_size = 16
volume_size = 16
n_pts_per_ray = 24
batch_size = 4
n_iter = 20
print_every = 1
torch.manual_seed(0)

# ---- synthetic data (replaces generate_cow_renders): a ball with a colour gradient, rendered
# by the volume renderer itself; the silhouette is the rendered opacity.
from pytorch3d.renderer import look_at_view_transform


def generate_synthetic_renders(num_views, image_size, grid=32, extent=3.0):
    elev = torch.tensor([15.0, -15.0] * (num_views // 2) + [0.0] * (num_views % 2))
    azim = torch.linspace(0.0, 360.0, num_views + 1)[:-1]
    R, T = look_at_view_transform(dist=2.7, elev=elev, azim=azim)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    coords = (torch.arange(grid) + 0.5) / grid * extent - extent / 2
    z, y, x = torch.meshgrid(coords, coords, coords, indexing="ij")
    radius = torch.sqrt(x**2 + y**2 + z**2)
    density = torch.sigmoid((0.7 - radius) * 30.0)[None]
    colors = torch.stack((0.5 + 0.5 * x / 0.7, 0.5 + 0.5 * y / 0.7, 0.5 - 0.5 * z / 0.7)).clamp(0, 1)
    volumes = Volumes(
        densities=density[None].expand(num_views, *density.shape),
        features=colors[None].expand(num_views, *colors.shape),
        voxel_size=extent / grid,
    )
    target_renderer = VolumeRenderer(
        raysampler=NDCMultinomialRaysampler(
            image_width=image_size, image_height=image_size,
            n_pts_per_ray=64, min_depth=0.1, max_depth=extent,
        ),
        raymarcher=EmissionAbsorptionRaymarcher(),
    )
    with torch.no_grad():
        rendered = target_renderer(cameras=cameras, volumes=volumes)[0]
    return cameras, rendered[..., :3], rendered[..., 3]


target_cameras, target_images, target_silhouettes = generate_synthetic_renders(num_views, image_size)
print(f'Generated {len(target_images)} images/silhouettes/cameras.')

# ---- the tutorial from here on

# render_size describes the size of both sides of the 
# rendered images in pixels. We set this to the same size
# as the target images. I.e. we render at the same
# size as the ground truth images.
render_size = target_images.shape[1]

# Our rendered scene is centered around (0,0,0) 
# and is enclosed inside a bounding box
# whose side is roughly equal to 3.0 (world units).
volume_extent_world = 3.0

# 1) Instantiate the raysampler.
raysampler = NDCMultinomialRaysampler(
    image_width=render_size,
    image_height=render_size,
    n_pts_per_ray=n_pts_per_ray,
    min_depth=0.1,
    max_depth=volume_extent_world,
)


# 2) Instantiate the raymarcher.
# Here, we use the standard EmissionAbsorptionRaymarcher 
# which marches along each ray in order to render
# each ray into a single 3D color vector 
# and an opacity scalar.
raymarcher = EmissionAbsorptionRaymarcher()

# Finally, instantiate the volumetric render
# with the raysampler and raymarcher objects.
renderer = VolumeRenderer(
    raysampler=raysampler, raymarcher=raymarcher,
)


class VolumeModel(torch.nn.Module):
    def __init__(self, renderer, volume_size=[64] * 3, voxel_size=0.1):
        super().__init__()
        # After evaluating torch.sigmoid(self.log_colors), we get 
        # densities close to zero.
        self.log_densities = torch.nn.Parameter(-4.0 * torch.ones(1, *volume_size))
        # After evaluating torch.sigmoid(self.log_colors), we get 
        # a neutral gray color everywhere.
        self.log_colors = torch.nn.Parameter(torch.zeros(3, *volume_size))
        self._voxel_size = voxel_size
        # Store the renderer module as well.
        self._renderer = renderer
        
    def forward(self, cameras):
        batch_size = cameras.R.shape[0]

        # Convert the log-space values to the densities/colors
        densities = torch.sigmoid(self.log_densities)
        colors = torch.sigmoid(self.log_colors)
        
        # Instantiate the Volumes object, making sure
        # the densities and colors are correctly
        # expanded batch_size-times.
        volumes = Volumes(
            densities = densities[None].expand(
                batch_size, *self.log_densities.shape),
            features = colors[None].expand(
                batch_size, *self.log_colors.shape),
            voxel_size=self._voxel_size,
        )
        
        # Given cameras and volumes, run the renderer
        # and return only the first output value 
        # (the 2nd output is a representation of the sampled
        # rays which can be omitted for our purpose).
        return self._renderer(cameras=cameras, volumes=volumes)[0]
    
# A helper function for evaluating the smooth L1 (huber) loss
# between the rendered silhouettes and colors.
def huber(x, y, scaling=0.1):
    diff_sq = (x - y) ** 2
    loss = ((1 + diff_sq / (scaling**2)).clamp(1e-4).sqrt() - 1) * float(scaling)
    return loss


# First move all relevant variables to the correct device.
target_cameras = target_cameras.to(device)
target_images = target_images.to(device)
target_silhouettes = target_silhouettes.to(device)

# Instantiate the volumetric model.
# We use a cubical volume with the size of 
# one side = volume_size. The size of each voxel of the volume 
# is set to volume_extent_world / volume_size s.t. the
# volume represents the space enclosed in a 3D bounding box
# centered at (0, 0, 0) with the size of each side equal to 3.
volume_model = VolumeModel(
    renderer,
    volume_size=[volume_size] * 3, 
    voxel_size = volume_extent_world / volume_size,
).to(device)

# Instantiate the Adam optimizer. We set its master learning rate to 0.1.
lr = 0.1
optimizer = torch.optim.Adam(volume_model.parameters(), lr=lr)

# We do n_iter Adam iterations and sample batch_size random images in each minibatch.
for iteration in range(n_iter):

    # In case we reached the last 75% of iterations,
    # decrease the learning rate of the optimizer 10-fold.
    if iteration == round(n_iter * 0.75):
        print('Decreasing LR 10-fold ...')
        optimizer = torch.optim.Adam(
            volume_model.parameters(), lr=lr * 0.1
        )
    
    # Zero the optimizer gradient.
    optimizer.zero_grad()
    
    # Sample random batch indices.
    batch_idx = torch.randperm(len(target_cameras))[:batch_size]
    
    # Sample the minibatch of cameras.
    batch_cameras = FoVPerspectiveCameras(
        R = target_cameras.R[batch_idx], 
        T = target_cameras.T[batch_idx], 
        znear = target_cameras.znear[batch_idx],
        zfar = target_cameras.zfar[batch_idx],
        aspect_ratio = target_cameras.aspect_ratio[batch_idx],
        fov = target_cameras.fov[batch_idx],
        device = device,
    )
    
    # Evaluate the volumetric model.
    rendered_images, rendered_silhouettes = volume_model(
        batch_cameras
    ).split([3, 1], dim=-1)
    
    # Compute the silhouette error as the mean huber
    # loss between the predicted masks and the
    # target silhouettes.
    sil_err = huber(
        rendered_silhouettes[..., 0], target_silhouettes[batch_idx],
    ).abs().mean()

    # Compute the color error as the mean huber
    # loss between the rendered colors and the
    # target ground truth images.
    color_err = huber(
        rendered_images, target_images[batch_idx],
    ).abs().mean()
    
    # The optimization loss is a simple
    # sum of the color and silhouette errors.
    loss = color_err + sil_err 
    
    # Print the current values of the losses.
    if iteration % print_every == 0:
        print(
            f'Iteration {iteration:05d}:'
            + f' color_err = {float(color_err):1.2e}'
            + f' mask_err = {float(sil_err):1.2e}'
        )
    
    # Take the optimization step.
    loss.backward()
    optimizer.step()


def generate_rotating_volume(volume_model, n_frames = 50):
    logRs = torch.zeros(n_frames, 3, device=device)
    logRs[:, 1] = torch.linspace(0.0, 2.0 * 3.14, n_frames, device=device)
    Rs = so3_exp_map(logRs)
    Ts = torch.zeros(n_frames, 3, device=device)
    Ts[:, 2] = 2.7
    frames = []
    print('Generating rotating volume ...')
    for R, T in zip(Rs, Ts):
        camera = FoVPerspectiveCameras(
            R=R[None], 
            T=T[None], 
            znear = target_cameras.znear[0],
            zfar = target_cameras.zfar[0],
            aspect_ratio = target_cameras.aspect_ratio[0],
            fov = target_cameras.fov[0],
            device=device,
        )
        frames.append(volume_model(camera)[..., :3].clamp(0.0, 1.0))
    return torch.cat(frames)
    
with torch.no_grad():
    rotating_volume_frames = generate_rotating_volume(volume_model, n_frames=4)

print(f'Rotating volume frames: {tuple(rotating_volume_frames.shape)}')

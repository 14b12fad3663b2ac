"""reference.depth: depth images of a fitted volume (voxrender's opt-in expected depth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reference.backends import get_backend
from reference.data import Views
from reference.depth import depth_colors, render_depths, save_depth_images
from reference.model import VolumeModel


def _views(n=2, size=8):
    R = torch.eye(3).expand(n, 3, 3)
    T = torch.tensor([[0.0, 0.0, 3.0]]).expand(n, 3)
    full = torch.ones(n)
    return Views(
        images=torch.zeros(n, size, size, 3),
        silhouettes=None,
        R=R,
        T=T,
        fov=60.0 * full,
        znear=full,
        zfar=100.0 * full,
        aspect_ratio=full,
    )


def _model(backend):
    model = VolumeModel(backend, 4, 3.0, (8, 8), 64, 0.1)
    with torch.no_grad():  # an opaque cube in the middle of the grid, empty around it
        model.log_densities.fill_(-30.0)
        model.log_densities[:, 1:3, 1:3, 1:3] = 30.0
    return model


def test_depth_of_an_opaque_cube():
    backend = get_backend("voxrender")
    depth, opacity = render_depths(_model(backend), backend, _views(), batch=1)
    assert depth.shape == opacity.shape == (2, 8, 8)
    centre = depth[:, 3:5, 3:5]
    # the camera is 3 units from the centre; the cube (side 1.5) starts about 0.75 nearer,
    # softened by the trilinear blend of the grid
    assert torch.all(opacity[:, 3:5, 3:5] > 0.99)
    assert torch.all((centre > 1.8) & (centre < 2.6)), centre
    assert torch.all(depth[opacity < 1e-6] == 0.0)


def test_save_depth_images(tmp_path):
    backend = get_backend("voxrender")
    views = _views(n=6)
    assert save_depth_images(tmp_path / "d.png", _model(backend), backend, None, views, 4)
    with Image.open(tmp_path / "d.png") as im:
        assert im.size == (4 * 8, 8)  # at most 4 views, one row


def test_no_depth_with_pytorch3d():
    from reference.oracle import import_pytorch3d

    import_pytorch3d()  # puts the shared copy on the path where it is not installed
    try:
        backend = get_backend("pytorch3d")
    except Exception as error:
        pytest.skip(f"PyTorch3D not importable: {error}")
    assert not save_depth_images("never.png", None, backend, None, _views(), 1)


def test_depth_colors_range_and_background():
    depth = np.array([[[1.0, 2.0], [3.0, 0.0]]])
    opacity = np.array([[[1.0, 1.0], [1.0, 0.0]]])
    rgb = depth_colors(depth, opacity)
    assert rgb.shape == (1, 2, 2, 3)
    assert np.allclose(rgb[0, 1, 1], 1.0)  # nothing seen: white
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0

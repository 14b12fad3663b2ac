"""reference.scene: the built-in analytic object and its rendered views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reference import scene
from reference.scene import HELDOUT_ANGLES, TRAIN_ANGLES, scene_color, scene_density, scene_sdf

COW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cow_views.npz"


def _grid(n=41, r=1.5):
    t = torch.linspace(-r, r, n)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1).reshape(-1, 3)  # (n^3, 3)


def test_object_fits_in_the_unit_sphere_and_is_about_that_size():
    p = _grid()
    inside = scene_sdf(p) < 0
    radius = torch.linalg.vector_norm(p[inside], dim=-1)
    assert radius.max() < 1.0 and radius.max() > 0.7
    volume = inside.float().mean() * 3.0**3  # world units^3 (the unit ball holds 4.19)
    assert 0.15 < volume < 1.5


def test_object_is_not_convex():
    ring_left = torch.tensor([[-0.5, 0.1, 0.0]])
    ring_right = torch.tensor([[0.5, 0.1, 0.0]])
    assert (scene_sdf(ring_left) < 0).all() and (scene_sdf(ring_right) < 0).all()
    # half way between two points on the ring, beside the rod, lies the empty hole
    hole = torch.tensor([[0.25, 0.1, 0.0]])
    assert (scene_sdf(hole) > 0.05).all()


def test_rod_threads_the_ring_without_touching_it():
    along = torch.linspace(0, 1, 200)[:, None]
    a, b = torch.tensor(scene.ROD_ENDS[0]), torch.tensor(scene.ROD_ENDS[1])
    axis = a + along * (b - a)  # (200, 3) points on the rod's axis
    ring, _ = scene._torus_sdf(axis)
    assert (ring > scene.ROD_RADIUS).all()  # clearance everywhere
    assert axis[:, 2].min() < -0.5 and axis[:, 2].max() > 0.5  # sticks out on both sides


def test_density_is_high_inside_and_negligible_outside():
    inside = scene_density(torch.tensor([[0.5, 0.1, 0.0], [0.05, 0.2, 0.6]]))
    outside = scene_density(torch.tensor([[0.0, 0.9, 0.9], [0.25, 0.1, 0.0]]))
    assert inside.shape == (2, 1) and (inside > 0.99 * scene.SIGMA_MAX).all()
    assert (outside < 1e-3).all()


def test_colour_is_in_range_and_varies_over_the_surface():
    p = _grid(31)
    near = p[scene_sdf(p).abs() < 0.05]
    rgb = scene_color(near)
    assert rgb.shape == (near.shape[0], 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb.std(0) > 0.1).all()  # every channel varies


def test_fields_follow_dtype_and_batch_shape():
    p = torch.zeros(2, 3, 4, 3, dtype=torch.float64)
    assert scene_density(p).shape == (2, 3, 4, 1) and scene_density(p).dtype == torch.float64
    assert scene_color(p).shape == (2, 3, 4, 3) and scene_color(p).dtype == torch.float64


def test_camera_angles_follow_the_tutorial():
    elev, azim = TRAIN_ANGLES
    np.testing.assert_allclose(azim.numpy(), np.linspace(-180, 180, 40) + 180, atol=1e-4)
    assert (elev == 0).all() and HELDOUT_ANGLES[0].shape == HELDOUT_ANGLES[1].shape == (25,)
    assert sorted(set(HELDOUT_ANGLES[0].tolist())) == [-25.0, 0.0, 25.0]


@pytest.mark.skipif(not COW.exists(), reason=f"{COW} is absent")
def test_heldout_angles_match_the_cow_dataset():
    cow = np.load(COW)
    np.testing.assert_allclose(HELDOUT_ANGLES[0].numpy(), cow["heldout_elev"], atol=1e-4)
    np.testing.assert_allclose(HELDOUT_ANGLES[1].numpy(), cow["heldout_azim"], atol=1e-3)
    np.testing.assert_allclose(TRAIN_ANGLES[1].numpy(), cow["azim"], atol=1e-3)


def test_rendered_views_show_the_object_in_the_middle():
    views = scene.render_scene_views(TRAIN_ANGLES[0][:2], TRAIN_ANGLES[1][:2], 24, 96)
    assert views.images.shape == (2, 24, 24, 3) and views.silhouettes.shape == (2, 24, 24)
    assert views.images.min() >= 0 and views.images.max() <= 1
    sil = views.silhouettes
    assert (sil[:, 6:18, 6:18] > 0.5).flatten(1).any(1).all()  # every view sees it in the middle
    assert (sil[:, 0, :] < 1e-3).all() and (sil[:, :, 0] < 1e-3).all()  # empty border
    assert 0.05 < (sil > 0.5).float().mean() < 0.6
    # colour only where there is opacity (black background, premultiplied)
    assert (views.images.amax(-1) <= sil + 1e-5).all()


def test_render_converges_with_finer_sampling():
    """The ground truth is a continuous field: doubling the samples barely changes it."""
    e, a = HELDOUT_ANGLES[0][13:14], HELDOUT_ANGLES[1][13:14]
    coarse = scene.render_scene_views(e, a, 16, 192)
    fine = scene.render_scene_views(e, a, 16, 384)
    assert (coarse.images - fine.images).abs().mean() < 0.01
    assert (coarse.silhouettes - fine.silhouettes).abs().mean() < 0.01


def test_views_from_the_front_see_through_the_ring():
    """At azimuth 0 the camera looks along the ring's axis: its hole shows background beside the rod."""
    views = scene.render_scene_views(torch.zeros(1), torch.zeros(1), 48, 192)
    sil = views.silhouettes[0]
    row = sil[sil.shape[0] // 2 - 3]  # a row just above the image centre, through the hole
    runs = np.flatnonzero(np.diff((row > 0.5).numpy().astype(int)))
    assert len(runs) >= 4, f"expected ring / gap / rod / gap / ring along the row, got edges {runs}"

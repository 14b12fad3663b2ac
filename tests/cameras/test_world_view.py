"""The world -> view transform (:mod:`voxrender.cameras.world_view`)."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from voxrender import (
    Transform3d,
    get_world_to_view_transform,
    so3_exp_map,
)


def test_get_world_to_view_transform_function():
    R = so3_exp_map(torch.randn(3, 3))
    T = torch.randn(1, 3)
    t = get_world_to_view_transform(R=R, T=T)
    assert isinstance(t, Transform3d) and len(t) == 3
    p = torch.randn(3, 4, 3)
    assert_close(t.transform_points(p), p @ R + T[:, None])
    assert torch.equal(get_world_to_view_transform().get_matrix(), torch.eye(4)[None])
    assert get_world_to_view_transform(R=R.double()).dtype == torch.float64


def test_world_to_view_batch_mismatch():
    with pytest.raises(
        ValueError, match="batch sizes do not broadcast: expected each to be 1 or 3, got R=2, T=3"
    ):
        get_world_to_view_transform(R=torch.eye(3).repeat(2, 1, 1), T=torch.zeros(3, 3))

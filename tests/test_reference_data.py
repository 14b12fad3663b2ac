"""reference.data: the .npz views format, its validation and camera batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reference.data import load_views_npz, save_views_npz, views_from_arrays
from reference.errors import FitError

COW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cow_views.npz"


def _arrays(n=4, h=6, w=5, m=2):
    rng = np.random.default_rng(0)
    eye = np.eye(3, dtype=np.float32)
    return {
        "images": rng.random((n, h, w, 3), dtype=np.float32),
        "silhouettes": (rng.random((n, h, w)) > 0.5).astype(np.float32),
        "R": np.tile(eye, (n, 1, 1)),
        "T": rng.standard_normal((n, 3)).astype(np.float32),
        "heldout_images": rng.random((m, h, w, 3), dtype=np.float32),
        "heldout_R": np.tile(eye, (m, 1, 1)),
        "heldout_T": rng.standard_normal((m, 3)).astype(np.float32),
    }


def _save(tmp_path, arrays, name="views.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_load_round_trip_and_defaults(tmp_path):
    arrays = _arrays()
    data = load_views_npz(_save(tmp_path, arrays))
    assert len(data.train) == 4 and len(data.heldout) == 2
    assert data.train.image_size == (6, 5)
    assert torch.equal(data.train.images, torch.from_numpy(arrays["images"]))
    assert data.train.fov.tolist() == [60.0] * 4 and data.train.zfar.tolist() == [100.0] * 4
    assert data.heldout.znear.tolist() == [1.0, 1.0] and data.heldout.silhouettes is None
    save_views_npz(tmp_path / "again.npz", data)
    again = load_views_npz(tmp_path / "again.npz")
    assert torch.equal(again.heldout.T, data.heldout.T) and torch.equal(
        again.train.fov, data.train.fov
    )


def test_scalar_and_per_view_intrinsics(tmp_path):
    arrays = _arrays() | {"fov": np.float32(45.0), "znear": np.full(4, 0.5, np.float32)}
    arrays["heldout_znear"] = np.float32(0.25)
    data = load_views_npz(_save(tmp_path, arrays))
    assert data.train.fov.tolist() == [45.0] * 4 and data.heldout.fov.tolist() == [45.0] * 2
    assert data.train.znear.tolist() == [0.5] * 4 and data.heldout.znear.tolist() == [0.25] * 2


def test_no_heldout_views(tmp_path):
    arrays = {k: v for k, v in _arrays().items() if not k.startswith("heldout_")}
    assert load_views_npz(_save(tmp_path, arrays)).heldout is None


def test_cameras_pick_views():
    data = views_from_arrays(_arrays())

    class _Backend:
        @staticmethod
        def FoVPerspectiveCameras(**kw):
            return kw

    cams = data.train.cameras(_Backend, torch.tensor([2, 0]))
    assert torch.equal(cams["T"], data.train.T[[2, 0]]) and cams["fov"].shape == (2,)
    assert cams["device"] == torch.device("cpu")


@pytest.mark.skipif(not COW.exists(), reason=f"{COW} is absent")
def test_loads_the_cow_dataset():
    data = load_views_npz(COW)
    assert len(data.train) == 40 and len(data.heldout) == 25 and data.train.image_size == (128, 128)


# ---- bad files: one test per case ----------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FitError, match=r"--data: no such file: .*nope\.npz"):
        load_views_npz(tmp_path / "nope.npz")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(FitError, match=r"expected an \.npz file, got a directory"):
        load_views_npz(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(FitError, match=r"not a valid views file .*: not an \.npz archive$") as e:
        load_views_npz(path)
    assert "allow_pickle" not in str(e.value)


def test_truncated_file(tmp_path):
    path = _save(tmp_path, _arrays())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(FitError, match=r"not a valid views file"):
        load_views_npz(path)


def test_single_npy_array(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(FitError, match=r"single \.npy array"):
        load_views_npz(path)


def test_missing_key(tmp_path):
    arrays = _arrays()
    del arrays["silhouettes"]
    with pytest.raises(FitError, match=r"missing array 'silhouettes'"):
        load_views_npz(_save(tmp_path, arrays))


def test_images_wrong_shape(tmp_path):
    arrays = _arrays() | {"images": np.zeros((4, 6, 5), np.float32)}
    with pytest.raises(FitError, match=r"images: expected shape \(N, H, W, 3\), got \(4, 6, 5\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_silhouettes_wrong_size(tmp_path):
    arrays = _arrays() | {"silhouettes": np.zeros((4, 6, 4), np.float32)}
    with pytest.raises(
        FitError, match=r"silhouettes: expected shape \(N=4, H=6, W=5\), got \(4, 6, 4\)"
    ):
        load_views_npz(_save(tmp_path, arrays))


def test_inconsistent_view_count(tmp_path):
    arrays = _arrays() | {"T": np.zeros((3, 3), np.float32)}
    with pytest.raises(FitError, match=r"T: expected shape \(N=4, 3\), got \(3, 3\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_rotation_wrong_shape(tmp_path):
    arrays = _arrays() | {"R": np.zeros((4, 3), np.float32)}
    with pytest.raises(FitError, match=r"R: expected shape \(N=4, 3, 3\), got \(4, 3\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_not_a_rotation(tmp_path):
    arrays = _arrays()
    arrays["R"][2] *= 2.0
    with pytest.raises(FitError, match=r"R: expected rotation matrices .* \(first: view 2\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_images_out_of_range(tmp_path):
    arrays = _arrays() | {"images": np.full((4, 6, 5, 3), 255, np.uint8)}
    with pytest.raises(
        FitError, match=r"images: expected values in \[0, 1\], got values in \[255, 255\]"
    ):
        load_views_npz(_save(tmp_path, arrays))


def test_non_finite_values(tmp_path):
    arrays = _arrays()
    arrays["T"][0, 0] = np.nan
    with pytest.raises(FitError, match=r"T: expected finite values"):
        load_views_npz(_save(tmp_path, arrays))


def test_non_numeric_array(tmp_path):
    arrays = _arrays() | {"T": np.array([["a"] * 3] * 4)}
    with pytest.raises(FitError, match=r"T: expected a numeric array, got dtype <U1"):
        load_views_npz(_save(tmp_path, arrays))


def test_intrinsic_wrong_shape(tmp_path):
    arrays = _arrays() | {"fov": np.full(3, 60.0, np.float32)}
    with pytest.raises(FitError, match=r"fov: expected a scalar or shape \(N=4,\), got \(3,\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_intrinsic_out_of_range(tmp_path):
    arrays = _arrays() | {"zfar": np.float32(0.5)}
    with pytest.raises(FitError, match=r"zfar: expected values > znear"):
        load_views_npz(_save(tmp_path, arrays))


def test_heldout_size_differs(tmp_path):
    arrays = _arrays() | {"heldout_images": np.zeros((2, 6, 6, 3), np.float32)}
    with pytest.raises(FitError, match=r"heldout_images: expected the training views' size"):
        load_views_npz(_save(tmp_path, arrays))


def test_heldout_incomplete(tmp_path):
    arrays = _arrays()
    del arrays["heldout_T"]
    with pytest.raises(FitError, match=r"missing array 'heldout_T'"):
        load_views_npz(_save(tmp_path, arrays))


def test_heldout_inconsistent_count(tmp_path):
    arrays = _arrays() | {"heldout_R": np.tile(np.eye(3, dtype=np.float32), (3, 1, 1))}
    with pytest.raises(FitError, match=r"heldout_R: expected shape \(M=2, 3, 3\), got \(3, 3, 3\)"):
        load_views_npz(_save(tmp_path, arrays))


def test_heldout_needs_own_intrinsics_when_training_ones_are_per_view(tmp_path):
    arrays = _arrays() | {"fov": np.linspace(40, 60, 4).astype(np.float32)}
    with pytest.raises(
        FitError, match=r"heldout_fov: required because the training views' value is per view"
    ):
        load_views_npz(_save(tmp_path, arrays))


def test_downsample_views_averages_blocks_and_keeps_cameras():
    from reference.data import downsample_views

    data = views_from_arrays(_arrays(n=4, h=6, w=4, m=2))
    half = downsample_views(data, 2)
    assert half.train.image_size == (3, 2) and half.heldout.image_size == (3, 2)
    blocks = data.train.images.reshape(4, 3, 2, 2, 2, 3).mean((2, 4))
    assert torch.allclose(half.train.images, blocks)
    sil = data.train.silhouettes.reshape(4, 3, 2, 2, 2).mean((2, 4))
    assert torch.allclose(half.train.silhouettes, sil) and half.heldout.silhouettes is None
    assert torch.equal(half.train.R, data.train.R) and torch.equal(half.train.fov, data.train.fov)
    assert downsample_views(data, 1) is data
    with pytest.raises(FitError, match=r"--downsample 3: 6x4 images would shrink below 2 pixels"):
        downsample_views(data, 3)

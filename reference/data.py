"""Views to fit: the ``.npz`` file format, loading, validation, and camera batches.

Dimension letters: ``N`` training views, ``M`` held-out views, ``H, W`` image height and width.

File format (``--data FILE.npz``; extra keys are ignored):

============================  ==================  ================================================
key                           shape               meaning
============================  ==================  ================================================
``images``                    ``(N, H, W, 3)``    training views, RGB in ``[0, 1]``
``silhouettes``               ``(N, H, W)``       masks in ``[0, 1]`` (binary or soft)
``R``                         ``(N, 3, 3)``       ``FoVPerspectiveCameras(R=...)``: world-to-view
                                                  rotations, PyTorch3D's row-vector convention
``T``                         ``(N, 3)``          ``FoVPerspectiveCameras(T=...)``
``fov``                       ``()`` or ``(N,)``  optional, degrees (default 60)
``znear``, ``zfar``           ``()`` or ``(N,)``  optional (defaults 1 and 100)
``aspect_ratio``              ``()`` or ``(N,)``  optional (default 1)
``heldout_images``            ``(M, H, W, 3)``    optional held-out views, never trained on; with
``heldout_R``, ``heldout_T``  ``(M, 3, 3)``,      ``heldout_images``, both required
                              ``(M, 3)``
``heldout_silhouettes``       ``(M, H, W)``       optional
``heldout_fov`` etc.          ``()`` or ``(M,)``  optional; default: the training value, which
                                                  must then be a scalar
============================  ==================  ================================================

Cameras are PyTorch3D's default ``FoVPerspectiveCameras`` with these fields; images follow
PyTorch3D's screen convention (row 0 at the top, +X to the left), as its renderers produce.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from .errors import FitError

__all__ = [
    "INTRINSICS",
    "ViewData",
    "Views",
    "downsample_views",
    "load_views_npz",
    "make_cameras",
    "save_views_npz",
    "views_from_arrays",
]

# Camera intrinsics stored per view, with FoVPerspectiveCameras' defaults.
INTRINSICS = {"fov": 60.0, "znear": 1.0, "zfar": 100.0, "aspect_ratio": 1.0}


@dataclass(frozen=True)
class Views:
    """A set of posed views.

    Attributes:
        images: ``(N, H, W, 3)`` RGB in ``[0, 1]``.
        silhouettes: ``(N, H, W)`` masks in ``[0, 1]``, or ``None``.
        R: ``(N, 3, 3)`` camera rotations.
        T: ``(N, 3)`` camera translations.
        fov, znear, zfar, aspect_ratio: ``(N,)`` intrinsics (``fov`` in degrees).
    """

    images: torch.Tensor
    silhouettes: torch.Tensor | None
    R: torch.Tensor
    T: torch.Tensor
    fov: torch.Tensor
    znear: torch.Tensor
    zfar: torch.Tensor
    aspect_ratio: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self.images.shape[1], self.images.shape[2]

    def to(self, device: torch.device | str) -> Views:
        """The same views with every tensor on ``device``."""
        moved = {k: (None if v is None else v.to(device)) for k, v in vars(self).items()}
        return Views(**moved)

    def cameras(self, backend, index: torch.Tensor | slice | None = None):
        """``FoVPerspectiveCameras`` of the views picked by ``index`` (all when ``None``).

        Args:
            backend: a :class:`~reference.backends.Backend`.
            index: ``(B,)`` long tensor on this views' device, or a slice.
        """
        index = slice(None) if index is None else index
        return make_cameras(
            backend,
            R=self.R[index],
            T=self.T[index],
            fov=self.fov[index],
            znear=self.znear[index],
            zfar=self.zfar[index],
            aspect_ratio=self.aspect_ratio[index],
        )


def make_cameras(backend, R, T, fov, znear, zfar, aspect_ratio):
    """``FoVPerspectiveCameras`` on ``R``'s device, as the tutorial builds its minibatches.

    Args:
        backend: a :class:`~reference.backends.Backend`.
        R: ``(B, 3, 3)``; T: ``(B, 3)``; fov (degrees), znear, zfar, aspect_ratio: ``(B,)``.
    """
    return backend.FoVPerspectiveCameras(
        R=R, T=T, znear=znear, zfar=zfar, aspect_ratio=aspect_ratio, fov=fov, device=R.device
    )


@dataclass(frozen=True)
class ViewData:
    """Training views, optional held-out views, and where they came from."""

    train: Views
    heldout: Views | None
    source: str

    def to(self, device: torch.device | str) -> ViewData:
        """The same data on ``device``."""
        heldout = None if self.heldout is None else self.heldout.to(device)
        return replace(self, train=self.train.to(device), heldout=heldout)


def _shape(a: np.ndarray) -> str:
    return str(tuple(a.shape))


def _numeric(arrays: dict[str, np.ndarray], key: str, where: str) -> np.ndarray:
    a = arrays[key]
    if a.dtype.kind not in "biuf":
        raise FitError(f"{where}: {key}: expected a numeric array, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise FitError(f"{where}: {key}: expected finite values, got NaN or inf")
    return a


def _check_shape(a: np.ndarray, key: str, want: tuple, spec: str, where: str) -> None:
    ok = a.ndim == len(want) and all(
        w is None or s == w for s, w in zip(a.shape, want, strict=True)
    )
    if not ok:
        raise FitError(f"{where}: {key}: expected shape {spec}, got {_shape(a)}")


def _check_unit_range(a: np.ndarray, key: str, where: str) -> None:
    if a.size and (a.min() < 0 or a.max() > 1):
        raise FitError(
            f"{where}: {key}: expected values in [0, 1], got values in [{a.min():g}, {a.max():g}]"
        )


def _intrinsic(
    arrays: dict[str, np.ndarray],
    key: str,
    n: int,
    default: np.ndarray | float | None,
    letter: str,
    where: str,
) -> np.ndarray:
    """A ``()`` or ``(n,)`` intrinsic as ``(n,)``, falling back to ``default``."""
    if key not in arrays:
        if default is None:
            raise FitError(
                f"{where}: {key}: required because the training views' value is per view"
            )
        return np.broadcast_to(np.asarray(default, np.float32), (n,)).copy()
    a = _numeric(arrays, key, where)
    if a.ndim == 0 or a.shape == (1,):
        return np.full((n,), a.reshape(()), np.float32)
    if a.shape != (n,):
        raise FitError(
            f"{where}: {key}: expected a scalar or shape ({letter}={n},), got {_shape(a)}"
        )
    return a


def _check_intrinsics(values: dict[str, np.ndarray], prefix: str, where: str) -> None:
    fov, znear, zfar, aspect = (values[k] for k in ("fov", "znear", "zfar", "aspect_ratio"))
    if not ((fov > 0) & (fov < 180)).all():
        raise FitError(
            f"{where}: {prefix}fov: expected degrees in (0, 180), got {fov.min():g}..{fov.max():g}"
        )
    if not (znear > 0).all():
        raise FitError(f"{where}: {prefix}znear: expected values > 0, got min {znear.min():g}")
    if not (zfar > znear).all():
        raise FitError(f"{where}: {prefix}zfar: expected values > znear, got min {zfar.min():g}")
    if not (aspect > 0).all():
        raise FitError(
            f"{where}: {prefix}aspect_ratio: expected values > 0, got min {aspect.min():g}"
        )


def _check_rotations(R: np.ndarray, key: str, where: str) -> None:
    err = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3, dtype=np.float32)).max(axis=(-1, -2))
    det = np.linalg.det(R.astype(np.float64))
    bad = np.flatnonzero((err > 1e-3) | (np.abs(det - 1) > 1e-3))
    if bad.size:
        raise FitError(
            f"{where}: {key}: expected rotation matrices (orthonormal, det +1), got "
            f"{bad.size} that are not (first: view {bad[0]})"
        )


def _views_from_arrays(
    arrays: dict[str, np.ndarray],
    prefix: str,
    hw: tuple[int, int] | None,
    fallback: dict[str, np.ndarray | None] | None,
    need_silhouettes: bool,
    where: str,
) -> tuple[Views, dict[str, np.ndarray | None]]:
    """Validate one set of views (``prefix`` "" or "heldout_") and turn it into tensors."""
    letter = "M" if prefix else "N"
    for key in ("images", "R", "T") + (("silhouettes",) if need_silhouettes else ()):
        if prefix + key not in arrays:
            raise FitError(f"{where}: missing array {prefix + key!r}")
    images = _numeric(arrays, prefix + "images", where)
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[:3]) < 1:
        raise FitError(
            f"{where}: {prefix}images: expected shape ({letter}, H, W, 3), got {_shape(images)}"
        )
    n, h, w = images.shape[:3]
    if hw is not None and (h, w) != hw:
        raise FitError(
            f"{where}: {prefix}images: expected the training views' size H, W = {hw}, got {(h, w)}"
        )
    _check_unit_range(images, prefix + "images", where)
    sil = None
    if prefix + "silhouettes" in arrays:
        sil = _numeric(arrays, prefix + "silhouettes", where)
        _check_shape(sil, prefix + "silhouettes", (n, h, w), f"({letter}={n}, H={h}, W={w})", where)
        _check_unit_range(sil, prefix + "silhouettes", where)
    R = _numeric(arrays, prefix + "R", where)
    _check_shape(R, prefix + "R", (n, 3, 3), f"({letter}={n}, 3, 3)", where)
    _check_rotations(R, prefix + "R", where)
    T = _numeric(arrays, prefix + "T", where)
    _check_shape(T, prefix + "T", (n, 3), f"({letter}={n}, 3)", where)
    intr = {}
    own_values = {}
    for key, default in INTRINSICS.items():
        fb = default if fallback is None else fallback[key]
        intr[key] = _intrinsic(arrays, prefix + key, n, fb, letter, where)
        # what held-out views may inherit: a scalar value only
        stored = arrays.get(prefix + key)
        own_values[key] = (
            default if stored is None else (stored.reshape(()) if stored.size == 1 else None)
        )
    _check_intrinsics(intr, prefix, where)
    views = Views(
        images=torch.from_numpy(images),
        silhouettes=None if sil is None else torch.from_numpy(sil),
        R=torch.from_numpy(R),
        T=torch.from_numpy(T),
        **{k: torch.from_numpy(v) for k, v in intr.items()},
    )
    return views, own_values


def views_from_arrays(arrays: dict[str, np.ndarray], where: str = "data") -> ViewData:
    """Validate a dict of arrays in the file format and turn it into :class:`ViewData`.

    Args:
        arrays: key -> array, as in the module docstring.
        where: prefix of error messages (e.g. ``"--data views.npz"``).

    Raises:
        FitError: a missing key, a wrong shape, inconsistent view counts or image sizes, values
            out of range.
    """
    train, scalars = _views_from_arrays(arrays, "", None, None, True, where)
    heldout = None
    held_keys = [k for k in ("heldout_images", "heldout_R", "heldout_T") if k in arrays]
    if held_keys:
        heldout, _ = _views_from_arrays(arrays, "heldout_", train.image_size, scalars, False, where)
    elif any(
        k.startswith("heldout_") and k.removeprefix("heldout_") in (*INTRINSICS, "silhouettes")
        for k in arrays
    ):
        raise FitError(
            f"{where}: missing array 'heldout_images' (other heldout_ arrays are present)"
        )
    return ViewData(train=train, heldout=heldout, source=where)


def load_views_npz(path: str | os.PathLike) -> ViewData:
    """Load and validate an ``.npz`` of views (format in the module docstring).

    Raises:
        FitError: the file is missing or unreadable, or its arrays are invalid.
    """
    path = os.fspath(path)
    where = f"--data {path}"
    if not os.path.exists(path):
        raise FitError(f"--data: no such file: {path}")
    if os.path.isdir(path):
        raise FitError(f"--data: expected an .npz file, got a directory: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as e:
        reason = str(e)
        if "allow_pickle" in reason or "pickled" in reason:  # numpy's guess for unknown bytes
            reason = "not an .npz archive"
        raise FitError(
            f"{where}: not a valid views file (an .npz archive of arrays, format in "
            f"reference/README.md): {reason}"
        ) from None
    return views_from_arrays(arrays, where)


def _shrink(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """``(N, H, W, C)`` or ``(N, H, W)`` -> ``H // k, W // k``, averaging ``k x k`` blocks."""
    if t is None:
        return None
    x = t if t.ndim == 4 else t[..., None]
    h, w = x.shape[1] // k, x.shape[2] // k
    x = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(h, w), mode="area")
    x = x.permute(0, 2, 3, 1).contiguous()  # (N, h, w, C)
    return x if t.ndim == 4 else x[..., 0]


def downsample_views(data: ViewData, k: int) -> ViewData:
    """Images and silhouettes ``k`` times smaller (area average); cameras keep their fov.

    Raises:
        FitError: the images would shrink below 2 pixels.
    """
    if k == 1:
        return data
    h, w = data.train.image_size
    if min(h, w) // k < 2:
        raise FitError(f"--downsample {k}: {h}x{w} images would shrink below 2 pixels")

    def shrink(views: Views | None) -> Views | None:
        if views is None:
            return None
        return replace(
            views, images=_shrink(views.images, k), silhouettes=_shrink(views.silhouettes, k)
        )

    return replace(data, train=shrink(data.train), heldout=shrink(data.heldout))


def save_views_npz(path: str | os.PathLike, data: ViewData) -> None:
    """Write ``data`` in the file format, atomically (so a scene can be saved and re-used)."""
    from .atomic import atomic_write

    arrays: dict[str, np.ndarray] = {}
    for prefix, views in (("", data.train), ("heldout_", data.heldout)):
        if views is None:
            continue
        for key, value in vars(views).items():
            if value is not None:
                arrays[prefix + key] = value.detach().cpu().numpy()
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

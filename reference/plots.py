"""Figures and animations of a fit, all written atomically.

Matplotlib is used through its Agg canvas directly (no ``pyplot``, no display, no global
state); the rotating-volume mosaic and GIF are assembled pixel-exact with Pillow.

Dimension letters: ``F`` frames, ``H, W`` image size.
"""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .atomic import write_bytes_atomic

__all__ = ["save_gif", "save_loss_plot", "save_mosaic", "save_progress_panel", "to_uint8"]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in ``[0, 1]`` (values outside are clipped) to ``uint8``."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 80) -> None:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_bytes_atomic(path, buffer.getvalue())


def save_progress_panel(
    path: str | os.PathLike,
    rendered_rgb: np.ndarray,
    target_rgb: np.ndarray,
    rendered_silhouette: np.ndarray,
    target_silhouette: np.ndarray,
    title: str = "",
) -> None:
    """The tutorial's 2x2 panel: rendered vs target image (top) and silhouette (bottom).

    Args:
        path: the PNG to write.
        rendered_rgb, target_rgb: ``(H, W, 3)``.
        rendered_silhouette, target_silhouette: ``(H, W)``.
        title: figure title, e.g. the iteration.
    """
    fig = Figure(figsize=(8, 8))
    axes = fig.subplots(2, 2).ravel()
    panels = (
        (rendered_rgb, "rendered image"),
        (target_rgb, "target image"),
        (rendered_silhouette, "rendered silhouette"),
        (target_silhouette, "target silhouette"),
    )
    for ax, (image, name) in zip(axes, panels, strict=True):
        ax.imshow(
            np.clip(image, 0.0, 1.0), vmin=0.0, vmax=1.0, cmap="gray" if image.ndim == 2 else None
        )
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def save_loss_plot(
    path: str | os.PathLike,
    color_err: list[float],
    sil_err: list[float],
    lr_drop: int | None = None,
    view: tuple[str, np.ndarray, np.ndarray] | None = None,
    note: str = "",
) -> None:
    """Loss curves (log scale) with the learning-rate drop marked; optionally a view beside them.

    Args:
        path: the PNG to write.
        color_err, sil_err: per-iteration losses.
        lr_drop: iteration of the learning-rate drop, marked with a dashed line.
        view: ``(name, rendered (H, W, 3), target (H, W, 3))``, shown right of the curves.
        note: figure title, e.g. the PSNR.
    """
    if view is None:
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
    else:
        fig = Figure(figsize=(13, 4.5))
        ax, *image_axes = fig.subplots(1, 3, width_ratios=(7, 3, 3))
        name, rendered, target = view
        for image_ax, image, label in zip(
            image_axes, (rendered, target), ("rendered", "target"), strict=True
        ):
            image_ax.imshow(np.clip(image, 0.0, 1.0), vmin=0.0, vmax=1.0)
            image_ax.set_title(f"{name}: {label}")
            image_ax.axis("off")
    steps = np.arange(len(color_err))
    total = np.asarray(color_err) + np.asarray(sil_err)
    ax.plot(steps, total, label="loss (sum)", color="black", linewidth=1.5)
    ax.plot(steps, color_err, label="color_err", linewidth=1.0)
    ax.plot(steps, sil_err, label="sil_err", linewidth=1.0)
    if lr_drop is not None and 0 < lr_drop < len(color_err):
        ax.axvline(lr_drop, color="gray", linestyle="--", linewidth=1.0, label="lr / 10")
    if len(steps) and (total > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean huber error")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if note:
        fig.suptitle(note)
    fig.tight_layout()
    _save_figure(fig, path, dpi=100)


def save_mosaic(path: str | os.PathLike, frames: np.ndarray, rows: int, cols: int) -> None:
    """Tile ``rows * cols`` frames ``(F, H, W, 3)`` in ``[0, 1]`` row by row into one PNG of ``(rows*H, cols*W)``."""
    n, h, w, c = frames.shape
    if n != rows * cols:
        raise ValueError(f"frames: expected {rows} x {cols} = {rows * cols} frames, got {n}")
    grid = to_uint8(frames).reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4)
    buffer = io.BytesIO()
    Image.fromarray(grid.reshape(rows * h, cols * w, c)).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def save_gif(path: str | os.PathLike, frames: np.ndarray, duration_ms: int = 100) -> None:
    """Looping GIF of frames ``(F, H, W, 3)`` in ``[0, 1]``, at their own size."""
    images = [Image.fromarray(f) for f in to_uint8(frames)]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
    )
    write_bytes_atomic(path, buffer.getvalue())

"""``voxrender-fit``: PyTorch3D's ``fit_textured_volume`` tutorial as a command-line tool.

A ``V^3`` grid of density and colour logits (initialised to -4 and 0) is rendered through a
sigmoid by ``VolumeRenderer(NDCMultinomialRaysampler(...), EmissionAbsorptionRaymarcher())``
from minibatches of training cameras and fitted with Adam (lr 0.1, re-created with lr 0.01 at
``round(0.75 * iters)``, exactly as the tutorial does) to the views' images and silhouettes
under the tutorial's huber losses. Randomness matches the tutorial's: ``torch.manual_seed(seed)``
once, then one ``torch.randperm(N)[:batch_size]`` per iteration and no other draw from the
global generator, so loss curves are comparable with PyTorch3D's.

Usage::

    python -m reference.fit --preset quick                 # built-in scene, about 20 s on CPU
    python -m reference.fit --data views.npz --out runs/cow  # the tutorial's settings
    python -m reference.fit --out runs/cow --resume        # continue an interrupted run
    torchrun --standalone --nproc-per-node 4 -m reference --out runs/cow4  # data-parallel

Data: ``--data scene/`` (a NeRF-synthetic / Blender scene: :mod:`reference.blender`), or
``--data FILE.npz`` with ``images (N, H, W, 3)``, ``silhouettes (N, H, W)``,
``R (N, 3, 3)``, ``T (N, 3)``, optional ``fov``/``znear``/``zfar``/``aspect_ratio`` (scalar or
``(N,)``) and optional ``heldout_images``/``heldout_R``/``heldout_T``/``heldout_silhouettes``;
full table in :mod:`reference.data`. Without ``--data``, the built-in scene of
:mod:`reference.scene`.

Run folder (``--out``, default ``runs/<timestamp>``), every file written atomically:

- ``metrics.json``: ``config``, per-iteration ``color_err`` and ``sil_err``, ``wall_s`` (training
  loop), ``iters_per_s``, ``device``, ``backend``, ``psnr_train``, ``psnr_heldout`` (``null``
  without held-out views), and a few descriptive extras. Written last: its presence means done.
- ``loss.png``; ``progress_0000.png``, ``progress_0040.png``, ...: the tutorial's panels
  (rendered vs target image and silhouette, first view of that iteration's batch).
- ``rotating.png`` (7 x 4 mosaic of the 28 frames) and ``rotating.gif``.
- ``volume.pt``: ``densities (1, V, V, V)`` and ``colors (3, V, V, V)`` after the sigmoid,
  ``voxel_size``, ``extent``, ``volume_size``.
- ``checkpoint.pt``: see :mod:`reference.checkpoint`; every ``--checkpoint-every`` iterations, at
  the end, and on Ctrl-C or SIGTERM (which finish the current iteration first; a second signal
  stops at once, keeping the last checkpoint).

PSNR is ``-10 log10(mean((clamp(render, 0, 1) - target)^2))`` over all pixels and channels of all
training (held-out) views, rendering the final volume in batches of ``--eval-batch-size``.

User errors (bad flags or data, an unusable run folder) print one ``voxrender-fit: error:`` line
to stderr and exit with status 2, before anything is written.

Under ``torchrun`` the processes split every step's views and sum their gradients; rank 0 alone
writes the run folder; a process that dies makes the others exit with status 3 and one line
naming the checkpoint to resume (:mod:`reference.distributed`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .atomic import save_torch_atomic, write_json_atomic
from .backends import Backend, get_backend
from .blender import is_blender_path, load_blender
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import RESULT_KEYS, FitConfig, flag, parse_overrides, resolve_config, validate_config
from .data import ViewData, Views, downsample_views, load_views_npz, make_cameras
from .depth import save_depth_images
from .distributed import DEFAULT_TIMEOUT_S, TEST_DIE_AT_ENV, Dist, PeerLost, env_rank, host
from .errors import FitError
from .model import VolumeModel, fit_errors, squared_error_sum
from .plots import save_gif, save_loss_plot, save_mosaic, save_progress_panel
from .scene import CAMERA_DIST, TRAIN_ANGLES, make_scene_data

__all__ = ["Interrupted", "main", "resolve_device", "run"]

ROTATING_FRAMES = (4, 7)  # rows, cols of the mosaic: 28 frames
LR_DROP_AT = 0.75  # fraction of the iterations after which Adam restarts with lr / 10
_FLUSH_EVERY = 10  # iterations between reading the losses back from the device
PLAIN_PROGRESS_EVERY_S = 5.0  # seconds between plain progress lines when there is no bar


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` must be available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FitError(
            f"--device cuda: CUDA is not available to torch {torch.__version__} here; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise FitError(f"--device: expected one of auto, cpu, cuda, got {name!r}")
    return torch.device(name)


def _default_out() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out, k = Path("runs") / stamp, 1
    while out.exists():
        k += 1
        out = Path("runs") / f"{stamp}-{k}"
    return out


def _check_writable_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be created or written, before any work; writes nothing.

    The nearest existing folder on the way must be a folder in which a file can be created
    (probed with a temporary file, removed at once: permission bits alone do not tell, e.g. on
    a read-only mount or for root).
    """
    if out.exists() and not out.is_dir():
        raise FitError(f"--out {out}: exists and is not a folder")
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise FitError(f"--out {out}: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".voxrender-fit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FitError(f"--out {out}: cannot write in {base} ({e.strerror or e})") from None


def _check_fresh_out(out: Path) -> None:
    _check_writable_out(out)
    if out.is_dir() and any(out.iterdir()):
        raise FitError(
            f"--out {out}: folder exists and is not empty; pass --resume to continue the run in it "
            "or choose another --out"
        )


def _check_resumable(cfg: FitConfig, ckpt: dict[str, Any]) -> None:
    stored = {**dataclasses.asdict(FitConfig()), **ckpt["config"]}  # older runs lack new keys
    clashes = [
        f"{flag(k)} {getattr(cfg, k)!r} (the run has {stored.get(k)!r})"
        for k in RESULT_KEYS
        if getattr(cfg, k) != stored.get(k)
    ]
    if clashes:
        raise FitError("--resume: settings differ from the checkpoint's: " + "; ".join(clashes))
    if cfg.stop_after is not None and cfg.stop_after <= ckpt["iteration"]:
        raise FitError(
            f"--stop-after {cfg.stop_after}: the run has already done {ckpt['iteration']} iterations"
        )


def _load_data(cfg: FitConfig, device: torch.device, log: Callable[[str], None]) -> ViewData:
    if cfg.data is not None:
        if is_blender_path(cfg.data):
            data = load_blender(cfg.data, cfg.downsample, log)
        else:
            data = downsample_views(load_views_npz(cfg.data), cfg.downsample)
        h, w = data.train.image_size
        if cfg.image_size is not None and (cfg.image_size, cfg.image_size) != (h, w):
            raise FitError(
                f"--image-size {cfg.image_size}: the data's images are {h}x{w} (H x W); "
                "drop --image-size with --data (--downsample shrinks them)"
            )
        return data
    if cfg.downsample != 1:
        raise FitError(
            f"--downsample {cfg.downsample}: applies to --data; the built-in scene's size is "
            "--image-size"
        )
    size = 128 if cfg.image_size is None else cfg.image_size
    return make_scene_data(size, cfg.scene_pts_per_ray, device=device)


class Interrupted(KeyboardInterrupt):
    """The run stopped on Ctrl-C or SIGTERM; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _DeferredSignals:
    """Ctrl-C or SIGTERM stops the run between iterations; a second one interrupts it at once.

    The first signal becomes a flag checked between iterations (the iteration finishes, a
    checkpoint is written, the run exits).

    Args:
        on_first: called with a one-line notice when the first signal arrives.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first: Callable[[str], None]):
        self.requested = False
        self.signum = signal.SIGINT
        self._on_first = on_first
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise Interrupted(signum)
        self.requested, self.signum = True, signum
        self._on_first(
            f"{signal.Signals(signum).name}: finishing this iteration, then saving a checkpoint "
            "(Ctrl-C again to stop at once; --resume continues from the last checkpoint)"
        )

    def __enter__(self) -> _DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _render_batches(
    model: VolumeModel, backend: Backend, cams: dict[str, torch.Tensor], batch: int
):
    """Yield ``(slice, renders (b, H, W, 4))`` over camera tensors ``cams`` (R, T, intrinsics)."""
    n = cams["R"].shape[0]
    with torch.no_grad():
        for start in range(0, n, batch):
            sl = slice(start, min(start + batch, n))
            yield sl, model(make_cameras(backend, **{k: v[sl] for k, v in cams.items()}))


def _views_cameras(views: Views) -> dict[str, torch.Tensor]:
    keys = ("R", "T", "fov", "znear", "zfar", "aspect_ratio")
    return {k: getattr(views, k) for k in keys}


def _psnr(
    model: VolumeModel, backend: Backend, views: Views, batch: int
) -> tuple[float, torch.Tensor]:
    """PSNR over all views, and the first view's render ``(H, W, 3)`` on the CPU."""
    per_view, first = [], None
    for sl, rendered in _render_batches(model, backend, _views_cameras(views), batch):
        per_view.append(squared_error_sum(rendered[..., :3], views.images[sl]).cpu())
        if first is None:
            first = rendered[0, ..., :3].clamp(0.0, 1.0).cpu()
    # an exactly rounded sum: the same number whatever the evaluation batch size
    mse = math.fsum(torch.cat(per_view).tolist()) / views.images.numel()
    return (-10.0 * math.log10(mse) if mse > 0 else math.inf), first


def _rotating_frames(
    model: VolumeModel, backend: Backend, views: Views, batch: int
) -> torch.Tensor:
    """The tutorial's 28 frames of the volume turning about +y: ``(28, H, W, 3)`` on the CPU."""
    n = ROTATING_FRAMES[0] * ROTATING_FRAMES[1]
    device = views.R.device
    log_rot = torch.zeros(n, 3, device=device)
    log_rot[:, 1] = torch.linspace(-3.14, 3.14, n, device=device)
    T = torch.zeros(n, 3, device=device)
    T[:, 2] = CAMERA_DIST
    cams = {"R": backend.so3_exp_map(log_rot), "T": T}
    for key in ("fov", "znear", "zfar", "aspect_ratio"):
        cams[key] = getattr(views, key)[:1].expand(n)  # the first training view's, as the tutorial
    frames = [
        r[..., :3].clamp(0.0, 1.0).cpu() for _, r in _render_batches(model, backend, cams, batch)
    ]
    return torch.cat(frames)


def _quiet(_: str) -> None:
    return None


def run(
    config: FitConfig,
    *,
    data: ViewData | None = None,
    log: Callable[[str], None] | None = print,
    dist: Dist | None = None,
) -> dict[str, Any]:
    """Fit a volume; write the run folder; return the metrics.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this with the same settings:
    the steps' views are split across the processes, only rank 0 logs and writes files
    (:mod:`reference.distributed`).

    Args:
        config: the settings (see :class:`~reference.config.FitConfig`); validated here.
        data: views to fit instead of loading ``config.data`` / rendering the built-in scene.
        log: where progress messages go (``None``: nowhere); rank 0's only.
        dist: this process's place in a data-parallel run; ``None`` joins the group
            ``torchrun``'s environment describes (a single process without one) and leaves it
            at the end.

    Returns:
        ``metrics.json``'s content plus ``out`` (the run folder) and ``completed`` (``False`` when
        ``stop_after`` ended the run early; the dict then holds only ``out``, ``completed``,
        ``iteration``, ``color_err`` and ``sil_err``). Ranks other than 0 get only ``out``,
        ``completed``, ``rank``, ``color_err`` and ``sil_err``.

    Raises:
        FitError: a user error, raised before anything is written.
        Interrupted: (a ``KeyboardInterrupt``) after saving a checkpoint, on Ctrl-C or SIGTERM.
        PeerLost: another process of a distributed run died or stopped answering.
    """
    log = log or _quiet
    cfg = validate_config(dataclasses.replace(config))
    own_dist = dist is None
    if dist is None:
        dist = Dist.from_env(cfg.device, cfg.dist_timeout)
    try:
        result = _run(cfg, data, log if dist.is_main else _quiet, dist)
    except PeerLost:
        raise  # the group is broken and the process about to exit: nothing to tidy
    except BaseException:
        if own_dist:
            dist.close()
        raise
    if own_dist:
        dist.close()
    return result


def _setup_out(cfg: FitConfig) -> tuple[Path, dict[str, Any] | None]:
    """Rank 0's checks of the run folder: ``(out, checkpoint or None)``; writes nothing."""
    out = Path(cfg.out) if cfg.out is not None else _default_out()
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(out / CHECKPOINT_NAME)
        _check_resumable(cfg, ckpt)
        _check_writable_out(out)
    else:
        _check_fresh_out(out)
    return out, ckpt


def _run(
    cfg: FitConfig, data: ViewData | None, log: Callable[[str], None], dist: Dist
) -> dict[str, Any]:
    device = dist.device if dist.enabled else resolve_device(cfg.device)
    backend = get_backend(cfg.backend)
    # the folder and the checkpoint are rank 0's (other machines may not see them); the
    # checkpoint's global state then reaches every rank, whatever the world size that wrote it
    out, ckpt = dist.on_main(lambda: _setup_out(cfg))
    if data is None and cfg.data is None and cfg.batch_size > len(TRAIN_ANGLES[0]):
        raise FitError(  # refuse before spending time on rendering the scene
            f"--batch-size {cfg.batch_size}: larger than the number of training views ({len(TRAIN_ANGLES[0])})"
        )
    if data is None:
        log(f"loading data: {cfg.data}" if cfg.data else "rendering the built-in scene ...")
        data = dist.on_every(lambda: _load_data(cfg, device, log))
    if dist.enabled:
        log(
            f"data-parallel fit: {dist.world_size} processes ({dist.backend}), "
            f"{cfg.batch_size} views per step split across them"
        )
    n_views = len(data.train)
    if data.train.silhouettes is None:
        raise FitError(f"{data.source}: training views need silhouettes")
    if cfg.batch_size > n_views:
        raise FitError(
            f"--batch-size {cfg.batch_size}: larger than the number of training views ({n_views})"
        )
    cfg.out = str(out)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    data = data.to(device)

    model = VolumeModel(
        backend,
        cfg.volume_size,
        cfg.extent,
        data.train.image_size,
        cfg.n_pts_per_ray,
        cfg.min_depth,
    ).to(device)
    state = _fit(cfg, model, backend, data.train, out, ckpt, log, dist)
    if not state["completed"]:
        return state
    ranks = dist.gather(state["timing"])  # every rank's step times, on rank 0
    if not dist.is_main:
        return {
            "out": str(out),
            "completed": True,
            "rank": dist.rank,
            "color_err": state["color_err"],
            "sil_err": state["sil_err"],
        }

    t0 = time.perf_counter()
    log("rendering the final volume ...")
    volume = model.fitted_volume()
    save_torch_atomic(out / "volume.pt", volume)
    psnr_train, train_render = _psnr(model, backend, data.train, cfg.eval_batch_size)
    psnr_heldout, view = None, ("training view 0", train_render, data.train.images[0])
    if data.heldout is not None:
        psnr_heldout, held_render = _psnr(model, backend, data.heldout, cfg.eval_batch_size)
        view = ("held-out view 0", held_render, data.heldout.images[0])
    frames = _rotating_frames(model, backend, data.train, cfg.eval_batch_size).numpy()
    save_mosaic(out / "rotating.png", frames, *ROTATING_FRAMES)
    save_gif(out / "rotating.gif", frames)
    save_depth_images(
        out / "depth.png", model, backend, data.heldout, data.train, cfg.eval_batch_size
    )
    held_text = "n/a" if psnr_heldout is None else f"{psnr_heldout:.2f} dB"
    save_loss_plot(
        out / "loss.png",
        state["color_err"],
        state["sil_err"],
        round(LR_DROP_AT * cfg.iters),
        view=(view[0], view[1].numpy(), view[2].cpu().numpy()),
        note=f"PSNR held-out {held_text}, train {psnr_train:.2f} dB",
    )
    wall = state["wall_s"]
    metrics = {
        "config": cfg.to_dict(),
        "color_err": state["color_err"],
        "sil_err": state["sil_err"],
        "wall_s": wall,
        "iters_per_s": cfg.iters / wall if wall > 0 else None,
        "device": str(device),
        "backend": backend.name,
        "world_size": dist.world_size,
        "dist_backend": dist.backend,
        "ranks": ranks,
        "psnr_train": psnr_train,
        "psnr_heldout": psnr_heldout,
        "iters": cfg.iters,
        "image_size": list(data.train.image_size),
        "num_views": n_views,
        "num_heldout_views": 0 if data.heldout is None else len(data.heldout),
        "data": data.source,
        "eval_wall_s": time.perf_counter() - t0,
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
    }
    write_json_atomic(out / "metrics.json", metrics)
    held = "n/a (no held-out views)" if psnr_heldout is None else f"{psnr_heldout:.2f} dB"
    log(
        f"done: {cfg.iters} iterations in {wall:.1f} s ({metrics['iters_per_s'] or 0:.2f} it/s) on "
        f"{device} with {backend.name}"
        + (f" x {dist.world_size} processes\n" if dist.enabled else "\n")
        + f"PSNR train {psnr_train:.2f} dB, held-out {held}\n"
        f"results in {out}/: metrics.json, loss.png, progress_*.png, rotating.png, rotating.gif, "
        f"volume.pt, checkpoint.pt"
    )
    return {**metrics, "out": str(out), "completed": True}


def _fit(
    cfg: FitConfig,
    model: VolumeModel,
    backend: Backend,
    train: Views,
    out: Path,
    ckpt: dict[str, Any] | None,
    log: Callable[[str], None],
    dist: Dist,
) -> dict[str, Any]:
    """The tutorial's optimisation loop, with checkpoints, panels and a progress bar.

    Data-parallel (``dist.enabled``): every rank draws the same global batch and renders its
    share; each rank's errors are means over its own views, so weighting them by the rank's
    share of the batch makes their sum across ranks the mean over the whole batch, and the sum
    of the weighted gradients the single-process gradient. Rank 0 alone writes checkpoints and
    panels and shows progress.
    """
    params = [model.log_densities, model.log_colors]
    lr_drop = round(LR_DROP_AT * cfg.iters)
    torch.manual_seed(cfg.seed)
    start, history, wall = _restore(model, ckpt)
    optimizer = torch.optim.Adam(params, lr=cfg.lr if start <= lr_drop else cfg.lr * 0.1)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        log(f"resuming {out} at iteration {start} of {cfg.iters}")

    show_bar = sys.stderr.isatty() if cfg.progress_bar is None else cfg.progress_bar
    show_bar = show_bar and dist.is_main
    done = start
    last_checkpoint = start if ckpt is not None else None
    die_at = _test_die_at(dist)
    times = _StepTimes()

    def notice(message: str) -> None:
        if dist.is_main:
            tqdm.write(f"voxrender-fit: {message}", file=sys.stderr)

    bar = tqdm(
        total=cfg.iters, initial=start, desc="fit", unit="it", file=sys.stderr, disable=not show_bar
    )
    plain = _PlainProgress(cfg.iters, start, enabled=not show_bar and dist.is_main)
    requested, stop_signum = False, signal.SIGINT
    try:
        with bar, _DeferredSignals(notice) as signals:
            t0, io_time = time.perf_counter(), 0.0
            for it in range(start, cfg.iters):
                if it == die_at:
                    os._exit(1)  # the test hook: die as a crashed process would, no cleanup
                step_start, cpu_start = time.perf_counter(), time.process_time()
                if it == lr_drop:  # the tutorial re-creates Adam: fresh moments, lr / 10
                    optimizer = torch.optim.Adam(params, lr=cfg.lr * 0.1)
                index, rendered, losses, requested, stop_signum = _step(
                    cfg, model, backend, train, dist, optimizer, signals, times
                )
                history.pending.append(losses)
                done = it + 1
                times.steps.append(time.perf_counter() - step_start)
                times.cpu += time.process_time() - cpu_start

                io_start = time.perf_counter()  # panels and checkpoints don't count as loop time
                _show_progress(cfg, out, train, dist, it, index, rendered, bar, plain, history)
                if not dist.enabled:
                    requested, stop_signum = signals.requested, signals.signum
                stopping = requested or done == cfg.stop_after
                if done % cfg.checkpoint_every == 0 or done == cfg.iters or stopping:
                    elapsed = wall + (io_start - t0) - io_time
                    if dist.is_main:
                        state = _snapshot(cfg, model, optimizer, history, dist, done, elapsed)
                        save_checkpoint(out / CHECKPOINT_NAME, state)
                    last_checkpoint = done
                io_time += time.perf_counter() - io_start
                if stopping:
                    break
            if model.log_densities.is_cuda:
                torch.cuda.synchronize()
            wall += time.perf_counter() - t0 - io_time
    except Interrupted:  # a second signal: no checkpoint now, point at the last one
        log(f"stopped during iteration {done + 1}; {_kept_checkpoint(last_checkpoint, out)}")
        raise
    except PeerLost as e:
        kept = _kept_checkpoint(last_checkpoint, out)
        raise PeerLost(f"{e} during iteration {done + 1}; {kept}") from None
    history.flush()
    if done < cfg.iters:
        return _unfinished(out, log, history, done, requested, stop_signum)
    return {
        "completed": True,
        "color_err": history.color,
        "sil_err": history.sil,
        "wall_s": wall,
        "timing": times.summary(dist, train.images.device),
    }


class _LossHistory:
    """The per-iteration ``color_err`` and ``sil_err``, read back from the device in batches.

    Args:
        color, sil: the losses read back so far (a resumed run's from its checkpoint).
    """

    def __init__(self, color: list[float], sil: list[float]):
        self.color, self.sil = color, sil
        self.pending: list[torch.Tensor] = []  # (2,) losses not yet read back from the device

    def flush(self) -> None:
        """Read the pending losses back from the device (one sync) and append them."""
        if self.pending:
            values = torch.stack(self.pending).tolist()
            self.color.extend(v[0] for v in values)
            self.sil.extend(v[1] for v in values)
            self.pending.clear()


@dataclasses.dataclass
class _StepTimes:
    """This rank's time in the optimisation steps, without rank 0's panels and checkpoints."""

    steps: list[float] = dataclasses.field(default_factory=list)  # wall seconds, per step
    reduces: list[float] = dataclasses.field(default_factory=list)  # of which in the all-reduce
    cpu: float = 0.0  # this process's CPU seconds in the steps: robust to a busy machine

    def summary(self, dist: Dist, device: torch.device) -> dict[str, Any]:
        """The run's ``timing`` entry: means (and the slowest step) over the steps."""
        n = max(len(self.steps), 1)
        return {
            "rank": dist.rank,
            "host": host(),
            "device": str(device),
            "steps": len(self.steps),
            "step_s": sum(self.steps) / n,
            "step_s_max": max(self.steps, default=0.0),
            "allreduce_s": sum(self.reduces) / len(self.reduces) if self.reduces else 0.0,
            "cpu_s": self.cpu / n,
        }


def _restore(model: VolumeModel, ckpt: dict[str, Any] | None) -> tuple[int, _LossHistory, float]:
    """The first iteration, the loss history and the wall seconds so far; loads ``ckpt`` if any.

    Resuming copies the checkpoint's parameters into ``model`` and restores the RNG state.
    """
    if ckpt is None:
        return 0, _LossHistory([], []), 0.0
    with torch.no_grad():
        model.log_densities.copy_(ckpt["params"]["log_densities"])
        model.log_colors.copy_(ckpt["params"]["log_colors"])
    history = _LossHistory(list(ckpt["color_err"]), list(ckpt["sil_err"]))
    torch.set_rng_state(ckpt["rng_state"])
    return ckpt["iteration"], history, ckpt["wall_s"]


def _snapshot(
    cfg: FitConfig,
    model: VolumeModel,
    optimizer: torch.optim.Optimizer,
    history: _LossHistory,
    dist: Dist,
    done: int,
    elapsed: float,
) -> dict[str, Any]:
    """The checkpoint after iteration ``done`` (``elapsed`` wall seconds of fitting so far)."""
    history.flush()
    return {
        "iteration": done,
        "params": {
            "log_densities": model.log_densities.detach(),
            "log_colors": model.log_colors.detach(),
        },
        "optimizer": optimizer.state_dict(),
        "color_err": list(history.color),
        "sil_err": list(history.sil),
        "wall_s": elapsed,
        "rng_state": torch.get_rng_state(),
        "config": cfg.to_dict(),
        "world_size": dist.world_size,  # informational: the state is global, any size resumes
    }


def _step(
    cfg: FitConfig,
    model: VolumeModel,
    backend: Backend,
    train: Views,
    dist: Dist,
    optimizer: torch.optim.Optimizer,
    signals: _DeferredSignals,
    times: _StepTimes,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, bool, int]:
    """One optimisation step on a random batch of ``train``'s views.

    Returns:
        ``index (B,)`` the global batch's views, ``rendered (b, H, W, 4)`` this rank's renders
        (None when it has no views), ``losses (2,)`` the batch's colour and silhouette errors
        (not read back), and whether any rank saw a signal, and which (SIGTERM if any did).
    """
    optimizer.zero_grad()
    index = torch.randperm(len(train))[: cfg.batch_size].to(train.images.device)
    local = dist.shard(index)  # (b,): this rank's views (all B for one process)
    rendered = None
    if local.numel() > 0:
        rendered = model(train.cameras(backend, local))  # (b, H, W, 4)
        color_err, sil_err = fit_errors(rendered, train.images[local], train.silhouettes[local])
        if dist.enabled:
            share = local.numel() / cfg.batch_size
            color_err, sil_err = color_err * share, sil_err * share
        (color_err + sil_err).backward()
    else:  # fewer views than ranks: this one adds nothing
        color_err = sil_err = torch.zeros((), device=train.images.device)
    losses = torch.stack((color_err, sil_err)).detach()
    if dist.enabled:
        losses, requested, stop_signum = _all_reduce(model, dist, losses, signals, times)
    else:
        requested, stop_signum = signals.requested, signals.signum
    optimizer.step()
    return index, rendered, losses, requested, stop_signum


def _all_reduce(
    model: VolumeModel,
    dist: Dist,
    losses: torch.Tensor,
    signals: _DeferredSignals,
    times: _StepTimes,
) -> tuple[torch.Tensor, bool, int]:
    """Sum the gradients, ``losses (2,)`` and the stop flags over the ranks.

    Explicit all-reduce of the two gradient tensors rather than DDP: the model is two large leaf
    tensors, so DDP's buckets would only add a copy of each V^3 volume per step (and its hooks
    nothing). Summing the share-weighted gradients gives the gradient of the global batch's mean:
    the single-process one up to float32 summation order. The losses and the stop flags (a
    signal seen by any rank stops all after the same iteration; was one a SIGTERM) travel in a
    third, 4-element tensor.

    Returns:
        The summed ``losses (2,)``, whether any rank saw a signal, and which (SIGTERM if any did).
    """
    for p in (model.log_densities, model.log_colors):
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    seen = (signals.requested, signals.requested and signals.signum == signal.SIGTERM)
    flags = torch.cat((losses, torch.tensor(seen, dtype=losses.dtype, device=losses.device)))
    reduce_start = time.perf_counter()
    dist.all_reduce_([model.log_densities.grad, model.log_colors.grad, flags])
    any_signal, any_term = flags[2:].tolist()  # waits for the asynchronous NCCL
    times.reduces.append(time.perf_counter() - reduce_start)
    return flags[:2], any_signal > 0, signal.SIGTERM if any_term > 0 else signal.SIGINT


def _show_progress(
    cfg: FitConfig,
    out: Path,
    train: Views,
    dist: Dist,
    it: int,
    index: torch.Tensor,
    rendered: torch.Tensor | None,
    bar: tqdm,
    plain: _PlainProgress,
    history: _LossHistory,
) -> None:
    """After iteration ``it``: rank 0's progress panel when due, the bar and the plain lines."""
    done = it + 1
    if dist.is_main and (it % cfg.progress_every == 0 or done == cfg.iters):
        first = index[0]  # rank 0's first view: rendered[0]
        r = rendered[0].detach().cpu().numpy()
        save_progress_panel(
            out / f"progress_{it:04d}.png",
            r[..., :3],
            train.images[first].cpu().numpy(),
            r[..., 3],
            train.silhouettes[first].cpu().numpy(),
            title=f"iteration {it}",
        )
    bar.update(1)
    if it % _FLUSH_EVERY == 0 or done == cfg.iters:
        history.flush()
        bar.set_postfix(color_err=f"{history.color[-1]:.2e}", sil_err=f"{history.sil[-1]:.2e}")
    if plain.due(done):
        history.flush()
        plain.line(done, history.color[-1], history.sil[-1])


def _unfinished(
    out: Path,
    log: Callable[[str], None],
    history: _LossHistory,
    done: int,
    requested: bool,
    stop_signum: int,
) -> dict[str, Any]:
    """The end of a run stopped after iteration ``done``: by a signal, or by ``--stop-after``.

    Raises:
        Interrupted: a signal stopped it (``stop_signum``: SIGTERM if any rank saw one).
    """
    if requested:
        log(
            f"interrupted ({signal.Signals(stop_signum).name}) after iteration {done}; "
            f"continue with: voxrender-fit --resume --out {out}"
        )
        raise Interrupted(stop_signum)
    log(
        f"stopped after iteration {done} (--stop-after); continue with: voxrender-fit --resume --out {out}"
    )
    return {
        "out": str(out),
        "completed": False,
        "iteration": done,
        "color_err": history.color,
        "sil_err": history.sil,
    }


def _kept_checkpoint(last_checkpoint: int | None, out: Path) -> str:
    """What a run stopped mid-iteration leaves: the last checkpoint and how to resume from it."""
    if last_checkpoint is None:
        return "no checkpoint was written yet"
    return (
        f"the checkpoint at iteration {last_checkpoint} is kept; continue with: "
        f"voxrender-fit --resume --out {out}"
    )


def _test_die_at(dist: Dist) -> int | None:
    """The iteration at which :data:`~reference.distributed.TEST_DIE_AT_ENV` kills this rank."""
    value = os.environ.get(TEST_DIE_AT_ENV)
    if not value:
        return None
    try:
        rank, iteration = (int(v) for v in value.split(":"))
    except ValueError:
        raise FitError(f"{TEST_DIE_AT_ENV}: expected RANK:ITERATION, got {value!r}") from None
    return iteration if rank == dist.rank else None


class _PlainProgress:
    """Plain progress lines on stderr for when there is no progress bar (nohup, CI, a pipe).

    One every :data:`PLAIN_PROGRESS_EVERY_S` seconds, and one at the end.
    """

    def __init__(self, total: int, start: int, enabled: bool):
        self.total, self.start, self.enabled = total, start, enabled
        self.t0 = self.last = time.perf_counter()

    def due(self, done: int) -> bool:
        if not self.enabled:
            return False
        return done == self.total or time.perf_counter() - self.last >= PLAIN_PROGRESS_EVERY_S

    def line(self, done: int, color_err: float, sil_err: float) -> None:
        now = time.perf_counter()
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        print(
            f"fit: iteration {done}/{self.total}, color_err {color_err:.3e}, "
            f"sil_err {sil_err:.3e}, {rate:.2f} it/s, about {eta:.0f} s left",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    0 done (or stopped by ``--stop-after``), 2 user error, 3 another process of a distributed
    run died or stopped answering, 130 Ctrl-C, 143 SIGTERM. Under ``torchrun`` rank 0 prints
    user errors and interruptions (once for the run); every surviving rank prints a lost peer.
    """
    dist = None
    try:
        overrides = parse_overrides(argv)
        device = overrides.get("device", "auto")
        timeout = overrides.get("dist_timeout", DEFAULT_TIMEOUT_S)
        validate_config(FitConfig(device=device, dist_timeout=timeout))  # before joining
        dist = Dist.from_env(device, timeout)
        checkpoint_config = None
        if overrides.get("resume"):
            if "out" not in overrides:
                raise FitError(
                    "--resume: expected --out naming the run folder to continue, got none"
                )
            path = Path(overrides["out"]) / CHECKPOINT_NAME
            checkpoint_config = dist.on_main(lambda: load_checkpoint(path)["config"])
        run(resolve_config(overrides, checkpoint_config), dist=dist)
    except FitError as e:
        # the same on every rank once they are in a group (Dist shares them); before that a
        # rank's own problem, so every rank says it
        if dist is None or env_rank() == 0:
            print(f"voxrender-fit: error: {e}", file=sys.stderr)
        _close(dist)
        return 2
    except PeerLost as e:
        print(f"voxrender-fit: error: {e}", file=sys.stderr, flush=True)
        # torchrun sends the survivors SIGTERM once one rank fails: the message is out, so let
        # this process finish exiting with its own status rather than die of the signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return 3
    except Interrupted as e:
        if env_rank() == 0:
            print(f"voxrender-fit: interrupted ({signal.Signals(e.signum).name})", file=sys.stderr)
        _close(dist)
        return 128 + e.signum
    except KeyboardInterrupt:
        if env_rank() == 0:
            print("voxrender-fit: interrupted", file=sys.stderr)
        return 130
    _close(dist)
    return 0


def _close(dist: Dist | None) -> None:
    if dist is not None:
        dist.close()


if __name__ == "__main__":
    sys.exit(main())

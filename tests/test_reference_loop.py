"""reference.fit's optimisation loop, checkpoints and resume, driven by a tiny stand-in renderer.

The stand-in backend renders a volume by absorption along the grid's depth axis (no cameras
involved), which is enough to exercise the tutorial's loop: randomness, the learning-rate
restart, checkpoints, Ctrl-C and ``--resume``, independently of voxrender's renderer.
"""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from reference import fit as fit_module
from reference.backends import Backend
from reference.checkpoint import load_checkpoint
from reference.config import FitConfig
from reference.data import views_from_arrays
from reference.errors import FitError
from reference.model import huber

V, S, N = 6, 5, 7  # voxels per side, image side, training views


class _Volumes:
    def __init__(self, densities, features, voxel_size):
        self._d, self._f = densities, features

    def densities(self):
        return self._d

    def features(self):
        return self._f


class _Raysampler:
    def __init__(self, image_width, image_height, n_pts_per_ray, min_depth, max_depth):
        self.hw = (image_height, image_width)


class _Renderer(torch.nn.Module):
    """Absorption along the grid's first axis, resampled to the image size, tinted by T."""

    calls = 0
    interrupt_on_call = None  # send ourselves SIGINT during this call (simulated Ctrl-C)
    signals_on_call: ClassVar[dict[int, tuple[int, ...]]] = {}  # call -> signals sent to ourselves

    def __init__(self, raysampler, raymarcher):
        super().__init__()
        self.hw = raysampler.hw
        self.renderer = SimpleNamespace(raysampler=raysampler)  # as VolumeRenderer.renderer
        self.depth = getattr(raymarcher, "return_depth", False)  # depth.png's renderer

    def forward(self, cameras, volumes):
        type(self).calls += 1
        if type(self).calls == type(self).interrupt_on_call:
            os.kill(os.getpid(), signal.SIGINT)
        for signum in type(self).signals_on_call.get(type(self).calls, ()):
            os.kill(os.getpid(), signum)
        d, f = volumes.densities(), volumes.features()  # (B, 1, V, V, V), (B, 3, V, V, V)
        trans = torch.cumprod(1 - d, dim=2)
        weights = d * torch.cat((torch.ones_like(trans[:, :, :1]), trans[:, :, :-1]), dim=2)
        rgb = (weights * f).sum(2)  # (B, 3, V, V)
        alpha = weights.sum(2)  # (B, 1, V, V)
        img = torch.nn.functional.interpolate(
            torch.cat((rgb, alpha), 1), size=self.hw, mode="bilinear"
        )
        tint = torch.sigmoid(cameras.T[:, :, None, None]).mean(1, keepdim=True)  # (B, 1, 1, 1)
        img = torch.cat((img[:, :3] * tint, img[:, 3:]), 1)
        if self.depth:  # a made-up depth channel after the opacity, as return_depth=True gives
            img = torch.cat((img, img[:, 3:] * 2.0), 1)
        return img.permute(0, 2, 3, 1), None


def _so3_exp_map(log_rot):
    return torch.eye(3).expand(log_rot.shape[0], 3, 3).clone()


FAKE = Backend(
    name="voxrender",
    Volumes=_Volumes,
    VolumeRenderer=_Renderer,
    ImplicitRenderer=None,
    NDCMultinomialRaysampler=_Raysampler,
    EmissionAbsorptionRaymarcher=lambda **kw: SimpleNamespace(**kw),
    FoVPerspectiveCameras=lambda **kw: SimpleNamespace(**kw),
    look_at_view_transform=None,
    so3_exp_map=_so3_exp_map,
    ray_bundle_to_ray_points=None,
)


@pytest.fixture(autouse=True)
def fake_backend(monkeypatch):
    monkeypatch.setattr(fit_module, "get_backend", lambda name: FAKE)
    _Renderer.calls = 0
    _Renderer.interrupt_on_call = None
    _Renderer.signals_on_call = {}


def _data(n=N, heldout=True):
    g = torch.Generator().manual_seed(1)
    arrays = {
        "images": torch.rand(n, S, S, 3, generator=g).numpy(),
        "silhouettes": (torch.rand(n, S, S, generator=g) > 0.5).float().numpy(),
        "R": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        "T": torch.randn(n, 3, generator=g).numpy(),
    }
    if heldout:
        arrays |= {
            "heldout_images": torch.rand(3, S, S, 3, generator=g).numpy(),
            "heldout_R": np.tile(np.eye(3, dtype=np.float32), (3, 1, 1)),
            "heldout_T": torch.randn(3, 3, generator=g).numpy(),
        }
    return views_from_arrays(arrays)


def _cfg(out, **kw):
    base = dict(
        volume_size=V, n_pts_per_ray=4, batch_size=3, iters=9, image_size=None, out=str(out),
        checkpoint_every=2, progress_every=100, eval_batch_size=2, device="cpu", progress_bar=False,
    )  # fmt: skip
    return FitConfig(**{**base, **kw})


def _reference_losses(data, iters, batch, lr=0.1, seed=0):
    """The tutorial's loop written out plainly, on the stand-in renderer."""
    model = fit_module.VolumeModel(FAKE, V, 3.0, (S, S), 4, 0.1)
    params = [model.log_densities, model.log_colors]
    torch.manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for it in range(iters):
        if it == round(0.75 * iters):
            opt = torch.optim.Adam(params, lr=lr * 0.1)
        opt.zero_grad()
        idx = torch.randperm(len(data.train))[:batch]
        cams = FAKE.FoVPerspectiveCameras(R=data.train.R[idx], T=data.train.T[idx])
        rgb, sil = model(cams).split([3, 1], dim=-1)
        sil_err = huber(sil[..., 0], data.train.silhouettes[idx]).abs().mean()
        color_err = huber(rgb, data.train.images[idx]).abs().mean()
        (color_err + sil_err).backward()
        opt.step()
        losses.append((color_err.item(), sil_err.item()))
    return losses, torch.sigmoid(model.log_densities.detach())


def test_loop_matches_the_tutorial_loop(tmp_path):
    data = _data()
    metrics = fit_module.run(_cfg(tmp_path / "run"), data=data, log=None)
    want, densities = _reference_losses(data, iters=9, batch=3)
    assert metrics["color_err"] == [c for c, _ in want]
    assert metrics["sil_err"] == [s for _, s in want]
    assert torch.equal(torch.load(tmp_path / "run" / "volume.pt")["densities"], densities)


def test_loop_draws_nothing_else_from_the_global_generator(tmp_path):
    data = _data()
    fit_module.run(_cfg(tmp_path / "run"), data=data, log=None)
    after_run = torch.rand(4)
    torch.manual_seed(0)
    for _ in range(9):
        torch.randperm(N)
    assert torch.equal(after_run, torch.rand(4))


def test_lr_restart_changes_the_result(tmp_path):
    """A run whose Adam is *not* re-created must differ: the restart is really there."""
    data = _data()
    metrics = fit_module.run(_cfg(tmp_path / "run", iters=8), data=data, log=None)
    losses, _ = _reference_losses(data, iters=8, batch=3)
    assert metrics["color_err"][-1] == losses[-1][0]
    # the same loop with a plain lr cut keeps Adam's moments: different numbers from it on
    model = fit_module.VolumeModel(FAKE, V, 3.0, (S, S), 4, 0.1)
    torch.manual_seed(0)
    opt = torch.optim.Adam([model.log_densities, model.log_colors], lr=0.1)
    for it in range(8):
        if it == 6:
            opt.param_groups[0]["lr"] = 0.01
        opt.zero_grad()
        idx = torch.randperm(N)[:3]
        out = model(FAKE.FoVPerspectiveCameras(R=data.train.R[idx], T=data.train.T[idx]))
        c, s = fit_module.fit_errors(out, data.train.images[idx], data.train.silhouettes[idx])
        (c + s).backward()
        opt.step()
    assert c.item() != metrics["color_err"][-1]


@pytest.mark.parametrize("stop_after", [3, 6, 7])  # before, at and after the lr restart (it 6 or 7)
def test_resume_is_bit_identical(tmp_path, stop_after):
    data = _data()
    full = fit_module.run(_cfg(tmp_path / "full"), data=data, log=None)
    part = fit_module.run(_cfg(tmp_path / "part", stop_after=stop_after), data=data, log=None)
    assert part["completed"] is False and part["iteration"] == stop_after
    assert not (tmp_path / "part" / "metrics.json").exists()
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["iteration"] == stop_after
    torch.manual_seed(1234)  # whatever happens to the generator in between must not matter
    resumed = fit_module.run(_cfg(tmp_path / "part", resume=True), data=data, log=None)
    assert resumed["color_err"] == full["color_err"]
    assert resumed["sil_err"] == full["sil_err"]
    a = torch.load(tmp_path / "full" / "volume.pt")
    b = torch.load(tmp_path / "part" / "volume.pt")
    assert torch.equal(a["densities"], b["densities"]) and torch.equal(a["colors"], b["colors"])


def test_ctrl_c_checkpoints_then_resume_is_bit_identical(tmp_path):
    data = _data()
    full = fit_module.run(_cfg(tmp_path / "full"), data=data, log=None)
    _Renderer.calls = 0
    _Renderer.interrupt_on_call = 5  # during iteration 4 (0-based): it completes, then we stop
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit_module.run(_cfg(tmp_path / "part"), data=data, log=None)
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["iteration"] == 5
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    _Renderer.interrupt_on_call = None
    resumed = fit_module.run(_cfg(tmp_path / "part", resume=True), data=data, log=None)
    assert resumed["color_err"] == full["color_err"]
    a = torch.load(tmp_path / "full" / "volume.pt")["colors"]
    assert torch.equal(a, torch.load(tmp_path / "part" / "volume.pt")["colors"])


def test_checkpoint_schedule_and_contents(tmp_path):
    data = _data()
    fit_module.run(_cfg(tmp_path / "run", stop_after=5, progress_every=4), data=data, log=None)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["iteration"] == 5 and len(ckpt["color_err"]) == 5
    assert ckpt["config"]["volume_size"] == V
    assert set(ckpt["params"]) == {"log_densities", "log_colors"}
    assert ckpt["rng_state"].dtype == torch.uint8
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.pt",
        "progress_0000.png",
        "progress_0004.png",
    ]


def test_outputs_and_metrics(tmp_path):
    metrics = fit_module.run(_cfg(tmp_path / "run", progress_every=4), data=_data(), log=None)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("config", "color_err", "sil_err", "wall_s", "iters_per_s", "device", "backend"):
        assert key in saved
    assert len(saved["color_err"]) == len(saved["sil_err"]) == 9
    assert saved["device"] == "cpu" and saved["backend"] == "voxrender"
    assert np.isfinite(saved["psnr_train"]) and np.isfinite(saved["psnr_heldout"])
    assert metrics["psnr_train"] == saved["psnr_train"]
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert names == {
        "metrics.json", "loss.png", "rotating.png", "rotating.gif", "volume.pt", "checkpoint.pt",
        "progress_0000.png", "progress_0004.png", "progress_0008.png", "depth.png",
    }  # fmt: skip
    assert not [n for n in names if n.endswith(".tmp")]


def test_no_heldout_views_gives_null_psnr(tmp_path):
    fit_module.run(_cfg(tmp_path / "run"), data=_data(heldout=False), log=None)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["psnr_heldout"] is None


def test_resume_refuses_changed_settings(tmp_path):
    data = _data()
    fit_module.run(_cfg(tmp_path / "run", stop_after=2), data=data, log=None)
    before = sorted(os.listdir(tmp_path / "run"))
    with pytest.raises(FitError, match=r"--resume: settings differ.*--lr 0\.05"):
        fit_module.run(_cfg(tmp_path / "run", resume=True, lr=0.05), data=data, log=None)
    assert sorted(os.listdir(tmp_path / "run")) == before


def test_stop_after_already_done_is_refused(tmp_path):
    data = _data()
    fit_module.run(_cfg(tmp_path / "run", stop_after=4), data=data, log=None)
    with pytest.raises(FitError, match=r"--stop-after 3: the run has already done 4"):
        fit_module.run(_cfg(tmp_path / "run", resume=True, stop_after=3), data=data, log=None)


def test_batch_larger_than_views_is_refused(tmp_path):
    with pytest.raises(
        FitError, match=r"--batch-size 8: larger than the number of training views \(7\)"
    ):
        fit_module.run(_cfg(tmp_path / "run", batch_size=8), data=_data(), log=None)
    assert not (tmp_path / "run").exists()


def test_sigterm_checkpoints_then_resume_is_bit_identical(tmp_path):
    data = _data()
    full = fit_module.run(_cfg(tmp_path / "full"), data=data, log=None)
    _Renderer.calls = 0
    _Renderer.signals_on_call = {4: (signal.SIGTERM,)}  # during iteration 3: it completes
    handler = signal.getsignal(signal.SIGTERM)
    lines = []
    with pytest.raises(fit_module.Interrupted) as e:
        fit_module.run(_cfg(tmp_path / "part"), data=data, log=lines.append)
    assert e.value.signum == signal.SIGTERM and isinstance(e.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["iteration"] == 4
    assert lines[-1] == (
        f"interrupted (SIGTERM) after iteration 4; continue with: voxrender-fit --resume "
        f"--out {tmp_path / 'part'}"
    )
    _Renderer.signals_on_call = {}
    resumed = fit_module.run(_cfg(tmp_path / "part", resume=True), data=data, log=None)
    assert resumed["color_err"] == full["color_err"]
    a = torch.load(tmp_path / "full" / "volume.pt")["colors"]
    assert torch.equal(a, torch.load(tmp_path / "part" / "volume.pt")["colors"])


def test_sigterm_exit_status_from_main(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit_module, "_load_data", lambda cfg, device, log: _data())
    _Renderer.signals_on_call = {2: (signal.SIGTERM,)}
    argv = ["--volume-size", str(V), "--n-pts-per-ray", "4", "--batch-size", "3", "--iters", "9"]
    code = fit_module.main([*argv, "--device", "cpu", "--out", str(tmp_path / "r")])
    assert code == 128 + signal.SIGTERM
    captured = capsys.readouterr()
    assert "interrupted (SIGTERM) after iteration 2; continue with" in captured.out
    assert captured.err.strip().splitlines()[-1] == "voxrender-fit: interrupted (SIGTERM)"


def test_second_ctrl_c_stops_at_once_and_points_at_the_last_checkpoint(tmp_path, capsys):
    data = _data()
    _Renderer.signals_on_call = {6: (signal.SIGINT, signal.SIGINT)}  # in iteration 5
    lines = []
    with pytest.raises(fit_module.Interrupted) as e:
        fit_module.run(_cfg(tmp_path / "run"), data=data, log=lines.append)
    assert e.value.signum == signal.SIGINT
    # the first signal's notice, at once, on stderr
    assert (
        "SIGINT: finishing this iteration, then saving a checkpoint (Ctrl-C again to stop at "
        "once; --resume continues from the last checkpoint)" in capsys.readouterr().err
    )
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["iteration"] == 4
    assert lines[-1] == (
        "stopped during iteration 6; the checkpoint at iteration 4 is kept; continue with: "
        f"voxrender-fit --resume --out {tmp_path / 'run'}"
    )
    resumed = fit_module.run(_cfg(tmp_path / "run", resume=True), data=data, log=None)
    assert resumed["completed"] and len(resumed["color_err"]) == 9


def test_second_ctrl_c_before_any_checkpoint(tmp_path):
    _Renderer.signals_on_call = {1: (signal.SIGINT, signal.SIGINT)}
    lines = []
    with pytest.raises(KeyboardInterrupt):
        fit_module.run(_cfg(tmp_path / "run"), data=_data(), log=lines.append)
    assert lines[-1] == "stopped during iteration 1; no checkpoint was written yet"


def test_plain_progress_lines_without_a_bar(tmp_path, monkeypatch, capsys):
    fit_module.run(_cfg(tmp_path / "a"), data=_data(), log=None)  # default interval: just the end
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fit: iteration 9/9, color_err ")
    monkeypatch.setattr(fit_module, "PLAIN_PROGRESS_EVERY_S", 0.0)
    fit_module.run(_cfg(tmp_path / "b"), data=_data(), log=None)
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(",")[0] for line in err] == [f"fit: iteration {k}/9" for k in range(1, 10)]
    assert err[0].endswith(" s left") and " it/s, " in err[0]
    fit_module.run(_cfg(tmp_path / "c", progress_bar=True), data=_data(), log=None)
    assert "fit: iteration" not in capsys.readouterr().err  # the bar instead


def test_final_progress_panel(tmp_path):
    fit_module.run(_cfg(tmp_path / "run", progress_every=4, iters=7), data=_data(), log=None)
    names = sorted(p.name for p in (tmp_path / "run").glob("progress_*.png"))
    assert names == ["progress_0000.png", "progress_0004.png", "progress_0006.png"]

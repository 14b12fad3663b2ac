"""Data-parallel fitting on ``torch.distributed``: process group, sharding, collectives.

``voxrender-fit`` runs unchanged under ``torchrun`` (``--nproc-per-node N``, and the multi-node
flags): the process group is joined through ``env://`` (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, all set by ``torchrun``), with NCCL on CUDA
(one GPU per process, ``cuda:LOCAL_RANK``) and gloo on the CPU. Without ``WORLD_SIZE > 1`` the
fit is the single-process one and nothing here talks to another process.

Every step, every rank draws the same global batch (same seed, same generator) and renders its
contiguous share of it (:meth:`Dist.shard`); the gradients are summed across ranks
(:meth:`Dist.all_reduce_`), so the optimiser steps identically everywhere. Only rank 0 writes
files. A collective that fails (a peer died, or stopped answering for ``--dist-timeout``
seconds) raises :class:`PeerLost`, which the command line prints as one line (exit status 3).
"""

from __future__ import annotations

import datetime
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

from .config import FitConfig
from .errors import FitError

__all__ = ["DEFAULT_TIMEOUT_S", "TEST_DIE_AT_ENV", "Dist", "PeerLost", "env_rank", "host"]

DEFAULT_TIMEOUT_S = FitConfig().dist_timeout  # how long a collective waits for a silent peer
# Test hook: "RANK:ITERATION" makes that rank exit (status 1, no cleanup) when it starts that
# iteration, as a crashed process would. Only the tests set it.
TEST_DIE_AT_ENV = "VOXRENDER_FIT_TEST_DIE_AT"

T = TypeVar("T")


class PeerLost(Exception):
    """Another process of the run died or stopped answering; the message says what failed."""


def env_rank() -> int:
    """This process's rank from ``torchrun``'s ``RANK`` (0 when unset or not a number)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise FitError(f"{name}: expected an integer (set by torchrun), got {value!r}") from None


def _cause(e: BaseException) -> str:
    """The first line of an exception, shortened: gloo and NCCL messages run long."""
    text = (str(e).strip().splitlines() or [""])[0]
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", text)  # gloo's source location
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class Dist:
    """This process's place in the run; the default is a single process (no group).

    Attributes:
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: number of processes fitting together.
        local_rank: rank on this machine (picks the GPU).
        device: the device this process fits on.
        backend: ``"nccl"``, ``"gloo"``, or ``None`` for a single process.
        owns_group: whether :meth:`close` should destroy the process group (it was created here).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes files and shows progress."""
        return self.rank == 0

    @property
    def label(self) -> str:
        """``"rank R of N"``, for messages."""
        return f"rank {self.rank} of {self.world_size}"

    @classmethod
    def from_env(cls, device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Dist:
        """Join the process group ``torchrun`` describes in the environment, if any.

        Args:
            device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (``--device``): CUDA means NCCL and
                ``cuda:LOCAL_RANK``; the CPU means gloo.
            timeout_s: seconds a collective (and joining) may wait for the other processes.

        Returns:
            A single-process :class:`Dist` when ``WORLD_SIZE`` is unset or 1; else this rank's.

        Raises:
            FitError: bad ``torchrun`` variables, or CUDA asked for but unusable.
            PeerLost: the other processes did not join within ``timeout_s``.
        """
        world = _env_int("WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
        if not 0 <= rank < world:
            raise FitError(f"RANK: expected an integer in [0, {world}), got {rank}")
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            count = torch.cuda.device_count()
            if count == 0:
                raise FitError(
                    f"--device {device}: CUDA is not available to torch {torch.__version__} "
                    "here; use --device cpu"
                )
            if local_rank >= count:
                raise FitError(
                    f"LOCAL_RANK: expected less than the {count} visible GPU(s) (one process per "
                    f"GPU: --nproc-per-node {count} at most), got {local_rank}"
                )
            dev, backend = torch.device("cuda", local_rank), "nccl"
            torch.cuda.set_device(dev)
        else:
            dev, backend = torch.device("cpu"), "gloo"
        if tdist.is_initialized():  # a caller set the group up already: use it, leave it
            return cls(rank, world, local_rank, dev, tdist.get_backend(), owns_group=False)
        try:
            tdist.init_process_group(
                backend,
                init_method="env://",
                rank=rank,
                world_size=world,
                timeout=datetime.timedelta(seconds=timeout_s),
            )
        except (RuntimeError, ValueError) as e:  # includes DistStoreError (timeout joining)
            raise PeerLost(
                f"rank {rank} of {world}: could not join the process group within "
                f"--dist-timeout {timeout_s:g} s ({_cause(e)})"
            ) from None
        return cls(rank, world, local_rank, dev, backend, owns_group=True)

    def close(self) -> None:
        """Leave the process group if this object created it."""
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()
            self.owns_group = False

    # ---- collectives: every one turns a backend failure into PeerLost ------------------

    def _collective(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RuntimeError as e:  # DistBackendError, gloo's "Connection closed by peer", ...
            raise PeerLost(
                f"{self.label}: lost contact with another process in {what} ({_cause(e)})"
            ) from None

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch ``index (B,)``.

        ``torch.tensor_split``: the first ``B % N`` ranks take one view more; rank 0 always holds
        the batch's first view (the one the progress panels show). A rank may get none when
        ``B < N``; it then contributes zero gradients.
        """
        if not self.enabled:
            return index
        return torch.tensor_split(index, self.world_size)[self.rank]

    def all_reduce_(
        self, tensors: Sequence[torch.Tensor], what: str = "the gradient all-reduce"
    ) -> None:
        """Sum each tensor across ranks, in place (a no-op for a single process)."""
        if not self.enabled:
            return

        def reduce() -> None:
            for t in tensors:
                tdist.all_reduce(t, op=tdist.ReduceOp.SUM)

        self._collective(what, reduce)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (picklable), in rank order, on rank 0; ``None`` elsewhere."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        self._collective("gathering results", lambda: tdist.gather_object(obj, out, dst=0))
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and hand its result (or its :class:`FitError`) to all ranks.

        For what only rank 0 should touch: the run folder, the checkpoint (other machines may
        not even see it).
        """
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except FitError as e:
                box[0] = ("error", str(e))
        self._collective("sharing rank 0's setup", lambda: tdist.broadcast_object_list(box, src=0))
        status, value = box[0]
        if status == "error":
            raise FitError(value)
        return value

    def on_every(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank; if it raised :class:`FitError` on any, raise it on all.

        Keeps a problem seen by one rank only (e.g. ``--data`` missing on one machine) from
        leaving the others waiting; the message names the rank when it is not rank 0.
        """
        if not self.enabled:
            return fn()
        error, value = None, None
        try:
            value = fn()
        except FitError as e:
            error = str(e)
        errors: list[Any] = [None] * self.world_size
        self._collective("checking the setup", lambda: tdist.all_gather_object(errors, error))
        for rank, message in enumerate(errors):
            if message is not None:
                raise FitError(message if rank == 0 else f"(rank {rank}) {message}")
        return value  # type: ignore[return-value]


def host() -> str:
    """This machine's name, for the per-rank timing table."""
    return socket.gethostname()

"""Several processes, on one machine or many, through PyTorch's own runtime (torch.distributed).

``torchrun`` (or any launcher speaking PyTorch's env:// protocol) starts every process with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Such a process joins the process group
(:func:`process_group`: gloo for CPU tensors, NCCL for CUDA ones), checks that it runs the same
configuration, images and checkpoint as rank 0 (:mod:`aekit.training.agreement`), trains with :func:`aekit.fit` (which
shards each batch and wraps the model in DistributedDataParallel, :class:`Distributed` being this
process's place in the job) and leaves the group at the end, also on an error. ``aekit train
--nproc N`` (:func:`launch`) starts N such processes on this machine with torchrun's
``--standalone`` rendezvous.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser, run

from ..errors import AekitError, ConfigError

BACKEND_ENV = "AEKIT_DIST_BACKEND"  # a torch.distributed backend to force (BACKENDS); unset: torch's choice
BACKENDS = ("gloo", "nccl", "mpi", "ucc")
DEFAULT_TIMEOUT = 300.0  # seconds to join the group, and the longest any one collective may wait

LEFT_KEY = "aekit/left"  # in the rendezvous store: how many processes other than rank 0 have left the group


@dataclass
class Distributed:
    """This process's place in a torch.distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> "Distributed":
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def sum(self, *values: torch.Tensor) -> list[torch.Tensor]:
        """All-reduce (sum) the values across processes; unchanged on one process."""
        if self.world == 1:
            return list(values)
        packed = torch.stack([v.reshape(()) for v in values])
        dist.all_reduce(packed)
        return list(packed.unbind())

    def agree(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on any (for decisions that depend on a clock)."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, t: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Every process's ``t`` (same shape), on the CPU, in rank order; [t] on one process."""
        if self.world == 1:
            return [t.cpu()]
        mine = t.to(device)  # NCCL gathers CUDA tensors only
        gathered = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        return [g.cpu() for g in gathered]


def launched() -> bool:
    """True in a process that a launcher (torchrun) started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


_JOINED: list[bool] = []  # [True] once this process joined a process group (process_group)


def joined() -> bool:
    """Whether this process joined a process group: after a failure it leaves at once (cli.main), since torch's
    threads torn down at exit can race a lost peer's sockets (a native abort, "terminate called ...")."""
    return bool(_JOINED)


@contextmanager
def process_group(timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Join the torch.distributed process group from the launcher's environment; leave it on exit.

    ``timeout`` (seconds) bounds the wait for the rendezvous and for every collective afterwards,
    so an error on one process ends the others instead of leaving them waiting forever.
    """
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        endpoint = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    except KeyError as e:
        raise ConfigError(f"WORLD_SIZE is set but {e.args[0]} is not: start the processes with torchrun") from None
    except ValueError:
        raise ConfigError("RANK and WORLD_SIZE must be integers (start the processes with torchrun)") from None
    if torch.cuda.is_available():  # each process on its own GPU of the machine (shared when there are fewer)
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    backend = os.environ.get(BACKEND_ENV) or None
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"{BACKEND_ENV}={backend}: not a torch.distributed backend ({', '.join(BACKENDS)}); "
                          "unset it for torch's own choice")
    deadline = time.monotonic() + timeout
    if rank != 0 and not _reachable(os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"], deadline):
        raise AekitError(
            f"rank {rank} of {world}: nothing answered at {endpoint} within {timeout:g} s "
            "(is rank 0 running there, and reachable from here? dist_timeout sets the wait)", keys="dist_timeout",
        )
    try:
        # no backend named: gloo for CPU tensors, plus NCCL for CUDA tensors when CUDA is present.
        # AEKIT_DIST_BACKEND=gloo forces gloo (NCCL refuses two processes on one GPU).
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
        _JOINED.append(True)
    except (RuntimeError, TimeoutError, ValueError) as e:  # DistNetworkError, DistStoreError, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        forced = f" (with {BACKEND_ENV}={backend})" if backend else ""
        raise AekitError(f"rank {rank} of {world}: could not join the process group at {endpoint}{forced}: {reason}") from None
    try:
        yield
    except KeyboardInterrupt:  # every process and the launcher are stopping: tearing the group down races their
        raise                  # exits (a native abort, "terminate called ..."); the caller exits at once instead
    except BaseException:
        dist.destroy_process_group()  # no barrier: the others may never reach one
        raise
    _leave_together(rank, world, timeout)


def _leave_together(rank: int, world: int, timeout: float) -> None:
    """Leave the group after every process has finished, and keep the process that serves the
    rendezvous store (rank 0 when started by hand) alive until the others have left it: a process
    whose store or peers vanish while it tears down its own half aborts (std::terminate)."""
    store = dist.distributed_c10d._get_default_store()
    try:
        dist.barrier()
    except (RuntimeError, TimeoutError):  # DistError, a closed connection: a peer failed after its last step
        dist.destroy_process_group()
        raise AekitError(f"rank {rank} of {world}: another process stopped before the end of the run "
                         "(its own message says why)") from None
    dist.destroy_process_group()
    try:
        if rank != 0:
            store.add(LEFT_KEY, 1)
            return
        deadline = time.monotonic() + min(timeout, 30.0)
        while store.add(LEFT_KEY, 0) < world - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    except (RuntimeError, TimeoutError):  # the store went first (torchrun's agent serves it): nothing to wait for
        pass


def _reachable(host: str, port: str, deadline: float) -> bool:
    """Whether a TCP connection to host:port opens before ``deadline`` (time.monotonic), retrying;
    checked before torch tries, whose timeouts print pages of C++ logs."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            socket.create_connection((host, int(port)), timeout=min(left, 2.0)).close()
            return True
        except OSError:
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        except ValueError:
            raise ConfigError(f"MASTER_PORT {port!r} is not a port number") from None


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``aekit ARGV`` (without --nproc) on ``nproc`` processes of this machine, as
    ``torchrun --standalone --nproc-per-node NPROC -m aekit ARGV`` does; each process uses one CPU
    thread unless --threads or OMP_NUM_THREADS says otherwise. Returns the exit status of the first
    process that failed (it printed its own error), else 0; Ctrl-C stops them all (KeyboardInterrupt, so
    130), another signal to this launcher too (128 + the signal's number, said in one line)."""
    if nproc < 1:
        raise ConfigError(f"nproc must be at least 1, got {nproc}", keys="nproc")
    args = get_args_parser().parse_args(
        ["--standalone", "--nproc-per-node", str(nproc), "--module", "aekit", *without_nproc(argv)]
    )
    saved = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "USE_LIBUV")}
    for name in ["torch.distributed.elastic", *logging.root.manager.loggerDict]:  # each process says why it failed
        if name.startswith("torch.distributed.elastic"):  # (torch sets the level of some of them itself)
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (torchrun would set it too, with a warning)
    if sys.platform == "win32":  # torch's Windows wheels have no libuv, which torchrun's store asks for (torch >= 2.4)
        os.environ.setdefault("USE_LIBUV", "0")
    try:
        run(args)
    except SignalException as e:  # Ctrl-C (or a kill) of this launcher: the processes were stopped
        if e.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        print(f"aekit: stopped by {signal.Signals(e.sigval).name}, and its {nproc} processes with it", file=sys.stderr)
        return 128 + e.sigval  # as a shell reports a process a signal ended
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode > 0:
            return failure.exitcode
        raise AekitError(f"process {rank} of {nproc} was killed ({failure.signal_name()})") from None
    finally:
        for name in (name for name, value in saved.items() if value is None):
            os.environ.pop(name, None)
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its --nproc option (and value), in any spelling argparse accepts."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = token.partition("=")
        if len(name) >= 4 and "--nproc".startswith(name):  # argparse takes unique prefixes: --np, --npro
            skip = not eq
            continue
        out.append(token)
    return out

"""What the processes of a torch.distributed job must agree on, and one line for the job when they do not.

Every process runs rank 0's configuration (:func:`check_same_config`), trains on rank 0's images and resumes from
rank 0's checkpoint (:func:`check_same_inputs`: on several machines, the same files); a user error while one
process sets up stops every process with that line (:func:`on_every_process`), and a process that has gone is
said so (:func:`lost_peer`) instead of a transport's own message. An error raised alike on every process is
printed by rank 0 alone (:func:`said_by_rank_0`).
"""

from __future__ import annotations

import hashlib
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from ..data import ImageData
from ..errors import AekitError, ConfigError, DataError
from .distributed import Distributed

T = TypeVar("T")
PER_PROCESS = ("train.threads", "data.data_home")  # settings that may differ between processes (machines)
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out waiting",
             "Socket Timeout", "NCCL communicator was aborted")  # what gloo and NCCL say when a process has gone


def lost_peer(e: BaseException) -> bool:
    """Whether ``e``, raised by a collective of several processes, says that another process has gone."""
    return Distributed.current().world > 1 and isinstance(e, RuntimeError) and any(s in str(e) for s in PEER_GONE)


def said_by_rank_0(e: AekitError) -> AekitError:
    """``e``, raised on every process alike: the CLI prints it on rank 0 only (one line for the job)."""
    e.quiet = Distributed.current().rank != 0
    return e


def _gather(obj) -> list:
    """Every process's ``obj``, in rank order; a process that has gone is a one-line error."""
    d = Distributed.current()
    every: list = [None] * d.world
    try:
        dist.all_gather_object(every, obj)
    except RuntimeError as e:
        if not lost_peer(e):
            raise
        raise AekitError(f"rank {d.rank} of {d.world}: another process stopped before training began (its own "
                         "output says why)") from None
    return every


def on_every_process(step: Callable[[], T]) -> T:
    """``step()`` on every process; when it fails on one (an AekitError), every process fails with that one line,
    naming the rank, instead of the others waiting at the next collective for a process that has gone."""
    d = Distributed.current()
    if d.world == 1:
        return step()
    result, failure = None, None
    try:
        result = step()
    except AekitError as e:
        failure = e
    every = _gather(None if failure is None else (str(failure), failure.keys))
    if failure is not None:
        raise failure
    for rank, failed in enumerate(every):
        if failed is not None:
            raise said_by_rank_0(AekitError(f"rank {rank} of {d.world}: {failed[0]}", keys=failed[1]))
    return result


def check_same_config(config_dict: dict) -> None:
    """Every process must run rank 0's configuration (except :data:`PER_PROCESS` settings); the
    first that does not is a ConfigError naming the setting and the rank, raised on every process."""
    d = Distributed.current()
    if d.world == 1:
        return
    every = _gather({k: v for k, v in config_dict.items() if k not in PER_PROCESS})
    first = every[0]
    for rank, other in enumerate(every[1:], start=1):
        for key in [*first, *(k for k in other if k not in first)]:
            if first.get(key) != other.get(key):
                raise said_by_rank_0(ConfigError(
                    f"the processes run different configurations: {key} is {first.get(key)!r} on rank 0 "
                    f"but {other.get(key)!r} on rank {rank} (start every process with the same command)"
                ))


def digest(*tensors: torch.Tensor, names=()) -> str:
    """A SHA-256 of the tensors' values (and of ``names``, for images streamed from files)."""
    h = hashlib.sha256("\n".join(map(str, names)).encode("utf-8", "surrogateescape"))
    for t in tensors:
        h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()


def check_same_inputs(data: ImageData, state: dict | None) -> None:
    """Every process must train on rank 0's images (``data``; digests of their values, or of the names of files
    streamed, and of their labels) and resume from rank 0's checkpoint (``state``: its epoch and weights): else one line on every process."""
    d = Distributed.current()
    if d.world == 1:
        return
    streamed = not isinstance(data.images, torch.Tensor)
    labels = () if data.labels is None else (torch.as_tensor(data.labels),)  # they decide a split by subject
    images = {"source": str(data.source),
              "digest": digest(*labels, names=data.names) if streamed else digest(data.images, *labels)}
    checkpoint = state and (int(state["epoch"]), digest(*state["model"].values()))
    every = _gather((images, checkpoint))
    shared = "(on several machines: the same files, e.g. on a shared file system)"
    for rank, (other, ck) in enumerate(every[1:], start=1):
        if other != every[0][0]:
            raise said_by_rank_0(DataError(f"rank {rank} of {d.world} read other images than rank 0 from "
                                           f"{other['source']}: every process must train on the same images {shared}"))
        if ck != every[0][1]:
            epochs = f"epoch {ck[0] if ck else None} there, epoch {every[0][1][0] if every[0][1] else None} on rank 0"
            raise said_by_rank_0(AekitError(f"rank {rank} of {d.world} resumes from another checkpoint than rank 0 "
                                            f"({epochs}): every process must read the same run folder {shared}"))

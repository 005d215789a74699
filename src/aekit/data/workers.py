"""DataLoader worker processes, and the shared memory they hand their batches over in.

A worker process puts each batch it decodes into a file of shared memory (``/dev/shm`` on Linux) for
this process to map. Where that memory is short (a container's /dev/shm is 64 MiB by default) or the
file size limit is low (``ulimit -f``), a worker cannot make that file. :func:`load_batches` never
lets that hang or stop a command: it checks the room before starting the workers, and loads in this
process instead when there is too little; a worker that fails anyway hands over to this process,
which loads the batches that are left. Either way it says so in one line on stderr, the first time
in a process, and sets ``workers`` to 0 on the dataset, so that its following passes start none.

Under the spawn and forkserver start methods (macOS, Windows; Linux from Python 3.14) a worker process starts
by importing the main script again: a script that calls aekit at its top level, without
``if __name__ == "__main__":``, would run again in every worker. There aekit stops the worker at once, silently
(:func:`leave_if_reimported`), and the script's own process says why in one line.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import sys
from functools import partial
from typing import Callable, Iterator, Sequence

import torch

try:
    import resource
except ImportError:  # Windows: no file size limit
    resource = None

from ..errors import DataError, note
from .image_file import noted_large, take_as_noted

SHARED_MEMORY = "/dev/shm"  # where torch puts the batches that worker processes hand over (Linux)
PREFETCH = 2  # batches in flight per worker (DataLoader's prefetch_factor)
LOCKS_BYTES = 1 << 18  # room the DataLoader's locks and queues take in shared memory (a page per semaphore)
_said = False  # whether this process has said that it loads images itself

_FAILURES = ("shared memory", "(shm)", "</torch_", "Bus error")  # how torch says a worker lacked shared memory


def load_batches(
    dataset: torch.utils.data.Dataset,
    batches: Sequence[Sequence[int]],
    collate: Callable[[list], object],
    *,
    batch_bytes: int,
) -> Iterator:
    """``collate([dataset[i] for i in index])`` for each index of ``batches``, in order, decoded by
    ``dataset.workers`` worker processes (``batch_bytes``: the largest batch's tensors); in this
    process when shared memory has no room for them (see the module's docstring). A DataError raised
    in a worker comes back as its one line."""
    workers = getattr(dataset, "workers", 0)
    if workers:
        leave_if_reimported()
    if workers and batch_bytes:
        problem = shared_memory_problem(workers, batch_bytes)
        if problem:
            _fall_back(dataset, f"{problem}; loading the images in this process")
            workers = 0
    done, loader = 0, None
    while workers:
        try:
            if loader is None:
                loader = iter(torch.utils.data.DataLoader(  # its own generator: torch's global one is the model's
                    dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate, prefetch_factor=PREFETCH,
                    generator=torch.Generator().manual_seed(0),  # (a VAE's draws): a loader took a number from it
                    worker_init_fn=partial(take_as_noted, noted_large())))  # the large files said: not again
            batch = next(loader)
        except StopIteration:
            return
        except DataError as e:  # from a worker, torch wraps the message in the worker's traceback
            raise DataError(_last_line(e).split("DataError: ", 1)[-1]) from None
        except (RuntimeError, OSError) as e:
            if not done and _reimported(e):
                raise DataError(REIMPORTED.format(workers=workers), keys="data.workers") from None
            if not _short_of_shared_memory(e):
                raise
            _forget(e)  # and with it the workers
            loader = None
            _fall_back(dataset, f"worker processes could not start or hand over their images ({_last_line(e)}); "
                                f"loading {'the rest' if done else 'them'} in this process")
            break
        yield batch
        done += 1
    for index in batches[done:]:
        yield collate([dataset[i] for i in index])


REIMPORTED = ("the worker processes that decode the images (data.workers {workers}) exited as they started: they "
              "import the main script again (the spawn start method: macOS, Windows, Linux from Python 3.14), so a "
              "script must call aekit under `if __name__ == \"__main__\":`; or set data.workers 0 to decode them in "
              "this process")


def leave_if_reimported() -> None:
    """Exit at once, silently, in a process that spawn or forkserver started, while it imports the main script
    again (multiprocessing's bootstrapping): the script calls aekit at its top level, and would run again (train,
    list and read every image, take the run's lock ...). The process that started it says so (:data:`REIMPORTED`)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(1)


def _reimported(e: Exception) -> bool:
    """Whether ``e`` says that worker processes, started by spawn or forkserver, died before their first batch."""
    return "exited unexpectedly" in str(e) and multiprocessing.get_start_method() != "fork"


def worker_count(workers: int | None) -> int:
    """The worker processes of ``data.workers``: None is one per CPU core, at most 4."""
    return min(4, os.cpu_count() or 1) if workers is None else workers


def shared_memory_problem(workers: int, batch_bytes: int) -> str:
    """Why ``workers`` worker processes cannot hand over batches of ``batch_bytes`` (the file size
    limit, or the free room in shared memory), or "" when they can."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
    if limit != getattr(resource, "RLIM_INFINITY", -1) and limit < batch_bytes:
        return f"the file size limit (ulimit -f) of {_size(limit)} is below a batch of images ({_size(batch_bytes)})"
    if not hasattr(os, "statvfs"):  # Windows: torch shares memory some other way
        return ""
    try:
        stat = os.statvfs(SHARED_MEMORY)
    except OSError:  # none there (not Linux): torch shares memory some other way
        return ""
    free, need = stat.f_bavail * stat.f_frsize, workers * PREFETCH * batch_bytes + LOCKS_BYTES
    if free < need:
        return (f"{SHARED_MEMORY} has {_size(free)} free, less than the {_size(need)} that {workers} worker "
                "processes hand over at once")
    return ""


def _short_of_shared_memory(e: Exception) -> bool:
    """Whether ``e`` says that shared memory (or the file size limit) stopped the workers: torch's
    message from a worker, or this process's failure to make the workers' locks (in /dev/shm too)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM)
    return any(f in str(e) for f in _FAILURES)


def _forget(e: Exception) -> None:
    """Drop ``e``'s traceback, and the DataLoader iterator its frames hold: one whose start failed
    complains (``Exception ignored in ... __del__``) as it goes, and is silenced."""
    hook, sys.unraisablehook = sys.unraisablehook, lambda _: None
    try:
        e.__traceback__ = None
    finally:
        sys.unraisablehook = hook


def _fall_back(dataset, why: str) -> None:
    """No more worker processes for ``dataset``, said in one line on stderr (the first time)."""
    global _said
    dataset.workers = 0
    if not _said:
        note(f"{why} (data.workers 0 does so from the start)")
        _said = True


def _last_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[-1].strip() if lines else type(e).__name__


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"

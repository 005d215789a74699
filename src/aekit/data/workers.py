"""DataLoader worker processes, and the shared memory they hand their batches over in.

A worker process puts each batch it decodes into a file of shared memory (``/dev/shm`` on Linux) for
this process to map. Where that memory is short (a container's /dev/shm is 64 MiB by default) or the
file size limit is low (``ulimit -f``), a worker cannot make that file. :func:`load_batches` never
lets that hang or stop a command: it checks the room before starting the workers, and loads in this
process instead when there is too little; a worker that fails anyway hands over to this process,
which loads the batches that are left. Either way it says so in one line on stderr, the first time
in a process, and sets ``workers`` to 0 on the dataset, so that its following passes start none.

Each pass starts its own worker processes, except inside :func:`kept_workers` (training's epochs): there a
dataset's workers stay from one pass to the next, the batches of each pass handed to them as it starts.
Under spawn or forkserver a worker's start imports torch and aekit again, seconds of CPU per worker,
once per pass and epoch without it.

Under the spawn and forkserver start methods (macOS, Windows; Linux from Python 3.14) a worker process starts
by importing the main script again: a script that calls aekit at its top level, without
``if __name__ == "__main__":``, would run again in every worker. There aekit stops the worker at once, silently
(:func:`leave_if_reimported`), and the script's own process says why in one line.
"""

from __future__ import annotations

import contextlib
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
    kept = _KEPT.get(id(dataset))
    if kept is not None and (kept.busy or kept.dataset is not dataset):
        kept = None  # a second pass over it at the same time: workers of its own
    done, loader = 0, None
    try:
        while workers:
            try:
                if loader is None:
                    loader = _start(dataset, batches, collate, workers, kept)
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
                if kept is not None:
                    kept.stop()
                _fall_back(dataset, f"worker processes could not start or hand over their images ({_last_line(e)}); "
                                    f"loading {'the rest' if done else 'them'} in this process")
                break
            yield batch
            done += 1
        for index in batches[done:]:
            yield collate([dataset[i] for i in index])
    finally:
        if kept is not None:
            kept.busy = False


def _start(dataset, batches: Sequence[Sequence[int]], collate, workers: int, kept: "_Kept | None") -> Iterator:
    """An iterator over ``batches`` of ``dataset`` decoded by ``workers`` worker processes: new ones, or
    ``kept``'s, which stay for the next pass."""
    if kept is not None and (kept.loader is None or kept.loader.collate_fn is not collate
                             or kept.loader.num_workers != workers):
        kept.stop()
        kept.loader = _loader(dataset, kept.passes, collate, workers, persistent=True)
    if kept is None:
        return iter(_loader(dataset, batches, collate, workers, persistent=False))
    kept.passes.batches, kept.busy = batches, True  # read by the iterator as the pass starts
    return iter(kept.loader)


def _loader(dataset, batch_sampler, collate, workers: int, *, persistent: bool) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(  # its own generator: torch's global one is the model's (a VAE's draws)
        dataset, batch_sampler=batch_sampler, num_workers=workers, collate_fn=collate, prefetch_factor=PREFETCH,
        persistent_workers=persistent, generator=torch.Generator().manual_seed(0),  # a loader takes a number from it
        worker_init_fn=partial(take_as_noted, noted_large()))  # the large files said: not again


class _Passes:
    """The batch sampler of a kept loader: the batches of the pass it is on (set as the pass starts)."""

    def __init__(self):
        self.batches: Sequence[Sequence[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Kept:
    """A dataset's loader whose worker processes stay between its passes, inside :func:`kept_workers`."""

    def __init__(self, dataset):
        self.dataset, self.passes, self.loader, self.busy = dataset, _Passes(), None, False

    def stop(self) -> None:
        """Its worker processes shut down now, not when the garbage collector gets to them."""
        iterator, self.loader = getattr(self.loader, "_iterator", None), None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


_KEPT: dict[int, _Kept] = {}  # id(dataset): its kept loader, inside kept_workers


@contextlib.contextmanager
def kept_workers(*datasets) -> Iterator[None]:
    """Inside the block, the worker processes that :func:`load_batches` starts for each of ``datasets`` (those
    that are not tensors, nor None) stay from one pass over it to the next; they stop at the block's end."""
    mine = list({id(d): d for d in datasets if d is not None and not isinstance(d, torch.Tensor)
                 and id(d) not in _KEPT}.values())  # one dataset given twice is kept once
    for d in mine:
        _KEPT[id(d)] = _Kept(d)
    try:
        yield
    finally:
        for d in mine:
            _KEPT.pop(id(d)).stop()


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
    """The worker processes of ``data.workers``: None is one per CPU core, at most 4; a number at most four per core
    (more would only take memory: a run folder from elsewhere may ask for hundreds)."""
    cores = os.cpu_count() or 1
    return min(4, cores) if workers is None else min(workers, 4 * cores)


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

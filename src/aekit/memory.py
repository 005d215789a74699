"""How much memory this process may still take, and allocation failures as one line.

Sizes an input declares (an array's shape in its header, a model's widths in model.json) are checked against
:func:`available` before anything is allocated: a small file cannot make aekit fill the machine's memory.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from .errors import AekitError

try:
    import resource  # POSIX only
except ImportError:
    resource = None

ALLOCATION = ("std::bad_alloc", "DefaultCPUAllocator", "can't allocate memory", "you tried to allocate",
              "out of memory")


CGROUP = "/sys/fs/cgroup"  # Linux control groups: a container's memory limit


def available() -> int | None:
    """Bytes this process may still allocate (None: unknown): the system's available memory (Linux's
    MemAvailable, else the physical memory), and no more than a container's memory limit (cgroup v2 or v1) or an
    address-space limit (``ulimit -v``) leaves."""
    free = _meminfo("MemAvailable")
    if free is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if (room := _cgroup_room()) is not None:
        free = room if free is None else min(free, room)
    if resource is None:
        return free
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        used = _meminfo("VmSize", "/proc/self/status") or 0
        free = max(0, limit - used) if free is None else min(free, max(0, limit - used))
    return free


def _cgroup_room() -> int | None:
    """What this process's control group's memory limit leaves (its limit less its use), or None without one."""
    for limit, used in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            with open(os.path.join(CGROUP, limit), encoding="ascii") as f:
                text = f.read().strip()
            with open(os.path.join(CGROUP, used), encoding="ascii") as f:
                use = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" (v2) or a huge number (v1): no limit
            return max(0, int(text) - use)
        return None
    return None


def _meminfo(key: str, path: str = "/proc/meminfo") -> int | None:
    """A value (in bytes) of a /proc file's "Key: N kB" lines, or None."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n: float) -> str:
    """``n`` bytes in words: "3.7 GiB", "120.0 MiB", "128 bytes"."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def too_much(need: int) -> str | None:
    """", more than the N GiB of memory available" when ``need`` bytes exceed :func:`available`, else None."""
    free = available()
    return None if free is None or need <= free else f", more than the {gib(free)} of memory available"


def is_allocation_failure(e: BaseException) -> bool:
    """Whether ``e`` says that memory ran out (a MemoryError, or torch's allocator's RuntimeError)."""
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(s in str(e) for s in ALLOCATION))


@contextlib.contextmanager
def allocation_as(describe: Callable[[], str], error: type[AekitError] = AekitError, keys=()) -> Iterator[None]:
    """Run the body; an allocation failure in it becomes ``error(describe())``: one line naming what was large."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not is_allocation_failure(e):
            raise
        raise error(describe(), keys=keys) from None

"""Atomic file writes: a temporary file beside the target, then one ``os.replace``.

Every file aekit writes goes through here, so a kill at any moment leaves either the old file or
the new one, never half of one; a write that fails (a full disk, a folder that cannot be written, a
file size limit) is one :class:`WriteError` naming the file that was to be written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .errors import AekitError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so commands on one run are not kept apart there
    fcntl = None


class WriteError(AekitError):
    """A file could not be written: the message names it, the reason and what to do."""


_FIXES = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "the file size limit (ulimit -f) is too small for it",
    errno.EACCES: "the folder is not writable: give another or change its permissions",
    errno.EPERM: "the folder is not writable: give another or change its permissions",
    errno.EROFS: "the folder is on a read-only file system: give another",
}


def write_failed(path: str | Path, e: OSError) -> WriteError:
    """The one-line error for ``e``, raised while writing ``path`` (not the temporary file beside it)."""
    reason = e.strerror or str(e) or type(e).__name__
    fix = (_in_use(Path(path)) if e.errno in (errno.EACCES, errno.EPERM) else None) or _FIXES.get(e.errno)
    return WriteError(f"cannot write {path}: {reason}{f' ({fix})' if fix else ''}")


def _in_use(path: Path) -> str | None:
    """Why ``path``, there already in a folder that can be written, was not replaced: on Windows, another program
    holds it open (a spreadsheet showing history.csv), or a file in it, or has it as its current folder."""
    if not path.exists() or not os.access(path.parent, os.W_OK | os.X_OK):
        return None
    if path.is_dir():
        return "another program holds a file in it open, or a shell is in it: close them"
    return "another program holds it open, or it is read-only: close it, or make it writable"


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError in the block, which writes ``path``, into :func:`write_failed`'s error."""
    try:
        yield
    except OSError as e:
        raise write_failed(path, e) from e


def user_path(path: str | os.PathLike) -> str:
    """A path a user gave, with a leading ``~`` (or ``~user``) as that home folder: a shell expands it only at the start
    of a word (not in ``--out=~/runs/x``), cmd.exe and Python never. Every path a user gives comes through here: the
    command line's path arguments (their type) and the library's entry points (RunFolder, so aekit.train's out and
    aekit.load; new_file, new_files; configs.find; a data source, data_home, init_from, a noise map)."""
    return os.path.expanduser(path)


def check_writable(folder: Path, key: str = "out") -> None:
    """Refuse, before any work, an output folder that this process may not write into."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(f"{key} {folder}: the folder is not writable (give another or change its permissions)",
                         keys=key)


_must_be_new: set[str] = set()  # outputs new_file/new_files found free (no overwrite): a write replaces none there


def _claim(paths: Iterable[Path], overwrite: bool) -> None:
    """Record that ``paths`` must still be free when they are written (not with ``overwrite``)."""
    names = {os.path.abspath(p) for p in paths}
    if overwrite:
        _must_be_new.difference_update(names)
    else:
        _must_be_new.update(names)


def new_file(path: str | Path, *, overwrite: bool, suffix: str | None = None, beside: tuple[str, ...] = ()) -> Path:
    """``path`` (an ``out`` option) checked before any work: not a folder, ending in ``suffix`` when given, in a
    folder that exists, and replacing no file (it, or the ones with the suffixes ``beside`` it) unless
    ``overwrite``. The errors name ``out``."""
    p = Path(user_path(path))
    if p.is_dir():
        want = f"a file name ending in {suffix}" if suffix else "the file to write"
        raise AekitError(f"out {p}: is a folder; give {want}", keys="out")
    if suffix and p.suffix.lower() != suffix:
        raise AekitError(f"out {p}: this command writes {suffix} files; give a name ending in {suffix}", keys="out")
    if not p.parent.is_dir():
        raise AekitError(f"out {p}: folder {p.parent} does not exist", keys="out")
    check_writable(p.parent)
    existing = [f for f in (p, *(p.with_suffix(s) for s in beside)) if f.exists()]
    if existing and not overwrite:
        which = "" if existing[0] == p else f"{existing[0]} "
        raise AekitError(f"out {p}: {which}already exists (add overwrite to replace it)", keys=("out", "overwrite"))
    _claim([p, *(p.with_suffix(s) for s in beside)], overwrite)  # another command may write there meanwhile
    return p


def new_files(folder: str | Path, paths: Iterable[Path], *, overwrite: bool,
              error: type[AekitError] = AekitError) -> Path:
    """The output folder ``folder`` (an ``out`` option) checked before any work: not a file, and none of
    ``paths`` (under it) there already unless ``overwrite``. The errors name ``out``; returns the folder (``~``
    expanded: write there)."""
    folder, paths = Path(user_path(folder)), [Path(user_path(p)) for p in paths]
    if folder.exists() and not folder.is_dir():
        raise error(f"out {folder}: exists and is not a folder", keys="out")
    existing = next((p for p in paths if p.exists()), None)
    if existing is not None and not overwrite:
        shown = existing.relative_to(folder) if existing.is_relative_to(folder) else existing
        raise error(f"out {folder}: {shown} already exists (add overwrite to replace it)", keys=("out", "overwrite"))
    if folder.is_dir():
        check_writable(folder)
    _claim(paths, overwrite)
    return folder


def file_key(path: str | Path) -> str:
    """``path`` as a key that two names of one file share where case does not count (macOS, Windows: A.png, a.png)."""
    return os.path.normcase(os.fspath(path)).casefold()


def clash(paths: Iterable[str | Path]) -> str | None:
    """The first of ``paths`` that an earlier one names too (:func:`file_key`), in words; None when they are apart."""
    first: dict[str, str] = {}
    for path in map(str, paths):
        earlier = first.get(key := file_key(path))
        if earlier == path:
            return path
        if earlier is not None:
            return f"{earlier} and {path} (one file where case does not count: macOS, Windows)"
        first[key] = path
    return None


def usual_mode(path: Path, mode: int = 0o666) -> None:
    """Give ``path`` the permissions a plain open() would (mkstemp and mkdtemp make it private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


TEMPORARY = (".aekit-", ".tmp")  # a temporary file's name: .aekit-XXXXXXXX.tmp, short whatever the target's (a name
# that is close to the file system's 255 bytes must fit), hidden, and swept by resume.clear_for_resume


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of ``paths``; when the block has written them all, each replaces
    its target (files that belong together, as codes and their names, change together or not at all)."""
    paths = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for path in paths:
            with writing(path):
                fd, tmp = tempfile.mkstemp(prefix=TEMPORARY[0], suffix=TEMPORARY[1], dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
        try:
            yield temps
        except OSError as e:  # a write to one of the temporary files (or to no file named) failed: name its target
            target = next((p for p, t in zip(paths, temps) if e.filename in (str(t), t)), None)
            if target is None and e.filename is not None:
                raise  # about another file (one the writer reads)
            raise write_failed(target or paths[0], e) from e
        placed: list[Path] = []  # files that were not there: taken away again if a later one cannot be placed
        try:
            for path, tmp in zip(paths, temps):
                with writing(path):
                    usual_mode(tmp)
                    if os.path.abspath(path) in _must_be_new:
                        _place_new(tmp, path)
                        placed.append(path)
                    else:
                        os.replace(tmp, path)
        except AekitError:
            for path in placed:
                path.unlink(missing_ok=True)
            raise
        _must_be_new.difference_update(os.path.abspath(p) for p in placed)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def _place_new(tmp: Path, path: Path) -> None:
    """``tmp`` as ``path``, which must not exist: a hard link fails where another command wrote one meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise AekitError(f"out {path}: another command wrote it while this one ran, and it is kept (add overwrite "
                         "to replace it)", keys=("out", "overwrite")) from None
    except OSError:  # a file system without hard links: as before, replaced
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write ``path`` with ``writer(tmp_path)`` (for libraries that write files themselves)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8; file names that are not UTF-8 (surrogate escapes) are written back as their bytes."""
    write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def write_bytes(path: str | Path, data: bytes) -> None:
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy_to(path: Path, array: np.ndarray) -> None:
    """``array`` as .npy at exactly ``path`` (np.save alone would add a suffix to a temporary name)."""
    with open(path, "wb") as f:
        np.save(f, array)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    write_with(path, lambda tmp: save_npy_to(tmp, array))


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None when it does not exist."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise AekitError(f"{path}: cannot read JSON ({e})") from None


class Busy(AekitError):
    """Another aekit command holds what this one would read or write."""


_NO_LOCKS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOLCK, errno.ENOSYS}  # flock where a file system has no locks
# (an SMB share on macOS, a virtual machine's shared folder)
_held: dict[str, int] = {}  # lock files this process holds (a run's lock, then its own end-of-run evaluation)


@contextlib.contextmanager
def lock_file(path: Path, *, shared: bool, busy: str) -> Iterator[None]:
    """Hold an advisory lock on the file ``path`` for the block: ``shared`` with other readers, else alone;
    a conflicting holder in another process (or another aekit command) is :class:`Busy` with the message
    ``busy``. Nothing is locked where the folder cannot be written (nothing could change there through
    aekit) or the system or file system has no locks; a lock this process holds already is held on."""
    key = os.path.abspath(path)
    if fcntl is None or key in _held:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)  # a link planted there: unlocked
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if isinstance(e, BlockingIOError):
            raise Busy(busy) from None
        if e.errno not in _NO_LOCKS:
            raise
        fd = None
    if fd is None:  # a file system without locks: the lock file is of no use there
        with contextlib.suppress(OSError):
            os.unlink(path)
        yield
        return
    _held[key] = fd
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):  # the last holder removes the file
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        os.close(fd)

"""Every cache the project writes, in one place: where it goes, what it is keyed by and how it is
checked when read.

A cache file lives in the cache directory (`metrics.cache_dir`; default `$XDG_CACHE_HOME/wgan`,
else `~/.cache/wgan`), never in the repository or a data folder. Its name comes from the
settings it answers (`key`: what was asked, e.g. a dataset's root, split and resolution); inside
it are those settings again, the fingerprint of the files it was computed from (`sources`:
their names, sizes and modification and change times) and a SHA-256 of its payload. A read
that finds other sources (images replaced under the same names), a payload that does not match
its checksum (flipped bytes) or a file that does not load (cut short) computes again, saying
why; a cache that cannot be written (a read-only or full disk) keeps the result in memory with a
warning. None of this stops a run.

Files are written atomically (a temporary name renamed into place), so the jobs of a study can
share one cache directory. An entry is computed by one process at a time (`computing_alone`): the
jobs of a study that start together wait for the first to save it and read it, rather than each
computing it (200 jobs of a SLURM array each computing the same 50,000 images' Inception
statistics). The lock is an flock on `<entry>.lock` beside it (removed after), which the kernel
releases when its holder dies however it dies, so a killed job never blocks the others; a
directory that cannot hold one computes without it: two jobs computing the same entry then both
write the same numbers.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

import torch

from wgan.files import atomic_save, first_sentence, try_flock
from wgan.signals import stop_point

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_POLL_SECONDS = 0.5  # how often a process waiting for another's entry tries the lock and checks for a stop

# How often each kind of entry (the `name` of `cached`) was computed rather than read in this
# process: what tests (and curious users) check to see that the cache is hit.
computed: Counter = Counter()


def directory(setting: Optional[str]) -> Path:
    """The directory `metrics.cache_dir` names; None: `$XDG_CACHE_HOME/wgan`, else `~/.cache/wgan`
    (an empty or relative XDG_CACHE_HOME is ignored, as the XDG specification says)."""
    if setting is not None:
        return Path(setting).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "wgan"


def digest(value: Any) -> str:
    """A SHA-256 of a JSON-able value, for keys and fingerprints."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_stats(root: Path, names: Iterable[str]) -> str:
    """The fingerprint of files below `root`: each name (relative to it) with its size and its
    modification and change times (a file replaced under the same name, even with its old mtime,
    changes it). A missing file is recorded as missing."""
    stats = []
    for name in names:
        try:
            stat = os.stat(os.path.join(root, name))
            stats.append([name, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns])
        except FileNotFoundError:
            stats.append([name, None])
    return digest(stats)


def folder_stats(folder: Path) -> str:
    """The fingerprint (`file_stats`) of every file below `folder`; an empty one if there is none."""
    names = [os.path.relpath(os.path.join(where, name), folder)
             for where, _, files in os.walk(folder) for name in files]
    return file_stats(folder, sorted(names))


def payload_checksum(payload: Any) -> str:
    """A SHA-256 of tensors (dtype, shape and bytes), numbers and strings, through dicts and lists,
    in key order: stored beside the payload, so that flipped bytes are found when it is read."""
    sha = hashlib.sha256()

    def add(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            sha.update(f"tensor {flat.dtype} {tuple(value.shape)}:".encode())
            sha.update(flat.view(torch.uint8).numpy())
        elif isinstance(value, dict):
            for k in sorted(value):
                sha.update(f"{k!r}=".encode())
                add(value[k])
        elif isinstance(value, (list, tuple)):
            sha.update(f"[{len(value)}]".encode())
            for item in value:
                add(item)
        else:
            sha.update(f"{type(value).__name__} {value!r};".encode())

    add(payload)
    return sha.hexdigest()


def cache_path(directory: Path, name: str, key: dict[str, Any]) -> Path:
    return Path(directory) / f"{name}-{digest(key)[:16]}.pt"


def cached(directory: Optional[Path], name: str, key: dict[str, Any], sources: str, compute: Callable[[], T]) -> T:
    """`compute()`'s result for `key` computed from `sources`, read from `directory` if an earlier
    computation saved it there and it checks out, else computed and saved (None: not cached).
    `name` starts the file's name (say what it holds); `compute` returns tensors, numbers and
    strings in dicts and lists, which load as data: a cache never runs pickled code."""
    if directory is None:
        return compute()
    path = cache_path(directory, name, key)
    with computing_alone(path):
        return read_or_compute(path, name, key, sources, compute)


@contextlib.contextmanager
def computing_alone(path: Path) -> Iterator[None]:
    """Hold the entry's lock (`<entry>.lock`) while it is read or computed."""
    lock = Path(f"{path}.lock")
    fd = locked(lock)
    try:
        yield
    finally:
        if fd is not None:
            # Removed while still held: a process that opened it meanwhile finds, once it holds it,
            # that it is no longer the file at that name, and locks the one there (`locked`).
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)  # releases the flock


def locked(lock: Path) -> Optional[int]:
    """A descriptor holding an flock on `lock`, once no other process holds it: the wait logs what
    it waits for and passes a stop point every LOCK_POLL_SECONDS. None where the directory cannot
    hold a lock (read-only, below a file, a filesystem without flock): the entry is computed
    without one."""
    waiting = False
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            return None
        try:
            held = try_flock(fd, fcntl.LOCK_EX)
        except OSError:  # ENOLCK, EOPNOTSUPP: no flock on this filesystem
            os.close(fd)
            return None
        if held and is_at(fd, lock):
            return fd
        os.close(fd)
        if not held:
            if not waiting:
                log.info("waiting for another process computing %s (it holds %s)", lock.stem, lock)
                waiting = True
            stop_point(f"waiting for another process computing {lock.stem}")
            time.sleep(LOCK_POLL_SECONDS)


def is_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not removed or replaced)."""
    try:
        there, mine = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def read_or_compute(path: Path, name: str, key: dict[str, Any], sources: str, compute: Callable[[], T]) -> T:
    saved = read(path) if path.exists() else None
    if saved is not None:
        if saved["key"] == digest(key) and saved["sources"] == sources:
            return saved["payload"]
        why = "its files changed since it was written" if saved["key"] == digest(key) else "it holds another key"
        log.info("cache %s: %s; computing it again", path, why)
    result = compute()
    computed[name] += 1
    try:
        atomic_save(path, {"key": digest(key), "sources": sources, "checksum": payload_checksum(result),
                           "payload": result})
        log.info("%s saved to %s", name, path)
    except OSError as error:  # a read-only or full disk, a file where the directory should be
        log.warning("could not write the cache %s (%s): kept in memory, computed again next time", path,
                    first_sentence(error))
    return result


def read(path: Path) -> Optional[dict[str, Any]]:
    """The entry saved at `path`, or None for one that does not load or whose payload does not
    match its checksum, reported as a warning naming the file."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # data only, never code
        if not isinstance(saved, dict) or set(saved) != {"key", "sources", "checksum", "payload"}:
            raise ValueError("not a cache entry of this project")
        if payload_checksum(saved["payload"]) != saved["checksum"]:
            raise ValueError("its contents do not match their checksum (corrupt)")
        return saved
    except Exception as error:  # cut short, flipped bytes, unreadable: torch raises several kinds
        log.warning("cache %s is damaged or unreadable (%s); computing it again", path, first_sentence(error))
        return None

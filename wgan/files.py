"""Everything a run leaves in its directory, written so that a kill at any moment loses nothing:

- `config.yaml`: the resolved config;
- `results.json`: the `Results` record: status (`Status`), iterations done, metrics, timing;
- `metrics.jsonl`: one JSON line per evaluation;
- `train.jsonl`: one JSON line per logged training step (`train.log_every`): the scalars a logger
  gets as `train/*` (critic loss, Wasserstein estimate, gradient norms, ...), with `elapsed`;
- `checkpoints/last.pt`: models, optimizers, RNG states and step (`previous.pt`: the one before);
- `samples/step_NNNNNN.png`: a figure per evaluation (`.txt` for text samples);
- `run.lock`: held by the one process that trains in the directory, and naming it.

Files that are replaced are written to a temporary name and renamed into place (atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import secrets
import socket
import time
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional, TypedDict

import torch

from wgan.schema import ConfigError

log = logging.getLogger(__name__)

class Status(str, Enum):
    """How a run stands, as its results.json says (a str: it compares equal to the JSON's string)."""

    complete = "complete"
    diverged = "diverged"  # a result too: the method failed on this run
    crashed = "crashed"  # an exception other than a stop, recorded with its traceback
    interrupted = "interrupted"  # stopped by a signal: resumes from its checkpoint


FINISHED = (Status.complete, Status.diverged)  # results: such a run is never trained again
OUTCOMES = (*FINISHED, Status.crashed)  # how a job ended, as a study's report counts it


def is_finished(results: Optional[Results], iterations: int) -> bool:
    """Whether a run whose results.json holds `results` has nothing left to train for `iterations`:
    it diverged, or it completed at least that many (a complete run asked for more is extended)."""
    if results is None or results["status"] not in FINISHED:
        return False
    return results["status"] != Status.complete or results["step"] >= iterations


class Results(TypedDict, total=False):
    """results.json, the one record of a run that studies, the report, W&B's summary and the user
    read (README: "What `python run.py` does" lists the keys; tests/test_readme.py checks it)."""

    status: str  # a Status
    step: int  # iterations done
    iterations: int  # train.iterations
    method: str
    arch: str
    arch_seed: Optional[int]  # which architecture arch=random drew (pairs methods in reports)
    arch_choices: Optional[dict[str, Any]]  # and what it drew
    dataset: str
    seed: int
    study: str
    final: dict[str, float]  # the last evaluation
    best: dict[str, float]  # each metric's best evaluation
    best_generator: Optional[dict[str, Any]]  # step, key, value of checkpoints/best.pt
    unavailable: dict[str, str]  # scores the metric weights cannot give, with why
    wall_time: float  # training seconds
    diverged_at: int  # diverged
    reason: str
    signal: str  # interrupted: the signal's name
    stopped_in: str  # and where the run honoured it
    traceback: str  # crashed
# A run's results.json holds a few kilobytes (a long traceback: hundreds); a larger file is not one.
MAX_RESULTS_BYTES = 16 * 2**20


# The errors of a full disk (or quota, or file-size limit): reported as such, not as a crash.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(OSError):
    """A write failed for lack of space; what was written before it is intact."""


class RunDirError(Exception):
    """The run directory cannot be trained in as it is (another process holds it, or its
    checkpoints cannot be read); the message says why and what to do. Nothing in it was changed."""


def as_disk_full(error: BaseException, path: Path | None = None) -> DiskFull | None:
    """`error` as a DiskFull if it is one (or the OSError of one, writing `path`), else None."""
    if isinstance(error, DiskFull):
        return error
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return DiskFull(f"{error.strerror} while writing {path or error.filename or 'a file'}")
    return None


def atomic_write(path: Path, write: Callable[[BinaryIO], None], keep_previous: Path | None = None) -> None:
    """Call `write(file)` on a temporary file beside `path`, flush it to the disk, then rename it
    onto `path` (atomic on POSIX): `path` holds either its old or its whole new content, even
    after a kill or a power loss, and a failed write (a full disk) leaves the old one. With
    `keep_previous`, the old content is moved there once the new one is safely on the disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        # Mode "x" creates the file as any open() does, 0666 less the umask (and default ACLs),
        # not with tempfile's private 0600: a study shared by a group stays readable by the group.
        # A Python file object, not a path: torch.save then reports a full disk as the OSError
        # it is, where its own file writer raises a RuntimeError about stream positions.
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        full = as_disk_full(error, path)
        if full is not None:
            raise DiskFull(f"{full}; it was left as it was") from error
        raise


def atomic_save(path: Path, data: Any) -> None:
    """`torch.save` through `atomic_write`."""
    atomic_write(path, lambda file: torch.save(data, file))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode()))


def append_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line at the end of `path` (a JSON Lines log). A full disk is a DiskFull naming the
    file: a line it cut short is dropped when the run resumes (RunFiles.drop_metrics_after)."""
    try:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as error:
        full = as_disk_full(error, path)
        if full is None:
            raise
        raise DiskFull(f"{full}; a line it cut short is dropped on resume") from error


def read_results(path: Path) -> Results | None:
    """The results a run wrote at `path`, or None where there are none: no file, or one that a
    run did not write whole (cut short by a kill, empty, damaged, not UTF-8, not a JSON object
    with a recorded status, nested too deep to parse, larger than MAX_RESULTS_BYTES) or that is
    no regular file (a folder, a FIFO, which would block a read). None is an unfinished run."""
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as file:
            data = file.read(MAX_RESULTS_BYTES + 1)
        if len(data) > MAX_RESULTS_BYTES:
            return None
        results = json.loads(data.decode())
    except (OSError, ValueError, RecursionError):  # ValueError: UnicodeDecodeError, JSONDecodeError
        return None
    return results if isinstance(results, dict) and results.get("status") in tuple(Status) else None


def counted(n: int, noun: str) -> str:
    """A count and its noun, singular for one: "1 architecture", "10,000 images" (nouns whose plural adds -s)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def first_sentence(error: BaseException) -> str:
    """The error's type and first sentence: torch's loading errors go on for paragraphs."""
    sentence = str(error).strip().split("\n")[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {sentence}" if sentence else type(error).__name__


def try_flock(fd: int, kind: int) -> bool:
    """Take an flock of `kind` on `fd` if no other process holds a conflicting one."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def read_holder(fd: int) -> str:
    """Who holds a lock file, as the holder wrote it (see RunFiles.held)."""
    return os.pread(fd, 256, 0).decode(errors="replace") or "pid not written yet"


class RunFiles:
    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.config = self.dir / "config.yaml"
        self.results = self.dir / "results.json"
        self.metrics = self.dir / "metrics.jsonl"
        self.train_stats = self.dir / "train.jsonl"
        self.checkpoint = self.dir / "checkpoints" / "last.pt"
        self.previous_checkpoint = self.dir / "checkpoints" / "previous.pt"
        self.best_generator = self.dir / "checkpoints" / "best.pt"
        self.samples = self.dir / "samples"
        self.lock = self.dir / "run.lock"

    def check_dir(self) -> None:
        """Raise ConfigError if a file stands where the directory, or a folder above it, would be."""
        for path in (self.dir, *self.dir.parents):
            if path.exists():
                if not path.is_dir():
                    where = "" if path == self.dir else f": {path}"
                    raise ConfigError(f"run directory {self.dir}{where} is a file, not a folder; choose another "
                                      "directory (hydra.run.dir, hydra.sweep.dir) or move the file")
                return

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the directory for this process, or raise RunDirError naming the process that holds
        it: two processes in one directory would write the same checkpoints and results. An flock,
        which the kernel releases when the process ends however it ends (a SIGKILL too), so a dead
        run never blocks the next; the file names the holder, which flock alone does not tell."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not try_flock(fd, fcntl.LOCK_EX):
                raise self.in_use(read_holder(fd))
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def holder(self) -> str | None:
        """The process that holds the directory (see `held`), or None if none does. Asks by taking
        a shared lock for an instant: flock has no other way to ask."""
        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return None if try_flock(fd, fcntl.LOCK_SH) else read_holder(fd)
        finally:
            os.close(fd)

    def in_use(self, holder: str) -> RunDirError:
        return RunDirError(f"{self.dir} is in use by another process ({holder}): one process per run directory; "
                           "wait for that one to end (or stop it), then run the same command again")

    def write_config(self, text: str) -> None:
        """config.yaml, atomically (a config cut short by a kill would make the next start fail its
        config check); a restart with the same config writes nothing."""
        if not self.config.exists() or self.config.read_text() != text:
            atomic_write_text(self.config, text)

    def read_results(self) -> Results | None:
        return read_results(self.results)

    def move_aside_results_folder(self) -> None:
        """A folder named results.json would stop the results from being written at the end of
        training: it is renamed to results.json.folder-<time>, its contents kept, before training."""
        if self.results.is_dir() and not self.results.is_symlink():  # a symlink is replaced as a file is
            aside = self.results.with_name(f"{self.results.name}.folder-{time.strftime('%Y%m%d-%H%M%S')}")
            os.rename(self.results, aside)
            log.warning("%s is a folder, not a run's results: moved to %s", self.results, aside)

    def write_results(self, results: Results) -> None:
        atomic_write_text(self.results, json.dumps(results, indent=2) + "\n")

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_line(self.metrics, record)

    def append_train_stats(self, record: dict[str, Any]) -> None:
        append_line(self.train_stats, record)

    def drop_metrics_after(self, step: int) -> None:
        """Forget evaluations and training statistics logged after `step`: a resumed run redoes
        them from its checkpoint."""
        for path in (self.metrics, self.train_stats):
            if not path.exists():
                continue
            lines = path.read_text().splitlines()
            kept = [line for line in lines if self.metrics_step(line) <= step]
            if len(kept) < len(lines):  # a start with nothing to forget rewrites nothing
                atomic_write_text(path, "".join(f"{line}\n" for line in kept))

    @staticmethod
    def metrics_step(line: str) -> float:
        """The step of a metrics.jsonl line; infinite for a line cut short by a kill mid-append."""
        try:
            return json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return math.inf

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write `last.pt` atomically, keeping the one it replaces as `previous.pt`: a checkpoint
        that is later found unreadable (a failing disk, a copy cut short) still has a fallback,
        and a write that fails (a full disk) leaves both as they were."""
        atomic_write(self.checkpoint, lambda file: torch.save(state, file), keep_previous=self.previous_checkpoint)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest readable checkpoint (`last.pt`, else `previous.pt`), or None if there is none.
        Raises RunDirError if there are checkpoints but none can be read: starting from iteration 0
        would silently overwrite them, losing what a repaired or restored copy could still resume."""
        unreadable = []
        for path in (self.checkpoint, self.previous_checkpoint):
            if not path.exists():
                continue
            try:
                # weights_only: a checkpoint is data; loading one never runs pickled code.
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # truncated or corrupt: torch raises several kinds
                unreadable.append(f"{path} ({first_sentence(error)})")
                log.warning("checkpoint %s is unreadable", unreadable[-1])
        if unreadable:
            raise RunDirError(
                f"no readable checkpoint: {'; '.join(unreadable)}. Not starting over from iteration 0 over "
                f"them: restore a readable copy to resume, or delete {self.checkpoint.parent} to start this run over"
            )
        return None

    def save_best_generator(self, state: dict[str, Any]) -> None:
        """`best.pt`: the generator of the best evaluation with its step, key and value, atomically."""
        atomic_save(self.best_generator, state)

    def load_best_generator(self) -> dict[str, Any] | None:
        """`best.pt` as data, or None if there is none or it cannot be read (a warning says so)."""
        if not self.best_generator.exists():
            return None
        try:
            return torch.load(self.best_generator, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated or corrupt: torch raises several kinds
            log.warning("best generator %s is unreadable (%s): the next best evaluation replaces it",
                        self.best_generator, first_sentence(error))
            return None

    def sample_figure(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.png"

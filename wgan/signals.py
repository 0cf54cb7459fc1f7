"""Stop signals: what a cluster sends before it kills (SIGTERM) or requeues (SIGUSR1, submitit's) a
job, and Ctrl-C (SIGINT).

While a run trains, `stop_signals` notes them instead of letting the process die mid-write. The
loops a run spends its time in (critic steps, sampling, feature extraction, reference statistics,
the classifier's training) pass stop points, where a noted stop raises `Stopped`: the run stops
within seconds wherever its time goes, and `wgan.train` checkpoints its newest complete state and
exits, printing the command that resumes it (`resume_command`). A second Ctrl-C stops at once, as
Python's own handler would, without a new checkpoint.
"""
from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sized, TypeVar

from omegaconf import DictConfig

# What clusters send before they kill (SIGTERM) or requeue a job (SIGUSR2 is submitit's signal;
# SUBMITIT_PREEMPT_SIGNAL=USR1 makes it SIGUSR1), and Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)

# The stop signals received since `stop_signals` began: one list for the process, as signals are.
received: list[int] = []


class Stopped(Exception):
    """A stop signal arrived; `where` says what the run was doing when it honoured it."""

    def __init__(self, signum: int, where: str) -> None:
        super().__init__(signum, where)
        self.signum, self.where = signum, where

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"{self.signal_name} during {self.where}"


def stop_point(where: str) -> None:
    """Raise Stopped if a stop signal has arrived."""
    if received:
        raise Stopped(received[0], where)


T = TypeVar("T")


def stoppable(items: Iterable[T], what: str, unit: str = "batch") -> Iterator[T]:
    """`items`, with a stop point before each: "<what>, <unit> 3 of 40" says where a stop landed."""
    total = f" of {len(items)}" if isinstance(items, Sized) else ""
    for index, item in enumerate(items):
        if received:
            stop_point(f"{what}, {unit} {index + 1}{total}")
        yield item


@contextlib.contextmanager
def stopping_in(what: str) -> Iterator[None]:
    """A stop inside names `what` as the place it landed in, before the place inside that."""
    try:
        yield
    except Stopped as stopped:
        stopped.where = f"{what}: {stopped.where}"
        raise


def note(signum: int, frame: Any) -> None:
    if signum == signal.SIGINT and signum in received:  # Ctrl-C again: the user will not wait
        raise KeyboardInterrupt
    received.append(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[dict[int, Any]]:
    """Note the stop signals instead of dying; yields the handlers they replaced, to hand the
    signal on to afterwards (submitit's requeues the job).

    A signal ignored when training starts stays ignored, the Unix convention Python follows for
    Ctrl-C: a shell script's background job (`python run.py &`) starts with SIGINT ignored, so that
    the terminal's Ctrl-C does not reach it, before training and during it alike."""
    received.clear()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield {}
        return
    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield previous
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        received.clear()


def ignore_once_submitits_job_ended() -> None:
    """In a job that submitit runs (one per process), ignore the signals submitit handles once the
    job has ended: nothing is left to save, submitit's handler would requeue a finished job, and
    while Python exits it gives them back their default action (terminate). SLURM's time-limit
    warning landing in those milliseconds killed a job that had just written its result, and SLURM
    recorded the finished job as FAILED. A process that runs jobs one after another (Hydra's basic
    launcher) has no submitit handlers: its signals keep their handlers."""
    if "submitit" not in sys.modules:  # not a submitit job: nothing to look for, nothing to import
        return
    from submitit.core.job_environment import SignalHandler

    for sig in signal.valid_signals():
        if isinstance(getattr(signal.getsignal(sig), "__self__", None), SignalHandler):
            signal.signal(sig, signal.SIG_IGN)


def hand_on(signum: int, previous_handler: Any) -> None:
    """Do what the signal would have done had the run not caught it first (Python's Ctrl-C
    handler aside: its KeyboardInterrupt would end in a traceback), then exit with 128 + signal."""
    if callable(previous_handler) and previous_handler is not signal.default_int_handler:
        previous_handler(signum, None)
    raise SystemExit(128 + signum)


# Hydra overrides of how a study launches, which a command resuming one of its jobs leaves out.
LAUNCH_SETTINGS = ("hydra.run.dir", "hydra.mode", "hydra.sweep", "hydra.launcher", "hydra/launcher",
                   "hydra.sweeper", "hydra/sweeper")


def python() -> str:
    """How to call this interpreter: `python` where that finds it, else its path."""
    return "python" if shutil.which("python") == sys.executable else sys.executable


def resume_command(hydra: DictConfig, program: str | Path) -> str:
    """The shell command that resumes this run (or this job of a study) where it stops: `program`
    with the run's overrides and its run directory spelled out, since a default run directory is
    named after the time the run started (the same command would start another run)."""
    program = Path(program).resolve()
    shown = program.relative_to(Path.cwd()) if program.is_relative_to(Path.cwd()) else program
    kept = [o for o in hydra.overrides.hydra if not o.lstrip("+~").startswith(LAUNCH_SETTINGS)]
    run_dir = Path(hydra.runtime.output_dir).resolve()
    quoted_dir = '"' + str(run_dir).replace("\\", "\\\\").replace('"', '\\"') + '"'  # Hydra's quoting: "," and "="
    words = [python(), str(shown), *hydra.overrides.task, *kept, f"hydra.run.dir={quoted_dir}"]
    return " ".join(shlex.quote(word) for word in words)


"""Studies: a Hydra multirun whose jobs share a fixed directory, `multirun/<study>/`.

Each job writes to a subdirectory named after its own overrides (`arch.seed=3,lipschitz=gp`), so
running the same command again finds every job where it left it: finished jobs are skipped,
interrupted ones resume from their checkpoints (`wgan.train.run`), and a job whose config differs
from what its directory holds is refused rather than mixed in. `arch=random` adds the sweep over
architecture seeds 0..arch.count-1 itself (its `hydra.sweeper.params`), so
`python run.py -m arch=random lipschitz=gp,clip` is every architecture under both methods.

`StudyCallback` prints, before the launcher starts, how many jobs the study has, how many have
finished already, which are held by another process, and where they write; `cpu_share` keeps
jobs that run side by side on one machine (the joblib launcher) from oversubscribing its cores.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from wgan.files import FINISHED, DiskFull, RunDirError, RunFiles, counted
from wgan.identity import is_identity
from wgan.schema import ConfigError
from wgan.signals import ignore_once_submitits_job_ended

log = logging.getLogger(__name__)


def expand_jobs(task_overrides: Sequence[str], sweeper_params: Optional[Mapping[str, Any]]) -> list[list[str]]:
    """The override list of every job, as Hydra's basic sweeper expands them: the config's sweeper
    params first, the command line's overrides replacing any with the same key."""
    arguments = [f"{key}={value}" for key, value in (sweeper_params or {}).items()] + list(task_overrides)
    choices: dict[str, list[str]] = {}  # key -> its "key=value" choices; a later override replaces, in place
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        values = override.sweep_string_iterator() if override.is_sweep_override() else [override.get_value_element_as_str()]
        choices[key] = [f"{key}={value}" for value in values]
    return [list(job) for job in itertools.product(*choices.values())]


MAX_DIR_NAME = 200  # bytes; file systems allow 255 per path component


def short_dir_name(name: str) -> str:
    """`name`, or when too long for a directory its start plus a hash of the whole, so that long
    override lists still give every job a distinct, stable directory."""
    if len(name.encode()) <= MAX_DIR_NAME:
        return name
    return f"{name.encode()[:150].decode(errors='ignore')}...{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def job_dir_name(job: Sequence[str]) -> str:
    """The directory of the job with these overrides in its study (`${wgan.job_dir:...}`, the sweep
    subdir of conf/config.yaml): the overrides of its identity's settings, as Hydra's
    override_dirname writes them (sorted, comma-joined), shortened when too long."""
    overrides = OverridesParser.create().parse_overrides(list(job))
    return short_dir_name(",".join(sorted(o.input_line for o in overrides if is_identity(o.key_or_group))))


def check_study_name(name: str) -> None:
    """`study` names one folder, outputs/<study> and multirun/<study>: a path there would put the
    runs elsewhere (`..`, `a/b`), or hide them (a leading dot)."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"study={name!r} is not a single folder name (it names outputs/<study> and "
                          "multirun/<study>): it must be non-empty, without '/', and not start with '.'")


def read_status(job_dir: Path) -> Optional[str]:
    return (RunFiles(job_dir).read_results() or {}).get("status")


@contextlib.contextmanager
def reported(reraise: bool) -> Iterator[None]:
    """The errors meant for the user as one logged line and an exit code, not a traceback: 2 for a
    config that cannot run, 1 for a run that stopped (a full disk, a run directory held by another
    process). With `reraise` (a job of a multirun) the error goes on to the launcher, which records
    the job as failed (neither a result nor a crash), runs the others and reports it at the end.
    A Ctrl-C that training could not wait for (before it starts, or a second one: wgan.signals)
    ends every run at once, 130 as a shell reports Ctrl-C."""
    try:
        yield
    except KeyboardInterrupt:
        logging.getLogger("wgan").error("interrupted (Ctrl-C): stopped at once, without a new checkpoint (the "
                                        "newest one, if any, is kept: the same command resumes from it)")
        sys.exit(128 + signal.SIGINT)
    except (ConfigError, DiskFull, RunDirError) as error:
        invalid = isinstance(error, ConfigError)
        logging.getLogger("wgan").error("%s: %s", "invalid config" if invalid else "stopped", error)
        if reraise:
            raise
        sys.exit(2 if invalid else 1)


def refuse_what_no_job_can_run(config: DictConfig, jobs: list[list[str]]) -> None:
    """ConfigError before any job starts when the study's first and last jobs fail validation with
    the same error: a setting outside the sweep (a typo, a value out of range) that every job would
    fail on, each with its own traceback. An error that differs between them depends on the swept
    values: those jobs fail alone, as any invalid job, and the others run."""
    from hydra.core.global_hydra import GlobalHydra

    from wgan.config import validate  # wgan.config imports this module

    errors = set()
    for job in (jobs[0], jobs[-1]):
        cfg = GlobalHydra.instance().config_loader().load_sweep_config(config, list(job))
        with open_dict(cfg):
            del cfg["hydra"]  # what a job's run gets, as @hydra.main hands it over
        try:
            validate(cfg)
        except ConfigError as error:
            errors.add(str(error))
        else:
            return
    if len(errors) == 1:
        raise ConfigError(f"every job of the study would fail: {errors.pop()}")


class StudyCallback(Callback):
    """Before Hydra creates or writes anything (its `.hydra/` folder and log in the run
    directory): refuses a study name that is not one folder, a run directory that is a file or
    that another process holds, and says what a multirun is about to do. After a job, a process
    that submitit started for it ignores the signals that would requeue or kill it while it exits."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with reported(reraise=False):
            check_study_name(config.study)  # before the run directory, which it names, is used
            files = RunFiles(Path(config.hydra.run.dir))
            files.check_dir()
            holder = files.holder()
            if holder is not None:
                raise files.in_use(holder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra = config.hydra
        jobs = expand_jobs(list(hydra.overrides.task), hydra.sweeper.get("params"))
        with reported(reraise=False):
            check_study_name(config.study)
            check_requeues(hydra.launcher)
            refuse_what_no_job_can_run(config, jobs)
            sweep_dir = Path(hydra.sweep.dir).resolve()
            dirs = [RunFiles(sweep_dir / job_dir_name(job)) for job in jobs]
            for files in dirs:
                files.check_dir()
        finished = sum(read_status(files.dir) in FINISHED for files in dirs)
        log.info("study %s: %s (%d finished already, skipped) in %s", config.study, counted(len(jobs), "job"), finished,
                 sweep_dir)
        held = [f"{files.dir.name} ({holder})" for files in dirs if (holder := files.holder()) is not None]
        if held:  # each of these jobs stops at once, leaving its directory to the process that holds it
            log.warning("%d held by another process, skipped: %s", len(held), "; ".join(held))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        ignore_once_submitits_job_ended()


# submitit takes a job's signal for a timeout (not a preemption) once the job has run 80% of its
# time limit, or the limit less 10 minutes if that is shorter: always, for limits of 10 minutes or less.
SUBMITIT_TIMEOUT_MIN = 10


def check_requeues(launcher: Mapping[str, Any]) -> None:
    """Refuse the SLURM launcher settings under which a job's signal never requeues it: a signal
    delay as long as the time limit (the signal would come as the job starts), or a short limit
    with `max_num_timeout=0`, Hydra's default (even a preempted job would then end unfinished)."""
    if "signal_delay_s" not in launcher:  # not SLURM
        return
    limit, delay, requeues = launcher["timeout_min"], launcher["signal_delay_s"], launcher["max_num_timeout"]
    if delay >= 60 * limit:
        raise ConfigError(f"hydra.launcher.signal_delay_s={delay} is not below hydra.launcher.timeout_min={limit} "
                          "minutes: SLURM would signal each job as it starts")
    if limit <= SUBMITIT_TIMEOUT_MIN and requeues == 0:
        raise ConfigError(
            f"hydra.launcher.max_num_timeout=0 with hydra.launcher.timeout_min={limit}: submitit counts every signal "
            f"before a limit of {SUBMITIT_TIMEOUT_MIN} minutes or less as a timeout, so no job would ever be requeued, "
            "not even a preempted one; set hydra.launcher.max_num_timeout to the requeues a job may need")


def cpu_share(launcher: Mapping[str, Any], cpus: Optional[int] = None) -> Optional[int]:
    """Torch threads for one job when the launcher runs `n_jobs` jobs side by side on this machine
    (joblib's; -1 means one per core), so that together they use each core once; None otherwise."""
    n_jobs = launcher.get("n_jobs")
    if not n_jobs:
        return None
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // min(joblib_workers(n_jobs, cpus), cpus))


def joblib_workers(n_jobs: int, cpus: int) -> int:
    """The processes joblib runs for `n_jobs`: -1 one per core, -2 all cores but one, ..."""
    return max(1, cpus + 1 + n_jobs if n_jobs < 0 else n_jobs)


def limit_threads(threads: Optional[int], load: Optional[float] = None) -> None:
    """Use `threads` torch threads (None: torch's, one per core), warning when other processes
    already keep the cores busy (`load`: the 1-minute load average, read when not given)."""
    if threads is not None:
        torch.set_num_threads(threads)
        log.info("using %s", counted(threads, "CPU thread"))
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    free = max(1, round(cpus - load))
    if torch.get_num_threads() > free:
        log.warning("the machine is busy (load %.1f on %s) and this run uses %d CPU threads: if it is slow, "
                    "set threads=%d (OMP_WAIT_POLICY=%s)", load, counted(cpus, "core"), torch.get_num_threads(), free,
                    os.environ.get("OMP_WAIT_POLICY", "unset"))


def stop_when_orphaned(poll_seconds: float = 1.0) -> None:
    """In a job that runs in a worker process of a parallel launcher (joblib's), SIGTERM this
    process once the launcher dies: without it, a killed launcher leaves its workers training,
    and the relaunched study would run the same job twice in one directory. SIGTERM makes the
    job checkpoint and stop (see wgan.train); the relaunch resumes it. Once per process."""
    if getattr(stop_when_orphaned, "watching", False):
        return
    stop_when_orphaned.watching = True
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_seconds)
        log.warning("the launcher (pid %d) is gone: stopping this job at a checkpoint", launcher)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()

"""A study on a real SLURM cluster: this machine's single-node one (tests/slurm/start.sh, started
for the session and stopped after it), through `hydra/launcher=slurm_local`, the project's `slurm`
preset on the cluster's CPU partition. Jobs are real `sbatch` array tasks running the project's
Python in the repository; preemption and time limits are SLURM's own.

Without SLURM (or root to start it) these tests skip, saying how to get it; `.ci/run` installs it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, checkpoint_step, wait_for
from wgan.config import compose_config
from wgan.report import build_report, records_from_dir
from wgan.study import SUBMITIT_TIMEOUT_MIN, check_requeues, job_dir_name

SCRIPTS = ROOT / "tests" / "slurm"
HOW = ("needs a SLURM cluster on this machine: as root, `tests/slurm/start.sh` installs slurm-wlm, munge and "
       "MariaDB (apt-get) and starts one; `tests/slurm/stop.sh` stops it")
# Every job here: one thread, no W&B, the toy data on a 16-wide MLP (a few dozen iterations a second).
JOB = ["threads=1", "logger=none", "arch.width=16", "train.batch_size=16", "metrics.num_samples=100"]
# The 2-job robustness_toy study of tests/test_study.py: 6 iterations per job.
TINY_STUDY = ["sweeps=robustness_toy", "arch.count=1", "train.iterations=6", "train.log_every=3", "eval.every=6",
              "ckpt.every=3", "metrics.num_samples=100", "logger=none", "threads=1",
              "arch.g.width=[16]", "arch.d.width=[16]", "arch.g.depth=[4]", "arch.d.depth=[4]"]
# A job interrupted by SLURM must still be training when the interruption comes: the time-limit
# warning arrives 15 to 45 s after a 1-minute job starts (signal_delay_s=15, and slurmctld checks
# limits on a 30-s tick, which may send it up to 30 s early).
TRAINING_SECONDS = 50


def cluster_answers() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def slurm():
    """The single-node cluster, started (packages installed where missing) and, unless it was up
    already, stopped at the end of the session."""
    if os.geteuid() != 0 or not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip(HOW)
    was_up = cluster_answers()
    started = subprocess.run(["bash", str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=900)
    if started.returncode == 3:  # a cluster this script did not configure: not ours to touch
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    if not was_up:
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], capture_output=True, timeout=120)


def study_command(study_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "run.py", "-m", *overrides, "hydra/launcher=slurm_local", f"hydra.sweep.dir={study_dir}"]


def launch(study_dir: Path, *overrides: str) -> subprocess.Popen:
    """The study's launcher process (it submits the array and waits for it), its output in
    `<study_dir>.out`."""
    out = study_dir.with_suffix(".out").open("w")
    return subprocess.Popen(study_command(study_dir, *overrides), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def finish(launcher: subprocess.Popen, study_dir: Path, timeout: float = 300) -> str:
    launcher.wait(timeout)
    return study_dir.with_suffix(".out").read_text()


def sacct(*job_ids: str) -> list[tuple[str, str]]:
    """(job id, state) of every job and array task given, each with its requeued runs (-D), once
    all have ended (a task's result file comes seconds before SLURM records its end)."""
    command = ["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)]
    rows: list[tuple[str, str]] = []

    def ended() -> bool:
        rows[:] = [tuple(line.split("|")) for line in
                   subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()]
        return bool(rows) and not {"PENDING", "RUNNING", "COMPLETING"} & {state for _, state in rows}

    wait_for(ended, f"SLURM to record the end of {job_ids}", timeout=60)
    return rows


def array_ids(study_dir: Path) -> list[str]:
    """The SLURM ids of the job arrays the study's launches submitted (submitit's folder
    `.submitit/<id>/` holds each one's script; its tasks are `<id>_<index>`)."""
    return sorted(p.parent.name for p in (study_dir / ".submitit").glob("*/*_submission.sh"))


@pytest.mark.slow
def test_a_study_runs_as_a_slurm_array_a_crash_fails_only_its_job_and_the_report_reads_it(slurm, tmp_path):
    study = tmp_path / "study"
    crashing = study / job_dir_name(["arch.seed=0", "method=wgan_gp", *TINY_STUDY])
    crashing.mkdir(parents=True)
    (crashing / "samples").write_text("a file where the job's figures folder goes: its first evaluation fails")
    launcher = launch(study, *TINY_STUDY)
    output = finish(launcher, study)

    (array,) = array_ids(study)
    assert sorted(sacct(array)) == [(f"{array}_0", "COMPLETED"), (f"{array}_1", "COMPLETED")]
    results = {p.parent.name: json.loads(p.read_text()) for p in study.glob("*/results.json")}
    assert {r["method"]: r["status"] for r in results.values()} == {"gan": "complete", "wgan_gp": "crashed"}
    traceback = results[crashing.name]["traceback"]
    error = f"FileExistsError: [Errno 17] File exists: '{crashing / 'samples'}'"
    assert traceback.startswith("Traceback (most recent call last)") and traceback.strip().endswith(error)
    # The launcher waits for every job, then names the failed one and its error, and exits non-zero.
    assert "Error executing job with overrides: ['arch.seed=0', 'method=wgan_gp'" in output
    assert output.strip().endswith(error) and launcher.returncode == 1
    report = build_report(records_from_dir(study), metric="w1", thresholds=[0.0])
    assert report.scored == {"gan": 1, "wgan_gp": 0}  # a crashed job is listed, never counted
    assert [(job.where, job.error) for job in report.crashed] == [(crashing.name, error)]


@pytest.mark.slow
def test_a_job_resubmitted_while_it_runs_is_refused_by_the_run_lock(slurm, tmp_path):
    overrides = [*JOB, "train.iterations=1000000", "ckpt.every=20"]
    first_dir = tmp_path / "study"
    first = launch(first_dir, *overrides)
    job = first_dir / job_dir_name(overrides)
    try:
        wait_for(lambda: checkpoint_step(job) >= 20, "the first job to train")
        holder = (job / "run.lock").read_text()
        second = subprocess.run(study_command(first_dir, *overrides), cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        output = second.stdout + second.stderr
        assert second.returncode != 0
        assert f"1 held by another process, skipped: {job.name} ({holder})" in output
        assert f"{job} is in use by another process ({holder})" in output
        assert first.poll() is None and (job / "run.lock").read_text() == holder  # the first trains on
        assert not (job / "results.json").exists()
    finally:
        subprocess.run(["scancel", *array_ids(first_dir)], check=False)
        first.kill()
        first.wait()


@pytest.fixture(scope="session")
def long_job(slurm, tmp_path_factory):
    """Overrides for a job of about TRAINING_SECONDS of training here (calibrated by a short run),
    and its uninterrupted run (a plain `run.py`, started now, waited for by `.baseline()`)."""
    root = tmp_path_factory.mktemp("long-job")
    probe = subprocess.run([sys.executable, "run.py", *JOB, "train.iterations=60", "eval.every=60",
                            f"hydra.run.dir={root / 'probe'}"], cwd=ROOT, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    per_second = 60 / json.loads((root / "probe" / "results.json").read_text())["wall_time"]
    iterations = int(per_second * TRAINING_SECONDS)
    every = max(iterations // 20, 1)
    overrides = [*JOB, f"train.iterations={iterations}", f"eval.every={iterations // 2}", f"ckpt.every={every}",
                 f"train.log_every={every}"]
    baseline = subprocess.Popen([sys.executable, "run.py", *overrides, f"hydra.run.dir={root / 'baseline'}"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class LongJob:
        def __init__(self):
            self.overrides, self.every = overrides, every

        @staticmethod
        def baseline() -> Path:
            assert baseline.wait(600) == 0
            return root / "baseline"

    yield LongJob()
    baseline.kill()


def assert_same_run(job: Path, baseline: Path) -> None:
    """The job's results, evaluations and final parameters are an uninterrupted run's."""
    ours, theirs = (json.loads((d / "results.json").read_text()) for d in (job, baseline))
    for key in ("status", "step", "final", "best"):
        assert ours[key] == theirs[key], key
    read = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (job, baseline)]
    assert [{k: v for k, v in r.items() if k != "elapsed"} for r in read[0]] == \
        [{k: v for k, v in r.items() if k != "elapsed"} for r in read[1]]
    a, b = (torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in (job, baseline))
    for net in ("generator", "critic", "opt_g", "opt_d"):
        assert str(a[net]) == str(b[net]) or all(torch.equal(x, y) for x, y in zip(tensors(a[net]), tensors(b[net])))


def tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in tensors(item)]
    return []


def run_log(job: Path) -> str:
    return (job / "run.log").read_text()


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_to_an_uninterrupted_runs_results(long_job, tmp_path):
    study = tmp_path / "study"
    launcher = launch(study, *long_job.overrides)
    job = study / job_dir_name(long_job.overrides)
    wait_for(lambda: checkpoint_step(job) >= long_job.every, "the job to train")
    # A job of the higher-priority partition that needs the whole node: SLURM sends the job its
    # signal (submitit's SIGUSR2), the job checkpoints, submitit requeues it.
    subprocess.run(["sbatch", "-p", "high", "--exclusive", "-o", "/dev/null", "--wrap", "sleep 1"], check=True,
                   capture_output=True)
    output = finish(launcher, study)
    assert launcher.returncode == 0, output[-3000:]
    log = run_log(job)
    stopped = int(log.split("SIGUSR2 during ")[1].split("checkpointed at iteration ")[1].split(";")[0])
    assert f"at iteration {stopped}\n" in log.split("resumed from")[-1].splitlines()[0] + "\n"
    states = [state for _, state in sacct(*array_ids(study))]
    assert states[-1] == "COMPLETED" and len(states) >= 2  # ran again after the preemption
    assert_same_run(job, long_job.baseline())


@pytest.mark.slow
def test_a_job_at_its_time_limit_checkpoints_is_requeued_and_finishes_as_an_uninterrupted_run(long_job, tmp_path):
    study = tmp_path / "study"
    # A 1-minute limit: submitit counts each signal as a timeout (limits of 10 minutes or less),
    # so each requeue spends one of max_num_timeout. A submission trains 10-40 s of the job's ~50 s
    # (less on a busy machine: 7 were not enough beside a parallel test run), hence 12.
    launcher = launch(study, *long_job.overrides, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=15",
                      "hydra.launcher.max_num_timeout=12")
    output = finish(launcher, study, timeout=800)
    assert launcher.returncode == 0, output[-3000:]
    job = study / job_dir_name(long_job.overrides)
    log = run_log(job)
    signals = log.count("SIGUSR2 during ")
    assert signals >= 1 and log.count("resumed from") == log.count("this job is timed-out") == signals
    assert log.count("Requeued job") == signals  # submitit's requeue, after the checkpoint
    states = [state for _, state in sacct(*array_ids(study))]
    assert states == ["REQUEUED"] * signals + ["COMPLETED"]
    assert_same_run(job, long_job.baseline())


@pytest.mark.slow
def test_the_slurm_preset_requeues_a_100k_iteration_job_and_refuses_settings_that_never_would(tmp_path):
    """No cluster needed: the settings are checked before anything is submitted."""
    launcher = compose_config(["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    assert (launcher.timeout_min, launcher.max_num_timeout, launcher.signal_delay_s) == (720, 20, 120)
    # Above 10 minutes submitit tells a preemption from a timeout; 21 submissions of 12 h cover a
    # robustness_paper job (about 2 h on an H100 alone, longer for big architectures or a shared GPU).
    assert launcher.timeout_min > SUBMITIT_TIMEOUT_MIN and launcher.timeout_min * (1 + launcher.max_num_timeout) >= 240 * 60
    check_requeues(launcher)
    for overrides, message in [
        (["hydra.launcher.timeout_min=5", "hydra.launcher.max_num_timeout=0"],
         "hydra.launcher.max_num_timeout=0 with hydra.launcher.timeout_min=5: submitit counts every signal before a "
         "limit of 10 minutes or less as a timeout, so no job would ever be requeued, not even a preempted one"),
        (["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=120"],
         "hydra.launcher.signal_delay_s=120 is not below hydra.launcher.timeout_min=2 minutes"),
    ]:
        refused = subprocess.run([sys.executable, "run.py", "-m", "hydra/launcher=slurm", *overrides,
                                  f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode == 2 and message in refused.stdout + refused.stderr
        assert not (tmp_path / ".submitit").exists()  # nothing submitted

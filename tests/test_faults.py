"""The fault suite (README: "Faults"), with real processes, real signals and a real full disk:
kills at any moment, stop signals, unreadable and foreign checkpoints, a full disk, a study whose
launcher is killed again and again, and what a run may write and read."""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from PIL import Image

from helpers import ROOT, TINY, as_in_a_terminal, checkpoint_step, fill, ignoring_ctrl_c, tmpfs
from wgan.config import compose_config
from wandb_records import records as wandb_records
from wgan.files import RunDirError, RunFiles
from wgan.report import records_from_dir
from wgan.schema import ConfigError
from wgan.signals import python, resume_command
from wgan.train import run



@pytest.mark.slow
def test_a_stop_signal_checkpoints_and_exits_within_seconds_then_the_run_resumes(tmp_path):
    """SIGTERM stops the run and SIGUSR1 (a scheduler's warning) stops its resumption: each time it
    checkpoints the iteration it is in, exits within seconds and prints the command that resumes it."""
    overrides = [*TINY, "train.iterations=600", "ckpt.every=600", "eval.every=600", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "run.py", *overrides]
    files = RunFiles(tmp_path)
    stopped_at = 0
    for stop in (signal.SIGTERM, signal.SIGUSR1):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = ""
        if stopped_at:  # a resumption: training goes on once it has said from where
            started = read_until(process, f"at iteration {stopped_at}")
        deadline = time.monotonic() + 60
        while checkpoint_step(files.dir) < 0:  # the step-0 checkpoint: training has started
            assert time.monotonic() < deadline and process.poll() is None, "training never started"
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(stop)
        sent = time.monotonic()
        output, _ = process.communicate(timeout=30)
        output = started + output
        assert time.monotonic() - sent < 5
        assert process.returncode == 128 + stop
        previous, stopped_at = stopped_at, checkpoint_step(files.dir)
        assert previous < stopped_at < 600
        assert f"{stop.name} during iteration {stopped_at}: checkpointed at iteration {stopped_at}; stopping. " \
               f"Resume with:\n  {shlex.quote(python())} run.py {' '.join(overrides[:-1])} " \
               f"'hydra.run.dir=\"{tmp_path}\"'" in output
        interrupted = files.read_results()  # unfinished, not a result: recorded as such, with where it stopped
        assert (interrupted["status"], interrupted["step"], interrupted["signal"], interrupted["stopped_in"]) == \
               ("interrupted", stopped_at, stop.name, f"iteration {stopped_at}")
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"at iteration {stopped_at}" in resumed.stdout
    assert json.loads(files.results.read_text())["step"] == 600


def read_until(process: subprocess.Popen, text: str) -> str:
    """The output of `process` up to the first line holding `text` (which it must print)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"ended (exit {process.wait()}) without printing {text!r}:\n{''.join(lines)[-3000:]}")


def stopped_within_seconds(command: list[str], printed: str, wait: float, stop: signal.Signals) -> str:
    """Start `command`, send `stop` `wait` seconds after it printed `printed`; it must exit within
    seconds (generously: this machine is shared), as the stop signal says. Returns its output."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = read_until(process, printed)
    time.sleep(wait)
    process.send_signal(stop)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=120)
    assert time.monotonic() - sent < 10 and process.returncode == 128 + stop, output[-3000:]
    return before + output


def calm_and_stopped(overrides: list[str], tmp_path: Path) -> tuple[Path, list[str], RunFiles]:
    """An uninterrupted run of `overrides` in tmp_path/calm; the command and files of one in tmp_path/stopped."""
    calm, stopped = tmp_path / "calm", tmp_path / "stopped"
    subprocess.run([sys.executable, "run.py", *overrides, f"hydra.run.dir={calm}"], cwd=ROOT, check=True,
                   capture_output=True)
    return calm, [sys.executable, "run.py", *overrides, f"hydra.run.dir={stopped}"], RunFiles(stopped)


def resumes_as(command: list[str], step: int, calm: Path, files: RunFiles) -> None:
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"resumed from {files.checkpoint} at iteration {step}" in resumed.stdout
    run_files_equal(calm, files.dir)


# Critic steps long enough (10 ms each here, 2 ms on a fast machine) that one iteration of 2,000 of
# them outlasts the wait of a stop: iterations after a longer one are interrupted between critic steps.
LONG_CRITIC = [*TINY, "train.n_critic=2000", "train.batch_size=8", "arch.width=8", "train.iterations=2",
               "train.log_every=1", "eval.every=2", "ckpt.every=2"]


@pytest.mark.slow
def test_a_stop_signal_in_a_long_critic_loop_keeps_the_last_whole_iteration_and_resumes_exactly(tmp_path):
    calm, command, files = calm_and_stopped(LONG_CRITIC, tmp_path)
    output = stopped_within_seconds(command, "iter 1/2", 1.0, signal.SIGTERM)  # in iteration 2
    step = re.search(r"SIGTERM during iteration 2, critic step (\d+) of 2000: checkpointed at iteration 1", output)
    assert step and int(step[1]) < 2000, output[-3000:]  # the stop did not wait for the iteration's end
    assert checkpoint_step(files.dir) == 1
    assert files.read_results()["stopped_in"] == f"iteration 2, critic step {step[1]} of 2000"
    resumes_as(command, 1, calm, files)


@pytest.mark.slow
def test_a_million_critic_steps_show_progress_and_a_stop_signal_ends_them(tmp_path):
    command = [sys.executable, "run.py", *TINY, "train.n_critic=1000000", f"hydra.run.dir={tmp_path}"]
    output = stopped_within_seconds(command, "iteration 1, critic steps: ", 0.0, signal.SIGUSR1)
    assert re.search(r"iteration 1, critic steps: \d+ of 1000000 done, [\d.e+]+/s", output)  # a line every 10 s
    assert re.search(r"SIGUSR1 during iteration 1, critic step \d+ of 1000000: checkpointed at iteration 0", output)
    files = RunFiles(tmp_path)
    assert checkpoint_step(files.dir) == 0 and files.read_results()["status"] == "interrupted"


# An evaluation of 300,000 samples in batches of 10: seconds of sampling, with a stop point per batch;
# the final one (at 20), which no stop falls in, of TINY's 200.
LONG_EVALUATION = [*TINY, "metrics.num_samples=300000", "metrics.final_num_samples=200", "metrics.batch_size=10",
                   "ckpt.every=20"]


@pytest.mark.slow
def test_a_stop_signal_in_a_long_evaluation_checkpoints_and_the_evaluation_is_redone_on_resume(tmp_path):
    calm, command, files = calm_and_stopped(LONG_EVALUATION, tmp_path)
    output = stopped_within_seconds(command, "iter 10/20", 0.5, signal.SIGTERM)  # in the evaluation at 10
    where = re.search(r"SIGTERM during (the evaluation at iteration 10: sampling 300000, batch (\d+) of 30000): "
                      r"checkpointed at iteration 10", output)
    assert where and int(where[2]) < 30000, output[-3000:]
    assert checkpoint_step(files.dir) == 10 and files.read_results()["stopped_in"] == where[1]
    assert not files.metrics.exists()  # the evaluation did not end: nothing recorded
    resumes_as(command, 10, calm, files)  # the evaluation at 10 done once, on resume


@pytest.mark.slow
def test_ctrl_c_checkpoints_without_a_traceback_and_the_printed_command_resumes(tmp_path):
    """A default run directory, named after the time the run started: the same command would start
    another run, so the message spells the directory out."""
    command = [sys.executable, str(ROOT / "run.py"), *TINY, "train.iterations=300", "ckpt.every=300", "study=ctrl"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("outputs/ctrl/*/checkpoints/last.pt")):
        assert time.monotonic() < deadline and process.poll() is None, "training never started"
        time.sleep(0.1)
    (run_dir,) = tmp_path.glob("outputs/ctrl/*")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT and "Traceback" not in stdout + stderr
    files = RunFiles(run_dir)
    stopped_at = checkpoint_step(files.dir)
    assert 0 < stopped_at < 300  # between iterations, or in an evaluation (the first imports the scores' library)
    assert re.search(rf"SIGINT during (the evaluation at )?iteration {stopped_at}\b[^\n]*: checkpointed", stdout)
    printed = stdout.split("Resume with:\n  ")[1].splitlines()[0]
    assert printed == f"{shlex.quote(python())} {ROOT / 'run.py'} {' '.join(TINY)} train.iterations=300 " \
                      f"ckpt.every=300 study=ctrl 'hydra.run.dir=\"{run_dir}\"'"
    resumed = subprocess.run(printed, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"resumed from {files.checkpoint} at iteration {stopped_at}" in resumed.stdout
    assert files.read_results()["status"] == "complete" and list(tmp_path.glob("outputs/ctrl/*")) == [run_dir]


@pytest.mark.slow
def test_ctrl_c_while_the_dataset_is_prepared_exits_130_without_a_traceback_or_a_half_written_file(tmp_path):
    """Before training there is nothing to checkpoint: Ctrl-C while 1,500 images are decoded for the
    cache ends the run at once, writing no checkpoint, config, result or cache entry."""
    data, run_dir, cache = tmp_path / "data", tmp_path / "run", tmp_path / "cache"
    data.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (1500, 64, 64, 3), dtype=np.uint8)
    for i, image in enumerate(noise):
        Image.fromarray(image).save(data / f"{i:04d}.png", compress_level=0)
    command = [sys.executable, "run.py", "dataset=imagefolder", f"dataset.root={data}", "metrics=none", "arch=dcgan",
               "arch.dim=8", "logger=none", "threads=1", f"metrics.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=as_in_a_terminal)
    before = read_until(process, f"decoding 1,500 image files in {data}")
    process.send_signal(signal.SIGINT)
    output = before + process.communicate(timeout=30)[0]
    assert process.returncode == 128 + signal.SIGINT and "Traceback" not in output, output[-3000:]
    assert "interrupted (Ctrl-C): stopped at once, without a new checkpoint" in output
    files = RunFiles(run_dir)
    assert not files.checkpoint.exists() and not files.config.exists() and files.read_results() is None
    assert not cache.exists() or list(cache.iterdir()) == []  # the decoded images were never written
    assert [path for path in tmp_path.rglob("*") if path.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_a_run_started_ignoring_ctrl_c_trains_through_it_to_the_end(tmp_path):
    """A script's background job ignores the terminal's Ctrl-C; the run keeps it ignored while it
    trains (it used to take it as a stop there, though not before training) and finishes."""
    command = [sys.executable, "run.py", *TINY, "train.iterations=60", f"hydra.run.dir={tmp_path}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=ignoring_ctrl_c)
    before = read_until(process, "iter 5/60")
    process.send_signal(signal.SIGINT)
    output = before + process.communicate(timeout=300)[0]
    assert process.returncode == 0 and "SIGINT" not in output and "interrupted" not in output, output[-3000:]
    assert RunFiles(tmp_path).read_results()["status"] == "complete" and checkpoint_step(tmp_path) == 60


def test_the_resume_command_of_a_study_job_quotes_its_directory_for_the_shell_and_for_hydra(tmp_path):
    """A job directory holds "=" and ",", which Hydra would read as a sweep; the study's launch
    settings are left out (the command resumes the one job)."""
    job_dir = tmp_path / "multirun" / "s" / "arch.seed=3,lipschitz=gp"
    hydra = OmegaConf.create({"runtime": {"output_dir": str(job_dir)}, "overrides": {
        "task": ["arch.seed=3", "lipschitz=gp", "metrics.names=[toy_w1]"],
        "hydra": ["hydra.mode=MULTIRUN", "hydra.sweep.dir=x", "hydra/launcher=joblib", "hydra.job.name=a b"]}})
    words = shlex.split(resume_command(hydra, ROOT / "run.py"))
    assert Path(words[1]).resolve() == ROOT / "run.py" and words[2:] == ["arch.seed=3", "lipschitz=gp", "metrics.names=[toy_w1]",
                                                         "hydra.job.name=a b", f'hydra.run.dir="{job_dir}"']
    (parsed,) = OverridesParser.create().parse_overrides([words[-1]])
    assert parsed.value() == str(job_dir)


@pytest.mark.slow
def test_a_finished_run_is_extended_to_more_iterations_from_its_final_checkpoint(tmp_path):
    """30 then 60 iterations end exactly as 60 from the start (with constant learning rates: the toy
    recipe's linear decay follows the longer schedule, see test_train.py)."""
    extended, constant = tmp_path / "extended", [*TINY, "train.lr_decay=constant"]
    for iterations in (30, 60):
        run = subprocess.run([sys.executable, "run.py", *constant, f"train.iterations={iterations}",
                              f"hydra.run.dir={extended}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
    assert f"{extended} holds a run complete at iteration 30: extending it to train.iterations=60" in run.stdout
    assert f"resumed from {RunFiles(extended).checkpoint} at iteration 30" in run.stdout
    subprocess.run([sys.executable, "run.py", *constant, "train.iterations=60", f"hydra.run.dir={tmp_path / 'straight'}"],
                   cwd=ROOT, check=True, capture_output=True)
    run_files_equal(tmp_path / "straight", extended)
    assert [json.loads(line)["step"] for line in RunFiles(extended).metrics.read_text().splitlines()] == \
           [10, 20, 30, 40, 50, 60]


def test_an_unreadable_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    files = RunFiles(tmp_path)
    files.save_checkpoint({"step": 10})
    files.save_checkpoint({"step": 20})
    assert files.load_checkpoint() == {"step": 20}
    files.checkpoint.write_bytes(files.checkpoint.read_bytes()[:50])  # cut short, as by a full disk
    assert files.load_checkpoint() == {"step": 10}
    assert f"checkpoint {files.checkpoint} (RuntimeError: PytorchStreamReader failed reading zip archive: " \
           "failed finding central directory) is unreadable" in caplog.text
    files.previous_checkpoint.write_bytes(b"")
    with pytest.raises(RunDirError, match=f"no readable checkpoint: {files.checkpoint} .*; "
                                          f"{files.previous_checkpoint} \\(EOFError\\)"):
        files.load_checkpoint()


@pytest.mark.slow
def test_unreadable_checkpoints_stop_the_run_instead_of_starting_over(tmp_path):
    """Starting from iteration 0 would overwrite both checkpoints: a run that cannot read any of
    them stops before training, naming them, and leaves every file of the directory as it was."""
    command = [sys.executable, "run.py", *TINY, f"hydra.run.dir={tmp_path}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    files = RunFiles(tmp_path)
    files.results.unlink()  # as if killed before its end: the next start resumes
    files.checkpoint.write_bytes(files.checkpoint.read_bytes()[:1000])  # cut short
    files.previous_checkpoint.write_bytes(b"not a checkpoint")
    ours = [path for path in files_below(tmp_path)  # Hydra's copy, the log and the lock aside
            if ".hydra" not in path.parts and path not in (tmp_path / "run.log", files.lock)]
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in ours}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"stopped: no readable checkpoint: {files.checkpoint} (RuntimeError: PytorchStreamReader failed " \
           f"reading zip archive: failed finding central directory); {files.previous_checkpoint} (UnpicklingError: " \
           f"Weights only load failed). Not starting over from iteration 0 over them: restore a readable copy to " \
           f"resume, or delete {files.checkpoint.parent} to start this run over" in output
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files_below(tmp_path) if path in before} \
           == before and files.checkpoint in before and files.metrics in before
    shutil.rmtree(files.checkpoint.parent)  # starting over, deliberately
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed" not in again.stdout
    assert [json.loads(line)["step"] for line in files.metrics.read_text().splitlines()] == [10, 20]


def wait_for_training(process: subprocess.Popen, files: RunFiles, step: int = 0) -> None:
    """Until the run has checkpointed `step` (0: training has started, the directory is held)."""
    deadline = time.monotonic() + 120
    while checkpoint_step(files.dir) < step:
        assert time.monotonic() < deadline and process.poll() is None, "training never got there"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_process_in_a_run_directory_stops_at_once_naming_the_first(tmp_path):
    overrides = [*TINY, "train.iterations=300", "ckpt.every=50", "eval.every=150", f"hydra.run.dir={tmp_path}"]
    first = subprocess.Popen([sys.executable, "run.py", *overrides], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    files = RunFiles(tmp_path)
    wait_for_training(first, files)
    hydra_files = {path: path.read_bytes() for path in (tmp_path / ".hydra").iterdir()}
    second = subprocess.run([sys.executable, "run.py", *overrides, "seed=1"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    output = second.stdout + second.stderr
    assert second.returncode == 1 and "Traceback" not in output
    assert f"stopped: {tmp_path} is in use by another process (pid {first.pid} on host {socket.gethostname()}): " \
           "one process per run directory" in output
    first.communicate(timeout=600)
    assert first.returncode == 0
    # The second process wrote nothing: not even Hydra's copy of its config or a log line.
    assert {path: path.read_bytes() for path in (tmp_path / ".hydra").iterdir()} == hydra_files
    assert "in use by another process" not in (tmp_path / "run.log").read_text()
    results = files.read_results()
    assert (results["status"], results["step"], results["seed"]) == ("complete", 300, 0)
    assert [json.loads(line)["step"] for line in files.metrics.read_text().splitlines()] == [150, 300]
    assert "seed: 0" in files.config.read_text()


@pytest.mark.slow
def test_a_run_killed_while_holding_its_directory_does_not_block_the_next(tmp_path):
    command = [sys.executable, "run.py", *TINY, "train.iterations=200", "ckpt.every=20", f"hydra.run.dir={tmp_path}"]
    files = RunFiles(tmp_path)
    killed = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_training(killed, files, step=20)
    killed.kill()  # SIGKILL: no handler runs, the lock file stays behind naming a dead process
    killed.wait()
    assert files.lock.read_text() == f"pid {killed.pid} on host {socket.gethostname()}"
    killed_at = checkpoint_step(files.dir)
    resumed = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and f"at iteration {killed_at}" in output
    assert files.read_results()["status"] == "complete"
    assert files.lock.read_text() == f"pid {resumed.pid} on host {socket.gethostname()}"


def run_files_equal(a: Path, b: Path) -> None:
    """Two run directories hold the same training: parameters, optimizer and RNG states, every
    evaluation and the final results (wall-clock times aside)."""
    saved_a, saved_b = (torch.load(RunFiles(d).checkpoint, weights_only=True) for d in (a, b))
    for part in ("generator", "critic", "opt_g", "opt_d", "rng", "step", "last_eval", "best"):
        assert_same(saved_a[part], saved_b[part])
    evals_a, evals_b = ([{k: v for k, v in json.loads(line).items() if k != "elapsed"}
                         for line in RunFiles(d).metrics.read_text().splitlines()] for d in (a, b))
    assert evals_a == evals_b and len({e["step"] for e in evals_a}) == len(evals_a)  # each evaluation once
    results_a, results_b = (RunFiles(d).read_results() for d in (a, b))
    assert {**results_a, "wall_time": 0} == {**results_b, "wall_time": 0}


def assert_same(x, y) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        for key in x:
            assert_same(x[key], y[key])
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert_same(u, v)
    elif isinstance(x, torch.Tensor):
        assert torch.equal(x, y)
    else:
        assert x == y


def kill_at_random_moments(command: list[str], files: RunFiles, kills: int, seed: int) -> int:
    """Start `command` again and again, SIGKILLing it a random moment after its training has
    started (so the kills fall in training steps, checkpoint writes and evaluations alike), until
    `kills` kills have landed; then let it finish. Returns the number of starts."""
    rng = random.Random(seed)
    landed = starts = 0
    while True:
        starts += 1
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if landed == kills:
            assert process.wait(timeout=600) == 0
            return starts
        while checkpoint_step(files.dir) < 0 and process.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.kill()
            landed += 1
        process.wait()
        assert starts < 20, "the run never finished"


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resuming_ends_exactly_as_an_uninterrupted_run(tmp_path):
    overrides = [*TINY, "train.iterations=600", "ckpt.every=20", "eval.every=150", "metrics.num_samples=2000"]
    calm, killed = tmp_path / "calm", tmp_path / "killed"
    subprocess.run([sys.executable, "run.py", *overrides, f"hydra.run.dir={calm}"], cwd=ROOT, check=True,
                   capture_output=True)
    command = [sys.executable, "run.py", *overrides, f"hydra.run.dir={killed}"]
    starts = kill_at_random_moments(command, RunFiles(killed), kills=3, seed=0)
    assert starts == 4
    run_files_equal(calm, killed)
    assert not list(killed.rglob("*.tmp"))  # no half-written file left behind


def test_a_torn_metrics_line_from_a_kill_mid_append_is_dropped_on_resume(tmp_path):
    files = RunFiles(tmp_path)
    files.append_metrics({"step": 10, "w1": 0.5})
    files.append_train_stats({"step": 10, "critic_loss": -0.1})
    for log in (files.metrics, files.train_stats):
        with log.open("a") as f:
            f.write('{"step": 20, "w1"')  # the process died here
    files.drop_metrics_after(10)
    assert files.metrics.read_text() == '{"step": 10, "w1": 0.5}\n'
    assert files.train_stats.read_text() == '{"step": 10, "critic_loss": -0.1}\n'


@pytest.fixture
def small_disk(tmp_path):
    """16 MiB, to fill."""
    yield from tmpfs(tmp_path / "disk", "size=16m")


@pytest.fixture
def disk_of_few_files(tmp_path):
    """Room for 64 files (inodes): once they are used, the disk is full for new files only."""
    yield from tmpfs(tmp_path / "disk", "size=64m,nr_inodes=64")


def fill_after_a_checkpoint(disk: Path, log_every: int) -> tuple[list[str], RunFiles, str, Path]:
    """Start a long tiny run on `disk`, fill the disk once it has checkpointed iteration 50, and
    wait for the run to stop: (its command, its files, its output, the filler file)."""
    run_dir = disk / "run"
    command = [sys.executable, "run.py", *TINY, "train.iterations=3000", "ckpt.every=50", "eval.every=3000",
               f"train.log_every={log_every}", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    files = RunFiles(run_dir)
    while checkpoint_step(files.dir) < 50:
        assert process.poll() is None, "training ended before the disk was filled"
        time.sleep(0.05)
    filler = fill(disk)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    return command, files, output, filler


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_a_message_and_keeps_the_newest_checkpoint(small_disk):
    # Nothing else is written between checkpoints (no evaluation, no train.jsonl line): the
    # checkpoint is the write the full disk stops.
    command, files, output, filler = fill_after_a_checkpoint(small_disk, log_every=3000)
    intact = torch.load(files.checkpoint, weights_only=True)["step"]
    assert f"No space left on device while writing {files.checkpoint}; it was left as it was" in output
    assert f"The newest checkpoint, {files.checkpoint}, is intact (iteration {intact}): free some space " \
           "and run the same command to resume from it" in output
    assert "Traceback" not in output and files.read_results() is None  # unfinished, not crashed
    assert not list(files.checkpoint.parent.glob("*.tmp"))
    filler.unlink()
    # Resumed as the same run, shortened to end soon after the checkpoint (a run's length may shrink).
    shortened = [f"train.iterations={intact + 50}" if o.startswith("train.iterations=") else o for o in command]
    resumed = subprocess.run(shortened, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"at iteration {intact}" in resumed.stdout
    assert files.read_results()["status"] == "complete"


def use_every_inode(disk: Path) -> list[Path]:
    """Create empty files until the disk has no inode left."""
    made = []
    while True:
        try:
            (disk / f"filler{len(made)}").touch()
        except OSError as error:
            assert error.errno == errno.ENOSPC
            return made
        made.append(disk / f"filler{len(made)}")


@pytest.mark.slow
def test_a_full_disk_while_appending_a_log_line_names_the_log_and_the_run_resumes(small_disk):
    command, files, output, filler = fill_after_a_checkpoint(small_disk, log_every=1)
    assert "Traceback" not in output
    assert f"No space left on device while writing {files.train_stats}; a line it cut short is dropped on resume" \
        in output
    filler.unlink()
    intact = torch.load(files.checkpoint, weights_only=True)["step"]
    shortened = [f"train.iterations={intact + 10}" if o.startswith("train.iterations=") else o for o in command]
    resumed = subprocess.run(shortened, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and files.read_results()["status"] == "complete"
    steps = [json.loads(line)["step"] for line in files.train_stats.read_text().splitlines()]
    assert steps == list(range(1, intact + 11))  # each step once: the torn and redone lines dropped


@pytest.mark.slow
def test_a_full_disk_while_writing_the_results_stops_the_run_as_for_a_checkpoint(disk_of_few_files, tmp_path):
    """A run whose training is done resumes its final checkpoint and only has results.json left to
    write (the first start is stopped there by deleting it); the disk is full for new files. W&B's
    folder is a link to another disk, so that W&B can record how the run ended."""
    run_dir, wandb_dir = disk_of_few_files / "run", tmp_path / "wandb"
    run_dir.mkdir()
    wandb_dir.mkdir()
    (run_dir / "wandb").symlink_to(wandb_dir)
    command = [sys.executable, "run.py", *[o for o in TINY if not o.startswith("logger")], "logger.mode=offline",
               f"hydra.run.dir={run_dir}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    files = RunFiles(run_dir)
    files.results.unlink()
    fillers = use_every_inode(disk_of_few_files)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"stopped: No space left on device while writing {files.results}; it was left as it was. The newest " \
           f"checkpoint, {files.checkpoint}, is intact (iteration 20): free some space and run the same command " \
           "to resume from it" in output
    assert not files.results.exists() and not list(run_dir.glob(".*.tmp"))
    first, stopped = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))  # the W&B run and its resumption
    assert [record.exit.exit_code for record in wandb_records(stopped) if record.HasField("exit")] == [1]
    for filler in fillers:
        filler.unlink()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and files.read_results()["status"] == "complete"


@pytest.mark.slow
def test_a_checkpoint_from_another_config_is_refused(train_tiny, tmp_path):
    train_tiny("train.iterations=10", run_dir=tmp_path / "a")
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(RunFiles(tmp_path / "a").checkpoint, RunFiles(tmp_path / "b").checkpoint)
    with pytest.raises(ConfigError, match=(
        r"checkpoint .*last.pt was written by another config \(arch.width: 32 there, 48 now\); not mixing results")):
        train_tiny("arch.width=48", run_dir=tmp_path / "b")


# 20 tiny jobs (10 seeds x 2 methods) through the sequential launcher, whose process is the job's.
SOAK_STUDY = ["-m", "seed=0,1,2,3,4,5,6,7,8,9", "method=wgan_gp,dcgan", *TINY, "study=soak"]


@pytest.mark.slow
def test_soak_a_study_killed_again_and_again_ends_as_an_uninterrupted_one(tmp_path):
    calm, soaked = tmp_path / "calm", tmp_path / "soaked"
    subprocess.run([sys.executable, "run.py", *SOAK_STUDY, f"hydra.sweep.dir={calm}"], cwd=ROOT, check=True,
                   capture_output=True)
    rng = random.Random(1)
    kills, starts = 0, 0
    while True:
        starts += 1
        assert starts <= 30, "the study never finished"
        launcher = subprocess.Popen([sys.executable, "run.py", *SOAK_STUDY, f"hydra.sweep.dir={soaked}"], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
        try:
            output, _ = launcher.communicate(timeout=rng.uniform(3.0, 9.0) if kills < 5 else 600)
        except subprocess.TimeoutExpired:  # a node vanishing: the launcher and its job die at once
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
            kills += 1
            continue
        assert launcher.returncode == 0, output[-3000:]
        break
    assert kills >= 5
    calm_jobs, soaked_jobs = ({job.where: job for job in records_from_dir(d)} for d in (calm, soaked))
    assert len(soaked_jobs) == 20 and soaked_jobs == calm_jobs  # statuses, methods, final metrics
    for job in calm_jobs:
        run_files_equal(calm / job, soaked / job)


def files_below(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_a_run_writes_only_into_its_run_directory_and_caches(tmp_path):
    home, work, scratch = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for folder in (home, work, scratch):
        folder.mkdir()
    repository = {p: p.stat().st_mtime_ns for p in files_below(ROOT / "conf") | files_below(ROOT / "wgan")}
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(scratch), "WANDB_MODE": "offline"}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    subprocess.run([sys.executable, str(ROOT / "run.py"), *[o for o in TINY if not o.startswith("logger")],
                    "hydra.run.dir=run"], cwd=work, env=env, check=True, capture_output=True)
    written = files_below(tmp_path)
    outside = sorted(str(p.relative_to(tmp_path)) for p in written
                     if not p.is_relative_to(work / "run") and not p.is_relative_to(home / ".cache"))
    assert outside == []
    assert {p: p.stat().st_mtime_ns for p in repository} == repository


class RunsCode:
    """Unpickling this would touch a file: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_holding_pickled_code_is_refused_without_running_it(tmp_path, caplog):
    files, marker = RunFiles(tmp_path), tmp_path / "code-ran"
    files.checkpoint.parent.mkdir()
    torch.save({"step": 5, "payload": RunsCode(marker)}, files.checkpoint)
    with pytest.raises(RunDirError, match=f"no readable checkpoint: {files.checkpoint} \\(UnpicklingError: "):
        files.load_checkpoint()
    assert not marker.exists()


def test_the_report_reads_results_as_plain_data(tmp_path):
    """Interpolations and YAML in a results file are text to the report, never evaluated."""
    job = tmp_path / "study" / "job"
    job.mkdir(parents=True)
    (job / "results.json").write_text(json.dumps({
        "status": "complete", "method": "${oc.env:HOME}", "dataset": "!!python/object/apply:os.system ['true']",
        "arch": "random", "arch_seed": 0, "seed": 0, "final": {"hq_fraction": 0.5}}))
    (jobs,) = records_from_dir(tmp_path / "study")
    assert jobs.method == "${oc.env:HOME}" and jobs.key[0] == "!!python/object/apply:os.system ['true']"


@pytest.mark.slow
def test_files_are_created_with_the_users_umask(tmp_path):
    """A study shared by a group (umask 002) stays readable and writable by the group: every file
    of a run, those written atomically included, gets 0666 less the umask, as open() gives."""
    subprocess.run([sys.executable, "run.py", *TINY, f"hydra.run.dir={tmp_path}"], cwd=ROOT, check=True,
                   capture_output=True, umask=0o002)
    files = RunFiles(tmp_path)
    written = [files.config, files.results, files.metrics, files.checkpoint, files.previous_checkpoint]
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in written} == {
        path.name: "0o664" for path in written}


def damage_results(path: Path, how: str) -> None:
    """Replace a finished run's results.json by a damaged or hostile one."""
    path.unlink()
    if how == "a folder":
        path.mkdir()
        (path / "notes.txt").write_text("kept")
    elif how == "a FIFO":
        os.mkfifo(path)  # a plain read would block for ever
    else:
        path.write_bytes(DAMAGED_RESULTS[how])


DAMAGED_RESULTS = {
    "empty": b"",
    "a list": b"[]",
    "not UTF-8": b'{"status": "complete", "method": "\xff\xfe"}',
    "an object without a status": b'{"final": {"w1": 0.1}}',
    "an unknown status": b'{"status": "done"}',
    "nested 100,000 deep": b'{"status": "complete", "final": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "larger than 16 MiB": b'{"status": "complete", "traceback": "' + b"x" * (17 * 2**20) + b'"}',
}


@pytest.mark.parametrize("how", [*DAMAGED_RESULTS, "a folder", "a FIFO"])
def test_a_damaged_results_file_reads_as_no_results(tmp_path, how):
    files = RunFiles(tmp_path)
    files.write_results({"status": "complete"})
    assert files.read_results() == {"status": "complete"}
    damage_results(files.results, how)
    assert files.read_results() is None


@pytest.mark.slow
def test_damaged_results_are_unfinished_jobs_for_the_study_the_report_and_the_run(tmp_path):
    """A study whose finished results.json files were damaged (empty, a list, not UTF-8, a folder):
    the report lists those jobs as unfinished, and the same study command counts them unfinished
    and trains them again, each from its checkpoint; a folder is moved aside, its contents kept."""
    ways = ["empty", "a list", "not UTF-8", "a folder"]
    command = [sys.executable, "run.py", "-m", "seed=0,1,2,3", *TINY, "study=damaged", f"hydra.sweep.dir={tmp_path}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    jobs = {RunFiles(job).read_results()["seed"]: RunFiles(job) for job in tmp_path.iterdir() if job.is_dir()}
    finals = {seed: files.read_results()["final"] for seed, files in jobs.items()}
    for seed, how in enumerate(ways):
        damage_results(jobs[seed].results, how)
    assert [job.status for job in records_from_dir(tmp_path)] == ["unfinished"] * 4

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "study damaged: 4 jobs (0 finished already, skipped)" in again.stdout
    assert again.stdout.count("resumed from") == 4 and "already holds a finished run" not in again.stdout
    for seed, files in jobs.items():
        assert files.read_results()["status"] == "complete" and files.read_results()["final"] == finals[seed]
    [aside] = jobs[3].dir.glob("results.json.folder-*")
    assert (aside / "notes.txt").read_text() == "kept"
    assert f"{jobs[3].results} is a folder, not a run's results: moved to {aside}" in again.stdout
    assert [job.status for job in records_from_dir(tmp_path)] == ["complete"] * 4


@pytest.mark.slow
def test_a_damaged_config_file_does_not_lock_out_the_checkpoint_that_holds_the_config(tmp_path):
    """config.yaml is written atomically, but a copy or an editor can still cut it short: the run
    killed mid-training resumes from its checkpoint, whose config decides, and writes config.yaml
    again; a damaged config.yaml beside the checkpoint of another config is still refused."""
    overrides = [*TINY, "train.iterations=600", "ckpt.every=20", "eval.every=600", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "run.py", *overrides]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = RunFiles(tmp_path)
    deadline = time.monotonic() + 120
    while checkpoint_step(files.dir) < 20:
        assert time.monotonic() < deadline and process.poll() is None, "training never checkpointed"
        time.sleep(0.05)
    process.kill()
    process.wait()
    killed_at = checkpoint_step(files.dir)
    config = files.config.read_bytes()
    for damaged in (b"- a list\n", config[:1000] + b"\xff\n", config[: len(config) // 2]):
        files.config.write_bytes(damaged)
        with pytest.raises(ConfigError, match=f"^{files.config} is not a|^{tmp_path} holds a run of another config"):
            run(compose_config([*overrides[:-1], "arch.width=48"]), tmp_path)  # another config is still refused
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)  # cut in half
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert (f"{files.config} is damaged or edited: the checkpoint {files.checkpoint}, which holds this run's config, "
            "decides (") in resumed.stdout
    assert f"resumed from {files.checkpoint} at iteration {killed_at}" in resumed.stdout
    assert files.config.read_bytes() == config and files.read_results()["status"] == "complete"


@pytest.mark.slow
def test_the_report_survives_a_hostile_study_tree_with_exact_counts(tmp_path):
    """Symlink loops, a results.json nested 100,000 deep, one of 50 MB, a FIFO: the report ends
    within seconds, counts each job once and lists the damaged ones as unfinished."""
    study = tmp_path / "study"
    for seed in range(3):
        job = study / "runs" / f"seed={seed}"
        job.mkdir(parents=True)
        (job / "results.json").write_text(json.dumps({
            "status": "complete", "method": "wgan_gp", "dataset": "toy", "arch": "mlp", "arch_seed": None,
            "seed": seed, "final": {"w1": 0.1 * seed}}))
    (study / "runs" / "loop").symlink_to("..")  # study/runs/loop/runs/loop/...
    (study / "self").symlink_to(".")
    (study / "runs" / "seed=0" / "samples").mkdir()
    (study / "runs" / "again").symlink_to("seed=0")  # the same job through a link: counted once
    for name, content in (("deep", DAMAGED_RESULTS["nested 100,000 deep"]),
                          ("huge", b'{"status": "complete", "traceback": "' + b"x" * (50 * 2**20) + b'"}')):
        (study / name).mkdir()
        (study / name / "results.json").write_bytes(content)
    (study / "fifo").mkdir()
    os.mkfifo(study / "fifo" / "results.json")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "wgan.report", str(study), "--metric", "w1", "--thresholds", "0.15",
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "Jobs: 3 complete, 0 diverged (fail at every threshold), 0 crashed, 3 unfinished" in done.stdout
    assert "| 0.15 | 2/3 |" in done.stdout
    assert "## Unfinished (3)\n\n- `deep`\n- `fifo`\n- `huge`\n" in done.stdout
    assert seconds < 60  # torch's import is most of it (about 15 s on this loaded 2-core machine)


@pytest.mark.slow
def test_the_report_writes_each_file_atomically_and_a_full_disk_keeps_the_old_ones(small_disk, tmp_path):
    study = tmp_path / "study"
    job = study / "a"
    job.mkdir(parents=True)
    record = {"status": "complete", "method": "gan", "dataset": "toy", "arch": "mlp", "seed": 0, "final": {"w1": 0.1}}
    (job / "results.json").write_text(json.dumps(record))
    report = [sys.executable, "-m", "wgan.report", str(study), "--metric", "w1", "--thresholds", "0.2",
              "--out", str(small_disk)]
    subprocess.run(report, cwd=ROOT, check=True, capture_output=True)
    written = {path.name: path.read_bytes() for path in small_disk.iterdir()}
    assert sorted(written) == ["report.csv", "report.md", "success.png"]
    (job / "results.json").write_text(json.dumps({**record, "final": {"w1": 0.3}}))  # a new report would differ
    filler = fill(small_disk)
    done = subprocess.run(report, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"No space left on device while writing {small_disk / 'report.md'}; it was left as it was" in done.stderr
    filler.unlink()
    assert {path.name: path.read_bytes() for path in small_disk.iterdir()} == written  # no temporary file left

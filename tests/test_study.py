"""Studies as Hydra multiruns: job expansion, the fixed study directory (skip, resume, refuse),
the joblib and submitit launchers, and one failing job not stopping the others."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, checkpoint_step
from wgan.config import compose_config
from wgan.files import RunFiles
from wgan.report import build_report, records_from_dir
from wgan.schema import ConfigError
from wgan.study import cpu_share, expand_jobs, job_dir_name, short_dir_name
from wgan.train import run

# A robustness_toy study small enough for a test: 2 architectures x 2 methods, 6 iterations each.
TINY_STUDY = ["sweeps=robustness_toy", "arch.count=2", "train.iterations=6", "train.batch_size=16",
              "train.log_every=3", "eval.every=6", "ckpt.every=3", "metrics.num_samples=100", "logger=none",
              "arch.g.width=[16]", "arch.d.width=[16]", "arch.g.depth=[4]", "arch.d.depth=[4]"]


def sweep_params(*overrides: str):
    return compose_config(list(overrides), return_hydra_config=True).hydra.sweeper.params


def test_arch_random_sweeps_200_architectures_crossed_with_the_command_line():
    params = sweep_params("arch=random")
    jobs = expand_jobs(["arch=random", "lipschitz=gp,clip"], params)
    assert len(jobs) == 400
    assert {(job[0], job[2]) for job in jobs} == {(f"arch.seed={s}", f"lipschitz={m}")
                                                   for s in range(200) for m in ("gp", "clip")}
    assert len(expand_jobs(["arch=random", "arch.count=8", "lipschitz=gp,clip"], sweep_params("arch=random", "arch.count=8"))) == 16
    # An explicit seed wins over the option's sweep.
    assert expand_jobs(["arch=random", "arch.seed=3", "lipschitz=gp,clip"], params) == [
        ["arch.seed=3", "arch=random", "lipschitz=gp"], ["arch.seed=3", "arch=random", "lipschitz=clip"]]


@pytest.mark.parametrize("overrides", [
    ["arch=random", "lipschitz=gp,clip"], ["method=dcgan,wgan_gp", "seed=range(3)", "arch.seed=1", "seed=4,5"],
    ["+x=choice(1,2)", "train.iterations=10"], ["a=1,2", "b=3,4", "a=5"],
])
def test_jobs_expand_as_hydras_basic_sweeper_launches_them(overrides):
    """expand_jobs uses Hydra's public override parser; the oracle is the sweeper Hydra runs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {"arch.seed": "range(4)", "a": "0"}
    arguments = [f"{key}={value}" for key, value in params.items()] + overrides
    (hydra_jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    assert expand_jobs(overrides, params) == hydra_jobs


@pytest.mark.parametrize("study,jobs,swept", [
    ("robustness_paper", 400, {"method": {"dcgan", "wgan_gp"}, "arch.seed": {str(s) for s in range(200)}}),
    ("figure2", 28, {"method": {"wgan_gp_beta05", "wgan_clip", "dcgan", "lsgan"},
                     "arch": {"dcgan", "dcgan_constfilter", "mlp_generator", "dcgan_nonorm", "dcgan_gated",
                              "dcgan_tanh", "resnet101"}}),
    ("figure3", 4, {"method": {"wgan_clip", "wgan_gp_rmsprop", "wgan_gp_beta05", "dcgan"}}),
    ("robustness_toy", 20, {"method": {"dcgan", "wgan_gp"}, "arch.seed": {str(s) for s in range(10)}}),
    ("robustness_fmnist", 20, {"method": {"dcgan", "wgan_gp"}, "arch.seed": {str(s) for s in range(10)}}),
    ("appendix_c", 348, {"method": {"wgan_gp"}, "lipschitz": {"gp", "gp_onesided"},
                         "arch.seed": {str(s) for s in range(174)}}),
    ("appendix_c_toy", 20, {"method": {"wgan_gp"}, "lipschitz": {"gp", "gp_onesided"},
                            "arch.seed": {str(s) for s in range(10)}}),
    ("appendix_d_toy", 18, {"arch.nonlinearity": {"elu_tf1", "elu", "softplus"}, "seed": {str(s) for s in range(6)}}),
    ("appendix_d_fmnist", 6, {"arch.d_nonlinearity": {"elu_tf1", "elu", "softplus"}, "seed": {"0", "1"}}),
])
@pytest.mark.slow
def test_each_study_expands_to_its_jobs(study, jobs, swept):
    cfg = compose_config([f"sweeps={study}"], return_hydra_config=True)
    assert cfg.study == study
    expanded = expand_jobs([f"sweeps={study}"], cfg.hydra.sweeper.params)
    assert len(expanded) == jobs
    for key, values in swept.items():
        assert {o.split("=", 1)[1] for job in expanded for o in job if o.startswith(f"{key}=")} == values


def test_joblib_jobs_share_the_cores_without_oversubscribing():
    assert cpu_share({"n_jobs": 2}, cpus=16) == 8
    assert cpu_share({"n_jobs": -1}, cpus=16) == 1  # joblib's -1: one job per core
    assert cpu_share({"n_jobs": 32}, cpus=16) == 1
    assert cpu_share({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, cpus=16) is None


def multirun(study_dir: Path, *overrides: str, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "run.py", "-m", *with_overrides(TINY_STUDY, *overrides), f"hydra.sweep.dir={study_dir}"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def statuses(study_dir: Path) -> dict[tuple[int, str], str]:
    """{(architecture seed, method): status} of the study's finished jobs."""
    results = [json.loads(p.read_text()) for p in study_dir.glob("*/results.json")]
    return {(r["arch_seed"], r["method"]): r["status"] for r in results}


@pytest.mark.slow
def test_robustness_toy_through_joblib_then_skipped_on_the_second_run(tmp_path):
    first = multirun(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "study robustness_toy: 4 jobs (0 finished already, skipped)" in first.stdout
    assert sorted(statuses(tmp_path)) == [(0, "gan"), (0, "wgan_gp"), (1, "gan"), (1, "wgan_gp")]
    # One directory per job, named by its overrides (shortened when long), as the study computes them.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        job_dir_name([f"arch.seed={s}", f"method={m}", *TINY_STUDY]) for s in (0, 1) for m in ("dcgan", "wgan_gp"))
    assert set(statuses(tmp_path).values()) <= {"complete", "diverged"}
    report = build_report(records_from_dir(tmp_path), metric="w1", thresholds=[0.0])
    assert report.scored == {"gan": 2, "wgan_gp": 2} and report.paired == 2
    written = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/results.json")}

    second = multirun(tmp_path)
    assert second.returncode == 0
    assert "4 jobs (4 finished already, skipped)" in second.stdout
    assert second.stdout.count("already holds a finished run") == 4 and "complete after" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/results.json")} == written


@pytest.mark.slow
def test_a_study_grows_by_more_architectures_skipping_the_finished_ones(tmp_path):
    first = multirun(tmp_path, "method=wgan_gp")  # TINY_STUDY's arch.count=2
    assert first.returncode == 0, first.stdout[-3000:]
    written = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob("*/results.json")}
    grown = multirun(tmp_path, "method=wgan_gp", "arch.count=3")
    assert grown.returncode == 0, grown.stdout[-3000:]
    assert "study robustness_toy: 3 jobs (2 finished already, skipped)" in grown.stdout
    assert grown.stdout.count("already holds a finished run") == 2
    assert {name: mtime for name, mtime in ((p.parent.name, p.stat().st_mtime_ns) for p in tmp_path.glob("*/results.json"))
            if name in written} == written and len(written) == 2
    assert sorted(statuses(tmp_path)) == [(0, "wgan_gp"), (1, "wgan_gp"), (2, "wgan_gp")]
    # arch.count is no part of a job's identity: not in its directory's name, nor in the config check.
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert names == sorted(job_dir_name(with_overrides(TINY_STUDY, "method=wgan_gp", f"arch.seed={s}")) for s in range(3))
    assert not [name for name in names if "arch.count" in name]


@pytest.mark.slow
def test_robustness_toy_through_submitit_local_where_a_requeue_signal_after_the_job_is_ignored(tmp_path):
    """Each job's process sends itself submitit's SIGUSR2 as it exits (tests/late_signal.py): the
    finished job is neither requeued nor killed (seen on SLURM: a time-limit warning in the last
    milliseconds of a finished job, which SLURM then recorded as FAILED)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    result = multirun(tmp_path, "hydra/launcher=submitit_local", "arch.count=1", "hydra.launcher.timeout_min=10",
                      "+hydra.callbacks.late_signal._target_=late_signal.RequeueSignalAtExit", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(statuses(tmp_path)) == {(0, "gan"), (0, "wgan_gp")}
    assert set(statuses(tmp_path).values()) <= {"complete", "diverged"}
    logs = sorted((tmp_path / ".submitit").glob("*/*_log.err"))
    assert len(logs) == 2 and not [log for log in logs if "SIGUSR2" in log.read_text()]


def with_overrides(base: list[str], *overrides: str) -> list[str]:
    """`base` with the keys of `overrides` replaced (Hydra would take the last, but names both)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [o for o in base if o.split("=", 1)[0] not in keys] + list(overrides)


@pytest.mark.slow
def test_a_killed_job_resumes_from_its_checkpoint(tmp_path):
    overrides = with_overrides(TINY_STUDY, "arch.seed=0", "method=wgan_gp", "train.iterations=400", "ckpt.every=20",
                               "eval.every=400")
    command = [sys.executable, "run.py", "-m", *overrides, f"hydra.sweep.dir={tmp_path}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    job = tmp_path / job_dir_name(overrides)
    deadline = time.monotonic() + 120
    while checkpoint_step(job) < 40:
        assert time.monotonic() < deadline and process.poll() is None, "the job never checkpointed"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_step(job)
    assert 40 <= killed_at < 400 and not (job / "results.json").exists()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert _step_in_log(resumed.stdout) >= killed_at
    assert json.loads((job / "results.json").read_text())["step"] == 400


@pytest.mark.slow
def test_workers_of_a_killed_joblib_launcher_checkpoint_and_stop(tmp_path):
    """Only the launcher is killed: its workers must not train on, or the relaunched study would
    run the same jobs twice in the same directories."""
    command = [sys.executable, "run.py", "-m", *with_overrides(TINY_STUDY, "arch.count=1", "train.iterations=100000",
                                                                "ckpt.every=50"), f"hydra.sweep.dir={tmp_path}"]
    launcher = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len([job for job in tmp_path.glob("*/") if checkpoint_step(job) >= 50]) < 2:
        assert time.monotonic() < deadline and launcher.poll() is None, "the jobs never checkpointed"
        time.sleep(0.2)
    launcher.kill()
    launcher.wait()
    logs = [job / "run.log" for job in tmp_path.glob("*/")]
    deadline = time.monotonic() + 30
    while not all("SIGTERM during" in log.read_text() for log in logs):
        assert time.monotonic() < deadline, "a worker trained on after its launcher died"
        time.sleep(0.2)
    for log in logs:
        text = log.read_text()
        assert f"the launcher (pid {launcher.pid}) is gone: stopping this job at a checkpoint" in text
        stopped_at = int(text.split("checkpointed at iteration ")[1].split(";")[0])
        assert checkpoint_step(log.parent) == stopped_at


def test_long_override_lists_get_short_distinct_job_directories():
    long_name = ",".join(f"train.key{i}={i}" for i in range(40))
    short = short_dir_name(long_name)
    assert len(short.encode()) <= 200 and short.startswith(long_name[:100])
    assert short != short_dir_name(long_name + "1") and short_dir_name("arch.seed=3") == "arch.seed=3"


def _step_in_log(output: str) -> int:
    line = next(line for line in output.splitlines() if "resumed from" in line)
    return int(line.rsplit("at iteration ", 1)[1].split()[0])


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_others(tmp_path):
    result = multirun(tmp_path, "arch.count=1", "method=wgan_gp", "lipschitz.lam=0.1,-1")
    assert result.returncode != 0  # the sweep reports the failure at its end
    assert "lipschitz.lam=-1.0 is out of range: must be >= 0" in result.stdout + result.stderr
    assert list(statuses(tmp_path).values()) == ["complete"]


@pytest.mark.slow
def test_a_setting_every_job_fails_on_stops_the_study_once_before_any_job(tmp_path):
    result = multirun(tmp_path, "arch.count=2", "train.batch_size=0")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert output.count("invalid config: every job of the study would fail: train.batch_size=0 is out of range: "
                        "must be >= 1") == 1
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # no job started


@pytest.mark.slow
def test_a_job_held_by_another_process_is_skipped_and_reported(tmp_path):
    held = RunFiles(tmp_path / job_dir_name(with_overrides(TINY_STUDY, "arch.seed=0", "method=wgan_gp")))
    holder = f"pid {os.getpid()} on host {socket.gethostname()}"
    with held.held():  # this test's process trains there, as far as the study can tell
        result = multirun(tmp_path, "arch.count=1")
    output = result.stdout + result.stderr
    assert "study robustness_toy: 2 jobs (0 finished already, skipped)" in output
    assert f"1 held by another process, skipped: {held.dir.name} ({holder})" in output
    assert f"stopped: {held.dir} is in use by another process ({holder})" in output
    assert result.returncode != 0  # the study is not done: the launcher reports the held job at its end
    assert set(statuses(tmp_path)) == {(0, "gan")}
    assert not {"config.yaml", "checkpoints", "results.json", "metrics.jsonl"} & {p.name for p in held.dir.iterdir()}
    again = multirun(tmp_path, "arch.count=1")
    assert again.returncode == 0 and "2 jobs (1 finished already, skipped)" in again.stdout
    assert set(statuses(tmp_path)) == {(0, "gan"), (0, "wgan_gp")}


@pytest.mark.slow
def test_a_study_directory_refuses_a_job_of_another_config(tmp_path):
    tiny = ["logger=none", "arch.width=16", "train.batch_size=16", "train.iterations=2", "eval.every=2",
            "metrics.num_samples=50"]
    run(compose_config(tiny), tmp_path)
    with pytest.raises(ConfigError, match=r"holds a run of another config \(lipschitz.lam: 0.1 there, 0.5 now\)"):
        run(compose_config(tiny + ["lipschitz.lam=0.5"]), tmp_path)
    # Where and how it runs may change: a finished run is then just skipped.
    assert run(compose_config(tiny + ["device=cpu", "threads=1"]), tmp_path)["status"] == "complete"


@pytest.mark.parametrize("given,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_waits_passively_unless_the_user_says_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    out = subprocess.run([sys.executable, "-c", "import wgan, os; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected


def test_a_busy_machine_is_named_with_the_threads_to_use(caplog):
    from wgan.study import limit_threads

    before = torch.get_num_threads()
    cpus = os.cpu_count()
    try:
        with caplog.at_level(logging.WARNING, logger="wgan.study"):
            limit_threads(cpus, load=cpus - 1.0)  # one core free
            limit_threads(1, load=cpus - 1.0)  # fits: no warning
    finally:
        torch.set_num_threads(before)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if cpus > 1:
        assert warnings == [f"the machine is busy (load {cpus - 1.0:.1f} on {cpus} cores) and this run uses {cpus} "
                            f"CPU threads: if it is slow, set threads=1 (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']})"]
    else:
        assert warnings == []


def test_thread_and_core_counts_of_one_are_singular(caplog, monkeypatch):
    from wgan.study import limit_threads

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    try:
        with caplog.at_level(logging.INFO, logger="wgan.study"):
            limit_threads(1, load=0.0)
            limit_threads(2, load=1.0)
    finally:
        torch.set_num_threads(before)
    assert [r.getMessage() for r in caplog.records] == [
        "using 1 CPU thread", "using 2 CPU threads",
        "the machine is busy (load 1.0 on 1 core) and this run uses 2 CPU threads: if it is slow, set threads=1 "
        f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})"]

"""W&B logging, offline by default: the run files hold what was logged, resumes continue the run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, TINY, checkpoint_step
from wgan.config import compose_config, validate
from wandb_records import read_run
from wandb_stand_in import serve
from omegaconf.errors import ValidationError

from wgan import wandb_offline
from wgan.files import RunFiles
from wgan.logger import NullLogger, WandbLogger, WandbMode, log_figure_run, runs_figure_destination
from wgan.schema import ConfigError
from wgan.train import Trainer, run


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def wandb_logs(run_dir):
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


@pytest.mark.slow
def test_offline_run_records_config_scalars_images_and_summary(train_tiny, tmp_path):
    results = train_tiny("logger=wandb", "study=toy_check")
    (log,) = wandb_logs(tmp_path / "run")
    logged = read_run(log)
    assert logged["run"]["group"] == "toy_check" and logged["run"]["job_type"] == "wgan_gp"
    assert logged["run"]["name"] == "wgan_gp-mlp-toy_8gaussians-s0" and logged["run"]["project"] == "wgan"
    assert logged["run"]["config"]["train"]["iterations"] == 20
    assert logged["run"]["config"]["lipschitz"]["lam"] == 0.1  # resolved: the toy recipe applied
    keys = set().union(*logged["history"])
    assert {"train/critic_loss", "train/generator_loss", "train/wasserstein", "train/penalty",
            "train/grad_norm_mean", "train/it_per_s", "eval/modes", "eval/hq_fraction", "eval/w1"} <= keys
    assert any(k.startswith("samples") for k in keys)
    w1 = [row["eval/w1"] for row in logged["history"] if "eval/w1" in row]
    assert w1[-1] == pytest.approx(results["final"]["w1"])
    assert logged["summary"]["status"] == "complete" and logged["summary"]["step"] == 20
    assert logged["summary"]["final"]["w1"] == pytest.approx(results["final"]["w1"])


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    cfg = compose_config(["logger=wandb", "arch.width=32", "train.batch_size=32", "train.iterations=20",
                          "ckpt.every=5", "eval.every=10", "metrics.num_samples=200"])
    original = Trainer.iteration

    def interrupted(self, *args, **kwargs):
        if self.step == 3:  # before the first periodic checkpoint
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "iteration", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path)
    monkeypatch.setattr(Trainer, "iteration", original)
    run(cfg, tmp_path)
    first, second = (read_run(log) for log in wandb_logs(tmp_path))
    assert first["run"]["id"] == second["run"]["id"]
    assert second["summary"]["status"] == "complete"
    assert "status" not in first["summary"]  # the interrupted start left no result


def history_steps(log: Path) -> list[int]:
    return [record.history.step.num for record in wandb_offline.records(log) if record.HasField("history")]


@pytest.mark.slow
def test_a_run_killed_after_logging_past_its_checkpoint_syncs_as_one_history_each_step_once(tmp_path, monkeypatch):
    """SIGKILL once the W&B file holds steps after the newest checkpoint, and a torn last record
    (a kill in the middle of a block write); the resumed start logs only the steps after them, and
    `wandb sync` of both folders to a stand-in server uploads one run with each step once."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)  # each start its own wandb process, as each job's
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB__TRANSACTION_LOG_FLUSH_INTERVAL", "0.1")  # rows reach the file at once
    command = [sys.executable, "run.py", *TINY, "logger=wandb", "train.iterations=200", "ckpt.every=50",
               "eval.every=100", f"hydra.run.dir={tmp_path}"]
    files = RunFiles(tmp_path)
    killed = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while checkpoint_step(files.dir) <= 0:  # the first periodic checkpoint
        assert time.monotonic() < deadline and killed.poll() is None, "never checkpointed"
        time.sleep(0.05)
    while True:  # frozen now and then, until its W&B file holds 4 logged steps past the checkpoint
        assert time.monotonic() < deadline and killed.poll() is None, "never logged past a checkpoint"
        killed.send_signal(signal.SIGSTOP)
        time.sleep(0.3)  # wandb's own process flushes what it was sent (every 0.1 s here)
        first = sorted(tmp_path.glob("wandb/offline-run-*/*.wandb"))[0]
        if history_steps(first)[-1:] >= [checkpoint_step(files.dir) + 20]:
            break
        killed.send_signal(signal.SIGCONT)
        time.sleep(0.03)
    killed.kill()
    killed.wait()
    checkpointed = checkpoint_step(files.dir)
    first.write_bytes(first.read_bytes()[:-3])  # the last record torn
    durable = history_steps(first)
    assert durable[-1] > checkpointed  # steps the resumed start redoes from its checkpoint

    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at iteration {checkpointed}" in resumed.stderr + resumed.stdout
    logs = [next(folder.glob("*.wandb")) for folder in wandb_offline.folders(tmp_path / "wandb", read_run(first)["run"]["id"])]
    assert len(logs) == 2 and logs[0] == first
    assert history_steps(logs[0]) == durable and history_steps(logs[0]) + history_steps(logs[1]) == list(range(5, 201, 5))
    assert max(end for _, end in wandb_offline.whole_records(first.read_bytes())) == first.stat().st_size  # syncable
    earlier, last = (read_run(log) for log in logs)
    assert earlier["run"]["id"] == last["run"]["id"]
    evaluated = [row["_step"] for log in (earlier, last) for row in log["history"] if "eval/w1" in row]
    assert evaluated == [100, 200]
    results = files.read_results()
    assert last["summary"]["status"] == "complete" and last["summary"]["step"] == 200
    assert last["summary"]["final"]["w1"] == pytest.approx(results["final"]["w1"])

    url, server_runs, server = serve()
    sync = [str(Path(sys.executable).with_name("wandb")), "sync", *map(str, logs)]
    try:
        # In the test's folder: `wandb sync` writes its debug log into ./wandb, never into the repository.
        synced = subprocess.run(sync, cwd=tmp_path, capture_output=True, text=True, timeout=60, env={
            **os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": "0" * 40, "WANDB_MODE": "online",
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")})
    finally:
        server.shutdown()
    assert synced.returncode == 0 and "ERROR" not in synced.stderr, synced.stderr
    uploaded = server_runs[earlier["run"]["id"]]
    assert [row["_step"] for row in uploaded["history"]] == list(range(5, 201, 5))
    assert uploaded["summary"]["final"]["w1"] == pytest.approx(results["final"]["w1"])


def test_a_start_killed_before_wandb_wrote_its_run_leaves_no_folder_to_stop_wandb_sync(tmp_path):
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc123"
    folder.mkdir(parents=True)
    (folder / "run-abc123.wandb").write_bytes(b":W&B\xe1\xbe\x00")  # the header alone, as a kill leaves it
    assert wandb_offline.mend(tmp_path / "wandb", "abc123") is None
    assert not folder.exists()


def test_online_mode_without_credentials_fails_before_training(tmp_path):
    cfg = compose_config(["logger=wandb", "logger.mode=online"])
    with pytest.raises(ConfigError, match="logger.mode=online but no W&B credentials were found: run `wandb login`"):
        run(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_wandb_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    assert compose_config().logger.mode == WandbMode.online
    monkeypatch.delenv("WANDB_MODE")
    assert compose_config().logger.mode == WandbMode.offline


def test_a_wrong_wandb_mode_names_the_key(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValidationError, match="Invalid value 'sometimes', expected one of \\[offline, online, disabled\\]"):
        validate(compose_config())


@pytest.mark.slow
def test_each_drawn_architecture_gets_its_own_run_name():
    from wgan.logger import run_name

    names = {run_name("wgan_gp", compose_config(["arch=random", f"arch.seed={s}"])) for s in range(3)}
    assert names == {f"wgan_gp-random{s}-toy_8gaussians-s0" for s in range(3)}
    assert run_name("gan", compose_config(["dataset=cifar10", "arch=dcgan", "seed=2"])) == "gan-dcgan-cifar10-s2"


def run_dir_with(folder: Path, logger: str, study: str = "figs") -> Path:
    """A run directory whose config.yaml names `logger` (YAML lines under `logger:`)."""
    folder.mkdir()
    (folder / "config.yaml").write_text(f"study: {study}\nlogger:\n{logger}")
    return folder


def test_a_figure_drawn_from_runs_logs_with_their_project_entity_and_tags_in_this_machines_mode(tmp_path, offline_wandb):
    run = run_dir_with(tmp_path / "run", "  _target_: wgan.logger.WandbLogger\n  project: gp-study\n"
                                         "  entity: lab\n  mode: online\n  tags: [cifar, 2026]\n")
    to = runs_figure_destination([tmp_path / "no-config", run])  # the first run with a config
    assert isinstance(to.logger, WandbLogger) and to.group == "figs"
    # The runs' mode was this machine's then (conf/logger/wandb.yaml); the figure's is this machine's now.
    assert (to.logger.project, to.logger.entity, to.logger.tags, to.logger.mode) == ("gp-study", "lab", ["cifar", "2026"], "offline")


def test_a_figure_logs_nothing_for_runs_without_wandb_and_never_imports_a_run_directorys_target(tmp_path, offline_wandb):
    none = run_dir_with(tmp_path / "none", "  _target_: wgan.logger.NullLogger\n")
    assert runs_figure_destination([none]).not_logged == "the runs ran with logger=none"
    hostile = run_dir_with(tmp_path / "hostile", "  _target_: wgan_payload_never_imported.run\n  project: p\n")
    assert type(runs_figure_destination([hostile]).logger) is NullLogger
    assert "wgan_payload_never_imported" not in sys.modules
    interpolated = run_dir_with(tmp_path / "interpolated", "  _target_: wgan.logger.WandbLogger\n  project: ${oc.env:HOME}\n")
    assert runs_figure_destination([interpolated]).logger.project == "${oc.env:HOME}"  # read as text, never resolved
    damaged = run_dir_with(tmp_path / "damaged", "  [unclosed\n")
    assert runs_figure_destination([damaged, tmp_path / "nowhere"]).not_logged == "no readable config.yaml in the runs"
    assert runs_figure_destination([interpolated], no_log=True).not_logged == "--no-log"
    assert log_figure_run(runs_figure_destination([none]), out_dir=tmp_path, name="x", figure=tmp_path / "x.png",
                          config={}, summary={}) == "W&B: not logged (the runs ran with logger=none)"
    assert not list(tmp_path.rglob("wandb"))


@pytest.mark.parametrize("mode, message", [
    ("online", "WANDB_MODE=online but no W&B credentials were found: run `wandb login` once, or set WANDB_API_KEY, "
               "or use WANDB_MODE=offline and `wandb sync` later"),
    ("sometimes", "WANDB_MODE=sometimes is not one of offline, online, disabled"),
    ("disabled", "WANDB_MODE=disabled"),
])
def test_a_figure_in_a_mode_that_cannot_work_is_drawn_and_says_why_it_was_not_logged(tmp_path, offline_wandb,
                                                                                   monkeypatch, mode, message):
    monkeypatch.setenv("WANDB_MODE", mode)
    run = run_dir_with(tmp_path / "run", "  _target_: wgan.logger.WandbLogger\n  project: p\n")
    to = runs_figure_destination([run])
    assert type(to.logger) is NullLogger and to.not_logged == message

"""W&B logging, offline by default: the run files hold what was logged, resumes continue the run."""
from __future__ import annotations

import pytest

from conftest import compose_config
from wandb_records import read_run
from omegaconf.errors import ValidationError

from wgan.config import validate
from wgan.logger import WandbMode
from wgan.schema import ConfigError
from wgan.train import Trainer, run


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def wandb_logs(run_dir):
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


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


def test_each_drawn_architecture_gets_its_own_run_name():
    from wgan.train import run_name

    names = {run_name("wgan_gp", compose_config(["arch=random", f"arch.seed={s}"])) for s in range(3)}
    assert names == {f"wgan_gp-random{s}-toy_8gaussians-s0" for s in range(3)}
    assert run_name("gan", compose_config(["dataset=cifar10", "arch=dcgan", "seed=2"])) == "gan-dcgan-cifar10-s2"

"""`python -m wgan.metrics` on run directories: real runs (a toy run trained in this process by
`wgan.train.run`, a classifier run made by `python run.py`) scored with their own metrics, without
a Trainer; hostile run directories (a config.yaml or recorded overrides naming code to run or
environment variables to read, a checkpoint holding pickled code) neither run nor reveal anything; a run without a checkpoint and a missing path are refused by name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import DEBIAN_FASHION
from wgan.config import compose_config
from wgan.metrics import cli
from wgan.run_config import OVERRIDES
from wgan.train import run

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-do-not-print"
TOY = ["threads=1", "logger=none", "train.iterations=10", "eval.every=5", "ckpt.every=5", "train.batch_size=32",
       "metrics.num_samples=200"]


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A real process of this checkout's code, run from the repository root."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=600)


def train(run_dir: Path, *overrides: str) -> dict:
    done = python("run.py", *overrides, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> tuple[Path, dict]:
    """The default toy run of `make run`, 10 iterations, trained in this process (a second of work,
    not a process start): its directory, with the overrides Hydra would have recorded, and results.
    Runs that `python run.py` wrote are scored in test_a_fashion_mnist_run_is_scored_..."""
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    results = run(compose_config(TOY), run_dir)
    overrides = run_dir / OVERRIDES
    overrides.parent.mkdir()
    overrides.write_text(yaml.safe_dump([*TOY, f"hydra.run.dir={run_dir}"]))
    return run_dir, results


@pytest.fixture
def copied_run(toy_run, tmp_path) -> Path:
    """A copy of the toy run to spoil."""
    return Path(shutil.copytree(toy_run[0], tmp_path / "run"))


def marker_code(marker: Path) -> str:
    return f'import pathlib; pathlib.Path("{marker}").write_text("ran")'


class Payload:
    """Pickles into a call of exec: what a checkpoint or a torch.load target could hide."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def scored(values: dict) -> dict:
    return {k: v for k, v in values.items() if k != "step"}


@pytest.mark.slow
def test_a_toy_run_is_scored_with_its_own_metrics_in_a_process_of_its_own(toy_run):
    run_dir, results = toy_run
    done = python("-m", "wgan.metrics", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # The numbers the run logged at its last evaluation: the same samples, the same metrics.
    assert report["values"] == scored(results["final"]) and set(report["values"]) == {"modes", "hq_fraction", "w1"}
    assert report["generated"] == f"200 samples of the generator in {run_dir} (iteration 10)"
    assert report["reference"] == "toy_8gaussians (2-D points)"
    assert report["metrics"]["names"] == ["toy_modes", "toy_w1"] and report["metrics"]["num_samples"] == 200
    assert f"INFO wgan: sampling 200 samples of the generator in {run_dir} (iteration 10)\n" \
           "INFO wgan: scoring against toy_8gaussians with toy_modes, toy_w1\n" in done.stderr


@pytest.mark.slow
def test_scoring_builds_no_trainer_and_leaves_the_global_rng_alone(toy_run, monkeypatch, capsys):
    run_dir, results = toy_run
    monkeypatch.setattr("wgan.train.Trainer.__init__", lambda *args: pytest.fail("built a Trainer"))
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    assert cli.main([str(run_dir), "metrics.num_samples=100", "--json"]) == 0
    assert torch.equal(torch.get_rng_state(), before)
    report = json.loads(capsys.readouterr().out)
    assert report["generated"] == f"100 samples of the generator in {run_dir} (iteration 10)"
    assert report["metrics"]["num_samples"] == 100 and set(report["values"]) == {"modes", "hq_fraction", "w1"}


def edit_config(run_dir: Path, edit) -> None:
    path = run_dir / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))


@pytest.mark.slow
def test_a_hostile_target_in_config_yaml_outside_the_run_identity_is_never_called(copied_run, toy_run, tmp_path):
    marker = tmp_path / "marker"
    edit_config(copied_run, lambda cfg: cfg.update(logger={"_target_": "builtins.exec", "_args_": [marker_code(marker)]}))
    done = python("-m", "wgan.metrics", str(copied_run), "--json")
    # Scored with the generator rebuilt from the project's config groups; the logger named there is never built.
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["values"] == scored(toy_run[1]["final"])
    assert not marker.exists()


@pytest.mark.slow
def test_hostile_targets_in_config_yaml_are_refused_naming_the_keys(copied_run, tmp_path):
    marker, payload = tmp_path / "marker", tmp_path / "payload.pt"
    torch.save(Payload(marker_code(marker)), payload)

    def spoil(cfg):
        cfg["arch"]["_target_"] = "builtins.exec"
        cfg["dataset"] = {"_target_": "torch.load", "f": str(payload), "weights_only": False}

    edit_config(copied_run, spoil)
    done = python("-m", "wgan.metrics", str(copied_run))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"ERROR wgan: {copied_run}/config.yaml differs from its recorded overrides composed with this checkout's conf/ "
        "(arch._target_: 'builtins.exec' there, 'wgan.arch.mlp.MLPArch' rebuilt, "
        "dataset._target_: 'torch.load' there, 'wgan.dataset.toy.ToyDataset' rebuilt, "
        "dataset.distribution: None there, 'eight_gaussians' rebuilt, "
        f"dataset.f: {str(payload)!r} there, None rebuilt, dataset.name: None there, 'toy_8gaussians' rebuilt, ...): "
        "the generator built would not be the one that trained\n"
    )
    assert not marker.exists()


@pytest.mark.slow
def test_an_environment_interpolation_in_config_yaml_is_refused_without_reading_it(copied_run):
    edit_config(copied_run, lambda cfg: cfg["metrics"].update(cache_dir="${oc.env:WGAN_TEST_SECRET}"))
    done = python("-m", "wgan.metrics", str(copied_run), env={"WGAN_TEST_SECRET": SECRET})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"ERROR wgan: {copied_run}/config.yaml: metrics.cache_dir holds an interpolation, which a run's config "
        "(written resolved) never does; values from a run directory are never resolved: not scoring it\n"
    )


BUILT = "sets an instantiation key such as _target_; a run directory never chooses what is built: not scoring it"
RESOLVED = "holds an interpolation; values from a run directory are never resolved: not scoring it"


@pytest.mark.parametrize("override, key, why", [
    ("dataset={_target_:builtins.exec,_args_:[CODE]}", "dataset", BUILT),
    ("arch._target_=builtins.exec", "arch._target_", BUILT),
    ("+arch._args_=[CODE]", "arch._args_", BUILT),
    ("dataset.noise=${oc.env:WGAN_TEST_SECRET}", "dataset.noise", RESOLVED),
])
def test_hostile_recorded_overrides_are_refused_naming_the_key(copied_run, tmp_path, monkeypatch, caplog, capsys,
                                                               override, key, why):
    marker = tmp_path / "marker"
    monkeypatch.setenv("WGAN_TEST_SECRET", SECRET)
    recorded = copied_run / ".hydra" / "overrides.yaml"
    line = override.replace("CODE", f"'{marker_code(marker)}'")
    recorded.write_text(yaml.safe_dump(yaml.safe_load(recorded.read_text()) + [line]))
    assert cli.main([str(copied_run)]) == 2
    assert caplog.messages == [f"{recorded}: the override of {key} {why}"]
    assert not marker.exists() and SECRET not in caplog.text + str(capsys.readouterr())


def test_a_run_without_a_checkpoint_is_refused_not_scored_as_its_sample_grids(copied_run, caplog):
    shutil.rmtree(copied_run / "checkpoints")
    assert cli.main([str(copied_run)]) == 2
    assert caplog.messages[-1] == (
        f"{copied_run} has no checkpoint ({copied_run}/checkpoints/last.pt): it holds no generator to sample, and its "
        "sample figures are grids, not samples; score it once it has checkpointed")


def test_missing_paths_are_named_as_missing(toy_run, tmp_path, caplog):
    assert cli.main([str(tmp_path / "nowhere")]) == 2
    assert caplog.messages[-1] == f"{tmp_path / 'nowhere'}: no such run directory or folder of images"
    assert cli.main([str(toy_run[0]), "--reference", str(tmp_path / "reals")]) == 2
    assert caplog.messages[-1] == (
        f"--reference {tmp_path / 'reals'}: no such folder, and not a dataset option (cifar10, fashion_mnist, "
        "imagefolder, imagenet32, lsun_bedroom, mnist, mnist_5k, synthetic, text, toy_25gaussians, toy_8gaussians, "
        "toy_swissroll)")


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_a_fashion_mnist_run_is_scored_with_its_classifier_metrics(tmp_path, classifier_cache, capsys):
    run_dir = tmp_path / "run"
    results = train(run_dir, "dataset=fashion_mnist", f"dataset.root={tmp_path / 'data'}", "arch=dcgan", "arch.dim=8",
                    "metrics.num_samples=500", f"metrics.cache_dir={classifier_cache}", "threads=1", "logger=none",
                    "train.batch_size=8", "train.iterations=2", "eval.every=2", "ckpt.every=2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the run scored: the same float summation order, the same numbers
    try:
        assert cli.main([str(run_dir), "--json"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(capsys.readouterr().out)
    assert set(report["values"]) == {"cls_accuracy", "cls_is_500", "cls_fid_500"}
    assert report["values"] == scored(results["final"])
    assert report["reference"] == f"fashion_mnist ({tmp_path / 'data'}, 1x32x32)"

"""Short real trainings: every method runs, files are complete, resume is exact, failures are results."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from omegaconf import OmegaConf

from helpers import TINY, random_images, write_png
from wgan import update
from wgan.config import compose_config
from wgan.dataset.images import Split
from wgan.figures import LABEL_HEIGHT
from wgan.files import RunFiles
from wgan.metrics import classifier, cli
from wgan.schema import ConfigError
from wgan.loss import WassersteinLoss
from wgan.train import Trainer, run



@pytest.mark.slow
@pytest.mark.parametrize("method", ["wgan_gp", "wgan_clip", "dcgan", "lsgan"])
def test_each_method_trains_and_leaves_its_files(train_tiny, tmp_path, method):
    results = train_tiny(f"method={method}")
    files = RunFiles(tmp_path / "run")
    assert results == json.loads(files.results.read_text())
    assert results["status"] == "complete" and results["step"] == results["iterations"] == 20
    assert results["method"] == {"wgan_gp": "wgan_gp", "wgan_clip": "wgan_clip", "dcgan": "gan", "lsgan": "lsgan"}[method]
    assert (results["arch"], results["dataset"], results["seed"]) == ("mlp", "toy_8gaussians", 0)
    assert results["arch_choices"] == {}
    assert set(results["final"]) == {"step", "modes", "hq_fraction", "w1"} and results["final"]["step"] == 20
    assert 0 <= results["final"]["modes"] <= 8 and 0 < results["final"]["w1"] < 10
    assert results["best"]["w1"] <= results["final"]["w1"] and results["wall_time"] > 0
    evaluations = [json.loads(line) for line in files.metrics.read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [10, 20]
    assert evaluations[-1]["w1"] == results["final"]["w1"]
    assert sorted(p.name for p in files.samples.iterdir()) == ["final.png", "step_000010.png", "step_000020.png"]
    assert files.sample_figure(20).read_bytes()[:4] == b"\x89PNG"
    saved = OmegaConf.load(files.config)
    assert "${" not in files.config.read_text() and saved.train.iterations == 20
    state = files.load_checkpoint()
    assert state["step"] == 20 and set(state) >= {"generator", "critic", "opt_g", "opt_d", "rng"}


@pytest.mark.slow
def test_clipping_keeps_every_saved_critic_weight_in_bounds(train_tiny, tmp_path):
    train_tiny("lipschitz=clip", "lipschitz.bound=0.02")
    critic = RunFiles(tmp_path / "run").load_checkpoint()["critic"]
    assert max(t.abs().max().item() for t in critic.values()) <= 0.02


def test_training_logs_the_issue_statistics(train_tiny, caplog):
    with caplog.at_level(logging.INFO, logger="wgan"):
        train_tiny("lipschitz=clip")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iter ")]
    assert len(lines) == 4 and lines[-1].startswith("iter 20/20 | critic_loss=")
    assert " it/s | eta " in lines[0]


def test_logged_scalars(tmp_path):
    cfg = compose_config(["logger=none", "arch.width=32", "train.batch_size=32", "lipschitz=clip"])
    trainer = Trainer(cfg, RunFiles(tmp_path))
    values = update.statistics(trainer.iteration(), trainer.parts.critic, trainer.parts.lipschitz, it_per_s=3.0)
    assert set(values) == {"critic_loss", "wasserstein", "generator_loss", "grad_norm_mean", "grad_norm_std",
                           "grad_norm_max", "it_per_s", "clip_fraction"}
    assert 0 <= values["clip_fraction"] <= 1 and values["grad_norm_max"] >= values["grad_norm_mean"] > 0
    gp = Trainer(compose_config(["logger=none", "arch.width=32"]), RunFiles(tmp_path))
    values = update.statistics(gp.iteration(), gp.parts.critic, gp.parts.lipschitz, it_per_s=3.0)
    assert values["penalty"] >= 0 and "clip_fraction" not in values


def parameters(files: RunFiles) -> dict[str, torch.Tensor]:
    state = files.load_checkpoint()
    return {f"{net}.{k}": v for net in ("generator", "critic") for k, v in state[net].items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["wgan_gp", "wgan_clip"])
def test_resume_matches_an_uninterrupted_run(train_tiny, tmp_path, monkeypatch, method):
    train_tiny(f"method={method}", run_dir=tmp_path / "straight")

    original = Trainer.iteration

    def interrupted(self, *args, **kwargs):
        if self.step == 12:  # after the checkpoint at 10, before the one at 15
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "iteration", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(f"method={method}", run_dir=tmp_path / "resumed")
    stopped = RunFiles(tmp_path / "resumed")
    assert stopped.read_results() is None and stopped.load_checkpoint()["step"] == 10
    monkeypatch.setattr(Trainer, "iteration", original)
    results = train_tiny(f"method={method}", run_dir=tmp_path / "resumed")

    straight = RunFiles(tmp_path / "straight")
    expected, actual = parameters(straight), parameters(stopped)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert stopped.metrics.read_text() .count("\n") == 2
    drop_elapsed = lambda text: [{k: v for k, v in json.loads(l).items() if k != "elapsed"} for l in text.splitlines()]
    assert drop_elapsed(stopped.metrics.read_text()) == drop_elapsed(straight.metrics.read_text())
    untimed = lambda text: [{k: v for k, v in json.loads(l).items() if k not in ("elapsed", "it_per_s")}
                            for l in text.splitlines()]
    assert untimed(stopped.train_stats.read_text()) == untimed(straight.train_stats.read_text())
    assert [json.loads(l)["step"] for l in stopped.train_stats.read_text().splitlines()] == [5, 10, 15, 20]
    assert results["final"] == straight.read_results()["final"]
    best, straight_best = stopped.load_best_generator(), straight.load_best_generator()
    assert best["step"] == straight_best["step"] and results["best_generator"]["step"] == best["step"]
    assert all(torch.equal(best["generator"][k], v) for k, v in straight_best["generator"].items())


@pytest.mark.slow
def test_the_best_evaluation_keeps_its_generator_and_the_metrics_command_scores_it(train_tiny, tmp_path, capsys):
    overrides = ["train.iterations=30", "eval.every=5", "metrics.best=[w1]"]
    results = train_tiny(*overrides)
    files = RunFiles(tmp_path / "run")
    logged = [json.loads(line) for line in files.metrics.read_text().splitlines()]
    lowest = min(logged, key=lambda e: e["w1"])  # W1: lower is better; the first of equal ones
    kept = files.load_best_generator()
    assert {k: kept[k] for k in ("step", "key", "value")} == {"step": lowest["step"], "key": "w1", "value": lowest["w1"]}
    assert results["best_generator"] == {"step": lowest["step"], "key": "w1", "value": lowest["w1"]}
    assert results["best"]["w1"] == lowest["w1"] and 0 < lowest["step"]
    # Scored again from best.pt, the generator gives the numbers logged at its iteration.
    (files.dir / ".hydra").mkdir()
    (files.dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in TINY + overrides))
    assert cli.main([str(files.dir), "--best", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["values"]["w1"] == pytest.approx(lowest["w1"], rel=1e-9)
    assert f"(iteration {lowest['step']})" in scored["generated"]


def test_the_best_value_must_be_one_the_metrics_give(train_tiny):
    with pytest.raises(ConfigError, match=r"metrics.best: 'is' is no value of metrics.names \['toy_modes', "
                                          r"'toy_w1'\]; they give: hq_fraction, modes, w1"):
        train_tiny("metrics.best=[is]")


def test_the_best_value_is_the_name_with_its_sample_count_and_never_a_per_class_value():
    """`metrics.best` names values without their sample count (`is` picks `is_5k`); a conditional
    run's per-class accuracies (`cls_class_accuracy_c<k>`) never read as a count of its name."""
    from wgan.metrics.registry import success_key

    conditional = {"cls_class_accuracy_c0": 0.9, "cls_class_accuracy": 0.5, "cls_is_1k": 4.0}
    assert success_key(["cls_class_accuracy"], conditional) == "cls_class_accuracy"
    assert success_key(["cls_class_accuracy"], {"cls_class_accuracy_c0": 0.9}) is None
    assert success_key(["cls_is"], conditional) == "cls_is_1k"
    assert success_key(["fid", "is"], {"is_5k": 6.0}) == "is_5k"
    assert success_key(["fid"], {"is_5k": 6.0}) is None


@pytest.mark.slow
def test_an_extended_linear_decay_goes_on_as_the_longer_schedule_from_where_the_run_is(train_tiny, tmp_path):
    """30 iterations decay the rates to zero; extended to 60, they go on at lr * (1 - t / 60)."""
    train_tiny("train.iterations=30", "train.lr_decay=linear")
    files = RunFiles(tmp_path / "run")
    ended = torch.load(files.checkpoint, weights_only=True)
    assert [ended[opt]["param_groups"][0]["lr"] for opt in ("opt_g", "opt_d")] == [0.0, 0.0]
    assert train_tiny("train.iterations=60", "train.lr_decay=linear")["step"] == 60
    for path, step in ((files.previous_checkpoint, 55), (files.checkpoint, 60)):
        state = torch.load(path, weights_only=True)
        assert state["step"] == step
        for opt in ("opt_g", "opt_d"):
            group = state[opt]["param_groups"][0]
            assert group["lr"] == pytest.approx(group["initial_lr"] * (1 - step / 60), abs=1e-15)


@pytest.mark.slow
def test_a_run_is_never_shortened_below_the_iteration_it_reached(train_tiny, tmp_path, caplog):
    finished = train_tiny("train.iterations=30")
    checkpoint = RunFiles(tmp_path / "run").checkpoint
    written = checkpoint.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="wgan"):
        assert train_tiny("train.iterations=20") == finished  # a finished run stays as it is, not trained again
    assert "already holds a finished run (complete); not training again" in caplog.text
    assert checkpoint.stat().st_mtime_ns == written
    RunFiles(tmp_path / "run").results.unlink()  # unfinished, as if killed before writing its results
    with pytest.raises(ConfigError, match=r"train.iterations=20 is below iteration 30, which the run in "
                                          r".*run has reached: give at least 30"):
        train_tiny("train.iterations=20")


def test_nan_loss_ends_the_run_as_diverged(train_tiny, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = WassersteinLoss.generator

    def blows_up(self, d_fake):
        calls["n"] += 1
        return original(self, d_fake) * (float("nan") if calls["n"] == 3 else 1.0)

    monkeypatch.setattr(WassersteinLoss, "generator", blows_up)
    results = train_tiny()
    assert results["status"] == "diverged" and results["diverged_at"] == 3 and results["step"] == 2
    assert "non-finite value at iteration 3" in results["reason"] and "nan" in results["reason"]
    assert RunFiles(tmp_path / "run").read_results()["status"] == "diverged"


def test_a_real_divergence_is_caught_in_samples_and_gradients(train_tiny):
    """A generator learning rate of 1e30: after its first update, its samples overflow to inf."""
    results = train_tiny("optimizer.generator.lr=1e30")
    assert results["status"] == "diverged" and results["diverged_at"] == 2
    assert "'generated samples (sum)': inf" in results["reason"] or "'generated samples (sum)': nan" in results["reason"]
    assert "critic gradients (sum)" in results["reason"]


def test_an_exception_is_recorded_as_crashed_and_raised(train_tiny, tmp_path, monkeypatch):
    def broken(self, d_real, d_fake):
        raise RuntimeError("critic exploded")

    monkeypatch.setattr(WassersteinLoss, "critic", broken)
    with pytest.raises(RuntimeError, match="critic exploded"):
        train_tiny()
    results = RunFiles(tmp_path / "run").read_results()
    assert results["status"] == "crashed" and results["step"] == 0
    assert "RuntimeError: critic exploded" in results["traceback"]


@pytest.mark.slow
@pytest.mark.parametrize("lipschitz", ["sn", "clip"])
def test_evaluating_and_logging_never_change_training(train_tiny, tmp_path, lipschitz):
    # Spectral norm updates its power iteration on every training-mode forward; the figure's
    # critic surface and the gradient-norm statistics must not, or the cadence would change results.
    train_tiny(f"lipschitz={lipschitz}", "train.log_every=1", "eval.every=4", run_dir=tmp_path / "often")
    train_tiny(f"lipschitz={lipschitz}", "train.log_every=20", "eval.every=20", run_dir=tmp_path / "rarely")
    often, rarely = parameters(RunFiles(tmp_path / "often")), parameters(RunFiles(tmp_path / "rarely"))
    assert all(torch.equal(often[k], rarely[k]) for k in often)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["synthetic", "imagefolder"])
def test_image_training_end_to_end(tmp_path, dataset):
    overrides = [f"dataset={dataset}", "arch=dcgan", "arch.dim=8", "logger=none", "train.batch_size=8",
                 "train.iterations=4", "train.log_every=2", "eval.every=2", "ckpt.every=2"]
    if dataset == "imagefolder":
        (tmp_path / "images").mkdir()
        for i, image in enumerate(random_images(16, 3, 32)):
            write_png(image, tmp_path / "images" / f"{i:03d}.png")
        overrides += [f"dataset.root={tmp_path / 'images'}", "metrics=none"]  # scores: test_inception.py
    results = run(compose_config(overrides), tmp_path / "run")
    files = RunFiles(tmp_path / "run")
    assert results["status"] == "complete" and results["step"] == 4 and results["arch"] == "dcgan"
    assert results["final"] == {"step": 4}
    from PIL import Image

    grids = sorted(p.name for p in files.samples.iterdir())
    assert grids == ["final.png", "step_000002.png", "step_000004.png"]
    # 64 fixed-noise samples in an 8x8 grid of 32x32 images with torchvision's 2-pixel padding,
    # under the strip that names the run and the iteration.
    assert Image.open(files.sample_figure(4)).size == (8 * 32 + 9 * 2, 8 * 32 + 9 * 2 + LABEL_HEIGHT)
    critic = files.load_checkpoint()["critic"]
    assert any("weight" in k for k in critic) and all(torch.isfinite(v).all() for v in critic.values())


@pytest.mark.slow
def test_fashion_mnist_run_logs_protocol_named_classifier_metrics(tmp_path, classifier_cache, monkeypatch):
    reads = []
    read_split = classifier.labeled_split
    monkeypatch.setattr(classifier, "labeled_split", lambda *args: reads.append(args[1]) or read_split(*args))
    overrides = ["dataset=fashion_mnist", f"dataset.root={tmp_path / 'data'}", "arch=dcgan", "arch.dim=8",
                 "metrics=classifier", "metrics.num_samples=500", f"metrics.cache_dir={classifier_cache}",
                 "logger=none", "train.batch_size=8", "train.iterations=4", "eval.every=2"]
    results = run(compose_config(overrides), tmp_path / "run")
    final = results["final"]
    assert set(final) == {"step", "cls_accuracy", "cls_is_500", "cls_fid_500"}
    assert final["cls_accuracy"] >= 0.9 and 1.0 <= final["cls_is_500"] <= 10.0 and final["cls_fid_500"] > 0
    logged = [json.loads(line) for line in RunFiles(tmp_path / "run").metrics.read_text().splitlines()]
    assert [e["step"] for e in logged] == [2, 4] and logged[-1]["cls_is_500"] == final["cls_is_500"]
    # The training split is read at most twice (to train the classifier, then for its statistics at
    # the first evaluation), not at every evaluation; none at all when an earlier test in the session
    # cached both. A second run reads both from the cache.
    assert reads.count(Split.train) <= 2 and set(reads) <= {Split.train, Split.test}
    first_reads = list(reads)
    run(compose_config(overrides), tmp_path / "second run")
    assert reads == first_reads


@pytest.mark.slow
def test_a_run_written_before_a_setting_existed_resumes_at_its_default_and_is_refused_at_another(train_tiny, tmp_path):
    """A run directory of an earlier version lacks the settings added since (here the AC-GAN loss
    scales): at their defaults the run extends (and the metrics command accepts its config), and
    its config now records them; at another value it is another run, refused naming the key."""
    import yaml

    from wgan import run_config
    from wgan.schema import ConfigError

    run_dir = tmp_path / "old"
    assert train_tiny("train.iterations=10", run_dir=run_dir)["step"] == 10
    files = RunFiles(run_dir)
    saved = yaml.safe_load(files.config.read_text())
    del saved["loss"]["ac_scale"], saved["loss"]["ac_scale_g"]
    files.config.write_text(yaml.safe_dump(saved))
    state = files.load_checkpoint()  # its copy of the config too (YAML)
    in_checkpoint = yaml.safe_load(state["config"])
    del in_checkpoint["loss"]["ac_scale"], in_checkpoint["loss"]["ac_scale_g"]
    state["config"] = yaml.safe_dump(in_checkpoint)
    torch.save(state, files.checkpoint)
    assert train_tiny("train.iterations=12", run_dir=run_dir)["step"] == 12
    run_config.check_against_recorded(compose_config([*TINY, "train.iterations=12"]), files)
    with pytest.raises(ConfigError, match=r"loss\.ac_scale: 1\.0 there, 2\.0 now"):
        train_tiny("train.iterations=14", "loss.ac_scale=2", run_dir=run_dir)

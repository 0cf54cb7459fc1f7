"""A small CNN classifier for MNIST and Fashion-MNIST: the stand-in for the Inception network when
the study runs offline on a CPU.

Trained once on a dataset's training split and cached; its logits give a classifier Inception
Score and its penultimate activations a classifier FID, with the metrics of `wgan.metrics.scores`,
batch by batch.
The numbers are not comparable with Inception-network ones, hence the `cls_` names they log under.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from wgan.cache import cached, digest, payload_checksum
from wgan.dataset.images import Split, TorchvisionSource, read_labels, to_unit_range, torchvision_files
from wgan.metrics.registry import Better, EvalContext, protocol_name, register
from wgan.schema import ConfigError
from wgan.signals import stoppable

if TYPE_CHECKING:
    from wgan.metrics.scores import FeatureScores

log = logging.getLogger(__name__)

# Bump when the network or its training changes, so that stale cached weights are not loaded.
CACHE_VERSION = 1
FEATURES = 128  # penultimate width: the dimension of the classifier FID's Gaussians
CLASSES = 10
EVAL_BATCH = 1000  # images per forward pass when scoring: bounds memory, not results


class ClassifierNet(nn.Module):
    """Two 3x3 conv + batch norm + max-pool stages (16, 32 channels) and a 128-unit hidden layer,
    for 1x32x32 images in [-1, 1]. Three epochs take about 30 s on 2 CPU cores."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Flatten(), nn.Linear(32 * 8 * 8, FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int = 3, batch_size: int = 128,
                     seed: int = 0) -> ClassifierNet:
    """Adam on uint8 images (N, 1, 32, 32); the same seed gives the same weights (on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # the initialization draws from the global RNG; leave the caller's alone
        torch.manual_seed(seed)
        net = ClassifierNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    with torch.enable_grad():  # the first evaluation of a run trains it, under the caller's no_grad
        fit_epochs(net, optimizer, images, labels, epochs, batch_size, generator)
    return net.eval()


def fit_epochs(net, optimizer, images, labels, epochs: int, batch_size: int, generator: torch.Generator) -> None:
    for epoch in range(epochs):
        batches = torch.randperm(len(images), generator=generator).split(batch_size)
        for index in stoppable(batches, f"training the classifier, epoch {epoch + 1} of {epochs}"):
            loss = nn.functional.cross_entropy(net(to_unit_range(images[index])), labels[index].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@torch.no_grad()
def apply(fn, images: torch.Tensor) -> torch.Tensor:
    """`fn` (e.g. `net`, `net.features`) over images in [-1, 1], in batches, without gradients."""
    return torch.cat([fn(batch) for batch in stoppable(images.split(EVAL_BATCH), f"classifier on {len(images)} images")])


def accuracy(net: ClassifierNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((apply(net, to_unit_range(images)).argmax(1) == labels).double().mean())


def cache_entry(dataset: DictConfig, what: str) -> tuple[dict[str, str], str]:
    """The cache key of the classifier's `what` for a dataset config, and the fingerprint of the
    files it is computed from (images and labels of both splits). One entry per dataset, not per
    root: it follows the files of the root in use (an empty root reading system_root included)."""
    key = {"network": f"classifier-v{CACHE_VERSION}", "what": what, "dataset": dataset.name}
    return key, torchvision_files(TorchvisionSource(dataset.source), Path(dataset.root), dataset.system_root)


def load_or_train(
    cache_dir: Path, dataset: DictConfig, splits: Callable[[], tuple[torch.Tensor, ...]]
) -> tuple[ClassifierNet, float]:
    """The classifier of a dataset config and its test accuracy, trained on the first call and
    loaded from `cache_dir` afterwards (trained again when the dataset's files change).
    `splits()` returns (train images, train labels, test images, test labels); it is called only
    to train, since reading the data costs more than loading the cached network at every evaluation."""
    def train() -> dict:
        log.info("training the classifier for %s (once; about 30 s on 2 CPU cores; then cached in %s)",
                 dataset.name, cache_dir)
        train_images, train_labels, test_images, test_labels = splits()
        net = train_classifier(train_images, train_labels)
        test_accuracy = accuracy(net, test_images, test_labels)
        log.info("classifier for %s: test accuracy %.4f", dataset.name, test_accuracy)
        return {"state_dict": net.state_dict(), "test_accuracy": test_accuracy}

    saved = cached(cache_dir, f"classifier-{dataset.name}", *cache_entry(dataset, "weights"), train)
    net = ClassifierNet()
    net.load_state_dict(saved["state_dict"])
    return net.eval(), saved["test_accuracy"]


def labeled_split(dataset: DictConfig, split: Split | str, cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 32, 32) and int64 labels (N,) of one split of a `mnist` or `fashion_mnist`
    dataset config, the images built (and cached) by the dataset option itself.

    The labels are read beside the images (`read_labels`): torchvision's `targets` from the same
    root, else the labels IDX file next to Debian's image files.
    """
    split = Split(split)
    config = OmegaConf.merge(dataset, {"split": split.value, "resolution": 32, "channels": 1, "fit": "pad"})
    images = instantiate(config, cache_dir=str(cache_dir)).images
    return images, read_labels(TorchvisionSource(config.source), Path(config.root), split, config.system_root)


def check_dataset(cfg: DictConfig) -> None:
    source = cfg.dataset.get("source")
    if source not in (TorchvisionSource.mnist, TorchvisionSource.fashion_mnist):
        raise ConfigError(
            f"metrics.names: 'classifier' scores MNIST and Fashion-MNIST, not dataset={cfg.dataset.name}"
        )
    if (cfg.dataset.resolution, cfg.dataset.channels) != (32, 1):
        raise ConfigError(
            f"metrics.names: 'classifier' takes 32x32 gray images, not dataset.resolution={cfg.dataset.resolution} "
            f"with dataset.channels={cfg.dataset.channels}"
        )


@register("classifier", better={"cls_accuracy": Better.higher, "cls_is": Better.higher, "cls_fid": Better.lower,
                                "cls_class_accuracy": Better.higher}, check=check_dataset)
def classifier_scores(context: EvalContext) -> FeatureScores:
    """Classifier Inception Score of the generated samples and classifier FID against the whole
    training split (statistics computed once, cached), with the classifier's test accuracy (what
    the scores can be trusted to); for a conditional model, the fraction of samples the classifier
    assigns to the class they were generated for (`cls_class_accuracy`), and that fraction among
    the samples of each class k (`cls_class_accuracy_c<k>`)."""
    from wgan.metrics.scores import ClassAccuracy, FeatureMoments, FeatureScores, FrechetDistance, InceptionScore

    cfg = context.cfg.dataset

    def splits():
        return (*labeled_split(cfg, Split.train, context.cache_dir), *labeled_split(cfg, Split.test, context.cache_dir))

    def training_statistics():
        images, _ = labeled_split(cfg, Split.train, context.cache_dir)
        moments = FeatureMoments(FEATURES)
        moments.update(apply(net.features, to_unit_range(images)))  # 128 features per image: small
        mu, sigma = moments.compute()
        return {"mu": mu, "sigma": sigma}

    @torch.no_grad()
    def extract(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = net.features(to_unit_range(images.cpu()))  # the classifier runs on the CPU
        return features, net.head(features)

    net, test_accuracy = load_or_train(context.cache_dir, cfg, splits)
    key, files = cache_entry(cfg, "training statistics")
    sources = digest([files, payload_checksum(net.state_dict())])  # computed from the images through the network
    real = cached(context.cache_dir, f"stats-classifier-{cfg.name}", key, sources, training_statistics)
    n = context.num_samples
    of_logits = {"is": InceptionScore(n, CLASSES)}
    if context.fake_labels is not None:
        of_logits["class"] = ClassAccuracy(context.fake_labels, CLASSES)

    def values(results: dict[str, Any]) -> dict[str, float]:
        conditional = {}
        if "class" in results:  # a conditional model's: over all samples, then per class sampled
            overall, per_class = results["class"]  # (fewer samples than classes leave some out: NaN)
            conditional = {"cls_class_accuracy": overall}
            conditional.update({f"cls_class_accuracy_c{k}": value
                                for k, value in enumerate(per_class) if not math.isnan(value)})
        return {**conditional, "cls_accuracy": test_accuracy, protocol_name("cls_is", n): results["is"][0],
                protocol_name("cls_fid", n): results["fid"]}

    return FeatureScores(extract, {"fid": FrechetDistance(real["mu"], real["sigma"])}, of_logits, values)

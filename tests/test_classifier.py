"""The classifier behind `cls_is` and `cls_fid`: trained once on real Fashion-MNIST (in a tmp cache),
accurate, cached, and its scores separate real images from noise by a wide margin."""
from __future__ import annotations

import pytest
import torch

from helpers import DEBIAN_FASHION
from wgan.config import compose_config
from wgan.dataset.images import to_unit_range
from wgan.metrics import classifier, scores

pytestmark = pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                                reason="needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def fashion(tmp_path_factory, classifier_cache):
    """The test split and the arguments of `load_or_train`, with the classifier trained once into them."""
    dataset = compose_config(["dataset=fashion_mnist", f"dataset.root={tmp_path_factory.mktemp('data')}"]).dataset
    test = classifier.labeled_split(dataset, "test", classifier_cache)
    splits = (*classifier.labeled_split(dataset, "train", classifier_cache), *test)
    args = (classifier_cache, dataset, lambda: splits)
    net, test_accuracy = classifier.load_or_train(*args)
    return args, net, test_accuracy, to_unit_range(test[0])


@pytest.mark.slow
def test_the_classifier_is_accurate_on_the_test_split(fashion):
    _, net, test_accuracy, _ = fashion
    print(f"Fashion-MNIST test accuracy: {test_accuracy:.4f}")
    assert test_accuracy >= 0.90
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 10) and net.features(torch.zeros(2, 1, 32, 32)).shape == (2, 128)


@pytest.mark.slow
def test_a_second_call_loads_the_cache_without_training(fashion, monkeypatch):
    args, net, test_accuracy, images = fashion
    calls = []
    monkeypatch.setattr(classifier, "train_classifier", lambda *a, **k: calls.append(a))
    loaded, loaded_accuracy = classifier.load_or_train(args[0], args[1], lambda: pytest.fail("read the data"))
    assert calls == [] and loaded_accuracy == test_accuracy
    assert len(list(args[0].glob("classifier-fashion_mnist-*.pt"))) == 1
    assert torch.equal(classifier.apply(loaded, images[:100]), classifier.apply(net, images[:100]))


def inception_score(logits: torch.Tensor) -> float:
    metric = scores.InceptionScore(len(logits), logits.shape[1])
    metric.update(logits)
    return metric.compute()[0]


def moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    metric = scores.FeatureMoments(features.shape[1])
    metric.update(features)
    return metric.compute()


@pytest.mark.slow
def test_scores_separate_real_images_from_noise(fashion):
    _, net, _, images = fashion
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real_is, noise_is = (inception_score(classifier.apply(net, x)) for x in (images, noise))
    first, second, noisy = (moments(classifier.apply(net.features, x)) for x in (images[:5000], images[5000:], noise[:5000]))
    halves_fid, noise_fid = scores.frechet_distance(*first, *second), scores.frechet_distance(*first, *noisy)
    print(f"cls_is: real {real_is:.3f}, noise {noise_is:.3f}; cls_fid: real halves {halves_fid:.3f}, "
          f"real vs noise {noise_fid:.3f}")
    assert real_is > 3 * noise_is
    assert noise_fid > 50 * halves_fid

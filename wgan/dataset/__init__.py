"""The `dataset` config group: every option builds an object that samples training batches.

A dataset object (the `Dataset` protocol of wgan.dataset.kind; `LabeledDataset` with labels) exposes `name`, `shape` (one sample's shape), `kind` (a `DataKind`: toy 2-D point
clouds, (C, H, W) images in [-1, 1], or text as one-hot (sequence, vocabulary) characters) and `sample(n, device, generator=None)`, which returns
`n` training samples on `device`, drawn with the global torch RNG unless a `torch.Generator` is given
(evaluation uses its own, so it never shifts the training stream and a resumed run stays
bit-identical; streamed images, LSUN's, ignore it). Image datasets stored as uint8 (all but
`synthetic`) also have `sample_uint8(n, device, generator=None)`: the images as stored, never
dequantized, which the scores compare generated images with. With `dataset.subset`, an image dataset
trains on that many images and its `held_out` (else None) samples the rest, the validation images.
"""
from wgan.dataset.image_files import DatasetNotFound, Fit
from wgan.dataset.images import (
    ImageFolder,
    ImageFolderConfig,
    ImageNet32,
    ImageNet32Config,
    ImageNetLayout,
    LSUN,
    LSUNConfig,
    Split,
    SyntheticImages,
    SyntheticImagesConfig,
    TorchvisionImages,
    TorchvisionImagesConfig,
    TorchvisionSource,
)
from wgan.dataset.mnist_5k import MNIST5k, MNIST5kConfig, read_mnist_5k
from wgan.dataset.kind import DataKind, Dataset, LabeledDataset
from wgan.dataset.text import TextDataset, TextDatasetConfig, TextSource
from wgan.dataset.toy import ToyDataset, ToyDatasetConfig, ToyDistribution

# The structured config of each kind of option, registered as /schema/dataset/<name>.
SCHEMAS = {
    "toy": ToyDatasetConfig,
    "torchvision": TorchvisionImagesConfig,
    "imagefolder": ImageFolderConfig,
    "imagenet32": ImageNet32Config,
    "lsun": LSUNConfig,
    "synthetic": SyntheticImagesConfig,
    "mnist_5k": MNIST5kConfig,
    "text": TextDatasetConfig,
}

__all__ = [
    "DataKind", "Dataset", "DatasetNotFound", "LabeledDataset", "Fit", "ImageFolder", "ImageFolderConfig", "ImageNet32", "ImageNet32Config",
    "ImageNetLayout", "LSUN", "LSUNConfig", "MNIST5k", "MNIST5kConfig", "SCHEMAS", "Split", "SyntheticImages",
    "SyntheticImagesConfig", "TextDataset", "TextDatasetConfig", "TextSource", "ToyDataset", "ToyDatasetConfig",
    "ToyDistribution", "TorchvisionImages", "TorchvisionImagesConfig", "TorchvisionSource", "read_mnist_5k",
]

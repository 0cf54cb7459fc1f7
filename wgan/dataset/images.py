"""Image datasets: every option yields float32 batches (n, C, H, W) in [-1, 1], from stored uint8
pixels x as x/127.5 - 1, or dequantized (`dequantize`) as the official CIFAR-10 ResNet does.

Data that fits in memory (CIFAR-10, MNIST, Fashion-MNIST, ImageNet 32x32, image folders) is
decoded once into a uint8 tensor, cached in the cache directory (`wgan.cache`), kept on the
device it is first sampled on and indexed there: a batch costs one gather and one conversion,
with no per-image Python in the training loop. LSUN is too large for that and streams through a
torch DataLoader with worker processes. `synthetic` draws images on the fly, without files.

Missing data fails when the option is built, before any model: `DatasetNotFound` names the path
looked at and how to get the data.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, ClassVar, NamedTuple, Optional

import torch
from omegaconf import MISSING
from torch.utils.data import DataLoader, Subset

from wgan.cache import cached, digest, directory, file_stats, folder_stats
from wgan.dataset.image_files import (
    IMAGE_SUFFIXES,
    DatasetNotFound,
    Fit,
    Undecodable,
    conform,
    conform_image,
    decode_folder,
    image_files,
    read_idx,
    read_npz_batches,
)
from wgan.dataset.lmdb_images import LMDBImages
from wgan.dataset.kind import IMAGE_CHANNELS, DataKind
from wgan.schema import ConfigError, bounded


TORCHVISION_CLASSES = 10  # CIFAR-10's, MNIST's and Fashion-MNIST's


class Split(Enum):
    train = "train"
    # The held-out images. Every dataset here has one held-out set and `valid` and `test` both name it:
    # ImageNet's and LSUN's validation images, CIFAR-10's and the MNISTs' test images.
    valid = "valid"
    test = "test"


@dataclass
class ImageConfig:
    name: str = MISSING
    resolution: int = bounded(32, ge=8, le=1024)  # the architectures build 32 and 64
    channels: int = bounded(3, ge=1, le=3)  # 1 (gray) or 3 (RGB); stored data is converted
    # Train on this many images drawn at random (seeded by subset_seed) and hold out the rest: the
    # validation images of eval.validation_every (the paper's Figure 5b: 1,000 MNIST digits). null: all.
    subset: Optional[int] = bounded(None, ge=1)
    subset_seed: int = bounded(0, ge=0, lt=2**64)


@dataclass
class ImageFilesConfig(ImageConfig):
    root: str = MISSING  # the options default to ${oc.env:WGAN_DATA,data}/<name>
    fit: Fit = Fit.pad  # how stored images that differ from the resolution are brought to it
    # Training batches as gan_cifar_resnet.py feeds its critic: 2 * (x/256 - 0.5) + U(0, 1/128) per
    # pixel, not x/127.5 - 1. The scores always read the stored uint8 pixels.
    dequantize: bool = False


@dataclass
class InMemoryImagesConfig(ImageFilesConfig):
    cache: bool = True  # keep the decoded tensor in metrics.cache_dir for the next start


class TorchvisionSource(Enum):
    cifar10 = "cifar10"
    mnist = "mnist"
    fashion_mnist = "fashion_mnist"

    @property
    def dataset_class(self) -> type:
        import torchvision  # imported on use: it costs 1.5 s of every start, toy runs included

        return {"cifar10": torchvision.datasets.CIFAR10, "mnist": torchvision.datasets.MNIST,
                "fashion_mnist": torchvision.datasets.FashionMNIST}[self.value]

    @property
    def folder(self) -> str:
        """Where below the root torchvision looks for the files."""
        return {"cifar10": "cifar-10-batches-py", "mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw"}[self.value]

    @property
    def debian_package(self) -> str:
        """The Debian package with the IDX files, for the message when they are missing too."""
        return f"dataset-{self.value.replace('_', '-')}"


@dataclass
class TorchvisionImagesConfig(InMemoryImagesConfig):
    _target_: str = "wgan.dataset.images.TorchvisionImages"
    source: TorchvisionSource = MISSING
    split: Split = Split.train
    download: bool = False  # fetch the files into root if they are not there (needs a network)
    # A folder of gzipped IDX files (Debian's dataset-fashion-mnist) read when root has nothing.
    system_root: Optional[str] = None


@dataclass
class DecodedFilesConfig(InMemoryImagesConfig):
    undecodable: Undecodable = Undecodable.skip  # image files that do not decode: skip (counted) or refuse


@dataclass
class ImageFolderConfig(DecodedFilesConfig):
    _target_: str = "wgan.dataset.images.ImageFolder"
    fit: Fit = Fit.resize


class ImageNetLayout(Enum):
    """Which release of ImageNet 32x32 `root` holds: two downsamplings of ImageNet, different images
    (conf/dataset/imagenet32.yaml says how)."""

    oord = "oord"
    chrabaszcz = "chrabaszcz"

    def files(self, split: Split) -> str:
        """What below the root holds `split`: a folder of PNGs, or a pattern of npz batches."""
        train = split is Split.train
        if self is ImageNetLayout.oord:
            return "train_32x32" if train else "valid_32x32"
        return "train_data_batch_*.npz" if train else "val_data.npz"

    @property
    def release(self) -> str:
        return {"oord": "van den Oord et al.'s PNG folders, which the paper's study read",
                "chrabaszcz": "Chrabaszcz et al.'s npz batches"}[self.value]

    def missing(self, root: Path, split: Split) -> DatasetNotFound:
        """The error for a root without `split`: where it was looked for and how to get it."""
        download, unpack = {
            "oord": ('"Downsampled ImageNet 32x32" (train_32x32.tar, valid_32x32.tar)', f"tar -xf <file> -C {root}"),
            "chrabaszcz": ("Imagenet32_train_npz.zip and Imagenet32_val_npz.zip", f"unzip -j <file> -d {root}"),
        }[self.value]
        other = ImageNetLayout.chrabaszcz if self is ImageNetLayout.oord else ImageNetLayout.oord
        return DatasetNotFound(
            f"no ImageNet 32x32 at {root / self.files(split)} (dataset.layout={self.value}: {self.release}): "
            f"download {download} from https://image-net.org/download-images (needs an image-net.org account) "
            f"and unpack each with `{unpack}`; for {other.release}, set dataset.layout={other.value}"
        )


@dataclass
class ImageNet32Config(DecodedFilesConfig):
    _target_: str = "wgan.dataset.images.ImageNet32"
    split: Split = Split.train
    layout: ImageNetLayout = ImageNetLayout.oord  # which release root holds; the two differ (see the option)


@dataclass
class LSUNConfig(ImageFilesConfig):
    _target_: str = "wgan.dataset.images.LSUN"
    category: str = "bedroom"
    split: Split = Split.train
    fit: Fit = Fit.resize
    num_workers: int = bounded(4, ge=0)  # DataLoader processes decoding and resizing images
    loader_batch_size: int = bounded(64, ge=1)  # images per DataLoader batch; sample() joins batches


@dataclass
class SyntheticImagesConfig(ImageConfig):
    _target_: str = "wgan.dataset.images.SyntheticImages"
    blobs: int = bounded(3, ge=1)  # coloured Gaussian blobs per image


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def dequantized(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 images as gan_cifar_resnet.py feeds real ones to its critic, 2 * (x/256 - 0.5) + U(0, 1/128):
    each pixel spread uniformly over its 1/128-wide bin of [-1, 1), so the critic cannot tell real
    from generated images by their values lying on a grid. The noise is drawn where the generator
    lives (the global RNG: on the images' device), as many values as pixels, in their order."""
    noise_device = generator.device if generator is not None else images.device
    noise = torch.rand(images.shape, generator=generator, device=noise_device).to(images.device)
    return 2 * (images.float() / 256 - 0.5) + noise / 128


def subset_indices(count: int, subset: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of `subset` of `count` images drawn at random, the same for the same `seed`, and
    of the rest (the held-out images), each in drawing order. A ConfigError naming dataset.subset
    unless some images are left to hold out."""
    if subset >= count:
        raise ConfigError(f"dataset.subset={subset} is too large: the dataset has {count:,} images, and a subset "
                          f"must leave some held out (at most {count - 1:,})")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:subset], order[subset:]


def check_channels(channels: int) -> None:
    if channels not in IMAGE_CHANNELS:
        raise ConfigError(f"dataset.channels={channels}: must be 1 (gray) or 3 (RGB)")


class ImageData:
    """What every image option shares: its name, kind and sample shape, and its `fingerprint`,
    a digest of what its images are made from (files and settings), which keys every cache of
    something computed from them (the reference statistics of the scores). With `dataset.subset`,
    `held_out` samples the images left out of training (else it is None). An option that `has_labels`
    reads its images' classes when built with `labeled=True` (a conditional model's run)."""

    kind = DataKind.image
    held_out: Optional["ImageData"] = None
    has_labels: ClassVar[bool] = False

    def __init__(self, name: str, resolution: int, channels: int, fingerprint: str) -> None:
        check_channels(channels)
        self.name = name
        self.shape = (channels, resolution, resolution)
        self.fingerprint = fingerprint


class StoredImages(ImageData):
    """Images stored as uint8: a subclass's `sample_uint8` draws them as stored (what the scores
    compare generated images with), `sample` turns its draw into training batches in [-1, 1]."""

    def __init__(self, name: str, resolution: int, channels: int, fingerprint: str, dequantize: bool) -> None:
        super().__init__(name, resolution, channels, fingerprint)
        self.dequantize = dequantize

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        return self.training_form(self.sample_uint8(n, device, generator), generator)

    def training_form(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return dequantized(images, generator) if self.dequantize else to_unit_range(images)


class Labels(NamedTuple):
    """The class of each image (int64, in the images' order) and how many classes there are."""

    labels: torch.Tensor
    num_classes: int


class ImagePool(StoredImages):
    """uint8 images (N, C, H, W) held in memory and sampled by index; with `labels`, their classes
    too (`sample_labeled`), moved to a device with the images only then."""

    def __init__(self, name: str, images: torch.Tensor, fingerprint: str, dequantize: bool,
                 labels: Optional[Labels] = None) -> None:
        super().__init__(name, images.shape[-1], images.shape[1], fingerprint, dequantize)
        self.images = images
        self.labels = labels
        self.num_classes = 0 if labels is None else labels.num_classes
        self._on_device = {}  # device -> the images there, moved at the first sample on it
        self._labels_on_device = {}  # device -> the labels there, moved at the first labelled sample on it

    def images_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = self.images.to(device)
        return self._on_device[device]

    def sample_uint8(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        images = self.images_on(torch.device(device))
        index = torch.randint(len(images), (n,), generator=generator)
        return images[index.to(images.device)]

    def sample_labeled(self, n: int, device: torch.device | str = "cpu",
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` training images, as `sample` draws them, and their classes."""
        if self.labels is None:
            raise ValueError(f"{self.name} was built without its labels (labeled=False)")
        device = torch.device(device)
        images = self.images_on(device)
        if device not in self._labels_on_device:
            self._labels_on_device[device] = self.labels.labels.to(device)
        index = torch.randint(len(images), (n,), generator=generator).to(device)
        return self.training_form(images[index], generator), self._labels_on_device[device][index]


class InMemoryImages(ImagePool):
    """A uint8 tensor of every image, decoded by `read` (or loaded from the cache) when built.

    `read()` returns uint8 images (N, C, H, W) of any size with C in {1, 3}; they are conformed to
    the configured resolution and channels before they are cached (in `cache_dir`, the setting
    `metrics.cache_dir`; None: the default), under `kind` (what of `root` is read) and keyed by
    `sources`, the fingerprint of the files `read` reads. With a `subset`, training samples that
    many of them (`subset_indices`) and `held_out` the rest.
    """

    def __init__(self, name: str, root: str, kind: str, sources: str, read: Callable[[], torch.Tensor],
                 resolution: int, channels: int, fit: Fit | str, cache: bool, cache_dir: Optional[str],
                 dequantize: bool, subset: Optional[int] = None, subset_seed: int = 0,
                 read_labels: Optional[Callable[[], Labels]] = None) -> None:
        check_channels(channels)
        fit = Fit(fit)
        key = {"images": kind, "root": str(Path(root).expanduser().resolve()), "resolution": resolution,
               "channels": channels, "fit": fit.value}
        images = cached(directory(cache_dir) if cache else None, f"images-{kind}", key, sources,
                        lambda: conform(read(), resolution, channels, fit))
        labels = None if read_labels is None else read_labels()
        if labels is not None and len(labels.labels) != len(images):
            raise ConfigError(f"{root} gives {len(images):,} images but {len(labels.labels):,} labels: images that "
                              "do not decode were skipped; remove them to train a conditional model (arch.num_classes)")
        if subset is None:
            super().__init__(name, images, digest([key, sources]), dequantize, labels)
            return
        kept, rest = subset_indices(len(images), subset, subset_seed)
        fingerprint = digest([key, sources, {"subset": subset, "subset_seed": subset_seed}])
        super().__init__(name, images[kept], fingerprint, dequantize, subset_labels(labels, kept))
        self.held_out = ImagePool(f"{name} (held out)", images[rest], digest([fingerprint, "held out"]), dequantize,
                                  subset_labels(labels, rest))


def subset_labels(labels: Optional[Labels], index: torch.Tensor) -> Optional[Labels]:
    return None if labels is None else Labels(labels.labels[index], labels.num_classes)


def read_torchvision(source: TorchvisionSource, root: Path, split: Split, download: bool,
                     system_root: str | None) -> torch.Tensor:
    try:
        data = source.dataset_class(str(root), train=split is Split.train, download=download).data
    except (RuntimeError, OSError) as err:  # files missing, or the download failed
        if system_root and Path(system_root).is_dir():
            return read_idx_folder(Path(system_root), split)
        folder = root / source.folder
        also = f" (nor IDX files in {system_root}: apt-get install {source.debian_package})" if system_root else ""
        how = (f"the download failed ({err}); put the files there" if download
               else f"set dataset.download=true (needs a network) or put the files in {folder}")
        raise DatasetNotFound(f"{source.value}: no data in {folder}{also}: {how}") from None
    data = torch.as_tensor(data)
    # CIFAR-10 is stored (N, H, W, 3), the MNISTs (N, H, W).
    return data.permute(0, 3, 1, 2) if data.ndim == 4 else data[:, None]


def idx_file(folder: Path, split: Split, contents: str) -> Path:
    """The gzipped IDX file of one split's `images` (3-d) or `labels` (1-d), as MNIST names them."""
    prefix = "train" if split is Split.train else "t10k"
    dims = {"images": 3, "labels": 1}[contents]
    return folder / f"{prefix}-{contents}-idx{dims}-ubyte.gz"


def read_idx_folder(folder: Path, split: Split) -> torch.Tensor:
    return read_idx(idx_file(folder, split, "images"))[:, None]


def read_labels(source: TorchvisionSource, root: Path, split: Split, system_root: str | None) -> torch.Tensor:
    """The class of each image of a torchvision source's split (int64), from where its images are read."""
    try:
        return torch.as_tensor(source.dataset_class(str(root), train=split is Split.train).targets).long()
    except (RuntimeError, OSError):  # not in torchvision's folder: the images came from system_root
        return read_idx(idx_file(Path(system_root), split, "labels")).long()


def torchvision_files(source: TorchvisionSource, root: Path, system_root: str | None) -> str:
    """The fingerprint of every file a torchvision source may be read from (images and labels of
    both splits, in torchvision's folder and the IDX fallback)."""
    return digest([folder_stats(root / source.folder), system_root and folder_stats(Path(system_root))])


class TorchvisionImages(InMemoryImages):
    """CIFAR-10, MNIST or Fashion-MNIST, read by torchvision (and downloaded if asked); 10 classes each."""

    has_labels = True

    def __init__(self, name: str, root: str, source: TorchvisionSource | str, resolution: int = 32,
                 channels: int = 3, fit: Fit | str = Fit.pad, cache: bool = True, split: Split | str = Split.train,
                 download: bool = False, system_root: str | None = None, dequantize: bool = False,
                 cache_dir: str | None = None, subset: int | None = None, subset_seed: int = 0,
                 labeled: bool = False) -> None:
        source, split = TorchvisionSource(source), Split(split)
        read = functools.partial(read_torchvision, source, Path(root), split, download, system_root)
        sources = torchvision_files(source, Path(root), system_root)

        def labels() -> Labels:
            return Labels(read_labels(source, Path(root), split, system_root), TORCHVISION_CLASSES)

        super().__init__(name, root, f"{source.value}-{split.value}", sources, read, resolution, channels, fit, cache,
                         cache_dir, dequantize, subset, subset_seed, labels if labeled else None)


def folder_reader(root: Path, resolution: int, channels: int, fit: Fit,
                  undecodable: Undecodable) -> tuple[str, str, Callable[[], torch.Tensor]]:
    """The cache kind, sources and reader of every image file below `root` (the kind says whether
    files that do not decode were skipped: such a cache never stands in for a refusing read)."""
    files = image_files(root)
    if not files:
        raise DatasetNotFound(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}: put the images there "
            "(any folder tree) or set dataset.root"
        )
    read = functools.partial(decode_folder, root, files, resolution, channels, fit, undecodable)
    return f"folder-{undecodable.value}", file_stats(root, files), read


def folder_labels(root: Path) -> Labels:
    """The class of every image below `root` (in `image_files` order): its top-level subfolder,
    numbered in sorted order of the subfolders' names (as torchvision's ImageFolder numbers them)."""
    files = image_files(root)
    loose = [path for path in files if os.sep not in path]
    if loose:
        raise ConfigError(f"dataset.root={root} has images directly in it (e.g. {loose[0]}): a conditional model "
                          "(arch.num_classes) takes its classes from subfolders, one per class")
    folders = [path.split(os.sep, 1)[0] for path in files]
    classes = {name: i for i, name in enumerate(sorted(set(folders)))}
    return Labels(torch.tensor([classes[name] for name in folders]), len(classes))


class ImageFolder(InMemoryImages):
    """Every image in a folder tree (e.g. the CIFAR-10 JPEG copy), resized and centre-cropped; with
    `labeled`, its classes are its subfolders.

    The whole folder is kept in memory (3 KB an image at 32x32 RGB, 12 KB at 64x64): fine for
    CIFAR- or ImageNet-32-sized collections; larger ones want a streaming option like LSUN's.
    """

    has_labels = True

    def __init__(self, name: str, root: str, resolution: int = 32, channels: int = 3, fit: Fit | str = Fit.resize,
                 cache: bool = True, undecodable: Undecodable | str = Undecodable.skip,
                 dequantize: bool = False, cache_dir: str | None = None, subset: int | None = None,
                 subset_seed: int = 0, labeled: bool = False) -> None:
        kind, sources, read = folder_reader(Path(root), resolution, channels, Fit(fit), Undecodable(undecodable))
        labels = functools.partial(folder_labels, Path(root)) if labeled else None
        super().__init__(name, root, kind, sources, read, resolution, channels, fit, cache, cache_dir, dequantize,
                         subset, subset_seed, labels)


def imagenet_reader(root: Path, layout: ImageNetLayout, split: Split, resolution: int, channels: int, fit: Fit,
                    undecodable: Undecodable) -> tuple[str, str, Callable[[], torch.Tensor]]:
    """The cache kind, sources and reader of one split of one release. The kind names the layout:
    the two releases are different images, and a root may hold both."""
    files = layout.files(split)
    if layout is ImageNetLayout.oord:
        if not (root / files).is_dir():
            raise layout.missing(root, split)
        # The PNGs are numbered with leading zeros (0000001.png): sorted names are the release's order.
        kind, sources, read = folder_reader(root / files, resolution, channels, fit, undecodable)
        return f"oord-{files}-{kind}", sources, read
    batches = sorted(root.glob(files), key=lambda path: (len(path.name), path.name))  # batch 10 after batch 9
    if not batches:
        raise layout.missing(root, split)
    kind = f"chrabaszcz-{'train' if split is Split.train else 'val'}"
    return kind, file_stats(root, [path.name for path in batches]), functools.partial(read_npz_batches, batches)


class ImageNet32(InMemoryImages):
    """Downsampled ImageNet 32x32, the data of the paper's architecture study, from either release
    (`layout`): van den Oord et al.'s PNG folders, which the study read, or Chrabaszcz et al.'s npz
    batches."""

    def __init__(self, name: str, root: str, resolution: int = 32, channels: int = 3, fit: Fit | str = Fit.pad,
                 cache: bool = True, split: Split | str = Split.train,
                 layout: ImageNetLayout | str = ImageNetLayout.oord, undecodable: Undecodable | str = Undecodable.skip,
                 dequantize: bool = False, cache_dir: str | None = None, subset: int | None = None,
                 subset_seed: int = 0) -> None:
        kind, sources, read = imagenet_reader(Path(root), ImageNetLayout(layout), Split(split), resolution, channels,
                                              Fit(fit), Undecodable(undecodable))
        super().__init__(name, root, kind, sources, read, resolution, channels, fit, cache, cache_dir, dequantize,
                         subset, subset_seed)


class StreamingImages(StoredImages):
    """Batches from a torch dataset of (uint8 image, label) pairs, through a shuffling DataLoader
    that starts again when it is exhausted.

    `generator` is ignored: a stream has one order, so evaluation batches come from the same
    stream as training batches, and a resumed run does not see the same images as an
    uninterrupted one. The workers start at the first `sample`, after the models are built.
    """

    def __init__(self, name: str, dataset: torch.utils.data.Dataset, resolution: int, channels: int, fingerprint: str,
                 loader_batch_size: int, num_workers: int, dequantize: bool = False) -> None:
        super().__init__(name, resolution, channels, fingerprint, dequantize)
        self.loader = DataLoader(dataset, batch_size=loader_batch_size, shuffle=True, num_workers=num_workers,
                                 persistent_workers=num_workers > 0)
        self._batches = self._forever()
        self._buffer = torch.empty(0, *self.shape, dtype=torch.uint8)

    def _forever(self):
        while True:
            for images, _ in self.loader:
                yield images

    def sample_uint8(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        while len(self._buffer) < n:
            self._buffer = torch.cat([self._buffer, next(self._batches)])
        batch, self._buffer = self._buffer[:n], self._buffer[n:]
        return batch.to(device)


class LSUN(StreamingImages):
    """An LSUN scene category (e.g. bedrooms, 3 million images) read from its LMDB database
    (`wgan.dataset.lmdb_images`), which needs the `lmdb` package (not a dependency of this project)."""

    def __init__(self, name: str, root: str, category: str = "bedroom", resolution: int = 64, channels: int = 3,
                 fit: Fit | str = Fit.resize, split: Split | str = Split.train, num_workers: int = 4,
                 loader_batch_size: int = 64, dequantize: bool = False, cache_dir: str | None = None,
                 subset: int | None = None, subset_seed: int = 0) -> None:
        database = Path(root) / f"{category}_{'train' if Split(split) is Split.train else 'val'}_lmdb"
        if not database.is_dir():
            raise DatasetNotFound(
                f"no LSUN database at {database}: download it with "
                f"`python download.py -c {category}` from https://github.com/fyu/lsun and unzip it into {root}"
            )
        if importlib.util.find_spec("lmdb") is None:
            raise ConfigError("dataset lsun needs the lmdb package: pip install lmdb")
        transform = functools.partial(conform_image, resolution=resolution, channels=channels, fit=Fit(fit))
        dataset = LMDBImages(database, transform, directory(cache_dir))
        if not len(dataset):
            raise DatasetNotFound(f"the LSUN database {database} holds no images: download it again")
        # The images are what data.mdb holds (lock.mdb changes at every opening).
        fingerprint = digest([file_stats(database, ["data.mdb"]), resolution, channels, Fit(fit).value])
        held_out = None
        if subset is not None:
            kept, rest = subset_indices(len(dataset), subset, subset_seed)
            fingerprint = digest([fingerprint, {"subset": subset, "subset_seed": subset_seed}])
            # Streamed in this process (no workers): validation reads a few batches now and then.
            held_out = StreamingImages(f"{name} (held out)", Subset(dataset, rest.tolist()), resolution, channels,
                                       digest([fingerprint, "held out"]), loader_batch_size, 0, dequantize)
            dataset = Subset(dataset, kept.tolist())
        super().__init__(name, dataset, resolution, channels, fingerprint, loader_batch_size, num_workers, dequantize)
        self.held_out = held_out


class SyntheticImages(ImageData):
    """Soft coloured blobs on a black background, drawn afresh for every batch: no files, and a
    distribution a GAN can learn a little of in a few hundred iterations (tests, benchmarks).
    The same generator state gives the same images. With a `subset`, training samples a fixed pool
    of that many images (drawn with `subset_seed`), and `held_out` draws fresh ones."""

    def __init__(self, name: str, resolution: int = 32, channels: int = 3, blobs: int = 3,
                 subset: int | None = None, subset_seed: int = 0) -> None:
        settings = ["synthetic", resolution, channels, blobs] + ([subset, subset_seed] if subset is not None else [])
        super().__init__(name, resolution, channels, digest(settings))
        self.blobs = blobs
        self.pool: torch.Tensor | None = None
        if subset is not None:
            self.held_out = SyntheticImages(f"{name} (held out)", resolution, channels, blobs)
            self.pool = self.held_out.sample(subset, "cpu", torch.Generator().manual_seed(subset_seed))

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        if self.pool is not None:
            return self.pool[torch.randint(len(self.pool), (n,), generator=generator)].to(device)
        channels, size, _ = self.shape
        # Centres and widths in image widths; drawn on the CPU so that a generator fixes them anywhere.
        centres = (0.2 + 0.6 * torch.rand(n, self.blobs, 2, 1, 1, generator=generator)).to(device)
        widths = (0.05 + 0.1 * torch.rand(n, self.blobs, 1, 1, generator=generator)).to(device)
        colours = torch.rand(n, self.blobs, channels, 1, 1, generator=generator).to(device)
        grid = (torch.arange(size, device=device) + 0.5) / size
        squared = (grid[:, None] - centres[:, :, 0]) ** 2 + (grid[None, :] - centres[:, :, 1]) ** 2
        weights = torch.exp(-squared / (2 * widths**2))  # (n, blobs, size, size)
        return (weights[:, :, None] * colours).sum(1).clamp(max=1) * 2 - 1

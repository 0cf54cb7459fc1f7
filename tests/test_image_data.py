"""Image datasets: exact pixels through every reader and the cache, sampling on the interface the
training loop uses, and the messages for missing data. Every dataset is made here in tmp_path."""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import logging
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from PIL import Image

from conftest import compose_config
from wgan.config import validate
from wgan.dataset import DatasetNotFound, Fit
from wgan.dataset.image_files import conform, image_files
from wgan.dataset.images import StreamingImages
from wgan.schema import ConfigError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def build(option: str, *overrides: str):
    return instantiate(compose_config([f"dataset={option}", *overrides]).dataset)


def build_error(option: str, *overrides: str) -> Exception:
    """The error building the option raises (Hydra wraps it; the cause is ours)."""
    with pytest.raises(InstantiationException) as info:
        build(option, *overrides)
    return info.value.__cause__


def random_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def write_png(image: torch.Tensor, path: Path) -> None:
    Image.fromarray(image.permute(1, 2, 0).squeeze(2).numpy()).save(path)


def write_folder(root: Path, images: torch.Tensor) -> None:
    """PNGs in two class folders, named so that sorted order is the tensor's order."""
    for i, image in enumerate(images):
        path = root / f"class{i % 2}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(image, path)
    # Sorted order is class0/000, class0/002, ..., class1/001, ...
    return torch.cat([images[0::2], images[1::2]])


def idx_bytes(images: torch.Tensor) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, images.ndim) + struct.pack(f">{images.ndim}i", *images.shape) + images.numpy().tobytes()


def expected_batch(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    index = torch.randint(len(images), (n,), generator=torch.Generator().manual_seed(seed))
    return images[index].float() / 127.5 - 1


def test_synthetic_images_sample_like_training_data():
    dataset = build("synthetic")
    assert (dataset.name, dataset.kind, dataset.shape) == ("synthetic", "image", (3, 32, 32))
    batch = dataset.sample(64)
    assert batch.shape == (64, 3, 32, 32) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1 and batch.std() > 0.1
    same = [dataset.sample(8, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*same)
    torch.manual_seed(5)
    first = dataset.sample(8)
    torch.manual_seed(5)
    assert torch.equal(first, dataset.sample(8))
    assert build("synthetic", "dataset.resolution=64", "dataset.channels=1").sample(4).shape == (4, 1, 64, 64)


def test_image_options_set_the_image_batch_and_no_toy_metrics():
    cfg = compose_config(["dataset=synthetic"])
    assert cfg.train.batch_size == 64 and list(cfg.metrics.names) == []
    assert compose_config(["dataset=synthetic", "train.batch_size=32"]).train.batch_size == 32


def test_imagefolder_round_trips_exact_pixels_through_loader_and_cache(tmp_path, monkeypatch):
    in_order = write_folder(tmp_path, random_images(20, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}")
    assert (dataset.name, dataset.kind, dataset.shape) == ("imagefolder", "image", (3, 32, 32))
    assert torch.equal(dataset.images, in_order)
    batch = dataset.sample(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(batch, expected_batch(in_order, 50, seed=1))
    [cache] = (tmp_path / ".wgan-cache").iterdir()
    assert cache.name.startswith("folder-") and cache.name.endswith("-skip-32-3-resize.pt")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds the images")

    monkeypatch.setattr("wgan.dataset.image_files.conform_image", no_decoding)
    assert torch.equal(build("imagefolder", f"dataset.root={tmp_path}").images, in_order)


def test_imagefolder_converts_sizes_and_channels_and_skips_corrupt_files(tmp_path, caplog):
    write_png(random_images(1, 3, 48)[0, :, :, 4:44], tmp_path / "wide.png")  # 48 high, 40 wide
    write_png(random_images(1, 1, 32)[0], tmp_path / "gray.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.cache=false")
    assert f"1 of 3 image files in {tmp_path} do not decode (e.g. broken.jpg): skipped" in caplog.text
    assert dataset.images.shape == (2, 3, 32, 32) and not (tmp_path / ".wgan-cache").exists()
    gray = build("imagefolder", f"dataset.root={tmp_path}", "dataset.channels=1", "dataset.resolution=64")
    assert gray.sample(3).shape == (3, 1, 64, 64)
    # Refusing them is a setting; a cache written while skipping does not stand in for it.
    assert str(build_error("imagefolder", f"dataset.root={tmp_path}", "dataset.undecodable=refuse")) == (
        f"1 of 3 image files in {tmp_path} do not decode (e.g. broken.jpg): repair or remove them, "
        "or set dataset.undecodable=skip to train without them"
    )


@contextlib.contextmanager
def unprivileged():
    """Root reads any folder: as root, act as the user nobody for a while (in this process)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_an_unreadable_dataset_folder_is_named(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_png(random_images(1, 3, 32)[0], folder / "a.png")
    folder.chmod(0)
    with unprivileged(), pytest.raises(DatasetNotFound) as raised:
        image_files(folder)
    assert str(raised.value) == (
        f"cannot read the dataset folder {folder}: Permission denied; check its permissions or set dataset.root")
    with pytest.raises(DatasetNotFound, match=f"cannot read the dataset folder {folder / 'a.png'}: Not a directory"):
        image_files(folder / "a.png")


def test_conform_pads_28_to_32_and_converts_channels():
    digits = random_images(4, 1, 28)
    padded = conform(digits, 32, 1, Fit.pad)
    assert torch.equal(padded[:, :, 2:30, 2:30], digits) and padded.sum() == digits.sum()
    rgb = conform(digits, 32, 3, Fit.pad)
    assert rgb.shape == (4, 3, 32, 32) and torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], padded[:, 0])
    assert conform(digits, 32, 1, Fit.resize).shape == (4, 1, 32, 32)
    white = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    assert torch.equal(conform(white, 32, 1, Fit.pad), torch.full((1, 1, 32, 32), 255, dtype=torch.uint8))


def test_mnist_reads_torchvisions_files_and_pads_them(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    digits = random_images(6, 1, 28)[:, 0]
    for prefix, n in [("train", 6), ("t10k", 2)]:
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(digits[:n]))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(torch.arange(n, dtype=torch.uint8)))
    dataset = build("mnist", f"dataset.root={tmp_path}")
    assert dataset.shape == (1, 32, 32)
    assert torch.equal(dataset.images[:, 0, 2:30, 2:30], digits) and dataset.images.sum() == digits.sum()
    assert (tmp_path / ".wgan-cache" / "mnist-train-32-1-pad.pt").exists()
    assert build("mnist", f"dataset.root={tmp_path}", "dataset.split=test").images.shape == (2, 1, 32, 32)


def test_fashion_mnist_falls_back_to_gzipped_idx_files(tmp_path):
    system = tmp_path / "system"
    system.mkdir()
    clothes = random_images(5, 1, 28)[:, 0]
    (system / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(clothes)))
    dataset = build("fashion_mnist", f"dataset.root={tmp_path / 'empty'}", f"dataset.system_root={system}",
                    "dataset.fit=resize", "dataset.channels=3")
    assert dataset.images.shape == (5, 3, 32, 32)
    exact = build("fashion_mnist", f"dataset.root={tmp_path / 'other'}", f"dataset.system_root={system}")
    assert torch.equal(exact.images[:, 0, 2:30, 2:30], clothes)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    dataset = build("fashion_mnist", f"dataset.root={tmp_path}")
    assert dataset.images.shape == (60_000, 1, 32, 32) and dataset.images.dtype == torch.uint8
    assert dataset.images[:, :, :2].max() == 0 and dataset.images.max() == 255
    cached = build("fashion_mnist", f"dataset.root={tmp_path}", "dataset.system_root=/nonexistent")
    assert torch.equal(cached.images, dataset.images)
    test = build("fashion_mnist", f"dataset.root={tmp_path}", "dataset.split=test", "dataset.cache=false")
    assert test.images.shape == (10_000, 1, 32, 32)


def test_imagenet32_reads_npz_batches_channel_major(tmp_path):
    rows = random_images(7, 3, 32).reshape(7, 3072).numpy()
    np.savez(tmp_path / "train_data_batch_1.npz", data=rows[:4], labels=np.arange(4))
    np.savez(tmp_path / "train_data_batch_2.npz", data=rows[4:], labels=np.arange(3))
    dataset = build("imagenet32", f"dataset.root={tmp_path}")
    assert torch.equal(dataset.images, torch.from_numpy(rows).reshape(7, 3, 32, 32))
    assert torch.equal(dataset.images[2, 1], torch.from_numpy(rows[2, 1024:2048]).reshape(32, 32))  # the G plane
    assert (tmp_path / ".wgan-cache" / "npz-train-32-3-pad.pt").exists()


def test_imagenet32_reads_a_png_folder(tmp_path):
    in_order = write_folder(tmp_path, random_images(4, 3, 32))
    assert torch.equal(build("imagenet32", f"dataset.root={tmp_path}").images, in_order)


def test_in_memory_sampling_moves_the_images_once_and_follows_the_global_rng(tmp_path):
    in_order = write_folder(tmp_path, random_images(6, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}")
    torch.manual_seed(2)
    batch = dataset.sample(10, device="cpu")
    assert torch.equal(batch, expected_batch(in_order, 10, seed=2))
    assert dataset._on_device[torch.device("cpu")] is dataset.images


def test_streaming_images_refill_from_the_loader():
    images = random_images(8, 3, 32)
    dataset = StreamingImages("stream", [(image, 0) for image in images], 32, 3, loader_batch_size=3, num_workers=0)
    torch.manual_seed(0)
    epoch = torch.cat([dataset.sample(4), dataset.sample(4)])
    as_uint8 = ((epoch + 1) * 127.5).round().to(torch.uint8)
    assert sorted(map(bytes, as_uint8.flatten(1).numpy())) == sorted(map(bytes, images.flatten(1).numpy()))
    assert dataset.sample(20).shape == (20, 3, 32, 32)  # across epoch ends


def missing(option, tmp_path, *overrides):
    return str(build_error(option, f"dataset.root={tmp_path}", *overrides))


def test_missing_torchvision_data_names_the_folder_and_the_download_flag(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    assert missing("cifar10", tmp_path) == (
        f"cifar10: no data in {folder}: set dataset.download=true (needs a network) or put the files in {folder}"
    )
    folder = tmp_path / "FashionMNIST" / "raw"
    assert missing("fashion_mnist", tmp_path, "dataset.system_root=/nonexistent") == (
        f"fashion_mnist: no data in {folder} (nor IDX files in /nonexistent: apt-get install dataset-fashion-mnist): "
        f"set dataset.download=true (needs a network) or put the files in {folder}"
    )


def test_missing_files_name_the_folder_and_how_to_get_them(tmp_path):
    assert isinstance(build_error("imagefolder", f"dataset.root={tmp_path}"), DatasetNotFound)
    assert missing("imagefolder", tmp_path / "nowhere") == (
        f"no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp) in {tmp_path / 'nowhere'}: put the images there "
        "(any folder tree) or set dataset.root"
    )
    assert missing("imagenet32", tmp_path) == (
        f"no ImageNet 32x32 in {tmp_path} (neither train_data_batch_*.npz nor image files): download the npz "
        "batches (Imagenet32_train_npz.zip, Imagenet32_val_npz.zip) or the PNG folders from "
        f"https://image-net.org/download-images (free account) and unpack them into {tmp_path}"
    )
    assert missing("lsun_bedroom", tmp_path) == (
        f"no LSUN database at {tmp_path / 'bedroom_train_lmdb'}: download it with `python download.py -c bedroom` "
        f"from https://github.com/fyu/lsun and unzip it into {tmp_path}"
    )


@pytest.mark.skipif(importlib.util.find_spec("lmdb") is not None, reason="lmdb is installed")
def test_lsun_without_lmdb_says_how_to_install_it(tmp_path):
    (tmp_path / "bedroom_train_lmdb").mkdir()
    error = build_error("lsun_bedroom", f"dataset.root={tmp_path}")
    assert type(error) is ConfigError and str(error) == "dataset lsun needs the lmdb package: pip install lmdb"


def test_image_settings_are_checked(tmp_path):
    assert str(build_error("synthetic", "dataset.channels=2")) == "dataset.channels=2: must be 1 (gray) or 3 (RGB)"
    with pytest.raises(ConfigError, match=r"dataset.resolution=4 is out of range: must be >= 8"):
        validate(compose_config(["dataset=synthetic", "dataset.resolution=4"]))
    with pytest.raises(Exception) as info:
        compose_config(["dataset=imagefolder", "dataset.fit=stretch"])
    assert "Invalid value 'stretch', expected one of [pad, resize]" in str(info.value.__cause__)

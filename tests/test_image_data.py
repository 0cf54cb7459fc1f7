"""Image datasets: exact pixels through every reader and the cache, sampling on the interface the
training loop uses, and the messages for missing data. Every dataset is made here in tmp_path."""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import logging
import os
import struct
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from PIL import Image

from helpers import DEBIAN_FASHION, as_set, build, idx_bytes, random_images, write_folder, write_lmdb, write_png
from wgan.config import build_dataset, compose_config, validate
from wgan import cache
from wgan.dataset import DataKind, DatasetNotFound, Fit
from wgan.dataset.image_files import conform, image_files
from wgan.dataset.images import StreamingImages
from wgan.metrics import EvalContext, to_uint8
from wgan.cache import cache_path
from wgan.metrics.inception import reference, reference_images
from wgan.schema import ConfigError


def build_error(option: str, *overrides: str) -> Exception:
    """The error building the option raises (Hydra wraps it; the cause is ours)."""
    with pytest.raises(InstantiationException) as info:
        build(option, *overrides)
    return info.value.__cause__


def expected_batch(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    index = torch.randint(len(images), (n,), generator=torch.Generator().manual_seed(seed))
    return images[index].float() / 127.5 - 1


def test_synthetic_images_sample_like_training_data():
    dataset = build("synthetic")
    assert (dataset.name, dataset.kind, dataset.shape) == ("synthetic", DataKind.image, (3, 32, 32))
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


def test_imagefolder_round_trips_exact_pixels_through_loader_and_cache(tmp_path, monkeypatch, cache_home):
    in_order = write_folder(tmp_path, random_images(20, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}")
    assert (dataset.name, dataset.kind, dataset.shape) == ("imagefolder", DataKind.image, (3, 32, 32))
    assert torch.equal(dataset.images, in_order)
    batch = dataset.sample(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(batch, expected_batch(in_order, 50, seed=1))
    [cache] = cache_home.iterdir()
    assert cache.name.startswith("images-folder-skip-") and cache.suffix == ".pt"

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds the images")

    monkeypatch.setattr("wgan.dataset.image_files.conform_image", no_decoding)
    assert torch.equal(build("imagefolder", f"dataset.root={tmp_path}").images, in_order)


def test_imagefolder_converts_sizes_and_channels_and_skips_corrupt_files(tmp_path, caplog, cache_home):
    write_png(random_images(1, 3, 48)[0, :, :, 4:44], tmp_path / "wide.png")  # 48 high, 40 wide
    write_png(random_images(1, 1, 32)[0], tmp_path / "gray.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.cache=false")
    assert f"1 of 3 image files in {tmp_path} do not decode (e.g. broken.jpg (UnidentifiedImageError)): skipped" \
        in caplog.text
    assert dataset.images.shape == (2, 3, 32, 32) and not cache_home.exists()
    gray = build("imagefolder", f"dataset.root={tmp_path}", "dataset.channels=1", "dataset.resolution=64")
    assert gray.sample(3).shape == (3, 1, 64, 64)
    # Refusing them is a setting; a cache written while skipping does not stand in for it.
    assert str(build_error("imagefolder", f"dataset.root={tmp_path}", "dataset.undecodable=refuse")) == (
        f"1 of 3 image files in {tmp_path} do not decode (e.g. broken.jpg (UnidentifiedImageError)): repair or remove "
        "them, "
        "or set dataset.undecodable=skip to train without them"
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_decompression_bomb_is_an_undecodable_file(tmp_path, caplog):
    """A 200 KB PNG whose header claims 20000 x 20000 pixels (twice Pillow's MAX_IMAGE_PIXELS and
    more) is refused by Pillow before decoding: it is counted with the files that do not decode."""
    write_png(random_images(1, 3, 32)[0], tmp_path / "a.png")
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)  # 8-bit gray
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                                        + png_chunk(b"IDAT", zlib.compress(bytes(20001 * 10))) + png_chunk(b"IEND", b""))
    with caplog.at_level(logging.WARNING):
        dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.cache=false")
    assert dataset.images.shape == (1, 3, 32, 32)
    assert (f"1 of 2 image files in {tmp_path} do not decode (e.g. bomb.png (DecompressionBombError: Image size "
            "(400000000 pixels) exceeds limit of 178956970 pixels, could be decompression bomb DOS attack)): "
            "skipped") in caplog.text


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    """Pillow's convert() clips 16-bit and float pixels at 255; they are scaled by their full
    scale instead: round(v / 65535 * 255) for 16 bits, round(x * 255) for floats in [0, 1]."""
    deep = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64  # 0 .. 65472
    unit = np.linspace(-0.25, 1.25, 32 * 32, dtype=np.float32).reshape(32, 32)  # beyond [0, 1]: clipped
    Image.fromarray(deep).save(tmp_path / "a_16bit.png")
    Image.fromarray(unit).save(tmp_path / "b_float.tif")
    assert [Image.open(tmp_path / name).mode for name in ("a_16bit.png", "b_float.tif")] == ["I;16", "F"]
    dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.channels=1", "dataset.cache=false")
    expected_16 = (deep.astype(np.int64) * 255 + 32767) // 65535  # round half up, in integers
    expected_float = np.floor(np.clip(unit.astype(np.float64), 0, 1) * 255 + 0.5)
    assert np.array_equal(dataset.images[0, 0].numpy(), expected_16)
    assert np.array_equal(dataset.images[1, 0].numpy(), expected_float)
    assert len(torch.unique(dataset.images[0])) == 256  # clipped, 1020 of its 1024 pixels would be 255
    # the model's range: x / 127.5 - 1
    batch = dataset.sample(64, generator=torch.Generator().manual_seed(0))
    index = torch.randint(2, (64,), generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(np.stack([expected_16, expected_float])).float()[index, None] / 127.5 - 1
    assert torch.equal(batch, expected)
    assert batch.min() == -1 and batch.max() == 1


def test_32_bit_integer_images_do_not_decode_for_lack_of_a_full_scale(tmp_path, caplog):
    write_png(random_images(1, 1, 32)[0], tmp_path / "a.png")
    Image.fromarray(np.full((32, 32), 70000, dtype=np.int32)).save(tmp_path / "b.tif")
    with caplog.at_level(logging.WARNING):
        dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.channels=1", "dataset.cache=false")
    assert dataset.images.shape == (1, 1, 32, 32)
    assert "(e.g. b.tif (UnknownRange: 32-bit integer pixels (mode I): their full scale is unknown; save them as " \
           "16-bit)): skipped" in caplog.text


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


def test_mnist_reads_torchvisions_files_and_pads_them(tmp_path, cache_home):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    digits = random_images(6, 1, 28)[:, 0]
    for prefix, n in [("train", 6), ("t10k", 2)]:
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(digits[:n]))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(torch.arange(n, dtype=torch.uint8)))
    dataset = build("mnist", f"dataset.root={tmp_path}")
    assert dataset.shape == (1, 32, 32)
    assert torch.equal(dataset.images[:, 0, 2:30, 2:30], digits) and dataset.images.sum() == digits.sum()
    assert len(list(cache_home.glob("images-mnist-train-*.pt"))) == 1
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


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    dataset = build("fashion_mnist", f"dataset.root={tmp_path}")
    assert dataset.images.shape == (60_000, 1, 32, 32) and dataset.images.dtype == torch.uint8
    assert dataset.images[:, :, :2].max() == 0 and dataset.images.max() == 255
    with monkeypatch.context() as patch:
        patch.setattr("wgan.dataset.images.read_idx", lambda path: pytest.fail("read although cached"))
        assert torch.equal(build("fashion_mnist", f"dataset.root={tmp_path}").images, dataset.images)
    test = build("fashion_mnist", f"dataset.root={tmp_path}", "dataset.split=test", "dataset.cache=false")
    assert test.images.shape == (10_000, 1, 32, 32)


def write_oord(root: Path, train: torch.Tensor, valid: torch.Tensor) -> None:
    """The Pixel RNN release's layout: train_32x32/0000001.png.., valid_32x32/00001.png.. (numbered
    from 1 with as many digits as the full release's counts, 1,281,149 and 49,999, have)."""
    for folder, images, digits in [("train_32x32", train, 7), ("valid_32x32", valid, 5)]:
        (root / folder).mkdir()
        for i, image in enumerate(images, start=1):
            write_png(image, root / folder / f"{i:0{digits}d}.png")


def test_imagenet32_reads_the_oord_png_folders_of_the_study(tmp_path, cache_home):
    train, valid = random_images(12, 3, 32, seed=1), random_images(3, 3, 32, seed=2)
    write_oord(tmp_path, train, valid)
    np.savez(tmp_path / "val_data.npz", data=random_images(2, 3, 32).reshape(2, 3072).numpy())  # not read
    dataset = build("imagenet32", f"dataset.root={tmp_path}")
    assert dataset.images.shape == (12, 3, 32, 32) and torch.equal(dataset.images, train)  # 0000010.png after 9
    for split in ("valid", "test"):
        assert torch.equal(build("imagenet32", f"dataset.root={tmp_path}", f"dataset.split={split}").images, valid)
    caches = sorted(path.name.split("-folder-")[0] for path in cache_home.iterdir())
    assert caches == ["images-oord-train_32x32", "images-oord-valid_32x32"]
    batch = dataset.sample(40, generator=torch.Generator().manual_seed(4))
    assert torch.equal(batch, expected_batch(train, 40, seed=4))


def test_imagenet32_reads_the_chrabaszcz_npz_batches_channel_major(tmp_path, cache_home):
    rows = random_images(12, 3, 32).reshape(12, 3072).numpy()
    for number, part in [(1, rows[:4]), (2, rows[4:7]), (10, rows[7:])]:  # batch 10 comes last
        np.savez(tmp_path / f"train_data_batch_{number}.npz", data=part, labels=np.arange(len(part)))
    val = random_images(5, 3, 32, seed=3).reshape(5, 3072).numpy()
    np.savez(tmp_path / "val_data.npz", data=val, labels=np.arange(5))
    write_oord(tmp_path, random_images(2, 3, 32), random_images(2, 3, 32))  # a root may hold both: not read
    dataset = build("imagenet32", f"dataset.root={tmp_path}", "dataset.layout=chrabaszcz")
    assert torch.equal(dataset.images, torch.from_numpy(rows).reshape(12, 3, 32, 32))
    assert torch.equal(dataset.images[2, 1], torch.from_numpy(rows[2, 1024:2048]).reshape(32, 32))  # the G plane
    valid = build("imagenet32", f"dataset.root={tmp_path}", "dataset.layout=chrabaszcz", "dataset.split=valid")
    assert torch.equal(valid.images, torch.from_numpy(val).reshape(5, 3, 32, 32))
    caches = sorted(path.name.rsplit("-", 1)[0] for path in cache_home.iterdir())
    assert caches == ["images-chrabaszcz-train", "images-chrabaszcz-val"]
    # The oord cache of the same root is another file, so neither layout reads the other's images.
    assert build("imagenet32", f"dataset.root={tmp_path}").images.shape == (2, 3, 32, 32)


def test_in_memory_sampling_moves_the_images_once_and_follows_the_global_rng(tmp_path):
    in_order = write_folder(tmp_path, random_images(6, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}")
    torch.manual_seed(2)
    batch = dataset.sample(10, device="cpu")
    assert torch.equal(batch, expected_batch(in_order, 10, seed=2))
    assert dataset._on_device[torch.device("cpu")] is dataset.images


def test_streaming_images_refill_from_the_loader():
    images = random_images(8, 3, 32)
    dataset = StreamingImages("stream", [(image, 0) for image in images], 32, 3, "stream", loader_batch_size=3, num_workers=0)
    torch.manual_seed(0)
    epoch = torch.cat([dataset.sample(4), dataset.sample(4)])
    as_uint8 = ((epoch + 1) * 127.5).round().to(torch.uint8)
    assert as_set(as_uint8) == as_set(images)
    assert dataset.sample(20).shape == (20, 3, 32, 32)  # across epoch ends


def test_dequantized_batches_follow_gan_cifar_resnet(tmp_path):
    in_order = write_folder(tmp_path, random_images(6, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.dequantize=true")
    assert torch.equal(dataset.images, in_order)  # the stored pixels stay exact
    batch = dataset.sample(50, generator=torch.Generator().manual_seed(7))
    # The same draws in the same order: the images, then one uniform per pixel.
    draws = torch.Generator().manual_seed(7)
    x = in_order[torch.randint(6, (50,), generator=draws)]
    uniform = torch.rand(50, 3, 32, 32, generator=draws)
    assert torch.equal(batch, 2 * (x.float() / 256 - 0.5) + uniform / 128)
    # Every value in its pixel's bin [2x/256 - 1, 2x/256 - 1 + 1/128): exactly so before the one
    # float32 rounding, which can land a value on the bin's upper edge (as in the official code).
    exact, low = 2 * (x.double() / 256 - 0.5) + uniform.double() / 128, 2 * x.double() / 256 - 1
    assert torch.equal(batch, exact.float()) and (exact >= low).all() and (exact < low + 1 / 128).all()
    assert (batch >= low).all() and (batch <= low + 1 / 128).all()
    # Training draws come from the global RNG, like the undequantized ones.
    torch.manual_seed(8)
    first = dataset.sample(200)
    torch.manual_seed(8)
    assert torch.equal(first, dataset.sample(200))
    # Against the bin's lower edge the mean shift is half a bin, 1/256 (+-1e-5: 600k pixels, sd 1/128/sqrt(12)).
    many = dataset.sample(200, generator=torch.Generator().manual_seed(9))
    lower = 2 * in_order[torch.randint(6, (200,), generator=torch.Generator().manual_seed(9))].double() / 256 - 1
    assert (many.double() - lower).mean().item() == pytest.approx(1 / 256, abs=1e-5)


@pytest.mark.slow
def test_dequantize_is_a_setting_of_every_stored_image_option_and_off_by_default():
    for option in ("cifar10", "mnist", "fashion_mnist", "imagefolder", "imagenet32", "lsun_bedroom"):
        assert compose_config([f"dataset={option}"]).dataset.dequantize is False, option
    with pytest.raises(Exception) as info:  # blobs drawn in floating point have no uint8 grid to dequantize
        compose_config(["dataset=synthetic", "dataset.dequantize=true"])
    assert "Could not override 'dataset.dequantize'" in str(info.value)


def test_scores_read_the_stored_pixels_not_the_dequantized_batches(tmp_path):
    in_order = write_folder(tmp_path, random_images(6, 3, 32))
    dataset = build("imagefolder", f"dataset.root={tmp_path}", "dataset.dequantize=true")
    in_memory = EvalContext(num_samples=0, real=None, dataset=dataset, cfg=None)
    assert torch.equal(reference_images(in_memory, None), in_order)
    fixed_permutation = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(reference_images(in_memory, 4), in_order[fixed_permutation[:4]])
    # A stream (LSUN's) has no tensor of every image: its reference images are drawn as stored.
    images = random_images(8, 3, 32)
    stream = StreamingImages("stream", [(image, 0) for image in images], 32, 3, "stream", loader_batch_size=4, num_workers=0,
                             dequantize=True)
    torch.manual_seed(0)
    reference = reference_images(EvalContext(num_samples=0, real=None, dataset=stream, cfg=None), 8)
    assert reference.dtype == torch.uint8 and as_set(reference) == as_set(images)
    training = stream.sample(8)  # the next epoch, dequantized: each value in the bin of its stored pixel
    stored = training.add(1).mul(128).floor()
    assert as_set(stored.to(torch.uint8)) == as_set(images)
    assert training.add(1).mul(128).sub(stored).std() > 0.25  # U(0, 1) within the bin: sd 0.29


def test_reference_statistics_of_the_two_imagenet_releases_are_kept_apart(tmp_path, monkeypatch):
    keys = []
    monkeypatch.setattr("wgan.metrics.inception.cached", lambda folder, name, key, sources, compute: keys.append(key))
    for layout in ("oord", "chrabaszcz", "oord"):
        cfg = compose_config(["dataset=imagenet32", f"dataset.root={tmp_path}", f"dataset.layout={layout}",
                              f"metrics.cache_dir={tmp_path}"])
        context = EvalContext(num_samples=0, real=None, dataset=SimpleNamespace(fingerprint="images"), cfg=cfg)
        reference(context, SimpleNamespace(name="inception"), cfg.metrics.inception, batch_size=8)
    assert [key["layout"] for key in keys] == [f"ImageNetLayout.{name}" for name in ("oord", "chrabaszcz", "oord")]
    assert cache_path(tmp_path, "stats", keys[0]) != cache_path(tmp_path, "stats", keys[1]) and keys[0] == keys[2]


def test_synthetic_reference_images_are_its_blobs_on_the_uint8_grid():
    dataset = build("synthetic")
    reference = reference_images(EvalContext(num_samples=0, real=None, dataset=dataset, cfg=None), 6)
    assert torch.equal(reference, to_uint8(dataset.sample(6, generator=torch.Generator().manual_seed(0))))


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
    assert missing("lsun_bedroom", tmp_path) == (
        f"no LSUN database at {tmp_path / 'bedroom_train_lmdb'}: download it with `python download.py -c bedroom` "
        f"from https://github.com/fyu/lsun and unzip it into {tmp_path}"
    )


def test_a_folder_of_one_undecodable_file_is_named_in_the_singular(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a JPEG")
    assert missing("imagefolder", tmp_path) == (
        f"no image in {tmp_path} could be decoded (tried 1 file)")


@pytest.mark.slow
def test_missing_imagenet32_names_the_path_the_layout_and_the_download(tmp_path):
    oord = ("(dataset.layout=oord: van den Oord et al.'s PNG folders, which the paper's study read): download "
            '"Downsampled ImageNet 32x32" (train_32x32.tar, valid_32x32.tar) from '
            "https://image-net.org/download-images (needs an image-net.org account) and unpack each with "
            f"`tar -xf <file> -C {tmp_path}`; for Chrabaszcz et al.'s npz batches, set dataset.layout=chrabaszcz")
    chrabaszcz = ("(dataset.layout=chrabaszcz: Chrabaszcz et al.'s npz batches): download Imagenet32_train_npz.zip and "
                  "Imagenet32_val_npz.zip from https://image-net.org/download-images (needs an image-net.org account) "
                  f"and unpack each with `unzip -j <file> -d {tmp_path}`; for van den Oord et al.'s PNG folders, which "
                  "the paper's study read, set dataset.layout=oord")
    # The npz batches do not stand in for the PNG folders, nor the other way round.
    np.savez(tmp_path / "train_data_batch_1.npz", data=random_images(1, 3, 32).reshape(1, 3072).numpy())
    (tmp_path / "train_32x32").mkdir()
    assert isinstance(build_error("imagenet32", f"dataset.root={tmp_path}", "dataset.split=valid"), DatasetNotFound)
    assert missing("imagenet32", tmp_path, "dataset.split=valid") == (
        f"no ImageNet 32x32 at {tmp_path / 'valid_32x32'} {oord}")
    assert missing("imagenet32", tmp_path, "dataset.layout=chrabaszcz", "dataset.split=test") == (
        f"no ImageNet 32x32 at {tmp_path / 'val_data.npz'} {chrabaszcz}")
    empty = tmp_path / "empty"
    assert missing("imagenet32", empty, "dataset.layout=chrabaszcz") == (
        f"no ImageNet 32x32 at {empty / 'train_data_batch_*.npz'} {chrabaszcz.replace(str(tmp_path), str(empty))}")
    with pytest.raises(Exception) as info:
        compose_config(["dataset=imagenet32", "dataset.layout=downsampled"])
    assert "Invalid value 'downsampled', expected one of [oord, chrabaszcz]" in str(info.value.__cause__)


def test_lsun_without_lmdb_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # as if not installed: its import fails
    (tmp_path / "bedroom_train_lmdb").mkdir()
    error = build_error("lsun_bedroom", f"dataset.root={tmp_path}")
    assert type(error) is ConfigError and str(error) == "dataset lsun needs the lmdb package: pip install lmdb"


@pytest.mark.skipif(importlib.util.find_spec("lmdb") is None, reason="needs the lmdb package: pip install lmdb")
def test_lsun_reads_its_lmdb_exactly_caches_the_keys_as_data_and_writes_nothing_beside_it(tmp_path, monkeypatch):
    images = random_images(5, 3, 32)
    database = tmp_path / "lsun" / "bedroom_train_lmdb"
    write_lmdb(database, {f"{i:03d}".encode(): image for i, image in enumerate(images)})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # torchvision's reader pickled its key list here
    written = sorted(database.iterdir())
    cfg = compose_config(["dataset=lsun_bedroom", f"dataset.root={tmp_path / 'lsun'}", "dataset.resolution=32",
                          "dataset.num_workers=0", "dataset.loader_batch_size=2", f"metrics.cache_dir={tmp_path / 'cache'}"])
    listed = cache.computed["lmdb-keys"]
    dataset = build_dataset(cfg)
    assert torch.equal(torch.stack([dataset.loader.dataset[i][0] for i in range(5)]), images)  # in key order
    assert as_set(dataset.sample_uint8(5)) == as_set(images)  # one epoch of the stream
    assert list(work.iterdir()) == [] and sorted(database.iterdir()) == written
    assert [path.name.split("-")[:2] for path in (tmp_path / "cache").iterdir()] == [["lmdb", "keys"]]
    assert cache.computed["lmdb-keys"] == listed + 1
    again = build_dataset(cfg)  # the keys read from the cache; one database read by two datasets of a process
    assert cache.computed["lmdb-keys"] == listed + 1 and as_set(again.sample_uint8(5)) == as_set(images)
    # An image added: the database changed, the keys are listed again and the new image is read.
    write_lmdb(database, {b"005": images[0].flip(2)})
    dataset = build_dataset(cfg)
    assert cache.computed["lmdb-keys"] == listed + 2 and len(dataset.loader.dataset) == 6
    assert torch.equal(dataset.loader.dataset[5][0], images[0].flip(2))
    assert list(work.iterdir()) == []


def test_image_settings_are_checked(tmp_path):
    assert str(build_error("synthetic", "dataset.channels=2")) == "dataset.channels=2: must be 1 (gray) or 3 (RGB)"
    with pytest.raises(ConfigError, match=r"dataset.resolution=4 is out of range: must be >= 8"):
        validate(compose_config(["dataset=synthetic", "dataset.resolution=4"]))
    with pytest.raises(Exception) as info:
        compose_config(["dataset=imagefolder", "dataset.fit=stretch"])
    assert "Invalid value 'stretch', expected one of [pad, resize]" in str(info.value.__cause__)

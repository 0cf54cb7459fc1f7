"""Every cache (`wgan.cache`) with real files and processes: keyed by the files it was computed
from (images replaced under the same names are read again, and so are the scores' reference
statistics), checked when read (flipped bytes, a file cut short), written under the cache
directory only, and a cache directory that cannot be written costs a warning, never the run."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, fill, idx_bytes, random_images, require_fid_helper, tmpfs, wait_for, write_png
from wgan.config import build_dataset, compose_config
from wgan import cache
from wgan.dataset.images import Split
from wgan.metrics import EvalContext, classifier, cli
from wgan.metrics.inception import Network, reference

IMAGE_RUN = ["dataset=imagefolder", "metrics=none", "arch=dcgan", "arch.dim=8", "logger=none", "train.batch_size=8",
             "train.iterations=4", "eval.every=2", "ckpt.every=2"]


def write_images(folder: Path, images: torch.Tensor) -> None:
    """One PNG per image, 000.png, 001.png, ...: sorted names are the tensor's order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_png(image, folder / f"{i:03d}.png")


def image_folder(folder: Path, *overrides: str):
    return build_dataset(compose_config(["dataset=imagefolder", f"dataset.root={folder}", *overrides]))


def listing(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file below `folder` with its size and modification time (ns), but those in a folder named in `skip`."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file() and not set(skip) & set(path.parts)}


def test_images_replaced_under_the_same_names_are_decoded_again(tmp_path, cache_home, caplog):
    data = tmp_path / "data"
    old = random_images(4, 3, 32)
    write_images(data, old)
    assert torch.equal(image_folder(data).images, old)
    new = random_images(2, 3, 32, seed=7)
    write_images(data, new)  # 000.png and 001.png replaced, 002.png and 003.png kept
    with caplog.at_level(logging.INFO):
        images = image_folder(data).images
    assert torch.equal(images, torch.cat([new, old[2:]]))
    [entry] = cache_home.iterdir()  # replaced, not a second entry beside the stale one
    assert f"cache {entry}: its files changed since it was written; computing it again" in caplog.text


class ChannelMeans(torch.nn.Module):
    """A stand-in for the Inception network: each image's mean per channel as its features."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (images.float().mean((2, 3)),)


def test_reference_statistics_follow_the_images_they_were_computed_from(tmp_path, cache_home):
    data, network = tmp_path / "data", Network(ChannelMeans(), "channel-means", False, torch.device("cpu"), width=3)
    cfg = compose_config(["dataset=imagefolder", f"dataset.root={data}", "metrics=inception"])

    def statistics() -> torch.Tensor:
        context = EvalContext(num_samples=0, real=None, dataset=build_dataset(cfg), cfg=cfg)
        return reference(context, network, cfg.metrics.inception, batch_size=4)["mu"]

    for seed in (0, 1):  # the second folder's images under the first one's names
        images = random_images(6, 3, 32, seed=seed)
        write_images(data, images)
        expected = images.double().mean((2, 3)).mean(0)
        assert torch.allclose(statistics(), expected) and torch.allclose(statistics(), expected)
    assert cache.computed["stats-channel-means-imagefolder"] == 2 and len(list(cache_home.glob("stats-*"))) == 1


@pytest.mark.slow
def test_scores_against_a_changed_reference_folder_equal_a_fresh_computation(tmp_path, capsys):
    """The reviewer's case: FID against a folder whose images changed was computed against the old
    statistics (114.3 instead of 397.2), silently. KID here, from the same cache entry: FID's
    matrix square root of 2048 x 2048 takes a minute on 2 CPU cores."""
    require_fid_helper()
    generated, reference_folder = tmp_path / "generated", tmp_path / "reference"
    write_images(generated, random_images(6, 3, 32, seed=1))

    def kid(cache_dir: Path) -> float:
        args = [str(generated), "--reference", str(reference_folder), "metrics.inception.weights=fid_helper",
                "metrics.inception.scores=[kid]", "metrics.inception.kid_subsets=2", f"metrics.cache_dir={cache_dir}",
                "--json"]
        assert cli.main(args) == 0
        return json.loads(capsys.readouterr().out)["values"]["kid_6"]

    write_images(reference_folder, random_images(6, 3, 32, seed=1) // 2)
    before = kid(tmp_path / "cache")
    write_images(reference_folder, random_images(6, 3, 32, seed=1))  # now the generated images themselves
    after, fresh = kid(tmp_path / "cache"), kid(tmp_path / "empty cache")
    print(f"KID against the old reference {before:.4f}, the changed one {after:.4f} (fresh cache: {fresh:.4f})")
    assert after == fresh and after < before


def flip_a_byte_of(entry: Path, payload: torch.Tensor) -> None:
    """Flip one byte inside the stored tensor (not in the archive's headers)."""
    data = bytearray(entry.read_bytes())
    data[data.find(payload.numpy().tobytes()[:64]) + 100] ^= 0xFF
    entry.write_bytes(bytes(data))


def cut_short(entry: Path, payload: torch.Tensor) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


@pytest.mark.slow
@pytest.mark.parametrize("damage", [flip_a_byte_of, cut_short])
def test_a_damaged_cache_is_reported_by_name_and_computed_again(tmp_path, cache_home, caplog, monkeypatch, damage):
    data, images = tmp_path / "data", random_images(8, 3, 32)
    write_images(data, images)
    image_folder(data)
    [entry] = cache_home.iterdir()
    damage(entry, images)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(image_folder(data).images, images)
    assert f"cache {entry} is damaged or unreadable (" in caplog.text and "; computing it again" in caplog.text
    if damage is flip_a_byte_of:
        assert "ValueError: its contents do not match their checksum (corrupt)" in caplog.text
    monkeypatch.setattr("wgan.dataset.image_files.conform_image", lambda *a, **k: pytest.fail("decoded again"))
    assert torch.equal(image_folder(data).images, images)  # the entry written again is whole


@pytest.fixture
def read_only_disk(tmp_path):
    yield from tmpfs(tmp_path / "read-only", "ro,size=1m")


@pytest.fixture
def full_disk(tmp_path):
    for disk in tmpfs(tmp_path / "full", "size=1m"):
        fill(disk)
        yield disk


@pytest.mark.slow
@pytest.mark.parametrize("where", ["below a file", "read_only_disk", "full_disk"])
def test_a_cache_directory_that_cannot_be_written_costs_a_warning_not_the_run(tmp_path, request, where):
    """Root writes into any folder whatever its mode: the directory is made unwritable for root too."""
    if where == "below a file":
        (tmp_path / "a-file").write_text("")
        cache_dir = tmp_path / "a-file" / "cache"
    else:
        cache_dir = request.getfixturevalue(where) / "cache"
    data = tmp_path / "data"
    write_images(data, random_images(8, 3, 32))
    command = [sys.executable, str(ROOT / "run.py"), *IMAGE_RUN, f"dataset.root={data}",
               f"metrics.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "complete"
    assert f"could not write the cache {cache_dir}/images-folder-skip-" in done.stdout + done.stderr
    assert "kept in memory, computed again next time" in done.stdout + done.stderr
    assert not list(cache_dir.glob("*.pt"))


@pytest.mark.slow
def test_an_image_run_writes_nothing_into_its_data_folder_or_the_repository(tmp_path, cache_home):
    data = tmp_path / "data"
    write_images(data, random_images(8, 3, 32))
    data_before, repository_before = listing(data), listing(ROOT, skip=("__pycache__", ".git", ".venv"))
    command = [sys.executable, str(ROOT / "run.py"), *IMAGE_RUN, f"dataset.root={data}",
               f"hydra.run.dir={tmp_path / 'run'}"]
    for _ in range(2):  # decoded, then read from the cache
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert listing(data) == data_before
    assert listing(ROOT, skip=("__pycache__", ".git", ".venv")) == repository_before
    assert [path.name.split("-")[:3] for path in cache_home.iterdir()] == [["images", "folder", "skip"]]


def write_fashion(root: Path, seed: int) -> None:
    """A small Fashion-MNIST in torchvision's layout: 200 training and 50 test images, labelled."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in [("train", 200), ("t10k", 50)]:
        labels = torch.from_numpy(rng.integers(0, 10, n).astype(np.uint8))
        images = (labels[:, None, None] * 25).expand(n, 28, 28).contiguous()  # each class one gray level
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


def test_the_classifier_follows_its_files_and_is_trained_again_over_a_damaged_cache(tmp_path, cache_home, caplog):
    root = tmp_path / "fashion"
    dataset = compose_config(["dataset=fashion_mnist", f"dataset.root={root}", "dataset.system_root=null"]).dataset
    trainings = []

    def splits():
        trainings.append(1)
        return (*classifier.labeled_split(dataset, Split.train, cache_home),
                *classifier.labeled_split(dataset, Split.test, cache_home))

    write_fashion(root, seed=0)
    net, accuracy = classifier.load_or_train(cache_home, dataset, splits)
    assert classifier.load_or_train(cache_home, dataset, splits)[1] == accuracy and len(trainings) == 1
    write_fashion(root, seed=1)  # other labels and images under the same names
    net, accuracy = classifier.load_or_train(cache_home, dataset, splits)
    assert len(trainings) == 2
    [entry] = cache_home.glob("classifier-fashion_mnist-*.pt")
    entry.write_bytes(entry.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        again, again_accuracy = classifier.load_or_train(cache_home, dataset, splits)
    assert len(trainings) == 3 and f"cache {entry} is damaged or unreadable" in caplog.text
    assert again_accuracy == accuracy  # the same seed on the CPU: the same network
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), net.state_dict().values()))


def test_the_default_cache_directory_follows_xdg_and_ignores_a_relative_one(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache/me")
    assert cache.directory(None) == Path("/var/cache/me/wgan")
    for ignored in ("", "relative/cache"):  # the XDG specification: such values are ignored
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert cache.directory(None) == Path.home() / ".cache" / "wgan"
    assert cache.directory("~/elsewhere") == Path.home() / "elsewhere"


# A process computing one cache entry: it notes each start and end of the computation in `events`,
# and its computation lasts until the test creates `go`; it logs to <name>.log.
SLOW_ENTRY = """
import logging, os, sys, time, torch
from pathlib import Path
from wgan import cache
from wgan.signals import Stopped, stop_signals
folder, name = Path(sys.argv[1]), sys.argv[2]
logging.basicConfig(filename=folder / f"{name}.log", level=logging.INFO, format="%(message)s", force=True)
def compute():
    with (folder / "events").open("a") as f: f.write(f"start {name}\\n")
    while not (folder / "go").exists():
        time.sleep(0.05)
    with (folder / "events").open("a") as f: f.write(f"end {name}\\n")
    return {"value": torch.arange(3.0) * 7}
with stop_signals():
    try:
        print(cache.cached(folder / "cache", "slow", {"k": 1}, "sources", compute)["value"].tolist(), flush=True)
    except Stopped as stopped:
        sys.exit(f"stopped: {stopped}")
"""


def slow_entry(tmp_path: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_ENTRY, str(tmp_path), name], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events"
    return path.read_text().splitlines() if path.exists() else []


def holder_and_waiter(tmp_path: Path, holder: str, waiter: str) -> tuple[subprocess.Popen, subprocess.Popen]:
    """`holder` computing the entry (until `go`), and `waiter` waiting for it."""
    computing = slow_entry(tmp_path, holder)
    wait_for(lambda: events(tmp_path)[-1:] == [f"start {holder}"], f"{holder} to start computing", 120, 0.05)
    waiting = slow_entry(tmp_path, waiter)
    log = tmp_path / f"{waiter}.log"
    wait_for(lambda: log.exists() and "waiting for another process computing slow-" in log.read_text(),
             f"{waiter} to wait for the entry", 120, 0.05)
    return computing, waiting


@pytest.mark.slow
def test_jobs_starting_together_compute_a_cache_entry_once_and_a_killed_one_blocks_nobody(tmp_path):
    first, second = holder_and_waiter(tmp_path, "first", "second")
    (tmp_path / "go").touch()
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert [out for out, _ in outputs] == ["[0.0, 7.0, 14.0]\n"] * 2
    assert events(tmp_path) == ["start first", "end first"]  # the second read what the first saved
    assert [path.suffix for path in (tmp_path / "cache").iterdir()] == [".pt"]  # the entry alone: no lock left

    # A holder killed mid-computation: its lock goes with it, and the waiting process computes.
    for path in (tmp_path / "events", tmp_path / "go", *(tmp_path / "cache").glob("slow-*.pt")):
        path.unlink()
    third, fourth = holder_and_waiter(tmp_path, "third", "fourth")
    third.kill()
    third.wait()
    wait_for(lambda: events(tmp_path) == ["start third", "start fourth"], "the fourth to compute", 60, 0.05)
    (tmp_path / "go").touch()
    out, err = fourth.communicate(timeout=60)
    assert fourth.returncode == 0 and out == "[0.0, 7.0, 14.0]\n", err
    assert events(tmp_path) == ["start third", "start fourth", "end fourth"]
    assert not list((tmp_path / "cache").glob("*.lock"))  # the killed holder's too, once the fourth held it


@pytest.mark.slow
def test_a_stop_signal_ends_the_wait_for_another_processs_cache_entry_within_seconds(tmp_path):
    holder, waiting = holder_and_waiter(tmp_path, "holder", "waiting")
    sent = time.monotonic()
    waiting.send_signal(signal.SIGTERM)
    _, err = waiting.communicate(timeout=30)
    assert time.monotonic() - sent < 5  # a stop point every LOCK_POLL_SECONDS
    assert waiting.returncode == 1 and "stopped: SIGTERM during waiting for another process computing slow-" in err
    holder.kill()
    holder.wait()
    assert events(tmp_path) == ["start holder"]

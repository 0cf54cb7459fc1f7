"""Text: sentences of characters as one-hot sequences, read as the official `gan_language.py` reads
the Billion Word benchmark (`language_helpers.load_dataset`).

Each line of the files is one sentence: cut to `seq_len` characters, padded with PAD up to it
(the padding is a character like the others, in the vocabulary and in the n-gram statistics, as
in the official code). The vocabulary is built from the data: index 0 stands for every character
outside it, then the `vocab_size - 1` most common characters, the most common first (ties in
code-point order). The lines are shuffled once with a fixed seed (every run sees the same data and
the same held-out lines whatever its seed) and the first `heldout_fraction` of them are held out:
the n-gram metrics compare generated text with them (wgan.metrics.text). A training batch is
`n` training lines drawn with replacement, one-hot: (n, seq_len, vocabulary) float32.

Sources (`source`):
- `billion_word`: the "One Billion Word" benchmark (Chelba et al. 2013; statmt.org/lm-benchmark,
  the official code's data), read from the 99 files of `training-monolingual.tokenized.shuffled`
  in order until `max_lines`, as the official code reads them. `download=true` fetches the
  1.7 GB archive into `root` when it is not there.
- `files`: any local text files (a folder stands for every file in it, in name order), one
  sentence per line; surrounding whitespace is stripped and blank lines are skipped.

The encoded lines and the vocabulary are cached (wgan.cache) keyed by the settings and the files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from omegaconf import MISSING

from wgan.cache import cached, directory, file_stats
from wgan.dataset.image_files import DatasetNotFound
from wgan.dataset.kind import DataKind
from wgan.schema import ConfigError, bounded

PAD = "`"  # the official code's padding character
UNKNOWN = "\ufffd"  # how index 0, any character outside the vocabulary, is shown
SPLIT_SEED = 0  # the one shuffle of the lines, the same for every run
UNICODE = 0x110000  # code points
ENCODE_CHUNK = 1_000_000  # lines encoded at a time

BILLION_WORD_URL = "http://www.statmt.org/lm-benchmark/1-billion-word-language-modeling-benchmark-r13output.tar.gz"
BILLION_WORD_FOLDER = "1-billion-word-language-modeling-benchmark-r13output"
BILLION_WORD_TRAIN = "training-monolingual.tokenized.shuffled"
BILLION_WORD_FILES = [f"news.en-{i:05d}-of-00100" for i in range(1, 100)]  # what gan_language.py reads


class TextSource(Enum):
    billion_word = "billion_word"
    files = "files"


@dataclass
class TextDatasetConfig:
    _target_: str = "wgan.dataset.text.TextDataset"
    name: str = MISSING
    source: TextSource = TextSource.billion_word
    # billion_word: the folder holding the extracted benchmark (or the extracted folder itself)
    root: str = MISSING
    files: list[str] = field(default_factory=list)  # source=files: text files or folders of them
    download: bool = False  # billion_word: fetch the archive into root if it is not there (needs a network)
    seq_len: int = bounded(32, ge=1)  # characters per sentence: cut or padded to it
    vocab_size: int = bounded(2048, ge=2, le=32767)  # index 0 (unknown) and the most common characters
    max_lines: int = bounded(10_000_000, ge=2)  # read at most this many lines (gan_language.py's MAX_N_EXAMPLES)
    heldout_fraction: float = bounded(0.1, gt=0, lt=1)  # the lines the n-gram metrics compare with
    cache: bool = True  # keep the encoded lines in metrics.cache_dir for the next start


def billion_word_folder(root: Path) -> Path:
    """The folder of the training files below `root` (the benchmark's parent or the benchmark itself)."""
    inside = root / BILLION_WORD_FOLDER / BILLION_WORD_TRAIN
    return inside if inside.is_dir() or not (root / BILLION_WORD_TRAIN).is_dir() else root / BILLION_WORD_TRAIN


def billion_word_files(root: Path, download: bool) -> list[Path]:
    folder = billion_word_folder(root)
    if not folder.is_dir() and download:
        from torchvision.datasets.utils import download_and_extract_archive  # on use: slow to import

        try:
            download_and_extract_archive(BILLION_WORD_URL, str(root))
        except OSError as error:  # no network, a refused or cut connection, a full disk
            raise DatasetNotFound(f"billion_word: the download of {BILLION_WORD_URL} into {root} failed "
                                  f"({error}); put the extracted benchmark there") from None
        folder = billion_word_folder(root)
    if not folder.is_dir():
        raise DatasetNotFound(
            f"billion_word: no data in {folder}: set dataset.download=true (needs a network, 1.7 GB) or extract "
            f"{BILLION_WORD_URL} into {root}; for your own text use dataset.source=files dataset.files=[<file>]"
        )
    return [folder / name for name in BILLION_WORD_FILES if (folder / name).is_file()]


def listed_files(paths: list[str]) -> list[Path]:
    """The files `paths` names (a folder: the files in it, in name order); DatasetNotFound for a
    path that does not exist or a list without files."""
    if not paths:
        raise ConfigError("dataset.files is empty: dataset.source=files reads the text files it lists, "
                          "e.g. dataset.files=[/usr/share/common-licenses/GPL-3]")
    found = []
    for path in (Path(p).expanduser() for p in paths):
        if not path.exists():
            raise DatasetNotFound(f"dataset.files: {path} does not exist")
        found += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return found


def sentences(files: list[Path], strip: bool) -> Iterator[str]:
    """Every line of `files` without its line break (`strip`: without surrounding whitespace, blank ones skipped)."""
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                line = line.strip() if strip else line.rstrip("\n")
                if line or not strip:
                    yield line


def code_points(lines: list[str], seq_len: int) -> np.ndarray:
    """The lines cut or padded to `seq_len`, as one array of Unicode code points."""
    padded = "".join(line[:seq_len].ljust(seq_len, PAD) for line in lines)
    return np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32)


def encode(lines: list[str], seq_len: int, vocab_size: int) -> tuple[torch.Tensor, list[str]]:
    """The lines cut or padded to `seq_len`, as vocabulary indices (N, seq_len), and the vocabulary
    (its entry 0 is UNKNOWN). Two passes of ENCODE_CHUNK lines at a time, counting then encoding, so
    that 10 million lines never exist as 4-byte code points all at once."""
    chunks = [lines[start:start + ENCODE_CHUNK] for start in range(0, len(lines), ENCODE_CHUNK)]
    counts = sum(np.bincount(code_points(chunk, seq_len), minlength=UNICODE) for chunk in chunks)
    ranked = np.argsort(-counts, kind="stable")[:vocab_size - 1]  # most common first, ties by code point
    kept = ranked[counts[ranked] > 0]
    index = np.zeros(UNICODE, dtype=np.int16)
    index[kept] = np.arange(1, len(kept) + 1)
    encoded = np.concatenate([index[code_points(chunk, seq_len)] for chunk in chunks])
    return torch.from_numpy(encoded.reshape(len(lines), seq_len)), [UNKNOWN] + [chr(c) for c in kept]


class TextDataset:
    """One-hot sentences (seq_len, vocabulary); `decode` turns index sequences back into text and
    `heldout` holds the held-out lines' indices, which the n-gram metrics compare with."""

    kind = DataKind.text

    def __init__(self, name: str, source: TextSource | str, root: str, files: list[str], download: bool,
                 seq_len: int, vocab_size: int, max_lines: int, heldout_fraction: float, cache: bool,
                 cache_dir: Optional[str] = None) -> None:
        self.name = name
        source = TextSource(source)
        root_path = Path(root).expanduser()
        paths = billion_word_files(root_path, download) if source is TextSource.billion_word else listed_files(files)
        key = {"text": source.value, "files": [str(p.resolve()) for p in paths], "seq_len": seq_len,
               "vocab_size": vocab_size, "max_lines": max_lines, "split_seed": SPLIT_SEED}
        sources = file_stats(Path("/"), key["files"])  # absolute paths: the root joins nothing
        data = cached(directory(cache_dir) if cache else None, "text", key, sources,
                      lambda: self.read(paths, source, seq_len, vocab_size, max_lines))
        lines, self.vocab = data["lines"], list(data["vocab"])
        heldout = round(heldout_fraction * len(lines))
        if heldout < 1 or heldout >= len(lines):
            raise ConfigError(f"dataset.heldout_fraction={heldout_fraction} of {len(lines)} lines leaves no held-out "
                              "or no training line: give more text or another fraction")
        self.heldout, self.lines = lines[:heldout], lines[heldout:]
        self.shape = (seq_len, len(self.vocab))
        self._on_device: dict[torch.device, torch.Tensor] = {}

    @staticmethod
    def read(paths: list[Path], source: TextSource, seq_len: int, vocab_size: int, max_lines: int) -> dict:
        lines = []
        for line in sentences(paths, strip=source is TextSource.files):
            lines.append(line)
            if len(lines) == max_lines:
                break
        if len(lines) < 2:
            raise DatasetNotFound(f"dataset: {len(lines)} lines of text in {', '.join(map(str, paths))}: "
                                  "need at least 2 (one to train on, one held out)")
        order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(SPLIT_SEED))
        encoded, vocab = encode([lines[i] for i in order], seq_len, vocab_size)
        return {"lines": encoded, "vocab": vocab}

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        device = torch.device(device)
        if device not in self._on_device:
            self._on_device[device] = self.lines.to(device)
        lines = self._on_device[device]
        index = torch.randint(len(lines), (n,), generator=generator)
        return torch.nn.functional.one_hot(lines[index.to(device)].long(), len(self.vocab)).float()

    def decode(self, indices: torch.Tensor) -> list[str]:
        """Index sequences (N, seq_len) as text."""
        return ["".join(self.vocab[i] for i in row) for row in indices.tolist()]

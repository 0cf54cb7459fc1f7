"""An LMDB database of encoded images (LSUN's format: one JPEG or PNG per key) as a torch dataset.

The keys are listed once and kept in the cache directory (`wgan.cache`, keyed by the database's
data.mdb), as data: listing LSUN bedrooms' 3 million keys takes a long pass over the database.
torchvision's LSUN reader would pickle them into the current directory instead, and load any such
file it finds there again. The database is opened read-only, without a lock file: nothing is
written beside it. Needs the `lmdb` package, an optional dependency (`pip install lmdb`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

from wgan.cache import cached, file_stats


def open_readonly(path: Path):
    import lmdb  # imported on use: an optional dependency, checked (with how to install it) by the LSUN option

    return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)


def list_keys(path: Path) -> dict[str, torch.Tensor]:
    """Every key of the database at `path`, in its order, as the bytes of all keys one after the
    other (`keys`) and where each ends (`ends`): two tensors, where a list of 3 million byte
    strings would take seconds to save, check and load."""
    with open_readonly(path) as env, env.begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))
    ends = torch.tensor([len(key) for key in keys], dtype=torch.int64).cumsum(0)
    return {"keys": torch.from_numpy(np.frombuffer(b"".join(keys), dtype=np.uint8).copy()), "ends": ends}


class LMDBImages(torch.utils.data.Dataset):
    """The images of the LMDB database at `path`, in key order, each decoded with Pillow and passed
    through `transform`, as (image, 0) pairs. Each process (a DataLoader worker) opens the database
    itself: an LMDB environment must not be used across a fork."""

    def __init__(self, path: Path, transform: Callable[[Image.Image], torch.Tensor], cache_dir: Optional[Path]) -> None:
        self.path, self.transform = Path(path), transform
        keys = cached(cache_dir, "lmdb-keys", {"lmdb": str(self.path.resolve())}, file_stats(self.path, ["data.mdb"]),
                      lambda: list_keys(self.path))
        self.keys, self.ends = keys["keys"].numpy(), keys["ends"].numpy()
        self._env, self._pid = None, None

    def __len__(self) -> int:
        return len(self.ends)

    def key(self, index: int) -> bytes:
        return self.keys[self.ends[index - 1] if index else 0:self.ends[index]].tobytes()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._pid != os.getpid():
            self._env, self._pid = open_readonly(self.path), os.getpid()
        with self._env.begin() as txn:
            data = txn.get(self.key(index))
        with Image.open(io.BytesIO(data)) as image:
            return self.transform(image), 0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None, "_pid": None}  # a worker started by spawn opens its own

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
from typing import Any, Callable, Optional

import numpy as np
import torch
from PIL import Image

from wgan.cache import cached, file_stats


# The environment of each database opened in each process: LMDB refuses to open one file twice in a
# process (two datasets of one database would), and a forked process (a DataLoader worker) must not
# use its parent's.
environments: dict[tuple[int, Path], Any] = {}


def environment(path: Path):
    """The database at `path`, opened read-only without a lock file (nothing is written beside it)."""
    key = (os.getpid(), path.resolve())
    if key not in environments:
        import lmdb  # imported on use: an optional dependency, checked (with how to install it) by the LSUN option

        environments[key] = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
    return environments[key]


def list_keys(path: Path) -> dict[str, torch.Tensor]:
    """Every key of the database at `path`, in its order, as the bytes of all keys one after the
    other (`keys`) and where each ends (`ends`): two tensors, which the cache saves and checksums
    in one piece (a list of 3 million byte strings it would check one by one)."""
    with environment(path).begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))
    ends = torch.tensor([len(key) for key in keys], dtype=torch.int64).cumsum(0)
    return {"keys": torch.from_numpy(np.frombuffer(b"".join(keys), dtype=np.uint8).copy()), "ends": ends}


class LMDBImages(torch.utils.data.Dataset):
    """The images of the LMDB database at `path`, in key order, each decoded with Pillow and passed
    through `transform`, as (image, 0) pairs."""

    def __init__(self, path: Path, transform: Callable[[Image.Image], torch.Tensor], cache_dir: Optional[Path]) -> None:
        self.path, self.transform = Path(path), transform
        keys = cached(cache_dir, "lmdb-keys", {"lmdb": str(self.path.resolve())}, file_stats(self.path, ["data.mdb"]),
                      lambda: list_keys(self.path))
        self.keys, self.ends = keys["keys"].numpy(), keys["ends"].numpy()

    def __len__(self) -> int:
        return len(self.ends)

    def key(self, index: int) -> bytes:
        return self.keys[self.ends[index - 1] if index else 0:self.ends[index]].tobytes()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with environment(self.path).begin() as txn:
            data = txn.get(self.key(index))
        with Image.open(io.BytesIO(data)) as image:
            return self.transform(image), 0

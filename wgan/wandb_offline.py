"""The offline W&B folders of a run, one per start (`wandb/offline-run-<time>-<run id>/`): what a
killed start left in them, and mending them so that `wandb sync` makes one run with one history.

What wandb 0.31 does with them (read in its Go core, checked against a stand-in server, README
"W&B across preemptions"): `wandb sync` uploads the folders of one run id one after the other in
the order they started; a later folder (its run record says `resume`) continues the run after the
last step already uploaded, and a step it logged at or below that step is moved up to the next
one (so are the steps after it until they are above again): steps logged again after a resume from
an older checkpoint would be uploaded twice and shift later steps. The
`.wandb` file is written in 32 KiB blocks and flushed every `x_transaction_log_flush_interval`
seconds (15): a SIGKILL loses the rows logged since, and can leave the file ending inside a record,
which `wandb sync` refuses ("the file ends with an incomplete record"), skipping the run's later
folders; a folder with no run record at all stops the whole `wandb sync` command.

The file is a LevelDB-style log: a 7-byte `:W&B` header, then 32 KiB blocks of records, each
with a 7-byte header (CRC, length, type), holding `wandb.proto` Record messages.
"""
from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path
from typing import Iterator

from wandb.proto import wandb_internal_pb2

log = logging.getLogger(__name__)

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def whole_records(data: bytes) -> Iterator[tuple[bytes, int]]:
    """Each whole record's bytes and the offset where it ends; a torn last record is left out."""
    position, pieces = HEADER, b""
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # the writer pads the end of a block with zeros
            position += left_in_block
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        if position + HEADER + length > len(data):
            return
        pieces += data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind in (FULL, LAST):
            yield pieces, position
            pieces = b""


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    for raw, _ in whole_records(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def folders(wandb_dir: Path, run_id: str) -> list[Path]:
    """The run's offline folders, oldest first (their names start with the start time)."""
    return sorted(wandb_dir.glob(f"offline-run-*-{run_id}"))


def mend(wandb_dir: Path, run_id: str) -> int | None:
    """Make the run's offline folders syncable and return the last step their history holds
    (None when they hold none): a file ending inside a record is cut after its last whole one; a
    folder with no run record (killed before wandb wrote anything) holds nothing to upload and is
    removed."""
    steps = []
    for folder in folders(wandb_dir, run_id):
        for path in folder.glob("*.wandb"):
            cut_after_last_whole_record(path)
            logged = list(records(path))
            if not any(record.HasField("run") for record in logged):
                log.warning("removing %s: a kill ended it before wandb wrote the run", folder)
                shutil.rmtree(folder)
                break
            steps += [record.history.step.num for record in logged if record.HasField("history")]
    return max(steps, default=None)


def cut_after_last_whole_record(path: Path) -> None:
    data = path.read_bytes()
    end = max((end for _, end in whole_records(data)), default=HEADER)
    if end < len(data):
        log.warning("cutting %s after its last whole record (a kill ended it inside one)", path)
        with path.open("r+b") as f:
            f.truncate(end)

"""Read back what W&B wrote offline: the run's `.wandb` transaction log, record by record.

The file is a LevelDB-style log (a 7-byte `:W&B` header, then 32 KiB blocks of records, each with
a 7-byte header: CRC, length, type) holding `wandb.proto` Record messages. wandb itself reads it
only in its Go core, so the tests parse it here.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    position, pieces = HEADER, b""
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # the writer pads the end of a block with zeros
            position += left_in_block
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        pieces += data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record
            pieces = b""


def read_run(path: Path) -> dict:
    """The run's metadata, the history rows, and the final summary of a `.wandb` file."""
    run, history, summary = {}, [], {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run = {"id": r.run_id, "group": r.run_group, "job_type": r.job_type, "name": r.display_name,
                   "tags": list(r.tags), "project": r.project,
                   "config": {item.key: json.loads(item.value_json) for item in r.config.update}}
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update})
    return {"run": run, "history": history, "summary": summary}

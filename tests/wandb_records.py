"""Read back what W&B wrote offline: the run's `.wandb` transaction log (read by
wgan.wandb_offline), as run metadata, history rows and summary."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import wait_for
from wgan.wandb_offline import records


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


def finished_run(path: Path, timeout: float = 60) -> dict:
    """`read_run` of a run that finished in this process, once its log holds the exit record: W&B's
    service writes the log itself and, on a busy machine, can still be writing it when
    `run.finish()` has returned (a whole-suite run read it without its run record)."""
    def ended() -> bool:
        try:
            return any(record.HasField("exit") for record in records(path))
        except ValueError:  # not even the header yet
            return False

    wait_for(ended, f"W&B to write the end of {path}", timeout, poll=0.1)
    return read_run(path)

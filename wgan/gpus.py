"""Which GPU a job of a local parallel launcher trains on. Each worker process of a launcher that
runs jobs side by side on one machine (joblib's) holds one of `jobs_per_gpu` x GPUs slots for as
long as it lives, slot k on GPU k mod GPUs: the workers spread round robin over the visible GPUs,
at most `jobs_per_gpu` on each (without it every job would train on cuda:0). A slot is an flock on
a file of this user's slot folder, so two studies on one machine share the slots, and a dead
worker's slot frees itself."""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch

from wgan.files import try_flock

log = logging.getLogger(__name__)

SLOTS_DIR = Path(tempfile.gettempdir()) / f"wgan-gpu-slots-{os.getuid()}"
_claimed: dict[str, int] = {}  # this process's slot: its GPU and the open file that holds it


def claim_gpu(gpus: int, jobs_per_gpu: int, slots_dir: Path = SLOTS_DIR) -> Optional[int]:
    """The GPU of this process's slot: the first free one of `gpus * jobs_per_gpu`, held until the
    process ends (the same GPU for every job the worker runs); None when every slot is held."""
    if "gpu" in _claimed:
        return _claimed["gpu"]
    slots_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(gpus * jobs_per_gpu):
        fd = os.open(slots_dir / f"slot-{slot}", os.O_RDWR | os.O_CREAT, 0o666)
        if try_flock(fd, fcntl.LOCK_EX):
            _claimed.update(gpu=slot % gpus, fd=fd)
            return slot % gpus
        os.close(fd)
    return None


def pin_gpu(jobs_per_gpu: int, job_num: int) -> None:
    """Make this worker's GPU the current CUDA device (where `device=cuda` puts tensors). With
    every slot held (more workers than slots), share the GPU of the job's number, round robin."""
    if not torch.cuda.is_available():
        return
    gpus = torch.cuda.device_count()
    gpu = claim_gpu(gpus, jobs_per_gpu)
    if gpu is None:
        gpu = job_num % gpus
        log.warning("all %d GPU slots (jobs_per_gpu=%d) are held: this job shares cuda:%d", gpus * jobs_per_gpu,
                    jobs_per_gpu, gpu)
    torch.cuda.set_device(gpu)
    log.info("training on cuda:%d of %d GPUs", gpu, gpus)

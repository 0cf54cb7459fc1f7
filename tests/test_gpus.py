"""GPU placement under a local parallel launcher (wgan.gpus), on the CPU: real worker processes
claiming slots, as joblib's workers do, with the GPU count given."""
from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

# Claims twice, as a worker does for each job it runs: the second call must give the same GPU.
CLAIM = "import sys; from pathlib import Path; from wgan.gpus import claim_gpu; " \
        "claim = lambda: claim_gpu(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])); " \
        "print(claim(), claim(), flush=True); sys.stdin.read()"


def worker(slots: Path, gpus: int, jobs_per_gpu: int) -> tuple[subprocess.Popen, str]:
    """A process that claims a slot and holds it until its stdin closes; with the GPU it got."""
    process = subprocess.Popen([sys.executable, "-c", CLAIM, str(gpus), str(jobs_per_gpu), str(slots)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    first, again = process.stdout.readline().split()
    assert again == first  # one slot per worker, kept for all its jobs
    return process, first


@pytest.mark.slow
def test_workers_spread_round_robin_over_the_gpus_at_most_n_per_gpu_each_keeping_its_own(tmp_path):
    workers = [worker(tmp_path, gpus=3, jobs_per_gpu=2) for _ in range(7)]
    assert [gpu for _, gpu in workers] == ["0", "1", "2", "0", "1", "2", "None"]  # 6 slots, the 7th finds none
    second, _ = workers[1]
    second.kill()  # a dead worker's slot frees itself
    second.wait()
    replacement = worker(tmp_path, gpus=3, jobs_per_gpu=2)
    assert replacement[1] == "1"
    for process, _ in [*workers, replacement]:
        process.kill()
        process.wait()


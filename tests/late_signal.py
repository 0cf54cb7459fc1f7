"""A Hydra callback for tests (`+hydra.callbacks.late_signal._target_=late_signal.RequeueSignalAtExit`,
with tests/ on PYTHONPATH): the job's process sends itself submitit's requeue signal while it exits,
as SLURM's time-limit warning does when it lands just after the job has finished."""
import atexit
import os
import signal
import time

from hydra.experimental.callback import Callback


def requeue_signal() -> None:
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(0.2)  # its handler, if any, runs now


class RequeueSignalAtExit(Callback):
    def on_job_start(self, config, **kwargs) -> None:
        atexit.register(requeue_signal)

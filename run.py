"""Train one GAN as the Hydra config says: `python run.py [group=option ...] [key=value ...]`.

`python run.py --help` lists the config groups and their options; `-m` sweeps (multirun).
"""
import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from wgan.config import register_configs
from wgan.device import Device
from wgan.gpus import pin_gpu
from wgan.signals import resume_command
from wgan.study import cpu_share, limit_threads, reported, stop_when_orphaned
from wgan.train import run

register_configs()
# run.log may sit on a full disk: logging then drops the lines it cannot write, instead of printing
# a traceback for each (the run itself stops with one message: wgan.files.DiskFull).
logging.raiseExceptions = False


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra = HydraConfig.get()
    limit_threads(cfg.threads or cpu_share(hydra.launcher))
    if hydra.mode == RunMode.MULTIRUN:
        os.environ.setdefault("WANDB_QUIET", "true")  # a study's jobs: no W&B summary block per job
        if "joblib" in hydra.launcher.get("_target_", ""):
            stop_when_orphaned()  # this job runs in a worker process, which must not outlive the launcher
            if Device(cfg.device) is not Device.cpu:
                pin_gpu(cfg.jobs_per_gpu, hydra.job.num)  # or every worker would train on cuda:0
    with reported(reraise=hydra.mode == RunMode.MULTIRUN):
        run(cfg, Path(hydra.runtime.output_dir), resume_command(hydra, __file__))


if __name__ == "__main__":
    main()

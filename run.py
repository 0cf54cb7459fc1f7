"""Train one GAN as the Hydra config says: `python run.py [group=option ...] [key=value ...]`.

`python run.py --help` lists the config groups and their options; `-m` sweeps (multirun).
"""
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from wgan.config import register_configs
from wgan.schema import ConfigError
from wgan.study import cpu_share, limit_threads
from wgan.train import run

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra = HydraConfig.get()
    limit_threads(cfg.threads or cpu_share(hydra.launcher))
    try:
        run(cfg, Path(hydra.runtime.output_dir))
    except ConfigError as error:
        logging.getLogger("wgan").error("invalid config: %s", error)
        if hydra.mode == RunMode.MULTIRUN:
            raise  # the launcher records this job as failed and goes on with the others
        sys.exit(2)


if __name__ == "__main__":
    main()

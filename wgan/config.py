"""The top-level structured config, the ConfigStore schemas every YAML option extends, and the
checks that run before anything is built.

Each YAML option under `conf/<group>/` starts with `defaults: [/schema/<group>/<name>@_here_, _self_]`,
so its values are typed and range-checked by the dataclass of the module that builds that group.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf

from wgan import arch, dataset, logger, metrics, speed
from wgan.device import Device, resolve_device
from wgan.lipschitz import GradientPenaltyConfig, NoConstraintConfig, SpectralNormConfig, WeightClippingConfig
from wgan.loss import LossConfig
from wgan.optimizer import AdamPairConfig, RMSpropPairConfig
from wgan.schema import ConfigError, bounded, check_bounds
from wgan.speed import SpeedConfig
from wgan.study import check_study_name, job_dir_name


class LRDecay(Enum):
    constant = "constant"
    linear = "linear"  # to zero at the last iteration, as the paper's CIFAR-10 ResNet (Appendix F)


@dataclass
class TrainConfig:
    iterations: int = bounded(10_000, ge=1)  # generator iterations
    n_critic: int = bounded(5, ge=1)  # critic updates per generator update
    batch_size: int = bounded(64, ge=1)  # real and generated samples per critic step
    # Generated samples per generator step; null: batch_size. The official CIFAR-10 ResNet uses
    # twice the critic's (gan_cifar_resnet.py, GEN_BS_MULTIPLE = 2).
    generator_batch_size: Optional[int] = bounded(None, ge=1)
    log_every: int = bounded(100, ge=1)  # iterations between logged training statistics
    lr_decay: LRDecay = LRDecay.constant  # learning-rate schedule of both optimizers


@dataclass
class EvalConfig:
    every: int = bounded(1000, ge=1)  # iterations between evaluations (and one at the end)


@dataclass
class CheckpointConfig:
    every: int = bounded(1000, ge=1)  # iterations between checkpoints (and one at the end)


@dataclass
class Config:
    dataset: Any = MISSING
    arch: Any = MISSING
    lipschitz: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    metrics: Any = MISSING
    logger: Any = MISSING
    seed: int = bounded(0, ge=0, lt=2**64)  # torch.manual_seed takes 64 bits
    device: Device = Device.auto
    threads: Optional[int] = bounded(None, ge=1)  # torch CPU threads; None: all, or a parallel job's share
    jobs_per_gpu: int = bounded(1, ge=1)  # jobs a local parallel launcher runs on each GPU (wgan.gpus)
    study: str = "default"  # groups runs, e.g. the W&B group
    # The run's method in results.json, W&B and reports; null: the loss and the Lipschitz method
    # (wgan_gp, wgan_clip, gan, lsgan). Presets that vary a method's optimizer set their own.
    method_label: Optional[str] = None
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ckpt: CheckpointConfig = field(default_factory=CheckpointConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)


SCHEMAS = {
    "dataset": dataset.SCHEMAS,
    "arch": arch.SCHEMAS,
    "lipschitz": {
        "gp": GradientPenaltyConfig,
        "clip": WeightClippingConfig,
        "sn": SpectralNormConfig,
        "none": NoConstraintConfig,
    },
    "loss": {"loss": LossConfig},
    "optimizer": {"adam": AdamPairConfig, "rmsprop": RMSpropPairConfig},
    "metrics": {"metrics": metrics.MetricsConfig},
    "logger": {"wandb": logger.WandbLoggerConfig, "none": logger.NullLoggerConfig},
}


def register_configs() -> None:
    OmegaConf.register_new_resolver("wgan.job_dir", job_dir_name, replace=True)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config `python run.py <overrides>` would get, for tools that run outside Hydra's main
    (the metrics command, tests). Reads `conf/` of the source checkout this package is installed from."""
    if not CONF_DIR.is_dir():
        raise ConfigError(f"no config folder at {CONF_DIR}: install wgan from its source checkout (pip install -e .)")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def build(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, except that a component's ConfigError (a missing dataset, an
    architecture that cannot take the data) reaches the user as it is, not wrapped in Hydra's
    InstantiationException."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def method_name(cfg: DictConfig) -> str:
    """The training method as the paper names it: `method_label` if set, else the loss, plus the
    Lipschitz method if any (`wgan_gp`, `wgan_clip`, `gan`, `lsgan`, `hinge_sn`, ...)."""
    if cfg.method_label:
        return cfg.method_label
    if cfg.lipschitz.name == "none":
        return cfg.loss.name
    return f"{cfg.loss.name}_{cfg.lipschitz.name}"


def validate(cfg: DictConfig) -> None:
    """Every check that needs no data or model: ranges, the device, metric names, W&B access."""
    check_bounds(cfg)
    check_study_name(cfg.study)
    resolve_device(cfg.device)
    speed.check(cfg)
    logger.check_config(cfg.logger)
    for name in cfg.metrics.names:
        if name not in metrics.REGISTRY:
            raise ConfigError(f"metrics.names: unknown metric '{name}'; known: {', '.join(sorted(metrics.REGISTRY))}")
        if metrics.REGISTRY[name].check is not None:
            metrics.REGISTRY[name].check(cfg)

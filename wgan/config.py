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
from hydra.utils import get_class, instantiate
from omegaconf import MISSING, DictConfig, OmegaConf

from wgan import arch, cache, dataset, logger, metrics, speed
from wgan.dataset.kind import Dataset
from wgan.device import Device, resolve_device
from wgan.lipschitz import GradientPenaltyConfig, NoConstraintConfig, SpectralNormConfig, WeightClippingConfig
from wgan.loss import LossConfig
from wgan.optimizer import AdamPairConfig, RMSpropPairConfig
from wgan.schema import ConfigError, bounded, check_schema
from wgan.speed import SpeedConfig
from wgan.study import check_study_name, job_dir_name


class LRDecay(Enum):
    constant = "constant"
    linear = "linear"  # to zero at the last iteration, as the paper's CIFAR-10 ResNet (Appendix F)


@dataclass
class TrainConfig:
    iterations: int = bounded(MISSING, ge=1)  # generator iterations (conf/config.yaml: the default run's)
    n_critic: int = bounded(5, ge=1)  # critic updates per generator update
    batch_size: int = bounded(MISSING, ge=1)  # real and generated samples per critic step
    # Generated samples per generator step; null: batch_size. The official CIFAR-10 ResNet uses
    # twice the critic's (gan_cifar_resnet.py, GEN_BS_MULTIPLE = 2).
    generator_batch_size: Optional[int] = bounded(None, ge=1)
    log_every: int = bounded(100, ge=1)  # iterations between logged training statistics
    lr_decay: LRDecay = LRDecay.constant  # learning-rate schedule of both optimizers
    # At every evaluation, Figure 1b's look inside the critic: the norm of the critic loss's gradient
    # at each weight layer's input (metrics.jsonl, W&B) and a histogram of its weights (W&B).
    critic_diagnostics: bool = False


@dataclass
class EvalConfig:
    every: int = bounded(MISSING, ge=1)  # iterations between evaluations (and one at the end)
    # Iterations between the critic's loss on training and on held-out images (wgan.overfitting;
    # needs dataset.subset); null: never.
    validation_every: Optional[int] = bounded(None, ge=1)
    validation_samples: int = bounded(1000, ge=1)  # real images of each set (and generated ones) it scores


@dataclass
class CheckpointConfig:
    every: int = bounded(MISSING, ge=1)  # iterations between checkpoints (and one at the end)


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


def studies_dir() -> Path:
    """sweeps/: beside conf/ in a source checkout, inside it in an installed wheel."""
    conf = config_dir()
    return conf / "sweeps" if (conf / "sweeps").is_dir() else conf.parent / "sweeps"


# Launchers of the installed Hydra plugins (hydra-core, hydra-joblib-launcher, hydra-submitit-launcher).
PLUGIN_LAUNCHERS = {
    "basic": "one job after another in this process (the default)",
    "joblib": "N local processes (hydra.launcher.n_jobs; threads split between them)",
    "submitit_local": "local processes through submitit, as SLURM would run them",
    "submitit_slurm": "SLURM, Hydra's stock settings",
}


def leading_comment(path: Path, width: int = 96) -> str:
    """What a config file is: the first sentence of its leading comment, cut to `width` characters."""
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            words += line.lstrip("#").split()
    text = " ".join(words)
    text = text[:text.find(". ") + 1] if ". " in text else text
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def help_section(section: str, *, _root_: DictConfig) -> str:
    """A section of `python run.py --help` (conf/hydra/help/wgan.yaml), listed from the config
    folders themselves so that the page cannot fall behind them."""
    conf = config_dir()
    if section == "groups":
        choices = _root_.hydra.runtime.choices
        lines = []
        for group in sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "sweeps")):
            chosen = choices.get(group)
            options = [f"[{o}]" if o == chosen else o for o in sorted(p.stem for p in (conf / group).glob("*.yaml"))]
            lines.append(f"  {group}: {', '.join(options)}")
        return "\n".join(lines)
    if section == "studies":
        studies = [p for p in sorted(studies_dir().glob("*.yaml")) if p.read_text().startswith("# @package _global_")]
        return "\n".join(f"  {p.stem}: {leading_comment(p)}" for p in studies)
    if section == "launchers":
        ours = {p.stem: leading_comment(p) for p in sorted((conf / "hydra" / "launcher").glob("*.yaml"))}
        return "\n".join(f"  {name}: {text}" for name, text in {**PLUGIN_LAUNCHERS, **ours}.items())
    raise ValueError(f"no help section {section!r}")


def register_configs() -> None:
    OmegaConf.register_new_resolver("wgan.job_dir", job_dir_name, replace=True)
    OmegaConf.register_new_resolver("wgan.help", help_section, replace=True)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def config_dir() -> Path:
    """The project's `conf/`: the copy an installed wheel holds (wgan/conf, with sweeps/ inside it:
    pyproject.toml), else the source checkout's, which an editable install and run.py read."""
    package = Path(__file__).resolve().parent
    return package / "conf" if (package / "conf" / "config.yaml").is_file() else package.parent / "conf"


def compose_config(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config `python run.py <overrides>` would get, for tools that run outside Hydra's main
    (the metrics command, the report, tests), from any working directory."""
    conf = config_dir()
    if not (conf / "config.yaml").is_file():
        raise ConfigError(f"no config folder at {conf}: reinstall wgan (pip install . or pip install -e .)")
    register_configs()
    GlobalHydra.instance().clear()
    # A source checkout's studies are in sweeps/ beside conf/; conf/config.yaml's searchpath finds them
    # from the repository root only, this from anywhere.
    sweeps = [f"hydra.searchpath=[file://{conf.parent}]"] if (conf.parent / "sweeps").is_dir() else []
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name="config", overrides=[*sweeps, *overrides], return_hydra_config=return_hydra_config)


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


def num_classes(cfg: DictConfig) -> int:
    """The classes of a conditional model (`arch.num_classes`); 0: an unconditional one."""
    return cfg.arch.get("num_classes", 0)


def check_labels(cfg: DictConfig) -> None:
    """A conditional model needs a dataset option that has class labels."""
    classes = num_classes(cfg)
    if classes and not getattr(get_class(cfg.dataset._target_), "has_labels", False):
        raise ConfigError(
            f"arch.num_classes={classes} makes a conditional model, which needs class labels, but dataset="
            f"{cfg.dataset.name} has none: use a labelled dataset (cifar10, mnist, fashion_mnist, or imagefolder "
            "with one subfolder per class) or arch.num_classes=0"
        )


def build_dataset(cfg: DictConfig) -> Dataset:
    """The run's dataset; an option that reads files keeps what it caches in `metrics.cache_dir`. A
    conditional model's reads its labels too, as many classes as the model has."""
    where = {"cache_dir": str(cache.directory(cfg.metrics.cache_dir))} if "root" in cfg.dataset else {}
    classes = num_classes(cfg)
    if not classes:
        return build(cfg.dataset, **where)
    check_labels(cfg)
    dataset = build(cfg.dataset, **where, labeled=True)
    if dataset.num_classes != classes:
        raise ConfigError(f"arch.num_classes={classes}, but dataset={cfg.dataset.name} has {dataset.num_classes} "
                          f"classes: set arch.num_classes={dataset.num_classes}")
    return dataset


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
    check_schema(cfg)
    check_study_name(cfg.study)
    check_labels(cfg)
    resolve_device(cfg.device)
    speed.check(cfg)
    logger.check_config(cfg.logger)
    for name in cfg.metrics.names:
        if name not in metrics.REGISTRY:
            raise ConfigError(f"metrics.names: unknown metric '{name}'; known: {', '.join(sorted(metrics.REGISTRY))}")
        if metrics.REGISTRY[name].check is not None:
            metrics.REGISTRY[name].check(cfg)
    known = metrics.declared_values(list(cfg.metrics.names))
    for name in cfg.metrics.best:
        if name not in known:
            raise ConfigError(f"metrics.best: '{name}' is no value of metrics.names {list(cfg.metrics.names)}; "
                              f"they give: {', '.join(sorted(known)) or 'nothing'}")

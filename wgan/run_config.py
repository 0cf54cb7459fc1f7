"""A run directory's config, rebuilt from the project's own config groups: what a tool that reads
someone's run directory (`python -m wgan.metrics`) builds objects from.

A run directory may come from anyone, so nothing in it is instantiated or resolved: its
`config.yaml` could name any `_target_` (`os.system`, `torch.load` of a payload) and interpolate
any environment variable (`${oc.env:SECRET}`). Instead, the overrides Hydra recorded for the run
(`.hydra/overrides.yaml`) are composed with `conf/` as `python run.py` composed them; overrides
that name an instantiation key (`_target_`, `_args_`, ...), carry an interpolation or set Hydra
itself are refused, as is any `_target_` the project's config groups do not name. The result must
equal the run's `config.yaml` on every setting of the run's identity (`wgan.identity.is_identity`),
read as plain data, so the generator built is the one that trained. Settings the project computes
from the environment (`${oc.env:WGAN_DATA,data}/cifar10`) are this machine's: they are not compared.
"""
from __future__ import annotations

import functools
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from wgan.config import SCHEMAS, compose_config, config_dir
from wgan.files import RunFiles
from wgan.identity import differences, flatten
from wgan.schema import ConfigError

OVERRIDES = ".hydra/overrides.yaml"  # where Hydra records a run's command-line overrides


def is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def has_instantiation_key(value: Any) -> bool:
    """Whether a (nested) override value holds a key such as `_target_`."""
    if isinstance(value, dict):
        return any(str(k).startswith("_") or has_instantiation_key(v) for k, v in value.items())
    return isinstance(value, list) and any(has_instantiation_key(v) for v in value)


def recorded_overrides(files: RunFiles) -> list[str]:
    """The run's overrides as Hydra recorded them, less those of Hydra itself (where the run
    wrote, its launcher); ConfigError, naming the override's key, for one that could instantiate
    or resolve anything."""
    path = files.dir / OVERRIDES
    if not path.is_file():
        raise ConfigError(f"{files.dir} has no {OVERRIDES} (Hydra records it for every `python run.py`): the "
                          "metrics command rebuilds a run's generator from the project's config groups and the "
                          "run's recorded overrides, never from its config.yaml")
    try:
        lines = yaml.safe_load(path.read_text())
        if not (isinstance(lines, list) and all(isinstance(line, str) for line in lines)):
            raise ConfigError(f"{path}: not a list of overrides")
        overrides = OverridesParser.create().parse_overrides(lines)
    except (yaml.YAMLError, HydraException) as error:
        raise ConfigError(f"{path}: not a list of overrides ({type(error).__name__})") from None
    kept = []
    for override in overrides:
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if any(part.startswith("_") for part in key.replace("/", ".").split(".")) or has_instantiation_key(
                override.value()):
            raise ConfigError(f"{path}: the override of {key} sets an instantiation key such as _target_; "
                              "a run directory never chooses what is built: not scoring it")
        if "${" in override.input_line:
            raise ConfigError(f"{path}: the override of {key} holds an interpolation; values from a run "
                              "directory are never resolved: not scoring it")
        kept.append(override.input_line)
    return kept


@functools.cache
def project_targets() -> frozenset[str]:
    """Every `_target_` the project's config groups name: their schemas' and their YAML options'."""
    trees = [OmegaConf.to_container(OmegaConf.structured(schema)) for schemas in SCHEMAS.values()
             for schema in schemas.values()]
    trees += [yaml.safe_load(option.read_text()) or {} for option in config_dir().rglob("*.yaml")]
    return frozenset(value for tree in trees for key, value in flatten(tree).items()
                     if key.split(".")[-1] == "_target_" and value != MISSING)


def check_targets(cfg: DictConfig) -> None:
    """ConfigError naming the key of a `_target_` that none of the project's config groups names."""
    for key, value in flatten(OmegaConf.to_container(cfg, resolve=False)).items():
        if key.split(".")[-1] == "_target_" and value not in project_targets():
            raise ConfigError(f"{key}: a target outside the project's config groups; not instantiated")


def check_against_recorded(cfg: DictConfig, files: RunFiles) -> None:
    """ConfigError naming the keys where `cfg` differs from the run's config.yaml (read as data,
    never resolved: an interpolation there is refused, its value never looked up or printed)."""
    try:
        recorded = flatten(OmegaConf.to_container(OmegaConf.load(files.config), resolve=False))
    except (OSError, yaml.YAMLError, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"{files.config}: unreadable ({type(error).__name__})") from None
    for key, value in recorded.items():
        if is_interpolation(value):
            raise ConfigError(f"{files.config}: {key} holds an interpolation, which a run's config (written "
                              "resolved) never does; values from a run directory are never resolved: not scoring it")
    rebuilt = flatten(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    mismatch = differences(recorded, rebuilt, cfg, f"{files.config} differs from its recorded overrides composed "
                           "with this checkout's conf/", "rebuilt", ignored=lambda key: is_interpolation(rebuilt.get(key)))
    if mismatch is not None:
        raise ConfigError(f"{mismatch}: the generator built would not be the one that trained")


def rebuild(files: RunFiles, extra: list[str] = ()) -> tuple[DictConfig, list[str]]:
    """(the run's config rebuilt and checked, its recorded overrides); `extra` overrides (the
    scorer's own: its device, no logger) come after the run's."""
    overrides = recorded_overrides(files)
    cfg = compose(overrides + list(extra))
    check_against_recorded(cfg, files)
    return cfg, overrides


def compose(overrides: list[str]) -> DictConfig:
    """`compose_config` with every `_target_` checked, errors of composition as ConfigErrors."""
    try:
        cfg = compose_config(overrides)
    except HydraException as error:
        raise ConfigError(str(error).split("\n")[0]) from None
    check_targets(cfg)
    return cfg


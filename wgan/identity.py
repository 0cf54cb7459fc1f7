"""A run's identity: the settings that make two configs the same run, and the check that refuses
to resume, extend or skip a run under a config of another one.

A run directory holds one config's run: resuming or skipping it under another config would mix
results (a study command changed between two launches, a colleague's directory). Its config.yaml
and its checkpoint both record the config that wrote them; what may differ is where and how it
runs (NOT_IDENTITY) and its length (RESIZABLE). A setting added to the project since the run was
written is the same run at its default (`wgan.schema.added_at_default`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from wgan.files import RunFiles, first_sentence
from wgan.schema import ConfigError, added_at_default

log = logging.getLogger(__name__)

# Settings of where and how a run goes, not of what it computes, each with the keys below it: not
# part of a study job's directory name, and free to change between the starts of one run.
# arch.count sizes a study's sweep over architectures, so that a study can grow by more of them.
NOT_IDENTITY = ("study", "sweeps", "device", "threads", "jobs_per_gpu", "logger", "metrics.cache_dir", "arch.count", "speed")
# The one setting of a run's identity that may change when it resumes: a finished run is extended
# by more iterations, an unfinished one shortened (never below the iteration it has reached).
RESIZABLE = "train.iterations"


def is_identity(key: str) -> bool:
    """Whether the setting `key` (dotted) is part of what a run computes (see NOT_IDENTITY)."""
    return not any(key == other or key.startswith(f"{other}.") for other in NOT_IDENTITY)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    if isinstance(tree, dict) and tree:
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def differences(recorded: dict[str, Any], current: dict[str, Any], cfg: DictConfig, what: str, now: str,
                ignored: Callable[[str], bool] = lambda key: False) -> str | None:
    """`what`, then the settings of the run's identity where the flattened `recorded` (a run's) and
    `current` (`cfg`'s) differ, less the `ignored` ones, with both values; None if none differ."""
    differing = sorted(
        key for key in set(recorded) | set(current)
        if is_identity(key) and not ignored(key) and recorded.get(key) != current.get(key)
        and not (key not in recorded and added_at_default(cfg, key))  # a setting newer than the run
    )
    if not differing:
        return None
    shown = ", ".join(f"{k}: {recorded.get(k)!r} there, {current.get(k)!r} {now}" for k in differing[:5])
    return f"{what} ({shown}{', ...' if len(differing) > 5 else ''})"


def refuse_if_different(saved: DictConfig, cfg: DictConfig, what: str) -> None:
    """Raise a ConfigError starting with `what` and naming the differing keys, if any of a run's
    identity differ (RESIZABLE is checked against the iteration reached when the checkpoint is loaded)."""
    mismatch = differences(flatten(OmegaConf.to_container(saved, resolve=True)),
                           flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)), cfg, what, "now",
                           ignored=lambda key: key == RESIZABLE)
    if mismatch is not None:
        raise ConfigError(f"{mismatch}; not mixing results: use another study=... name or output directory, "
                          "or delete it to start over")


def read_config(path: Path) -> DictConfig:
    """A run's config.yaml; a ConfigError (as a config of another run) for one that is not a
    YAML mapping (cut short mid-line, not UTF-8)."""
    try:
        saved = OmegaConf.load(path)
    except Exception as error:  # YAML, decoding and OmegaConf errors: the file is not a config
        raise ConfigError(f"{path} is not a readable config ({first_sentence(error)})") from error
    if not isinstance(saved, DictConfig):
        raise ConfigError(f"{path} is not a config (a YAML mapping)")
    return saved


def refuse_other_checkpoint(files: RunFiles, state: dict[str, Any], cfg: DictConfig) -> None:
    if "config" in state:
        refuse_if_different(OmegaConf.create(state["config"]), cfg,
                            f"checkpoint {files.checkpoint} was written by another config")


def refuse_other_config(files: RunFiles, cfg: DictConfig) -> None:
    """Refuse a run directory that holds another config's run. The checkpoint holds the config too
    and decides where config.yaml disagrees with it: a config.yaml damaged after it was written
    (cut short by a copy, edited) does not lock out the run its checkpoint can resume."""
    if not files.config.exists():
        return
    try:
        refuse_if_different(read_config(files.config), cfg, f"{files.dir} holds a run of another config")
    except ConfigError as mismatch:
        state = files.load_checkpoint()
        if state is None or "config" not in state:
            raise
        try:
            refuse_other_checkpoint(files, state, cfg)
        except ConfigError:
            raise mismatch from None  # both are another config's: config.yaml's differences say so
        log.warning("%s is damaged or edited: the checkpoint %s, which holds this run's config, decides (%s)",
                    files.config, files.checkpoint, mismatch)

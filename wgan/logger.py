"""The `logger` config group: where scalars, samples (images, or text as a table) and the final summary go
besides local files.

`logger=wandb` (the default) runs offline unless `logger.mode=online` or `WANDB_MODE=online`;
online mode without credentials fails before training with instructions instead of a prompt.
`logger=none` writes only the run directory's own files.
"""
from __future__ import annotations

import argparse
import netrc
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence
from urllib.parse import urlparse

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from wgan.figures import TEXT_SUFFIX
from wgan.files import first_sentence
from wgan.schema import ConfigError

if TYPE_CHECKING:
    import torch

FIGURE_JOB_TYPE = "figure"  # the W&B job type of a figure drawn from runs (wgan.report leaves such runs out)
WANDB_DIR = "wandb"  # the folder wandb.init(dir=d) writes into: d/wandb
FIGURE_WANDB_DIR = "figures_wandb"  # beside a figure, the d of its W&B run: apart from any run's own wandb/
HISTOGRAM_BINS = 64  # wandb's default (it takes up to 512): enough to show a pile at each end of [-c, c]


@dataclass
class NullLoggerConfig:
    _target_: str = "wgan.logger.NullLogger"


class WandbMode(Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class WandbLoggerConfig:
    _target_: str = "wgan.logger.WandbLogger"
    project: str = "wgan"
    entity: Optional[str] = None
    mode: WandbMode = MISSING
    tags: list[str] = field(default_factory=list)


class NullLogger:
    """Logs nothing; the run directory still gets every file."""

    run_id: Optional[str] = None

    def start(self, **run_info: Any) -> None:
        pass

    def log(self, values: dict[str, float], step: int) -> None:
        pass

    def log_evaluation(self, values: dict[str, float], samples: Path, step: int) -> None:
        pass

    def log_histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        pass

    def log_figure(self, name: str, figure: Path, values: dict[str, float]) -> None:
        pass

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        pass


def check_config(cfg: DictConfig) -> None:
    """Online W&B needs credentials: fail before training rather than prompt for a login."""
    if cfg._target_ == WandbLoggerConfig._target_:
        check_credentials(WandbMode(cfg.mode), "logger.mode=online", "logger.mode=offline")


def check_credentials(mode: WandbMode, online: str, offline: str) -> None:
    """`online` and `offline`: the settings, as the user gives them, that chose and that would avoid online mode."""
    if mode == WandbMode.online and not wandb_credentials_available():
        raise ConfigError(
            f"{online} but no W&B credentials were found: run `wandb login` once, "
            f"or set WANDB_API_KEY, or use {offline} and `wandb sync` later"
        )


def wandb_credentials_available() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class WandbLogger(NullLogger):
    """One W&B run per training run; a resumed training run continues the same W&B run, logging
    only the steps its earlier starts have not (`wandb sync` would move a repeated step up past the
    last one uploaded, shifting the rest: see wgan.wandb_offline)."""

    def __init__(self, project: str, entity: Optional[str], mode: WandbMode | str, tags: list[str]) -> None:
        self.project, self.entity, self.mode, self.tags = project, entity, WandbMode(mode).value, list(tags)

    def start(
        self,
        *,
        run_dir: Path,
        name: str,
        group: str,
        job_type: str,
        config: dict[str, Any],
        resume_id: Optional[str] = None,
    ) -> None:
        import wandb  # imported here: it is slow to import and logger=none never needs it

        from wgan import wandb_offline

        self._wandb = wandb
        logged = wandb_offline.mend(run_dir / WANDB_DIR, resume_id) if resume_id else None
        self.first_new_step = 0 if logged is None else logged + 1
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(run_dir),
            name=name,
            group=group,
            job_type=job_type,
            tags=self.tags,
            config=config,
            id=resume_id,
            resume="allow" if resume_id else None,
        )
        self.run_id = self.run.id

    def log(self, values, step):
        if step >= self.first_new_step:
            self.run.log(values, step=step)

    def log_evaluation(self, values, samples, step):
        # The evaluation is the last thing logged at its step: committing writes the row now
        # rather than leaving the final one to the flush at exit.
        if step >= self.first_new_step:
            self.run.log({**values, "samples": self.media(samples)}, step=step, commit=True)

    def media(self, samples: Path) -> Any:
        """A picture as a W&B image; text samples (a text file) as a table of its lines."""
        if samples.suffix == TEXT_SUFFIX:
            lines = samples.read_text(encoding="utf-8").splitlines()
            return self._wandb.Table(columns=["sample"], data=[[line] for line in lines])
        return self._wandb.Image(str(samples))

    def log_histograms(self, values, step):
        # Not committed: the evaluation logged next at this step commits the row.
        if step >= self.first_new_step:
            self.run.log({k: self._wandb.Histogram(v.numpy(), num_bins=HISTOGRAM_BINS) for k, v in values.items()},
                         step=step, commit=False)

    def log_figure(self, name, figure, values):
        self.run.log({**values, name: self._wandb.Image(str(figure))}, commit=True)

    def finish(self, summary, exit_code=0):
        self.run.summary.update(summary)
        self.run.finish(exit_code=exit_code)


@dataclass
class FigureDestination:
    """Where a figure drawn from runs is logged: a W&B logger and group, or why nowhere."""

    logger: NullLogger
    group: str = ""
    not_logged: str = "logger=none"  # why, where `logger` logs nothing


def log_figure_run(to: FigureDestination, *, out_dir: Path, name: str, figure: Path,
                   config: dict[str, Any], summary: dict[str, Any]) -> str:
    """A figure drawn from runs, as a W&B run of its own (job type FIGURE_JOB_TYPE) in their group,
    its summary the figure's numbers, W&B's files in `out_dir/FIGURE_WANDB_DIR` (never among a run's
    own). Returns a line for the user saying where it went. The figure is already written: a W&B
    that fails (a network error online) costs the line, not the command."""
    if not isinstance(to.logger, WandbLogger):
        return f"W&B: not logged ({to.not_logged})"
    try:
        to.logger.start(run_dir=out_dir / FIGURE_WANDB_DIR, name=name, group=to.group, job_type=FIGURE_JOB_TYPE,
                        config=config)
        to.logger.log_figure(figure.stem, figure, {})
        to.logger.finish(summary)
    except Exception as error:  # wandb raises many kinds (CommError, UsageError, OSError, ...)
        return f"W&B: not logged ({type(error).__name__}: {first_sentence(error)})"
    where = f"W&B: run {to.logger.run_id} ({name}) in project {to.logger.project}, group {to.group or '(none)'}"
    if to.logger.mode == WandbMode.offline.value:
        where += f", offline: `wandb sync {out_dir / FIGURE_WANDB_DIR / WANDB_DIR}/offline-run-*-{to.logger.run_id}` uploads it"
    return where


def figure_wandb(project: str, entity: Optional[str], tags: list[str], group: str) -> FigureDestination:
    """W&B in this machine's mode for a figure drawn from runs: WANDB_MODE, else offline, as
    conf/logger/wandb.yaml resolves `logger.mode` for a run. A mode that cannot work (unknown,
    online without credentials, disabled) logs nothing, saying why: the figure is drawn anyway."""
    mode_name = os.environ.get("WANDB_MODE", WandbMode.offline.value)
    try:
        mode = WandbMode(mode_name)
    except ValueError:
        return FigureDestination(NullLogger(), group, f"WANDB_MODE={mode_name} is not one of "
                                                      f"{', '.join(m.value for m in WandbMode)}")
    try:
        check_credentials(mode, "WANDB_MODE=online", "WANDB_MODE=offline")
    except ConfigError as error:
        return FigureDestination(NullLogger(), group, str(error))
    if mode == WandbMode.disabled:
        return FigureDestination(NullLogger(), group, "WANDB_MODE=disabled")
    return FigureDestination(WandbLogger(project, entity, mode, tags), group)


def runs_figure_destination(run_dirs: Sequence[Path], no_log: bool = False) -> FigureDestination:
    """Where a figure drawn from `run_dirs` is logged: W&B in the project, entity, tags and group
    (the study) of the first run with a readable config.yaml (see figure_wandb for the mode), or
    nowhere where it ran with `logger=none` or `no_log` (--no-log) is given. A run directory may be
    anyone's, so its config is read as plain data: its `_target_` is compared, never imported, and
    no interpolation is resolved."""
    if no_log:
        return FigureDestination(NullLogger(), not_logged="--no-log")
    cfg = next((config for run_dir in run_dirs if isinstance(config := plain_config(run_dir / "config.yaml"), dict)), None)
    if cfg is None:
        return FigureDestination(NullLogger(), not_logged="no readable config.yaml in the runs")
    settings = cfg.get("logger") if isinstance(cfg.get("logger"), dict) else {}
    group = str(cfg.get("study") or "")
    if settings.get("_target_") != WandbLoggerConfig._target_:
        return FigureDestination(NullLogger(), group, "the runs ran with logger=none")
    entity, tags = settings.get("entity"), settings.get("tags")
    return figure_wandb(str(settings.get("project") or WandbLoggerConfig.project), None if entity is None else str(entity),
                        [str(tag) for tag in tags] if isinstance(tags, list) else [], group)


def plain_config(path: Path) -> Any:
    """A config.yaml as plain data, interpolations unresolved; None where missing or unreadable."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return None


def add_no_log_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-log", action="store_true", help="do not log the figure to W&B (by default it is "
                        "logged beside the runs, with their logger: wgan.logger.runs_figure_destination)")


def run_name(method: str, cfg: DictConfig) -> str:
    """The W&B run's name: method, architecture (with its seed, one per drawn architecture),
    dataset and seed, e.g. wgan_gp-random7-toy_8gaussians-s0."""
    arch = f"{cfg.arch.name}{cfg.arch.seed}" if "seed" in cfg.arch else cfg.arch.name
    return f"{method}-{arch}-{cfg.dataset.name}-s{cfg.seed}"


def run_info(cfg: DictConfig, run_dir: Path, method: str, arch_choices: dict[str, Any],
             resume_id: Optional[str]) -> dict[str, Any]:
    """What `start` takes for the run `cfg` describes: its name, its study as the W&B group, its
    method as the job type, the resolved config with a drawn architecture's choices; `resume_id`:
    the W&B run it continues."""
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return dict(run_dir=run_dir, name=run_name(method, cfg), group=cfg.study, job_type=method,
                config={**config, "arch_choices": arch_choices}, resume_id=resume_id)

"""What a checkpoint holds and how a run resumes from it: the networks, optimizers, schedules, RNG
state, the iteration and training time, the evaluation's values so far, the W&B run id, and the
config that wrote it (checked on resume). A resumed run ends exactly as an uninterrupted one.

The files themselves (atomic writes, the previous checkpoint kept, best.pt) are `wgan.files.RunFiles`'.
To add a field: write it in `state_of` and read it in `restore`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf

from wgan.identity import refuse_other_checkpoint
from wgan.optimizer import resize_schedule
from wgan.schema import ConfigError

if TYPE_CHECKING:
    from wgan.train import Trainer

log = logging.getLogger(__name__)


def state_of(trainer: Trainer) -> dict[str, Any]:
    """Everything the run needs to go on from `trainer.step` exactly as if never stopped."""
    parts = trainer.parts
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "step": trainer.step,
        "generator": parts.generator.state_dict(),
        "critic": parts.critic.state_dict(),
        "opt_g": parts.opt_g.state_dict(),
        "opt_d": parts.opt_d.state_dict(),
        "schedules": [schedule.state_dict() for schedule in parts.schedules],
        "rng": rng,
        "elapsed": trainer.elapsed,
        "last_eval": trainer.evaluation.last,
        "best": trainer.evaluation.best,
        "wandb_run_id": trainer.wandb_run_id,
        "config": OmegaConf.to_yaml(trainer.cfg, resolve=True),  # what wrote it: checked on resume
    }


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put `trainer` where `state` (of its run directory's checkpoint) was; a ConfigError if the
    checkpoint is another config's, or has gone further than `train.iterations`."""
    files, cfg, parts = trainer.files, trainer.cfg, trainer.parts
    refuse_other_checkpoint(files, state, cfg)
    parts.generator.load_state_dict(state["generator"])
    parts.critic.load_state_dict(state["critic"])
    parts.opt_g.load_state_dict(state["opt_g"])
    parts.opt_d.load_state_dict(state["opt_d"])
    for schedule, saved in zip(parts.schedules, state["schedules"]):
        schedule.load_state_dict(saved)
        resize_schedule(schedule, cfg.train.iterations)  # an extended (or shortened) run's
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    trainer.step, trainer.elapsed = state["step"], state["elapsed"]
    if trainer.step > cfg.train.iterations:
        raise ConfigError(f"train.iterations={cfg.train.iterations} is below iteration {trainer.step}, which the "
                          f"run in {files.dir} has reached: give at least {trainer.step}")
    trainer.checkpointed_step = trainer.step
    trainer.evaluation.last, trainer.evaluation.best = state["last_eval"], state["best"]
    trainer.wandb_run_id = state["wandb_run_id"]
    # best.pt itself says what it holds: it may be newer than the checkpoint (written by
    # iterations this start redoes), and then it is what those iterations wrote.
    kept = files.load_best_generator()
    trainer.evaluation.best_generator = {k: kept[k] for k in ("step", "key", "value")} if kept else None
    log.info("resumed from %s at iteration %d", files.checkpoint, trainer.step)

"""The training loop: Algorithm 1 of the WGAN-GP paper, generalized over loss x Lipschitz method.

`run(cfg, run_dir)` is what `run.py` calls: it validates the config, refuses a run directory that
holds another config's run (`wgan.identity`), skips a finished run, builds the components
(`wgan.components`), resumes from the checkpoint (`wgan.checkpoints`), trains under the stop
signals (`wgan.signals`) and writes results.json. `Trainer.fit` is the algorithm: critic steps and
a generator step (`wgan.update`), with the evaluations (`wgan.evaluation`), checkpoints and
progress (`wgan.progress`) due.
"""
from __future__ import annotations

import copy
import functools
import logging
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from wgan import checkpoints, signals, update
from wgan.components import build_components
from wgan.config import build, validate
from wgan.evaluation import Evaluation
from wgan.files import DiskFull, Results, RunFiles, Status, as_disk_full, is_finished
from wgan.identity import refuse_other_config
from wgan.logger import NullLogger, run_info
from wgan.metrics import unavailable
from wgan.progress import TrainingProgress, progress

log = logging.getLogger(__name__)

# An iteration that took longer than this many seconds makes the next one interruptible between its
# critic steps (its starting state kept in memory to checkpoint); shorter ones finish before a stop.
STOP_WAIT = 1.0


class Trainer:
    """Owns the run's components and state; `fit` trains from `step` to `train.iterations`."""

    def __init__(self, cfg: DictConfig, files: RunFiles, logger: NullLogger | None = None) -> None:
        """`logger`: the run's (`run` starts it once the run can start); none: a trainer that is only measured."""
        self.cfg, self.files, self.logger = cfg, files, logger or NullLogger()
        self.parts = p = build_components(cfg)
        self.device = p.device
        # The updates as they run: replayed from CUDA graphs with speed.cuda_graphs on a GPU.
        autocast = p.speed.autocast
        self.critic_update_from_noise = p.speed.step(functools.partial(
            update.critic_update_from_noise, p.generator, p.critic, p.loss, p.lipschitz, p.opt_d, autocast),
            [p.generator, p.critic, p.opt_d])
        self.generator_update = p.speed.step(functools.partial(
            update.generator_update, p.generator, p.critic, p.loss, p.opt_g, autocast),
            [p.generator, p.critic, p.opt_g])
        self.evaluation = Evaluation(self.parts, files, self.logger)
        self.unavailable = unavailable(cfg)  # {score: why}: recorded instead of a number
        self.step = 0
        self.checkpointed_step: int | None = None  # the iteration the newest checkpoint holds
        self.elapsed = 0.0  # training seconds, summed over every start of this run
        self.wandb_run_id: str | None = None
        self.iteration_seconds = float("inf")  # the last iteration's: unknown at a start

    # --- the loop -------------------------------------------------------------------------------

    def fit(self) -> None:
        """Algorithm 1 from `step` to `train.iterations`, with the evaluations and checkpoints due. A
        stop signal ends it with Stopped, the newest complete state checkpointed or the caller's to
        checkpoint (`checkpointed_step` says which)."""
        total, every = self.cfg.train.iterations, self.cfg.train.log_every
        with TrainingProgress(total, self.step, self.elapsed) as shown:
            if self.step > 0 and self.evaluation.due(self.step) and self.evaluation.last.get("step") != self.step:
                self.evaluation.evaluate(self.step, self.elapsed)  # stopped in it, or resumed from the end
            while self.step < total:
                stats = self.timed_iteration()
                shown.advance()
                if self.step % every == 0 or self.step == total:
                    self.log_training(stats, shown)
                self.evaluation.validate(self.step, self.elapsed)
                if self.evaluation.due(self.step):
                    self.evaluation.evaluate(self.step, self.elapsed)
                if self.step % self.cfg.ckpt.every == 0 or self.step == total:
                    self.save_checkpoint()
                signals.stop_point(f"iteration {self.step}")  # honoured at its end, once checkpointed
        self.evaluation.save_figure(self.files.samples / "final.png", self.step)

    def iteration(self, long: bool = False) -> dict[str, Any]:
        """One generator iteration: `n_critic` critic steps, a generator step, the schedules' step.
        A `long` one passes a stop point before each critic step and logs how far they got."""
        steps: Iterable[int] = range(self.cfg.train.n_critic)
        if long:
            what = f"iteration {self.step + 1}"
            steps = progress(signals.stoppable(steps, what, unit="critic step"), len(steps), f"{what}, critic steps")
        for _ in steps:
            stats = self.critic_step()
        stats["generator_loss"] = self.generator_step()
        for schedule in self.parts.schedules:
            schedule.step()
        update.check_finite(stats, self.parts.generator, self.parts.critic, self.step + 1)
        return stats

    def critic_step(self) -> dict[str, Any]:
        """A critic update on a batch of real samples and as many generated ones; its statistics."""
        batch, dataset, generator = self.cfg.train.batch_size, self.parts.dataset, self.parts.generator
        if generator.num_classes:  # conditional: its fakes are generated for the real images' classes
            real, labels = dataset.sample_labeled(batch, self.device)
        else:
            real, labels = dataset.sample(batch, self.device), None
        noise = generator.sample_noise(batch, self.device, labels=labels)
        return self.critic_update_from_noise(self.parts.speed.batch(real), noise)

    def generator_step(self) -> Any:
        """A generator update on a batch of noise (`train.generator_batch_size`, else the critic's); its loss."""
        batch = self.cfg.train.generator_batch_size or self.cfg.train.batch_size
        return self.generator_update(self.parts.generator.sample_noise(batch, self.device))

    def timed_iteration(self) -> dict[str, Any]:
        """One iteration, timed. After a long one (or at a start) the next may outlast a stop's
        wait: it is interruptible, and a stop between its critic steps abandons it, checkpointing
        the state it started from (copied in memory at its start)."""
        restart_point = copy.deepcopy(checkpoints.state_of(self)) if self.iteration_seconds > STOP_WAIT else None
        started = time.perf_counter()
        try:
            stats = self.iteration(long=restart_point is not None)
        except signals.Stopped:
            self.save_checkpoint(restart_point)
            raise
        self.iteration_seconds = time.perf_counter() - started
        self.step += 1
        self.elapsed += self.iteration_seconds
        return stats

    def log_training(self, stats: dict[str, Any], shown: TrainingProgress) -> None:
        values = update.statistics(stats, self.parts.critic, self.parts.lipschitz, shown.rate(self.step, self.elapsed))
        self.logger.log({f"train/{k}": v for k, v in values.items()}, self.step)
        self.files.append_train_stats({"step": self.step, **values, "elapsed": round(self.elapsed, 3)})
        shown.report(self.step, values)

    # --- checkpoints and results ----------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any] | None = None) -> None:
        """The current state, or `state` of this step (an interrupted iteration's starting state)."""
        self.files.save_checkpoint(state or checkpoints.state_of(self))
        self.checkpointed_step = self.step

    def resume(self) -> bool:
        """Restore everything from the run directory's checkpoint; False if there is none (a
        RunDirError if there are checkpoints but none can be read)."""
        state = self.files.load_checkpoint()
        if state is None:
            return False
        checkpoints.restore(self, state)
        return True

    def results(self, status: Status, **extra: Any) -> Results:
        """The run's record in results.json (`wgan.files.Results`)."""
        cfg, evaluation = self.cfg, self.evaluation
        return {
            "status": status.value,
            "step": self.step,
            "iterations": cfg.train.iterations,
            "method": self.parts.method,
            "arch": cfg.arch.name,
            "arch_seed": cfg.arch.get("seed"),
            "arch_choices": self.parts.arch_choices,
            "dataset": cfg.dataset.name,
            "seed": cfg.seed,
            "study": cfg.study,
            "final": evaluation.last,
            "best": evaluation.best,
            "best_generator": evaluation.best_generator,  # None: no evaluation gave metrics.best
            "unavailable": self.unavailable,
            "wall_time": round(self.elapsed, 3),
            **extra,
        }


def fit_to_an_end(trainer: Trainer, resume_with: str) -> tuple[Results, int, int | None]:
    """Train to the end, or until the run diverges or a stop signal arrives: (its results, the
    exit code, the stop signal). Any other exception goes on."""
    try:
        trainer.fit()
        return trainer.results(Status.complete), 0, None
    except update.Diverged as diverged:
        log.warning("diverged: %s", diverged)
        return trainer.results(Status.diverged, diverged_at=diverged.step, reason=str(diverged)), 0, None
    except signals.Stopped as stopped:
        if trainer.checkpointed_step != trainer.step:  # stopped in an evaluation: training is at a whole step
            trainer.save_checkpoint()
        log.warning("%s: checkpointed at iteration %d; stopping. Resume with:\n  %s",
                    stopped, trainer.checkpointed_step, resume_with)
        return trainer.results(Status.interrupted, signal=stopped.signal_name, stopped_in=stopped.where), 1, stopped.signum


def run(cfg: DictConfig, run_dir: Path, resume_with: str | None = None) -> Results:
    """Train (or resume, extend, or skip) the run that `cfg` describes in `run_dir`; return its
    results. `resume_with` is the command a stopped run says resumes it. The directory is held for
    the whole run: another process in it stops before touching it."""
    validate(cfg)
    files = RunFiles(run_dir)
    files.check_dir()
    with files.held():
        return run_held(cfg, files, resume_with or f"this config with run directory {files.dir}")


def run_held(cfg: DictConfig, files: RunFiles, resume_with: str) -> Results:
    refuse_other_config(files, cfg)
    previous = files.read_results()
    if is_finished(previous, cfg.train.iterations):
        log.info("%s already holds a finished run (%s); not training again", files.dir, previous["status"])
        return previous
    if previous is not None and previous["status"] == Status.complete:
        log.info("%s holds a run complete at iteration %d: extending it to train.iterations=%d",
                 files.dir, previous["step"], cfg.train.iterations)
    files.move_aside_results_folder()
    trainer = Trainer(cfg, files, build(cfg.logger))
    resumed = trainer.resume()
    # Written only once the run can start: a config that fails to build, or a directory whose
    # checkpoints cannot be read, leaves the directory as it was.
    files.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    files.drop_metrics_after(trainer.step)  # evaluations after it are redone (all of them when starting over)
    trainer.logger.start(**run_info(cfg, files.dir, trainer.parts.method, trainer.parts.arch_choices,
                                    trainer.wandb_run_id))
    trainer.wandb_run_id = trainer.logger.run_id
    if not resumed:  # so that even a run killed before its first checkpoint keeps its W&B run
        trainer.save_checkpoint()
    results, exit_code, stopped = None, 1, None
    with signals.stop_signals() as previous_handlers:
        try:
            results, exit_code, stopped = fit_to_an_end(trainer, resume_with)
            files.write_results(results)
        except Exception as error:
            full = as_disk_full(error)
            if full is not None:  # not a crash: the run stops unfinished and resumes once there is space
                results, exit_code = None, 1  # unfinished, also to W&B (results.json may be what failed)
                raise DiskFull(
                    f"{full}. The newest checkpoint, {files.checkpoint}, is intact (iteration "
                    f"{trainer.checkpointed_step}): free some space and run the same command to resume from it"
                ) from error
            results = trainer.results(Status.crashed, traceback=traceback.format_exc())
            files.write_results(results)
            raise
        finally:
            trainer.logger.finish({k: v for k, v in (results or {}).items() if k != "traceback"}, exit_code)
    if stopped is not None:
        signals.hand_on(stopped, previous_handlers.get(stopped))
    final = ", ".join(f"{k}={v:.4g}" for k, v in trainer.evaluation.last.items() if k != "step")
    log.info("%s: %s after %d iterations (%s)", trainer.parts.method, results["status"], trainer.step, final or "no metrics")
    log.info("results: %s; samples: %s", files.results, files.samples)
    return results

"""The training loop: Algorithm 1 of the WGAN-GP paper, generalized over loss x Lipschitz method.

`run(cfg, run_dir)` is what `run.py` calls: it validates the config, resumes from the run
directory's checkpoint if there is one, trains, evaluates and writes the run's files. The
components it assembles come from the config groups, each built by `hydra.utils.instantiate`:
dataset, arch, lipschitz, loss, optimizer, metrics and logger.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, TypeVar

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from wgan import metrics, signals
from wgan.config import LRDecay, build, build_dataset, method_name, validate
from wgan.critic_diagnostics import critic_weights, layer_gradient_norms
from wgan.dataset.kind import DataKind
from wgan.device import resolve_device
from wgan.figures import figure_count, image_grid, text_samples, toy_figure
from wgan.files import FINISHED, DiskFull, Results, RunFiles, Status, as_disk_full, first_sentence
from wgan.lipschitz import input_gradient_norms, interpolates
from wgan.optimizer import build_optimizers, build_schedule, resize_schedule
from wgan.overfitting import CriticValidation
from wgan.sampling import check_sampling_batches, evaluation, evaluation_rng, frozen, generate, scored_form
from wgan.schema import ConfigError, added_at_default
from wgan.speed import Speed
from wgan.study import is_identity

log = logging.getLogger(__name__)

# An iteration that took longer than this many seconds makes the next one interruptible between its
# critic steps (its starting state kept in memory to checkpoint); shorter ones finish before a stop.
STOP_WAIT = 1.0
PROGRESS_SECONDS = 10.0  # between the progress lines of one long iteration (a huge n_critic)
# The one setting of a run's identity that may change when it resumes: a finished run is extended
# by more iterations, an unfinished one shortened (never below the iteration it has reached).
RESIZABLE = "train.iterations"

T = TypeVar("T")


def progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """`items`, logging how many are done every PROGRESS_SECONDS: input that is only slow shows it moves."""
    started = shown = time.monotonic()
    for done, item in enumerate(items):
        now = time.monotonic()
        if now - shown >= PROGRESS_SECONDS:
            log.info("%s: %d of %d done, %.4g/s", what, done, total, done / (now - started))
            shown = now
        yield item


class Diverged(Exception):
    """A loss became NaN or infinite: the run ends as a result (`diverged`), not as a crash."""

    def __init__(self, step: int, values: dict[str, float]) -> None:
        super().__init__(f"non-finite value at iteration {step}: {values}")
        self.step = step


def gradient_sum(module: torch.nn.Module) -> torch.Tensor:
    """The sum of every parameter gradient of `module` (0 where there are none yet)."""
    grads = [p.grad.sum() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).sum() if grads else next(module.parameters()).new_zeros(())


def critic_update(critic: torch.nn.Module, loss: Any, lipschitz: Any, optimizer: torch.optim.Optimizer,
                  real: torch.Tensor, fake: torch.Tensor,
                  autocast: Callable[[], ContextManager] = contextlib.nullcontext,
                  labels: torch.Tensor | None = None) -> dict[str, Any]:
    """One critic step of Algorithm 1 on a batch of real and generated samples: the loss plus the
    Lipschitz method's penalty, the update, then its after-step (clipping); the step's statistics.
    `labels`: a conditional model's classes of the batch (the AC-GAN terms, wgan.loss)."""
    with autocast():
        critic_loss, d_real, d_fake, loss_stats = loss.critic_objective(critic, real, fake, labels)
    penalty, grad_norms = lipschitz.penalty(critic, real, fake)  # in fp32 whatever the precision
    total = critic_loss if penalty is None else critic_loss + penalty
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    lipschitz.after_critic_step(critic)
    stats = {"critic_loss": total.detach(), "wasserstein": (d_real.mean() - d_fake.mean()).detach(), **loss_stats}
    if penalty is not None:
        stats["penalty"] = penalty.detach()
    return {**stats, "real": real, "fake": fake, "grad_norms": grad_norms}


class Trainer:
    """Owns the models, optimizers and run state; `fit` trains from `step` to the configured end."""

    def __init__(self, cfg: DictConfig, files: RunFiles) -> None:
        self.cfg = cfg
        self.files = files
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.dataset = build_dataset(cfg)
        self.arch = build(cfg.arch)
        self.lipschitz = build(cfg.lipschitz)
        self.loss = build(cfg.loss)
        self.speed = Speed(cfg.speed, self.device, image=self.dataset.kind is DataKind.image)
        self.generator = self.speed.network(self.arch.generator(self.dataset.shape).to(self.device))
        check_sampling_batches(cfg.metrics, self.generator)
        critic = self.arch.critic(self.dataset.shape, self.lipschitz.critic_norm)
        self.critic = self.speed.network(self.lipschitz.wrap_critic(critic).to(self.device))
        self.opt_g, self.opt_d = build_optimizers(cfg.optimizer, self.generator, self.critic,
                                                  self.speed.optimizer_options())
        # The updates as they run: replayed from CUDA graphs with speed.cuda_graphs on a GPU.
        self.critic_update = self.speed.step(self.update_critic, [self.generator, self.critic, self.opt_d])
        self.generator_update = self.speed.step(self.update_generator, [self.generator, self.critic, self.opt_g])
        decay, iterations = LRDecay(cfg.train.lr_decay).value, cfg.train.iterations
        self.schedules = [build_schedule(decay, opt, iterations) for opt in (self.opt_g, self.opt_d)]
        self.method = method_name(cfg)
        self.arch_choices = getattr(self.arch, "choices", {})
        self.unavailable = metrics.unavailable(cfg)  # {score: why}: recorded instead of a number
        self.validation = CriticValidation.configured(cfg, self.dataset, self.loss, self.lipschitz)
        # The same noise at every evaluation, drawn from its own seeded generator, makes the
        # figures comparable across iterations and leaves the training RNG stream alone.
        figure_samples = figure_count(self.dataset.kind, self.generator.num_classes)
        self.fixed_noise = self.generator.sample_noise(
            figure_samples, self.device, torch.Generator().manual_seed(cfg.seed),
            self.generator.balanced_labels(figure_samples),  # a conditional model's: one class per column
        )
        self.step = 0
        self.checkpointed_step: int | None = None  # the iteration the newest checkpoint holds
        self.elapsed = 0.0  # training seconds, summed over every start of this run
        self.last_eval: dict[str, float] = {}
        self.best: dict[str, float] = {}
        self.best_generator: dict[str, Any] | None = None  # step, key and value of checkpoints/best.pt
        self.wandb_run_id: str | None = None
        self.logger = None
        self.iteration_seconds = math.inf  # the last iteration's: unknown at a start

    # --- one iteration -------------------------------------------------------------------------

    def critic_step(self) -> dict[str, torch.Tensor]:
        batch = self.cfg.train.batch_size
        if self.generator.num_classes:  # conditional: its fakes are generated for the real images' classes
            real, labels = self.dataset.sample_labeled(batch, self.device)
        else:
            real, labels = self.dataset.sample(batch, self.device), None
        return self.critic_update(self.speed.batch(real), self.generator.sample_noise(batch, self.device, labels=labels))

    def update_critic(self, real: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), self.speed.autocast():  # critic steps build no generator graph
            fake = self.generator(noise).float()
        return critic_update(self.critic, self.loss, self.lipschitz, self.opt_d, real, fake, self.speed.autocast,
                             self.generator.labels(noise))

    def generator_step(self) -> torch.Tensor:
        batch = self.cfg.train.generator_batch_size or self.cfg.train.batch_size
        return self.generator_update(self.generator.sample_noise(batch, self.device))

    def update_generator(self, noise: torch.Tensor) -> torch.Tensor:
        self.critic.requires_grad_(False)  # the generator step needs no critic parameter gradients
        with self.speed.autocast():
            loss = self.loss.generator_objective(self.critic, self.generator(noise), self.generator.labels(noise))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.critic.requires_grad_(True)
        return loss.detach()

    def iteration(self, long: bool = False) -> dict[str, Any]:
        """One generator iteration. A `long` one passes a stop point before each critic step and
        logs how far its critic steps got."""
        steps: Iterable[int] = range(self.cfg.train.n_critic)
        if long:
            what = f"iteration {self.step + 1}"
            steps = progress(signals.stoppable(steps, what, unit="critic step"), len(steps), f"{what}, critic steps")
        for _ in steps:
            stats = self.critic_step()
        stats["generator_loss"] = self.generator_step()
        for schedule in self.schedules:
            schedule.step()
        self.check_finite(stats)
        return stats

    def check_finite(self, stats: dict[str, Any]) -> None:
        """Diverged if a loss, a gradient or a generated sample of this iteration is NaN or
        infinite. Sums stand for whole tensors (a sum is finite only if every term is), so the
        check costs one synchronization per iteration."""
        watched = {
            "critic_loss": stats["critic_loss"],
            "generator_loss": stats["generator_loss"],
            "generated samples (sum)": stats["fake"].sum(),
            "critic gradients (sum)": gradient_sum(self.critic),
            "generator gradients (sum)": gradient_sum(self.generator),
        }
        values = torch.stack(list(watched.values()))
        if not bool(torch.isfinite(values).all()):
            raise Diverged(self.step + 1, {k: float(v) for k, v in zip(watched, values) if not math.isfinite(v)})

    # --- statistics, evaluation, checkpoints --------------------------------------------------

    def training_stats(self, stats: dict[str, Any], it_per_s: float) -> dict[str, float]:
        """Scalars of the last critic and generator step, with gradient norms at interpolates."""
        norms = stats["grad_norms"]
        if norms is None:  # the method computed none: measure them, leaving the training state alone
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                points = interpolates(stats["real"], stats["fake"])
            with frozen(self.critic):
                norms = input_gradient_norms(self.critic, points, create_graph=False)
        values = {k: float(v) for k, v in stats.items() if isinstance(v, torch.Tensor) and v.dim() == 0}
        values.update(
            grad_norm_mean=float(norms.mean()),
            grad_norm_std=float(norms.std()) if len(norms) > 1 else 0.0,
            grad_norm_max=float(norms.max()),
            it_per_s=it_per_s,
            **self.lipschitz.stats(self.critic),
        )
        return values

    def evaluation_due(self) -> bool:
        return self.step % self.cfg.eval.every == 0 or self.step == self.cfg.train.iterations

    def validate(self) -> None:
        """The critic's loss on training and on held-out images (wgan.overfitting); logged before the
        evaluation of the same iteration, which commits W&B's row."""
        values = self.validation(self.critic, self.generator)
        self.files.append_metrics({"step": self.step, **values, "elapsed": round(self.elapsed, 3)})
        self.logger.log({f"validation/{k}": v for k, v in values.items()}, self.step)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        with signals.stopping_in(f"the evaluation at iteration {self.step}"):
            values = self.score() if self.cfg.metrics.names else {}
        if self.cfg.train.critic_diagnostics:
            values.update(self.diagnose_critic())
        self.last_eval = {"step": self.step, **values}
        self.files.append_metrics({**self.last_eval, "elapsed": round(self.elapsed, 3)})
        figure = self.save_figure(self.files.sample_figure(self.step))
        self.logger.log_evaluation({f"eval/{k}": v for k, v in values.items()}, figure, self.step)
        log.info("eval @ %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in values.items()) or "no metrics")
        return values

    def score(self) -> dict[str, float]:
        """The configured metrics on `metrics.num_samples` generated samples, or at the last
        iteration on `metrics.final_num_samples` (the paper's protocol)."""
        names = list(self.cfg.metrics.names)
        values = metrics.compute(names, *evaluation(self.generator, self.dataset, self.cfg, self.step))
        for key, value in values.items():
            if metrics.is_improvement(key, value, self.best.get(key)):
                self.best[key] = value
        self.keep_best_generator(values)
        return values

    def keep_best_generator(self, values: dict[str, float]) -> None:
        """Save the generator if this evaluation is its best by the run's success value
        (`metrics.best`). Values of another sample count (the final evaluation's 50k against
        training's 5k) are another protocol: they never replace the kept one."""
        key = metrics.success_key(list(self.cfg.metrics.best), values)
        if key is None or not math.isfinite(values[key]):
            return
        kept = self.best_generator
        if kept is not None and (kept["key"] != key or not metrics.is_improvement(key, values[key], kept["value"])):
            return
        self.best_generator = {"step": self.step, "key": key, "value": values[key]}
        self.files.save_best_generator({**self.best_generator, "generator": self.generator.state_dict()})

    def diagnose_critic(self) -> dict[str, float]:
        """Figure 1b (train.critic_diagnostics): the critic's weights to the logger as a histogram,
        and the gradient norm of the critic loss at each layer on a batch of the evaluation's own draw."""
        rng = evaluation_rng(self.cfg.seed, self.step)
        n = self.cfg.train.batch_size
        fake = generate(self.generator, n, self.cfg.metrics, None, rng)  # as the critic sees them.to(self.device)
        real = self.dataset.sample(n, self.device, rng)
        self.logger.log_histograms({"critic_weights": critic_weights(self.critic)}, self.step)
        return layer_gradient_norms(self.critic, self.loss.critic, real, fake)

    @torch.no_grad()
    def save_figure(self, path: Path) -> Path:
        """Samples from the fixed noise batch: a grid of images, lines of text (argmax-decoded, in a
        text file beside where the picture would be), or points over the toy data on the critic's
        value contours."""
        fake = self.generator(self.fixed_noise).cpu()
        label = f"{run_name(self.method, self.cfg)}, iteration {self.step}"  # the W&B run's name
        if self.dataset.kind is DataKind.image:
            return image_grid(fake, path, label, columns=self.generator.num_classes or None)
        if self.dataset.kind is DataKind.text:
            return text_samples(self.dataset.decode(scored_form(fake, DataKind.text)), path)
        real = self.dataset.sample(len(fake), "cpu", torch.Generator().manual_seed(self.cfg.seed))
        with frozen(self.critic):
            return toy_figure(real, fake, self.critic, path, label)

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedules": [schedule.state_dict() for schedule in self.schedules],
            "rng": rng,
            "elapsed": self.elapsed,
            "last_eval": self.last_eval,
            "best": self.best,
            "wandb_run_id": self.wandb_run_id,
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),  # what wrote it: checked on resume
        }

    def save_checkpoint(self, state: dict[str, Any] | None = None) -> None:
        """The current state, or `state` of this step (an interrupted iteration's starting state)."""
        self.files.save_checkpoint(state or self.state())
        self.checkpointed_step = self.step

    def resume(self) -> bool:
        """Restore everything from the run directory's checkpoint; False if there is none (a
        RunDirError if there are checkpoints but none can be read)."""
        state = self.files.load_checkpoint()
        if state is None:
            return False
        refuse_other_checkpoint(self.files, state, self.cfg)
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for schedule, saved in zip(self.schedules, state["schedules"]):
            schedule.load_state_dict(saved)
            resize_schedule(schedule, self.cfg.train.iterations)  # an extended (or shortened) run's
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        if self.step > self.cfg.train.iterations:
            raise ConfigError(f"train.iterations={self.cfg.train.iterations} is below iteration {self.step}, which the "
                              f"run in {self.files.dir} has reached: give at least {self.step}")
        self.checkpointed_step = self.step
        self.last_eval, self.best = state["last_eval"], state["best"]
        self.wandb_run_id = state["wandb_run_id"]
        # best.pt itself says what it holds: it may be newer than the checkpoint (written by
        # iterations this start redoes), and then it is what those iterations wrote.
        kept = self.files.load_best_generator()
        self.best_generator = {k: kept[k] for k in ("step", "key", "value")} if kept else None
        log.info("resumed from %s at iteration %d", self.files.checkpoint, self.step)
        return True

    # --- the loop -------------------------------------------------------------------------------

    def fit(self) -> None:
        """Algorithm 1 from `step` to `train.iterations`, with the evaluations and checkpoints due. A
        stop signal ends it with Stopped, the newest complete state checkpointed or the caller's to
        checkpoint (`checkpointed_step` says which)."""
        cfg = self.cfg
        total = cfg.train.iterations
        interactive = sys.stderr.isatty()
        bar = tqdm(total=total, initial=self.step, disable=not interactive, dynamic_ncols=True, unit="it")
        # it/s over training time alone: evaluations and checkpoints are not iterations.
        window_elapsed, window_step = self.elapsed, self.step
        with bar, logging_redirect_tqdm():
            if self.step > 0 and self.evaluation_due() and self.last_eval.get("step") != self.step:
                self.evaluate()  # stopped before it ended, or resumed from a final checkpoint
            while self.step < total:
                stats = self.timed_iteration()
                bar.update()
                if self.step % cfg.train.log_every == 0 or self.step == total:
                    it_per_s = (self.step - window_step) / max(self.elapsed - window_elapsed, 1e-9)
                    values = self.training_stats(stats, it_per_s)
                    self.logger.log({f"train/{k}": v for k, v in values.items()}, self.step)
                    self.files.append_train_stats({"step": self.step, **values, "elapsed": round(self.elapsed, 3)})
                    self.report_progress(bar, values, interactive)
                    window_elapsed, window_step = self.elapsed, self.step
                if self.validation is not None and self.validation.due(self.step):
                    self.validate()
                if self.evaluation_due():
                    self.evaluate()
                if self.step % cfg.ckpt.every == 0 or self.step == total:
                    self.save_checkpoint()
                signals.stop_point(f"iteration {self.step}")  # honoured at its end, once checkpointed
        self.save_figure(self.files.samples / "final.png")

    def timed_iteration(self) -> dict[str, Any]:
        """One iteration, timed. After a long one (or at a start) the next may outlast a stop's
        wait: it is interruptible, and a stop between its critic steps abandons it, checkpointing
        the state it started from (copied in memory at its start)."""
        restart_point = copy.deepcopy(self.state()) if self.iteration_seconds > STOP_WAIT else None
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

    def report_progress(self, bar: tqdm, values: dict[str, float], interactive: bool) -> None:
        shown = {k: values[k] for k in ("critic_loss", "generator_loss", "wasserstein") if k in values}
        if interactive:
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
            return
        remaining = (self.cfg.train.iterations - self.step) / max(values["it_per_s"], 1e-9)
        log.info(
            "iter %d/%d | %s | %.1f it/s | eta %s",
            self.step,
            self.cfg.train.iterations,
            " ".join(f"{k}={v:.4g}" for k, v in shown.items()),
            values["it_per_s"],
            time.strftime("%H:%M:%S", time.gmtime(remaining)) if math.isfinite(remaining) else "?",
        )

    def results(self, status: Status, **extra: Any) -> Results:
        cfg = self.cfg
        return {
            "status": status.value,
            "step": self.step,
            "iterations": cfg.train.iterations,
            "method": self.method,
            "arch": cfg.arch.name,
            "arch_seed": cfg.arch.get("seed"),
            "arch_choices": self.arch_choices,
            "dataset": cfg.dataset.name,
            "seed": cfg.seed,
            "study": cfg.study,
            "final": self.last_eval,
            "best": self.best,
            "best_generator": self.best_generator,  # None: no evaluation gave metrics.best
            "unavailable": self.unavailable,
            "wall_time": round(self.elapsed, 3),
            **extra,
        }


def refuse_other_config(files: RunFiles, cfg: DictConfig) -> None:
    """A run directory holds one config's run: resuming or skipping it under another config would
    mix results (e.g. a study command changed between two launches). The checkpoint holds the
    config too and decides where config.yaml disagrees with it: a config.yaml damaged after it was
    written (cut short by a copy, edited) does not lock out the run its checkpoint can resume."""
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


def refuse_other_checkpoint(files: RunFiles, state: dict[str, Any], cfg: DictConfig) -> None:
    if "config" in state:
        refuse_if_different(OmegaConf.create(state["config"]), cfg,
                            f"checkpoint {files.checkpoint} was written by another config")


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


def refuse_if_different(saved: DictConfig, cfg: DictConfig, what: str) -> None:
    """Raise a ConfigError starting with `what` and naming the differing keys, if any of a run's
    identity differ (the settings of where and how it runs, wgan.study.NOT_IDENTITY, may, and
    RESIZABLE, checked against the iteration reached when the checkpoint is loaded). A setting
    added to the project since the run was written is the same at its default."""
    saved_values = flatten(OmegaConf.to_container(saved, resolve=True))
    current = flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    differences = sorted(
        key for key in set(saved_values) | set(current)
        if saved_values.get(key) != current.get(key) and is_identity(key) and key != RESIZABLE
        and not (key not in saved_values and added_at_default(cfg, key))  # a setting newer than the run
    )
    if differences:
        shown = ", ".join(f"{k}: {saved_values.get(k)!r} there, {current.get(k)!r} now" for k in differences[:5])
        raise ConfigError(
            f"{what} ({shown}{', ...' if len(differences) > 5 else ''}); "
            "not mixing results: use another study=... name or output directory, or delete it to start over"
        )


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    if isinstance(tree, dict) and tree:
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def fit_to_an_end(trainer: Trainer, resume_with: str) -> tuple[Results, int, int | None]:
    """Train to the end, or until the run diverges or a stop signal arrives: (its results, the
    exit code, the stop signal). Any other exception goes on."""
    try:
        trainer.fit()
        return trainer.results(Status.complete), 0, None
    except Diverged as diverged:
        log.warning("diverged: %s", diverged)
        return trainer.results(Status.diverged, diverged_at=diverged.step, reason=str(diverged)), 0, None
    except signals.Stopped as stopped:
        if trainer.checkpointed_step != trainer.step:  # stopped in an evaluation: training is at a whole step
            trainer.save_checkpoint()
        log.warning("%s: checkpointed at iteration %d; stopping. Resume with:\n  %s",
                    stopped, trainer.checkpointed_step, resume_with)
        return trainer.results(Status.interrupted, signal=stopped.signal_name, stopped_in=stopped.where), 1, stopped.signum


def run_name(method: str, cfg: DictConfig) -> str:
    """The W&B run's name: method, architecture (with its seed, one per drawn architecture),
    dataset and seed, e.g. wgan_gp-random7-toy_8gaussians-s0."""
    arch = f"{cfg.arch.name}{cfg.arch.seed}" if "seed" in cfg.arch else cfg.arch.name
    return f"{method}-{arch}-{cfg.dataset.name}-s{cfg.seed}"


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
    if previous is not None and previous["status"] in FINISHED:
        if previous["status"] != Status.complete or previous["step"] >= cfg.train.iterations:
            log.info("%s already holds a finished run (%s); not training again", files.dir, previous["status"])
            return previous
        log.info("%s holds a run complete at iteration %d: extending it to train.iterations=%d",
                 files.dir, previous["step"], cfg.train.iterations)
    files.move_aside_results_folder()
    trainer = Trainer(cfg, files)
    resumed = trainer.resume()
    # Written only once the run can start: a config that fails to build, or a directory whose
    # checkpoints cannot be read, leaves the directory as it was.
    files.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    files.drop_metrics_after(trainer.step)  # evaluations after it are redone (all of them when starting over)
    trainer.logger = build(cfg.logger)
    trainer.logger.start(
        run_dir=files.dir,
        name=run_name(trainer.method, cfg),
        group=cfg.study,
        job_type=trainer.method,
        config={**OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "arch_choices": trainer.arch_choices},
        resume_id=trainer.wandb_run_id,
    )
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
    final = ", ".join(f"{k}={v:.4g}" for k, v in trainer.last_eval.items() if k != "step")
    log.info("%s: %s after %d iterations (%s)", trainer.method, results["status"], trainer.step, final or "no metrics")
    log.info("results: %s; samples: %s", files.results, files.samples)
    return results

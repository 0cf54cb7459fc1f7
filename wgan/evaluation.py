"""A run's evaluations: the configured metrics on generated samples (`wgan.metrics`), the best value
of each so far and the generator that gave the best success value (checkpoints/best.pt), the
critic's loss on held-out images (`eval.validation_every`), Figure 1b's critic diagnostics, and the
sample figures. Each evaluation goes to metrics.jsonl, the logger and a figure.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from wgan import metrics, signals
from wgan.components import Components
from wgan.critic_diagnostics import critic_weights, layer_gradient_norms
from wgan.dataset.kind import DataKind
from wgan.figures import figure_count, image_grid, text_samples, toy_figure
from wgan.files import RunFiles
from wgan.logger import run_name
from wgan.overfitting import CriticValidation
from wgan.sampling import evaluation, evaluation_rng, frozen, generate, scored_form

log = logging.getLogger(__name__)


class Evaluation:
    """Evaluates a run's networks at the iterations due and keeps what the checkpoint saves of it:
    the last evaluation's values, the best of each value, and which generator best.pt holds."""

    def __init__(self, parts: Components, files: RunFiles, logger: Any) -> None:
        self.parts, self.cfg, self.files, self.logger = parts, parts.cfg, files, logger
        self.validation = CriticValidation.configured(self.cfg, parts.dataset, parts.loss, parts.lipschitz)
        # The same noise at every evaluation, drawn from its own seeded generator, makes the
        # figures comparable across iterations and leaves the training RNG stream alone.
        generator = parts.generator
        count = figure_count(parts.dataset.kind, generator.num_classes)
        self.fixed_noise = generator.sample_noise(count, parts.device, torch.Generator().manual_seed(self.cfg.seed),
                                                  generator.balanced_labels(count))  # conditional: a class a column
        self.last: dict[str, float] = {}  # the last evaluation's values, with its "step"
        self.best: dict[str, float] = {}
        self.best_generator: dict[str, Any] | None = None  # step, key and value of checkpoints/best.pt

    def due(self, step: int) -> bool:
        return step % self.cfg.eval.every == 0 or step == self.cfg.train.iterations

    def validate(self, step: int, elapsed: float) -> None:
        """The critic's loss on training and on held-out images (wgan.overfitting), if due; logged
        before the evaluation of the same iteration, which commits W&B's row."""
        if self.validation is None or not self.validation.due(step):
            return
        values = self.validation(self.parts.critic, self.parts.generator)
        self.files.append_metrics({"step": step, **values, "elapsed": round(elapsed, 3)})
        self.logger.log({f"validation/{k}": v for k, v in values.items()}, step)

    @torch.no_grad()
    def evaluate(self, step: int, elapsed: float) -> dict[str, float]:
        with signals.stopping_in(f"the evaluation at iteration {step}"):
            values = self.score(step) if self.cfg.metrics.names else {}
        if self.cfg.train.critic_diagnostics:
            values.update(self.diagnose_critic(step))
        self.last = {"step": step, **values}
        self.files.append_metrics({**self.last, "elapsed": round(elapsed, 3)})
        figure = self.save_figure(self.files.sample_figure(step), step)
        self.logger.log_evaluation({f"eval/{k}": v for k, v in values.items()}, figure, step)
        log.info("eval @ %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in values.items()) or "no metrics")
        return values

    def score(self, step: int) -> dict[str, float]:
        """The configured metrics on `metrics.num_samples` generated samples, or at the last
        iteration on `metrics.final_num_samples` (the paper's protocol)."""
        names = list(self.cfg.metrics.names)
        values = metrics.compute(names, *evaluation(self.parts.generator, self.parts.dataset, self.cfg, step))
        for key, value in values.items():
            if metrics.is_improvement(key, value, self.best.get(key)):
                self.best[key] = value
        self.keep_best_generator(values, step)
        return values

    def keep_best_generator(self, values: dict[str, float], step: int) -> None:
        """Save the generator if this evaluation is its best by the run's success value
        (`metrics.best`). Values of another sample count (the final evaluation's 50k against
        training's 5k) are another protocol: they never replace the kept one."""
        key = metrics.success_key(list(self.cfg.metrics.best), values)
        if key is None or not math.isfinite(values[key]):
            return
        kept = self.best_generator
        if kept is not None and (kept["key"] != key or not metrics.is_improvement(key, values[key], kept["value"])):
            return
        self.best_generator = {"step": step, "key": key, "value": values[key]}
        self.files.save_best_generator({**self.best_generator, "generator": self.parts.generator.state_dict()})

    def diagnose_critic(self, step: int) -> dict[str, float]:
        """Figure 1b (train.critic_diagnostics): the critic's weights to the logger as a histogram,
        and the gradient norm of the critic loss at each layer on a batch of the evaluation's own draw."""
        rng = evaluation_rng(self.cfg.seed, step)
        n, critic = self.cfg.train.batch_size, self.parts.critic
        fake = generate(self.parts.generator, n, self.cfg.metrics, None, rng)  # as the critic sees them
        real = self.parts.dataset.sample(n, self.parts.device, rng)
        self.logger.log_histograms({"critic_weights": critic_weights(critic)}, step)
        return layer_gradient_norms(critic, self.parts.loss.critic, real, fake)

    @torch.no_grad()
    def save_figure(self, path: Path, step: int) -> Path:
        """Samples from the fixed noise batch: a grid of images, lines of text (argmax-decoded, in a
        text file beside where the picture would be), or points over the toy data on the critic's
        value contours."""
        generator, dataset = self.parts.generator, self.parts.dataset
        fake = generator(self.fixed_noise).cpu()
        label = f"{run_name(self.parts.method, self.cfg)}, iteration {step}"  # the W&B run's name
        if dataset.kind is DataKind.image:
            return image_grid(fake, path, label, columns=generator.num_classes or None)
        if dataset.kind is DataKind.text:
            return text_samples(dataset.decode(scored_form(fake, DataKind.text)), path)
        real = dataset.sample(len(fake), "cpu", torch.Generator().manual_seed(self.cfg.seed))
        with frozen(self.parts.critic):
            return toy_figure(real, fake, self.parts.critic, path, label)

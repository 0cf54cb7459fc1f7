"""The two updates of Algorithm 1 (WGAN-GP paper), for any loss x Lipschitz method: the critic's
(its loss plus the method's penalty, then the method's after-step, e.g. clipping) and the
generator's; and the check that ends a run whose losses, gradients or samples stop being finite.

`wgan.loss` says what each network minimizes and `wgan.lipschitz` how the critic is kept
Lipschitz; this module only applies them. The trainer draws the batches (`Trainer.critic_step`).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, ContextManager

import torch

from wgan.lipschitz import input_gradient_norms, interpolates
from wgan.sampling import frozen

Autocast = Callable[[], ContextManager]


class Diverged(Exception):
    """A loss became NaN or infinite: the run ends as a result (`diverged`), not as a crash."""

    def __init__(self, step: int, values: dict[str, float]) -> None:
        super().__init__(f"non-finite value at iteration {step}: {values}")
        self.step = step


def critic_update(critic: torch.nn.Module, loss: Any, lipschitz: Any, optimizer: torch.optim.Optimizer,
                  real: torch.Tensor, fake: torch.Tensor, autocast: Autocast = contextlib.nullcontext,
                  labels: torch.Tensor | None = None) -> dict[str, Any]:
    """One critic update on a batch of real and generated samples: the loss plus the Lipschitz
    method's penalty, the step, then its after-step (clipping); the step's statistics.
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


def critic_update_from_noise(generator: Any, critic: torch.nn.Module, loss: Any, lipschitz: Any,
                             optimizer: torch.optim.Optimizer, autocast: Autocast,
                             real: torch.Tensor, noise: torch.Tensor) -> dict[str, Any]:
    """`critic_update` against the generator's samples of `noise` (a conditional generator's
    noise carries the real batch's classes). Tensors last: what a CUDA graph replays."""
    with torch.no_grad(), autocast():  # critic updates build no generator graph
        fake = generator(noise).float()
    return critic_update(critic, loss, lipschitz, optimizer, real, fake, autocast, generator.labels(noise))


def generator_update(generator: Any, critic: torch.nn.Module, loss: Any, optimizer: torch.optim.Optimizer,
                     autocast: Autocast, noise: torch.Tensor) -> torch.Tensor:
    """One generator update on `noise`; its loss."""
    critic.requires_grad_(False)  # the generator update needs no critic parameter gradients
    with autocast():
        generator_loss = loss.generator_objective(critic, generator(noise), generator.labels(noise))
    optimizer.zero_grad(set_to_none=True)
    generator_loss.backward()
    optimizer.step()
    critic.requires_grad_(True)
    return generator_loss.detach()


def gradient_sum(module: torch.nn.Module) -> torch.Tensor:
    """The sum of every parameter gradient of `module` (0 where there are none yet)."""
    grads = [p.grad.sum() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).sum() if grads else next(module.parameters()).new_zeros(())


def check_finite(stats: dict[str, Any], generator: torch.nn.Module, critic: torch.nn.Module, step: int) -> None:
    """Diverged at iteration `step` if a loss, a gradient or a generated sample of the iteration's
    `stats` is NaN or infinite. Sums stand for whole tensors (a sum is finite only if every term
    is), so the check costs one synchronization per iteration."""
    watched = {
        "critic_loss": stats["critic_loss"],
        "generator_loss": stats["generator_loss"],
        "generated samples (sum)": stats["fake"].sum(),
        "critic gradients (sum)": gradient_sum(critic),
        "generator gradients (sum)": gradient_sum(generator),
    }
    values = torch.stack(list(watched.values()))
    if not bool(torch.isfinite(values).all()):
        raise Diverged(step, {k: float(v) for k, v in zip(watched, values) if not math.isfinite(v)})


def statistics(stats: dict[str, Any], critic: torch.nn.Module, lipschitz: Any, it_per_s: float) -> dict[str, float]:
    """The scalars of an iteration's last critic and generator updates, with the critic's input
    gradient norms at interpolates (measured here, leaving the training state alone, for a method
    whose update computed none)."""
    norms = stats["grad_norms"]
    if norms is None:
        device = stats["real"].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            points = interpolates(stats["real"], stats["fake"])
        with frozen(critic):
            norms = input_gradient_norms(critic, points, create_graph=False)
    values = {k: float(v) for k, v in stats.items() if isinstance(v, torch.Tensor) and v.dim() == 0}
    values.update(
        grad_norm_mean=float(norms.mean()),
        grad_norm_std=float(norms.std()) if len(norms) > 1 else 0.0,
        grad_norm_max=float(norms.max()),
        it_per_s=it_per_s,
        **lipschitz.stats(critic),
    )
    return values

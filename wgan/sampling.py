"""Loading a run's generator and sampling it for scores: what training evaluates with and what
`python -m wgan.metrics` scores a run directory with, so that both give the same numbers.

An evaluation draws its noise (and, for the toy data, as many real points) from a generator of its
own, seeded by the run's seed and the iteration: scoring never shifts the training RNG stream, and
scoring a checkpoint again gives the numbers the run logged at that iteration.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from wgan import metrics, signals
from wgan.arch.base import Generator
from wgan.config import build
from wgan.dataset.kind import DataKind, Dataset
from wgan.files import RunDirError, RunFiles, first_sentence
from wgan.schema import ConfigError


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """Eval mode for a look at a network that must not change it (spectral norm's power
    iteration and batch norm's running statistics update only in training mode)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def batch_norms(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def sampling_mode(generator: torch.nn.Module, batch_stats: bool):
    """Eval mode for sampling, except that with `batch_stats` batch norm layers normalize with the
    statistics of each batch (as the official code samples) without updating their running ones."""
    norms = batch_norms(generator)
    saved = [m.track_running_stats for m in norms]
    with frozen(generator):
        if batch_stats:
            for norm in norms:  # training mode without tracking: batch statistics, no updates
                norm.train()
                norm.track_running_stats = False
        try:
            yield generator
        finally:
            for norm, tracked in zip(norms, saved):
                norm.track_running_stats = tracked


def check_sampling_batches(settings: DictConfig, generator: torch.nn.Module) -> None:
    """With `metrics.batch_stats`, batch norm in the generator normalizes each sampling batch by
    its own statistics, which a batch of one sample does not have: refuse before sampling rather
    than fail (or score nonsense) at the first evaluation."""
    if not settings.batch_stats or not batch_norms(generator):
        return
    size = settings.batch_size
    counts = {"metrics.num_samples": settings.num_samples, "metrics.final_num_samples": settings.final_num_samples}
    lone = [f"{key}={n}" for key, n in counts.items() if n is not None and n % size == 1]
    if size == 1 or lone:
        batches = "batches of one sample" if size == 1 else f"a last batch of one sample ({lone[0]})"
        raise ConfigError(
            f"metrics.batch_size={size} makes {batches}, but the generator has batch norm and metrics.batch_stats=true "
            "normalizes each sampling batch by its own statistics, which one sample does not have: choose another "
            "metrics.batch_size, or set metrics.batch_stats=false (running averages)"
        )


def evaluation_rng(seed: int, step: int) -> torch.Generator:
    """The evaluation at iteration `step` draws from a generator of its own. Its seed wraps around
    at 2**64, the most torch takes, as seeds go up to that."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**64)


def scored_form(samples: torch.Tensor, kind: Optional[DataKind]) -> torch.Tensor:
    """Generated samples as the metrics score them: images as uint8, the grid real images come from,
    so generated and real images are scored at the same precision; text as the index of the most
    likely character at each position (argmax decoding, as the official code samples text); toy
    points, or with no kind any samples, as generated."""
    if kind is DataKind.image:
        return metrics.to_uint8(samples)
    if kind is DataKind.text:
        return samples.argmax(dim=-1)
    return samples


def sample_batches(generator: Generator, n: int, settings: DictConfig, kind: Optional[DataKind],
                   rng: torch.Generator) -> Iterator[torch.Tensor]:
    """`n` samples in batches of `metrics.batch_size`, in their scored form, on the generator's
    device, each generated when it is asked for; a conditional model's of every class equally often
    (`balanced_labels`, the paper's Inception Score protocol). The noise of all `n` is drawn now, in
    one draw, so that the samples do not depend on the batch size and later draws from `rng` follow it."""
    device = next(generator.parameters()).device
    batches = generator.sample_noise(n, device, rng, generator.balanced_labels(n)).split(settings.batch_size)
    shown = tqdm(batches, desc=f"sampling {n}", unit="batch", disable=None if len(batches) > 10 else True, leave=False)
    return (sample(generator, noise, settings.batch_stats, kind) for noise in signals.stoppable(shown, f"sampling {n}"))


@torch.inference_mode()
def sample(generator: Generator, noise: torch.Tensor, batch_stats: bool, kind: Optional[DataKind]) -> torch.Tensor:
    with sampling_mode(generator, batch_stats):
        return scored_form(generator(noise), kind)


def generate(generator: Generator, n: int, settings: DictConfig, kind: Optional[DataKind],
             rng: torch.Generator) -> torch.Tensor:
    """`n` samples on the CPU, in their scored form: for a look at few of them, never to score."""
    return torch.cat([batch.cpu() for batch in sample_batches(generator, n, settings, kind, rng)])


def evaluation_count(cfg: DictConfig, step: int) -> int:
    """`metrics.num_samples`, or at the last iteration `metrics.final_num_samples` (the paper's protocol)."""
    final = step == cfg.train.iterations and cfg.metrics.final_num_samples is not None
    return cfg.metrics.final_num_samples if final else cfg.metrics.num_samples


def evaluation(generator: Generator, dataset: Dataset, cfg: DictConfig,
               step: int) -> tuple[metrics.EvalContext, Iterator[torch.Tensor]]:
    """What the metrics need to score the evaluation at iteration `step` (with as many real points
    of the toy data), and the batches of samples of `generator` it scores, generated as they are
    scored."""
    n = evaluation_count(cfg, step)
    rng = evaluation_rng(cfg.seed, step)
    samples = sample_batches(generator, n, cfg.metrics, dataset.kind, rng)
    real = dataset.sample(n, "cpu", rng) if dataset.kind is DataKind.toy else None
    return metrics.EvalContext(n, real, dataset, cfg, fake_labels=generator.balanced_labels(n)), samples


def read_checkpoint(files: RunFiles, best: bool = False) -> dict[str, Any]:
    """The run directory's newest readable checkpoint, or with `best` its best generator
    (checkpoints/best.pt), loaded as data; RunDirError if it has none."""
    if best:
        state = files.load_best_generator()
        if state is None:
            raise RunDirError(f"{files.dir} has no readable best generator ({files.best_generator}): it is written at "
                              "the first evaluation that gives a value of metrics.best")
        return state
    state = files.load_checkpoint()
    if state is None:
        raise RunDirError(f"{files.dir} has no checkpoint ({files.checkpoint}): it holds no generator to sample, "
                          "and its sample figures are grids, not samples; score it once it has checkpointed")
    return state


def load_generator(cfg: DictConfig, data_shape: tuple[int, ...], state: dict[str, Any],
                   device: torch.device) -> Generator:
    """The generator of a checkpoint's `state`, built from `cfg.arch`. Building it leaves the
    caller's global RNG as it was (its initial weights are overwritten)."""
    with torch.random.fork_rng(devices=[]):
        generator = build(cfg.arch).generator(data_shape)
    try:
        generator.load_state_dict(state["generator"])
    except (KeyError, RuntimeError) as error:  # a checkpoint of another architecture, or no generator at all
        raise RunDirError(f"the checkpoint's generator does not fit arch={cfg.arch.name} "
                          f"({first_sentence(error)})") from None
    check_sampling_batches(cfg.metrics, generator)
    return generator.to(device)

"""The `speed` settings: levers that make a training step faster on a GPU without changing what
it computes (beyond bf16 rounding where asked). Each falls back, with a warning, where the
hardware or torch lacks it, so a config written for a GPU cluster still runs on a laptop.

- `precision=bf16`: the networks' forward passes under bf16 autocast; the gradient penalty (its
  critic forward, input gradient and norm) stays in fp32, where its second derivatives are exact.
- `channels_last`: image networks and batches in NHWC layout (faster tensor-core convolutions).
- `fused_optimizer`: torch's fused Adam kernels (one kernel per step, not one per tensor); RMSProp,
  TF1's and torch's, has none and falls back.
- `cuda_graphs`: the critic update and the generator update are each captured once as a CUDA
  graph (static shapes; Adam/RMSprop in capturable mode) and replayed every step with the new
  batch copied in, which removes the launch overhead of hundreds of small kernels.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Sequence

import torch
from torch import nn

from wgan.schema import ConfigError

log = logging.getLogger(__name__)


class Precision(Enum):
    fp32 = "fp32"
    bf16 = "bf16"  # autocast; the gradient penalty stays fp32


@dataclass
class SpeedConfig:
    precision: Precision = Precision.fp32
    channels_last: bool = False  # image networks and batches in NHWC memory layout
    fused_optimizer: bool = False  # torch's fused optimizer kernels
    cuda_graphs: bool = False  # capture the critic and generator updates as CUDA graphs (GPU only)


def check(cfg: Any) -> None:
    """Combinations that cannot work, before anything is built."""
    if cfg.speed.cuda_graphs and cfg.train.lr_decay.value != "constant":
        raise ConfigError(
            "speed.cuda_graphs=true needs train.lr_decay=constant: a captured optimizer step keeps the "
            "learning rate it was captured with"
        )


class Speed:
    """The levers of `speed` as they apply on `device` (the fallbacks decided once, here)."""

    def __init__(self, cfg: Any, device: torch.device, image: bool) -> None:
        self.device = device
        self.bf16 = Precision(cfg.precision) is Precision.bf16
        self.channels_last = cfg.channels_last and image
        self.fused = cfg.fused_optimizer
        self.cuda_graphs = cfg.cuda_graphs and device.type == "cuda"
        if cfg.cuda_graphs and not self.cuda_graphs:
            log.warning("speed.cuda_graphs needs a CUDA device; training eagerly on %s", device)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def network(self, module: nn.Module) -> nn.Module:
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def optimizer_options(self) -> dict[str, bool]:
        """Keyword arguments for torch's Adam / RMSprop."""
        options = {}
        if self.fused:
            options["fused"] = True
        if self.cuda_graphs:
            options["capturable"] = True
        return options

    def step(self, update: Callable[..., Any], state: Sequence[nn.Module | torch.optim.Optimizer]) -> Callable[..., Any]:
        """`update` as it runs: replayed from a CUDA graph if asked and possible, else itself."""
        return GraphedUpdate(update, state) if self.cuda_graphs else update


def make_optimizer(make: Callable[..., torch.optim.Optimizer], params: Any, options: dict[str, bool]) -> torch.optim.Optimizer:
    """`make(params, **options)`, dropping `fused` where this torch, device or optimizer has no fused kernel."""
    params = list(params)
    try:
        return make(params, **options)
    except (RuntimeError, TypeError, ValueError) as error:
        if not options.get("fused"):
            raise
        log.warning("no fused optimizer here (%s); using the default implementation", error)
        return make(params, **{k: v for k, v in options.items() if k != "fused"})


class GraphedUpdate:
    """A training update captured as one CUDA graph on its first call and replayed afterwards.

    The inputs (a batch, noise) are copied into static tensors the graph reads; the output (the
    step's statistics) lives in the graph's memory and is overwritten by the next replay. CUDA
    graph capture needs a few warm-up calls first, which would train: the models' and optimizers'
    tensors are saved before and restored (in place, where the graph reads them) after, so the
    first real step starts from exactly where training was, random number stream included.
    """

    WARMUP_CALLS = 3

    def __init__(self, update: Callable[..., Any], state: Sequence[nn.Module | torch.optim.Optimizer]) -> None:
        self.update = update
        self.state = state
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if self.graph is None:
            self.capture(inputs)
        for static, new in zip(self.inputs, inputs):
            static.copy_(new)
        self.graph.replay()
        return self.output

    def capture(self, inputs: Sequence[torch.Tensor]) -> None:
        self.inputs = [x.clone() for x in inputs]
        saved, rng = snapshot(self.state), torch.cuda.get_rng_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_CALLS):
                self.update(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = self.update(*self.inputs)
        restore(self.state, saved)
        torch.cuda.set_rng_state(rng)  # replays draw their random numbers where eager steps would


def tensors_of(holder: nn.Module | torch.optim.Optimizer) -> list[torch.Tensor]:
    """The live tensors of a module (parameters, buffers) or an optimizer (its per-parameter state)."""
    if isinstance(holder, nn.Module):
        return list(holder.state_dict(keep_vars=True).values())
    return [value for state in holder.state.values() for value in state.values() if isinstance(value, torch.Tensor)]


def snapshot(holders: Sequence[nn.Module | torch.optim.Optimizer]) -> dict[int, torch.Tensor]:
    return {id(t): t.detach().clone() for holder in holders for t in tensors_of(holder)}


@torch.no_grad()
def restore(holders: Sequence[nn.Module | torch.optim.Optimizer], saved: dict[int, torch.Tensor]) -> None:
    """Copy the saved values back into the same tensors; state created since (an optimizer's first
    step) goes back to zero, which is what a fresh torch optimizer starts from (TF1's RMSProp, whose
    average starts at ones, makes its state before: wgan.optimizer.tf1_rmsprop)."""
    for holder in holders:
        for tensor in tensors_of(holder):
            if id(tensor) in saved:
                tensor.copy_(saved[id(tensor)])
            else:
                tensor.zero_()

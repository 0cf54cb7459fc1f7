"""What the paper's Figure 1b looks at inside a critic: the gradient of the critic loss at each
layer (left) and the critic's weights (right). `train.critic_diagnostics=true` logs both at every
evaluation; `python -m wgan.figure1 layers|weights` draws them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from wgan.arch.init import WEIGHT_LAYERS
from wgan.optimizer import weight_tensors
from wgan.sampling import frozen

LAYER_METRIC = "layer_grad_norm_{:02d}"  # layer 1 is the output layer, as the paper counts them


def layer_gradient_norms(critic: nn.Module, critic_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """||dL/da_k||_2, L the critic loss on the batch (without a Lipschitz penalty: the loss whose
    gradient flows back through the layers), a_k the input of the k-th weight layer counted from the
    output: k = 1 is the output layer's input (the last hidden activation), the largest k the data.
    A 12-hidden-layer MLP has 13 weight layers, the 13 points of the paper's plot. The norm is over
    the whole batch's activations, real and generated together."""
    layers = [m for m in critic.modules() if isinstance(m, WEIGHT_LAYERS)]
    seen: dict[nn.Module, list[torch.Tensor]] = {layer: [] for layer in layers}
    handles = [layer.register_forward_pre_hook(lambda layer, args: seen[layer].append(args[0])) for layer in layers]
    try:
        with torch.enable_grad(), frozen(critic):
            # Copies: samples drawn in inference mode cannot require gradients themselves.
            real, fake = (x.detach().clone().requires_grad_(True) for x in (real, fake))
            loss = critic_loss(critic(real).float(), critic(fake).float())
            inputs = [a for layer in layers for a in seen[layer]]
            grads = iter(torch.autograd.grad(loss, inputs, allow_unused=True))
    finally:
        for handle in handles:
            handle.remove()
    layers = [layer for layer in layers if seen[layer]]  # not those the score skips (an AC-GAN's class head)
    squares = [sum(float(g.pow(2).sum()) for g in (next(grads) for _ in seen[layer]) if g is not None)
               for layer in layers]
    return {LAYER_METRIC.format(k): squares[-k] ** 0.5 for k in range(1, len(layers) + 1)}


def critic_weights(critic: nn.Module) -> torch.Tensor:
    """Every weight of the critic's linear and convolution layers (not biases), as one flat tensor."""
    return torch.cat([w.detach().flatten().cpu() for w in weight_tensors(critic)])


def fraction_at_bound(weights: torch.Tensor, bound: float, tolerance: float = 0.01) -> float:
    """The fraction of `weights` within `tolerance` * bound of -bound or +bound (Figure 1b right:
    clipping piles them there)."""
    return float(((weights.abs() - bound).abs() <= tolerance * bound).float().mean())

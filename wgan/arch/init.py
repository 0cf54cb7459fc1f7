"""Weight initialization: the official code's (tflib's, the default) or torch's.

The networks of the official code start from tflib's initializers: every weight uniform in
+-sqrt(3) * std, every bias 0, every norm layer's scale 1 and offset 0 (`tflib/ops/linear.py`,
`conv2d.py`, `deconv2d.py`), with std by layer type:

- `Linear`: 'glorot' (the default) sqrt(2 / (fan_in + fan_out)); 'he' sqrt(2 / fan_in), which
  `gan_toy.py` and `gan_64x64.py`'s MLP generator use for their hidden ReLU layers.
- `Conv2D` with he_init (the default): sqrt(4 / (fan_in + fan_out)); without it (the residual
  shortcuts and the ResNets' 1x1 input and output convolutions) sqrt(2 / (fan_in + fan_out));
  fan_in = C_in * k * k, fan_out = C_out * k * k / stride^2.
- `Deconv2D` (always stride 2): the same, with fan_in = C_in * k * k / 4 and fan_out = C_out * k * k.
- `set_weights_stdev(0.02)`, which `gan_64x64.py`'s DCGAN generator and critic (and its no-norm and
  tanh variants) call: every weight of the network with std 0.02.

The fans are divided as the Python 2 code divides them, in integers (they are exact for every layer
of these networks but a stride-2 convolution to an odd channel count times k^2 not divisible by 4).

torch's defaults differ (std 1/sqrt(3 fan_in), non-zero biases) and matter: with them a depth-20
unnormalized ReLU network of Table 1's space starts with a constant output (generator output std
across z ~1e-8) and a vanishing critic input gradient, against ~1e-2 and ~0.3 with tflib's.
`arch.init=torch` keeps torch's defaults.

Builders mark the layers that leave tflib's per-type default with `he(layer)` (a Linear using
'he') or `glorot(layer)` (a convolution without he_init); `initialize` applies the rest.
"""
from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn

_HE = "tflib_he"  # the attribute a builder sets to leave a layer type's default


class Init(Enum):
    official = "official"  # tflib's, as the official script each architecture comes from
    torch = "torch"  # torch's own defaults


def he(layer: nn.Module) -> nn.Module:
    """A Linear layer initialized as tflib's 'he' (hidden ReLU layers of the official MLPs)."""
    setattr(layer, _HE, True)
    return layer


def glorot(layer: nn.Module) -> nn.Module:
    """A convolution initialized with tflib's he_init=False (shortcuts, 1x1 input/output layers)."""
    setattr(layer, _HE, False)
    return layer


# The layers that hold a weight matrix, the one definition the project uses: initialized here, decayed
# by the normalized critic's weight decay (wgan/optimizer.py), spectrally normalized (wgan/lipschitz.py).
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def tflib_std(layer: nn.Module) -> float:
    """The standard deviation tflib draws this layer's weights with."""
    if isinstance(layer, nn.Linear):
        fan_in, fan_out = layer.in_features, layer.out_features
        return math.sqrt(2 / fan_in) if getattr(layer, _HE, False) else math.sqrt(2 / (fan_in + fan_out))
    taps = math.prod(layer.kernel_size)
    stride_area = math.prod(layer.stride)
    if layer.transposed:
        fan_in, fan_out = layer.in_channels * taps // stride_area, layer.out_channels * taps
    else:
        fan_in, fan_out = layer.in_channels * taps, layer.out_channels * taps // stride_area
    gain = 4 if getattr(layer, _HE, True) else 2
    return math.sqrt(gain / (fan_in + fan_out))


@torch.no_grad()
def initialize(net: nn.Module, init: Init | str, std: float | None = None) -> nn.Module:
    """Initialize every weight layer of `net` as tflib does (`std`: one std for all, as
    set_weights_stdev), or leave torch's defaults with `Init.torch`. Norm layers keep torch's
    initial scale 1 and offset 0, which are tflib's too."""
    if Init(init) is Init.torch:
        return net
    for layer in net.modules():
        if isinstance(layer, WEIGHT_LAYERS):
            bound = math.sqrt(3) * (std if std is not None else tflib_std(layer))
            layer.weight.uniform_(-bound, bound)
            if layer.bias is not None:
                layer.bias.zero_()
    return net

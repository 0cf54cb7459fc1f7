"""`arch=text_resnet`: the character-level language model of the paper's Section 5.5, as the
official `gan_language.py` builds it.

- G: a linear map from the 128-d noise to `dim` channels x `seq_len` positions, `blocks` residual
  blocks, a 1x1 convolution to the vocabulary and a softmax over it at every position: 32 softmax
  vectors, fed to the critic as they are (no sampling step during training).
- D: a 1x1 convolution from the (one-hot or softmax) characters to `dim` channels, the same
  residual blocks, a linear map of the flattened features to one score. No normalization.
- A residual block: ReLU, conv, ReLU, conv (kernel `kernel`, same padding), its output scaled by
  `residual_scale` (0.3) before it is added to the input.

Every convolution, the 1x1 ones included, is tflib's Conv1D with its default he_init and biases;
the linear layers are 'glorot' (wgan.arch.init).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wgan.arch.base import ArchConfig, Architecture, Generator, Norm
from wgan.arch.init import Init
from wgan.arch.layers import PiecewiseLinear, Residual
from wgan.schema import ConfigError, bounded


@dataclass
class TextResNetArchConfig(ArchConfig):
    _target_: str = "wgan.arch.text.TextResNetArch"
    name: str = "text_resnet"
    noise_dim: int = bounded(128, ge=1)
    dim: int = bounded(512, ge=1)  # channels of every residual block
    blocks: int = bounded(5, ge=1)  # residual blocks in G and in D
    kernel: int = bounded(5, ge=1)  # the blocks' kernel size (odd: same padding)
    residual_scale: float = bounded(0.3, gt=0)  # the residual branch's factor


def sequence_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(seq_len, vocabulary) of text data; a ConfigError naming the setting for anything else."""
    if len(data_shape) != 2:
        raise ConfigError(f"arch=text_resnet needs text (sequence, vocabulary), but the dataset gives samples of "
                          f"shape {tuple(data_shape)}; use dataset=text")
    return data_shape[0], data_shape[1]


class SoftmaxSequence(nn.Module):
    """(N, vocabulary, seq_len) logits -> (N, seq_len, vocabulary): a softmax over the characters."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.transpose(1, 2).softmax(dim=-1)


class Transpose(nn.Module):
    """(N, seq_len, vocabulary) characters -> (N, vocabulary, seq_len), the layout conv1d reads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class TextResNetArch(Architecture):
    def __init__(self, name: str, noise_dim: int, dim: int, blocks: int, kernel: int, residual_scale: float,
                 init: Init | str = Init.official) -> None:
        super().__init__(name, init)
        if kernel % 2 == 0:
            raise ConfigError(f"arch.kernel={kernel}: must be odd (same padding keeps the sequence length)")
        self.noise_dim, self.dim, self.blocks, self.kernel, self.residual_scale = (
            noise_dim, dim, blocks, kernel, residual_scale)

    def residual_blocks(self) -> list[nn.Module]:
        def conv() -> nn.Conv1d:
            return nn.Conv1d(self.dim, self.dim, self.kernel, padding=self.kernel // 2)

        return [Residual(nn.Sequential(PiecewiseLinear(), conv(), PiecewiseLinear(), conv()),
                         scale=self.residual_scale) for _ in range(self.blocks)]

    def build_generator(self, data_shape: tuple[int, ...]) -> Generator:
        seq_len, vocab = sequence_shape(data_shape)
        net = nn.Sequential(
            nn.Linear(self.noise_dim, self.dim * seq_len),
            nn.Unflatten(1, (self.dim, seq_len)),
            *self.residual_blocks(),
            nn.Conv1d(self.dim, vocab, 1),
            SoftmaxSequence(),
        )
        return Generator(net, self.noise_dim)

    def build_critic(self, data_shape: tuple[int, ...], norm: Norm) -> nn.Module:
        """The official critic has no normalization layers, so `norm` changes nothing."""
        seq_len, vocab = sequence_shape(data_shape)
        return nn.Sequential(
            Transpose(),
            nn.Conv1d(vocab, self.dim, 1),
            *self.residual_blocks(),
            nn.Flatten(),
            nn.Linear(self.dim * seq_len, 1),
            nn.Flatten(0),
        )

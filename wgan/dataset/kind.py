"""What a dataset's samples are: the training loop, the evaluation and the metrics command treat
each kind in its own way (figures, the form generated samples are scored in)."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

# The channel counts of images: gray or RGB (datasets convert to one, architectures build for both).
IMAGE_CHANNELS = (1, 3)


class DataKind(Enum):
    toy = "toy"  # 2-D points
    image = "image"  # (C, H, W) images in [-1, 1]
    text = "text"  # (sequence, vocabulary): one-hot characters; generated, a softmax per position

    @property
    def figure_samples(self) -> int:
        """How many samples of the fixed noise batch each evaluation shows: points over the toy data,
        an 8x8 grid of images, lines of text."""
        return 1000 if self is DataKind.toy else 64

    def describe(self, shape: tuple[int, ...]) -> str:
        """One sample's shape in words."""
        if self is DataKind.image:
            return "x".join(map(str, shape))
        if self is DataKind.text:
            return f"{shape[0]} characters of {shape[1]}"
        return f"{shape[0]}-D points"


@runtime_checkable
class Dataset(Protocol):
    """What every `dataset` option builds, as training, evaluation and the metrics use it (the
    package's docstring says what each member means)."""

    name: str
    kind: DataKind
    shape: tuple[int, ...]

    def sample(self, n: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class LabeledDataset(Dataset, Protocol):
    """A dataset with class labels, built for a conditional model (`arch.num_classes`)."""

    num_classes: int

    def sample_labeled(self, n: int, device: torch.device | str = "cpu",
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

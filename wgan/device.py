"""The `device` setting: where training and evaluation run."""
from __future__ import annotations

from enum import Enum

import torch

from wgan.schema import ConfigError


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def resolve_device(device: Device | str) -> torch.device:
    device = Device(device)
    if device is Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device is Device.cuda and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA GPU; use device=cpu or device=auto")
    return torch.device(device.value)

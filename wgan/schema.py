"""Structured-config helpers: range-checked fields and a validator that names the offending key.

OmegaConf already rejects wrong types and unknown keys (naming the key) when a YAML option is
merged into its dataclass schema. What it cannot know is that `train.n_critic=0` or a negative
penalty weight is meaningless; fields declared with `bounded(...)` carry their valid range, and
`check_bounds` walks a composed config and reports the first value outside it (or, for a float,
not finite).
"""
from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration value that cannot be trained with; the message names the key."""


_COMPARISONS = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}


def bounded(default: Any, **bounds: float) -> Any:
    """A dataclass field whose value (or each element, for a list) must satisfy `bounds`.

    `bounds` uses the keywords ge, gt, le, lt, e.g. `bounded(5, ge=1)`.
    """
    unknown = set(bounds) - set(_COMPARISONS)
    if unknown:
        raise TypeError(f"unknown bound(s) {sorted(unknown)}; use {sorted(_COMPARISONS)}")
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"bounds": bounds})
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def _check_value(key: str, value: Any, bounds: dict[str, float]) -> None:
    values = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    for item in values:
        # OmegaConf takes `inf` and `nan` as floats; inf passes a lower bound, and NaN would be
        # reported against whichever bound it fails first.
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{key}={value} is out of range: must be a finite number")
        for name, limit in bounds.items():
            compare, symbol = _COMPARISONS[name]
            if not compare(item, limit):
                raise ConfigError(f"{key}={value} is out of range: must be {symbol} {limit}")


def check_bounds(cfg: DictConfig, prefix: str = "") -> None:
    """Raise ConfigError for the first bounded field of `cfg` (recursively) outside its range."""
    schema = OmegaConf.get_type(cfg)
    bounds_by_field = (
        {f.name: f.metadata["bounds"] for f in dataclasses.fields(schema) if "bounds" in f.metadata}
        if dataclasses.is_dataclass(schema)
        else {}
    )
    for key in cfg:
        full_key = f"{prefix}{key}"
        value = cfg[key]
        if key in bounds_by_field and value is not None:
            _check_value(full_key, value, bounds_by_field[key])
        if isinstance(value, DictConfig):
            check_bounds(value, prefix=f"{full_key}.")

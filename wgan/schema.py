"""Structured-config helpers: range-checked fields and a validator that names the offending key.

OmegaConf already rejects wrong types and unknown keys (naming the key) when a YAML option is
merged into its dataclass schema, but Hydra's `+key=value` adds a key to any node. And it cannot
know that `train.n_critic=0` or a negative penalty weight is meaningless; fields declared with
`bounded(...)` carry their valid range. `check_schema` walks a composed config and reports the first
key its schema does not have (with the close matches) or value outside its range (or, for a float,
not finite).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import operator
from enum import Enum
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


def dotted_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key of `cfg`, nested ones dotted (train.iterations)."""
    keys = []
    for key in cfg:
        keys.append(f"{prefix}{key}")
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing():
            keys += dotted_keys(node, f"{prefix}{key}.")
    return keys


def unknown_key(cfg: DictConfig, key: str, prefix: str, fields: list[str]) -> ConfigError:
    """The error for a key its schema lacks (Hydra's `+key=value` adds any), naming close matches:
    siblings, then keys anywhere whose last part is close (`+iterations` -> train.iterations)."""
    full_key = f"{prefix}{key}"
    elsewhere = [k for k in dotted_keys(cfg._get_root()) if k != full_key
                 and difflib.get_close_matches(str(key), [k.rsplit(".", 1)[-1]], cutoff=0.8)]
    siblings = [f"{prefix}{c}" for c in difflib.get_close_matches(str(key), fields, n=3, cutoff=0.75)]
    close = list(dict.fromkeys(siblings + elsewhere))[:3]
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"{full_key}: no such setting{hint} (the settings of {prefix.rstrip('.') or 'the top level'}: "
                       f"{', '.join(sorted(fields))})")


def check_schema(cfg: DictConfig, prefix: str = "") -> None:
    """Raise ConfigError for the first key of `cfg` (recursively) that its dataclass schema lacks,
    or bounded field outside its range."""
    schema = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    bounds_by_field = {name: f.metadata["bounds"] for name, f in fields.items() if "bounds" in f.metadata}
    for key in cfg:
        full_key = f"{prefix}{key}"
        if fields and key not in fields:
            raise unknown_key(cfg, key, prefix, list(fields))
        value = cfg[key]
        if key in bounds_by_field and value is not None:
            _check_value(full_key, value, bounds_by_field[key])
        if isinstance(value, DictConfig):
            check_schema(value, prefix=f"{full_key}.")


def added_at_default(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted `key` is a field of its node's schema and `cfg` holds the field's
    default. A setting the project adds defaults to what the project did before it, so a run
    written before the setting existed (its config lacks the key) is the same run at the default."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if schema is None or not dataclasses.is_dataclass(schema):
        return False
    field = {f.name: f for f in dataclasses.fields(schema)}.get(leaf)
    if field is None or field.default is dataclasses.MISSING:
        return False
    return OmegaConf.to_container(node, enum_to_str=True)[leaf] == as_plain(field.default)


def as_plain(value: Any) -> Any:
    """An enum as the name a config written with enum_to_str holds; anything else as it is."""
    return value.name if isinstance(value, Enum) else value

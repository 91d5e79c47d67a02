"""Config plumbing: validating command-line overrides and turning ConfigDicts into typed dataclasses.

The `ml_collections.ConfigDict` stops at the top-level loop; everything below it takes frozen
dataclasses. `to_dataclass` is the bridge: unknown keys and wrongly typed values are errors that
name the key, the value and what was expected.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import importlib.util
import os
import types
import typing
from typing import Any, Mapping, Sequence

import ml_collections


class ConfigKeyError(ValueError):
    """A config key does not exist or holds a value of the wrong type."""


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """Imports `path` and returns its `get_config()`; `path:arg` calls `get_config(arg)`."""
    arg = None
    if not os.path.exists(path) and ":" in path:
        path, arg = path.rsplit(":", 1)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location("_prm_jax_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigKeyError(f"config file {path} defines no get_config()")
    return module.get_config() if arg is None else module.get_config(arg)


def check_overrides(argv: Sequence[str], flag_name: str = "config") -> None:
    """Fails with the list of valid keys when a `--config.a.b=v` override names no existing key."""
    path = None
    for arg in argv:
        if arg.startswith(f"--{flag_name}="):
            path = arg.split("=", 1)[1]
    if path is None:
        return
    config = load_config_file(path)
    prefix = f"--{flag_name}."
    for arg in argv:
        if not arg.startswith(prefix):
            continue
        dotted = arg[len(prefix):].split("=", 1)[0]
        node: Any = config
        walked = []
        for part in dotted.split("."):
            keys = list(node.keys()) if isinstance(node, (ml_collections.ConfigDict, Mapping)) else []
            if part not in keys:
                where = ".".join(walked) or "the top level"
                raise ConfigKeyError(
                    f"unknown config key {dotted!r} in {arg!r}: {where} has keys {sorted(keys)}")
            node = node[part]
            walked.append(part)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple))
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def to_dataclass(cls, values: Mapping[str, Any] | ml_collections.ConfigDict, where: str, **extra):
    """Builds `cls(**values, **extra)`, naming unknown keys and mistyped values under `where`."""
    if isinstance(values, ml_collections.ConfigDict):
        values = values.to_dict()
    values = dict(values)
    values.update(extra)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigKeyError(f"{where}: unknown keys {unknown}; expected keys {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if isinstance(value, ml_collections.ConfigDict):
            value = values[name] = value.to_dict()
        if not _type_ok(value, hints[name]):
            raise ConfigKeyError(
                f"{where}.{name}={value!r} has type {type(value).__name__}; expected {hints[name]}")
        if hints[name] is float and isinstance(value, int):
            values[name] = float(value)
    return cls(**values)

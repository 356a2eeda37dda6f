"""Typed configuration: ``params.yaml`` sections loaded into dataclasses, validated strictly.

Each section configures one step of the pipeline (``rlhf/params.py`` assembles them; ``dvc.yaml``
lists the keys each stage reads). A config class is a plain dataclass whose fields carry a
``help`` text and, where it matters, bounds or choices in ``field(metadata=...)``::

    @dataclass
    class BaseConfig:
        n_layer: int = param(4, "transformer blocks", min=1)
        model: str = param("bootstrap", "'bootstrap' or a hub id / local path")

:func:`from_dict` turns a mapping into such a dataclass and raises :class:`ConfigError` that
names the dotted key, the value and what would be accepted, for an unknown key, a wrong type
or a value out of range.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params value that cannot be used; the message names key, value and what is accepted."""


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          min_exclusive: bool = False, choices: tuple | None = None, factory: Any = None) -> Any:
    """A dataclass field with documentation and validation bounds.

    ``min``/``max`` are inclusive unless ``min_exclusive``; ``choices`` restricts strings.
    Mutable defaults (lists, nested configs) are given as ``factory``.
    """
    meta = {"help": help, "min": min, "max": max, "min_exclusive": min_exclusive, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            try:
                return _coerce(value, arm, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key}: got {value!r}; expected {_type_name(tp)}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: got {value!r}; expected one of {_type_name(tp)}")
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: got {value!r}; expected {_type_name(tp)}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: got {value!r}; expected null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}; expected a mapping of {tp.__name__} keys")
        return from_dict(tp, value, prefix=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads `5e-5` (no dot) as a string; it is the number users meant
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {_type_name(tp)}")


def _check_bounds(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None or isinstance(value, bool):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)):
        below = lo is not None and (value <= lo if meta.get("min_exclusive") else value < lo)
        above = hi is not None and value > hi
        if below or above:
            lo_s = "-inf" if lo is None else f"{lo}"
            hi_s = "inf" if hi is None else f"{hi}"
            bracket = "(" if meta.get("min_exclusive") else "["
            raise ConfigError(f"{key}: got {value!r}; expected a number in {bracket}{lo_s}, {hi_s}]")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: got {value!r}; expected one of {', '.join(map(repr, choices))}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating every key (missing keys keep defaults)."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: got {data!r}; expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]!s}; accepted keys of {prefix or cls.__name__}: "
                          f"{', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        coerced = _coerce(value, hints[name], key)
        _check_bounds(coerced, fields[name].metadata, key)
        kwargs[name] = coerced
    obj = cls(**kwargs)
    post = getattr(obj, "validate", None)
    if callable(post):
        post(prefix)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain, YAML/JSON-serialisable data."""
    return dataclasses.asdict(obj)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: for logging params to a tracker."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans (``true``/``false`` only), as DVC reads ``params.yaml``.

    ``dvc exp run -S key=value`` rewrites ``params.yaml`` with ruamel.yaml (YAML 1.2), which writes the
    string ``'no'`` (``compute.mixed_precision``) without quotes; YAML 1.1 would read that back as
    ``False`` and every stage would refuse the file.
    """


ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params file (YAML 1.2 booleans: :class:`ParamsLoader`); a YAML error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    try:
        data = yaml.load(text, Loader=ParamsLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def render_yaml(obj: Any, indent: int = 0) -> str:
    """A config dataclass as YAML with each field's help text as a comment (for ``params.yaml``)."""
    lines: list[str] = []
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        help_text = f.metadata.get("help", "")
        if help_text:
            lines.append(f"{pad}# {help_text}")
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:")
            lines.append(render_yaml(value, indent + 1).rstrip("\n"))
        else:
            dumped = yaml.safe_dump({f.name: value}, allow_unicode=True, default_flow_style=True,
                                    sort_keys=False, width=1000).strip()
            if dumped.startswith("{") and dumped.endswith("}"):
                dumped = dumped[1:-1]
            lines.append(f"{pad}{dumped}")
    return "\n".join(lines) + "\n"

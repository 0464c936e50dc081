"""JSON for the FSM's values: states, observations, actions and decision records.

Dataclasses become objects tagged with ``"type"`` (the class name), so unions such as the
action types or ``PeerRecord | PeerFault`` decode unambiguously; tuples become lists; enums
their values; pydantic models (ScoreConfig) their field dict. Floats round-trip exactly.
Decoding checks types against the dataclass annotations and raises ``CodecError`` naming
the path of the offending value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError


class CodecError(ValueError):
    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path or '<root>'}: {message}")


def to_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.value if isinstance(value, Enum) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = to_json(getattr(value, f.name))
        return out
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (tuple, list)):
        return [to_json(item) for item in value]
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(tp: Any, data: Any, path: str = "") -> Any:
    """Decode ``data`` (parsed JSON) as type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if tp is type(None) or tp is None:
        if data is not None:
            raise CodecError(path, f"expected null, got {data!r}")
        return None
    if origin in (Union, types.UnionType):
        return _from_union(typing.get_args(tp), data, path)
    if origin is Literal:
        if data not in typing.get_args(tp):
            raise CodecError(path, f"expected one of {typing.get_args(tp)}, got {data!r}")
        return data
    if origin is tuple:
        return _from_tuple(typing.get_args(tp), data, path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_dataclass(tp, data, path)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        try:
            return tp.model_validate(data)
        except ValidationError as exc:
            raise CodecError(path, f"invalid {tp.__name__}: {exc.errors()[0]['msg']}") from None
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise CodecError(path, f"not a valid {tp.__name__}: {data!r}") from None
    return _from_scalar(tp, data, path)


def _from_scalar(tp: Any, data: Any, path: str) -> Any:
    if tp is float and isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    if tp in (int, str, bool) and type(data) is tp:
        return data
    raise CodecError(path, f"expected {getattr(tp, '__name__', tp)}, got {data!r}")


def _from_union(args: tuple[Any, ...], data: Any, path: str) -> Any:
    if data is None:
        if type(None) in args:
            return None
        raise CodecError(path, "null is not allowed here")
    options = [a for a in args if a is not type(None)]
    if isinstance(data, dict):
        tag = data.get("type")
        for option in options:
            if isinstance(option, type) and dataclasses.is_dataclass(option) and option.__name__ == tag:
                return _from_dataclass(option, data, path)
    for option in options:
        try:
            return from_json(option, data, path)
        except CodecError:
            continue
    raise CodecError(path, f"{data!r} matches none of {', '.join(getattr(o, '__name__', str(o)) for o in options)}")


def _from_tuple(args: tuple[Any, ...], data: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(data, list):
        raise CodecError(path, f"expected a list, got {type(data).__name__}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(from_json(args[0], item, f"{path}[{i}]") for i, item in enumerate(data))
    if len(args) != len(data):
        raise CodecError(path, f"expected {len(args)} items, got {len(data)}")
    return tuple(from_json(a, item, f"{path}[{i}]") for i, (a, item) in enumerate(zip(args, data, strict=True)))


def _from_dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise CodecError(path, f"expected an object for {cls.__name__}, got {type(data).__name__}")
    tag = data.get("type")
    if tag is not None and tag != cls.__name__:
        raise CodecError(path, f"expected type {cls.__name__}, got {tag!r}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = from_json(hints[f.name], data[f.name], f"{path}.{f.name}" if path else f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CodecError(path, f"{cls.__name__} is missing field {f.name!r}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)} - {"type"}
    if unknown:
        raise CodecError(path, f"unknown field(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise CodecError(path, f"invalid {cls.__name__}: {exc}") from None

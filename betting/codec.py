"""JSON-ready dictionaries for the frozen records of this package (``to_dict`` / ``from_dict``).

Enums are written as their values, datetimes as ISO 8601 strings (with their offset), tuples of
records as lists of dictionaries; reading follows the dataclass field types, so a record survives
``json.dumps`` / ``json.loads`` unchanged (tested).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Any, Self, Union

_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELDS: dict[type, tuple[str, ...]] = {}
"""Field names of each record class seen (``dataclasses.fields`` is slow to ask on every record)."""


def to_jsonable(value: Any) -> Any:
    """The value as plain JSON types (dict, list, str, int, float, bool, None)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(annotation: Any, value: Any) -> Any:
    """The value read back as the type ``annotation`` (the inverse of ``to_jsonable``)."""
    if value is None or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"only Optional[X] unions are supported, got {annotation}")
        return from_jsonable(options[0], value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(from_jsonable(item, v) for v in value)
    if origin is dict:
        key_type, item = args if args else (Any, Any)
        return {from_jsonable(key_type, k): from_jsonable(item, v) for k, v in value.items()}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return annotation(value)
        if annotation is datetime:
            return datetime.fromisoformat(value)
        if annotation is date:
            return date.fromisoformat(value)
        if dataclasses.is_dataclass(annotation):
            return record_from_dict(annotation, value)
        if annotation is float:
            return float(value)
    return value


def record_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A dataclass instance of ``cls`` from its ``to_jsonable`` dictionary."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: from_jsonable(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


class JsonRecord:
    """Mixin giving a frozen dataclass ``to_dict()`` and ``from_dict()`` for JSON persistence."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dictionary."""
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The record from a dictionary written by ``to_dict``."""
        return record_from_dict(cls, data)

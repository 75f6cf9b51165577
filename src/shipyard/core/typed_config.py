"""Typed configuration from plain mappings: dataclasses checked against their own declarations.

Why not pydantic here: the settings are read by every ``shipyard`` command, and importing
pydantic and pydantic-settings cost a read-only command about a third of its CPU time (issue
17). The settings are a handful of scalars in two levels, so the dataclass that declares a
field (its type, default and bounds) is the one source of truth, and this module turns
mappings of YAML values or environment strings into instances of it, with pydantic's lax
coercions (``"20"`` → 20, ``"off"`` → False) and every problem reported at once.

Declare a bounded field with ``setting(default, ge=1, le=60)``; supported types are ``bool``,
``int``, ``float``, ``str``, ``Path``, ``X | None`` of those, and nested dataclasses. A field
with ``setting(default, parse=function)`` is checked by that function instead (its annotation
is not evaluated, so its type may be imported only under ``TYPE_CHECKING``): it returns the
value or raises ``Invalid``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

#: One problem: where (field path), what is wrong, and the offending value.
Problem = tuple[tuple[str, ...], str, Any]

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_BOUND_MESSAGES = {
    "gt": "greater than",
    "ge": "greater than or equal to",
    "lt": "less than",
    "le": "less than or equal to",
}


class Invalid(ValueError):
    """What a field's ``parse`` function found wrong, paths relative to the field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(message for _, message, _ in problems))
        self.problems = problems


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    pattern: str | None = None,
    parse: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field with bounds that ``build`` checks (the ``Field(...)`` of this module)."""
    bounds = {k: v for k, v in {"gt": gt, "ge": ge, "lt": lt, "le": le}.items() if v is not None}
    metadata = {"bounds": bounds, "pattern": pattern, "parse": parse}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def build(cls: type[T], data: Any, *, extra: str = "forbid") -> tuple[T | None, list[Problem]]:
    """An instance of the dataclass ``cls`` from ``data``, or ``None`` and what is wrong.

    ``data`` maps field names to values; a value for a nested dataclass field is a mapping (or
    already an instance). Unknown keys are problems with ``extra="forbid"``, dropped with
    ``"ignore"``; nested sections always forbid them.
    """
    problems: list[Problem] = []
    value = _build(cls, data, (), extra, problems)
    return (value if not problems else None), problems


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key (a section is not replaced)."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = merge(below, value)
        else:
            merged[key] = value
    return merged


def environment_values(
    cls: type[Any], environ: typing.Mapping[str, str], *, prefix: str, nested: str = "__"
) -> dict[str, Any]:
    """The fields of ``cls`` set in ``environ``, as a mapping of strings for ``build``.

    Names are case-insensitive: ``{PREFIX}{FIELD}``, ``{PREFIX}{SECTION}{nested}{FIELD}`` for a
    field of a nested dataclass (or of a section with its own parser), or ``{PREFIX}{SECTION}``
    holding the section as a JSON object.
    Variables that name no field are ignored (the environment is shared with everything else).
    """
    hints = _hints(cls)
    lowered = prefix.lower()
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        key = name.lower()
        if not key.startswith(lowered):
            continue
        path = key[len(lowered) :].split(nested)
        section = path[0]
        if section not in hints:
            continue
        if len(path) == 1:
            structured = hints[section] is None or _is_dataclass(hints[section])
            values[section] = _json_section(raw) if structured else raw
        elif len(path) == 2 and (hints[section] is None or _is_dataclass(hints[section])):
            # A section with its own parser takes its fields as a mapping too.
            current = values.setdefault(section, {})
            if isinstance(current, dict):
                current[path[1]] = raw
    return values


def _json_section(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # reported by ``build`` as "not a mapping", with the value


def _hints(cls: type[Any]) -> dict[str, Any]:
    """Each field's type, evaluated in its module; ``None`` for a field with its own parser."""
    namespace = vars(sys.modules[cls.__module__])
    hints: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = field.type
        if field.metadata.get("parse") is not None:
            kind = None
        elif isinstance(kind, str):
            kind = eval(kind, namespace)  # noqa: S307 (an annotation of our own dataclass)
        hints[field.name] = kind
    return hints


def _is_dataclass(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _build(
    cls: type[Any], data: Any, loc: tuple[str, ...], extra: str, problems: list[Problem]
) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        problems.append((loc, f"Input should be a mapping of {cls.__name__} fields", data))
        return None
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if extra == "forbid":
        problems.extend(
            ((*loc, str(k)), "Extra inputs are not permitted", v)
            for k, v in data.items()
            if k not in known
        )
    before = len(problems)
    values: dict[str, Any] = {}
    for name, field in known.items():
        if name not in data:
            continue
        kind = hints[name]
        parse = field.metadata.get("parse")
        if parse is not None:
            values[name] = _parsed(parse, data[name], (*loc, name), problems)
        elif _is_dataclass(kind):
            values[name] = _build(kind, data[name], (*loc, name), "forbid", problems)
        else:
            values[name] = _check(kind, field, data[name], (*loc, name), problems)
    return cls(**values) if len(problems) == before else None


def _parsed(
    parse: Callable[[Any], Any], value: Any, loc: tuple[str, ...], problems: list[Problem]
) -> Any:
    try:
        return parse(value)
    except Invalid as e:
        problems.extend(((*loc, *where), message, found) for where, message, found in e.problems)
        return None


def _check(
    kind: Any,
    field: dataclasses.Field[Any],
    value: Any,
    loc: tuple[str, ...],
    problems: list[Problem],
) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        converted = _convert(kind, value)
    except ValueError as e:
        problems.append((loc, str(e), value))
        return None
    bounds: dict[str, float] = field.metadata.get("bounds", {})
    for name, bound in bounds.items():
        if not _within(name, converted, bound):
            problems.append((loc, f"Input should be {_BOUND_MESSAGES[name]} {bound}", value))
    pattern: str | None = field.metadata.get("pattern")
    if pattern is not None and not re.search(pattern, converted):
        problems.append((loc, f"String should match pattern '{pattern}'", value))
    return converted


def _within(name: str, value: float, bound: float) -> bool:
    if name == "gt":
        return value > bound
    if name == "ge":
        return value >= bound
    if name == "lt":
        return value < bound
    return value <= bound


def _convert(kind: Any, value: Any) -> Any:
    """``value`` as ``kind``, with the lax coercions a YAML or environment value needs."""
    if kind is bool:
        return _to_bool(value)
    if kind is int:
        return _to_int(value)
    if kind is float:
        return _to_float(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError("Input should be a valid string")
    if kind is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ValueError("Input is not a valid path")
    raise TypeError(f"unsupported setting type {kind!r}")  # a declaration bug, not user input


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("Input should be a valid boolean, unable to interpret input")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("Input should be a valid integer, unable to parse input as an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("Input should be a valid number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("Input should be a valid number, unable to parse string as a number")

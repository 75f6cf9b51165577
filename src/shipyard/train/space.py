"""Search spaces: the small YAML vocabulary of ranges and choices, mapped onto Optuna.

A space is written once and serves every sampler: TPE and random sample ranges and choices;
the grid sampler needs finite values, so integer ranges expand and float ranges are refused
with a message saying to list the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

    import optuna

_MAX_GRID_INTEGERS = 100


@dataclass(frozen=True)
class Choice:
    """One of a list of values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A numeric interval, integer when both bounds are integers; ``log`` samples log-uniformly."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


Param = Choice | Range


def parse_space(space: Mapping[str, Any], *, where: str) -> dict[str, Param]:
    """Turn a spec's ``space`` mapping into typed parameters.

    Raises:
        InvalidArgument: An entry is neither a non-empty list nor a ``{low, high}`` range.
    """
    return {name: _parse_param(value, f"{where}.{name}") for name, value in space.items()}


def _parse_param(value: Any, where: str) -> Param:
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidArgument(f"{where}: an empty list of choices; give at least one value")
        return Choice(tuple(value))
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"low", "high", "log"})
        if unknown or "low" not in value or "high" not in value:
            raise InvalidArgument(
                f"{where}: a range is {{low: ..., high: ..., log: true|false}}, got {value!r}"
            )
        low, high = value["low"], value["high"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise InvalidArgument(f"{where}: low and high must be numbers, got {low!r}, {high!r}")
        if low >= high:
            raise InvalidArgument(f"{where}: low ({low}) must be below high ({high})")
        log = bool(value.get("log", False))
        if log and low <= 0:
            raise InvalidArgument(f"{where}: a log range needs low > 0, got {low}")
        integer = isinstance(low, int) and isinstance(high, int)
        return Range(float(low), float(high), log=log, integer=integer)
    raise InvalidArgument(
        f"{where}: expected a list of choices or {{low, high}}, got {type(value).__name__}"
    )


def suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    """Ask the trial for a value of ``param`` under the (estimator-prefixed) ``name``."""
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.values))
    if param.integer:
        return trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(name, param.low, param.high, log=param.log)


def grid_values(name: str, param: Param) -> list[Any]:
    """Return the finite values the grid sampler walks for ``param``.

    Raises:
        InvalidArgument: A float range, or an integer range too wide to enumerate.
    """
    if isinstance(param, Choice):
        return list(param.values)
    if param.integer and param.high - param.low < _MAX_GRID_INTEGERS:
        return list(range(int(param.low), int(param.high) + 1))
    raise InvalidArgument(
        f"grid search cannot enumerate the range of {name!r}; list its values instead, "
        f"e.g. {name}: [{param.low:g}, {(param.low + param.high) / 2:g}, {param.high:g}]"
    )

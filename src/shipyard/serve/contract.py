"""The request-side input contract: a bundle's features compiled once into fast checks.

Every request body is checked column by column on plain Python lists and numpy arrays before
anything reaches the model, so a bad request is a 422 that names the field and the problem —
never a 500 from deep inside scikit-learn. Checks are compiled at model load, not per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.registry.manifest import BundleManifest

MAX_ROWS = 10_000
UnseenPolicy = Literal["error", "unknown"]
NUMERIC_TYPES = frozenset(
    {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}
)


@dataclass(frozen=True)
class Problem:
    """One reason a request cannot be scored (a 422 detail entry)."""

    field: str
    problem: str
    rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of a 422 detail."""
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.rows:
            out["rows"] = list(self.rows[:10])
        return out


class ContractError(Exception):
    """The request broke the contract; ``problems`` says where."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class _Column:
    name: str
    kind: Literal["number", "bool", "text"]
    nullable: bool
    categories: frozenset[str] | None


class InputContract:
    """Checks and converts request columns into the frame the bundle predicts on."""

    def __init__(self, manifest: BundleManifest, *, unseen: UnseenPolicy = "error") -> None:
        self.unseen = unseen
        self.columns = [
            _Column(
                f.name,
                "number" if f.dtype in NUMERIC_TYPES else "bool" if f.dtype == "bool" else "text",
                True,  # the pipeline imputes missing values; nulls are allowed
                frozenset(f.categories) if f.categories is not None else None,
            )
            for f in manifest.features
        ]
        self.names = [c.name for c in self.columns]
        self._known = set(self.names)

    def frame(self, columns: Mapping[str, Sequence[Any]]) -> pl.DataFrame:
        """Check ``columns`` (name -> values) and return them as a typed Polars frame.

        Raises:
            ContractError: Missing, unknown or mistyped columns, non-finite numbers, unseen
                categories (under the ``error`` policy), ragged or oversized input.
        """
        problems = [Problem(n, "missing column") for n in self.names if n not in columns]
        problems += [
            Problem(n, "unknown column; the model does not take it")
            for n in columns
            if n not in self._known
        ]
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if -1 in lengths:
            problems.append(Problem("inputs", "every column must be a list of values"))
        elif len(lengths) > 1:
            problems.append(Problem("inputs", f"columns have different lengths: {sorted(lengths)}"))
        elif lengths and max(lengths) > MAX_ROWS:
            problems.append(Problem("inputs", f"at most {MAX_ROWS} rows per request"))
        elif lengths == {0}:
            problems.append(Problem("inputs", "no rows to score"))
        if problems:
            raise ContractError(problems)
        series = []
        for column in self.columns:
            values = columns[column.name]
            converted, problem = _convert(column, values, self.unseen)
            if problem is not None:
                problems.append(problem)
            else:
                series.append(converted)
        if problems:
            raise ContractError(problems)
        return pl.DataFrame(series)


def _convert(
    column: _Column, values: Sequence[Any], unseen: UnseenPolicy
) -> tuple[Any, Problem | None]:
    if column.kind == "number":
        bad = [i for i, v in enumerate(values) if not _is_number(v)]
        if bad:
            return None, Problem(column.name, "expected numbers (or null)", tuple(bad))
        array = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        if np.isinf(array).any():
            rows = tuple(int(i) for i in np.flatnonzero(np.isinf(array)))
            return None, Problem(column.name, "infinity is not a valid value", rows)
        return pl.Series(column.name, array, nan_to_null=True), None
    if column.kind == "bool":
        bad = [i for i, v in enumerate(values) if v is not None and not isinstance(v, bool)]
        if bad:
            return None, Problem(column.name, "expected true/false (or null)", tuple(bad))
        return pl.Series(column.name, list(values), dtype=pl.Boolean), None
    bad = [i for i, v in enumerate(values) if v is not None and not isinstance(v, str)]
    if bad:
        return None, Problem(column.name, "expected text (or null)", tuple(bad))
    if column.categories is not None and unseen == "error":
        unknown = [i for i, v in enumerate(values) if v is not None and v not in column.categories]
        if unknown:
            shown = sorted({str(values[i]) for i in unknown})[:5]
            return None, Problem(
                column.name,
                f"categories never seen in training: {', '.join(shown)}",
                tuple(unknown),
            )
    return pl.Series(column.name, list(values), dtype=pl.String), None


def _is_number(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and not math.isnan(value)


def records_to_columns(records: Sequence[Any]) -> dict[str, list[Any]]:
    """Turn ``[{col: val}, ...]`` into ``{col: [vals]}``; a key missing in a row is null.

    Raises:
        ContractError: A record is not an object, or there are too many rows.
    """
    if not records:
        raise ContractError([Problem("inputs", "no rows to score")])
    if len(records) > MAX_ROWS:
        raise ContractError([Problem("inputs", f"at most {MAX_ROWS} rows per request")])
    bad = tuple(i for i, r in enumerate(records) if not isinstance(r, dict))
    if bad:
        raise ContractError([Problem("inputs", "every record must be an object", bad)])
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {n: [r.get(n) for r in records] for n in names}

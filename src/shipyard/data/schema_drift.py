"""Schema drift: how a source's columns changed since its last accepted dataset version.

A ``SchemaSnapshot`` is taken of each source's *harmonized* frame (after ``harmonize``, before
``combine``), without the ``_`` bookkeeping columns, and stored (as JSON) with every dataset
version. Because it is taken after harmonization, the fixes the messages suggest — a
``harmonize.rename``, ``cast`` or ``drop`` entry — make the drift go away on the next run.

``detect_drift`` reports added, removed and retyped columns; a removed and an added column of
the same type and a similar name (``RENAME_SIMILARITY``) are also reported as a likely rename.
Column order is not drift (``combine`` aligns columns by name). ``apply_drift_policy`` turns
a drift into a ``SchemaDrift`` error (``on_schema_drift: fail``) or into warnings (``adapt``:
go on; the new schema is accepted with the next dataset version).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from shipyard.core.errors import InvalidArgument, InvalidData, SchemaDrift
from shipyard.data.dtypes import type_name

if TYPE_CHECKING:
    from collections.abc import Mapping

SNAPSHOT_FORMAT = 1
RENAME_SIMILARITY = 0.5  # difflib ratio from which a removed + added pair looks renamed


@dataclass(frozen=True)
class SchemaSnapshot:
    """Ordered ``(column name, contract type name)`` pairs of one source's harmonized frame."""

    columns: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.columns]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise InvalidArgument(f"schema snapshot: duplicate columns {duplicated}")

    @classmethod
    def of(
        cls,
        frame: pl.LazyFrame | pl.DataFrame | Mapping[str, pl.DataType],
        *,
        bookkeeping: bool = False,
    ) -> SchemaSnapshot:
        """Snapshot a frame's (or schema's) columns; ``_`` columns only with ``bookkeeping``."""
        if isinstance(frame, pl.LazyFrame):
            schema: Mapping[str, pl.DataType] = frame.collect_schema()
        elif isinstance(frame, pl.DataFrame):
            schema = frame.schema
        else:
            schema = frame
        return cls(
            tuple(
                (name, type_name(dtype))
                for name, dtype in schema.items()
                if bookkeeping or not name.startswith("_")
            )
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(name for name, _ in self.columns)

    @property
    def types(self) -> dict[str, str]:
        """Column name → type name, in column order."""
        return dict(self.columns)

    def to_json(self) -> str:
        """The snapshot as JSON: ``{"format": 1, "columns": [{"name", "type"}, ...]}``."""
        columns = [{"name": name, "type": dtype} for name, dtype in self.columns]
        return json.dumps({"format": SNAPSHOT_FORMAT, "columns": columns})

    @classmethod
    def from_json(cls, text: str | bytes) -> SchemaSnapshot:
        """Read a snapshot written by ``to_json``.

        Raises:
            InvalidData: The text is not a snapshot of a format this version reads.
        """
        try:
            data: Any = json.loads(text)
            if data["format"] != SNAPSHOT_FORMAT:
                raise InvalidData(
                    f"schema snapshot format {data['format']!r} is not supported (this version "
                    f"reads format {SNAPSHOT_FORMAT}); upgrade shipyard"
                )
            columns = tuple((str(c["name"]), str(c["type"])) for c in data["columns"])
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, InvalidData):
                raise
            raise InvalidData(f"stored schema snapshot is malformed: {exc!r}") from exc
        return cls(columns)


@dataclass(frozen=True)
class Retyped:
    """A column whose type changed."""

    column: str
    old: str
    new: str


@dataclass(frozen=True)
class Drift:
    """How the current schema differs from the previous one.

    ``added`` and ``removed`` list every column that appeared or disappeared; ``renamed`` pairs
    ``(old, new)`` among them that have the same type and so were probably renamed.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[Retyped, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (old, new), likely renames
    types: Mapping[str, str] = field(default_factory=dict)  # type of each added/removed column

    @property
    def is_empty(self) -> bool:
        """True when the columns and their types are unchanged."""
        return not (self.added or self.removed or self.retyped)

    def problems(self, source: str) -> list[tuple[str, str]]:
        """``(what changed, how to fix it)`` pairs, one per change (a rename counts once)."""
        old_renamed = {old for old, _ in self.renamed}
        new_renamed = {new for _, new in self.renamed}
        where = f"sources.{source}.harmonize"
        problems = [
            (
                f"column {old!r} disappeared and {new!r} appeared",
                f"if it was renamed, add `{new}: {old}` under {where}.rename",
            )
            for old, new in self.renamed
        ]
        problems += [
            (
                f"column {name!r} ({self.types.get(name)}) disappeared",
                f"if it was renamed upstream, map the new name to {name!r} under {where}.rename",
            )
            for name in self.removed
            if name not in old_renamed
        ]
        problems += [
            (
                f"column {name!r} ({self.types.get(name)}) appeared",
                f"to ignore it, add it to {where}.drop",
            )
            for name in self.added
            if name not in new_renamed
        ]
        problems += [
            (
                f"column {r.column!r} changed type from {r.old} to {r.new}",
                f"to keep {r.old}, add `{r.column}: {r.old}` under {where}.cast "
                "(values that do not parse are quarantined)",
            )
            for r in self.retyped
        ]
        return problems


def detect_drift(previous: SchemaSnapshot | None, current: SchemaSnapshot) -> Drift:
    """Compare a source's current schema with the last accepted one (``None``: first run)."""
    if previous is None:
        return Drift()
    old, new = previous.types, current.types
    removed = tuple(name for name in previous.names if name not in new)
    added = tuple(name for name in current.names if name not in old)
    retyped = tuple(
        Retyped(name, old[name], dtype)
        for name, dtype in current.columns
        if name in old and old[name] != dtype
    )
    types = {name: old[name] for name in removed} | {name: new[name] for name in added}
    renamed = _renames(removed, added, types)
    return Drift(added=added, removed=removed, retyped=retyped, renamed=renamed, types=types)


def _renames(
    removed: tuple[str, ...], added: tuple[str, ...], types: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """Pair removed and added columns of the same type and similar names, most similar first."""
    scored = (
        (-difflib.SequenceMatcher(None, old, new).ratio(), i, j)
        for i, old in enumerate(removed)
        for j, new in enumerate(added)
        if types[old] == types[new]
    )
    candidates = sorted(c for c in scored if -c[0] >= RENAME_SIMILARITY)
    pairs: dict[int, int] = {}
    for _, i, j in candidates:
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    return tuple((removed[i], added[j]) for i, j in sorted(pairs.items()))


def apply_drift_policy(drift: Drift, policy: Literal["fail", "adapt"], *, source: str) -> list[str]:
    """Act on a drift: raise under ``fail``, return one warning per change under ``adapt``.

    Raises:
        SchemaDrift: ``policy`` is ``fail`` and the drift is not empty; the message names the
            source and each column, with the fix.
        InvalidArgument: ``policy`` is neither ``fail`` nor ``adapt``.
    """
    if policy not in ("fail", "adapt"):
        raise InvalidArgument(f"on_schema_drift {policy!r}: use fail or adapt")
    problems = drift.problems(source)
    if policy == "adapt":
        return [
            f"source {source!r}: {what}; going on (on_schema_drift: adapt) — {fix}"
            for what, fix in problems
        ]
    if problems:
        raise SchemaDrift(
            "\n".join(
                f"source {source!r}: {what} — {fix}, or set on_schema_drift: adapt"
                for what, fix in problems
            )
        )
    return []

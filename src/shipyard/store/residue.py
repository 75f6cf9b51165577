"""Metadata rows that still hold a subject's value after an erasure, found without a list.

Used by ``shipyard.store.erasure.ErasureStore``; the subject is anything shaped like
``Subject`` below (``shipyard.privacy.subject.Subject``), so the store needs no privacy code.

Every text and JSON column of every table the metadata store defines is searched (the tables
come from the SQLAlchemy metadata, so a table added later is searched too): a SQL ``LIKE``
narrows the rows, then ``Subject.in_text`` decides. What is found is either removed, for the
tables whose rows are measurements derived from served data (monitoring observations and
alerts, ``ERASABLE``), or reported for a person to handle: a run param, a note, an audit
detail (the audit chain cannot be edited without breaking it, and it is written never to hold
a value in clear).

On SQLite a deleted row's bytes stay in the file's free pages and in the write-ahead log until
they are reused; ``compact`` rewrites the file (``VACUUM``) and empties the log, so the value is
gone from the bytes on disk too. PostgreSQL keeps dead rows until ``VACUUM FULL``: its operators
run that (docs/data.md).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

import shipyard.store.sql  # noqa: F401 - registers every table on the shared metadata
from shipyard.store.models import full_metadata

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Tables whose rows are derived measurements: an erasure deletes the rows that hold a subject.
ERASABLE = ("monitor_observations", "monitor_alerts")
_TEXT_TYPES = (sa.String, sa.Text, sa.JSON)


class Subject(Protocol):
    """What the store needs of a data subject (``shipyard.privacy.subject.Subject`` is one)."""

    @property
    def candidates(self) -> Sequence[str]:
        """The texts that identify the subject (its value, then its pseudonym)."""
        ...

    def in_text(self, text: str | None) -> bool:
        """Whether ``text`` holds one of the candidates."""
        ...

    def in_json(self, document: object) -> bool:
        """Whether a string of the JSON ``document`` holds one of the candidates."""
        ...


def rows_holding(connection: sa.Connection, subject: Subject) -> dict[str, list[tuple[Any, ...]]]:
    """Return ``"table.column"`` -> primary keys of the rows whose text there holds ``subject``."""
    found: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    needles = _needles(subject)
    for table in full_metadata().sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, _TEXT_TYPES)]
        if not columns:
            continue
        keys = list(table.primary_key.columns)
        texts = [sa.cast(c, sa.Text) for c in columns]
        narrow = sa.or_(*(t.contains(n, autoescape=True) for t in texts for n in needles))
        query = sa.select(*keys, *texts).where(narrow)
        for row in connection.execute(query):
            key = tuple(row[: len(keys)])
            for column, text in zip(columns, row[len(keys) :], strict=True):
                if _holds(subject, text, json_column=isinstance(column.type, sa.JSON)):
                    found[f"{table.name}.{column.name}"].append(key)
    return dict(found)


def delete_erasable(
    connection: sa.Connection, found: dict[str, list[tuple[Any, ...]]]
) -> dict[str, int]:
    """Delete the rows of ``ERASABLE`` tables in ``found``; return rows deleted per table."""
    deleted: dict[str, int] = {}
    for name in ERASABLE:
        table = full_metadata().tables[name]
        keys = {k for where, ks in found.items() if where.split(".")[0] == name for k in ks}
        if not keys:
            continue
        (key_column,) = table.primary_key.columns  # both have a one-column key
        ids = sorted(k[0] for k in keys)
        for start in range(0, len(ids), 500):
            connection.execute(sa.delete(table).where(key_column.in_(ids[start : start + 500])))
        deleted[name] = len(ids)
    return deleted


def residual(found: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    """What ``delete_erasable`` leaves: ``"table.column"`` -> rows, for a person to handle."""
    return {
        where: len(keys)
        for where, keys in sorted(found.items())
        if where.split(".")[0] not in ERASABLE
    }


def compact(engine: sa.Engine) -> bool | None:
    """Rewrite a SQLite store so deleted rows leave no bytes behind; None for other stores.

    Runs ``VACUUM`` (a fresh copy of the live rows) and truncates the write-ahead log, outside
    any transaction. Returns False when another process held the store so that either could
    not finish (old pages may then remain until the next erasure or ``VACUUM``); the erasure
    itself is complete either way.
    """
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = cursor.fetchone()
        cursor.close()
    except sqlite3.OperationalError:  # locked or busy past the timeout: reported, not raised
        return False
    finally:
        raw.close()
    return not (busy and busy[0])


def _needles(subject: Subject) -> list[str]:
    """The candidates as stored text: raw, and as JSON escapes them (non-ASCII, quotes)."""
    needles: list[str] = []
    for candidate in subject.candidates:
        for form in (candidate, json.dumps(candidate)[1:-1]):
            if form not in needles:
                needles.append(form)
    return needles


def _holds(subject: Subject, text: object, *, json_column: bool) -> bool:
    """Whether a stored text holds the subject; in a JSON document, only its strings count.

    A number in a JSON document (a count, a threshold) cannot be told from an id, so a subject
    ``7`` is not "found" in ``{"rows": 7}``; an id stored as a JSON string is.
    """
    if not isinstance(text, str):
        return False
    if not json_column:
        return subject.in_text(text)
    try:
        document = json.loads(text)
    except ValueError:
        return subject.in_text(text)
    return subject.in_json(document)

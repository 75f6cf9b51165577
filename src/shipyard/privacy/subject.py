"""The data subject an erasure looks for, and the one way each kind of holder is matched.

Every place that can hold a subject's value is searched through a ``Subject``, so "does this
hold the person?" has one answer per shape of data:

* **a column** (dataset versions, the inputs of a logged request): the value, as text, equals
  the subject's value or its pseudonym (``row_match``, ``is_value``); exact, as erasure has
  always matched;
* **raw text** (a line no connector could parse, a label, a request id, a JSON blob in the
  metadata store): the value or its pseudonym occurs with no letter or digit directly before
  or after it (``in_text``, ``text_pattern``). ``ann@example.com`` is found in
  ``x,ann@example.com,3`` but not in ``joann@example.com``; ``7`` is found in ``7,foo`` but not
  in ``17``. Raw text has no columns, so a line holding the value in any field is matched: it
  errs on the side of erasing.

A ``Subject`` holds the value in memory only; what is recorded anywhere is its ``digest``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.pseudonym import pseudonym, subject_digest


@dataclass(frozen=True, slots=True)
class Subject:
    """One data subject: the column naming them and the texts that stand for them.

    Attributes:
        column: The column identifying the subject (``email``, ``customer_id``).
        candidates: The value, then its pseudonym when a key was given.
        digest: ``hmac-sha256:<hex>`` under the key, else ``sha256:<hex>``; never the value.
    """

    column: str
    candidates: tuple[str, ...]
    digest: str
    _regex: re.Pattern[str] = field(repr=False, compare=False)

    def __repr__(self) -> str:
        """Show the column and digest only: the value must not reach a log or a traceback."""
        return f"Subject(column={self.column!r}, digest={self.digest!r})"

    @classmethod
    def of(cls, column: str, value: str, key: bytes | None = None) -> Subject:
        """Build the subject ``column == value`` (and its pseudonym under ``key``).

        Raises:
            InvalidArgument: An empty column or value.
        """
        if not isinstance(column, str) or not column or not isinstance(value, str) or not value:
            raise InvalidArgument("erasure needs a subject column and a non-empty value")
        candidates = (value,) if key is None else (value, pseudonym(value, key))
        return cls(column, candidates, subject_digest(value, key), re.compile(_pattern(candidates)))

    @property
    def text_pattern(self) -> str:
        """The regular expression of ``in_text``, for Polars' ``str.contains``."""
        return self._regex.pattern

    def row_match(self) -> pl.Expr:
        """True where the subject column, as text, is one of the candidates (never null).

        Raises (when evaluated):
            polars.exceptions.InvalidOperationError: The column cannot be cast to text.
        """
        return pl.col(self.column).cast(pl.String).is_in(list(self.candidates)).fill_null(False)

    def text_match(self, column: str) -> pl.Expr:
        """True where the text column ``column`` holds the subject (see ``in_text``)."""
        return pl.col(column).str.contains(self.text_pattern).fill_null(False)

    def in_text(self, text: str | None) -> bool:
        """Whether ``text`` holds a candidate with no letter or digit directly around it."""
        return text is not None and self._regex.search(text) is not None

    def in_json(self, document: object) -> bool:
        """Whether a parsed JSON document holds the subject in one of its strings (keys too).

        Numbers are not searched: a count or a threshold cannot be told from an id, so a
        subject ``7`` is not found in ``{"rows": 7}``. Compare cells with ``is_value``.
        """
        return any(self.in_text(s) for s in json_strings(document))

    def is_value(self, value: object) -> bool:
        """Whether a JSON value (a cell of a logged request) is the subject, as text."""
        return value_text(value) in self.candidates


def json_strings(value: object) -> list[str]:
    """Every string in a parsed JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*json_strings(k), *json_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return []


def value_text(value: object) -> str | None:
    """A JSON scalar as Polars would cast it to text (``True`` is ``true``, ``7.0`` is ``7.0``)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _escape(text: str) -> str:
    """Escape what is special to Python's ``re`` or Rust's ``regex`` (Polars), and only that.

    ``re.escape`` also escapes spaces, which Rust's engine refuses outside verbose mode.
    """
    return "".join(f"\\{c}" if c in _META else c for c in text)


def _pattern(candidates: tuple[str, ...]) -> str:
    alternatives = "|".join(_escape(c) for c in candidates)
    # No lookaround in Polars' regex engine: the neighbours are matched, not asserted.
    return f"(?:^|[^0-9A-Za-z])(?:{alternatives})(?:[^0-9A-Za-z]|$)"

"""k-anonymity and l-diversity over declared quasi-identifiers, and generalizing until k holds.

Rows that share every quasi-identifier value (age band, postcode prefix, sex, ...) form an
*equivalence class*: someone who knows a person's quasi-identifiers can narrow them down to
that class and no further. The data is **k-anonymous** when every class has at least ``k``
rows, and **(distinct) l-diverse** for a sensitive column when every class holds at least
``l`` distinct sensitive values (so knowing the class does not reveal the value). Nulls are
values like any other here: all rows with a null postcode share a class, and a null
diagnosis counts as one distinct value.

``generalize_until_k`` follows the greedy recipe of Datafly (Sweeney, 2002): while some class
is smaller than ``k``, coarsen the quasi-identifier with the most distinct values by one rung
of its ladder; when no rung is left, suppress (drop) the rows of the classes still too small,
and count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.generalize import GeneralizeRule, generalize_expr, parse_rule

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_SIZE, _DISTINCT = "__shipyard_size", "__shipyard_distinct"


class EquivalenceClass(NamedTuple):
    """One class: its quasi-identifier values and how many rows share them."""

    values: dict[str, Any]
    size: int


@dataclass(frozen=True, slots=True)
class KAnonymityReport:
    """How identifiable the rows are through their quasi-identifiers.

    Attributes:
        quasi_identifiers: The columns that form the classes.
        sensitive: The sensitive column, when l-diversity was measured.
        rows: Rows examined.
        k: Size of the smallest class (0 when there are no rows).
        l: Distinct sensitive values in the least diverse class; None without ``sensitive``
            (0 when there are no rows).
        classes: Number of classes.
        smallest: The smallest classes, smallest first (ties by their values).
        class_sizes: ``(size, number of classes of that size)``, by size ascending.
    """

    quasi_identifiers: tuple[str, ...]
    sensitive: str | None
    rows: int
    k: int
    l: int | None  # noqa: E741 - the letter the literature uses
    classes: int
    smallest: tuple[EquivalenceClass, ...]
    class_sizes: tuple[tuple[int, int], ...]

    def rows_at_risk(self, k_target: int) -> int:
        """Return how many rows sit in classes smaller than ``k_target``."""
        return sum(size * count for size, count in self.class_sizes if size < k_target)

    def classes_below(self, k_target: int) -> int:
        """Return how many classes are smaller than ``k_target``."""
        return sum(count for size, count in self.class_sizes if size < k_target)

    def satisfies(self, k: int, l: int | None = None) -> bool:  # noqa: E741
        """Tell whether every class has ``k`` rows (and ``l`` distinct sensitive values)."""
        if self.rows and self.k < k:
            return False
        return l is None or not self.rows or (self.l is not None and self.l >= l)


@dataclass(frozen=True, slots=True)
class AppliedStep:
    """One thing ``generalize_until_k`` did.

    Attributes:
        action: ``generalize`` (a column moved one rung up its ladder) or ``suppress``.
        column: The generalized column; None for ``suppress``.
        rule: The rule now applied to that column (to its original values).
        level: The rung reached, counting from 1.
        rows_suppressed: Rows dropped (``suppress`` only).
    """

    action: Literal["generalize", "suppress"]
    column: str | None = None
    rule: GeneralizeRule | None = None
    level: int | None = None
    rows_suppressed: int = 0


def k_anonymity(
    frame: pl.DataFrame | pl.LazyFrame,
    quasi_identifiers: Sequence[str],
    *,
    sensitive: str | None = None,
    n_smallest: int = 10,
) -> KAnonymityReport:
    """Measure k (and l, with ``sensitive``) of ``frame`` over its quasi-identifiers.

    Args:
        frame: The rows.
        quasi_identifiers: Columns an outsider could know (age, postcode, sex, ...).
        sensitive: A column whose value the classes must not give away.
        n_smallest: How many of the smallest classes to list.

    Raises:
        InvalidArgument: No quasi-identifier, a column not in the frame, or ``sensitive``
            among the quasi-identifiers.
    """
    qis = _check_columns(frame, quasi_identifiers, sensitive)
    aggs = [pl.len().alias(_SIZE)]
    if sensitive is not None:
        aggs.append(pl.col(sensitive).n_unique().alias(_DISTINCT))
    classes = frame.lazy().group_by(qis).agg(aggs).collect()
    rows = int(classes[_SIZE].sum()) if classes.height else 0
    k = int(classes[_SIZE].min()) if classes.height else 0  # type: ignore[arg-type]
    l_value: int | None = None
    if sensitive is not None:
        l_value = int(classes[_DISTINCT].min()) if classes.height else 0  # type: ignore[arg-type]
    smallest = classes.sort([_SIZE, *qis], nulls_last=True).head(n_smallest)
    histogram = classes.group_by(_SIZE).agg(pl.len().alias("n")).sort(_SIZE)
    return KAnonymityReport(
        quasi_identifiers=tuple(qis),
        sensitive=sensitive,
        rows=rows,
        k=k,
        l=l_value,
        classes=classes.height,
        smallest=tuple(
            EquivalenceClass({q: row[q] for q in qis}, int(row[_SIZE]))
            for row in smallest.iter_rows(named=True)
        ),
        class_sizes=tuple((int(s), int(n)) for s, n in histogram.iter_rows()),
    )


def generalize_until_k(
    frame: pl.DataFrame | pl.LazyFrame,
    quasi_identifiers: Sequence[str],
    k: int,
    ladders: Mapping[str, Sequence[GeneralizeRule | dict[str, Any]]],
    *,
    sensitive: str | None = None,
) -> tuple[pl.DataFrame, list[AppliedStep], KAnonymityReport]:
    """Coarsen quasi-identifiers rung by rung until the frame is ``k``-anonymous.

    Each rung of a column's ladder is applied to the column's original values (so a ladder
    reads ``[band 5, band 10, band 20, redact]``, each coarser than the one before). At every
    step the quasi-identifier with the most distinct values (ties: the first listed) that still
    has a rung left moves up one. When every ladder is spent and some class is still below
    ``k``, its rows are suppressed (dropped) and counted in the last step.

    Args:
        frame: The rows (read once into memory).
        quasi_identifiers: The columns forming the classes.
        k: The class size to reach (1 or more).
        ladders: For each quasi-identifier that may be generalized, its rules, finest first.
        sensitive: Measured for l-diversity in the returned report (not enforced).

    Returns:
        The generalized frame (without suppressed rows), the steps taken in order, and the
        report on the result.

    Raises:
        InvalidArgument: ``k`` below 1, a ladder for a column that is not a quasi-identifier,
            a rule that is invalid or does not fit its column, or a bad column name.
    """
    if k < 1:
        raise InvalidArgument(f"k must be at least 1, got {k}")
    qis = _check_columns(frame, quasi_identifiers, sensitive)
    strays = sorted(set(ladders) - set(qis))
    if strays:
        raise InvalidArgument(
            f"ladders given for {', '.join(strays)}, which are not quasi-identifiers "
            f"({', '.join(qis)})"
        )
    rungs = {c: [parse_rule(r) for r in ladders.get(c, ())] for c in qis}
    original = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    schema = original.schema
    applied: dict[str, pl.Expr] = {}
    level = dict.fromkeys(qis, 0)
    steps: list[AppliedStep] = []
    current = original
    report = k_anonymity(current, qis, sensitive=sensitive)
    while report.rows and report.k < k:
        open_columns = [c for c in qis if level[c] < len(rungs[c])]
        if not open_columns:
            break
        distinct = current.select(pl.col(c).n_unique() for c in open_columns).row(0)
        column = open_columns[max(range(len(open_columns)), key=lambda i: distinct[i])]
        rule = rungs[column][level[column]]
        level[column] += 1
        applied[column] = generalize_expr(column, rule, schema[column])
        current = original.with_columns(list(applied.values()))
        steps.append(AppliedStep("generalize", column, rule, level[column]))
        report = k_anonymity(current, qis, sensitive=sensitive)
    if report.rows and report.k < k:
        kept = current.filter(pl.len().over(qis) >= k)
        steps.append(AppliedStep("suppress", rows_suppressed=current.height - kept.height))
        current = kept
        report = k_anonymity(current, qis, sensitive=sensitive)
    return current, steps, report


def _check_columns(
    frame: pl.DataFrame | pl.LazyFrame, quasi_identifiers: Sequence[str], sensitive: str | None
) -> list[str]:
    if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
        raise InvalidArgument(f"expected a Polars frame, not {type(frame).__name__}")
    qis = list(dict.fromkeys(quasi_identifiers))
    if not qis:
        raise InvalidArgument("name at least one quasi-identifier column")
    names = frame.lazy().collect_schema().names()
    missing = [c for c in [*qis, *([sensitive] if sensitive else [])] if c not in names]
    if missing:
        raise InvalidArgument(
            f"column(s) {', '.join(map(repr, missing))} not in the data "
            f"(columns: {', '.join(names)})"
        )
    if sensitive is not None and sensitive in qis:
        raise InvalidArgument(
            f"{sensitive!r} is both a quasi-identifier and the sensitive column; pick one"
        )
    return qis

"""Who sees raw personal data when rows are shown: one decision and one mask for every path.

Issue 7 tags personal data at ingestion and has the tags "enforced by roles": a
``data-scientist`` reads pseudonymized data, only a holder of ``data.read_pii`` (``admin``)
reads raw PII. Every command that prints or exports dataset rows asks ``decide`` what the
acting identity may see and shows ``Exposure.apply(frame)``; the caller writes the audit entry
(``Exposure.denied``, ``Exposure.revealed``), so the rule lives here once and the commands
cannot drift apart.

**Which columns are raw.** A column whose tag is a PII kind (``email``, ``phone``,
``payment_card``, ...). Columns tagged ``pseudonymized`` or ``masked`` were treated by the
privacy step and are shown as stored. A rejected-lines version's ``_line`` column holds the
whole input line as read (see ``shipyard.data.connectors.base.REJECTED_SCHEMA``): no detector
has looked at it and the version carries no tags (its columns are not the source's), so it
always counts as raw; whatever PII the source holds is inside that text.

**The mask.** Each non-null value becomes ``<kind>``: a constant, so neither the value nor its
length shows; nulls stay null, so missing values still show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from shipyard.privacy.step import MASKED, PSEUDONYMIZED
from shipyard.security.permissions import Action, check

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.security.identities import Identity

#: Tags of columns the privacy step already treated: their stored values are not raw PII.
TREATED = frozenset({PSEUDONYMIZED, MASKED})
#: The raw input text of a line a connector could not read.
RAW_LINE = "_line"
#: The kind shown for ``RAW_LINE`` when it is masked.
RAW_LINE_KIND = "raw line"


def raw_pii_columns(tags: Mapping[str, str], columns: Sequence[str]) -> dict[str, str]:
    """Return the columns among ``columns`` that hold raw personal data, with their kind.

    Args:
        tags: The version's personal-data tags by column (``pii_tags``).
        columns: The columns about to be shown, in order.
    """
    raw = {c: kind for c, kind in tags.items() if kind not in TREATED}
    if RAW_LINE not in tags:
        raw[RAW_LINE] = RAW_LINE_KIND
    return {c: raw[c] for c in columns if c in raw}


@dataclass(frozen=True, slots=True)
class Exposure:
    """What one identity may see of one set of columns.

    Attributes:
        raw: Columns holding raw personal data, with their kind, in display order.
        reveal: True when the identity holds ``data.read_pii`` (their values are shown).
        denied: True when raw values were asked for explicitly and the identity may not read
            them: the caller audits the attempt and refuses.
        reason: Why, from the permission check (for messages and the audit detail).
    """

    raw: dict[str, str] = field(default_factory=dict)
    reveal: bool = False
    denied: bool = False
    reason: str = ""

    @property
    def revealed(self) -> tuple[str, ...]:
        """Columns whose raw values are shown (each showing of rows is audited)."""
        return tuple(self.raw) if self.reveal else ()

    @property
    def masked(self) -> tuple[str, ...]:
        """Columns whose values are replaced by ``<kind>``."""
        return () if self.reveal else tuple(self.raw)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Return ``frame`` with the masked columns' non-null values replaced by ``<kind>``."""
        hidden = [c for c in self.masked if c in frame.columns]
        if not hidden:
            return frame
        return frame.with_columns(
            pl.when(pl.col(c).is_null())
            .then(pl.lit(None, dtype=pl.String))
            .otherwise(pl.lit(f"<{self.raw[c]}>"))
            .alias(c)
            for c in hidden
        )


def decide(
    identity: Identity,
    tags: Mapping[str, str],
    columns: Sequence[str],
    *,
    raw_requested: bool = False,
) -> Exposure:
    """Decide what ``identity`` sees of ``columns`` of a version tagged ``tags``.

    Args:
        identity: Who is reading.
        tags: The version's personal-data tags (``shipyard.data.datasets.pii_tags``).
        columns: The columns about to be shown.
        raw_requested: The caller asked for raw values explicitly (``--raw-pii``): without
            ``data.read_pii`` the answer is ``denied`` instead of a quiet mask, whether or not
            these columns hold any.

    Returns:
        The exposure; apply it to the frame before showing it.
    """
    decision = check(identity, Action.DATA_READ_PII)
    return Exposure(
        raw=raw_pii_columns(tags, columns),
        reveal=decision.allowed,
        denied=raw_requested and not decision.allowed,
        reason=decision.reason,
    )

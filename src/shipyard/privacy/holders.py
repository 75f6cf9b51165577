"""Files outside the dataset store that hold a subject: the seam erasure reaches them through.

The prediction log and its feedback labels are files whose format the monitoring package owns
(``shipyard.monitor.logfiles``), a layer above this one. Erasure does not import it: it takes
``SubjectHolder`` objects, and ``shipyard.monitor.erasure.log_holders`` builds the ones for a
project's logs (``shipyard erase`` passes them; so must a Python caller, see docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shipyard.privacy.subject import Subject


@dataclass(frozen=True, slots=True)
class HolderResult:
    """What one holder found (dry run) or changed.

    Attributes:
        kind: What it holds: ``prediction_log``, ``feedback``.
        location: Where (a folder).
        files: Files that held the subject: rewritten without it, or deleted when nothing
            else was left in them.
        rows: Rows removed.
        rows_trimmed: Rows kept with the subject's part cut out (a logged request that
            scored several rows, one of them the subject's).
    """

    kind: str
    location: str
    files: int
    rows: int
    rows_trimmed: int = 0

    @property
    def touched(self) -> bool:
        """Whether it held the subject at all."""
        return bool(self.files)

    def to_dict(self) -> dict[str, object]:
        """Plain values, for the audit detail (a location is a path, never a value)."""
        return {
            "kind": self.kind,
            "location": self.location,
            "files": self.files,
            "rows": self.rows,
            "rows_trimmed": self.rows_trimmed,
        }


class SubjectHolder(Protocol):
    """Something that can find and remove a subject's records in files it owns."""

    def erase(self, subject: Subject, *, dry_run: bool) -> Sequence[HolderResult]:
        """Remove every record of ``subject`` (count them only, with ``dry_run``).

        Must be safe to repeat: a second call after a complete one finds nothing; after an
        interrupted one, it finishes the work.
        """
        ...

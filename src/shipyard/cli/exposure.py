"""The one path by which CLI commands show dataset rows: raw PII masked or audited.

Every command that prints rows of a dataset version (``data show``, ``data quarantine``,
``privacy kanon``'s smallest classes) passes them through ``visible_rows``. It asks
``shipyard.privacy.exposure`` what the acting identity may see, then:

- without ``data.read_pii`` the raw personal-data columns are masked; asking for them with
  ``--raw-pii`` is refused (exit 2) and audited as ``denied``;
- with it, the rows are shown as stored and ONE audit entry per command records the read:
  who, ``data.read_pii``, the version and its raw columns, when, from where, ``ok``; never a
  value (issue 7: "every read of raw PII: who, what, when, from where, outcome").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.errors import PermissionDenied

if TYPE_CHECKING:
    import polars as pl

    from shipyard.privacy.exposure import Exposure
    from shipyard.security.identities import Identity
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.workspace import Workspace

RAW_PII_HELP = (
    "Show raw personal data (needs data.read_pii, i.e. admin); fail instead of masking it."
)


def audit_object(dataset_id: str, columns: tuple[str, ...] | list[str]) -> str:
    """The audit entry's object: ``dataset:<id>`` and the raw columns (``/email,phone``)."""
    return f"dataset:{dataset_id}" + (f"/{','.join(columns)}" if columns else "")


def visible_rows(
    workspace: Workspace,
    identity: Identity,
    version: DatasetVersion,
    frame: pl.DataFrame,
    *,
    command: str,
    raw_pii: bool = False,
) -> tuple[pl.DataFrame, Exposure]:
    """Return ``frame`` as ``identity`` may see it, auditing a raw-PII read or a refused one.

    Args:
        workspace: The open workspace (its security store takes the audit entry).
        identity: Who the command acts as (``shipyard.cli.access.acting_identity``).
        version: The version the rows come from (its tags say which columns are raw).
        frame: The rows about to be shown.
        command: The command, for the audit detail (``data show``).
        raw_pii: The user asked for raw values explicitly (``--raw-pii``).

    Raises:
        PermissionDenied: ``raw_pii`` was asked for without ``data.read_pii`` (audited).
    """
    from shipyard.cli.access import record
    from shipyard.data.datasets import pii_tags
    from shipyard.privacy.exposure import decide
    from shipyard.security.permissions import Action

    exposure = decide(identity, pii_tags(version), frame.columns, raw_requested=raw_pii)
    if exposure.denied:
        record(
            workspace,
            identity,
            Action.DATA_READ_PII,
            audit_object(version.dataset_id, list(exposure.raw)),
            outcome="denied",
            detail={"command": command, "columns": exposure.raw},
        )
        raise PermissionDenied(
            f"permission denied: --raw-pii needs {Action.DATA_READ_PII} ({exposure.reason}); "
            "leave the option off to see the rows with personal data masked, or ask an admin"
        )
    if exposure.revealed and frame.height:
        record(
            workspace,
            identity,
            Action.DATA_READ_PII,
            audit_object(version.dataset_id, exposure.revealed),
            detail={"command": command, "columns": exposure.raw, "rows": frame.height},
        )
    return exposure.apply(frame), exposure


def masked_note(exposure: Exposure) -> str | None:
    """A line telling the reader which columns were masked and why, or None when none was."""
    if not exposure.masked:
        return None
    return f"masked (personal data; reading it needs data.read_pii): {', '.join(exposure.masked)}"

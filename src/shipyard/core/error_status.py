"""One table from an error's category to its HTTP status and its CLI exit status.

Every face of Shipyard answers a ``ShipyardError`` the same way: the model server (and later
the UI) with the HTTP status, the ``shipyard`` command with the exit status. Before this table
the server mapped errors in four handlers of its own, so a ``Conflict`` raised in a route came
out as a 500 (issue 15); MLflow keeps the same kind of table (``ErrorCode`` -> HTTP status).

A concrete error is looked up by the first class in its MRO that the table names, so
``ParamConflict`` answers as ``Conflict`` unless it gets a row of its own. Exit statuses follow
``sysexits.h`` where one fits, and stay 2 for the errors a user fixes by changing the command
line (as a usage error does), so scripts that tested for 2 keep working.

    category            HTTP  exit
    invalid_argument     422     2   fix the input
    not_found            404     2   fix the name
    already_exists       409     2
    conflict             409     2
    permission_denied    403    77   EX_NOPERM: another token or role
    self_review          403     2   someone else must run it (four eyes)
    unavailable          503    69   EX_UNAVAILABLE: retry when the backend is back
    integrity_failure    500    65   EX_DATAERR: stored data failed a check
    (an OSError)           -    74   EX_IOERR: disk full, a file not readable (CLI only)
    (any other)          500    70   EX_SOFTWARE: a bug
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shipyard.core.errors import (
    AlreadyExists,
    Conflict,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SelfReview,
    ShipyardError,
    Unavailable,
)

#: Exit statuses of the ``shipyard`` command that are not errors' (docs/cli.md).
EXIT_OK: Final = 0
EXIT_NEGATIVE_ANSWER: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
#: An error Shipyard did not expect (a bug): ``EX_SOFTWARE``.
EXIT_INTERNAL: Final = 70
#: The operating system refused a file operation (disk full, no permission): ``EX_IOERR``.
EXIT_IO: Final = 74


@dataclass(frozen=True)
class ErrorStatus:
    """How one category of error is answered over HTTP and by the CLI."""

    http: int
    exit: int


ERROR_STATUS: Final[dict[type[ShipyardError], ErrorStatus]] = {
    InvalidArgument: ErrorStatus(http=422, exit=2),
    NotFound: ErrorStatus(http=404, exit=2),
    AlreadyExists: ErrorStatus(http=409, exit=2),
    Conflict: ErrorStatus(http=409, exit=2),
    PermissionDenied: ErrorStatus(http=403, exit=77),
    SelfReview: ErrorStatus(http=403, exit=2),
    Unavailable: ErrorStatus(http=503, exit=69),
    IntegrityFailure: ErrorStatus(http=500, exit=65),
    ShipyardError: ErrorStatus(http=500, exit=EXIT_INTERNAL),
}


def status_of(error: ShipyardError | type[ShipyardError]) -> ErrorStatus:
    """The HTTP and exit status of ``error`` (an instance or a class).

    Args:
        error: Any ``ShipyardError``; its most specific class in the table decides.

    Returns:
        The row of the table that applies.
    """
    kind = error if isinstance(error, type) else type(error)
    for cls in kind.__mro__:
        found = ERROR_STATUS.get(cls)
        if found is not None:
            return found
    return ERROR_STATUS[ShipyardError]  # pragma: no cover - every error has the root in its MRO


__all__ = [
    "ERROR_STATUS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "EXIT_NEGATIVE_ANSWER",
    "EXIT_OK",
    "EXIT_USAGE",
    "ErrorStatus",
    "status_of",
]

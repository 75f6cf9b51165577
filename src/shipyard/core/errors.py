"""The one error hierarchy of Shipyard.

Every error a user can cause or meet carries a stable ``code`` (for scripts, HTTP mappings and
logs) and a message that says what to do next. Third-party errors are translated once, at the
boundary where they happen, and chained with ``from``.

    ShipyardError
    ├── InvalidArgument (ValueError)
    │   ├── InvalidName
    │   ├── InvalidMetricValue
    │   ├── InvalidFilter
    │   ├── InvalidSettings
    │   ├── InvalidProjectFile
    │   └── InvalidData
    ├── NotFound (LookupError)
    │   ├── RunNotFound
    │   ├── ExperimentNotFound
    │   └── ArtifactNotFound
    ├── AlreadyExists
    ├── Conflict
    │   ├── ParamConflict
    │   ├── RunNotActive
    │   ├── SchemaDrift
    │   └── ValidationFailed
    ├── PermissionDenied
    ├── Unavailable
    │   ├── StoreUnavailable
    │   └── SourceUnavailable
    └── IntegrityFailure
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose.

    Attributes:
        code: A stable, machine-readable identifier (``"invalid_argument"``, ...).
    """

    code = "shipyard_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ShipyardError, ValueError):
    """The caller passed something Shipyard cannot accept; fixing the input fixes it."""

    code = "invalid_argument"


class InvalidName(InvalidArgument):
    """A key or artifact name is malformed or would escape its root."""

    code = "invalid_name"


class InvalidMetricValue(InvalidArgument):
    """A metric value is not a real number."""

    code = "invalid_metric_value"


class InvalidFilter(InvalidArgument):
    """A run filter expression does not parse or names an unknown field."""

    code = "invalid_filter"


class InvalidSettings(InvalidArgument):
    """Settings from the environment or ``shipyard.yaml`` are malformed."""

    code = "invalid_settings"


class InvalidProjectFile(InvalidArgument):
    """``shipyard.yaml`` is malformed; the message names the file, line and field."""

    code = "invalid_project_file"


class InvalidData(InvalidArgument):
    """Input data cannot be read as declared (unparseable file, wrong type, bad option)."""

    code = "invalid_data"


class NotFound(ShipyardError, LookupError):
    """The thing asked for does not exist."""

    code = "not_found"


class RunNotFound(NotFound):
    """No run has this id (or id prefix)."""

    code = "run_not_found"


class ExperimentNotFound(NotFound):
    """No experiment has this name."""

    code = "experiment_not_found"


class ArtifactNotFound(NotFound):
    """No artifact or blob has this name or digest."""

    code = "artifact_not_found"


class AlreadyExists(ShipyardError):
    """Creating the thing would duplicate an existing one."""

    code = "already_exists"


class Conflict(ShipyardError):
    """The request contradicts state that already exists."""

    code = "conflict"


class ParamConflict(Conflict):
    """A parameter was logged twice with different values; params are write-once."""

    code = "param_conflict"


class RunNotActive(Conflict):
    """Something tried to write to a run that has already ended."""

    code = "run_not_active"


class SchemaDrift(Conflict):
    """A source's columns changed (appeared, disappeared, changed type) and policy says fail."""

    code = "schema_drift"


class ValidationFailed(Conflict):
    """Data broke a contract check whose policy is ``fail``; nothing was written."""

    code = "validation_failed"


class PermissionDenied(ShipyardError):
    """The caller is not allowed to do this."""

    code = "permission_denied"


class SelfReview(PermissionDenied):
    """Someone tried to decide their own promotion request: another person must (four eyes).

    HTTP 403 like any denial, but exit status 2 in the CLI: no role or token fixes it; the
    command line does, run by someone else (issue 18).
    """

    code = "self_review"


class Unavailable(ShipyardError):
    """A backend could not be reached; retrying later may succeed."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    """The metadata store could not be opened or written."""

    code = "store_unavailable"


class SourceUnavailable(Unavailable):
    """A data source (database, HTTP API, file share) could not be read; retry may succeed."""

    code = "source_unavailable"


class IntegrityFailure(ShipyardError):
    """Stored data failed a consistency check (a blob's digest, a corrupt file)."""

    code = "integrity_failure"

"""Settings: ``SHIPYARD_*`` environment variables over the project's ``shipyard.yaml``.

Precedence, highest first: arguments passed in code, environment variables, the ``workspace:``
and ``tracking:`` sections of ``<project>/shipyard.yaml``, defaults. Nested fields take a double
underscore in the environment: ``SHIPYARD_TRACKING__FLUSH_INTERVAL_S=0.5``.

The schema is the dataclasses below, checked by ``core.typed_config`` (types, bounds, patterns,
unknown keys): not pydantic, whose import was a third of a read-only command's CPU time (issue
17). Nothing here is built at import time; entry points (the CLI, ``start_run``) call
``load_settings()`` and pass the result down.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidProjectFile, InvalidSettings
from shipyard.core.project_file import YamlDocument, load_yaml
from shipyard.core.typed_config import Invalid, build, environment_values, merge, setting

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shipyard.core.review_settings import ReviewSettings

PROJECT_FILE = "shipyard.yaml"
STATE_DIR = ".shipyard"


@dataclasses.dataclass(kw_only=True)
class TrackingSettings:
    """How runs write to the store; see docs/tracking.md for what is durable when."""

    flush_interval_s: float = setting(1.0, gt=0, le=60)
    flush_size: int = setting(5_000, ge=1, le=1_000_000)
    max_pending: int = setting(200_000, ge=1)
    heartbeat_interval_s: float = setting(10.0, gt=0)
    heartbeat_timeout_s: float = setting(60.0, gt=0)
    capture_git: bool = True


@dataclasses.dataclass(kw_only=True)
class CostSettings:
    """What the workspace's compute is priced as; see docs/cost.md.

    Attributes:
        instance_type: The catalog instance that runs and servers are priced on.
        purchase: ``on_demand``, ``spot`` or ``reserved``: which of its hourly prices applies.
        catalog: A price catalog file merged over the shipped one (default:
            ``<project>/prices.yaml`` when present).
        metering: Measure model CPU time per request in the server (``SHIPYARD_COST__METERING=0``
            turns it off).
    """

    instance_type: str = "m5.large"
    purchase: str = setting("on_demand", pattern="^(on_demand|spot|reserved)$")
    catalog: Path | None = None
    metering: bool = True


@dataclasses.dataclass(kw_only=True)
class EncryptionSettings:
    """Encryption at rest of artifacts and dataset files; see docs/security.md.

    Attributes:
        enabled: Encrypt every new blob (AES-256-GCM, one data key per blob, wrapped by the
            master key). Blobs written before stay readable.
        key_file: A file holding the base64 master key (mode 600); relative to the project.
            Wins over ``key_env``.
        key_env: The environment variable holding the base64 master key when there is no file.
        chunk_bytes: Plaintext bytes per encrypted chunk (memory per stream is about two).
    """

    enabled: bool = False
    key_file: Path | None = None
    key_env: str = setting("SHIPYARD_MASTER_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    chunk_bytes: int = setting(1 << 20, ge=4096, le=64 << 20)


@dataclasses.dataclass(kw_only=True)
class AuditSettings:
    """How the audit log is keyed and anchored; see docs/security.md (threat model).

    Attributes:
        key_file: A file holding the base64 audit key (32 bytes, mode 600); relative to the
            project. Wins over ``key_env``. Neither set: ``.shipyard/keys/audit.key``, created
            on first use while the log holds no keyed entry.
        key_env: The environment variable holding the base64 audit key when there is no file.
        anchor_file: Where the chain's head is anchored, outside the database (relative to
            the project; default ``.shipyard/audit-anchor.json``).
        anchor_every: Anchor the head every N entries (1: after every entry).
    """

    key_file: Path | None = None
    key_env: str = setting("SHIPYARD_AUDIT_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    anchor_file: Path | None = None
    anchor_every: int = setting(1, ge=1, le=1_000_000)


@dataclasses.dataclass(kw_only=True)
class RegistrySettings:
    """What a bundle may be before the registry reads it; see docs/registry.md.

    Every path that reads a bundle (register, load, serve and its hot swap, promote and the
    gate) checks these before decompressing anything, so a hostile zip costs milliseconds.

    Attributes:
        max_bundle_bytes: Largest bundle file, and most bytes its members may expand to
            together (``SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES``; default 1 GiB).
        max_bundle_members: Most members in a bundle (and in the model file inside it).
        max_compression_ratio: Largest expansion ratio of one member over 1 MiB; deflate reaches
            about 1000:1 only on degenerate data such as zip bombs.
    """

    max_bundle_bytes: int = setting(1 << 30, ge=1 << 20, le=64 << 30)
    max_bundle_members: int = setting(10_000, ge=4, le=1_000_000)
    max_compression_ratio: float = setting(200.0, ge=10.0, le=2000.0)


@dataclasses.dataclass(kw_only=True, frozen=True)
class ExecutorSettings:
    """Where trials, outer CV folds, scoring partitions and source files run; docs/scale-out.md.

    ``executor: ray`` is short for ``executor: {kind: ray}``.

    Attributes:
        kind: ``local`` (this process, the default) or ``ray`` (tasks on a Ray cluster; needs
            ``shipyard[ray]``).
        address: The Ray cluster: ``auto`` (the one this machine joined), ``host:6379``, or
            ``ray://host:10001``; unset starts a Ray for this process only.
        max_retries: Times a task is re-run when its worker process dies, before the item is
            reported failed.
        in_flight: Trials submitted per round; unset, the cluster's CPUs.
        workers: Worker replicas in the ``export --to kuberay`` manifest.
        worker_cpus: CPUs per Ray node in that manifest (head and workers).
        worker_memory: Memory per Ray node in that manifest (Kubernetes quantity).
        image: The container image (Shipyard with the ray extra) of that manifest.
    """

    kind: str = setting("local", pattern="^(local|ray)$")
    address: str | None = None
    max_retries: int = setting(2, ge=0, le=20)
    in_flight: int | None = setting(None, ge=1, le=100_000)
    workers: int = setting(2, ge=0, le=10_000)
    worker_cpus: int = setting(2, ge=1, le=512)
    worker_memory: str = setting("4Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    image: str = "shipyard:latest"


def parse_executor(value: Any) -> ExecutorSettings:
    """The ``executor:`` section; ``executor: ray`` means ``{kind: ray}``."""
    if isinstance(value, ExecutorSettings):
        return value
    built, problems = build(ExecutorSettings, {"kind": value} if isinstance(value, str) else value)
    if problems or built is None:
        raise Invalid(problems)
    return built


def _reviews(value: Any) -> ReviewSettings:
    """The ``reviews:`` section, checked by its pydantic model (imported only for it)."""
    from pydantic import ValidationError

    from shipyard.core.review_settings import ReviewSettings

    try:
        return ReviewSettings.model_validate(value)
    except ValidationError as e:
        raise Invalid(
            [
                (tuple(str(p) for p in err["loc"]), err["msg"], err.get("input"))
                for err in e.errors()
            ]
        ) from e


@dataclasses.dataclass(kw_only=True)
class Settings:
    """Root settings of a Shipyard workspace.

    Attributes:
        project_dir: The project's folder; ``shipyard.yaml`` and ``.shipyard/`` live here.
        store_url: SQLAlchemy URL of the metadata store; defaults to SQLite in ``.shipyard/``.
        artifact_root: Local path or fsspec URL for blobs; defaults to ``.shipyard/artifacts``.
    """

    project_dir: Path = dataclasses.field(default_factory=Path.cwd)
    store_url: str | None = None
    artifact_root: str | None = None
    tracking: TrackingSettings = dataclasses.field(default_factory=TrackingSettings)
    cost: CostSettings = dataclasses.field(default_factory=CostSettings)
    encryption: EncryptionSettings = dataclasses.field(default_factory=EncryptionSettings)
    audit: AuditSettings = dataclasses.field(default_factory=AuditSettings)
    registry: RegistrySettings = dataclasses.field(default_factory=RegistrySettings)
    #: None without a ``reviews:`` section (no alias needs a review); checked by its pydantic
    #: model (``core.review_settings``), imported only when the section is there.
    reviews: ReviewSettings | None = setting(None, parse=_reviews)  # noqa: RUF009 (a field)
    executor: ExecutorSettings = setting(ExecutorSettings(), parse=parse_executor)  # noqa: RUF009

    @property
    def state_dir(self) -> Path:
        """The folder that holds the embedded store and artifacts by default."""
        return self.project_dir / STATE_DIR

    @property
    def resolved_store_url(self) -> str:
        """The metadata store URL, with the embedded SQLite default filled in."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.state_dir / 'shipyard.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        """The artifact root, with the embedded default filled in."""
        return self.artifact_root or str((self.state_dir / "artifacts").resolve())


# Where each settings field lives in the project file (the rest of the file belongs to the
# pipeline's ``load_project``). Errors about a field are located through this table too.
_FILE_PATHS: dict[str, tuple[str, ...]] = {
    "store_url": ("workspace", "store_url"),
    "artifact_root": ("workspace", "artifact_root"),
    "encryption": ("workspace", "encryption"),
    "audit": ("workspace", "audit"),
    "tracking": ("tracking",),
    "cost": ("cost",),
    "registry": ("registry",),
    "reviews": ("reviews",),
    "executor": ("executor",),
}
_ABSENT = object()
_PREFIX = "SHIPYARD_"


def _file_values(document: YamlDocument | None) -> dict[str, Any]:
    """The settings sections of the project file, as a mapping for ``build``.

    They are ``workspace:``, ``tracking:``, ``cost:`` and ``registry:``; the other sections
    belong to other packages and are ignored here.
    """
    if document is None:
        return {}
    workspace = document.data.get("workspace")
    if workspace is not None and not isinstance(workspace, dict):
        line = document.line_of(("workspace",))
        raise InvalidSettings(f"{PROJECT_FILE}:{line}: 'workspace' must be a mapping")
    values: dict[str, Any] = {}
    for settings_path, file_path in _FILE_PATHS.items():
        value = _value_at(document.data, file_path)
        if value is not _ABSENT:
            values[settings_path] = value
    return values


def read_project_file(project_dir: Path) -> YamlDocument | None:
    """Parse ``<project_dir>/shipyard.yaml`` with the one project-file parser, if it exists.

    Raises:
        InvalidSettings: The file is unreadable, not YAML or not a mapping; the message names
            the line.
    """
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        return None
    try:
        return load_yaml(path)
    except InvalidProjectFile as e:
        raise InvalidSettings(str(e)) from e
    except OSError as e:
        raise InvalidSettings(f"cannot read {path}: {e.strerror or e}") from e


def _value_at(data: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _ABSENT
        data = data[part]
    return data


def _file_location(document: YamlDocument | None, loc: Sequence[str | int], value: Any) -> str:
    """``shipyard.yaml:N: `` when the offending value came from the project file, else ``""``."""
    if document is None or not loc or str(loc[0]) not in _FILE_PATHS:
        return ""
    path = (*_FILE_PATHS[str(loc[0])], *loc[1:])
    found = _value_at(document.data, path)
    if found is _ABSENT or found != value:  # absent, or the environment overrode it
        return ""
    return f"{PROJECT_FILE}:{document.line_of(path)}: "


def _project_dir_hint() -> Path:
    return Path(os.environ.get("SHIPYARD_PROJECT_DIR") or Path.cwd())


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and project file, with ``overrides`` on top.

    A section given as a mapping (``tracking={"flush_size": 10}``) is merged over the
    environment's and the file's, field by field; one given as an instance replaces them.

    Raises:
        InvalidSettings: When a value has the wrong type or range, or a section holds an
            unknown key; the message names every such value and, for the file's, its line.
    """
    project_dir = Path(overrides.get("project_dir") or _project_dir_hint())
    document = read_project_file(project_dir)
    values = merge(
        merge(_file_values(document), environment_values(Settings, os.environ, prefix=_PREFIX)),
        overrides,
    )
    settings, problems = build(Settings, values, extra="ignore")
    if settings is not None:
        return settings
    described = "; ".join(
        f"{_file_location(document, loc, value)}{'.'.join(loc)}: {message}"
        for loc, message, value in problems
    )
    raise InvalidSettings(
        f"invalid settings ({described}); check {_PREFIX}* variables and {PROJECT_FILE}"
    )

"""Settings: ``SHIPYARD_*`` environment variables over the project's ``shipyard.yaml``.

Precedence, highest first: arguments passed in code, environment variables, the ``workspace:``
and ``tracking:`` sections of ``<project>/shipyard.yaml``, defaults. Nested fields take a double
underscore in the environment: ``SHIPYARD_TRACKING__FLUSH_INTERVAL_S=0.5``.

Nothing here is built at import time; entry points (the CLI, ``start_run``) call
``load_settings()`` and pass the result down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shipyard.core.errors import InvalidProjectFile, InvalidSettings
from shipyard.core.project_file import YamlDocument, load_yaml
from shipyard.core.review_settings import ReviewSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

PROJECT_FILE = "shipyard.yaml"
STATE_DIR = ".shipyard"


class TrackingSettings(BaseModel):
    """How runs write to the store; see docs/tracking.md for what is durable when."""

    model_config = ConfigDict(extra="forbid")

    flush_interval_s: float = Field(1.0, gt=0, le=60)
    flush_size: int = Field(5_000, ge=1, le=1_000_000)
    max_pending: int = Field(200_000, ge=1)
    heartbeat_interval_s: float = Field(10.0, gt=0)
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    capture_git: bool = True


class CostSettings(BaseModel):
    """What the workspace's compute is priced as; see docs/cost.md.

    Attributes:
        instance_type: The catalog instance that runs and servers are priced on.
        purchase: ``on_demand``, ``spot`` or ``reserved``: which of its hourly prices applies.
        catalog: A price catalog file merged over the shipped one (default:
            ``<project>/prices.yaml`` when present).
        metering: Measure model CPU time per request in the server (``SHIPYARD_COST__METERING=0``
            turns it off).
    """

    model_config = ConfigDict(extra="forbid")

    instance_type: str = "m5.large"
    purchase: str = Field("on_demand", pattern="^(on_demand|spot|reserved)$")
    catalog: Path | None = None
    metering: bool = True


class EncryptionSettings(BaseModel):
    """Encryption at rest of artifacts and dataset files; see docs/security.md.

    Attributes:
        enabled: Encrypt every new blob (AES-256-GCM, one data key per blob, wrapped by the
            master key). Blobs written before stay readable.
        key_file: A file holding the base64 master key (mode 600); relative to the project.
            Wins over ``key_env``.
        key_env: The environment variable holding the base64 master key when there is no file.
        chunk_bytes: Plaintext bytes per encrypted chunk (memory per stream is about two).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    key_file: Path | None = None
    key_env: str = Field("SHIPYARD_MASTER_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    chunk_bytes: int = Field(1 << 20, ge=4096, le=64 << 20)


class AuditSettings(BaseModel):
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

    model_config = ConfigDict(extra="forbid")

    key_file: Path | None = None
    key_env: str = Field("SHIPYARD_AUDIT_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    anchor_file: Path | None = None
    anchor_every: int = Field(1, ge=1, le=1_000_000)


class RegistrySettings(BaseModel):
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

    model_config = ConfigDict(extra="forbid")

    max_bundle_bytes: int = Field(1 << 30, ge=1 << 20, le=64 << 30)
    max_bundle_members: int = Field(10_000, ge=4, le=1_000_000)
    max_compression_ratio: float = Field(200.0, ge=10.0, le=2000.0)


class ExecutorSettings(BaseModel):
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

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    max_retries: int = Field(2, ge=0, le=20)
    in_flight: int | None = Field(None, ge=1, le=100_000)
    workers: int = Field(2, ge=0, le=10_000)
    worker_cpus: int = Field(2, ge=1, le=512)
    worker_memory: str = Field("4Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    image: str = "shipyard:latest"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``executor: ray`` means ``{kind: ray}``."""
        return {"kind": value} if isinstance(value, str) else value


class Settings(BaseSettings):
    """Root settings of a Shipyard workspace.

    Attributes:
        project_dir: The project's folder; ``shipyard.yaml`` and ``.shipyard/`` live here.
        store_url: SQLAlchemy URL of the metadata store; defaults to SQLite in ``.shipyard/``.
        artifact_root: Local path or fsspec URL for blobs; defaults to ``.shipyard/artifacts``.
    """

    model_config = SettingsConfigDict(
        env_prefix="SHIPYARD_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    project_dir: Path = Field(default_factory=Path.cwd)
    store_url: str | None = None
    artifact_root: str | None = None
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Put the project file below the environment."""
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        project_dir = init_kwargs.get("project_dir") or _project_dir_hint()
        return (init_settings, env_settings, ProjectFileSource(settings_cls, Path(project_dir)))


class ProjectFileSource(PydanticBaseSettingsSource):
    """Reads the settings sections of the file (``_FILE_PATHS``: workspace, tracking, cost...).

    The project file also holds sections owned by other packages (sources, train, deploy...);
    those are ignored here.
    """

    def __init__(self, settings_cls: type[BaseSettings], project_dir: Path) -> None:
        super().__init__(settings_cls)
        self.path = project_dir / PROJECT_FILE

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values come from ``__call__`` as one mapping."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the settings found in the project file, if there is one."""
        document = read_project_file(self.path.parent)
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

    Raises:
        InvalidSettings: When a value has the wrong type or range; the message names it.
    """
    try:
        return Settings(**overrides)
    except ValidationError as e:
        project_dir = Path(overrides.get("project_dir") or _project_dir_hint())
        try:
            document = read_project_file(project_dir)
        except InvalidSettings:
            document = None
        problems = "; ".join(
            f"{_file_location(document, err['loc'], err.get('input'))}"
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in e.errors()
        )
        raise InvalidSettings(
            f"invalid settings ({problems}); check SHIPYARD_* variables and {PROJECT_FILE}"
        ) from e

"""The records users see: frozen, detached from any database session."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RunStatus(enum.StrEnum):
    """Where a run is in its life. Only ``running`` is not final."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_final(self) -> bool:
        """Tell whether the run has ended."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs."""

    experiment_id: str
    name: str
    created_ms: int
    description: str | None = None
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class Resources:
    """What a run consumed; the raw material of cost metering."""

    wall_seconds: float | None = None
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    children_cpu_user_seconds: float | None = None
    children_cpu_system_seconds: float | None = None
    peak_rss_bytes: int | None = None

    @property
    def cpu_seconds(self) -> float | None:
        """User + system CPU of the process and its children."""
        parts = (
            self.cpu_user_seconds,
            self.cpu_system_seconds,
            self.children_cpu_user_seconds,
            self.children_cpu_system_seconds,
        )
        if all(p is None for p in parts):
            return None
        return sum(p or 0.0 for p in parts)


@dataclass(frozen=True, slots=True)
class Run:
    """A run with its params, tags and the latest value of each metric."""

    run_id: str
    experiment_id: str
    experiment: str
    name: str
    status: RunStatus
    start_ms: int
    end_ms: int | None
    heartbeat_ms: int
    parent_run_id: str | None
    host: str
    pid: int
    pid_started_ms: int
    user: str
    error: str | None
    git_commit: str | None
    git_dirty: bool | None
    environment: dict[str, Any]
    resources: Resources
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged value of a metric."""

    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Artifact:
    """A run's logical artifact name and the blob it points at."""

    run_id: str
    name: str
    digest: str
    size_bytes: int
    media_type: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Note:
    """A note someone left on a run."""

    note_id: str
    run_id: str
    author: str
    text: str
    created_ms: int

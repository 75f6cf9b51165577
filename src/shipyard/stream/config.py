"""The ``stream:`` section of ``shipyard.yaml``: which stream, which group, which model.

Parsed through the one project-file parser (``core.project_file``), so a wrong field is
reported as ``shipyard.yaml:<line>: stream.<field>: <what is expected>``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipyard.core.errors import InvalidProjectFile
from shipyard.core.project_file import load_yaml
from shipyard.core.settings import PROJECT_FILE

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.data.windows import WindowDef

_MODEL_REF = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")


class StreamConfig(BaseModel):
    """Where events come from, how they are read, which model scores them, where answers go.

    Attributes:
        url: The broker (``redis://host:port/db``); the scheme picks the backend.
        input: The stream events are read from.
        group: The consumer group; every consumer of the group shares its work.
        consumer: This consumer's name in the group (unique per process; ``stream run
            --consumer`` overrides it).
        event_id_field: The event field holding its unique id (the dedup key).
        event_time_field: The event field holding its time in epoch milliseconds, or None.
        key_field: The event field holding its entity key (for windows, later), or None.
        model: ``name@alias``: followed as the alias moves.
        output: The stream predictions are written to, one entry per event id.
        dead_letters: The stream bad events go to, with reason and original payload.
        batch_size: Entries per read (XREADGROUP COUNT): the micro-batch.
        block_ms: How long a read waits for entries when the stream is idle.
        claim_idle_ms: Entries pending this long on a consumer are taken over (a dead consumer).
        max_event_bytes: A larger payload is a dead letter, never parsed.
        dedup_ttl_s: How long an event id is at least remembered as processed (at most
            twice that); Redis holds about 50 bytes plus the id per remembered event.
        poll_interval_s: How often the registry is asked whether the alias moved.
        watermark_delay_ms: How far the watermark trails the largest event time seen.
        allowed_lateness_ms: How far behind the watermark an event may be and still be folded
            into its windows; a later one goes to ``late_events``.
        late_events: The side output for late events (default ``<input>:late``).
        window_state_ttl_s: How long window state outlives its last write (default: twice
            the longest window plus the lateness, at least an hour).
        labels: A stream of labels (``{event id, label, ts_ms}``) joined to the predictions
            by event id through the feedback store; None for no labels stream.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = "redis://127.0.0.1:6379/0"
    input: str = Field(min_length=1, max_length=200)
    group: str = Field("shipyard", min_length=1, max_length=200)
    consumer: str = Field("consumer-1", min_length=1, max_length=200)
    event_id_field: str = Field("event_id", min_length=1)
    event_time_field: str | None = None
    key_field: str | None = None
    model: str
    output: str = Field(min_length=1, max_length=200)
    dead_letters: str = Field(min_length=1, max_length=200)
    batch_size: int = Field(100, ge=1, le=10_000)
    block_ms: int = Field(1000, ge=1, le=60_000)
    claim_idle_ms: int = Field(30_000, ge=100)
    max_event_bytes: int = Field(65_536, ge=64, le=16 * 1024 * 1024)
    dedup_ttl_s: int = Field(24 * 3600, ge=60)
    poll_interval_s: float = Field(5.0, gt=0, le=3600)
    watermark_delay_ms: int = Field(0, ge=0)
    allowed_lateness_ms: int = Field(60_000, ge=0)
    late_events: str | None = Field(None, min_length=1, max_length=200)
    window_state_ttl_s: int | None = Field(None, ge=60)
    labels: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not _MODEL_REF.match(value):
            raise ValueError("use name@alias, e.g. churn@production (followed as it moves)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "nats://")):
            raise ValueError("use a redis:// (or rediss://, unix://) or nats:// broker URL")
        return value

    @property
    def model_name(self) -> str:
        """The registered model's name."""
        return self.model.partition("@")[0]

    @property
    def alias(self) -> str:
        """The alias followed."""
        return self.model.partition("@")[2]

    @property
    def late_stream(self) -> str:
        """Where late events go."""
        return self.late_events or f"{self.input}:late"

    def state_ttl_s(self, defs: list[WindowDef]) -> int:
        """How long window state is kept after its last write."""
        if self.window_state_ttl_s is not None:
            return self.window_state_ttl_s
        longest = max((d.window.span_ms for d in defs), default=0)
        reach_ms = longest + self.watermark_delay_ms + self.allowed_lateness_ms
        return max(3600, math.ceil(2 * reach_ms / 1000))


def load_stream_config(project_dir: Path) -> StreamConfig:
    """Read the ``stream:`` section of ``<project_dir>/shipyard.yaml``.

    Raises:
        InvalidProjectFile: No file, no ``stream:`` section, or a wrong field (with its line).
    """
    document = load_yaml(project_dir / PROJECT_FILE)
    section = document.data.get("stream")
    if not isinstance(section, dict):
        line = document.line_of(("stream",))
        raise InvalidProjectFile(
            f"{document.path.name}:{line}: stream: expected a mapping with at least input, "
            "model, output and dead_letters (see docs/streaming.md)"
        )
    try:
        return StreamConfig.model_validate(section)
    except ValidationError as e:
        raise document.error(e, section=("stream",)) from e


def load_window_defs(project_dir: Path, config: StreamConfig) -> list[WindowDef]:
    """The window features of the project's ``features:`` steps.

    The same definitions ``shipyard run`` computed the training data with: one definition.

    Raises:
        InvalidProjectFile: A ``features:`` step does not parse, or a window feature's time
            field is not the stream's ``event_time_field``.
    """
    from shipyard.data.features import FeaturesSpec, window_defs

    document = load_yaml(project_dir / PROJECT_FILE)
    steps = document.data.get("steps")
    defs: list[WindowDef] = []
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not (isinstance(step, dict) and isinstance(step.get("features"), dict)):
            continue
        section: Any = step["features"]
        try:
            spec = FeaturesSpec.model_validate(section)
        except ValidationError as e:
            raise document.error(e, section=("steps", index, "features")) from e
        defs += window_defs(spec)
    for d in defs:
        if d.time != config.event_time_field:
            line = document.line_of(("stream", "event_time_field"))
            raise InvalidProjectFile(
                f"{document.path.name}:{line}: stream.event_time_field: window feature "
                f"{d.name} reads event time from {d.time!r}; set event_time_field: {d.time}"
            )
    return defs

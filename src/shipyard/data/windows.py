"""Windowed features per key on event time: one definition, one engine, batch and stream.

A window feature is an aggregate (count, sum, mean, min, max, last, distinct) of one column
over the earlier events of the same key that fall in a window around the event's own time:

- ``tumbling: 1h``: the fixed hour the event falls in, ``[floor(t / 1h) * 1h, t]``;
- ``hopping: 1h, every: 15m``: the oldest of the hour-long windows starting every 15 minutes
  that still contain ``t`` (a trailing hour at 15-minute resolution);
- ``session: 30m``: the key's current session, a run of events each at most 30 minutes after
  the previous one (capped at ``max_session``: a day, or 500 gaps when that is shorter).

**Earlier** means *arrived before it and not later in event time*: in a stream, entries read
before this one (the broker's order) whose event time is at most the event's; over a
historical dataset, rows above this one (the dataset's order is taken as the arrival order)
whose time is at most the row's. Both are point-in-time correct (a row never sees an event
after its own time, nor one that had not arrived yet), and both give the same value for the
same events in the same order, out-of-order ones included: the stream (``stream.windows``)
and a dataset (``data.window_features``) run this one engine, the stream over state kept in
Redis, a dataset over state kept in memory.

Why the engine keeps the events themselves and not running totals: an event delivered twice
(a consumer killed before it acknowledged) is stored under its id, so storing it again
changes nothing, and "earlier than this event" can be decided for any event, including one
that is delivered again after later ones were stored. Memory is bounded by the windows:
state older than the longest window (plus the allowed lateness) is dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Aggregate = Literal["count", "sum", "mean", "min", "max", "last", "distinct"]
AGGREGATES: tuple[str, ...] = ("count", "sum", "mean", "min", "max", "last", "distinct")
MAX_BUCKETS = 1000  # a window spans at most this many storage buckets (reads per event)
DEFAULT_MAX_SESSION_MS = 86_400_000  # a day, or 500 gaps when that is shorter
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(value: str | int) -> int:
    """``"15m"`` -> 900000; an int is already milliseconds.

    Raises:
        ValueError: Not a positive duration like 250ms, 30s, 15m, 1h or 7d.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of ms or text like 30s, 15m, 1h, 7d")
    if isinstance(value, int):
        ms = value
    else:
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: use e.g. 250ms, 30s, 15m, 1h, 7d")
        ms = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if ms <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return ms


class WindowArgs(BaseModel):
    """``{column, agg, key, time, tumbling | hopping + every | session [+ max_session]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str | None = None
    agg: Aggregate
    key: str
    time: str
    tumbling: str | int | None = None
    hopping: str | int | None = None
    every: str | int | None = None
    session: str | int | None = None
    max_session: str | int | None = None

    @model_validator(mode="after")
    def _shape(self) -> WindowArgs:
        kinds = [k for k in ("tumbling", "hopping", "session") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a window is exactly one of tumbling, hopping (with every), session")
        if self.agg != "count" and self.column is None:
            raise ValueError(f"agg {self.agg} needs a column")
        if (self.hopping is None) != (self.every is None):
            raise ValueError("hopping needs every (and every needs hopping)")
        self.window()  # the sizes must be valid durations that fit together
        return self

    def window(self) -> Window:
        """The window this spec describes."""
        if self.tumbling is not None:
            return Window("tumbling", duration_ms(self.tumbling))
        if self.hopping is not None:
            assert self.every is not None  # checked by _shape
            size, hop = duration_ms(self.hopping), duration_ms(self.every)
            if size % hop:
                raise ValueError(f"hopping: {self.hopping} is not a multiple of every {self.every}")
            return Window("hopping", size, hop)
        assert self.session is not None
        gap = duration_ms(self.session)
        if self.max_session is None:
            cap = min(DEFAULT_MAX_SESSION_MS, gap * (MAX_BUCKETS // 2))
        else:
            cap = duration_ms(self.max_session)
        return Window("session", gap, cap=max(cap, gap))


class WindowFeature(BaseModel):
    """``{window: {...}}`` in a ``features:`` step."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window: WindowArgs


@dataclass(frozen=True, slots=True)
class Window:
    """A window's shape in milliseconds; state is stored in buckets of ``bucket_ms``."""

    kind: Literal["tumbling", "hopping", "session"]
    size_ms: int
    hop_ms: int = 0
    cap: int = 0

    def __post_init__(self) -> None:
        if len(self.buckets(0)) > MAX_BUCKETS:
            fix = "a shorter max_session" if self.kind == "session" else "a coarser every"
            raise ValueError(
                f"a {self.kind} window spanning {len(self.buckets(0))} buckets is too fine "
                f"(at most {MAX_BUCKETS}): use {fix}"
            )

    @property
    def bucket_ms(self) -> int:
        """Width of the storage buckets: the window, the hop, or the session gap."""
        return self.hop_ms if self.kind == "hopping" else self.size_ms

    @property
    def span_ms(self) -> int:
        """The furthest back, from an event's time, that its window can reach."""
        return self.cap if self.kind == "session" else self.size_ms

    def start(self, t: int) -> int:
        """The earliest time in the window of an event at ``t`` (sessions: the cap)."""
        if self.kind == "tumbling":
            return t - t % self.size_ms
        if self.kind == "hopping":
            oldest = t - self.size_ms
            return oldest - oldest % self.hop_ms + self.hop_ms
        return t - self.cap

    def buckets(self, t: int) -> list[int]:
        """Starts of the storage buckets the window of an event at ``t`` reads."""
        width = self.bucket_ms
        last = t - t % width
        first = self.start(t)
        first -= first % width
        return list(range(first, last + width, width))


@dataclass(frozen=True, slots=True)
class WindowDef:
    """One named window feature, resolved."""

    name: str
    column: str | None
    agg: str
    key: str
    time: str
    window: Window

    @classmethod
    def of(cls, name: str, feature: WindowFeature) -> WindowDef:
        """Resolve the parsed spec."""
        args = feature.window
        return cls(name, args.column, args.agg, args.key, args.time, args.window())

    @property
    def store(self) -> tuple[str, int]:
        """Which state the feature reads: features sharing a key and bucket width share it."""
        return (self.key, self.window.bucket_ms)


Order = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What state keeps of an event: its time, arrival order, and the columns features read."""

    t: int
    order: Order
    values: dict[str, Any]


@dataclass
class WindowBook:
    """Events by (key field, bucket width, key value, bucket start): the engine's state.

    The stream fills it from Redis for the buckets a batch needs; a dataset fills it as it
    goes. ``add`` keeps one entry per event id, so adding an event again changes nothing.
    """

    buckets: dict[tuple[str, int, str, int], dict[str, StoredEvent]] = field(default_factory=dict)

    def bucket(self, key_field: str, width: int, key: str, start: int) -> dict[str, StoredEvent]:
        """The events of one bucket (created empty)."""
        return self.buckets.setdefault((key_field, width, key, start), {})

    def add(
        self, defs: list[WindowDef], event_id: str, event: dict[str, Any], order: Order
    ) -> list[tuple[tuple[str, int, str, int], StoredEvent]]:
        """Store ``event`` for every state ``defs`` read; return what was stored where."""
        stored = []
        for (key_field, width), columns in stores(defs).items():
            t = int(event[time_field(defs, key_field, width)])
            slot = (key_field, width, key_text(event[key_field]), t - t % width)
            item = StoredEvent(t, order, {c: event.get(c) for c in columns})
            self.buckets.setdefault(slot, {})[event_id] = item
            stored.append((slot, item))
        return stored


def stores(defs: list[WindowDef]) -> dict[tuple[str, int], list[str]]:
    """Each state the features read, with the columns it must keep (sorted)."""
    out: dict[tuple[str, int], set[str]] = {}
    for d in defs:
        columns = out.setdefault(d.store, set())
        if d.column is not None:
            columns.add(d.column)
    return {store: sorted(columns) for store, columns in out.items()}


def time_field(defs: list[WindowDef], key_field: str, width: int) -> str:
    """The event-time column of a state (all features sharing a state share their time)."""
    return next(d.time for d in defs if d.store == (key_field, width))


def key_text(value: Any) -> str:
    """A key as text: ``7`` and ``"7"`` are the same key in a stream of JSON events."""
    return value if isinstance(value, str) else str(value)


def compute(
    defs: list[WindowDef], book: WindowBook, event_id: str, event: dict[str, Any], order: Order
) -> dict[str, Any]:
    """Every feature of ``defs`` for ``event``, from the earlier events in ``book``."""
    out: dict[str, Any] = {}
    for d in defs:
        t = int(event[d.time])
        key = key_text(event[d.key])
        width = d.window.bucket_ms
        earlier: list[StoredEvent] = []
        for start in d.window.buckets(t):
            for other_id, other in book.bucket(d.key, width, key, start).items():
                if other.order < order and other.t <= t and other_id != event_id:
                    earlier.append(other)
        out[d.name] = aggregate(d, _in_window(d.window, earlier, t))
    return out


def _in_window(window: Window, earlier: list[StoredEvent], t: int) -> list[StoredEvent]:
    """The earlier events inside the event's window, oldest first (by time, then arrival)."""
    start = window.start(t)
    inside = sorted((e for e in earlier if e.t >= start), key=lambda e: (e.t, e.order))
    if window.kind != "session":
        return inside
    # Walk back from the event while each step is within the gap: that is its session.
    first, previous = len(inside), t
    for i in range(len(inside) - 1, -1, -1):
        if previous - inside[i].t > window.size_ms:
            break
        first, previous = i, inside[i].t
    return inside[first:]


def aggregate(d: WindowDef, events: list[StoredEvent]) -> Any:
    """``d.agg`` of ``d.column`` over ``events`` (oldest first); nulls are skipped.

    An empty window gives 0 for count, sum and distinct and null for the rest.
    """
    if d.agg == "count":
        return len(events) if d.column is None else sum(1 for e in events if _present(e, d))
    values = [e.values[d.column] for e in events if _present(e, d)]  # type: ignore[index]
    if d.agg == "sum":
        return float(math.fsum(values))
    if d.agg == "distinct":
        return len(set(values))
    if not values:
        return None
    if d.agg == "mean":
        return float(math.fsum(values) / len(values))
    if d.agg == "min":
        return min(values)
    if d.agg == "max":
        return max(values)
    return values[-1]  # last


def _present(event: StoredEvent, d: WindowDef) -> bool:
    value = event.values.get(d.column) if d.column is not None else None
    return value is not None and not (isinstance(value, float) and math.isnan(value))

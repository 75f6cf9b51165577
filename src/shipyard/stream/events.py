"""Turn a batch of raw entries into model input, and every bad one into a dead letter.

Each event passes the same contract as HTTP and batch scoring (``registry.input_contract``:
``decode_columns`` is the server's JSON reader). What makes an event a dead letter, with the
reason recorded: no payload, over ``max_event_bytes``, not JSON, not a JSON object, no usable
event id, a non-numeric event time, no key when a key field is configured, a missing feature,
or a value the contract refuses (wrong type, null where not allowed, unseen category...).
A bad event never fails the batch: the good ones are scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.registry.input_contract import ContractViolation, ModelInput
from shipyard.stream.backend import DeadLetter, Delivery

if TYPE_CHECKING:
    from shipyard.registry.input_contract import InputContract
    from shipyard.stream.config import StreamConfig
    from shipyard.stream.windows import StreamWindows, WindowedBatch

MAX_EVENT_ID_CHARS = 200


@dataclass(slots=True)
class CheckedBatch:
    """The good events of a batch, decoded, and the bad ones as dead letters.

    ``deliveries``, ``event_ids`` and the rows of ``columns`` and ``inputs`` are aligned.
    ``windowed`` holds the window state to store before the batch is committed.
    """

    deliveries: list[Delivery] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    inputs: ModelInput | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    windowed: WindowedBatch | None = None
    late: int = 0


def check_batch(
    deliveries: list[Delivery],
    contract: InputContract,
    config: StreamConfig,
    windows: StreamWindows | None = None,
) -> CheckedBatch:
    """Parse and check ``deliveries`` against ``contract``, adding window features.

    Window features are computed here, between parsing and the contract's check, because the
    contract names them like any other input; they are not expected in the events.
    """
    out = CheckedBatch()
    names = contract.names
    computed = windows.names if windows is not None else frozenset()
    raw_names = [name for name in names if name not in computed]
    events: list[dict[str, Any]] = []
    for delivery in deliveries:
        event, reason = _parse(delivery, config, raw_names)
        if reason is None and windows is not None:
            reason = windows.problem(event)  # type: ignore[arg-type]
        if reason is not None:
            out.dead.append(DeadLetter(delivery.entry_id, reason, delivery.payload or b""))
            continue
        assert event is not None  # _parse returns one of the two
        out.deliveries.append(delivery)
        out.event_ids.append(_event_id(event[config.event_id_field]))
        events.append(event)
    if windows is not None:
        events = _windowed(out, events, windows)
    if not events:
        return out
    columns = {name: [event[name] for event in events] for name in names}
    try:
        out.inputs = contract.decode_columns(columns)
        out.columns = columns
    except ContractViolation as e:
        bad: dict[int, list[str]] = {}
        for problem in e.problems:
            for row in problem.rows or range(len(events)):
                bad.setdefault(row, []).append(f"{problem.field}: {problem.problem}")
        keep = [i for i in range(len(events)) if i not in bad]
        for row, reasons in sorted(bad.items()):
            delivery = out.deliveries[row]
            reason = "contract: " + "; ".join(reasons)
            out.dead.append(DeadLetter(delivery.entry_id, reason, delivery.payload or b""))
        out.deliveries = [out.deliveries[i] for i in keep]
        out.event_ids = [out.event_ids[i] for i in keep]
        events = [events[i] for i in keep]
        if windows is not None and events:
            # The refused events must not count in the windows of the others: run again.
            for event in events:
                for name in windows.names:
                    event.pop(name, None)
            events = _windowed(out, events, windows)
        if events:
            out.columns = {name: [event[name] for event in events] for name in names}
            out.inputs = contract.decode_columns(out.columns)
    position = {d.entry_id: i for i, d in enumerate(deliveries)}
    out.dead.sort(key=lambda letter: position[letter.entry_id])  # in arrival order
    return out


def _windowed(
    out: CheckedBatch, events: list[dict[str, Any]], windows: StreamWindows
) -> list[dict[str, Any]]:
    """Add window features to ``events``; move late ones to the dead letters (as late)."""
    entry_ids = [d.entry_id for d in out.deliveries]
    result = windows.apply(out.event_ids, events, entry_ids)
    out.windowed = result
    if result.late:
        for i, reason in result.late.items():
            delivery = out.deliveries[i]
            out.dead.append(
                DeadLetter(delivery.entry_id, reason, delivery.payload or b"", late=True)
            )
        keep = [i for i in range(len(events)) if i not in result.late]
        out.late += len(result.late)
        out.deliveries = [out.deliveries[i] for i in keep]
        out.event_ids = [out.event_ids[i] for i in keep]
        events = [events[i] for i in keep]
    for event, features in zip(events, result.features, strict=True):
        event.update(features)
    return events


def _parse(
    delivery: Delivery, config: StreamConfig, names: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    payload = delivery.payload
    if payload is None:
        return None, "no 'data' field: events are XADDed as data=<JSON object>"
    if len(payload) > config.max_event_bytes:
        return None, f"event of {len(payload)} bytes is over the limit of {config.max_event_bytes}"
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        return None, f"not JSON: {e}"
    if not isinstance(event, dict):
        return None, f"not a JSON object but {type(event).__name__}"
    ident = event.get(config.event_id_field)
    if not _valid_id(ident):
        return None, (
            f"{config.event_id_field}: required, a string (at most {MAX_EVENT_ID_CHARS} "
            "characters, no line breaks) or an integer: the dedup key"
        )
    if config.event_time_field is not None:
        moment = event.get(config.event_time_field)
        if not _valid_time(moment):
            return None, f"{config.event_time_field}: required, epoch milliseconds as a number"
    if config.key_field is not None and not _valid_id(event.get(config.key_field)):
        return None, f"{config.key_field}: required, a string or integer"
    missing = [name for name in names if name not in event]
    if missing:
        return None, "missing field: " + ", ".join(missing)
    return event, None


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # No line breaks: ids travel newline-joined to the commit script (redis_backend).
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_EVENT_ID_CHARS
        and "\n" not in value
        and "\r" not in value
    )


def _valid_time(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _event_id(value: str | int) -> str:
    return value if isinstance(value, str) else str(value)

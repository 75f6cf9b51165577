"""Labels arriving on their own stream, joined to the stream's predictions by event id.

A label event is a stream entry with a ``data`` field holding
``{"<event_id_field>": ..., "label": ..., "ts_ms": ...}`` (``ts_ms`` optional: when the truth was
observed). ``LabelsConsumer`` reads them through its own consumer group and stores each batch
in the feedback store beside the prediction log (``monitor.feedback``: the same store HTTP
feedback writes), so performance-from-feedback, alerts and retraining see streamed labels as
they see HTTP ones. The join is by event id: a prediction's ``request_id`` in the log is its
event id.

At-least-once, harmless when repeated: a label redelivered after a crash is stored again, and
the latest label of an event wins when labels are read. A label that does not parse goes to
the dead-letter stream with its reason (once per entry), and never blocks the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from shipyard.core.errors import InvalidData
from shipyard.monitor.feedback import parse_feedback_json

if TYPE_CHECKING:
    import redis

    from shipyard.monitor.feedback import FeedbackStore
    from shipyard.stream.config import StreamConfig

# A dead letter once per labels entry, even when the entry is delivered again.
_DEAD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', 'entry_id', ARGV[2], 'reason', ARGV[3], 'payload', ARGV[4])
end
"""


class LabelsConsumer:
    """Moves labels from ``config.labels`` into a feedback store."""

    def __init__(
        self, client: redis.Redis, config: StreamConfig, store: FeedbackStore, *, consumer: str
    ) -> None:
        """Read ``config.labels`` as ``consumer`` of the group ``<group>:labels``."""
        if config.labels is None:
            raise ValueError("the stream section names no labels stream")
        self.client = client
        self.config = config
        self.store = store
        self.consumer = consumer
        self.stream = config.labels
        self.group = f"{config.group}:labels"
        self.stored = 0
        self.refused = 0
        self._own_pending = True

    def ensure_group(self) -> None:
        """Create the labels group at the start of its stream unless it exists."""
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def poll(self, *, count: int = 500, block_ms: int = 0) -> int:
        """Read one batch of labels, store the good ones, dead-letter the bad; return read."""
        start = "0" if self._own_pending else ">"
        reply: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count, block_ms or None
        )
        entries = reply[0][1] if reply else []
        if not entries and self._own_pending:
            self._own_pending = False
            return self.poll(count=count, block_ms=block_ms)
        if not entries:
            return 0
        items, dead = [], []
        for entry_id, fields in entries:
            item, reason = self._item(fields)
            if reason is None:
                items.append(item)
            else:
                dead.append((entry_id, reason, fields.get(b"data") or b""))
        if items:
            self.store.add(self.config.model_name, parse_feedback_json(items))
            self.stored += len(items)
        pipe = self.client.pipeline(transaction=True)  # dead letters and acks: all or none
        for entry_id, reason, payload in dead:
            marker = f"{self.stream}:dead:{entry_id.decode()}"
            pipe.eval(
                _DEAD_ONCE,
                2,
                marker,
                self.config.dead_letters,
                self.config.dedup_ttl_s,
                entry_id,
                f"label: {reason}",
                payload,
            )
        pipe.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        self.refused += len(dead)
        return len(entries)

    def _item(self, fields: dict[bytes, bytes]) -> tuple[dict[str, Any], str | None]:
        payload = fields.get(b"data")
        if payload is None:
            return {}, "no 'data' field: labels are XADDed as data=<JSON object>"
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            return {}, f"not JSON: {e}"
        if not isinstance(body, dict):
            return {}, "not a JSON object"
        ident = body.get(self.config.event_id_field)
        item = {"request_id": str(ident) if isinstance(ident, int) else ident}
        for name in ("label", "ts_ms"):
            if name in body:
                item[name] = body[name]
        try:
            parse_feedback_json(item)
        except InvalidData as e:
            return {}, str(e).replace("feedback item 0: ", "").replace("request_id", "event id")
        return item, None

"""NATS JetStream as the broker: a durable pull consumer per group, explicit acks.

The same contract as Redis (``stream.backend``): outputs and dead letters written at most once
per key, then the input acknowledged. JetStream has no server-side script, so "once per key"
comes from its own message deduplication: every output is published with ``Nats-Msg-Id`` set
to the event id (dead letters: ``dead:<input sequence>``), and the output stream's
``duplicate_window`` (``dedup_ttl_s``) drops a second publish of the same id, answering it as a
duplicate. A batch is acknowledged only after every publish of it was confirmed, so a
consumer killed anywhere leaves either unacknowledged entries (delivered again after
``claim_idle_ms``, their outputs dropped as duplicates) or nothing to redo.

The prediction-log row travels in the output message's headers, so the output stream is also
the outbox: ``JetStreamLogDrain`` moves its rows to the prediction log by stream sequence,
recording each part's plan in a JetStream key-value bucket before writing it (the Redis
drain's algorithm, with compare-and-set revisions in place of a lease).

Scaling out is the same as Redis: every consumer of a group pulls from the group's durable
consumer, and JetStream shares the messages. nats-py is asyncio-only; each backend runs its
connection on an event loop in a daemon thread and waits on it, so the consumer loop stays the
same synchronous loop for both brokers.

Window features need Redis for their state (``stream.windows``); this backend has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.core.errors import InvalidArgument, Unavailable
from shipyard.stream.backend import BrokerUnavailable, Commit, Delivery, GroupStats
from shipyard.stream.log_outbox import log_row

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterator

    from shipyard.stream.backend import Sink
    from shipyard.stream.config import StreamConfig

LOG_HEADER = "Shipyard-Log-Header"
LOG_ROW = "Shipyard-Log-Row"
EVENT_ID = "Shipyard-Event-Id"
_WAIT_S = 30.0  # the longest any one broker call may take before it counts as unavailable


def stream_name(subject: str) -> str:
    """The JetStream stream that holds ``subject`` (stream names allow fewer characters)."""
    return "SY_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject)


class _Loop:
    """An asyncio loop in a daemon thread, for calling nats-py from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = _WAIT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """Connection trouble becomes ``BrokerUnavailable``; other errors pass."""
    import nats.errors

    try:
        yield
    except (
        nats.errors.ConnectionClosedError,
        nats.errors.NoServersError,
        nats.errors.NoRespondersError,
        nats.errors.TimeoutError,
        TimeoutError,
        ConnectionError,
    ) as e:
        raise BrokerUnavailable(f"NATS at {url} did not answer: {type(e).__name__} {e}") from e


class NatsStreamBackend:
    """One consumer of one group on one JetStream input subject."""

    def __init__(
        self, config: StreamConfig, *, consumer: str | None = None, log_rows: bool = True
    ) -> None:
        """Connect to ``config.url`` (``nats://host:port``) as ``consumer``.

        Raises:
            InvalidArgument: nats-py is not installed.
            Unavailable: The server does not answer or has JetStream off.
        """
        try:
            import nats
        except ImportError as e:
            raise InvalidArgument(
                "NATS streaming needs nats-py: pip install 'shipyard[stream]'"
            ) from e
        self.config = config
        self.consumer = consumer or config.consumer
        self.log_rows = log_rows
        self._loop = _Loop()
        self._inflight: dict[str, Any] = {}  # entry id -> message, until acknowledged
        self._sub: Any = None
        try:
            self.nc = self._loop.run(
                nats.connect(config.url, connect_timeout=5, max_reconnect_attempts=-1)
            )
            self.js = self.nc.jetstream(timeout=_WAIT_S)
            self._loop.run(self.js.account_info())
        except Exception as e:
            self._loop.close()
            raise Unavailable(
                f"NATS at {config.url} does not answer with JetStream on ({type(e).__name__}: "
                f"{e}); is nats-server running with -js?"
            ) from e

    def ensure_group(self) -> None:
        """Create the streams (input, output, dead letters) and the group's durable consumer."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

        cfg = self.config

        async def setup() -> Any:
            for subject in (cfg.input, cfg.output, cfg.dead_letters):
                await self._stream(StreamConfig, subject)
            return await self.js.pull_subscribe(
                cfg.input,
                durable=cfg.group,
                stream=stream_name(cfg.input),
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=cfg.claim_idle_ms / 1000,
                    max_deliver=-1,
                    max_ack_pending=max(1000, 20 * cfg.batch_size),
                ),
            )

        with _translated(cfg.url):
            self._sub = self._loop.run(setup())

    async def _stream(self, stream_config: Any, subject: str) -> None:
        import nats.js.errors

        name = stream_name(subject)
        try:
            await self.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(
                stream_config(
                    name=name, subjects=[subject], duplicate_window=float(self.config.dedup_ttl_s)
                )
            )

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` messages of the group, waiting up to ``block_ms``.

        Unacknowledged ones come back after ``claim_idle_ms`` (JetStream's ack wait) to
        whichever consumer pulls next.

        Raises:
            BrokerUnavailable: NATS did not answer.
        """
        import nats.errors

        if self._sub is None:
            self.ensure_group()

        async def fetch() -> list[Any]:
            try:
                return list(await self._sub.fetch(count, timeout=max(block_ms, 1) / 1000))
            except nats.errors.TimeoutError:
                return []

        with _translated(self.config.url):
            messages = self._loop.run(fetch())
        out = []
        for msg in messages:
            meta = msg.metadata
            broker_ms = int(meta.timestamp.timestamp() * 1000)
            entry_id = f"{broker_ms}-{meta.sequence.stream}"
            self._inflight[entry_id] = msg
            out.append(Delivery(entry_id, msg.data, broker_ms))
        return out

    def commit(self, commit: Commit) -> int:
        """Publish outputs and dead letters (deduplicated by id), then acknowledge.

        Raises:
            BrokerUnavailable: NATS did not answer (a retry publishes nothing twice).
        """
        with _translated(self.config.url):
            return int(self._loop.run(self._commit(commit)))

    async def _commit(self, commit: Commit) -> int:
        cfg = self.config
        header = (commit.log_header or b"{}").decode()
        publishes = []
        for out in commit.outputs:
            headers = {"Nats-Msg-Id": out.event_id, EVENT_ID: out.event_id}
            if self.log_rows and out.log_row is not None:
                headers[LOG_HEADER] = header
                headers[LOG_ROW] = out.log_row.decode()
            publishes.append(self.js.publish(cfg.output, out.body, headers=headers))
        for dead in commit.dead:
            sequence = dead.entry_id.rpartition("-")[2]
            body = orjson.dumps(
                {
                    "entry_id": dead.entry_id,
                    "reason": dead.reason,
                    "payload": dead.payload.decode(errors="replace"),
                }
            )
            publishes.append(
                self.js.publish(cfg.dead_letters, body, headers={"Nats-Msg-Id": f"dead:{sequence}"})
            )
        acks = await asyncio.gather(*publishes)
        fresh = sum(1 for ack in acks[: len(commit.outputs)] if not ack.duplicate)
        for entry_id in commit.acks:  # only now: every effect of the batch is stored
            msg = self._inflight.pop(entry_id, None)
            if msg is not None:
                await msg.ack()
        await self.nc.flush()
        return fresh

    def commit_and_read(
        self, commit: Commit, count: int, block_ms: int
    ) -> tuple[int, list[Delivery]]:
        """Commit, then read (two round trips: JetStream has no pipeline of both)."""
        return self.commit(commit), []

    def stats(self) -> GroupStats:
        """Stream lengths and the durable consumer's pending counts."""
        import nats.js.errors

        cfg = self.config

        async def gather() -> GroupStats:
            async def length(subject: str) -> int:
                try:
                    return int((await self.js.stream_info(stream_name(subject))).state.messages)
                except nats.js.errors.NotFoundError:
                    return 0

            total = await length(cfg.input)
            dead, outputs = await length(cfg.dead_letters), await length(cfg.output)
            try:
                info = await self.js.consumer_info(stream_name(cfg.input), cfg.group)
            except nats.js.errors.NotFoundError:
                return GroupStats(total, None, 0, 0, dead, outputs)
            return GroupStats(
                length=total,
                lag=int(info.num_pending or 0),
                pending=int(info.num_ack_pending or 0),
                consumers=int(info.num_waiting or 0),
                dead_letters=dead,
                outputs=outputs,
            )

        with _translated(cfg.url):
            return self._loop.run(gather())  # type: ignore[no-any-return]

    def log_drain(self, sink: Sink, *, lease_ms: int = 10_000) -> JetStreamLogDrain:
        """The drain that moves this output stream's log rows into ``sink``.

        ``lease_ms`` is unused: the drain's compare-and-set plan needs no lease.
        """
        return JetStreamLogDrain(self, sink)

    def publish_sample(self, *, events: int, interval_s: float, latencies_ms: list[float]) -> None:
        """Not kept on NATS yet: ``stream status`` shows the broker's numbers only."""

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on this backend's connection (the drain and tests use it)."""
        with _translated(self.config.url):
            return self._loop.run(coro)

    def close(self) -> None:
        """Close the connection and its loop."""
        with contextlib.suppress(Exception):
            self._loop.run(self.nc.close(), timeout=5)
        self._loop.close()


class JetStreamLogDrain:
    """Moves log rows of the output stream into a ``Sink``, each exactly once.

    A key-value bucket holds one entry per output stream: ``<next sequence> <planned last>``.
    A drain reads it, records its plan (``first last``) with a compare-and-set on the entry's
    revision, writes the part ``nats-<first>-<last>`` (writing it again replaces it), then moves
    the cursor past it, again by compare-and-set. A drainer killed between the two finds the
    plan and redoes exactly that part; two drainers racing lose one compare-and-set and
    write the same part twice, which replaces it.
    """

    BUCKET = "shipyard_stream_log"

    def __init__(self, backend: NatsStreamBackend, sink: Sink, *, batch: int = 500) -> None:
        self.backend = backend
        self.sink = sink
        self.batch = batch
        self.stream = stream_name(backend.config.output)
        self.key = self.stream
        self.written = 0

    def drain(self) -> int:
        """Move the next part; return its rows (0 when there is nothing new)."""
        return int(self.backend.run(self._drain()))

    def drain_all(self) -> int:
        """Drain until every output so far is in the log."""
        total = 0
        while True:
            moved = self.drain()
            total += moved
            if moved == 0 and self.backend.run(self._caught_up()):
                return total

    async def _kv(self) -> Any:
        import nats.js.errors

        try:
            return await self.backend.js.key_value(self.BUCKET)
        except nats.js.errors.BucketNotFoundError:
            return await self.backend.js.create_key_value(bucket=self.BUCKET, history=1)

    async def _cursor(self, kv: Any) -> tuple[int, int | None, int | None]:
        """(next sequence, planned last or None, revision or None when never written)."""
        import nats.js.errors

        try:
            entry = await kv.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return 1, None, None
        first, _, last = entry.value.decode().partition(" ")
        return int(first), (None if last in ("", "-") else int(last)), entry.revision

    async def _caught_up(self) -> bool:
        kv = await self._kv()
        first, planned, _ = await self._cursor(kv)
        info = await self.backend.js.stream_info(self.stream)
        return planned is None and first > int(info.state.last_seq)

    async def _drain(self) -> int:
        import nats.js.errors

        kv = await self._kv()
        first, planned, revision = await self._cursor(kv)
        if planned is None:
            info = await self.backend.js.stream_info(self.stream)
            first = max(first, int(info.state.first_seq))
            last_available = int(info.state.last_seq)
            if last_available < first:
                return 0
            planned = min(last_available, first + self.batch - 1)
            try:
                revision = await self._put(kv, f"{first} {planned}", revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return 0  # another drainer moved first; the next round reads its cursor
        rows = []
        for sequence in range(first, planned + 1):
            try:
                msg = await self.backend.js.get_msg(self.stream, sequence)
            except nats.js.errors.NotFoundError:
                continue  # removed by the stream's limits: nothing to log
            headers = msg.headers or {}
            if LOG_ROW in headers:
                shared = orjson.loads(headers[LOG_HEADER])
                rows.append(log_row(shared, headers[LOG_ROW].encode()))
        if rows:
            self.sink.write_part(f"nats-{first}-{planned}", rows)
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await self._put(kv, f"{planned + 1} -", revision)
        self.written += len(rows)
        return len(rows)

    async def _put(self, kv: Any, value: str, revision: int | None) -> int:
        if revision is None:
            return int(await kv.create(self.key, value.encode()))
        return int(await kv.update(self.key, value.encode(), last=revision))

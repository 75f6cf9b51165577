"""The load generator behind ``shipyard loadtest``: an asyncio loop of httpx requests.

Two ways to make load, as load-testing tools distinguish them:

- **closed loop** (``concurrency=N``): N workers each send a request, wait for its answer and
  send the next, so the offered load adapts to the server (what a fixed pool of clients does);
- **open loop** (``rate_per_s=R``): requests leave on a schedule whatever the server does —
  Poisson arrivals (independent users, the default) or fixed spacing — up to ``max_in_flight``
  pending at once. A send due while that many are pending is skipped and counted in
  ``missed_sends``; one the event loop makes more than 10 ms late is counted in ``late_sends``.
  Both mean the generator, not only the server, was the limit.

Requests go over HTTP/1.1 keep-alive connections, as many as can be in flight. Requests that
start during ``warmup_s`` are sent but not measured; the measured window is ``duration_s`` long,
and requests still running at its end are awaited (up to ``timeout_s``) and counted.

The generator must not share a GIL with the server it measures: the CLI is its own process,
and tests or benchmarks that start a server in-process use ``run_load_in_subprocess``, which
runs the same function in a fresh ``spawn`` process and returns the same report.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import random
import time
from typing import TYPE_CHECKING, Any, Literal

import httpx

from shipyard.core.errors import InvalidArgument, ShipyardError, Unavailable
from shipyard.serve.load_report import LoadReport, public_url, summarize

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from multiprocessing.connection import Connection

LATE_S = 0.010


class _Recorder:
    """Per-request outcomes of the measured window, appended from one event loop."""

    def __init__(self, measure_from: float) -> None:
        self.measure_from = measure_from
        self.latencies_ms: list[float] = []
        self.statuses: list[int | None] = []
        self.kinds: list[str | None] = []
        self.last_finish = measure_from
        self.missed = 0
        self.late = 0

    def add(self, started: float, finished: float, status: int | None, kind: str | None) -> None:
        if started < self.measure_from:
            return  # warm-up
        self.latencies_ms.append((finished - started) * 1000)
        self.statuses.append(status)
        self.kinds.append(kind)
        self.last_finish = max(self.last_finish, finished)


def run_load(
    url: str,
    *,
    method: str = "POST",
    body: bytes | Callable[[int], bytes] = b"",
    headers: Mapping[str, str] | None = None,
    concurrency: int | None = None,
    rate_per_s: float | None = None,
    duration_s: float = 10.0,
    timeout_s: float = 10.0,
    warmup_s: float = 0.0,
    arrival: Literal["poisson", "uniform"] = "poisson",
    max_in_flight: int = 256,
    seed: int | None = None,
) -> LoadReport:
    """Send requests to ``url`` for ``warmup_s + duration_s`` seconds and report what happened.

    Call it from synchronous code (it runs its own event loop).

    Args:
        url: An ``http://`` or ``https://`` URL.
        method: HTTP method.
        body: The request body, or a function of the request's sequence number returning it
            (module-level, so that ``run_load_in_subprocess`` can send it to the child).
        headers: Sent with every request (e.g. ``content-type``, ``authorization``).
        concurrency: Closed loop: this many requests always in flight.
        rate_per_s: Open loop: this many requests per second on average.
        duration_s: Length of the measured window.
        timeout_s: Per-request limit (connect, write, read and waiting for a connection).
        warmup_s: Load sent before measuring (connections opened, caches warm).
        arrival: Open loop spacing: ``"poisson"`` (exponential gaps) or ``"uniform"``.
        max_in_flight: Open loop: most pending requests (and connections).
        seed: Seed of the Poisson schedule, for repeatable runs.

    Returns:
        The report of the measured window.

    Raises:
        InvalidArgument: Not exactly one of ``concurrency`` / ``rate_per_s``, a value out of
            range, or a URL that is not HTTP(S).
    """
    config = _check(
        url,
        method,
        concurrency,
        rate_per_s,
        duration_s,
        timeout_s,
        warmup_s,
        arrival,
        max_in_flight,
    )
    config["header_names"] = sorted(k.lower() for k in (headers or {}))
    config["body_bytes"] = len(body) if isinstance(body, bytes) else None
    recorder, duration = asyncio.run(
        _drive(
            url,
            method=method.upper(),
            body=body,
            headers=dict(headers or {}),
            concurrency=concurrency,
            rate_per_s=rate_per_s,
            duration_s=duration_s,
            timeout_s=timeout_s,
            warmup_s=warmup_s,
            arrival=arrival,
            max_in_flight=max_in_flight,
            seed=seed,
        )
    )
    return summarize(
        latencies_ms=recorder.latencies_ms,
        statuses=recorder.statuses,
        error_kinds=recorder.kinds,
        missed_sends=recorder.missed,
        late_sends=recorder.late,
        duration_s=duration,
        config=config,
    )


def _check(
    url: str,
    method: str,
    concurrency: int | None,
    rate_per_s: float | None,
    duration_s: float,
    timeout_s: float,
    warmup_s: float,
    arrival: str,
    max_in_flight: int,
) -> dict[str, Any]:
    if (concurrency is None) == (rate_per_s is None):
        raise InvalidArgument(
            "give exactly one of concurrency (closed loop) or rate_per_s (open loop)"
        )
    if concurrency is not None and not 1 <= concurrency <= 10_000:
        raise InvalidArgument(f"concurrency must be 1 to 10000, got {concurrency}")
    if rate_per_s is not None and not 0 < rate_per_s <= 100_000:
        raise InvalidArgument(f"rate must be above 0 and at most 100000/s, got {rate_per_s}")
    if duration_s <= 0 or timeout_s <= 0 or warmup_s < 0:
        raise InvalidArgument("duration and timeout must be positive, warm-up not negative")
    if arrival not in ("poisson", "uniform"):
        raise InvalidArgument(f"arrival must be poisson or uniform, got {arrival!r}")
    if not 1 <= max_in_flight <= 10_000:
        raise InvalidArgument(f"max_in_flight must be 1 to 10000, got {max_in_flight}")
    try:
        scheme = httpx.URL(url).scheme
    except httpx.InvalidURL as e:
        raise InvalidArgument(f"not a valid URL: {url[:200]!r} ({e})") from e
    if scheme not in ("http", "https"):
        raise InvalidArgument(f"load tests need an http:// or https:// URL, got {url[:200]!r}")
    return {
        "url": public_url(url),
        "method": method.upper(),
        "mode": "concurrency" if concurrency is not None else "rate",
        "concurrency": concurrency,
        "rate_per_s": rate_per_s,
        "arrival": arrival if rate_per_s is not None else None,
        "max_in_flight": max_in_flight if rate_per_s is not None else None,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "timeout_s": timeout_s,
    }


async def _drive(
    url: str,
    *,
    method: str,
    body: bytes | Callable[[int], bytes],
    headers: dict[str, str],
    concurrency: int | None,
    rate_per_s: float | None,
    duration_s: float,
    timeout_s: float,
    warmup_s: float,
    arrival: str,
    max_in_flight: int,
    seed: int | None,
) -> tuple[_Recorder, float]:
    connections = concurrency if concurrency is not None else max_in_flight
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    numbers = itertools.count()
    async with httpx.AsyncClient(
        limits=limits, timeout=httpx.Timeout(timeout_s), headers=headers
    ) as client:

        async def send() -> None:
            i = next(numbers)
            content = body(i) if callable(body) else body
            started = time.perf_counter()
            status: int | None = None
            try:
                response = await client.request(method, url, content=content or None)
                status = response.status_code
                kind = None if 200 <= status < 300 else f"status {status}"
            except httpx.HTTPError as e:  # timeouts, refused/reset connections, bad responses
                kind = type(e).__name__
            recorder.add(started, time.perf_counter(), status, kind)

        start = time.perf_counter()
        recorder = _Recorder(measure_from=start + warmup_s)
        end = recorder.measure_from + duration_s
        if concurrency is not None:
            await _closed_loop(send, concurrency, end)
        else:
            assert rate_per_s is not None
            gaps = _gaps(rate_per_s, arrival, seed)
            await _open_loop(send, recorder, gaps, start, end, max_in_flight)
    duration = max(recorder.last_finish, end) - recorder.measure_from
    return recorder, duration


async def _closed_loop(send: Callable[[], Any], concurrency: int, end: float) -> None:
    async def worker() -> None:
        while time.perf_counter() < end:
            await send()

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


def _gaps(rate_per_s: float, arrival: str, seed: int | None) -> Callable[[], float]:
    if arrival == "uniform":
        return lambda: 1.0 / rate_per_s
    rng = random.Random(seed)  # noqa: S311 - a schedule, not a secret
    return lambda: rng.expovariate(rate_per_s)


async def _open_loop(
    send: Callable[[], Any],
    recorder: _Recorder,
    gaps: Callable[[], float],
    start: float,
    end: float,
    max_in_flight: int,
) -> None:
    pending: set[asyncio.Task[None]] = set()
    due = start
    async with asyncio.TaskGroup() as group:
        while True:
            due += gaps()
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            measured = due >= recorder.measure_from
            if measured and time.perf_counter() - due > LATE_S:
                recorder.late += 1
            if len(pending) >= max_in_flight:
                recorder.missed += measured
                continue
            task = group.create_task(send())
            pending.add(task)
            task.add_done_callback(pending.discard)


def run_load_in_subprocess(url: str, **options: Any) -> LoadReport:
    """Run ``run_load(url, **options)`` in a fresh ``spawn`` process and return its report.

    The child imports only what the generator needs, so a server in this process keeps its
    GIL to itself. A callable ``body`` must be a module-level function (it is pickled).

    Raises:
        Unavailable: The child died or did not finish in time (it is killed).
        ShipyardError: Whatever ``run_load`` raised in the child (e.g. InvalidArgument).
    """
    budget = (
        float(options.get("warmup_s", 0.0))
        + float(options.get("duration_s", 10.0))
        + float(options.get("timeout_s", 10.0))
        + 60.0  # a fresh interpreter importing httpx and numpy
    )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(sender, url, options), name="shipyard-loadtest", daemon=True
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(budget):
            raise Unavailable(
                f"the load generator did not finish within {budget:.0f} s; it was stopped"
            )
        try:
            outcome, value = receiver.recv()
        except EOFError as e:
            child.join(5)
            raise Unavailable(
                f"the load generator process died (exit code {child.exitcode}); "
                "run it again, or with run_load in this process to see the error"
            ) from e
    finally:
        receiver.close()
        if child.is_alive():
            child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    if outcome == "error":
        if isinstance(value, ShipyardError):
            raise value
        raise Unavailable(f"the load generator failed: {value}")
    assert isinstance(value, LoadReport)
    return value


def _child(sender: Connection, url: str, options: dict[str, Any]) -> None:
    """Entry point of the spawned generator: send back the report or the error."""
    try:
        result: tuple[str, object] = ("ok", run_load(url, **options))
    except ShipyardError as e:
        result = ("error", e)
    except Exception as e:  # anything else crosses as text: it may not pickle
        result = ("error", f"{type(e).__name__}: {e}")
    with contextlib.suppress(OSError):
        sender.send(result)
    sender.close()

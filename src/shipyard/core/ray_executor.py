"""The ``ray`` executor: each item a Ray task, the shared input once in Ray's object store.

The driver (this process) connects to the cluster at ``executor.address`` (``auto``: the
cluster this machine belongs to; ``host:port`` or ``ray://host:10001``; none: a Ray started
for this process). Each ``map`` puts its shared input in the object store once (the same object
twice in a row is put once) and submits one task per item with ``max_retries``: a task whose
worker process dies is run again up to that many times, then reported failed with Ray's reason
(``WorkerCrashedError: ...``). An exception raised by the function itself is not retried: it is
the item's error, as with ``local``.

The connection stays open for the life of the process (``close`` keeps it): connecting costs a
second or two, and tuning, scoring and ingest in one command share it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from shipyard.core.errors import Unavailable
from shipyard.core.executor import ItemResult, describe_error

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shipyard.core.settings import ExecutorSettings

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

_LOCK = threading.Lock()
_REMOTE: Any = None


def _run_item(fn: Callable[[Any, Any], Any], shared: Any, item: Any) -> Any:
    """What a Ray worker runs: the function on one item (``shared`` arrives resolved)."""
    return fn(shared, item)


def _connect(address: str | None) -> Any:
    """Connect this process to the cluster once; the remote function, defined once."""
    global _REMOTE
    try:
        import ray
    except ImportError as e:
        raise Unavailable(
            "executor ray needs the ray extra: pip install 'shipyard[ray]' (or use executor local)"
        ) from e
    with _LOCK:
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    namespace="shipyard",
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise Unavailable(
                    f"cannot reach the Ray cluster at {address or 'a new local Ray'}: {e}; "
                    "check executor.address (or --ray-address) and that the head node is up"
                ) from e
        if _REMOTE is None:
            _REMOTE = ray.remote(_run_item)
    return ray


class RayExecutor:
    """Items as Ray tasks on the cluster ``settings.address`` names."""

    name = "ray"

    def __init__(self, settings: ExecutorSettings, *, label: str = "shipyard") -> None:
        """Connect; ``label`` prefixes task names (``ray::shipyard.score_trial`` in ``ps``)."""
        self._ray = _connect(settings.address)
        self._label = label
        self._max_retries = settings.max_retries
        self._in_flight = settings.in_flight
        self._shared: tuple[object, Any] | None = None

    @property
    def parallelism(self) -> int:
        """``executor.in_flight``, else the cluster's CPUs (at least one)."""
        if self._in_flight is not None:
            return self._in_flight
        return max(int(self._ray.cluster_resources().get("CPU", 1)), 1)

    def put(self, shared: object) -> Any:
        """The object-store reference of ``shared`` (put once while it stays the same object)."""
        if self._shared is not None and self._shared[0] is shared:
            return self._shared[1]
        ref = self._ray.put(shared)
        self._shared = (shared, ref)
        return ref

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[ItemResult[R]]:
        """Submit every item, then collect in order; each failure is that item's error."""
        ray = self._ray
        ref = self.put(shared)
        task = _REMOTE.options(
            max_retries=self._max_retries,
            retry_exceptions=False,
            name=f"{self._label}.{getattr(fn, '__name__', 'task')}",
        )
        pending = [task.remote(fn, ref, item) for item in items]
        results: list[ItemResult[R]] = []
        for future in pending:
            try:
                results.append(ItemResult(ray.get(future)))
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, BaseException) else e
                results.append(ItemResult(error=describe_error(cause)))
            except ray.exceptions.RayError as e:
                results.append(ItemResult(error=describe_error(e).splitlines()[0]))
        return results

    def close(self) -> None:
        """Keep the connection: the next command in this process reuses it."""

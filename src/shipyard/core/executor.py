"""Where independent pieces of work run: in this process (``local``) or on a Ray cluster.

Tuning trials, outer cross-validation folds, batch-scoring partitions and the files of a
multi-file source are each a list of items put through one function. An ``Executor`` runs that
function over the items and hands the results back in the items' order, one ``ItemResult`` per
item: a value, or the reason it failed (an item's failure never hides the others' results).

``local`` is the default and runs the items one after another in this process: what Shipyard
did before executors existed. ``ray`` (``shipyard[ray]``) runs each item as a Ray task; the
shared input (data, a model bundle's bytes) is put in Ray's object store once and read there by
every task, so workers need nothing from the metadata database. ``ray`` is imported only when
chosen (``executor_for``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shipyard.core.settings import ExecutorSettings

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ItemResult(Generic[R]):
    """One item's result: ``value`` when it ran, else ``error`` (``"Type: message"``)."""

    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The item ran to completion."""
        return self.error is None


class Executor(Protocol):
    """Runs ``fn(shared, item)`` for every item; results in the items' order."""

    @property
    def name(self) -> str:
        """``local`` or ``ray`` (recorded on runs as ``executor``)."""
        ...

    @property
    def parallelism(self) -> int:
        """How many items can run at once (tuning asks this many trials per round)."""
        ...

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[ItemResult[R]]:
        """Run ``fn(shared, item)`` for each item; a failed item carries its reason."""
        ...

    def close(self) -> None:
        """Let go of the cluster connection, if any."""
        ...


class LocalExecutor:
    """Every item in this process, one after another (the embedded default)."""

    name = "local"
    parallelism = 1

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[ItemResult[R]]:
        """Run the items in order; an exception becomes that item's error."""
        results: list[ItemResult[R]] = []
        for item in items:
            try:
                results.append(ItemResult(fn(shared, item)))
            except Exception as e:
                results.append(ItemResult(error=describe_error(e)))
        return results

    def close(self) -> None:
        """Nothing is held."""


def describe_error(error: BaseException) -> str:
    """``Type: message``, the form a failed trial's or partition's reason is recorded in."""
    return f"{type(error).__name__}: {error}"


def executor_for(settings: ExecutorSettings | None) -> Executor:
    """The executor ``settings`` choose (``local`` when ``None``).

    Raises:
        Unavailable: ``ray`` is chosen but not installed, or its cluster cannot be reached.
    """
    if settings is None or settings.kind == "local":
        return LocalExecutor()
    from shipyard.core.ray_executor import RayExecutor

    return RayExecutor(settings)

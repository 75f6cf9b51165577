"""The promotion gate's verdict: what it checked and found, stored with every alias event.

Apart from the gate itself (``registry.gate``) so that reading the registry's history (``models
history``, a replayed promotion) needs no dataframe or metric library (issue #17). What a
promotion did (``PromotionResult``) lives here too, for the same readers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import Conflict

if TYPE_CHECKING:
    from shipyard.store.registry import AliasEvent


@dataclass(frozen=True)
class GateCheck:
    """One named check and what it found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    """Whether the candidate may take the alias, and the numbers behind it."""

    passed: bool
    metric: str
    greater_is_better: bool
    candidate_score: float | None
    champion_score: float | None
    margin: float
    rows: int
    checks: list[GateCheck] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, stored with the alias event."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateVerdict:
        """Rebuild a verdict stored by ``to_dict`` (an alias event's ``gate``)."""
        fields = {k: v for k, v in data.items() if k != "checks"}
        return cls(**fields, checks=[GateCheck(**c) for c in data.get("checks", [])])

    def summary(self) -> str:
        """One line for people: the scores and the first failed check."""
        scores = (
            f"{self.metric}: candidate {_fmt(self.candidate_score)}, "
            f"holder {_fmt(self.champion_score)}"
        )
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"passed ({scores}, margin {self.margin:g})"
        return f"refused: {failed[0].detail} ({scores})"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` did: moved, refused or requested, from where to where, and the verdict."""

    moved: bool
    name: str
    alias: str
    from_version: int | None
    to_version: int
    action: str
    verdict: GateVerdict | None
    event: AliasEvent | None  # None for a promotion request (the alias did not move)
    request_id: str | None = None  # the promotion request opened instead of a move

    def describe(self) -> str:
        """One line for people."""
        where = f"{self.name}@{self.alias}"
        gate = "" if self.verdict is None else f"; gate {self.verdict.summary()}"
        if self.request_id is not None:
            return (
                f"{where} stays at version {self.from_version}: promotion request "
                f"{self.request_id} for version {self.to_version} waits for review{gate}"
            )
        if not self.moved:
            return f"{where} stays at version {self.from_version}{gate}"
        return f"{where}: version {self.from_version} -> {self.to_version} ({self.action}){gate}"


def replayed_promotion(
    event: AliasEvent, key: str, name: str, alias: str, version: int
) -> PromotionResult:
    """What a promotion recorded under ``key`` did, as ``promote`` returned it then."""
    if (event.name, event.alias, event.to_version) != (name, alias, version):
        raise Conflict(
            f"idempotency key {key!r} was already used to move {event.name}@{event.alias} to "
            f"version {event.to_version}; use a new key for a different promotion"
        )
    verdict = None if event.gate is None else GateVerdict.from_dict(event.gate)
    return PromotionResult(
        event.action != "refused",
        name,
        alias,
        event.from_version,
        version,
        event.action,
        verdict,
        event,
    )
